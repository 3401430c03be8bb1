/**
 * The KV codec: cuts a llama.cpp sequence state file into content-addressable chunks of a fixed
 * token count, and assembles chunks back into a state file that `loadStateFromFile` accepts
 * (issue 3, "Codec"). It works on bytes only and never imports node-llama-cpp; the engine
 * process saves and loads the files.
 *
 * Chunks are only ever cut from the clean prefix (state-file.ts `cleanPrefixLength`), and they
 * hold the cells' bytes exactly as llama.cpp wrote them: nothing is converted or re-quantized,
 * so quantized caches with llama.cpp's Hadamard rotation (head_dim % 64 == 0) are safe to move.
 *
 * ## Chunk payload layout (version 1, little-endian)
 *
 * | offset | type | field |
 * |---|---|---|
 * | 0 | u32 | magic 0x43564B48 (the bytes "HKVC") |
 * | 4 | u16 | payload layout version (1) |
 * | 6 | u16 | flags: bit 0 = V transposed (v_trans 1); other bits 0 |
 * | 8 | u32 | shape tag: FNV-1a 32 of `shapeKey(shape)` |
 * | 12 | u32 | start: the first token's index (= its position) |
 * | 16 | u32 | n: the number of tokens (cells) |
 * | 20 | u32 | n_layer |
 * | 24 | u32 | bytes per token (K + V over all layers) |
 * | 28 | u32 | reserved, 0 |
 * | 32 | i32 × n | tokens |
 * | | | then per layer: K rows (n × K row size, position order), then V: n rows (v_trans 0), or (v_trans 1) n_embd_v_gqa runs of n elements, dimension by dimension, so that each run is one contiguous copy into the transposed file layout |
 *
 * The size is exactly 32 + 4n + n × bytes per token. Nothing in a payload depends on the
 * sequence id, stream or chat, so equal prefixes give equal bytes (deduplication).
 */
import { closeSync, openSync, writeSync, writevSync } from 'node:fs';
import { err, ok, type Result, errorText } from '../contract/index.ts';
import {
  MAX_STREAMS,
  STATE_MAGIC,
  cellsByPosition,
  cleanPrefixLength,
  type CleanPrefixOptions,
  type ParsedState,
  type StateLayerShape,
  type StateShape,
} from './state-file.ts';

export {
  MAX_STREAMS,
  STATE_MAGIC,
  STATE_VERSION,
  cellsByPosition,
  cleanPrefixLength,
  kvCacheTypes,
  parseStateFile,
  readStateFile,
  type CleanPrefixOptions,
  type ParsedState,
  type StateLayerData,
  type StateLayerShape,
  type StateShape,
} from './state-file.ts';

/** "HKVC" read as a little-endian u32. */
export const CHUNK_MAGIC = 0x43564b48;
export const CHUNK_LAYOUT_VERSION = 1;
export const CHUNK_HEADER_BYTES = 32;
const FLAG_V_TRANS = 1;

/**
 * A canonical text of a shape, for the KV store's fingerprint and for `sameShape`. Two files
 * whose shapes have the same key can have their chunks combined (given the same model etc.).
 */
export function shapeKey(shape: StateShape): string {
  const layers = shape.layers.map((l) => `${l.kType}:${l.kRowBytes}/${l.vType}:${l.vRowBytes}:${l.vElementBytes}:${l.vEmbd}`);
  return `ggsq${shape.stateVersion};streams=${shape.nStream};vtrans=${shape.vTrans ? 1 : 0};layers=${layers.join(',')}`;
}

export function sameShape(a: StateShape, b: StateShape): boolean {
  return shapeKey(a) === shapeKey(b);
}

/** K + V bytes of one token (cell) over all layers. */
export function bytesPerToken(shape: StateShape): number {
  let total = 0;
  for (const layer of shape.layers) total += layer.kRowBytes + layer.vRowBytes;
  return total;
}

