/**
 * GGUF files of published model shapes without their weights: the header a real quantized file
 * of that shape would have (its metadata and tensor infos, with llama.cpp's quantization recipes
 * for the tensor types), no vocabulary (`tokenizer.ggml.model` "none", so llama.cpp's estimates
 * never load one), and optionally a hole up to the real file's size (a sparse file). Readers, the
 * planner and llama.cpp's no-allocation estimates then see a model of real size without gigabytes
 * on disk; llama.cpp cannot run one.
 *
 * The shapes themselves live with their users (engine/worker/fit-reference.ts's reference models,
 * bench/kv.ts's, scripts/screenshots.ts's small models), but for `LLAMA_3_2_3B`, which two of
 * them use.
 */
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ggmlTypes } from '../../engine/gguf/format.ts';
import type { PublishedShape } from '../../engine/worker/fit-reference.ts';
import { encodeGgufHeader, type GgufMetaValue, type GgufTensorInfoInput } from './gguf-writer.ts';

/**
 * A model's shape as llama.cpp's converter writes it, from its config.json (fit-reference.ts's
 * `PublishedShape`; its `ReferenceModel` is one). `general.name` is "<name> (shape only)" unless
 * the header is given another.
 */
export type ReferenceGgufShape = PublishedShape;

/**
 * Llama 3.2 3B: huggingface.co/meta-llama/Llama-3.2-3B config.json: hidden_size 3072,
 * intermediate_size 8192, num_hidden_layers 28, num_attention_heads 24, num_key_value_heads 8,
 * head_dim 128, vocab_size 128256, max_position_embeddings 131072, rope_theta 500000,
 * rms_norm_eps 1e-5, tie_word_embeddings true. bench/kv.ts and scripts/screenshots.ts use it.
 */
export const LLAMA_3_2_3B: ReferenceGgufShape = {
  name: 'Llama-3.2-3B',
  arch: 'llama',
  layers: 28,
  nEmbd: 3072,
  nFf: 8192,
  nHead: 24,
  nHeadKv: 8,
  headDim: 128,
  nVocab: 128256,
  contextLength: 131072,
  ropeBase: 500000,
  rmsEps: 1e-5,
  tiedEmbeddings: true,
};

/** The quantizations whose recipes `referenceTensorType` knows (llama.cpp's quantize names). */
export type ReferenceGgufQuant = 'F16' | 'Q8_0' | 'Q6_K' | 'Q5_K_M' | 'Q4_K_M' | 'Q4_0';

/**
 * How a file's tensors are typed: a quantization's recipe, or every matrix of one ggml type (norms
 * and biases F32) with the given `general.file_type`, for when only the header's size and the
 * file's size matter, not the exact mix.
 */
export type ReferenceGgufRecipe = ReferenceGgufQuant | { readonly uniform: number; readonly fileType: number };

/** llama_ftype of each quantization (llama.h). */
const fileTypes: Readonly<Record<ReferenceGgufQuant, number>> = { F16: 1, Q4_0: 2, Q8_0: 7, Q4_K_M: 15, Q5_K_M: 17, Q6_K: 18 };

const typeCodes = new Map([...ggmlTypes].map(([code, type]) => [type.name, code]));
/** A ggml type's code (ggml.h) by its name. */
function ggml(name: 'F32' | 'F16' | 'Q4_0' | 'Q5_0' | 'Q8_0' | 'Q4_K' | 'Q5_K' | 'Q6_K'): number {
  return typeCodes.get(name)!;
}

/** The `general.file_type` of a file made with `recipe`. */
function referenceFileType(recipe: ReferenceGgufRecipe): number {
  return typeof recipe === 'string' ? fileTypes[recipe] : recipe.fileType;
}

/**
 * A tensor's type in a file made with `recipe`, after llama.cpp's quantization recipes
 * (llama-quant.cpp, `llama_tensor_get_type`), in outline: norms and biases stay F32; F16, Q8_0 and
 * Q4_0 type every matrix alike, Q6_K too; Q4_K_M and Q5_K_M use Q6_K for the output matrix (the
 * token embedding when tied) and for attn_v and ffn_down in the layers `use_more_bits` picks (the
 * first and last eighth, and every third between), Q4_K or Q5_K elsewhere. A K-quant tensor whose
 * rows (`rowLength`, ne0) are not whole 256-blocks falls back to Q5_0. `layer` is null outside
 * the blocks.
 */
