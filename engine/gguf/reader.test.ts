import { mkdtemp, mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectGguf, inspectGgufPart, metaBool, metaNumber, metaString, type GgufSummary } from './reader.ts';
import { encodeGguf, encodeGgufHeader, tinyLlamaGguf, type GgufInput, type GgufMetaValue } from '../../test/support/gguf-writer.ts';

let dir: string;
let model: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-gguf-'));
  model = tinyLlamaGguf({ layers: 2, nEmbd: 64, nHead: 2, nHeadKv: 1, nFf: 128, contextLength: 4096, chatTemplate: '{{ messages }}' });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function file(bytes: Uint8Array | string): Promise<string> {
  const path = join(dir, `f${counter++}.gguf`);
  await writeFile(path, bytes);
  return path;
}

async function invalid(bytes: Uint8Array | string): Promise<string> {
  const result = await inspectGguf(await file(bytes));
  if (result.ok) throw new Error('expected MODEL_INVALID, got ok');
  expect(result.error.code).toBe('MODEL_INVALID');
  return result.error.message;
}

function patched(edit: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(model);
  edit(copy);
  return copy;
}

/** Offset just after the length-prefixed string `s` as it appears in the file. */
function after(buffer: Buffer, s: string): number {
  const at = buffer.indexOf(Buffer.from(s, 'utf8'));
  if (at < 0) throw new Error(`${s} not in file`);
  return at + Buffer.byteLength(s);
}

