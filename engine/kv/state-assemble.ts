/**
 * Assembling chunk payloads back into a version 3 sequence state file that llama.cpp's
 * `loadStateFromFile` accepts: the tokens, cells at positions 0..N-1, and the K/V rows (the
 * transposed V layout rebuilt when flash attention is off). See
 * docs/decisions/state-file-layout.md for the file's fields.
 */
import { closeSync, openSync, writevSync } from 'node:fs';
import { err, ok, type Result, errorText } from '../contract/index.ts';
import { CHUNK_HEADER_BYTES, bytesPerToken, readChunkHeader } from './chunk-payload.ts';
import { allocateLarge } from './kernels-load.ts';
import { MAX_STREAMS, STATE_MAGIC, type StateShape } from './state-file.ts';

/** Size of the state file `assembleStateFile` builds for `tokens` tokens. */
export function stateFileSize(shape: StateShape, tokens: number): number {
  const head = 12 + 4 * tokens + 4 + 4 * shape.nStream;
  if (tokens === 0) return head;
  return head + 12 * tokens + 8 + 24 * shape.layers.length + tokens * bytesPerToken(shape);
}

export interface AssembleOptions {
  /** The stream the cells go in (default 0; llama.cpp loads them into the target sequence's stream whichever it is). */
  readonly stream?: number;
  /** The sequence id written into the cell metadata (default 0; llama.cpp ignores it on load). */
  readonly seqId?: number;
}

interface Plan {
  readonly shape: StateShape;
  readonly parts: readonly { readonly payload: Uint8Array; readonly length: number }[];
  readonly tokens: number;
  readonly stream: number;
  readonly seqId: number;
}

function plan(shape: StateShape, chunks: readonly Uint8Array[], tail: Uint8Array | null | undefined, options: AssembleOptions): Result<Plan> {
  const stream = options.stream ?? 0;
  const seqId = options.seqId ?? 0;
  if (!Number.isInteger(stream) || stream < 0 || stream >= shape.nStream) return err('INVALID_INPUT', `Stream ${stream} is outside 0..${shape.nStream - 1}.`);
  if (!Number.isInteger(seqId) || seqId < 0 || seqId >= MAX_STREAMS) return err('INVALID_INPUT', `Sequence id ${seqId} is out of range.`);
  const all = tail ? [...chunks, tail] : chunks;
  const parts: { payload: Uint8Array; length: number }[] = [];
  let tokens = 0;
  for (const [i, payload] of all.entries()) {
    const info = readChunkHeader(payload, shape);
    if (!info.ok) return info;
    if (info.value.start !== tokens) {
      return err('INVALID_INPUT', `KV chunk ${i} starts at token ${info.value.start}, not ${tokens}: the chunks are not one contiguous prefix.`);
    }
    tokens += info.value.length;
    if (tokens > 0x7fffffff) return err('INVALID_INPUT', 'Too many tokens for one state file.');
    parts.push({ payload, length: info.value.length });
  }
  return ok({ shape, parts, tokens, stream, seqId });
}

/**
 * The state file's bytes in order, as views of the payloads wherever possible (K rows, V rows,
 * transposed V runs) and small new buffers for headers and cell metadata.
 */