function referenceTensorType(shape: Pick<ReferenceGgufShape, 'layers' | 'tiedEmbeddings'>, recipe: ReferenceGgufRecipe, name: string, layer: number | null, rowLength: number): number {
  if (name.endsWith('norm.weight') || name.endsWith('.bias')) return ggml('F32');
  if (typeof recipe !== 'string') return recipe.uniform;
  if (recipe === 'F16') return ggml('F16');
  if (recipe === 'Q8_0') return ggml('Q8_0');
  if (recipe === 'Q4_0') return ggml('Q4_0');
  const kQuant = (type: number) => (rowLength % 256 === 0 ? type : ggml('Q5_0'));
  if (recipe === 'Q6_K') return kQuant(ggml('Q6_K'));
  const n = shape.layers;
  const useMoreBits = (i: number) => i < n / 8 || i >= (7 * n) / 8 || (i - Math.floor(n / 8)) % 3 === 2;
  if (name === 'output.weight' || (name === 'token_embd.weight' && shape.tiedEmbeddings === true)) return kQuant(ggml('Q6_K'));
  if (layer !== null && (name.endsWith('attn_v.weight') || name.endsWith('ffn_down.weight')) && useMoreBits(layer)) return kQuant(ggml('Q6_K'));
  return kQuant(recipe === 'Q4_K_M' ? ggml('Q4_K') : ggml('Q5_K'));
}

export interface ReferenceGgufOptions {
  /** Metadata after the header's own (a vocabulary: `syntheticVocabulary`). */
  readonly extraMetadata?: ReadonlyArray<readonly [string, GgufMetaValue]>;
  /** `general.name`; default "<shape's name> (shape only)". */
  readonly name?: string;
}

/** A file of a shape: its header, its tensors, and its whole size. */
export interface ReferenceGguf {
  readonly header: Buffer;
  readonly tensors: readonly GgufTensorInfoInput[];
  /** The header, then every tensor's data, each padded to the alignment: the real file's size. */
  readonly fileBytes: number;
}

const ALIGNMENT = 32;

/** The file of `shape` made with `recipe`: see `referenceHeader`. */
export function referenceGguf(shape: ReferenceGgufShape, recipe: ReferenceGgufRecipe, options: ReferenceGgufOptions = {}): ReferenceGguf {
  const a = shape.arch;
  const u32 = (value: number): GgufMetaValue => ({ type: 'uint32', value });
  const f32 = (value: number): GgufMetaValue => ({ type: 'float32', value });
  const statesHeadDim = shape.statesHeadDim === true || shape.headDim * shape.nHead !== shape.nEmbd;
  const metadata: Array<readonly [string, GgufMetaValue]> = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: options.name ?? `${shape.name} (shape only)` }],
    ['general.alignment', u32(ALIGNMENT)],
    ['general.file_type', u32(referenceFileType(recipe))],
    [`${a}.context_length`, u32(shape.contextLength)],
    [`${a}.embedding_length`, u32(shape.nEmbd)],
    [`${a}.block_count`, u32(shape.layers)],
    [`${a}.feed_forward_length`, u32(shape.nFf)],
    [`${a}.attention.head_count`, u32(shape.nHead)],
    [`${a}.attention.head_count_kv`, u32(shape.nHeadKv)],
    ...(statesHeadDim
      ? ([
          [`${a}.attention.key_length`, u32(shape.headDim)],
          [`${a}.attention.value_length`, u32(shape.headDim)],
        ] as const)
      : []),
    [`${a}.attention.layer_norm_rms_epsilon`, f32(shape.rmsEps)],
    [`${a}.rope.dimension_count`, u32(shape.headDim)],
    [`${a}.rope.freq_base`, f32(shape.ropeBase)],
    [`${a}.vocab_size`, u32(shape.nVocab)],
    ['tokenizer.ggml.model', { type: 'string', value: 'none' }],
    ...(options.extraMetadata ?? []),
  ];
  const tensors: GgufTensorInfoInput[] = [];
  const add = (name: string, dims: number[], layer: number | null = null) => tensors.push({ name, dims, typeCode: referenceTensorType(shape, recipe, name, layer, dims[0]!) });
  const qDim = shape.nHead * shape.headDim;
  const kvDim = shape.nHeadKv * shape.headDim;
  add('token_embd.weight', [shape.nEmbd, shape.nVocab]);
  for (let l = 0; l < shape.layers; l++) {
    const p = `blk.${l}.`;
    add(`${p}attn_norm.weight`, [shape.nEmbd], l);
    add(`${p}attn_q.weight`, [shape.nEmbd, qDim], l);
    add(`${p}attn_k.weight`, [shape.nEmbd, kvDim], l);
    add(`${p}attn_v.weight`, [shape.nEmbd, kvDim], l);
    if (shape.qkvBias === true) {
      add(`${p}attn_q.bias`, [qDim], l);
      add(`${p}attn_k.bias`, [kvDim], l);
      add(`${p}attn_v.bias`, [kvDim], l);
    }
    add(`${p}attn_output.weight`, [qDim, shape.nEmbd], l);
    if (shape.qkNorm === true) {
      add(`${p}attn_q_norm.weight`, [shape.headDim], l);
      add(`${p}attn_k_norm.weight`, [shape.headDim], l);
    }
    add(`${p}ffn_norm.weight`, [shape.nEmbd], l);
    add(`${p}ffn_gate.weight`, [shape.nEmbd, shape.nFf], l);
    add(`${p}ffn_up.weight`, [shape.nEmbd, shape.nFf], l);
    add(`${p}ffn_down.weight`, [shape.nFf, shape.nEmbd], l);
  }
  add('output_norm.weight', [shape.nEmbd]);
  if (shape.tiedEmbeddings !== true) add('output.weight', [shape.nEmbd, shape.nVocab]);
  const header = encodeGgufHeader({ metadata, tensors });
  // The data as encodeGgufHeader lays it out: each tensor padded to the alignment.
  let data = 0;
  for (const tensor of tensors) {
    const type = ggmlTypes.get(tensor.typeCode)!;
    data += (tensor.dims.reduce((x, y) => x * y, 1) / type.blockSize) * type.typeSize;
    data += (ALIGNMENT - (data % ALIGNMENT)) % ALIGNMENT;
  }
  return { header, tensors, fileBytes: header.length + data };
}

