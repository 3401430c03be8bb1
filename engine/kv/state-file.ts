/**
 * A validating parser for llama.cpp's sequence state files (`llama_state_seq_save_file`, which
 * node-llama-cpp's `LlamaContextSequence.saveStateToFile` calls), state format version 3 as
 * written by llama.cpp v0.4.0 (the release bundled with node-llama-cpp 3.21.1). The fields are
 * in docs/decisions/state-file-layout.md. The file does not say which memory type wrote it, so
 * a layout the parser cannot prove (M-RoPE/PLE cell extensions, a second memory section, K
 * without V, cells shared by several sequences) is `NOT_SUPPORTED`, never guessed; a broken file
 * is `INVALID_INPUT`. The input is treated as hostile: every count is checked against the bytes
 * really there before it is used, and the K/V bytes are not copied.
 */
import { open } from 'node:fs/promises';
import { err, ok, type Result, errorText } from '../contract/index.ts';
import { ggmlTypes } from '../gguf/format.ts';

/**
 * The layout (all little-endian; llama-context.cpp `state_seq_save_file`, llama-kv-cache.cpp
 * `state_write`/`state_write_meta`/`state_write_data`):
 *
 *   u32 magic 0x67677371 ("ggsq"), u32 version 3, u32 n_token, i32 × n_token tokens,
 *   u32 n_stream, then per stream: u32 cell_count and, when cell_count > 0:
 *     per cell (in cell order):  i32 pos, u32 n_seq_id, [ext: i32 x, i32 y, i32 tok], i32 × n_seq_id seq ids
 *     u32 v_trans, u32 n_layer
 *     per layer: i32 K type, u64 K row size, cell_count K rows
 *     per layer: v_trans = 0: i32 V type, u64 V row size, cell_count V rows
 *                v_trans = 1: i32 V type, u32 element size, u32 n_embd_v_gqa,
 *                             then n_embd_v_gqa × cell_count elements (by dimension, then cell)
 */

/** `LLAMA_STATE_SEQ_MAGIC` ("ggsq"). */
export const STATE_MAGIC = 0x67677371;
/** `LLAMA_STATE_SEQ_VERSION` of llama.cpp v0.4.0; the loader requires an exact match. */
export const STATE_VERSION = 3;
/** `LLAMA_MAX_SEQ`: n_stream is the context's sequence count, at most this. */
export const MAX_STREAMS = 256;
/** No real model has more layers; the cap bounds what a hostile header can make us loop over. */
export const MAX_LAYERS = 4096;

/**
 * The GGML types llama.cpp accepts for a KV cache (node-llama-cpp's
 * `experimentalKvCacheKeyType`/`ValueType`): F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL,
 * BF16. Anything else in a state file means a layout we have not seen.
 */
export const kvCacheTypes: ReadonlySet<number> = new Set([0, 1, 2, 3, 6, 7, 8, 20, 30]);

/** One layer's K/V layout as the file declares it. Plain JSON. */
export interface StateLayerShape {
  /** GGML type id of K (1 = F16, 8 = Q8_0, ...). */
  readonly kType: number;
  /** Bytes of one cell's K row (`ggml_row_size(kType, n_embd_k_gqa)`). */
  readonly kRowBytes: number;
  /** GGML type id of V. */
  readonly vType: number;
  /** Bytes of one cell's V: the row size (v_trans 0), or element size × n_embd_v_gqa (v_trans 1). */
  readonly vRowBytes: number;
  /** v_trans 1 only, else 0: the element size the file declares. */
  readonly vElementBytes: number;
  /** v_trans 1 only, else 0: n_embd_v_gqa, the number of V dimensions per cell. */
  readonly vEmbd: number;
}

/**
 * Everything in a state file's layout that must be equal for cells of two files to be combined
 * into one. It does not identify the model (nothing in the file does:
 * docs/decisions/model-identity.md), so the KV store's fingerprint adds the model hash, the
 * llama.cpp release and so on. Plain JSON.
 */
