/**
 * The KV codec's hot loops: the byte transforms and the checksum, behind one interface
 * with two implementations that give identical bytes: the Node-API addon in `native/` and the
 * TypeScript fallback in `kernels-fallback.ts`. Nothing here knows about chunks or frames
 * (frame.ts); these are plain array transforms over caller-owned buffers, so neither side
 * allocates on the restore path.
 *
 * Byte order is little-endian throughout (every platform Hearth ships on).
 */
import type { KvCodecInfo } from '../contract/index.ts';

/** Bytes of one q8_0 block: an f16 scale, then 32 int8 values (llama.cpp's block_q8_0). */
export const Q8_0_BLOCK_BYTES = 34;
/** Values per q8_0 block. */
export const Q8_0_BLOCK_VALUES = 32;

/** The q8_0 size of `values` f16 values: whole blocks, the last one zero-padded. */
export function q8_0Bytes(values: number): number {
  return Math.ceil(values / Q8_0_BLOCK_VALUES) * Q8_0_BLOCK_BYTES;
}

export interface CodecKernels {
  readonly kind: KvCodecInfo['kernels'];
  /**
   * Splits 16-bit values into their low and high bytes: `lo[i] = src[2i]`, `hi[i] = src[2i+1]`.
   * `src.length` is even; `lo` and `hi` have `src.length / 2` bytes each.
   */
  shuffle16(src: Uint8Array, lo: Uint8Array, hi: Uint8Array): void;
  /** The inverse of `shuffle16`: `dst[2i] = lo[i]`, `dst[2i+1] = hi[i]`. */
  unshuffle16(lo: Uint8Array, hi: Uint8Array, dst: Uint8Array): void;
  /**
   * f16 values (`src.length / 2` of them) → q8_0 blocks in `dst` (`q8_0Bytes(values)` bytes),
   * with llama.cpp's reference rounding (quantize_row_q8_0_ref: d = amax / 127 and id = 1 / d in
   * float32, q = roundf(x × id) half away from zero, d stored as f16); a final partial block is padded with
   * zeros. Returns false, leaving `dst` unspecified, when `src` holds a NaN or an infinity (the
   * caller then stores those values losslessly).
   */
  f16ToQ8_0(src: Uint8Array, dst: Uint8Array): boolean;
  /**
   * q8_0 blocks → f16 values: `dst.length / 2` values (the last block may be partial); each value
   * is `q × d` in float32, rounded to f16 to nearest, ties to even.
   */
  q8_0ToF16(src: Uint8Array, dst: Uint8Array): void;
  /**
   * CRC-32C (Castagnoli, reflected, as in iSCSI and ext4): `crc32c(b, crc32c(a)) ===
   * crc32c(a ‖ b)`, like zlib's crc32(data, value). Check value: crc32c("123456789") = 0xE3069283.
   */
  crc32c(data: Uint8Array, seed?: number): number;
}