/** FNV-1a 32 of the shape key: a cheap guard against combining chunks of different shapes. */
export function shapeTag(shape: StateShape): number {
  const text = shapeKey(shape);
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** Size of a chunk payload of `tokens` tokens. */
export function chunkPayloadSize(shape: StateShape, tokens: number): number {
  return CHUNK_HEADER_BYTES + tokens * (4 + bytesPerToken(shape));
}

/** Size of the state file `assembleStateFile` builds for `tokens` tokens. */
export function stateFileSize(shape: StateShape, tokens: number): number {
  const head = 12 + 4 * tokens + 4 + 4 * shape.nStream;
  if (tokens === 0) return head;
  return head + 12 * tokens + 8 + 24 * shape.layers.length + tokens * bytesPerToken(shape);
}

/** One cut chunk (or tail). */
export interface StateChunk {
  /** Index of the first token in the sequence (also its position). */
  readonly start: number;
  /** The chunk's tokens (a copy): what the KV store's hash chain hashes. */
  readonly tokens: Int32Array;
  /** The self-contained binary payload (layout above). */
  readonly payload: Buffer;
}

export interface CutResult {
  readonly shape: StateShape;
  /** The clean-prefix length the chunks were cut from. */
  readonly cleanLength: number;
  /** Full chunks of exactly `chunkTokens` tokens, from `fromToken` on. */
  readonly chunks: readonly StateChunk[];
  /** The tokens after the last full chunk (1 … chunkTokens-1 of them), or null. */
  readonly tail: StateChunk | null;
}

/** Are cells order[from], … order[from+n-1] consecutive cell indices, ascending? */
function isRun(order: Uint32Array, from: number, n: number): boolean {
  const first = order[from]!;
  for (let i = 1; i < n; i++) if (order[from + i] !== first + i) return false;
  return true;
}

function buildPayload(parsed: ParsedState, order: Uint32Array, tag: number, start: number, n: number): StateChunk {
  const { shape, bytes, cellCount } = parsed;
  const payload = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + n * (4 + parsed.bytesPerCell));
  payload.writeUInt32LE(CHUNK_MAGIC, 0);
  payload.writeUInt16LE(CHUNK_LAYOUT_VERSION, 4);
  payload.writeUInt16LE(shape.vTrans ? FLAG_V_TRANS : 0, 6);
  payload.writeUInt32LE(tag, 8);
  payload.writeUInt32LE(start, 12);
  payload.writeUInt32LE(n, 16);
  payload.writeUInt32LE(shape.layers.length, 20);
  payload.writeUInt32LE(parsed.bytesPerCell, 24);
  payload.writeUInt32LE(0, 28);
  const tokens = parsed.tokens.slice(start, start + n);
  for (let i = 0; i < n; i++) payload.writeInt32LE(tokens[i]!, CHUNK_HEADER_BYTES + 4 * i);

  const run = isRun(order, start, n);
  const first = order[start]!;
  let at = CHUNK_HEADER_BYTES + 4 * n;
  /** Copies the chunk's rows of one per-cell table (K, or V by rows). */
  const copyRows = (offset: number, rowBytes: number): void => {
    if (run) {
      payload.set(bytes.subarray(offset + first * rowBytes, offset + (first + n) * rowBytes), at);
      at += n * rowBytes;
      return;
    }
    for (let i = 0; i < n; i++) {
      const cell = order[start + i]!;
      payload.set(bytes.subarray(offset + cell * rowBytes, offset + (cell + 1) * rowBytes), at);
      at += rowBytes;
    }
  };
  shape.layers.forEach((layer, l) => {
    const data = parsed.layers[l]!;
    copyRows(data.kOffset, layer.kRowBytes);
    if (!shape.vTrans) {
      copyRows(data.vOffset, layer.vRowBytes);
      return;
    }
    // Transposed V: the file holds dimension j of every cell contiguously (cell order). Gather
    // this chunk's cells per dimension so the chunk stands alone.
    const el = layer.vElementBytes;
    for (let j = 0; j < layer.vEmbd; j++) {
      const base = data.vOffset + j * cellCount * el;
      if (run) {
        payload.set(bytes.subarray(base + first * el, base + (first + n) * el), at);
        at += n * el;
      } else {
        for (let i = 0; i < n; i++) {
          const cell = order[start + i]!;
          payload.set(bytes.subarray(base + cell * el, base + (cell + 1) * el), at);
          at += el;
        }
      }
    }
  });
  return { start, tokens, payload };
}

/**
 * Cuts the clean prefix of a parsed state into chunks of `chunkTokens` tokens, starting at
 * `fromToken` (a multiple of `chunkTokens`: the chunks already stored are skipped, so only
 * what is new is copied), plus the partial tail. Never throws.
 *
 * `options` caps the clean prefix (see `CleanPrefixOptions`): pass the engine's own knowledge
 * of erases and shifts, which the file cannot show.
 */
