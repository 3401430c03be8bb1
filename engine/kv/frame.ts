/**
 * Compressed KV chunks: how a chunk payload (codec.ts, "HKVC") is stored on disk. KV compresses
 * poorly as a whole (near-random mantissa bytes), so a frame splits each section by how well it
 * compresses and sends only the compressible part through zstd; the frame layout and its reasons
 * are described below the imports.
 */
import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import type { KvCompression } from '../contract/index.ts';
import { err, ok, type Result, errorText } from '../contract/index.ts';
import { CHUNK_HEADER_BYTES, CHUNK_MAGIC, checkChunkHeader, readChunkHeader, type StateShape } from './codec.ts';
import { q8_0Bytes, type CodecKernels } from './kernels.ts';

/**
 * A stored payload is either the raw payload itself (mode `off`, every chunk written before
 * compression existed, and any chunk that would not get smaller) or a frame that decodes to it:
 *
 * | offset | type | field |
 * |---|---|---|
 * | 0 | u32 | magic 0x5A564B48 (the bytes "HKVZ") |
 * | 4 | u16 | frame version (1) |
 * | 6 | u8 | mode: 1 lossless, 2 lossy (some F16 section is stored as q8_0) |
 * | 7 | u8 | 0 |
 * | 8 | u32 | raw length: the size of the HKVC payload it decodes to |
 * | 12 | u32 | R stream bytes (stored as they are) |
 * | 16 | u32 | Z stream bytes as stored (one zstd frame) |
 * | 20 | u32 | Z stream bytes decoded |
 * | 24 | u16 | part count P |
 * | 26 | u16 | 0 |
 * | 28 | P × 8 | parts: u8 kind, u8 stream A, u8 stream B, u8 0, u32 output bytes |
 * | | | the R stream, then the Z stream |
 *
 * Parts tile the raw payload in order, and each consumes its streams in order:
 * - `copy`: its output bytes from stream A;
 * - `shuffle16`: 16-bit values whose low bytes come from stream A and high bytes from stream B
 *   (kernels.ts `unshuffle16`), outBytes / 2 of each;
 * - `q8_0`: `q8_0Bytes(outBytes / 2)` bytes of q8_0 blocks from stream A, expanded to f16.
 *
 * Streams: 0 = R, 1 = Z. Version 1's encoder writes the payload header and tokens as a copy from R
 * (the decoder requires it: it checks that header before it writes anything), F16 and BF16
 * sections as shuffle16 with the low bytes in R and the high bytes in Z, quantized sections as
 * copies from Z, and in lossy mode F16 sections as q8_0 in Z. Why the low bytes stay raw: they
 * are near-random mantissa bits (zstd gets them to ~0.92 at best, measured on real KV), so only
 * the high bytes (sign, exponent: ~0.6) are worth a pass through zstd, and half the output then
 * never goes through it: decoding runs at about twice zstd's speed.
 *
 * Why one zstd frame per chunk: Node's zstd*Sync calls set up a context each (~tens of µs), and
 * a stream per section would pay that per layer.
 *
 * Lossy mode never re-quantizes a quantized section: llama.cpp stores quantized K/V
 * Hadamard-rotated (docs/decisions/lossy-only-f16.md); it only turns F16 into q8_0 and back. A section
 * holding a NaN or an infinity stays lossless (q8_0 cannot represent it). Frames are never
 * trusted: every header field and part length is checked against the raw layout the payload
 * header implies before a byte is written, so a damaged or hostile frame is an error, never an
 * overrun or a crash.
 */


/** "HKVZ" read as a little-endian u32. */
export const FRAME_MAGIC = 0x5a564b48;
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 28;
export const FRAME_PART_BYTES = 8;

/** The frame's mode byte. */
export const FRAME_MODE_LOSSLESS = 1;
export const FRAME_MODE_LOSSY = 2;

/** Part kinds (0 is never one, so zeroed bytes do not parse as parts). */
export const PART_COPY = 1;
export const PART_SHUFFLE16 = 2;
export const PART_Q8_0 = 3;

const STREAM_R = 0;
const STREAM_Z = 1;

const GGML_F16 = 1;
const GGML_BF16 = 30;

