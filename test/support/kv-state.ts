/**
 * Test helpers for the KV codec and frames: llama.cpp sequence state files with KV values shaped
 * like real ones (F16 values of a few magnitudes per dimension, q8_0 blocks with sensible scales),
 * written from the layout in docs/decisions/state-file-layout.md independently of the codec, and
 * cut into chunks with it.
 */
import { Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES } from '../../engine/kv/kernels.ts';
import { cutChunks, parseStateFile, type CutResult, type StateShape } from '../../engine/kv/codec.ts';
import { mulberry32 } from './gguf-writer.ts';

export const GGML_F16 = 1;
export const GGML_Q8_0 = 8;
export const GGML_BF16 = 30;

export interface SyntheticLayer {
  readonly kType: number;
  /** Values per K row (n_embd_k_gqa). */
  readonly kWidth: number;
  readonly vType: number;
  readonly vWidth: number;
}

export interface SyntheticState {
  readonly tokens: number;
  readonly layers: readonly SyntheticLayer[];
  /** Flash attention off: V transposed (V must then be F16 or BF16). */
  readonly vTrans: boolean;
  readonly seed?: number;
  /** Put a NaN in layer `layer`'s K (or V) at token `token`. */
  readonly nan?: { readonly layer: number; readonly which: 'k' | 'v'; readonly token: number };
}

/** A small deterministic PRNG: the test-model generator's. */
export const prng = mulberry32;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → f16 bits, round to nearest (ties away: test data only needs plausible values). */
export function toF16(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  f32[0] = value;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x33000000) return sign;
  if (abs < 0x38800000) return sign | Math.round(Math.abs(value) * 2 ** 24);
  return sign | ((abs - 0x38000000 + 0x1000) >>> 13);
}

/** f16 bits → number. */
export function fromF16(h: number): number {
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m === 0 ? Infinity : NaN) : (1024 + m) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

function rowBytes(type: number, width: number): number {
  if (type === GGML_Q8_0) return (width / Q8_0_BLOCK_VALUES) * Q8_0_BLOCK_BYTES;
  return 2 * width;
}

/** One row of `width` values of `type` for (layer, which, token): F16-like magnitudes per dimension. */
function writeRow(out: Buffer, at: number, type: number, width: number, rand: () => number, scales: Float32Array): void {
  if (type === GGML_Q8_0) {
    for (let b = 0; b < width / Q8_0_BLOCK_VALUES; b++) {
      const o = at + b * Q8_0_BLOCK_BYTES;
      out.writeUInt16LE(toF16(0.01 + rand() * 0.05), o);
      for (let j = 0; j < Q8_0_BLOCK_VALUES; j++) out.writeInt8(Math.round((rand() + rand() + rand() - 1.5) * 80), o + 2 + j);
    }
    return;
  }
  for (let j = 0; j < width; j++) {
    const value = (rand() + rand() + rand() + rand() - 2) * scales[j]!;
    const h = toF16(value);
    // BF16 keeps the top half of a float32.
    if (type === GGML_BF16) {
      f32[0] = value;
      out.writeUInt16LE(u32[0]! >>> 16, at + 2 * j);
    } else out.writeUInt16LE(h, at + 2 * j);
  }
}

