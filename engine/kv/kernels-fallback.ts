/**
 * The TypeScript implementation of the codec kernels (kernels.ts): what Hearth uses when the
 * Node-API addon in native/ cannot load. Its output is the reference: the addon must give the
 * same bytes for every input, so every float step here mirrors C's float32 arithmetic exactly
 * (a double product or quotient of two float32 values, rounded once with Math.fround, equals the
 * float32 operation because a double carries more than 2 × 24 + 2 bits).
 *
 * Lengths are checked up front (RangeError): a typed array silently drops writes past its end,
 * which would turn a caller's bug into a corrupt chunk instead of an error.
 */
import { q8_0Bytes, Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES } from './kernels.ts';
import type { CodecKernels } from './kernels.ts';

/** f16 bits → float32 value, for every pattern (NaN patterns are never looked up). */
let f16Table: Float32Array | null = null;

function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let value: number;
    if (exponent === 0) value = mantissa * 2 ** -24;
    else if (exponent === 31) value = mantissa === 0 ? Infinity : NaN;
    else value = (1024 + mantissa) * 2 ** (exponent - 25);
    table[h] = h & 0x8000 ? -value : value;
  }
  f16Table = table;
  return table;
}

/**
 * float32 bits → f16 bits, rounding to nearest, ties to even (what F16C's vcvtps2ph and
 * llama.cpp's GGML_FP32_TO_FP16 do). Values at or past 65520 (halfway to 2^16) become infinity;
 * NaN becomes the quiet NaN 0x7e00 with its sign.
 */
function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return abs > 0x7f800000 ? sign | 0x7e00 : sign | 0x7c00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    // Normal f16: rebias the exponent (127 → 15), then round the 13 dropped mantissa bits; a
    // carry out of the mantissa correctly bumps the exponent.
    return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  // Subnormal f16 (below 2^-14): the result is round(value × 2^24). Below 2^-25 that is 0.
  const exponent = abs >>> 23;
  if (exponent < 102) return sign;
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent;
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

// One float32 scratch viewed as its bits: the cheapest way from a float32 value to its bits.
const scratchF32 = new Float32Array(Q8_0_BLOCK_VALUES);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32ToF16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16(scratchU32[0]!);
}

/** CRC-32C slicing-by-8 tables: table k advances a byte through k further zero bytes. */
let crcTables: Int32Array | null = null;

function crc32cTables(): Int32Array {
  if (crcTables) return crcTables;
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n]!;
    for (let t = 1; t < 8; t++) {
      c = tables[c & 0xff]! ^ (c >>> 8);
      tables[t * 256 + n] = c;
    }
  }
  crcTables = tables;
  return tables;
}

function checkEven(name: string, length: number): void {
  if (length % 2 !== 0) throw new RangeError(`${name}: the f16 buffer has an odd length (${length})`);
}

function checkLength(name: string, what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new RangeError(`${name}: ${what} has ${actual} bytes, expected ${expected}`);
}

/** A Uint16Array over the same bytes when the offset allows one (little-endian platforms only). */
function u16View(bytes: Uint8Array): Uint16Array | null {
  return bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1) : null;
}

function shuffle16(src: Uint8Array, lo: Uint8Array, hi: Uint8Array): void {
  checkEven('shuffle16', src.length);
  const n = src.length >>> 1;
  checkLength('shuffle16', 'lo', lo.length, n);
  checkLength('shuffle16', 'hi', hi.length, n);
  const s16 = u16View(src);
  if (s16) {
    for (let i = 0; i < n; i++) {
      const v = s16[i]!;
      lo[i] = v;
      hi[i] = v >>> 8;
    }
  } else {
    for (let i = 0; i < n; i++) {
      lo[i] = src[2 * i]!;
      hi[i] = src[2 * i + 1]!;
    }
  }
}

function unshuffle16(lo: Uint8Array, hi: Uint8Array, dst: Uint8Array): void {
  checkEven('unshuffle16', dst.length);
  const n = dst.length >>> 1;
  checkLength('unshuffle16', 'lo', lo.length, n);
  checkLength('unshuffle16', 'hi', hi.length, n);
  const d16 = u16View(dst);
  if (d16) {
    for (let i = 0; i < n; i++) d16[i] = lo[i]! | (hi[i]! << 8);
  } else {
    for (let i = 0; i < n; i++) {
      dst[2 * i] = lo[i]!;
      dst[2 * i + 1] = hi[i]!;
    }
  }
}