/**
 * zstd level 1. Measured on 4,096 tokens of real KV (austen-byte-6l, Z streams of 256-token
 * chunks, best of 7): the F16 high-byte plane compressed to 0.648 at level 1, 0.646 at 2 and 0.651
 * at 3; q8_0 KV to 0.901, 0.893 and 0.892; encoding ran at 589/475/207 MB/s (F16) and 772/570/544
 * MB/s (q8_0), decoding at about 1.2 GB/s whatever the level. Levels 2–3 save under 1% of the
 * bytes for 20–65% more encode time, on a save that runs after every turn.
 */
export const ZSTD_LEVEL = 1;

/** Does the lossy mode change anything for this shape (is some K or V section F16)? */
export function lossyApplies(shape: StateShape): boolean {
  return shape.layers.some((l) => l.kType === GGML_F16 || l.vType === GGML_F16);
}

/** A byte range of the raw payload and the GGML type of its values (-1: header and tokens). */
interface Section {
  readonly start: number;
  readonly bytes: number;
  readonly type: number;
}

/** The raw payload's sections for `n` tokens, in payload order (codec.ts layout). */
function sections(shape: StateShape, n: number): Section[] {
  const out: Section[] = [{ start: 0, bytes: CHUNK_HEADER_BYTES + 4 * n, type: -1 }];
  let at = CHUNK_HEADER_BYTES + 4 * n;
  for (const layer of shape.layers) {
    // Transposed V is vEmbd runs of n elements of vType: the same values, just in another order.
    for (const [type, rowBytes] of [
      [layer.kType, layer.kRowBytes],
      [layer.vType, layer.vRowBytes],
    ] as const) {
      const bytes = n * rowBytes;
      if (bytes > 0) out.push({ start: at, bytes, type });
      at += bytes;
    }
  }
  return out;
}

interface Part {
  kind: number;
  a: number;
  b: number;
  outBytes: number;
}

const is16Bit = (type: number): boolean => type === GGML_F16 || type === GGML_BF16;

/**
 * Encodes a chunk payload (codec.ts layout) for storage. `off` returns the payload itself; so do
 * the other modes when the frame would not be smaller (it then decodes with no copy at all).
 * Never throws.
 */