function* pieces(p: Plan): Generator<Uint8Array> {
  const { shape, parts, tokens: n } = p;
  const head = Buffer.allocUnsafe(12);
  head.writeUInt32LE(STATE_MAGIC, 0);
  head.writeUInt32LE(shape.stateVersion, 4);
  head.writeUInt32LE(n, 8);
  yield head;
  for (const part of parts) yield part.payload.subarray(CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + 4 * part.length);

  if (n === 0) {
    // A sequence without cells: every stream is empty and llama.cpp writes nothing more.
    const streams = Buffer.alloc(4 + 4 * shape.nStream);
    streams.writeUInt32LE(shape.nStream, 0);
    yield streams;
    return;
  }
  // The streams before ours are empty; then ours with its cells, metadata and data.
  const meta = Buffer.alloc(4 + 4 * (p.stream + 1) + 12 * n + 8);
  let at = meta.writeUInt32LE(shape.nStream, 0);
  at += 4 * p.stream;
  at = meta.writeUInt32LE(n, at);
  for (let i = 0; i < n; i++) {
    at = meta.writeInt32LE(i, at);
    at = meta.writeUInt32LE(1, at);
    at = meta.writeInt32LE(p.seqId, at);
  }
  at = meta.writeUInt32LE(shape.vTrans ? 1 : 0, at);
  meta.writeUInt32LE(shape.layers.length, at);
  yield meta;

  // Each payload's per-layer data starts at a fixed offset: compute it once per part.
  const offsets = parts.map((part) => {
    const layerOffsets: { k: number; v: number }[] = [];
    let off = CHUNK_HEADER_BYTES + 4 * part.length;
    for (const layer of shape.layers) {
      const k = off;
      off += part.length * layer.kRowBytes;
      layerOffsets.push({ k, v: off });
      off += part.length * layer.vRowBytes;
    }
    return layerOffsets;
  });

  for (const [l, layer] of shape.layers.entries()) {
    const header = Buffer.allocUnsafe(12);
    header.writeInt32LE(layer.kType, 0);
    header.writeBigUInt64LE(BigInt(layer.kRowBytes), 4);
    yield header;
    for (const [c, part] of parts.entries()) {
      const k = offsets[c]![l]!.k;
      yield part.payload.subarray(k, k + part.length * layer.kRowBytes);
    }
  }
  for (const [l, layer] of shape.layers.entries()) {
    const header = Buffer.allocUnsafe(12);
    header.writeInt32LE(layer.vType, 0);
    if (!shape.vTrans) {
      header.writeBigUInt64LE(BigInt(layer.vRowBytes), 4);
      yield header;
      for (const [c, part] of parts.entries()) {
        const v = offsets[c]![l]!.v;
        yield part.payload.subarray(v, v + part.length * layer.vRowBytes);
      }
      continue;
    }
    header.writeUInt32LE(layer.vElementBytes, 4);
    header.writeUInt32LE(layer.vEmbd, 8);
    yield header;
    const el = layer.vElementBytes;
    for (let j = 0; j < layer.vEmbd; j++) {
      for (const [c, part] of parts.entries()) {
        const run = offsets[c]![l]!.v + j * part.length * el;
        yield part.payload.subarray(run, run + part.length * el);
      }
    }
  }
  // The streams after ours are empty.
  const rest = shape.nStream - 1 - p.stream;
  if (rest > 0) yield Buffer.alloc(4 * rest);
}

/**
 * Builds a version 3 state file holding the concatenation of `chunks` and `tail`: their tokens,
 * cells at positions 0..N-1 in order, and the K/V data (the transposed V layout rebuilt when
 * flash attention is off). The payloads must be contiguous from token 0 and match `shape`. One
 * allocation of the final size; each row run is copied once. Never throws.
 */
export function assembleStateFile(
  shape: StateShape,
  chunks: readonly Uint8Array[],
  tail?: Uint8Array | null,
  options: AssembleOptions = {},
): Result<Buffer> {
  const p = plan(shape, chunks, tail, options);
  if (!p.ok) return p;
  const total = stateFileSize(shape, p.value.tokens);
  let out: Buffer;
  try {
    out = allocateLarge(total);
  } catch (error) {
    return err('INTERNAL', `No memory for a ${total}-byte KV state: ${errorText(error)}`);
  }
  let at = 0;
  for (const piece of pieces(p.value)) {
    out.set(piece, at);
    at += piece.byteLength;
  }
  if (at !== total) return err('INTERNAL', `Assembled ${at} bytes of state where ${total} were planned.`);
  return ok(out);
}

