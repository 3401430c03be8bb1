/**
 * The reference-model GGUF builder: tensor lists of known shapes, the tensor types llama.cpp's
 * recipes give them, and headers that the app's own GGUF reader accepts with the parameter count
 * and quantization of the real files.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ggmlTypes } from '../../engine/gguf/format.ts';
import { inspectGguf, metaNumber } from '../../engine/gguf/reader.ts';
import { referenceModels } from '../../engine/worker/fit-reference.ts';
import { referenceGguf, referenceHeader, syntheticVocabulary, writeSparseModel, type ReferenceGgufShape } from './reference-gguf.ts';

const typeName = (code: number) => ggmlTypes.get(code)?.name;
const llama8b = referenceModels.find((m) => m.name === 'Llama-3.1-8B')!;
const qwen7b = referenceModels.find((m) => m.name === 'Qwen2.5-7B')!;

/** Qwen3-8B's shape (its config.json): Q and K norms, head size stated. */
const qwen3: ReferenceGgufShape = { name: 'Qwen3-8B', arch: 'qwen3', layers: 36, nEmbd: 4096, nFf: 12288, nHead: 32, nHeadKv: 8, headDim: 128, nVocab: 151936, contextLength: 40960, ropeBase: 1e6, rmsEps: 1e-6, qkNorm: true, statesHeadDim: true };
/** Qwen2.5-0.5B's shape: tied embeddings, and rows of 896, not whole 256-blocks. */
const qwen05b: ReferenceGgufShape = { name: 'Qwen2.5-0.5B', arch: 'qwen2', layers: 24, nEmbd: 896, nFf: 4864, nHead: 14, nHeadKv: 2, headDim: 64, nVocab: 151936, contextLength: 32768, ropeBase: 1e6, rmsEps: 1e-6, qkvBias: true, tiedEmbeddings: true };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-reference-gguf-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('reference GGUF headers', () => {
  it('list the tensors of each architecture: 9 per Llama layer, 12 with Qwen2 biases, 11 with Qwen3 norms, no output matrix when tied', () => {
    // The published files: Llama-3.1-8B has 291 tensors (292 with rope_freqs, which this leaves out), Qwen2.5-7B 339.
    expect(referenceGguf(llama8b, 'Q4_K_M').tensors).toHaveLength(1 + 32 * 9 + 2);
    expect(referenceGguf(qwen7b, 'Q4_K_M').tensors).toHaveLength(1 + 28 * 12 + 2);
    const q3 = referenceGguf(qwen3, 'Q4_K_M').tensors;
    expect(q3).toHaveLength(1 + 36 * 11 + 2);
    expect(q3.find((t) => t.name === 'blk.0.attn_q_norm.weight')).toEqual({ name: 'blk.0.attn_q_norm.weight', dims: [128], typeCode: 0 });
    const tied = referenceGguf(qwen05b, 'Q8_0').tensors;
    expect(tied).toHaveLength(1 + 24 * 12 + 1);
    expect(tied.some((t) => t.name === 'output.weight')).toBe(false);
    expect(tied.find((t) => t.name === 'blk.3.attn_k.bias')).toEqual({ name: 'blk.3.attn_k.bias', dims: [128], typeCode: 0 });
  });

  it("type Llama-3.1-8B's tensors by llama.cpp's Q4_K_M recipe: Q6_K for the output and for attn_v and ffn_down in use_more_bits's layers", () => {
    const types = new Map(referenceGguf(llama8b, 'Q4_K_M').tensors.map((t) => [t.name, typeName(t.typeCode)]));
    // use_more_bits over 32 layers: the first and last four, and every third from layer 6.
    const moreBits = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
    for (let l = 0; l < 32; l++) {
      const wide = moreBits.includes(l) ? 'Q6_K' : 'Q4_K';
      expect([types.get(`blk.${l}.attn_v.weight`), types.get(`blk.${l}.ffn_down.weight`)], `layer ${l}`).toEqual([wide, wide]);
      for (const name of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) expect(types.get(`blk.${l}.${name}.weight`)).toBe('Q4_K');
      expect([types.get(`blk.${l}.attn_norm.weight`), types.get(`blk.${l}.ffn_norm.weight`)]).toEqual(['F32', 'F32']);
    }
    expect([types.get('token_embd.weight'), types.get('output.weight'), types.get('output_norm.weight')]).toEqual(['Q4_K', 'Q6_K', 'F32']);
    // Q5_K_M: the same mix over Q5_K.
    const q5 = new Map(referenceGguf(llama8b, 'Q5_K_M').tensors.map((t) => [t.name, typeName(t.typeCode)]));
    expect([q5.get('blk.4.attn_v.weight'), q5.get('blk.6.attn_v.weight'), q5.get('output.weight')]).toEqual(['Q5_K', 'Q6_K', 'Q6_K']);
  });

  it('type tied embeddings as the output matrix, fall back to Q5_0 for rows that are not whole K-quant blocks, and keep biases F32', () => {
    const types = new Map(referenceGguf(qwen05b, 'Q4_K_M').tensors.map((t) => [t.name, typeName(t.typeCode)]));
    // Rows of 896 (token_embd, attn_q…) fall back; ffn_down's rows are 4864 = 19 × 256, and Q6_K
    // in use_more_bits's layers (over 24: the first and last three, and every third from 5).
    expect([types.get('token_embd.weight'), types.get('blk.4.attn_q.weight'), types.get('blk.4.ffn_down.weight'), types.get('blk.5.ffn_down.weight')]).toEqual(['Q5_0', 'Q5_0', 'Q4_K', 'Q6_K']);
    expect(types.get('blk.1.attn_q.bias')).toBe('F32');
    const q3 = new Map(referenceGguf({ ...qwen3, tiedEmbeddings: true }, 'Q4_K_M').tensors.map((t) => [t.name, typeName(t.typeCode)]));
    expect(q3.get('token_embd.weight')).toBe('Q6_K');
  });

  it('type every matrix alike in F16, Q8_0, Q4_0, Q6_K and a uniform recipe, norms F32', () => {
    for (const [recipe, expected] of [
      ['F16', 'F16'],
      ['Q8_0', 'Q8_0'],
      ['Q4_0', 'Q4_0'],
      ['Q6_K', 'Q6_K'],
      [{ uniform: 10, fileType: 10 }, 'Q2_K'],
    ] as const) {
      const types = new Set(referenceGguf(llama8b, recipe).tensors.filter((t) => !t.name.endsWith('norm.weight')).map((t) => typeName(t.typeCode)));
      expect([...types], JSON.stringify(recipe)).toEqual([expected]);
    }
  });

  it("parse with the app's reader: Llama-3.1-8B's 8.03 B parameters, its file type, and the Q8_0 file's size to the byte", async () => {
    const file = referenceGguf(llama8b, 'Q8_0');
    const path = join(dir, 'llama-q8.gguf');
    await writeSparseModel(path, file.header, file.fileBytes);
    expect((await stat(path)).size).toBe(file.fileBytes);
    const read = await inspectGguf(path);
    if (!read.ok) throw new Error(read.error.message);
    const summary = read.value;
    expect(summary).toMatchObject({ architecture: 'llama', name: 'Llama-3.1-8B (shape only)', fileType: 'Q8_0', tensorCount: 291, parameterCount: 8_030_261_248, contextLength: 131072, blockCount: 32, headCountKv: 8, dataOffset: file.header.length });
    expect(summary.metadata['tokenizer.ggml.model']).toEqual({ type: 'string', value: 'none' });
    // No head size stated where it is n_embd / n_head.
    expect(metaNumber(summary, 'llama.attention.key_length')).toBeUndefined();
    // Q8_0: 34 bytes per 32 weights; the 65 norms (F32) are 266,240 of the parameters.
    const norms = 65 * 4096;
    expect(file.fileBytes - file.header.length).toBe(((8_030_261_248 - norms) / 32) * 34 + norms * 4);
    // And within half a percent of the published file (fit-reference.ts).
    expect(Math.abs(file.fileBytes / llama8b.files.find((f) => f.quant === 'Q8_0')!.bytes - 1)).toBeLessThan(0.005);
  });

  it('state the head size when asked or when it is not n_embd / n_head, name the file as asked, and carry extra metadata', async () => {
    const vocabulary = syntheticVocabulary({ tokens: 1000, merges: 300 });
    const path = join(dir, 'qwen3.gguf');
    const named = referenceGguf(qwen3, 'Q4_K_M', { name: 'Qwen3 8B', extraMetadata: vocabulary });
    await writeSparseModel(path, named.header, named.fileBytes);
    const read = await inspectGguf(path);
    if (!read.ok) throw new Error(read.error.message);
    expect(read.value).toMatchObject({ architecture: 'qwen3', name: 'Qwen3 8B', fileType: 'Q4_K_M', tensorCount: 1 + 36 * 11 + 2 });
    expect(metaNumber(read.value, 'qwen3.attention.key_length')).toBe(128);
    expect(read.value.metadata['tokenizer.ggml.tokens']).toMatchObject({ type: 'array', itemType: 'string', length: 1000 });
    expect(read.value.metadata['tokenizer.ggml.merges']).toMatchObject({ type: 'array', length: 300 });
    // Heads of 96 over an n_embd of 4096 (32 × 128): llama.cpp would assume 128 unless told.
    const odd = referenceGguf({ ...qwen3, statesHeadDim: false, headDim: 96 }, 'F16');
    const oddPath = join(dir, 'odd.gguf');
    await writeSparseModel(oddPath, odd.header, odd.fileBytes);
    const oddRead = await inspectGguf(oddPath);
    if (!oddRead.ok) throw new Error(oddRead.error.message);
    expect(metaNumber(oddRead.value, 'qwen3.attention.value_length')).toBe(96);
  });

  it('is deterministic, and a sparse file cannot be shorter than its header', async () => {
    expect(referenceHeader(qwen7b, 'Q5_K_M').equals(referenceHeader(qwen7b, 'Q5_K_M'))).toBe(true);
    expect(syntheticVocabulary({ tokens: 50, merges: 20 })).toEqual(syntheticVocabulary({ tokens: 50, merges: 20 }));
    const header = referenceHeader(qwen7b, 'Q4_K_M');
    await expect(writeSparseModel(join(dir, 'short.gguf'), header, header.length - 1)).rejects.toThrow(RangeError);
  });
});
