/**
 * A GGUF v3 writer, and a generator of tiny llama-architecture test models with seeded weights,
 * so tests run real llama.cpp inference without downloading or committing a model. The output is
 * byte-deterministic for given options: tests cache the files by a hash of the options and
 * `GENERATOR_VERSION`. The keys and tensors written are those llama.cpp's loader requires of a
 * llama-architecture model.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, ggmlTypes, GgufValueType, type GgufScalarTypeName } from '../../engine/gguf/format.ts';

/**
 * Bump when the bytes `writeTinyLlama` produces for the same options change, so that cached
 * test models are regenerated.
 */
export const GENERATOR_VERSION = 1;

/** One metadata value with its GGUF type. 64-bit integers are bigints so no precision is lost. */
export type GgufMetaValue =
  | { readonly type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64'; readonly value: number }
  | { readonly type: 'uint64' | 'int64'; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly itemType: GgufScalarTypeName; readonly value: readonly (number | bigint | boolean | string)[] };

/** Tensor element types the writer can encode. */
export type WritableTensorType = 'F32' | 'F16';

export interface GgufTensorInput {
  readonly name: string;
  /** ggml order: ne0 (the row length) first, the reverse of a row-major shape. */
  readonly dims: readonly number[];
  readonly type: WritableTensorType;
  /** Row-major data, `product(dims)` values. */
  readonly data: Float32Array;
}

export interface GgufInput {
  /** Written as-is (tests use other values to make invalid files). Default 3. */
  readonly version?: number;
  readonly metadata: ReadonlyArray<readonly [string, GgufMetaValue]>;
  readonly tensors: readonly GgufTensorInput[];
}

const tensorTypeCode: Record<WritableTensorType, number> = { F32: 0, F16: 1 };
const tensorTypeSize: Record<WritableTensorType, number> = { F32: 4, F16: 2 };

/** Grows a buffer as values are appended; little-endian throughout. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  u8(v: number): void { this.reserve(1); this.buffer.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.buffer.writeInt8(v, this.length); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.buffer.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.buffer.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.buffer.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.buffer.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.buffer.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.buffer.writeDoubleLE(v, this.length); this.length += 8; }
  /** `values` as binary16, little-endian (the same bits as `toFloat16Bits` per value). */
  f16(values: Float32Array): void {
    this.reserve(2 * values.length);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = this.buffer;
    let at = this.length;
    for (let i = 0; i < bits.length; i++) {
      const half = float32BitsToFloat16(bits[i]!);
      out[at++] = half & 0xff;
      out[at++] = half >>> 8;
    }
    this.length = at;
  }
  u64(v: bigint | number): void { this.reserve(8); this.buffer.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: bigint | number): void { this.reserve(8); this.buffer.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buffer.set(b, this.length); this.length += b.length; }
  string(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.bytes(b); }
  padTo(alignment: number): void { const pad = (alignment - (this.length % alignment)) % alignment; this.reserve(pad); this.length += pad; }
  result(): Buffer { return this.buffer.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufScalarTypeName, value: number | bigint | boolean | string): void {
  switch (type) {
    case 'uint8': sink.u8(Number(value)); break;
    case 'int8': sink.i8(Number(value)); break;
    case 'uint16': sink.u16(Number(value)); break;
    case 'int16': sink.i16(Number(value)); break;
    case 'uint32': sink.u32(Number(value)); break;
    case 'int32': sink.i32(Number(value)); break;
    case 'float32': sink.f32(Number(value)); break;
    case 'float64': sink.f64(Number(value)); break;
    case 'bool': sink.u8(value ? 1 : 0); break;
    case 'uint64': sink.u64(typeof value === 'bigint' ? value : BigInt(Number(value))); break;
    case 'int64': sink.i64(typeof value === 'bigint' ? value : BigInt(Number(value))); break;
    case 'string': sink.string(String(value)); break;
  }
}

/** IEEE 754 binary16 bits of a number, round to nearest even (written here to avoid ESNext-only typings). */
export function toFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  return float32BitsToFloat16(new Uint32Array(f32.buffer)[0] ?? 0);
}

/**
 * The binary16 bits of the binary32 value whose bits are `x`, round to nearest even. Taking the
 * bits lets a whole tensor be converted through one Uint32Array view, without allocating per
 * value: the kv-shape-8b benchmark model's 157 M weights took ~3 minutes the other way.
 */