function f16ToQ8_0(src: Uint8Array, dst: Uint8Array): boolean {
  checkEven('f16ToQ8_0', src.length);
  const values = src.length >>> 1;
  checkLength('f16ToQ8_0', 'dst', dst.length, q8_0Bytes(values));
  const table = f16ToF32Table();
  const s16 = u16View(src);
  const q = new Int8Array(dst.buffer, dst.byteOffset, dst.length);
  const blocks = Math.ceil(values / Q8_0_BLOCK_VALUES);
  const bits = new Uint16Array(Q8_0_BLOCK_VALUES);
  for (let b = 0; b < blocks; b++) {
    const first = b * Q8_0_BLOCK_VALUES;
    const count = Math.min(Q8_0_BLOCK_VALUES, values - first);
    // The f16 magnitudes order like their bit patterns, so the maximum is found on integers.
    let amaxBits = 0;
    for (let j = 0; j < count; j++) {
      const h = s16 ? s16[first + j]! : src[2 * (first + j)]! | (src[2 * (first + j) + 1]! << 8);
      if ((h & 0x7c00) === 0x7c00) return false;
      bits[j] = h;
      const magnitude = h & 0x7fff;
      if (magnitude > amaxBits) amaxBits = magnitude;
    }
    const amax = table[amaxBits]!;
    // quantize_row_q8_0_ref: d = amax / 127 and id = 1 / d in float32, q = roundf(x × id); the
    // padding values are zeros, which never raise amax and quantize to 0.
    const d = Math.fround(amax / 127);
    const id = d === 0 ? 0 : Math.fround(1 / d);
    const out = b * Q8_0_BLOCK_BYTES;
    const dh = f32ToF16(d);
    dst[out] = dh;
    dst[out + 1] = dh >>> 8;
    for (let j = 0; j < count; j++) {
      const x = Math.fround(table[bits[j]!]! * id);
      q[out + 2 + j] = x >= 0 ? Math.floor(x + 0.5) : -Math.floor(0.5 - x);
    }
    for (let j = count; j < Q8_0_BLOCK_VALUES; j++) q[out + 2 + j] = 0;
  }
  return true;
}

function q8_0ToF16(src: Uint8Array, dst: Uint8Array): void {
  checkEven('q8_0ToF16', dst.length);
  const values = dst.length >>> 1;
  checkLength('q8_0ToF16', 'src', src.length, q8_0Bytes(values));
  const table = f16ToF32Table();
  const d16 = u16View(dst);
  const q = new Int8Array(src.buffer, src.byteOffset, src.length);
  const blocks = Math.ceil(values / Q8_0_BLOCK_VALUES);
  for (let b = 0; b < blocks; b++) {
    const first = b * Q8_0_BLOCK_VALUES;
    const count = Math.min(Q8_0_BLOCK_VALUES, values - first);
    const at = b * Q8_0_BLOCK_BYTES;
    const dh = src[at]! | (src[at + 1]! << 8);
    // An int8 times an f16 scale needs at most 19 significant bits, so the double product is
    // the exact float32 product; storing it in the float32 scratch is therefore lossless.
    const d = table[dh]!;
    if ((dh & 0x7c00) === 0x7c00) {
      // A non-finite scale is never written by f16ToQ8_0 (only damaged data has one). Its
      // result is pinned here, because NaN bits differ between CPUs: a NaN scale or 0 × ∞
      // gives 0x7e00; q × ±∞ gives the infinity with the product's sign.
      for (let j = 0; j < count; j++) {
        const v = q[at + 2 + j]!;
        const h = (dh & 0x3ff) !== 0 || v === 0 ? 0x7e00 : ((v < 0 ? 0x8000 : 0) ^ (dh & 0x8000)) | 0x7c00;
        if (d16) d16[first + j] = h;
        else {
          dst[2 * (first + j)] = h;
          dst[2 * (first + j) + 1] = h >>> 8;
        }
      }
      continue;
    }
    for (let j = 0; j < count; j++) scratchF32[j] = q[at + 2 + j]! * d;
    if (d16) {
      for (let j = 0; j < count; j++) d16[first + j] = f32BitsToF16(scratchU32[j]!);
    } else {
      for (let j = 0; j < count; j++) {
        const h = f32BitsToF16(scratchU32[j]!);
        dst[2 * (first + j)] = h;
        dst[2 * (first + j) + 1] = h >>> 8;
      }
    }
  }
}

function crc32c(data: Uint8Array, seed = 0): number {
  const t = crc32cTables();
  let crc = ~seed;
  const n = data.length;
  const whole = n & ~7;
  let i = 0;
  for (; i < whole; i += 8) {
    const a = crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    crc =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < n; i++) crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** The TypeScript kernels: the reference output, about an order of magnitude slower than native. */
export const fallbackKernels: CodecKernels = {
  kind: 'fallback',
  shuffle16,
  unshuffle16,
  f16ToQ8_0,
  q8_0ToF16,
  crc32c,
};