export interface StateShape {
  /** The state format version (always STATE_VERSION for a parsed file). */
  readonly stateVersion: number;
  /** The context's stream count (its `sequences` count); loading checks it. */
  readonly nStream: number;
  /** V stored transposed: true when flash attention is off. */
  readonly vTrans: boolean;
  readonly layers: readonly StateLayerShape[];
}

/** Where one layer's data lies in `ParsedState.bytes`. */
export interface StateLayerData {
  /** Offset of the first K row (cell 0, in cell order). */
  readonly kOffset: number;
  /** Offset of the V data: the first row (v_trans 0) or the first element of dimension 0 (v_trans 1). */
  readonly vOffset: number;
}

/** A parsed state file. It refers to the K/V bytes of the input buffer; keep that alive. */
export interface ParsedState {
  readonly shape: StateShape;
  /** The sequence's tokens, as node-llama-cpp saved them (its `contextTokens`). */
  readonly tokens: Int32Array;
  /** The stream that holds the cells (all other streams are empty in a sequence file). */
  readonly stream: number;
  /** The sequence id written in the cell metadata (the saving sequence; the loader ignores it). */
  readonly seqId: number;
  readonly cellCount: number;
  /** Each cell's position, in cell order (not position order). */
  readonly positions: Int32Array;
  /** Bytes of K and V one cell holds over all layers. */
  readonly bytesPerCell: number;
  readonly layers: readonly StateLayerData[];
  /** The file's bytes (not a copy). */
  readonly bytes: Uint8Array;
}

/** Thrown only inside this module, to leave deeply nested parsing early; never escapes. */
class ParseFailure {
  readonly code: 'INVALID_INPUT' | 'NOT_SUPPORTED';
  readonly message: string;
  constructor(code: 'INVALID_INPUT' | 'NOT_SUPPORTED', message: string) {
    this.code = code;
    this.message = message;
  }
}

const invalid = (message: string): ParseFailure => new ParseFailure('INVALID_INPUT', `Invalid llama.cpp state file: ${message}`);
const unsupported = (message: string): ParseFailure =>
  new ParseFailure('NOT_SUPPORTED', `Unsupported llama.cpp state layout: ${message}`);

/** A bounds-checked little-endian cursor. */
class Cursor {
  readonly view: DataView;
  readonly length: number;
  offset = 0;
  constructor(bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.length = bytes.byteLength;
  }
  get remaining(): number {
    return this.length - this.offset;
  }
  need(bytes: number, what: string): void {
    if (bytes > this.remaining) throw invalid(`truncated in ${what} at byte ${this.offset} (needs ${bytes}, ${this.remaining} left)`);
  }
  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }
  i32(what: string): number {
    this.need(4, what);
    const value = this.view.getInt32(this.offset, true);
    this.offset += 4;
    return value;
  }
  /** A u64 that must fit in what is left of the file (larger values cannot be a valid size). */
  size64(what: string): number {
    this.need(8, what);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    if (value > BigInt(this.remaining)) throw invalid(`${what} ${value} exceeds the ${this.remaining} bytes left`);
    return Number(value);
  }
  /** Skips `count × unit` bytes, checking the product without overflowing. */
  skip(count: number, unit: number, what: string): void {
    if (unit !== 0 && count > Math.floor(this.remaining / unit)) {
      throw invalid(`truncated in ${what}: ${count} × ${unit} bytes needed, ${this.remaining} left`);
    }
    this.offset += count * unit;
  }
}

function typeName(type: number): string {
  return ggmlTypes.get(type)?.name ?? `type ${type}`;
}

function checkKvType(type: number, what: string): { blockSize: number; typeSize: number } {
  const info = ggmlTypes.get(type);
  if (info === undefined || !kvCacheTypes.has(type)) throw unsupported(`${what} has GGML type ${type}, which is not a KV cache type`);
  return info;
}