export function encodeChunk(shape: StateShape, payload: Uint8Array, mode: KvCompression, kernels: CodecKernels): Result<Uint8Array> {
  if (mode !== 'off' && mode !== 'lossless' && mode !== 'lossy') return err('INVALID_INPUT', `Unknown KV compression mode ${String(mode)}.`);
  const info = readChunkHeader(payload, shape);
  if (!info.ok) return info;
  if (mode === 'off') return ok(payload);
  if (payload.byteLength > 0xffffffff) return ok(payload);
  try {
    const raw = payload.byteLength;
    // Upper bounds: R gets at most the whole payload, the Z input at most the whole payload too.
    const r = Buffer.allocUnsafeSlow(raw);
    const zIn = Buffer.allocUnsafeSlow(raw);
    let rAt = 0;
    let zAt = 0;
    const parts: Part[] = [];
    const add = (kind: number, a: number, b: number, outBytes: number): void => {
      const last = parts.at(-1);
      // Copies and shuffles work value by value, so neighbours of one kind merge into one part;
      // q8_0 blocks must not straddle sections, so each q8_0 section stays a part of its own.
      if (last && kind !== PART_Q8_0 && last.kind === kind && last.a === a && last.b === b && last.outBytes + outBytes <= 0xffffffff) last.outBytes += outBytes;
      else parts.push({ kind, a, b, outBytes });
    };
    let lossy = false;
    for (const section of sections(shape, info.value.length)) {
      const src = payload.subarray(section.start, section.start + section.bytes);
      if (section.type === -1) {
        r.set(src, rAt);
        rAt += src.byteLength;
        add(PART_COPY, STREAM_R, 0, src.byteLength);
        continue;
      }
      if (mode === 'lossy' && section.type === GGML_F16) {
        const q = q8_0Bytes(src.byteLength / 2);
        if (kernels.f16ToQ8_0(src, zIn.subarray(zAt, zAt + q))) {
          zAt += q;
          lossy = true;
          add(PART_Q8_0, STREAM_Z, 0, src.byteLength);
          continue;
        }
        // A NaN or an infinity: q8_0 cannot hold it, so this section stays lossless.
      }
      if (is16Bit(section.type)) {
        const half = src.byteLength / 2;
        kernels.shuffle16(src, r.subarray(rAt, rAt + half), zIn.subarray(zAt, zAt + half));
        rAt += half;
        zAt += half;
        add(PART_SHUFFLE16, STREAM_R, STREAM_Z, src.byteLength);
        continue;
      }
      zIn.set(src, zAt);
      zAt += src.byteLength;
      add(PART_COPY, STREAM_Z, 0, src.byteLength);
    }
    if (parts.length > 0xffff) return ok(payload);
    const z =
      zAt === 0
        ? new Uint8Array(0)
        : zstdCompressSync(zIn.subarray(0, zAt), {
            params: { [zlibConstants.ZSTD_c_compressionLevel]: ZSTD_LEVEL, [zlibConstants.ZSTD_c_checksumFlag]: 0 },
          });
    const size = FRAME_HEADER_BYTES + FRAME_PART_BYTES * parts.length + rAt + z.byteLength;
    if (size >= raw) return ok(payload);
    const frame = Buffer.allocUnsafeSlow(size);
    frame.writeUInt32LE(FRAME_MAGIC, 0);
    frame.writeUInt16LE(FRAME_VERSION, 4);
    frame.writeUInt8(lossy ? FRAME_MODE_LOSSY : FRAME_MODE_LOSSLESS, 6);
    frame.writeUInt8(0, 7);
    frame.writeUInt32LE(raw, 8);
    frame.writeUInt32LE(rAt, 12);
    frame.writeUInt32LE(z.byteLength, 16);
    frame.writeUInt32LE(zAt, 20);
    frame.writeUInt16LE(parts.length, 24);
    frame.writeUInt16LE(0, 26);
    let at = FRAME_HEADER_BYTES;
    for (const part of parts) {
      frame.writeUInt8(part.kind, at);
      frame.writeUInt8(part.a, at + 1);
      frame.writeUInt8(part.b, at + 2);
      frame.writeUInt8(0, at + 3);
      frame.writeUInt32LE(part.outBytes, at + 4);
      at += FRAME_PART_BYTES;
    }
    frame.set(r.subarray(0, rAt), at);
    frame.set(z, at + rAt);
    return ok(frame);
  } catch (error) {
    return err('INTERNAL', `The KV chunk could not be encoded: ${errorText(error)}`);
  }
}

/** What a frame's header and parts say, all lengths checked against each other. */
interface FrameLayout {
  readonly mode: number;
  readonly raw: number;
  readonly rStart: number;
  readonly rBytes: number;
  readonly zStart: number;
  readonly zStored: number;
  readonly zDecoded: number;
  readonly parts: readonly Part[];
}

const bad = <T>(why: string): Result<T> => err('INVALID_INPUT', `Invalid compressed KV chunk: ${why}.`);