/** Pieces smaller than this are gathered into a staging buffer instead of one iovec each. */
const SMALL_PIECE = 64 * 1024;
const STAGING_BYTES = 4 * 1024 * 1024;
const MAX_IOVECS = 512;
/** The longest stretch `writeStateFile` keeps the event loop busy before yielding once. */
const WRITE_SLICE_MS = 20;

/**
 * `assembleStateFile`, streamed into a file (created or truncated) instead of one big buffer:
 * K rows and V rows go straight from the payloads to the kernel; small pieces (headers, the
 * transposed V runs) are gathered first. Not atomic and not fsynced: it is a scratch file for
 * `loadStateFromFile`. Never throws.
 */
export async function writeStateFile(
  path: string,
  shape: StateShape,
  chunks: readonly Uint8Array[],
  tail?: Uint8Array | null,
  options: AssembleOptions = {},
): Promise<Result<{ readonly bytes: number }>> {
  const p = plan(shape, chunks, tail, options);
  if (!p.ok) return p;
  const total = stateFileSize(shape, p.value.tokens);
  // Synchronous writes: the scratch file sits in RAM (/dev/shm) or the page cache (it is never
  // fsynced), so each write is a memory copy, and a thread-pool round trip per write costs more
  // than that on a loaded machine (the restore path's budget). The event loop gets a
  // turn every few milliseconds all the same.
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (error) {
    return ioError(error, path);
  }
  try {
    const staging = Buffer.allocUnsafe(Math.min(STAGING_BYTES, total));
    let staged = 0;
    let stagedFrom = 0;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let written = 0;
    let sliceStart = performance.now();
    const flush = async (): Promise<void> => {
      if (staged > stagedFrom) {
        batch.push(staging.subarray(stagedFrom, staged));
        batchBytes += staged - stagedFrom;
      }
      if (batch.length > 0) {
        // writev may write less than asked (ENOSPC halfway, signals): loop until all is out.
        let buffers = batch;
        let left = batchBytes;
        while (left > 0) {
          const bytesWritten = writevSync(fd, buffers, written);
          if (bytesWritten === 0) throw Object.assign(new Error('writev wrote nothing'), { code: 'EIO' });
          written += bytesWritten;
          left -= bytesWritten;
          buffers = dropBytes(buffers, bytesWritten);
        }
      }
      // The write has completed, so the staging buffer is free again.
      batch = [];
      batchBytes = 0;
      staged = 0;
      stagedFrom = 0;
      if (performance.now() - sliceStart > WRITE_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    };
    for (const piece of pieces(p.value)) {
      if (piece.byteLength < SMALL_PIECE) {
        if (staged + piece.byteLength > staging.byteLength) await flush();
        staging.set(piece, staged);
        staged += piece.byteLength;
      } else {
        if (staged > stagedFrom) {
          batch.push(staging.subarray(stagedFrom, staged));
          batchBytes += staged - stagedFrom;
          stagedFrom = staged;
        }
        batch.push(piece);
        batchBytes += piece.byteLength;
      }
      if (batch.length >= MAX_IOVECS) await flush();
    }
    await flush();
    if (written !== total) return err('INTERNAL', `Wrote ${written} bytes of state where ${total} were planned.`);
    return ok({ bytes: written });
  } catch (error) {
    return ioError(error, path);
  } finally {
    try {
      closeSync(fd);
    } catch {
      // nothing was lost: the bytes are written, and the file is scratch
    }
  }
}

function dropBytes(buffers: Uint8Array[], count: number): Uint8Array[] {
  let left = count;
  let i = 0;
  while (i < buffers.length && left >= buffers[i]!.byteLength) left -= buffers[i++]!.byteLength;
  const rest = buffers.slice(i);
  if (left > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(left);
  return rest;
}

/** A failed scratch-file write as data: DISK_FULL for no space, else INTERNAL. */
export function ioError(error: unknown, path: string): Result<never> {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return err('DISK_FULL', `The disk is full: could not write the KV state file ${path}.`);
  return err('INTERNAL', `Could not write the KV state file ${path}: ${errorText(error)}`);
}