function checkRowBytes(rowBytes: number, type: number, what: string): void {
  const info = checkKvType(type, what);
  if (rowBytes === 0 || rowBytes % info.typeSize !== 0) {
    throw invalid(`${what} row size ${rowBytes} is not a whole number of ${typeName(type)} blocks`);
  }
}

/** One stream's cells and K/V layout; everything `ParsedState` needs but the file's header. */
type StreamData = Omit<ParsedState, 'shape' | 'tokens' | 'bytes'> & { vTrans: boolean; layerShapes: StateLayerShape[] };

/**
 * Parses one file (layout above). `extCells` reads the per-cell extension (x, y, tok) that
 * M-RoPE and PLE models add; it is only used to explain a failure of the plain layout.
 */
function parseWith(bytes: Uint8Array, extCells: boolean): ParsedState {
  const c = new Cursor(bytes);
  if (c.length < 12) throw invalid(`${c.length} bytes is too short for a header`);
  const magic = c.u32('magic');
  if (magic !== STATE_MAGIC) throw invalid(`magic 0x${magic.toString(16).padStart(8, '0')} is not 0x67677371 ("ggsq")`);
  const version = c.u32('version');
  if (version !== STATE_VERSION) {
    throw unsupported(`state format version ${version}; this build reads version ${STATE_VERSION} only (written by a different llama.cpp)`);
  }
  const nToken = c.u32('token count');
  c.need(nToken * 4, 'tokens');
  const tokens = new Int32Array(nToken);
  for (let i = 0; i < nToken; i++) tokens[i] = c.view.getInt32(c.offset + i * 4, true);
  c.offset += nToken * 4;

  const nStream = c.u32('stream count');
  if (nStream === 0 || nStream > MAX_STREAMS) throw invalid(`stream count ${nStream} is outside 1..${MAX_STREAMS}`);
  let found: StreamData | undefined;
  for (let s = 0; s < nStream; s++) {
    const cellCount = c.u32(`cell count of stream ${s}`);
    if (cellCount === 0) continue;
    if (found !== undefined) throw unsupported(`cells in more than one stream (${found.stream} and ${s})`);
    found = parseStream(c, s, cellCount, extCells);
  }

  if (found === undefined) throw unsupported('the sequence holds no KV cells, so the file carries no layer layout');
  if (c.remaining !== 0) {
    throw unsupported(
      `${c.remaining} bytes after the KV section (a second memory section, as sliding-window, hybrid or recurrent models write)`,
    );
  }
  const { vTrans, layerShapes, ...rest } = found;
  return { ...rest, shape: { stateVersion: version, nStream, vTrans, layers: layerShapes }, tokens, bytes };
}