/** A state file (format 3, one stream, cells in position order) of `spec.tokens` tokens. */
export function syntheticStateFile(spec: SyntheticState): Buffer {
  const rand = prng(spec.seed ?? 1);
  const n = spec.tokens;
  const layers = spec.layers;
  let size = 12 + 4 * n + 4 + 4 + 12 * n + 8;
  for (const l of layers) size += 12 + n * rowBytes(l.kType, l.kWidth) + (spec.vTrans ? 12 : 12) + n * rowBytes(l.vType, l.vWidth);
  const out = Buffer.alloc(size);
  let at = 0;
  at = out.writeUInt32LE(0x67677371, at);
  at = out.writeUInt32LE(3, at);
  at = out.writeUInt32LE(n, at);
  for (let i = 0; i < n; i++) at = out.writeInt32LE(3 + ((i * 37) % 250), at);
  at = out.writeUInt32LE(1, at);
  at = out.writeUInt32LE(n, at);
  for (let i = 0; i < n; i++) {
    at = out.writeInt32LE(i, at);
    at = out.writeUInt32LE(1, at);
    at = out.writeInt32LE(0, at);
  }
  at = out.writeUInt32LE(spec.vTrans ? 1 : 0, at);
  at = out.writeUInt32LE(layers.length, at);
  // Per-dimension magnitudes, as real K/V have (a few outlier dimensions).
  const scalesOf = (width: number): Float32Array => Float32Array.from({ length: width }, () => (rand() < 0.05 ? 8 : 0.3 + rand()));
  const nanBytes = (l: number, which: 'k' | 'v', token: number): boolean => spec.nan !== undefined && spec.nan.layer === l && spec.nan.which === which && spec.nan.token === token;
  layers.forEach((l, li) => {
    at = out.writeInt32LE(l.kType, at);
    at = out.writeBigUInt64LE(BigInt(rowBytes(l.kType, l.kWidth)), at);
    const scales = scalesOf(l.kWidth);
    for (let i = 0; i < n; i++) {
      writeRow(out, at, l.kType, l.kWidth, rand, scales);
      if (nanBytes(li, 'k', i)) out.writeUInt16LE(0x7e00, at);
      at += rowBytes(l.kType, l.kWidth);
    }
  });
  layers.forEach((l, li) => {
    at = out.writeInt32LE(l.vType, at);
    const scales = scalesOf(l.vWidth);
    if (!spec.vTrans) {
      at = out.writeBigUInt64LE(BigInt(rowBytes(l.vType, l.vWidth)), at);
      for (let i = 0; i < n; i++) {
        writeRow(out, at, l.vType, l.vWidth, rand, scales);
        if (nanBytes(li, 'v', i)) out.writeUInt16LE(0x7e00, at);
        at += rowBytes(l.vType, l.vWidth);
      }
      return;
    }
    at = out.writeUInt32LE(2, at);
    at = out.writeUInt32LE(l.vWidth, at);
    const rows = Buffer.alloc(n * 2 * l.vWidth);
    for (let i = 0; i < n; i++) writeRow(rows, i * 2 * l.vWidth, l.vType, l.vWidth, rand, scales);
    for (let j = 0; j < l.vWidth; j++) {
      for (let i = 0; i < n; i++) {
        out.writeUInt16LE(nanBytes(li, 'v', i) && j === 0 ? 0x7e00 : rows.readUInt16LE(2 * (i * l.vWidth + j)), at);
        at += 2;
      }
    }
  });
  if (at !== size) throw new Error(`syntheticStateFile: wrote ${at} of ${size} bytes`);
  return out;
}

/** `syntheticStateFile` parsed and cut into `chunkTokens`-token chunks (throws on failure: tests only). */
export function syntheticChunks(spec: SyntheticState, chunkTokens: number): CutResult & { readonly shape: StateShape; readonly file: Buffer } {
  const file = syntheticStateFile(spec);
  const parsed = parseStateFile(file);
  if (!parsed.ok) throw new Error(parsed.error.message);
  const cut = cutChunks(parsed.value, chunkTokens);
  if (!cut.ok) throw new Error(cut.error.message);
  return { ...cut.value, file };
}

export const f16Layers = (count: number, width = 64): SyntheticLayer[] => Array.from({ length: count }, () => ({ kType: GGML_F16, kWidth: width, vType: GGML_F16, vWidth: width }));
export const q8Layers = (count: number, width = 64): SyntheticLayer[] => Array.from({ length: count }, () => ({ kType: GGML_Q8_0, kWidth: width, vType: GGML_Q8_0, vWidth: width }));