export function float32BitsToFloat16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is still the right encoding.
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** Starts a GGUF file: magic, version, counts and the metadata. Returns the alignment in force. */
function writeHeader(sink: ByteSink, input: Pick<GgufInput, 'version' | 'metadata'>, tensorCount: number): number {
  const alignmentEntry = input.metadata.find(([key]) => key === 'general.alignment');
  const alignment = alignmentEntry && alignmentEntry[1].type === 'uint32' ? alignmentEntry[1].value : GGUF_DEFAULT_ALIGNMENT;
  sink.u32(GGUF_MAGIC);
  sink.u32(input.version ?? 3);
  sink.u64(tensorCount);
  sink.u64(input.metadata.length);

  for (const [key, value] of input.metadata) {
    sink.string(key);
    sink.u32(GgufValueType[value.type]);
    if (value.type === 'array') {
      sink.u32(GgufValueType[value.itemType]);
      sink.u64(value.value.length);
      for (const item of value.value) writeScalar(sink, value.itemType, item);
    } else {
      writeScalar(sink, value.type, value.value);
    }
  }
  return alignment;
}

/** A tensor by its header entry alone: any ggml type code of format.ts `ggmlTypes`. */
export interface GgufTensorInfoInput {
  readonly name: string;
  /** ggml order: ne0 (the row length) first. */
  readonly dims: readonly number[];
  readonly typeCode: number;
}

/**
 * Encodes only what precedes a GGUF file's tensor data: the header, the metadata and the tensor
 * infos (offsets laid out as the data would be), padded to the alignment. Readers and
 * llama.cpp's no-allocation estimates need nothing more, so a model's published shape can be
 * planned without its weights (bench/kv.ts); llama.cpp cannot run such a file.
 */
export function encodeGgufHeader(input: { readonly metadata: GgufInput['metadata']; readonly tensors: readonly GgufTensorInfoInput[] }): Buffer {
  const sink = new ByteSink();
  const alignment = writeHeader(sink, input, input.tensors.length);
  let offset = 0;
  for (const tensor of input.tensors) {
    const type = ggmlTypes.get(tensor.typeCode);
    if (!type) throw new Error(`tensor ${tensor.name}: unknown ggml type ${tensor.typeCode}`);
    const count = tensor.dims.reduce((a, b) => a * b, 1);
    if ((tensor.dims[0] ?? 0) % type.blockSize !== 0) throw new Error(`tensor ${tensor.name}: a row of ${tensor.dims[0]} is not whole ${type.name} blocks`);
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const d of tensor.dims) sink.u64(d);
    sink.u32(tensor.typeCode);
    sink.u64(offset);
    offset += (count / type.blockSize) * type.typeSize;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  sink.padTo(alignment);
  return sink.result();
}

/** Encodes a whole GGUF file in memory. Tensors are laid out in the given order, each aligned. */
export function encodeGguf(input: GgufInput): Buffer {
  const sink = new ByteSink();
  const alignment = writeHeader(sink, input, input.tensors.length);

  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of input.tensors) {
    const count = tensor.dims.reduce((a, b) => a * b, 1);
    if (count !== tensor.data.length) throw new Error(`tensor ${tensor.name}: dims say ${count} values, data has ${tensor.data.length}`);
    offsets.push(offset);
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const d of tensor.dims) sink.u64(d);
    sink.u32(tensorTypeCode[tensor.type]);
    sink.u64(offset);
    offset += count * tensorTypeSize[tensor.type];
    offset += (alignment - (offset % alignment)) % alignment;
  }

  sink.padTo(alignment);
  const dataStart = sink.length;
  for (const [i, tensor] of input.tensors.entries()) {
    const at = dataStart + (offsets[i] ?? 0);
    // Padding between tensors is zero bytes (the sink zero-fills on growth).
    while (sink.length < at) sink.u8(0);
    if (tensor.type === 'F32') {
      for (const v of tensor.data) sink.f32(v);
    } else {
      sink.f16(tensor.data);
    }
  }
  sink.padTo(alignment);
  return sink.result();
}

/** mulberry32: a tiny seeded PRNG, so the weights are the same on every machine and Node version. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TinyLlamaOptions {
  readonly layers?: number;
  readonly nEmbd?: number;
  readonly nHead?: number;
  readonly nHeadKv?: number;
  readonly nFf?: number;
  readonly contextLength?: number;
  readonly seed?: number;
  /** Written to `general.architecture` and used as the key prefix. Default "llama". */
  readonly architecture?: string;
  /** `general.name`. Default "Hearth tiny llama". */
  readonly name?: string;
  /** Element type of the matrices (norms are always F32). Default F16. */
  readonly weightType?: WritableTensorType;
  /** Written as `tokenizer.chat_template` when given. */
  readonly chatTemplate?: string;
  /**
   * Makes a scripted model: whatever the prompt, its greedy output is exactly these pieces, in
   * order, then EOS (see `scriptedOutput`). Each piece becomes one normal vocabulary token, so
   * the pieces must be distinct and non-empty. Tests use it to make the model itself emit
   * hostile text (test/e2e/render-safety.spec.ts).
   */
  readonly script?: readonly string[];
}