export function cutChunks(
  parsed: ParsedState,
  chunkTokens: number,
  fromToken = 0,
  options: CleanPrefixOptions = {},
): Result<CutResult> {
  if (!Number.isSafeInteger(chunkTokens) || chunkTokens < 1) return err('INVALID_INPUT', `Chunk size ${chunkTokens} is not a positive integer.`);
  if (!Number.isSafeInteger(fromToken) || fromToken < 0 || fromToken % chunkTokens !== 0) {
    return err('INVALID_INPUT', `Cut start ${fromToken} is not a multiple of the chunk size ${chunkTokens}.`);
  }
  const order = cellsByPosition(parsed);
  const cleanLength = cleanPrefixLength(parsed, options, order);
  const tag = shapeTag(parsed.shape);
  const chunks: StateChunk[] = [];
  let start = fromToken;
  for (; start + chunkTokens <= cleanLength; start += chunkTokens) chunks.push(buildPayload(parsed, order, tag, start, chunkTokens));
  const tail = start < cleanLength ? buildPayload(parsed, order, tag, start, cleanLength - start) : null;
  return ok({ shape: parsed.shape, cleanLength, chunks, tail });
}

/** What a chunk payload's header says. */
export interface ChunkInfo {
  readonly start: number;
  /** The number of tokens. */
  readonly length: number;
  readonly vTrans: boolean;
  readonly nLayer: number;
  readonly bytesPerToken: number;
  readonly shapeTag: number;
}

/**
 * Validates a chunk payload's header and size (and, given a shape, that it was cut from a file
 * of that shape). Never throws. It does not verify the bytes: the KV store's checksum does.
 */
export function readChunkHeader(payload: Uint8Array, shape?: StateShape): Result<ChunkInfo> {
  return checkChunkHeader(payload, payload.byteLength, shape);
}

/**
 * `readChunkHeader` for a payload not yet at hand: `header` holds (at least) its first
 * `CHUNK_HEADER_BYTES` bytes and `byteLength` is the size the whole payload will have. The frame
 * decoder (frame.ts) checks a compressed chunk's header this way before writing any byte of it.
 * Never throws.
 */
export function checkChunkHeader(header: Uint8Array, byteLength: number, shape?: StateShape): Result<ChunkInfo> {
  const bad = (why: string): Result<ChunkInfo> => err('INVALID_INPUT', `Invalid KV chunk: ${why}.`);
  if (byteLength < CHUNK_HEADER_BYTES || header.byteLength < CHUNK_HEADER_BYTES) return bad(`${byteLength} bytes is shorter than its header`);
  const view = new DataView(header.buffer, header.byteOffset, CHUNK_HEADER_BYTES);
  if (view.getUint32(0, true) !== CHUNK_MAGIC) return bad('wrong magic');
  const version = view.getUint16(4, true);
  if (version !== CHUNK_LAYOUT_VERSION) return err('NOT_SUPPORTED', `KV chunk layout version ${version} is not ${CHUNK_LAYOUT_VERSION}.`);
  const flags = view.getUint16(6, true);
  if ((flags & ~FLAG_V_TRANS) !== 0) return bad(`unknown flags ${flags}`);
  const info: ChunkInfo = {
    shapeTag: view.getUint32(8, true),
    start: view.getUint32(12, true),
    length: view.getUint32(16, true),
    nLayer: view.getUint32(20, true),
    bytesPerToken: view.getUint32(24, true),
    vTrans: (flags & FLAG_V_TRANS) !== 0,
  };
  const expected = CHUNK_HEADER_BYTES + info.length * (4 + info.bytesPerToken);
  if (expected !== byteLength) return bad(`${byteLength} bytes where its header implies ${expected}`);
  if (shape !== undefined) {
    if (info.shapeTag !== shapeTag(shape) || info.vTrans !== shape.vTrans || info.nLayer !== shape.layers.length || info.bytesPerToken !== bytesPerToken(shape)) {
      return err('INVALID_INPUT', 'KV chunk was cut from a state of another shape (layers, K/V types, flash attention or stream count differ).');
    }
  }
  return ok(info);
}

/** The tokens of a validated chunk payload. */
export function readChunkTokens(payload: Uint8Array, info: ChunkInfo): Int32Array {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const tokens = new Int32Array(info.length);
  for (let i = 0; i < info.length; i++) tokens[i] = view.getInt32(CHUNK_HEADER_BYTES + 4 * i, true);
  return tokens;
}

/**
 * A copy of a chunk payload cut to its first `tokens` tokens (0 ≤ tokens ≤ its length): a
 * stored tail of which only a prefix matches the request. Cells are in position order in a
 * payload, so the first tokens are the first rows (and, for transposed V, the first elements of
 * each dimension's run). Never throws.
 */