/** Parses and cross-checks a frame's header and part table (not yet against the raw layout). */
function readFrame(stored: Uint8Array): Result<FrameLayout> {
  if (stored.byteLength < FRAME_HEADER_BYTES) return bad(`${stored.byteLength} bytes is shorter than its header`);
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) return bad('wrong magic');
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) return err('NOT_SUPPORTED', `Compressed KV chunk version ${version} is not ${FRAME_VERSION}: it was written by a newer Hearth.`);
  const mode = view.getUint8(6);
  if (mode !== FRAME_MODE_LOSSLESS && mode !== FRAME_MODE_LOSSY) return bad(`unknown mode ${mode}`);
  if (view.getUint8(7) !== 0 || view.getUint16(26, true) !== 0) return bad('reserved header bytes are set');
  const raw = view.getUint32(8, true);
  const rBytes = view.getUint32(12, true);
  const zStored = view.getUint32(16, true);
  const zDecoded = view.getUint32(20, true);
  const count = view.getUint16(24, true);
  const rStart = FRAME_HEADER_BYTES + FRAME_PART_BYTES * count;
  const zStart = rStart + rBytes;
  if (zStart + zStored !== stored.byteLength) return bad(`${stored.byteLength} bytes where its header implies ${zStart + zStored}`);
  if ((zStored === 0) !== (zDecoded === 0)) return bad('the Z stream is empty on one side only');
  const parts: Part[] = [];
  let out = 0;
  const used = [0, 0];
  for (let i = 0; i < count; i++) {
    const at = FRAME_HEADER_BYTES + FRAME_PART_BYTES * i;
    const part: Part = { kind: view.getUint8(at), a: view.getUint8(at + 1), b: view.getUint8(at + 2), outBytes: view.getUint32(at + 4, true) };
    if (view.getUint8(at + 3) !== 0) return bad(`part ${i} has a reserved byte set`);
    if (part.a > STREAM_Z || part.b > STREAM_Z) return bad(`part ${i} names an unknown stream`);
    if (part.outBytes === 0) return bad(`part ${i} is empty`);
    if (part.kind === PART_COPY) {
      if (part.b !== 0) return bad(`part ${i} names a second stream`);
      used[part.a]! += part.outBytes;
    } else if (part.kind === PART_SHUFFLE16) {
      if (part.outBytes % 2 !== 0) return bad(`part ${i} holds an odd number of bytes of 16-bit values`);
      used[part.a]! += part.outBytes / 2;
      used[part.b]! += part.outBytes / 2;
    } else if (part.kind === PART_Q8_0) {
      if (mode !== FRAME_MODE_LOSSY) return bad(`part ${i} is q8_0 in a lossless frame`);
      if (part.b !== 0) return bad(`part ${i} names a second stream`);
      if (part.outBytes % 2 !== 0) return bad(`part ${i} holds an odd number of bytes of f16 values`);
      used[part.a]! += q8_0Bytes(part.outBytes / 2);
    } else {
      return bad(`part ${i} has unknown kind ${part.kind}`);
    }
    out += part.outBytes;
    parts.push(part);
  }
  if (out !== raw) return bad(`its parts make ${out} bytes where its header says ${raw}`);
  if (used[STREAM_R] !== rBytes) return bad(`its parts use ${used[STREAM_R]} bytes of the R stream, which has ${rBytes}`);
  if (used[STREAM_Z] !== zDecoded) return bad(`its parts use ${used[STREAM_Z]} bytes of the Z stream, which decodes to ${zDecoded}`);
  return ok({ mode, raw, rStart, rBytes, zStart, zStored, zDecoded, parts });
}

/**
 * The size of the raw payload a stored payload decodes to, from its header alone: a raw payload's
 * own size, a frame's raw length (its header checked, its body not). Never throws.
 */
export function decodedSize(stored: Uint8Array): Result<number> {
  if (stored.byteLength < 4) return bad(`${stored.byteLength} bytes`);
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === CHUNK_MAGIC) return ok(stored.byteLength);
  if (magic !== FRAME_MAGIC) return bad('neither a KV chunk nor a compressed one');
  if (stored.byteLength < FRAME_HEADER_BYTES) return bad(`${stored.byteLength} bytes is shorter than its header`);
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) return err('NOT_SUPPORTED', `Compressed KV chunk version ${version} is not ${FRAME_VERSION}: it was written by a newer Hearth.`);
  return ok(view.getUint32(8, true));
}

/**
 * Checks every part against the raw layout `header` implies: the first part is the payload
 * header and tokens copied from R; 16-bit transforms only cover 16-bit sections (q8_0 only F16).
 */
function checkParts(shape: StateShape, layout: FrameLayout, n: number): Result<void> {
  const first = layout.parts[0];
  const table = sections(shape, n);
  if (!first || first.kind !== PART_COPY || first.a !== STREAM_R || first.outBytes < table[0]!.bytes) return bad('it does not start with its header and tokens stored as they are');
  let s = 0;
  let at = 0;
  for (const [i, part] of layout.parts.entries()) {
    const end = at + part.outBytes;
    if (part.kind !== PART_COPY) {
      // Every section it covers must be of a 16-bit type (F16 for q8_0).
      if (at % 2 !== 0) return bad(`part ${i} starts at an odd offset`);
      while (table[s]!.start + table[s]!.bytes <= at) s++;
      for (let t = s; t < table.length && table[t]!.start < end; t++) {
        const type = table[t]!.type;
        if (part.kind === PART_Q8_0 ? type !== GGML_F16 : !is16Bit(type)) return bad(`part ${i} applies a 16-bit transform to values of another type`);
      }
    }
    at = end;
  }
  return ok(undefined);
}

