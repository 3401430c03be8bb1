/**
 * Resolves Settings.kvCompression `auto` to the encoding new KV chunks are written with, by
 * measuring this machine at engine start (docs/decisions/kv-compression-auto.md). The rule: the
 * default disk encoding may not make a restore slower than reading the bytes uncompressed would.
 * So `auto` is `lossless` only where the restore path's lossless decode produces raw bytes at
 * least as fast as the same raw bytes are read back from a file in the KV store's directory
 * (from the page cache: the fastest the disk path can be), and `off` everywhere else. Comparing
 * with a cached read makes the rule strict: lossless must beat the uncompressed path at its
 * best. Both sides are properties of the machine (zstd's speed on one core; what a cached read
 * costs through this file system), so no fixed default keeps the rule everywhere.
 *
 * The measurement runs once per engine process, before the store opens (KvCache.open never sees
 * `auto`), on KV-like data: one chunk payload of a Llama-3-8B-sized F16 layout (32 layers,
 * 1024-wide K and V) of 16 tokens, 2 MiB, cut by the codec. Real chunks are 0.75 MiB (64 tokens
 * of a 0.5B model) to 32 MiB (256 of an 8B one); the figures come out the same at 2, 4 and 8 MiB,
 * while the measurement's own cost grows with the size (on the project's 2-core machine about
 * 60 ms at 2 MiB, 100 ms at 4 MiB, 200 ms at 8 MiB), and it delays every engine start. It never
 * throws: a measurement that fails picks `off`, with the reason.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorText, type KvCompression, type KvCompressionChoice, type KvCompressionSetting } from '../contract/index.ts';
import { chunksDir, tempSuffix } from '../kv/chunk-file.ts';
import { CHUNK_HEADER_BYTES, STATE_VERSION, cutChunks, type ParsedState, type StateShape } from '../kv/codec.ts';
import { decodeChunk, encodeChunk } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { readIntoSync } from '../kv/store-fs.ts';

/** What the two restore paths did with the same raw bytes, in raw bytes per second. */
export interface RestoreThroughput {
  /** `decodeChunk` of the lossless frame: raw payload bytes out per second (best repetition). */
  readonly decodeBytesPerSec: number;
  /** Reading the raw payload back from a file just written (page cache), per second (best repetition). */
  readonly readBytesPerSec: number;
}

/** A measurement's outcome: the figures, or why there are none. */
export type Measured = { readonly ok: true; readonly value: RestoreThroughput } | { readonly ok: false; readonly reason: string };

const GGML_F16 = 1;
const LAYERS = 32;
/** Values per K (and V) row: 8 KV heads × 128, as in Llama 3 8B. */
const WIDTH = 1024;
/** 2 MiB of K/V: see the file comment for why not more. */
const TOKENS = 16;
/**
 * Repetitions of each path; the best counts (the first also touches its output buffer's pages,
 * and on a shared machine any one may lose its core for a while).
 */
const REPEATS = 3;

/** "0.71 GB/s"-style figures: two significant digits are all a 2× decision needs. */
export function gbPerSec(bytesPerSec: number): string {
  const gb = bytesPerSec / 1e9;
  return `${gb < 1 ? gb.toFixed(2) : gb < 10 ? gb.toFixed(1) : gb.toFixed(0)} GB/s`;
}

/**
 * The rule, on figures already measured: `lossless` when decoding keeps up with reading (equal
 * counts: the smaller file then reads faster too), else `off`. A failed or meaningless
 * measurement is `off`: compression must prove it does not slow restores down.
 */
export function decideCompression(measured: Measured): { readonly applied: KvCompression; readonly reason: string } {
  if (!measured.ok) return { applied: 'off', reason: `the measurement failed (${measured.reason})` };
  const { decodeBytesPerSec: decode, readBytesPerSec: read } = measured.value;
  if (!(Number.isFinite(decode) && decode > 0 && Number.isFinite(read) && read > 0)) {
    return { applied: 'off', reason: `the measurement failed (decoding ${decode} B/s, reading ${read} B/s)` };
  }
  return decode >= read
    ? { applied: 'lossless', reason: `decoding ${gbPerSec(decode)} keeps up with reading ${gbPerSec(read)}` }
    : { applied: 'off', reason: `decoding ${gbPerSec(decode)} is slower than reading ${gbPerSec(read)}` };
}

/**
 * Settings.kvCompression as the engine applies it. A fixed setting is used as it is (nothing is
 * measured); `auto` measures (`measure`) and applies the rule. Never throws.
 */
export function chooseCompression(setting: KvCompressionSetting, measure: () => Measured): KvCompressionChoice {
  if (setting !== 'auto') return { setting, applied: setting };
  let measured: Measured;
  try {
    measured = measure();
  } catch (error) {
    measured = { ok: false, reason: errorText(error) };
  }
  const { applied, reason } = decideCompression(measured);
  return { setting, applied, reason, ...(measured.ok ? { measured: measured.value } : {}) };
}