export function truncateChunk(shape: StateShape, payload: Uint8Array, tokens: number): Result<Buffer> {
  const header = readChunkHeader(payload, shape);
  if (!header.ok) return header;
  const n = header.value.length;
  if (!Number.isInteger(tokens) || tokens < 0 || tokens > n) return err('INVALID_INPUT', `Cannot cut a ${n}-token KV chunk to ${tokens} tokens.`);
  const source = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const out = Buffer.allocUnsafe(chunkPayloadSize(shape, tokens));
  source.copy(out, 0, 0, CHUNK_HEADER_BYTES + 4 * tokens);
  out.writeUInt32LE(tokens, 16);
  let from = CHUNK_HEADER_BYTES + 4 * n;
  let to = CHUNK_HEADER_BYTES + 4 * tokens;
  for (const layer of shape.layers) {
    to += source.copy(out, to, from, from + tokens * layer.kRowBytes);
    from += n * layer.kRowBytes;
    if (!shape.vTrans) {
      to += source.copy(out, to, from, from + tokens * layer.vRowBytes);
    } else {
      const el = layer.vElementBytes;
      for (let j = 0; j < layer.vEmbd; j++) to += source.copy(out, to, from + j * n * el, from + (j * n + tokens) * el);
    }
    from += n * layer.vRowBytes;
  }
  return ok(out);
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
  const out = Buffer.allocUnsafe(total);
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
  // than that on a loaded machine (the restore path's budget, issue 3). The event loop gets a
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

/**
 * A state file written one chunk at a time, each chunk's rows straight to their final offsets:
 * a restore then holds one chunk in memory, not the whole state, and the bytes are copied once
 * while still in the CPU cache. Same bytes as `writeStateFile` for the same chunks. Only for
 * shapes without transposed V (flash attention on): a transposed chunk is one write per V
 * dimension per layer; use `writeStateFile` there. Not atomic and not fsynced (scratch).
 */
export class StateFileWriter {
  readonly #fd: number;
  readonly #path: string;
  readonly #shape: StateShape;
  readonly #tokens: number;
  readonly #size: number;
  /** Per layer: the file offsets of its first K row and its first V row. */
  readonly #k: number[];
  readonly #v: number[];
  #next = 0;
  #closed = false;

  private constructor(fd: number, path: string, shape: StateShape, tokens: number, k: number[], v: number[], size: number) {
    this.#fd = fd;
    this.#path = path;
    this.#shape = shape;
    this.#tokens = tokens;
    this.#k = k;
    this.#v = v;
    this.#size = size;
  }

  /** Creates (or truncates) `path` and writes everything but the chunks' tokens and rows. Never throws. */
  static open(path: string, shape: StateShape, tokens: number, options: AssembleOptions = {}): Result<StateFileWriter> {
    const stream = options.stream ?? 0;
    const seqId = options.seqId ?? 0;
    if (shape.vTrans) return err('NOT_SUPPORTED', 'StateFileWriter does not write transposed V; use writeStateFile.');
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > 0x7fffffff) return err('INVALID_INPUT', `Cannot write a state of ${tokens} tokens.`);
    if (!Number.isInteger(stream) || stream < 0 || stream >= shape.nStream) return err('INVALID_INPUT', `Stream ${stream} is outside 0..${shape.nStream - 1}.`);
    if (!Number.isInteger(seqId) || seqId < 0 || seqId >= MAX_STREAMS) return err('INVALID_INPUT', `Sequence id ${seqId} is out of range.`);
    // The fixed parts, laid out as pieces() yields them.
    const head = Buffer.allocUnsafe(12);
    head.writeUInt32LE(STATE_MAGIC, 0);
    head.writeUInt32LE(shape.stateVersion, 4);
    head.writeUInt32LE(tokens, 8);
    const meta = Buffer.alloc(4 + 4 * (stream + 1) + 12 * tokens + 8);
    let at = meta.writeUInt32LE(shape.nStream, 0);
    at += 4 * stream;
    at = meta.writeUInt32LE(tokens, at);
    for (let i = 0; i < tokens; i++) {
      at = meta.writeInt32LE(i, at);
      at = meta.writeUInt32LE(1, at);
      at = meta.writeInt32LE(seqId, at);
    }
    at = meta.writeUInt32LE(0, at);
    meta.writeUInt32LE(shape.layers.length, at);
    const fixed: { at: number; bytes: Uint8Array }[] = [{ at: 0, bytes: head }];
    let off = 12 + 4 * tokens;
    fixed.push({ at: off, bytes: meta });
    off += meta.length;
    // Per layer: type i32, row size u64, then the rows; all K sections come before all V sections.
    const rowSections = (type: (l: StateLayerShape) => number, rowBytes: (l: StateLayerShape) => number): number[] =>
      shape.layers.map((layer) => {
        const header = Buffer.allocUnsafe(12);
        header.writeInt32LE(type(layer), 0);
        header.writeBigUInt64LE(BigInt(rowBytes(layer)), 4);
        fixed.push({ at: off, bytes: header });
        const rows = off + 12;
        off += 12 + tokens * rowBytes(layer);
        return rows;
      });
    const k = rowSections((l) => l.kType, (l) => l.kRowBytes);
    const v = rowSections((l) => l.vType, (l) => l.vRowBytes);
    const rest = shape.nStream - 1 - stream;
    if (rest > 0) {
      fixed.push({ at: off, bytes: Buffer.alloc(4 * rest) });
      off += 4 * rest;
    }
    const size = stateFileSize(shape, tokens);
    if (off !== size) return err('INTERNAL', `Planned ${off} bytes of state where ${size} were expected.`);
    let fd: number;
    try {
      fd = openSync(path, 'w');
    } catch (error) {
      return ioError(error, path);
    }
    const writer = new StateFileWriter(fd, path, shape, tokens, k, v, size);
    for (const piece of fixed) {
      const done = writer.#write(piece.bytes, piece.at);
      if (!done.ok) return done;
    }
    return ok(writer);
  }

  /** Writes at `position`; on failure closes the file. */
  #write(bytes: Uint8Array, position: number): Result<void> {
    try {
      let done = 0;
      while (done < bytes.byteLength) {
        const n = writeSync(this.#fd, bytes, done, bytes.byteLength - done, position + done);
        if (n === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
        done += n;
      }
      return ok(undefined);
    } catch (error) {
      this.close();
      return ioError(error, this.#path);
    }
  }

  /**
   * Writes the next chunk (or the tail): it must match the shape and start where the previous one
   * ended. The payload is not kept. Never throws; on failure the file is closed.
   */
  put(payload: Uint8Array): Result<void> {
    if (this.#closed) return err('INTERNAL', 'The state file is closed.');
    const info = readChunkHeader(payload, this.#shape);
    if (!info.ok) {
      this.close();
      return info;
    }
    const { start, length: n } = info.value;
    if (start !== this.#next || start + n > this.#tokens) {
      this.close();
      return err('INVALID_INPUT', `KV chunk starts at token ${start} with ${n} tokens, not at ${this.#next} within ${this.#tokens}: the chunks are not one contiguous prefix.`);
    }
    let from = CHUNK_HEADER_BYTES;
    const tokens = this.#write(payload.subarray(from, from + 4 * n), 12 + 4 * start);
    if (!tokens.ok) return tokens;
    from += 4 * n;
    for (const [l, layer] of this.#shape.layers.entries()) {
      const kBytes = n * layer.kRowBytes;
      const k = this.#write(payload.subarray(from, from + kBytes), this.#k[l]! + start * layer.kRowBytes);
      if (!k.ok) return k;
      from += kBytes;
      const vBytes = n * layer.vRowBytes;
      const v = this.#write(payload.subarray(from, from + vBytes), this.#v[l]! + start * layer.vRowBytes);
      if (!v.ok) return v;
      from += vBytes;
    }
    this.#next += n;
    return ok(undefined);
  }

  /** Closes the file once every token was written; its size. Never throws. */
  finish(): Result<{ readonly bytes: number }> {
    if (this.#closed) return err('INTERNAL', 'The state file is closed.');
    this.close();
    if (this.#next !== this.#tokens) return err('INTERNAL', `Wrote ${this.#next} of ${this.#tokens} tokens of state.`);
    return ok({ bytes: this.#size });
  }

  /** Closes the file (idempotent); an unfinished file is not loadable and is the caller's to remove. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      closeSync(this.#fd);
    } catch {
      // scratch: nothing to save
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

function ioError(error: unknown, path: string): Result<never> {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return err('DISK_FULL', `The disk is full: could not write the KV state file ${path}.`);
  return err('INTERNAL', `Could not write the KV state file ${path}: ${errorText(error)}`);
}