/** The options `writeTinyLlama` uses when a field is left out. */
export const tinyLlamaDefaults = {
  layers: 4,
  nEmbd: 128,
  nHead: 4,
  nHeadKv: 2,
  nFf: 256,
  contextLength: 8192,
  seed: 1,
  architecture: 'llama',
  name: 'Hearth tiny llama',
  weightType: 'F16',
} as const satisfies Required<Omit<TinyLlamaOptions, 'chatTemplate' | 'script'>>;

/** Token ids of the generated vocabulary. */
export const tinyVocab = {
  unk: 0,
  bos: 1,
  eos: 2,
  /** `<0xNN>` is `firstByte + NN`. */
  firstByte: 3,
  /** The normal token "▁" (a space in SentencePiece). */
  space: 259,
  size: 260,
} as const;

/**
 * Bytes the random model may emit: lowercase letters, space and a little punctuation. Keeping
 * output to these means replies are valid UTF-8 and plain text (no markdown, HTML or control
 * characters), so UI tests can compare what they see with what was streamed.
 */
const emittableBytes = new Set([...'abcdefghijklmnopqrstuvwxyz .,'].map((c) => c.charCodeAt(0)));

/** The embedding dimension reserved for the "never stop, only emit plain text" bias; see `tinyLlamaGguf`. */
const BIAS_DIM = 0;
/** The constant value of BIAS_DIM in every token embedding. */
const BIAS_EMBED = 8;
/** The weight at BIAS_DIM of output rows the model must never choose. */
const FORBIDDEN_LOGIT_WEIGHT = -64;

// Changing any of these three changes a scripted model's bytes: bump GENERATOR_VERSION with it.
/** The value of a script piece's own embedding dimension (see `scriptedOutput`). */
const SCRIPT_EMBED = 1;
/** α: the weight with which piece k+1's output row reads piece k's embedding. */
const SCRIPT_CHAIN_WEIGHT = 3;
/** β: the weight with which the first piece's output row reads BIAS_DIM. */
const SCRIPT_START_WEIGHT = 5;

/**
 * How a scripted model (`TinyLlamaOptions.script`) emits its pieces; the weights do it, not
 * sampling rules, so any sampler that prefers likely tokens follows the script:
 * - every block's output projections (`attn_output`, `ffn_down`) are all zero, so the residual
 *   stream never changes and the final hidden state is the last token's own embedding;
 * - piece k's embedding is SCRIPT_EMBED in dimension 1 + k and zero elsewhere; every other
 *   token's embedding is BIAS_EMBED at BIAS_DIM, random elsewhere, and zero in the pieces'
 *   dimensions, so the two kinds never overlap;
 * - the first piece's output row is SCRIPT_START_WEIGHT at BIAS_DIM: it wins after any prompt,
 *   since a prompt ends in a non-script token;
 * - piece k+1's output row (EOS's for the last piece) is SCRIPT_CHAIN_WEIGHT × piece k's embedding;
 * - every other output row is zero, so every other logit is exactly 0.
 * After rms-normalization a piece's hidden state is √n_embd in its own dimension, so the chain's
 * next token leads by SCRIPT_CHAIN_WEIGHT·√n_embd (34 at n_embd 128) and the first piece by
 * SCRIPT_START_WEIGHT·BIAS_EMBED/rms (about 33): far beyond what temperature or a repeat penalty
 * can undo. writer.test.ts recomputes these margins from the tensors.
 */
export const scriptedOutput = { SCRIPT_EMBED, SCRIPT_CHAIN_WEIGHT, SCRIPT_START_WEIGHT, BIAS_DIM, BIAS_EMBED } as const;

/** A script piece as a SentencePiece vocabulary entry: spaces are written `▁`. */
export function scriptTokenText(piece: string): string {
  return piece.replaceAll(' ', '\u2581');
}