/** Stream `s`, which holds `cellCount` cells: their metadata, then the K and V sections. */
function parseStream(c: Cursor, s: number, cellCount: number, extCells: boolean): StreamData {
  const metaBytes = extCells ? 24 : 12;
  c.need(cellCount * metaBytes, `cell metadata of stream ${s}`);
  const positions = new Int32Array(cellCount);
  let seqId = -1;
  for (let i = 0; i < cellCount; i++) {
    const at = c.offset + i * metaBytes;
    positions[i] = c.view.getInt32(at, true);
    const nSeqId = c.view.getUint32(at + 4, true);
    if (nSeqId !== 1) throw unsupported(`cell ${i} belongs to ${nSeqId} sequences (a sequence file has exactly 1)`);
    const seq = c.view.getInt32(at + metaBytes - 4, true);
    if (seq < 0 || seq >= MAX_STREAMS) throw invalid(`cell ${i} has sequence id ${seq}`);
    if (i === 0) seqId = seq;
    else if (seq !== seqId) throw unsupported(`cells of sequences ${seqId} and ${seq} in one file`);
  }
  c.offset += cellCount * metaBytes;

  const vTransRaw = c.u32('v_trans');
  if (vTransRaw > 1) throw invalid(`v_trans is ${vTransRaw}, not 0 or 1`);
  const vTrans = vTransRaw === 1;
  const nLayer = c.u32('layer count');
  if (nLayer === 0 || nLayer > MAX_LAYERS) throw invalid(`layer count ${nLayer} is outside 1..${MAX_LAYERS}`);
  // Each layer needs at least its K header (12 bytes): bound the loop before it runs.
  if (nLayer > Math.floor(c.remaining / 12)) throw invalid(`truncated: ${nLayer} layers cannot fit in ${c.remaining} bytes`);

  const kTypes: number[] = [];
  const kRows: number[] = [];
  const kOffsets: number[] = [];
  for (let l = 0; l < nLayer; l++) {
    const kType = c.i32(`K type of layer ${l}`);
    const kRowBytes = c.size64(`K row size of layer ${l}`);
    checkRowBytes(kRowBytes, kType, `K of layer ${l}`);
    kOffsets.push(c.offset);
    c.skip(cellCount, kRowBytes, `K of layer ${l}`);
    kTypes.push(kType);
    kRows.push(kRowBytes);
  }
  if (c.remaining === 0) throw unsupported('K without V (a cache that stores no V, e.g. multi-head latent attention)');

  const layerShapes: StateLayerShape[] = [];
  const layers: StateLayerData[] = [];
  let bytesPerCell = 0;
  for (let l = 0; l < nLayer; l++) {
    const v = parseV(c, l, vTrans);
    const vOffset = c.offset;
    c.skip(cellCount, v.vRowBytes, `V of layer ${l}`);
    const kType = kTypes[l]!;
    const kRowBytes = kRows[l]!;
    layerShapes.push({ kType, kRowBytes, ...v });
    layers.push({ kOffset: kOffsets[l]!, vOffset });
    bytesPerCell += kRowBytes + v.vRowBytes;
  }
  return { stream: s, seqId, cellCount, positions, bytesPerCell, layers, vTrans, layerShapes };
}

/** The V section header of layer `l`. */
function parseV(c: Cursor, l: number, vTrans: boolean): Omit<StateLayerShape, 'kType' | 'kRowBytes'> {
  const vType = c.i32(`V type of layer ${l}`);
  if (!vTrans) {
    const vRowBytes = c.size64(`V row size of layer ${l}`);
    checkRowBytes(vRowBytes, vType, `V of layer ${l}`);
    return { vType, vRowBytes, vElementBytes: 0, vEmbd: 0 };
  }
  const vElementBytes = c.u32(`V element size of layer ${l}`);
  const vEmbd = c.u32(`V width of layer ${l}`);
  const info = checkKvType(vType, `V of layer ${l}`);
  // llama.cpp refuses a quantized V without flash attention: a block type here is not a file it wrote.
  if (info.blockSize !== 1 || vElementBytes !== info.typeSize) {
    throw invalid(`transposed V of layer ${l} has ${typeName(vType)} with element size ${vElementBytes}`);
  }
  if (vEmbd === 0) throw invalid(`transposed V of layer ${l} has width 0`);
  if (vEmbd > Math.floor(c.remaining / vElementBytes)) throw invalid(`truncated in V of layer ${l}`);
  return { vType, vRowBytes: vElementBytes * vEmbd, vElementBytes, vEmbd };
}

/**
 * Validates and parses a sequence state file. Never throws.
 *
 * Errors: `INVALID_INPUT` for a broken file (wrong magic, truncated, lengths that do not fit),
 * `NOT_SUPPORTED` for a well-formed file whose layout this codec does not handle (another state
 * version, M-RoPE/PLE cell extensions, a second memory section, several sequences or streams,
 * an unknown cache type, no cells). Either way the caller falls back (whole-file snapshot or a
 * re-read) and shows the message.
 */