/**
 * Decodes a stored payload back to its raw payload (codec.ts layout), checked against `shape`.
 * A raw payload is returned as it is (no copy). A frame is decoded into `out` when it is large
 * enough (the result is then a view of `out`'s start), else into a new buffer; its Z stream
 * passes through one scratch buffer (zstd's output), and everything else goes straight to its
 * place. Nothing is written until every length has been checked. Never throws.
 */
export function decodeChunk(shape: StateShape, stored: Uint8Array, kernels: CodecKernels, out?: Uint8Array): Result<Uint8Array> {
  if (stored.byteLength >= 4 && new DataView(stored.buffer, stored.byteOffset, 4).getUint32(0, true) === CHUNK_MAGIC) {
    const info = readChunkHeader(stored, shape);
    return info.ok ? ok(stored) : info;
  }
  const frame = readFrame(stored);
  if (!frame.ok) return frame;
  const layout = frame.value;
  const r = stored.subarray(layout.rStart, layout.rStart + layout.rBytes);
  const header = checkChunkHeader(r, layout.raw, shape);
  if (!header.ok) return header;
  const parts = checkParts(shape, layout, header.value.length);
  if (!parts.ok) return parts;
  let z: Uint8Array;
  if (layout.zDecoded === 0) {
    z = new Uint8Array(0);
  } else {
    try {
      // One output buffer: chunkSize above the output keeps Node from collecting 16 KiB pieces
      // and concatenating them (a second copy), and the +1 from allocating a second, unused
      // buffer of chunkSize bytes (Node's zlib allocates a fresh one whenever the last fills up).
      z = zstdDecompressSync(stored.subarray(layout.zStart, layout.zStart + layout.zStored), {
        chunkSize: Math.max(64, layout.zDecoded + 1),
        maxOutputLength: layout.zDecoded,
      });
    } catch (error) {
      return bad(`its Z stream does not decode (${errorText(error)})`);
    }
    if (z.byteLength !== layout.zDecoded) return bad(`its Z stream decodes to ${z.byteLength} bytes, not ${layout.zDecoded}`);
  }
  const target = out !== undefined && out.byteLength >= layout.raw ? out.subarray(0, layout.raw) : Buffer.allocUnsafeSlow(layout.raw);
  const streams = [r, z] as const;
  const cursor = [0, 0];
  const take = (stream: number, bytes: number): Uint8Array => {
    const from = cursor[stream]!;
    cursor[stream] = from + bytes;
    return streams[stream as 0 | 1].subarray(from, from + bytes);
  };
  try {
    let at = 0;
    for (const part of layout.parts) {
      const dst = target.subarray(at, at + part.outBytes);
      if (part.kind === PART_COPY) dst.set(take(part.a, part.outBytes));
      else if (part.kind === PART_SHUFFLE16) {
        const lo = take(part.a, part.outBytes / 2);
        kernels.unshuffle16(lo, take(part.b, part.outBytes / 2), dst);
      } else kernels.q8_0ToF16(take(part.a, q8_0Bytes(part.outBytes / 2)), dst);
      at += part.outBytes;
    }
  } catch (error) {
    return err('INTERNAL', `The KV chunk could not be decoded: ${errorText(error)}`);
  }
  const check = readChunkHeader(target, shape);
  return check.ok ? ok(target) : check;
}

/** The frame mode of a stored payload: 'off' for a raw payload, else lossless or lossy; null if neither. */
export function storedMode(stored: Uint8Array): KvCompression | null {
  if (stored.byteLength < 7) return null;
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === CHUNK_MAGIC) return 'off';
  if (magic !== FRAME_MAGIC) return null;
  const mode = view.getUint8(6);
  return mode === FRAME_MODE_LOSSLESS ? 'lossless' : mode === FRAME_MODE_LOSSY ? 'lossy' : null;
}
