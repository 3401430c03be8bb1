/**
 * KV chunk payloads: what the codec cuts a sequence state file into. A payload holds one run of
 * tokens (cells) exactly as llama.cpp wrote them, with a header that says where it starts and what
 * shape it was cut from, so chunks can be checked before they are combined.
 */
import { err, ok, type Result } from '../contract/index.ts';
import { allocateLarge } from './kernels-load.ts';
import { cellsByPosition, cleanPrefixLength, type CleanPrefixOptions, type ParsedState, type StateShape } from './state-file.ts';

/**
 * Chunk payload layout (version 1, little-endian):
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

/** "HKVC" read as a little-endian u32. */
export const CHUNK_MAGIC = 0x43564b48;
export const CHUNK_LAYOUT_VERSION = 1;
export const CHUNK_HEADER_BYTES = 32;
const FLAG_V_TRANS = 1;
/** Payloads from this size on get their own huge-page memory. */
const LARGE_PAYLOAD = 4 << 20;

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
  const size = CHUNK_HEADER_BYTES + n * (4 + parsed.bytesPerCell);
  // At real model size a chunk is tens of megabytes of fresh memory: huge pages (kernels-load.ts).
  const payload = size >= LARGE_PAYLOAD ? allocateLarge(size) : Buffer.allocUnsafe(size);
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

/** A parsed state's clean prefix, ready to be cut into chunks one at a time (`planChunks`). */
export interface ChunkPlan {
  readonly shape: StateShape;
  /** The clean-prefix length the chunks are cut from. */
  readonly cleanLength: number;
  /** How many full chunks of `chunkTokens` the clean prefix holds. */
  readonly fullChunks: number;
  /** Full chunk `index` (0-based from token 0), copied out of the state only when asked for. */
  chunk(index: number): StateChunk;
  /** The tokens after the last full chunk (1 … chunkTokens-1 of them), or null. */
  tail(): StateChunk | null;
}

/**
 * Plans the chunks of a parsed state's clean prefix without copying any: a save asks only for the
 * chunks the store lacks, so a turn copies what it adds, not the whole state. Never throws.
 *
 * `options` caps the clean prefix (see `CleanPrefixOptions`): pass the engine's own knowledge
 * of erases and shifts, which the file cannot show.
 */
export function planChunks(parsed: ParsedState, chunkTokens: number, options: CleanPrefixOptions = {}): Result<ChunkPlan> {
  if (!Number.isSafeInteger(chunkTokens) || chunkTokens < 1) return err('INVALID_INPUT', `Chunk size ${chunkTokens} is not a positive integer.`);
  const order = cellsByPosition(parsed);
  const cleanLength = cleanPrefixLength(parsed, options, order);
  const tag = shapeTag(parsed.shape);
  const fullChunks = Math.floor(cleanLength / chunkTokens);
  const tailStart = fullChunks * chunkTokens;
  return ok({
    shape: parsed.shape,
    cleanLength,
    fullChunks,
    chunk: (index) => buildPayload(parsed, order, tag, index * chunkTokens, chunkTokens),
    tail: () => (tailStart < cleanLength ? buildPayload(parsed, order, tag, tailStart, cleanLength - tailStart) : null),
  });
}

/**
 * Cuts the clean prefix of a parsed state into chunks of `chunkTokens` tokens, starting at
 * `fromToken` (a multiple of `chunkTokens`: the chunks before it are skipped), plus the partial
 * tail: `planChunks`, every chunk copied out at once. Never throws.
 */
export function cutChunks(
  parsed: ParsedState,
  chunkTokens: number,
  fromToken = 0,
  options: CleanPrefixOptions = {},
): Result<CutResult> {
  if (!Number.isSafeInteger(fromToken) || fromToken < 0 || fromToken % chunkTokens !== 0) {
    return err('INVALID_INPUT', `Cut start ${fromToken} is not a multiple of the chunk size ${chunkTokens}.`);
  }
  const plan = planChunks(parsed, chunkTokens, options);
  if (!plan.ok) return plan;
  const chunks: StateChunk[] = [];
  for (let index = fromToken / chunkTokens; index < plan.value.fullChunks; index++) chunks.push(plan.value.chunk(index));
  // A start past the last full chunk is past the tail too.
  const tail = fromToken <= plan.value.fullChunks * chunkTokens ? plan.value.tail() : null;
  return ok({ shape: parsed.shape, cleanLength: plan.value.cleanLength, chunks, tail });
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