describe('inspectGguf on a valid file', () => {
  it('summarizes the header', async () => {
    const result = await inspectGguf(await file(model));
    expect(result.ok).toBe(true);
    const s = (result as { ok: true; value: GgufSummary }).value;
    expect(s).toMatchObject({
      version: 3,
      architecture: 'llama',
      name: 'Hearth tiny llama',
      contextLength: 4096,
      blockCount: 2,
      embeddingLength: 64,
      headCount: 2,
      headCountKv: 1,
      fileSize: model.length,
      tensorCount: 1 + 2 * 9 + 2,
      hasChatTemplate: true,
      alignment: 32,
    });
    expect(s.dataOffset % 32).toBe(0);
    expect(metaString(s, 'tokenizer.ggml.model')).toBe('llama');
    expect(metaNumber(s, 'tokenizer.ggml.eos_token_id')).toBe(2);
    expect(metaBool(s, 'tokenizer.ggml.add_bos_token')).toBe(true);
    expect(metaString(s, 'no.such.key')).toBeUndefined();
    expect(metaNumber(s, 'general.name')).toBeUndefined();
    // Token lists are long in real models: only their length is kept past 1024 entries.
    expect(s.metadata['tokenizer.ggml.tokens']).toMatchObject({ type: 'array', itemType: 'string', length: 260 });
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('accepts version 2 and other architectures (llama.cpp judges those)', async () => {
    const v2 = patched((b) => b.writeUInt32LE(2, 4));
    expect((await inspectGguf(await file(v2))).ok).toBe(true);
    const other = await inspectGguf(await file(tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, architecture: 'hearthnotreal' })));
    expect(other.ok && other.value.architecture).toBe('hearthnotreal');
    expect(other.ok && other.value.contextLength).toBe(8192);
  });

  it('reads only the header of a large file', async () => {
    const path = await file(model);
    // 8 GiB of sparse zeros after the model: reading them would take seconds.
    await truncate(path, model.length + 8 * 1024 ** 3);
    const started = performance.now();
    const result = await inspectGguf(path);
    expect(result.ok).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('inspectGguf on broken files', () => {
  it('reports a missing file as NOT_FOUND', async () => {
    const result = await inspectGguf(join(dir, 'missing.gguf'));
    expect(!result.ok && result.error.code).toBe('NOT_FOUND');
  });

  it('rejects a directory', async () => {
    const path = join(dir, 'folder.gguf');
    await mkdir(path);
    const result = await inspectGguf(path);
    expect(!result.ok && result.error.code).toBe('MODEL_INVALID');
    expect(!result.ok && result.error.message).toMatch(/directory/);
  });

  it('rejects empty, tiny and non-GGUF files', async () => {
    expect(await invalid('')).toMatch(/empty/);
    expect(await invalid('GGUF')).toMatch(/only 4 bytes/);
    const message = await invalid('This is not a GGUF file, just some text.\n'.repeat(10));
    expect(message).toMatch(/not a GGUF model: it does not start with "GGUF"/);
    // Nothing of the file is echoed back.
    expect(message).not.toContain('This');
    expect(await invalid(Buffer.alloc(100, 0xff))).toMatch(/not a GGUF model: it does not start with "GGUF"/);
  });

  it('rejects unsupported versions', async () => {
    expect(await invalid(patched((b) => b.writeUInt32LE(1, 4)))).toMatch(/version 1/);
    expect(await invalid(patched((b) => b.writeUInt32LE(4, 4)))).toMatch(/version 4/);
    expect(await invalid(patched((b) => b.writeUInt32LE(0x03000000, 4)))).toMatch(/version/);
  });

  it('rejects truncation at every stage, naming the tensor when it is in the data', async () => {
    const infoStart = after(model, 'token_embd.weight');
    const cuts = [30, 200, infoStart + 4, Math.floor(model.length * 0.3), Math.floor(model.length * 0.6), model.length - 1];
    for (const cut of cuts) {
      const message = await invalid(model.subarray(0, cut));
      expect(message).toMatch(/truncated/);
    }
    const last = await invalid(model.subarray(0, model.length - 100));
    expect(last).toMatch(new RegExp(`The file ends at ${(model.length - 100).toLocaleString('en-US')} bytes but tensor output\\.weight needs bytes up to [0-9,]+: the file is truncated, probably an incomplete download\\.`));
    const middle = await invalid(model.subarray(0, Math.floor(model.length * 0.5)));
    expect(middle).toMatch(/tensor blk\.\d\.\w+\.weight needs bytes up to/);
  });

  it('rejects absurd counts and lengths without allocating them', async () => {
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1n << 62n, 8)))).toMatch(/tensors/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1n << 40n, 16)))).toMatch(/metadata entries/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1000n, 8)))).toMatch(/do not fit|truncated|corrupt/);
    // The first key's length.
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1n << 60n, 24)))).toMatch(/bytes long/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(70_000n, 24)))).toMatch(/bytes long, more than/);
    // The length of general.architecture's value: within the string cap, beyond the file.
    expect(await invalid(patched((b) => b.writeBigUInt64LE(50_000_000n, after(b, 'general.architecture') + 4)))).toMatch(/file ends/);
    // The element count of tokenizer.ggml.tokens (after its key, the array type and the element type).
    const tokens = after(model, 'tokenizer.ggml.tokens');
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1n << 50n, tokens + 8)))).toMatch(/tokenizer\.ggml\.tokens/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(10_000_000n, tokens + 8)))).toMatch(/do not fit/);
  });

  it('rejects bad tensor infos', async () => {
    const info = after(model, 'token_embd.weight');
    // n_dims, then 2 dims, then the type, then the offset.
    expect(await invalid(patched((b) => b.writeUInt32LE(9, info)))).toMatch(/dimensions/);
    expect(await invalid(patched((b) => b.writeUInt32LE(4, info + 4 + 16)))).toMatch(/ggml type 4/);
    expect(await invalid(patched((b) => b.writeUInt32LE(99, info + 4 + 16)))).toMatch(/ggml type 99/);
    // Q8_0 needs rows that are a multiple of 32 elements: 64 is, so make the row 48 long.
    expect(await invalid(patched((b) => { b.writeUInt32LE(8, info + 4 + 16); b.writeBigUInt64LE(48n, info + 4); }))).toMatch(/block size/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(64n, info + 4 + 16 + 4)))).toMatch(/offset/);
    expect(await invalid(patched((b) => b.writeBigUInt64LE(1n << 63n, info + 4)))).toMatch(/negative/);
  });

  it('rejects bad metadata', async () => {
    const base: GgufInput = {
      metadata: [['general.architecture', { type: 'string', value: 'llama' }]],
      tensors: [{ name: 'a', dims: [4], type: 'F32', data: new Float32Array(4) }],
    };
    expect((await inspectGguf(await file(encodeGguf(base)))).ok).toBe(true);
    const withMeta = (extra: GgufInput['metadata']) => encodeGguf({ ...base, metadata: [...base.metadata, ...extra] });
    expect(await invalid(withMeta([['general.alignment', { type: 'uint32', value: 48 }]]))).toMatch(/power of two/);
    expect(await invalid(withMeta([['general.alignment', { type: 'uint64', value: 32n }]]))).toMatch(/uint32/);
    expect(await invalid(withMeta([['general.architecture', { type: 'string', value: 'again' }]]))).toMatch(/appears twice/);
    expect(await invalid(encodeGguf({ ...base, metadata: [] }))).toMatch(/general\.architecture/);
    expect(await invalid(encodeGguf({ ...base, tensors: [] }))).toMatch(/no tensors/);
    expect(await invalid(encodeGguf({ ...base, tensors: [base.tensors[0]!, base.tensors[0]!] }))).toMatch(/appears twice/);
    expect(await invalid(encodeGguf({ ...base, tensors: [{ ...base.tensors[0]!, name: 'x'.repeat(64) }] }))).toMatch(/name is 64 bytes/);
    // An unknown value type, written over the architecture's type field.
    const bad = encodeGguf(base);
    bad.writeUInt32LE(13, after(bad, 'general.architecture'));
    expect(await invalid(bad)).toMatch(/unknown value type 13/);
    // Untrusted text in messages is escaped and cut short.
    const hostileKey = '\u0007\u202e'.repeat(100);
    const hostile = encodeGguf({ ...base, metadata: [...base.metadata, [hostileKey, { type: 'uint32', value: 1 }]] });
    hostile.writeUInt32LE(77, after(hostile, hostileKey));
    const message = await invalid(hostile);
    expect(message.length).toBeLessThan(400);
    expect(message.includes('\u0007') || message.includes('\u202e')).toBe(false);
  });
});