/** The measurement's layout: Llama 3 8B's per-layer K/V widths in F16, flash attention on. */
const probeShape: StateShape = {
  stateVersion: STATE_VERSION,
  nStream: 1,
  vTrans: false,
  layers: Array.from({ length: LAYERS }, () => ({ kType: GGML_F16, kRowBytes: 2 * WIDTH, vType: GGML_F16, vRowBytes: 2 * WIDTH, vElementBytes: 0, vEmbd: 0 })),
};

/**
 * Fills `out` with K/V-like F16 values: random signs and mantissas, exponents spread over four
 * binades (magnitudes 1/8 to 2). What matters for the decode's speed is the high bytes (sign,
 * exponent, top mantissa bits), the only ones zstd sees: here they carry ~5 bits in 8, which
 * zstd gets to about 0.63, as it does real KV's (~0.6); nothing repeats, so zstd finds no match a
 * real cache would not offer. The low bytes are stored as they are, whatever they hold. One
 * xorshift32 word makes two values: a value-by-value loop would cost more than the whole
 * measurement may take.
 */
function fillKvLike(out: Uint8Array): void {
  // Whole 32-bit words only: a byte or two either side stay as they are.
  const skip = (4 - (out.byteOffset % 4)) % 4;
  const words = new Uint32Array(out.buffer, out.byteOffset + skip, (out.byteLength - skip) >>> 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // Per value: exponent field 0b011xx (12..15); sign and the other bits as drawn.
    words[i] = (x & 0x8fff8fff) | 0x30003000;
  }
}

/**
 * One chunk payload of the probe shape, cut by the codec from a state of zeros and then filled
 * with K/V-like values in place: filling the state first would touch twice the memory (page
 * faults are a large part of this measurement's own cost on a small VM).
 */
function probePayload(): Uint8Array {
  const rowBytes = 2 * WIDTH;
  const parsed: ParsedState = {
    shape: probeShape,
    tokens: Int32Array.from({ length: TOKENS }, (_, i) => 1000 + i),
    stream: 0,
    seqId: 0,
    cellCount: TOKENS,
    positions: Int32Array.from({ length: TOKENS }, (_, i) => i),
    bytesPerCell: LAYERS * 2 * rowBytes,
    layers: Array.from({ length: LAYERS }, (_, l) => ({ kOffset: 2 * l * TOKENS * rowBytes, vOffset: (2 * l + 1) * TOKENS * rowBytes })),
    bytes: new Uint8Array(LAYERS * 2 * TOKENS * rowBytes),
  };
  const cut = cutChunks(parsed, TOKENS);
  if (!cut.ok) throw new Error(cut.error.message);
  const payload = cut.value.chunks[0]?.payload;
  if (!payload) throw new Error('the probe state cut into no chunk');
  const values = CHUNK_HEADER_BYTES + 4 * TOKENS;
  fillKvLike(payload.subarray(values));
  return payload;
}

function best(repeats: number, run: () => void): number {
  let fastest = Infinity;
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    run();
    fastest = Math.min(fastest, performance.now() - started);
  }
  return fastest / 1000;
}

/**
 * Measures both restore paths on this machine (see the file comment). The file is written into
 * the store's chunk directory, so that it lies on the store's file system, under a temp file's
 * name, so that the store's sweep at open removes it should this process die before it does.
 * Never throws.
 */
export function measureRestorePaths(root: string, kernels: CodecKernels, repeats = REPEATS): Measured {
  let file: string | null = null;
  try {
    const payload = probePayload();
    const frame = encodeChunk(probeShape, payload, 'lossless', kernels);
    if (!frame.ok) return { ok: false, reason: frame.error.message };
    if (frame.value === payload) return { ok: false, reason: 'the lossless encoding did not make the probe smaller' };
    // Decoded into a reused buffer, as a restore does (its decode buffer is kept between chunks).
    const out = new Uint8Array(payload.byteLength);
    let decodeProblem: string | null = null;
    const decodeSeconds = best(repeats, () => {
      const decoded = decodeChunk(probeShape, frame.value, kernels, out);
      if (!decoded.ok) decodeProblem = decoded.error.message;
    });
    if (decodeProblem !== null) return { ok: false, reason: decodeProblem };
    if (Buffer.compare(out, payload) !== 0) return { ok: false, reason: 'the lossless decode did not give the probe back' };

    const dir = chunksDir(root);
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.compression-probe.${process.pid}${tempSuffix}`);
    file = probe;
    writeFileSync(probe, payload);
    // Into the decode's buffer, already touched: a restore reads into a buffer it reuses too.
    // The store's own synchronous read (open, read, close), as its restore path reads a chunk.
    let readProblem: string | null = null;
    const readSeconds = best(repeats, () => {
      const got = readIntoSync(probe, out);
      if (got !== out.byteLength) readProblem = `the probe file gave ${got} of ${out.byteLength} bytes`;
    });
    if (readProblem !== null) return { ok: false, reason: readProblem };
    return { ok: true, value: { decodeBytesPerSec: payload.byteLength / decodeSeconds, readBytesPerSec: payload.byteLength / readSeconds } };
  } catch (error) {
    return { ok: false, reason: errorText(error) };
  } finally {
    try {
      if (file !== null) rmSync(file, { force: true });
    } catch {
      // Left for the store's sweep at open (a temp file's name).
    }
  }
}