/**
 * The header of a file of `shape` made with `recipe`: metadata and tensor infos, no weights, no
 * vocabulary unless `extraMetadata` adds one (`tokenizer.ggml.model` stays "none" either way).
 */
export function referenceHeader(shape: ReferenceGgufShape, recipe: ReferenceGgufRecipe, options: ReferenceGgufOptions = {}): Buffer {
  return referenceGguf(shape, recipe, options).header;
}

/** Llama 3's tokenizer sizes: 128,256 tokens and 280,147 BPE merges. */
export const LLAMA3_VOCABULARY = { tokens: 128_256, merges: 280_147 } as const;

/**
 * A synthetic vocabulary of the given sizes (Llama 3's by default), deterministic: tokens of 3 to
 * 10 ASCII bytes (about the 6.5 B Llama 3's average), their types, and merges of two tokens each.
 * Only its bytes matter: a header reader has to fetch and parse them as it would a real one's.
 */
export function syntheticVocabulary(sizes: { readonly tokens: number; readonly merges: number } = LLAMA3_VOCABULARY): Array<readonly [string, GgufMetaValue]> {
  const tokens: string[] = [];
  for (let i = 0; i < sizes.tokens; i++) {
    const id = i.toString(36);
    tokens.push(`${id}${'abcdefghij'.slice(0, Math.max(0, 3 + (i % 8) - id.length))}`);
  }
  const merges: string[] = [];
  for (let i = 0; i < sizes.merges; i++) merges.push(`${tokens[i % sizes.tokens]} ${tokens[(i * 7919) % sizes.tokens]}`);
  return [
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: tokens.map(() => 1) }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }],
  ];
}

/**
 * Writes `header` to `path` (its folder made as needed), then makes the file `sizeBytes` long
 * without writing the rest: a sparse file whose size is the real file's and whose disk use is the
 * header's.
 */
export async function writeSparseModel(path: string, header: Uint8Array, sizeBytes: number): Promise<void> {
  if (sizeBytes < header.length) throw new RangeError(`${path}: a file of ${sizeBytes} bytes cannot hold a header of ${header.length}`);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, header);
  await truncate(path, sizeBytes);
}