describe('what the models library shows', () => {
  const base: GgufInput = {
    metadata: [['general.architecture', { type: 'string', value: 'llama' }]],
    tensors: [
      { name: 'a', dims: [4], type: 'F32', data: new Float32Array(4) },
      { name: 'b', dims: [8, 3], type: 'F16', data: new Float32Array(24) },
    ],
  };
  const withMeta = (extra: GgufInput['metadata'], tensors = base.tensors) => encodeGguf({ ...base, metadata: [...base.metadata, ...extra], tensors });
  const summary = async (bytes: Buffer): Promise<GgufSummary> => {
    const result = await inspectGguf(await file(bytes));
    if (!result.ok) throw new Error(result.error.message);
    return result.value;
  };

  it('counts parameters as the elements of every tensor', async () => {
    expect((await summary(encodeGguf(base))).parameterCount).toBe(4 + 8 * 3);
    // The tiny llama's shapes: embeddings and output (n_embd × vocab), per layer q and o
    // (n_embd²), k and v (n_embd × n_embd_kv), gate, up and down (n_embd × n_ff), two norms, and
    // the output norm.
    const s = await summary(model);
    const [embd, vocab, ff, kv, layers] = [64, 260, 128, (64 / 2) * 1, 2];
    expect(s.parameterCount).toBe(2 * embd * vocab + layers * (2 * embd * embd + 2 * embd * kv + 3 * embd * ff + 2 * embd) + embd);
  });

  it("names the quantization from general.file_type as llama.cpp's quantize tool does", async () => {
    expect((await summary(model)).fileType).toBe('F16');
    expect((await summary(tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, weightType: 'F32' }))).fileType).toBe('F32');
    const named = async (code: number) => (await summary(withMeta([['general.file_type', { type: 'uint32', value: code }]]))).fileType;
    expect(await named(15)).toBe('Q4_K_M');
    expect(await named(7)).toBe('Q8_0');
    expect(await named(30)).toBe('IQ4_XS');
    expect(await named(32)).toBe('BF16');
    expect(await named(38)).toBe('MXFP4');
    expect(await named(9999)).toBeNull();
    expect((await summary(encodeGguf(base))).fileType).toBeNull();
  });

  it('accepts a first split part that holds metadata only, and reads later parts without a model header', async () => {
    const split = (no: number): GgufInput['metadata'] => [
      ['split.no', { type: 'uint16', value: no }],
      ['split.count', { type: 'uint16', value: 2 }],
      ['split.tensors.count', { type: 'int32', value: 2 }],
    ];
    const first = await summary(withMeta(split(0), []));
    expect(first).toMatchObject({ tensorCount: 0, parameterCount: 0, architecture: 'llama' });
    // Without split.count a file with no tensors is still not a model.
    expect(await invalid(withMeta([], []))).toMatch(/no tensors/);

    const second = encodeGguf({ metadata: split(1), tensors: base.tensors });
    const part = await inspectGgufPart(await file(second));
    expect(part.ok && part.value).toMatchObject({ tensorCount: 2, parameterCount: 28, splitNo: 1, splitCount: 2 });
    // inspectGguf wants the model's metadata, which only the first part has.
    expect((await inspectGguf(await file(second))).ok).toBe(false);
    // The part reader checks the layout all the same.
    const truncated = await inspectGgufPart(await file(second.subarray(0, second.length - 40)));
    expect(!truncated.ok && truncated.error.message).toMatch(/truncated/);
    const notGguf = await inspectGgufPart(await file('not a model at all, just text'));
    expect(!notGguf.ok && notGguf.error.code).toBe('MODEL_INVALID');
  });
});