/**
 * Builds the tiny llama model (metadata and tensors) without encoding it; `tinyLlamaGguf`
 * encodes it. The weights are random except for one trick that makes tests controllable: the
 * model never chooses `<unk>`, `<s>`, `</s>` or a byte outside `emittableBytes`, so a reply's
 * length is set by `maxTokens` alone (the UI's Stop test needs long replies). It is done
 * honestly in the weights, not by sampling rules:
 * - embedding dimension BIAS_DIM is the constant BIAS_EMBED in every token embedding;
 * - no block writes to it (row BIAS_DIM of `attn_output` and `ffn_down` is zero) and no block
 *   reads it (the norm weights are zero there), so it reaches `output_norm` unchanged and
 *   positive;
 * - `output.weight` has FORBIDDEN_LOGIT_WEIGHT at BIAS_DIM for the forbidden tokens and 0 for
 *   the others, which pushes their logits far below every other token's.
 * With `script`, the weights follow `scriptedOutput` instead.
 */
export function tinyLlamaModel(options: TinyLlamaOptions = {}): GgufInput {
  const o = { ...tinyLlamaDefaults, ...options };
  const { layers, nEmbd, nHead, nHeadKv, nFf, contextLength, architecture } = o;
  if (nEmbd % nHead !== 0) throw new Error(`nEmbd ${nEmbd} is not a multiple of nHead ${nHead}`);
  if (nHead % nHeadKv !== 0) throw new Error(`nHead ${nHead} is not a multiple of nHeadKv ${nHeadKv}`);
  const script = options.script ?? [];
  if (script.length > 0) {
    if (script.length > nEmbd - 1) throw new Error(`a script of ${script.length} pieces needs nEmbd > ${script.length}`);
    if (script.some((piece) => piece === '')) throw new Error('script pieces must not be empty');
    if (new Set(script.map(scriptTokenText)).size !== script.length) throw new Error('script pieces must be distinct');
  }
  const scripted = script.length > 0;
  const headDim = nEmbd / nHead;
  const nEmbdKv = nHeadKv * headDim;
  const random = mulberry32(o.seed);
  /** Uniform in [-a, a]: standard deviation a/√3. */
  const uniform = (a: number) => (random() * 2 - 1) * a;
  /** A [rows × cols] matrix (ggml dims {cols, rows}) with variance 1/cols, so activations stay O(1). */
  const matrix = (rows: number, cols: number): Float32Array => {
    const a = Math.sqrt(3 / cols);
    const m = new Float32Array(rows * cols);
    for (let i = 0; i < m.length; i++) m[i] = uniform(a);
    return m;
  };
  const norm = (n: number): Float32Array => {
    const v = new Float32Array(n).fill(1);
    v[BIAS_DIM] = 0;
    return v;
  };
  const zeroRow = (m: Float32Array, cols: number, row: number) => m.fill(0, row * cols, (row + 1) * cols);

  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const tokenTypes: number[] = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    tokenTypes.push(6);
  }
  tokens.push('\u2581');
  tokenTypes.push(1);
  const firstPiece = tokens.length;
  for (const piece of script) {
    tokens.push(scriptTokenText(piece));
    tokenTypes.push(1);
  }
  const nVocab = tokens.length;
  /** The embedding dimension that is piece k's alone. */
  const pieceDim = (k: number) => 1 + k;

  const tensors: GgufTensorInput[] = [];
  const tokenEmbd = matrix(nVocab, nEmbd);
  for (let t = 0; t < nVocab; t++) {
    // Unit variance per dimension (rather than 1/n_embd) so BIAS_EMBED is comparable to the rest.
    for (let d = 0; d < nEmbd; d++) tokenEmbd[t * nEmbd + d] = uniform(Math.sqrt(3));
    tokenEmbd[t * nEmbd + BIAS_DIM] = BIAS_EMBED;
    if (!scripted) continue;
    if (t >= firstPiece) {
      zeroRow(tokenEmbd, nEmbd, t);
      tokenEmbd[t * nEmbd + pieceDim(t - firstPiece)] = SCRIPT_EMBED;
    } else {
      tokenEmbd.fill(0, t * nEmbd + pieceDim(0), t * nEmbd + pieceDim(script.length));
    }
  }
  tensors.push({ name: 'token_embd.weight', dims: [nEmbd, nVocab], type: o.weightType, data: tokenEmbd });

  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    const attnOut = matrix(nEmbd, nEmbd);
    zeroRow(attnOut, nEmbd, BIAS_DIM);
    const ffnDown = matrix(nEmbd, nFf);
    zeroRow(ffnDown, nFf, BIAS_DIM);
    if (scripted) {
      attnOut.fill(0);
      ffnDown.fill(0);
    }
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [nEmbd], type: 'F32', data: norm(nEmbd) },
      { name: `${p}attn_q.weight`, dims: [nEmbd, nEmbd], type: o.weightType, data: matrix(nEmbd, nEmbd) },
      { name: `${p}attn_k.weight`, dims: [nEmbd, nEmbdKv], type: o.weightType, data: matrix(nEmbdKv, nEmbd) },
      { name: `${p}attn_v.weight`, dims: [nEmbd, nEmbdKv], type: o.weightType, data: matrix(nEmbdKv, nEmbd) },
      { name: `${p}attn_output.weight`, dims: [nEmbd, nEmbd], type: o.weightType, data: attnOut },
      { name: `${p}ffn_norm.weight`, dims: [nEmbd], type: 'F32', data: norm(nEmbd) },
      { name: `${p}ffn_gate.weight`, dims: [nEmbd, nFf], type: o.weightType, data: matrix(nFf, nEmbd) },
      { name: `${p}ffn_up.weight`, dims: [nEmbd, nFf], type: o.weightType, data: matrix(nFf, nEmbd) },
      { name: `${p}ffn_down.weight`, dims: [nFf, nEmbd], type: o.weightType, data: ffnDown },
    );
  }

  const outputNorm = new Float32Array(nEmbd).fill(1);
  tensors.push({ name: 'output_norm.weight', dims: [nEmbd], type: 'F32', data: outputNorm });
  const output = matrix(nVocab, nEmbd);
  if (scripted) {
    output.fill(0);
    output[firstPiece * nEmbd + BIAS_DIM] = SCRIPT_START_WEIGHT;
    for (let k = 0; k < script.length; k++) {
      const next = k + 1 < script.length ? firstPiece + k + 1 : tinyVocab.eos;
      output[next * nEmbd + pieceDim(k)] = SCRIPT_CHAIN_WEIGHT * SCRIPT_EMBED;
    }
  } else {
    for (let t = 0; t < nVocab; t++) {
      const isEmittable = t >= tinyVocab.firstByte && t < tinyVocab.firstByte + 256 && emittableBytes.has(t - tinyVocab.firstByte);
      output[t * nEmbd + BIAS_DIM] = isEmittable ? 0 : FORBIDDEN_LOGIT_WEIGHT;
    }
  }
  tensors.push({ name: 'output.weight', dims: [nEmbd, nVocab], type: o.weightType, data: output });

  const a = architecture;
  const u32 = (value: number): GgufMetaValue => ({ type: 'uint32', value });
  const metadata: Array<readonly [string, GgufMetaValue]> = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: o.name }],
    ['general.alignment', u32(GGUF_DEFAULT_ALIGNMENT)],
    // llama_ftype: 0 = all F32, 1 = mostly F16.
    ['general.file_type', u32(o.weightType === 'F16' ? 1 : 0)],
    [`${a}.context_length`, u32(contextLength)],
    [`${a}.embedding_length`, u32(nEmbd)],
    [`${a}.block_count`, u32(layers)],
    [`${a}.feed_forward_length`, u32(nFf)],
    [`${a}.attention.head_count`, u32(nHead)],
    [`${a}.attention.head_count_kv`, u32(nHeadKv)],
    [`${a}.attention.layer_norm_rms_epsilon`, { type: 'float32', value: 1e-5 }],
    [`${a}.rope.dimension_count`, u32(headDim)],
    [`${a}.rope.freq_base`, { type: 'float32', value: 10000 }],
    [`${a}.vocab_size`, u32(nVocab)],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: tokens.map(() => 0) }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: tokenTypes }],
    ['tokenizer.ggml.unknown_token_id', u32(tinyVocab.unk)],
    ['tokenizer.ggml.bos_token_id', u32(tinyVocab.bos)],
    ['tokenizer.ggml.eos_token_id', u32(tinyVocab.eos)],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
  if (o.chatTemplate !== undefined) metadata.push(['tokenizer.chat_template', { type: 'string', value: o.chatTemplate }]);

  return { metadata, tensors };
}

/** The tiny llama model as GGUF bytes (see `tinyLlamaModel`). */
export function tinyLlamaGguf(options: TinyLlamaOptions = {}): Buffer {
  return encodeGguf(tinyLlamaModel(options));
}

/**
 * Writes the tiny llama model to `path`, atomically: it is written to a temporary file beside
 * it and renamed, so a concurrent reader never sees a partial file.
 */
export async function writeTinyLlama(path: string, options: TinyLlamaOptions = {}): Promise<void> {
  const bytes = tinyLlamaGguf(options);
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(temp, bytes);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