export function parseStateFile(bytes: Uint8Array): Result<ParsedState> {
  try {
    return ok(parseWith(bytes, false));
  } catch (plain) {
    if (!(plain instanceof ParseFailure)) return err('INTERNAL', `State file parser failed: ${String(plain)}`);
    try {
      // The file does not say whether cells carry the extension: if the plain reading fails and
      // the extended one fits exactly, that is the clearer explanation.
      parseWith(bytes, true);
      return err('NOT_SUPPORTED', 'Unsupported llama.cpp state layout: cells carry 2-D positions or token ids (an M-RoPE or PLE model)');
    } catch {
      return err(plain.code, plain.message);
    }
  }
}

/**
 * Reads a whole state file into one buffer and parses it. Unlike `fs.readFile` it is not
 * limited to 2 GiB (a 32k-token chat of an 8B model is 4.3 GB in F16). Never throws: a file
 * that cannot be read is `NOT_FOUND` (missing) or `INTERNAL`.
 */
export async function readStateFile(path: string): Promise<Result<ParsedState>> {
  let bytes: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      bytes = Buffer.allocUnsafe(size);
      let at = 0;
      while (at < size) {
        const { bytesRead } = await handle.read(bytes, at, Math.min(size - at, 1 << 30), at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      // A file that shrank while being read is parsed as what was there, i.e. as truncated.
      if (at < size) bytes = bytes.subarray(0, at);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const why = errorText(error);
    return err(code === 'ENOENT' ? 'NOT_FOUND' : 'INTERNAL', `Could not read the state file ${path}: ${why}`);
  }
  return parseStateFile(bytes);
}

/**
 * The cell indices ordered by position (ties by cell index). llama.cpp writes cells in cell
 * order, which differs from position order once cells have been freed and reused.
 */
export function cellsByPosition(parsed: ParsedState): Uint32Array {
  const n = parsed.cellCount;
  const order = new Uint32Array(n);
  let sorted = true;
  for (let i = 0; i < n; i++) {
    order[i] = i;
    if (i > 0 && parsed.positions[i]! < parsed.positions[i - 1]!) sorted = false;
  }
  if (sorted) return order;
  const pos = parsed.positions;
  return order.sort((a, b) => pos[a]! - pos[b]! || a - b);
}

export interface CleanPrefixOptions {
  /**
   * What the caller knows to be clean: a shift or a middle erase followed by a shift leaves
   * positions 0,1,2,… that the file cannot tell from a fresh prefix, so the engine, which saw
   * the erase, caps the prefix here.
   */
  readonly limit?: number;
  /** The tokens the caller expects; the prefix stops at the first token that differs. */
  readonly tokens?: ArrayLike<number>;
}

/**
 * The number of leading tokens whose cells form a clean prefix: when cells are taken in position
 * order, cell i has position exactly i (no gap, no duplicate), and token i is known (the file's
 * token list, and `options.tokens` when given, agree up to there). Nothing beyond this length
 * may be stored as a prefix: a fragmented cache's later cells were computed against a different
 * history.
 */
export function cleanPrefixLength(parsed: ParsedState, options: CleanPrefixOptions = {}, order = cellsByPosition(parsed)): number {
  let max = Math.min(parsed.cellCount, parsed.tokens.length);
  if (options.limit !== undefined) max = Math.min(max, Math.max(0, Math.floor(options.limit)));
  if (options.tokens !== undefined) {
    const expected = options.tokens;
    max = Math.min(max, expected.length);
    for (let i = 0; i < max; i++) {
      if (expected[i] !== parsed.tokens[i]) {
        max = i;
        break;
      }
    }
  }
  const pos = parsed.positions;
  let n = 0;
  while (n < max && pos[order[n]!] === n) n++;
  // A duplicate of the last clean position makes that cell ambiguous: which one is the prefix's?
  while (n > 0 && n < order.length && pos[order[n]!] === n - 1) n--;
  return n;
}