describe("a header of Llama-3's size", () => {
  // Llama-3's tokenizer: 128,256 tokens and 280,147 merges, ~8 MiB of strings. The reader walks
  // them without keeping them; a 1024-string array of 2–3 KiB strings (kept) spans windows.
  const TOKENS = 128_256;
  const MERGES = 280_147;
  let header: Buffer;
  let kept: string[];

  beforeAll(() => {
    const tokens = Array.from({ length: TOKENS }, (_, i) => (i % 5 === 0 ? `\u0120${i.toString(36)}é` : `t${i.toString(36)}`));
    const merges = Array.from({ length: MERGES }, (_, i) => `${tokens[i % TOKENS]} ${tokens[(i * 7919) % TOKENS]}`);
    kept = Array.from({ length: 1024 }, (_, i) => `${i}:${'ü→'.repeat(400 + (i % 300))}`);
    const strings = (value: string[]): GgufMetaValue => ({ type: 'array', itemType: 'string', value });
    header = encodeGgufHeader({
      metadata: [
        ['general.architecture', { type: 'string', value: 'llama' }],
        ['tokenizer.ggml.tokens', strings(tokens)],
        ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: tokens.map(() => 1) }],
        ['tokenizer.ggml.merges', strings(merges)],
        ['hearth.kept', strings(kept)],
        // Read after the arrays: right only if each walk ended exactly where its array does.
        ['general.name', { type: 'string', value: 'Vocabulary-sized' }],
        ['llama.context_length', { type: 'uint32', value: 8192 }],
      ],
      tensors: [{ name: 'token_embd.weight', dims: [32, 4], typeCode: 0 }],
    });
  });

  /** Where element `index` of the string array `key` starts in the header (its length prefix). */
  function elementAt(key: string, index: number): number {
    // After the key: the value type, the element type and the element count.
    let at = after(header, key) + 4 + 4 + 8;
    for (let i = 0; i < index; i++) at += 8 + Number(header.readBigUInt64LE(at));
    return at;
  }

  async function failure(bytes: Buffer): Promise<{ message: string; hint?: string }> {
    const result = await inspectGguf(await file(bytes));
    if (result.ok) throw new Error('expected MODEL_INVALID, got ok');
    expect(result.error.code).toBe('MODEL_INVALID');
    return { message: result.error.message, ...(result.error.hint === undefined ? {} : { hint: result.error.hint }) };
  }

  it('summarizes it, keeping only the lengths of the long arrays', async () => {
    expect(header.length).toBeGreaterThan(8 * 1024 * 1024);
    const path = await file(header);
    // The one F32 tensor's 32 × 4 values follow the header (sparse).
    await truncate(path, header.length + 32 * 4 * 4);
    const result = await inspectGguf(path);
    if (!result.ok) throw new Error(result.error.message);
    const s = result.value;
    expect(s).toMatchObject({ architecture: 'llama', name: 'Vocabulary-sized', contextLength: 8192, tensorCount: 1, parameterCount: 128, dataOffset: header.length });
    expect(s.metadata['tokenizer.ggml.tokens']).toEqual({ type: 'array', itemType: 'string', length: TOKENS });
    expect(s.metadata['tokenizer.ggml.token_type']).toEqual({ type: 'array', itemType: 'int32', length: TOKENS });
    expect(s.metadata['tokenizer.ggml.merges']).toEqual({ type: 'array', itemType: 'string', length: MERGES });
    expect(s.metadata['hearth.kept']).toEqual({ type: 'array', itemType: 'string', length: 1024, values: kept });
  });

  it('reports truncation inside the vocabulary as it did one string at a time', async () => {
    const while_ = 'while reading the value of metadata key';
    const cases: Array<[key: string, index: number]> = [
      ['tokenizer.ggml.tokens', 100_000],
      ['tokenizer.ggml.merges', 200_000],
      ['hearth.kept', 700],
    ];
    for (const [key, index] of cases) {
      const at = elementAt(key, index);
      const length = Number(header.readBigUInt64LE(at));
      // Inside the length prefix: the file ends before the whole u64.
      const inPrefix = at + 3;
      expect(await failure(header.subarray(0, inPrefix))).toEqual({
        message: `The file ends at ${inPrefix.toLocaleString('en-US')} bytes, inside its header (${while_} "${key}"): the file is truncated, probably an incomplete download.`,
        hint: 'Download the model again.',
      });
      // Inside the string: its length is more than what is left.
      const inString = at + 8 + Math.floor(length / 2);
      expect(await failure(header.subarray(0, inString))).toEqual({
        message: `The element ${index} of "${key}" is ${length.toLocaleString('en-US')} bytes long but the file ends ${(inString - at - 8).toLocaleString('en-US')} bytes later: the file is truncated or corrupt.`,
        hint: 'Download the model again.',
      });
    }
  });

  it('checks every length prefix inside the vocabulary', async () => {
    const index = 150_000;
    const at = elementAt('tokenizer.ggml.merges', index);
    const withLength = (length: bigint): Buffer => {
      const copy = Buffer.from(header);
      copy.writeBigUInt64LE(length, at);
      return copy;
    };
    const element = `The element ${index} of "tokenizer.ggml.merges"`;
    expect((await failure(withLength(1n << 40n))).message).toBe(`${element} is 1,099,511,627,776 bytes long, more than the 67,108,864 allowed: the file is corrupt.`);
    expect((await failure(withLength(70_000_000n))).message).toBe(`${element} is 70,000,000 bytes long, more than the 67,108,864 allowed: the file is corrupt.`);
    const left = header.length - at - 8;
    expect(await failure(withLength(BigInt(left + 1)))).toEqual({
      message: `${element} is ${(left + 1).toLocaleString('en-US')} bytes long but the file ends ${left.toLocaleString('en-US')} bytes later: the file is truncated or corrupt.`,
      hint: 'Download the model again.',
    });
  });
});
