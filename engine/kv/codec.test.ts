/**
 * The codec on synthetic state files. The builder below writes files from the layout in
 * docs/decisions/state-file-layout.md, independently of the codec, so the parser is checked
 * against the format and not against itself. Real files from llama.cpp are covered by
 * engine/worker/kv-codec.model.test.ts.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHUNK_HEADER_BYTES,
  assembleStateFile,
  cellsByPosition,
  chunkPayloadSize,
  readChunkTokens,
  cleanPrefixLength,
  cutChunks,
  parseStateFile,
  readChunkHeader,
  readStateFile,
  sameShape,
  shapeKey,
  stateFileSize,
  truncateChunk,
  writeStateFile,
  StateFileWriter,
  type ParsedState,
} from './codec.ts';

const F16 = 1;
const Q8_0 = 8;

interface LayerSpec {
  kType: number;
  kRowBytes: number;
  vType: number;
  /** v_trans 0. */
  vRowBytes?: number;
  /** v_trans 1. */
  vElementBytes?: number;
  vEmbd?: number;
}
interface CellSpec {
  pos: number;
  seq?: number;
  nSeqId?: number;
  /** M-RoPE/PLE extension (x, y, tok). */
  ext?: [number, number, number];
}
interface FileSpec {
  tokens: readonly number[];
  /** In cell order. */
  cells: readonly CellSpec[];
  vTrans: boolean;
  layers: readonly LayerSpec[];
  nStream?: number;
  stream?: number;
  version?: number;
  /** Cells of a second non-empty stream (an invalid sequence file). */
  secondStreamCells?: readonly CellSpec[];
  omitV?: boolean;
  trailing?: Uint8Array;
  /** Varies the K/V bytes (a different model, say). */
  seed?: number;
}

/** Deterministic K/V bytes that depend on the layer, the position and the index only. */
function kvByte(seed: number, layer: number, kind: number, pos: number, index: number): number {
  let h = Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(layer + 1, 0x85ebca6b) ^ Math.imul(kind + 1, 0xc2b2ae35);
  h = Math.imul(h ^ Math.imul(pos + 7, 0x27d4eb2f), 0x165667b1) ^ Math.imul(index + 3, 0x61c88647);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) >>> 24;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

/** A growable little-endian byte writer for the builder. */
class Writer {
  buf = Buffer.alloc(1024);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.length = this.buf.writeUInt32LE(v >>> 0, this.length);
  }
  i32(v: number): void {
    this.room(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.room(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  byte(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

function streamSection(w: Writer, spec: FileSpec, cells: readonly CellSpec[]): void {
  const seed = spec.seed ?? 0;
  w.u32(cells.length);
  for (const cell of cells) {
    w.i32(cell.pos);
    w.u32(cell.nSeqId ?? 1);
    if (cell.ext) for (const v of cell.ext) w.i32(v);
    for (let s = 0; s < (cell.nSeqId ?? 1); s++) w.i32(cell.seq ?? 0);
  }
  w.u32(spec.vTrans ? 1 : 0);
  w.u32(spec.layers.length);
  spec.layers.forEach((layer, l) => {
    w.i32(layer.kType);
    w.u64(layer.kRowBytes);
    for (const cell of cells) for (let i = 0; i < layer.kRowBytes; i++) w.byte(kvByte(seed, l, 0, cell.pos, i));
  });
  if (spec.omitV) return;
  spec.layers.forEach((layer, l) => {
    w.i32(layer.vType);
    if (!spec.vTrans) {
      const row = layer.vRowBytes!;
      w.u64(row);
      for (const cell of cells) for (let i = 0; i < row; i++) w.byte(kvByte(seed, l, 1, cell.pos, i));
      return;
    }
    const el = layer.vElementBytes!;
    const embd = layer.vEmbd!;
    w.u32(el);
    w.u32(embd);
    for (let j = 0; j < embd; j++) for (const cell of cells) for (let b = 0; b < el; b++) w.byte(kvByte(seed, l, 1, cell.pos, j * el + b));
  });
}

function buildStateFile(spec: FileSpec): Buffer {
  const nStream = spec.nStream ?? 1;
  const stream = spec.stream ?? 0;
  const w = new Writer();
  w.u32(0x67677371);
  w.u32(spec.version ?? 3);
  w.u32(spec.tokens.length);
  for (const t of spec.tokens) w.i32(t);
  w.u32(nStream);
  for (let s = 0; s < nStream; s++) {
    if (s === stream && spec.cells.length > 0) streamSection(w, spec, spec.cells);
    else if (s === stream + 1 && spec.secondStreamCells) streamSection(w, spec, spec.secondStreamCells);
    else w.u32(0);
  }
  if (spec.trailing) w.bytes(spec.trailing);
  return w.done();
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);
const tokensOf = (n: number, salt = 0): number[] => range(n).map((i) => 3 + ((i * 37 + salt) % 250));
const inOrder = (n: number, seq = 0): CellSpec[] => range(n).map((pos) => ({ pos, seq }));

const f16Rows: LayerSpec[] = [
  { kType: F16, kRowBytes: 16, vType: F16, vRowBytes: 16 },
  { kType: F16, kRowBytes: 16, vType: F16, vRowBytes: 16 },
];
const f16Trans: LayerSpec[] = [
  { kType: F16, kRowBytes: 16, vType: F16, vElementBytes: 2, vEmbd: 8 },
  { kType: F16, kRowBytes: 16, vType: F16, vElementBytes: 2, vEmbd: 8 },
];
const q8Rows: LayerSpec[] = [
  { kType: Q8_0, kRowBytes: 68, vType: Q8_0, vRowBytes: 68 },
  { kType: Q8_0, kRowBytes: 68, vType: Q8_0, vRowBytes: 68 },
  { kType: Q8_0, kRowBytes: 68, vType: Q8_0, vRowBytes: 68 },
];

function mustParse(bytes: Uint8Array): ParsedState {
  const parsed = parseStateFile(bytes);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.value;
}

function roundTrip(bytes: Uint8Array, chunkSize: number): Buffer {
  const parsed = mustParse(bytes);
  const cut = cutChunks(parsed, chunkSize);
  if (!cut.ok) throw new Error(cut.error.message);
  const assembled = assembleStateFile(
    cut.value.shape,
    cut.value.chunks.map((c) => c.payload),
    cut.value.tail?.payload,
    { stream: parsed.stream, seqId: parsed.seqId },
  );
  if (!assembled.ok) throw new Error(assembled.error.message);
  return assembled.value;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-codec-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseStateFile', () => {
  it('reads tokens, cells, shape and offsets', () => {
    const file = buildStateFile({ tokens: tokensOf(10), cells: inOrder(10), vTrans: true, layers: f16Trans });
    const parsed = mustParse(file);
    expect(Array.from(parsed.tokens)).toEqual(tokensOf(10));
    expect(Array.from(parsed.positions)).toEqual(range(10));
    expect(parsed).toMatchObject({ cellCount: 10, stream: 0, seqId: 0, bytesPerCell: 64 });
    expect(parsed.shape).toEqual({
      stateVersion: 3,
      nStream: 1,
      vTrans: true,
      layers: [
        { kType: F16, kRowBytes: 16, vType: F16, vRowBytes: 16, vElementBytes: 2, vEmbd: 8 },
        { kType: F16, kRowBytes: 16, vType: F16, vRowBytes: 16, vElementBytes: 2, vEmbd: 8 },
      ],
    });
    expect(shapeKey(parsed.shape)).toBe('ggsq3;streams=1;vtrans=1;layers=1:16/1:16:2:8,1:16/1:16:2:8');
    // The first K row of layer 0 is right after the metadata and the layer header.
    const k0 = 12 + 40 + 4 + 4 + 10 * 12 + 8 + 12;
    expect(parsed.layers[0]!.kOffset).toBe(k0);
    expect(file[k0]).toBe(kvByte(0, 0, 0, 0, 0));
  });

  it('gives clear errors, never exceptions, for broken or unsupported files', () => {
    const base = { tokens: tokensOf(6), cells: inOrder(6), vTrans: false, layers: f16Rows };
    const cases: [string, Uint8Array, string, RegExp][] = [
      ['empty', Buffer.alloc(0), 'INVALID_INPUT', /too short/],
      ['wrong magic', Buffer.from('GGUF\x03\x00\x00\x00\x00\x00\x00\x00'), 'INVALID_INPUT', /magic/],
      ['version 4', buildStateFile({ ...base, version: 4 }), 'NOT_SUPPORTED', /version 4/],
      ['trailing bytes', buildStateFile({ ...base, trailing: new Uint8Array(40) }), 'NOT_SUPPORTED', /40 bytes after the KV section/],
      ['a second KV section', Buffer.concat([buildStateFile(base), buildStateFile(base).subarray(12 + 24)]), 'NOT_SUPPORTED', /after the KV section/],
      ['M-RoPE cells', buildStateFile({ ...base, cells: range(6).map((pos) => ({ pos, ext: [pos, 0, 50 + pos] })) }), 'NOT_SUPPORTED', /M-RoPE/],
      ['shared cells', buildStateFile({ ...base, cells: range(6).map((pos) => ({ pos, nSeqId: pos === 3 ? 2 : 1 })) }), 'NOT_SUPPORTED', /2 sequences/],
      ['two sequences', buildStateFile({ ...base, cells: range(6).map((pos) => ({ pos, seq: pos % 2 })) }), 'NOT_SUPPORTED', /sequences 0 and 1/],
      ['two streams', buildStateFile({ ...base, nStream: 2, secondStreamCells: inOrder(2) }), 'NOT_SUPPORTED', /more than one stream/],
      ['no V', buildStateFile({ ...base, omitV: true }), 'NOT_SUPPORTED', /K without V/],
      ['no cells', buildStateFile({ ...base, cells: [] }), 'NOT_SUPPORTED', /no KV cells/],
      ['unknown K type', buildStateFile({ ...base, layers: [{ ...f16Rows[0]!, kType: 12 }] }), 'NOT_SUPPORTED', /GGML type 12/],
      ['quantized transposed V', buildStateFile({ ...base, vTrans: true, layers: [{ kType: F16, kRowBytes: 16, vType: Q8_0, vElementBytes: 34, vEmbd: 2 }] }), 'INVALID_INPUT', /transposed V/],
      ['row size not whole blocks', buildStateFile({ ...base, layers: [{ ...q8Rows[0]!, kRowBytes: 50 }] }), 'INVALID_INPUT', /whole number/],
      ['zero streams', Buffer.concat([u32(0x67677371), u32(3), u32(0), u32(0)]), 'INVALID_INPUT', /stream count 0/],
    ];
    for (const [name, bytes, code, message] of cases) {
      const result = parseStateFile(bytes);
      expect(result.ok, name).toBe(false);
      if (!result.ok) {
        expect(result.error.code, name).toBe(code);
        expect(result.error.message, name).toMatch(message);
      }
    }
  });

  it('checks every length before using it (hostile counts)', () => {
    const file = buildStateFile({ tokens: tokensOf(4), cells: inOrder(4), vTrans: false, layers: f16Rows });
    const patch = (offset: number, value: number | bigint, width: 4 | 8 = 4): Buffer => {
      const copy = Buffer.from(file);
      if (width === 4) copy.writeUInt32LE(Number(value), offset);
      else copy.writeBigUInt64LE(BigInt(value), offset);
      return copy;
    };
    const nStreamAt = 12 + 16;
    const cellCountAt = nStreamAt + 4;
    const nLayerAt = cellCountAt + 4 + 4 * 12 + 4;
    const kRowAt = nLayerAt + 4 + 4;
    const hostile = [
      patch(8, 0xffffffff), // n_token
      patch(nStreamAt, 0xffffffff),
      patch(cellCountAt, 0xffffffff),
      patch(cellCountAt, 0x10000000),
      patch(nLayerAt, 0xffffffff),
      patch(nLayerAt, 3),
      patch(kRowAt, 2n ** 64n - 2n, 8),
      patch(kRowAt, 2n ** 40n, 8),
      patch(kRowAt, 18, 8),
    ];
    for (const bytes of hostile) {
      const result = parseStateFile(bytes);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(['INVALID_INPUT', 'NOT_SUPPORTED']).toContain(result.error.code);
    }
  });

  it('fails cleanly at every truncation point', () => {
    for (const vTrans of [false, true]) {
      const file = buildStateFile({ tokens: tokensOf(5), cells: inOrder(5), vTrans, layers: vTrans ? f16Trans : f16Rows });
      for (let length = 0; length < file.length; length++) {
        const result = parseStateFile(file.subarray(0, length));
        expect(result.ok, `length ${length}`).toBe(false);
      }
    }
  });

  it('never throws on garbled files, and whatever parses also cuts and assembles', () => {
    const file = buildStateFile({ tokens: tokensOf(9), cells: inOrder(9), vTrans: true, layers: f16Trans });
    let seed = 12345;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let parsedCount = 0;
    for (let round = 0; round < 3000; round++) {
      const copy = Buffer.from(file);
      const flips = 1 + random(4);
      for (let f = 0; f < flips; f++) {
        // Aim at the header and metadata half the time: that is where lengths live.
        const at = random(2) === 0 ? random(Math.min(copy.length, 200)) : random(copy.length);
        if (random(3) === 0) copy[at] = random(256);
        else copy[at] = copy[at]! ^ (1 << random(8));
      }
      const result = parseStateFile(round % 7 === 0 ? copy.subarray(0, random(copy.length)) : copy);
      if (!result.ok) continue;
      parsedCount++;
      const cut = cutChunks(result.value, 4);
      expect(cut.ok).toBe(true);
      if (!cut.ok) continue;
      const assembled = assembleStateFile(cut.value.shape, cut.value.chunks.map((c) => c.payload), cut.value.tail?.payload);
      expect(assembled.ok).toBe(true);
    }
    // Flips in K/V data leave a valid file: the fuzz did exercise the success path.
    expect(parsedCount).toBeGreaterThan(100);
  });
});

describe('cutChunks and assembleStateFile', () => {
  it.each([
    ['F16, V by rows', false, f16Rows],
    ['F16, V transposed', true, f16Trans],
    ['Q8_0 K and V', false, q8Rows],
  ] as const)('round-trip an unfragmented file byte for byte (%s)', async (_name, vTrans, layers) => {
    const file = buildStateFile({ tokens: tokensOf(700), cells: inOrder(700), vTrans, layers });
    const parsed = mustParse(file);
    const cut = cutChunks(parsed, 256);
    if (!cut.ok) throw new Error(cut.error.message);
    expect(cut.value.cleanLength).toBe(700);
    expect(cut.value.chunks.map((c) => [c.start, c.tokens.length])).toEqual([[0, 256], [256, 256]]);
    expect([cut.value.tail?.start, cut.value.tail?.tokens.length]).toEqual([512, 188]);
    expect(Array.from(cut.value.chunks[1]!.tokens)).toEqual(tokensOf(700).slice(256, 512));
    for (const chunk of cut.value.chunks) expect(chunk.payload.length).toBe(chunkPayloadSize(parsed.shape, 256));

    expect(roundTrip(file, 256).equals(file)).toBe(true);
    expect(roundTrip(file, 700).equals(file)).toBe(true);
    expect(roundTrip(file, 1000).equals(file)).toBe(true);
    expect(roundTrip(file, 1).equals(file)).toBe(true);

    // The first 512 tokens alone: the file llama.cpp would have written for them.
    const prefix = assembleStateFile(parsed.shape, cut.value.chunks.map((c) => c.payload));
    if (!prefix.ok) throw new Error(prefix.error.message);
    expect(prefix.value.equals(buildStateFile({ tokens: tokensOf(512), cells: inOrder(512), vTrans, layers }))).toBe(true);
    expect(prefix.value.length).toBe(stateFileSize(parsed.shape, 512));

    // Streamed into a file: the same bytes.
    const path = join(dir, `state-${vTrans}-${layers[0]!.kType}.bin`);
    const written = await writeStateFile(path, parsed.shape, cut.value.chunks.map((c) => c.payload), cut.value.tail?.payload);
    expect(written).toEqual({ ok: true, value: { bytes: file.length } });
    expect((await readFile(path)).equals(file)).toBe(true);
    const read = await readStateFile(path);
    expect(read.ok && shapeKey(read.value.shape)).toBe(shapeKey(parsed.shape));
    expect(read.ok && Buffer.from(read.value.bytes).equals(file)).toBe(true);

    // Chunk by chunk to their final offsets (rows only): the same bytes again.
    const opened = StateFileWriter.open(path, parsed.shape, parsed.tokens.length);
    if (vTrans) {
      expect(opened).toMatchObject({ ok: false, error: { code: 'NOT_SUPPORTED' } });
    } else {
      if (!opened.ok) throw new Error(opened.error.message);
      for (const payload of [...cut.value.chunks.map((c) => c.payload), ...(cut.value.tail ? [cut.value.tail.payload] : [])]) expect(opened.value.put(payload)).toEqual({ ok: true, value: undefined });
      expect(opened.value.finish()).toEqual({ ok: true, value: { bytes: file.length } });
      expect((await readFile(path)).equals(file)).toBe(true);
      // Out of order or short: refused.
      const again = StateFileWriter.open(path, parsed.shape, parsed.tokens.length);
      if (!again.ok) throw new Error(again.error.message);
      expect(again.value.put(cut.value.chunks[1]!.payload).ok).toBe(false);
      const short = StateFileWriter.open(path, parsed.shape, parsed.tokens.length);
      if (!short.ok) throw new Error(short.error.message);
      expect(short.value.put(cut.value.chunks[0]!.payload).ok).toBe(true);
      expect(short.value.finish().ok).toBe(false);
    }
  });

  it('reports unreadable files and unwritable paths as errors', async () => {
    expect(await readStateFile(join(dir, 'missing.bin'))).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await readStateFile(dir)).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    const parsed = mustParse(buildStateFile({ tokens: tokensOf(4), cells: inOrder(4), vTrans: false, layers: f16Rows }));
    expect(await writeStateFile(join(dir, 'no', 'such', 'dir.bin'), parsed.shape, [])).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });

  it('streams files larger than its staging buffer correctly', async () => {
    const layers: LayerSpec[] = [{ kType: F16, kRowBytes: 128, vType: F16, vElementBytes: 2, vEmbd: 64 }];
    const file = buildStateFile({ tokens: tokensOf(20000), cells: inOrder(20000), vTrans: true, layers });
    const parsed = mustParse(file);
    const cut = cutChunks(parsed, 256);
    if (!cut.ok) throw new Error(cut.error.message);
    const path = join(dir, 'big.bin');
    const written = await writeStateFile(path, parsed.shape, cut.value.chunks.map((c) => c.payload), cut.value.tail?.payload);
    expect(written.ok).toBe(true);
    expect((await readFile(path)).equals(file)).toBe(true);
  });

  it('sorts cells stored out of order by position', () => {
    for (const [vTrans, layers] of [[false, f16Rows], [true, f16Trans]] as const) {
      // Cells reused after a tail erase: cell order 5..9, 0..4 holds positions 0..9 rotated.
      const cells = [...range(5, 5), ...range(5)].map((pos) => ({ pos }));
      const file = buildStateFile({ tokens: tokensOf(10), cells, vTrans, layers });
      const parsed = mustParse(file);
      expect(Array.from(cellsByPosition(parsed))).toEqual([5, 6, 7, 8, 9, 0, 1, 2, 3, 4]);
      expect(cleanPrefixLength(parsed)).toBe(10);
      const ordered = buildStateFile({ tokens: tokensOf(10), cells: inOrder(10), vTrans, layers });
      expect(roundTrip(file, 4).equals(ordered)).toBe(true);
      expect(roundTrip(file, 3).equals(ordered)).toBe(true);
      // A chunk whose cells are not one run is gathered cell by cell.
      const shuffled = buildStateFile({ tokens: tokensOf(10), cells: [3, 9, 0, 7, 1, 8, 2, 6, 4, 5].map((pos) => ({ pos })), vTrans, layers });
      expect(roundTrip(shuffled, 4).equals(ordered)).toBe(true);
    }
  });

  it('stops the clean prefix at gaps, duplicates, unknown tokens and the caller’s limits', () => {
    const layers = f16Rows;
    const gap = mustParse(buildStateFile({ tokens: tokensOf(150), cells: [...range(100), ...range(50, 150)].map((pos) => ({ pos })), vTrans: false, layers }));
    expect(cleanPrefixLength(gap)).toBe(100);
    const cut = cutChunks(gap, 32);
    if (!cut.ok) throw new Error(cut.error.message);
    expect(cut.value.cleanLength).toBe(100);
    expect(cut.value.chunks).toHaveLength(3);
    expect([cut.value.tail?.start, cut.value.tail?.tokens.length]).toEqual([96, 4]);

    const duplicate = mustParse(buildStateFile({ tokens: tokensOf(10), cells: [...range(10), 6].map((pos) => ({ pos })), vTrans: false, layers }));
    expect(cleanPrefixLength(duplicate)).toBe(6);
    const duplicateLast = mustParse(buildStateFile({ tokens: tokensOf(10), cells: [...range(10), 9].map((pos) => ({ pos })), vTrans: false, layers }));
    expect(cleanPrefixLength(duplicateLast)).toBe(9);
    const notFromZero = mustParse(buildStateFile({ tokens: tokensOf(10), cells: range(10, 1).map((pos) => ({ pos })), vTrans: false, layers }));
    expect(cleanPrefixLength(notFromZero)).toBe(0);
    expect(cutChunks(notFromZero, 4)).toMatchObject({ ok: true, value: { cleanLength: 0, chunks: [], tail: null } });

    const fewerTokens = mustParse(buildStateFile({ tokens: tokensOf(7), cells: inOrder(10), vTrans: false, layers }));
    expect(cleanPrefixLength(fewerTokens)).toBe(7);
    const whole = mustParse(buildStateFile({ tokens: tokensOf(10), cells: inOrder(10), vTrans: false, layers }));
    expect(cleanPrefixLength(whole, { limit: 4 })).toBe(4);
    const expected = tokensOf(10);
    expected[6] = 1;
    expect(cleanPrefixLength(whole, { tokens: expected })).toBe(6);
    expect(cleanPrefixLength(whole, { tokens: tokensOf(3) })).toBe(3);
    const limited = cutChunks(whole, 4, 0, { limit: 5 });
    expect(limited.ok && [limited.value.chunks.length, limited.value.tail?.tokens.length]).toEqual([1, 1]);
  });

  it('cuts from a chunk boundary only what is new', () => {
    const parsed = mustParse(buildStateFile({ tokens: tokensOf(600), cells: inOrder(600), vTrans: true, layers: f16Trans }));
    const all = cutChunks(parsed, 256);
    const later = cutChunks(parsed, 256, 256);
    if (!all.ok || !later.ok) throw new Error('cut failed');
    expect(later.value.chunks.map((c) => c.start)).toEqual([256]);
    expect(later.value.chunks[0]!.payload.equals(all.value.chunks[1]!.payload)).toBe(true);
    expect(later.value.tail!.payload.equals(all.value.tail!.payload)).toBe(true);
    expect(cutChunks(parsed, 256, 512)).toMatchObject({ ok: true, value: { chunks: [], tail: { start: 512 } } });
    expect(cutChunks(parsed, 256, 1024)).toMatchObject({ ok: true, value: { chunks: [], tail: null } });
    expect(cutChunks(parsed, 256, 100)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(cutChunks(parsed, 0)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('gives equal payloads for a shared prefix, whatever the sequence, stream or suffix', () => {
    const shared = tokensOf(300);
    const a = mustParse(buildStateFile({ tokens: [...shared, ...tokensOf(100, 1)], cells: inOrder(400), vTrans: true, layers: f16Trans }));
    const b = mustParse(
      buildStateFile({ tokens: [...shared, ...tokensOf(50, 2)], cells: inOrder(350, 1), nStream: 2, stream: 1, vTrans: true, layers: f16Trans }),
    );
    expect(b).toMatchObject({ stream: 1, seqId: 1 });
    const cutA = cutChunks(a, 256);
    const cutB = cutChunks(b, 256);
    if (!cutA.ok || !cutB.ok) throw new Error('cut failed');
    // The stream count is part of the shape, so the tags differ; compare past the header.
    expect(cutA.value.chunks[0]!.payload.subarray(12).equals(cutB.value.chunks[0]!.payload.subarray(12))).toBe(true);
    expect(cutA.value.chunks[0]!.payload.subarray(0, 8).equals(cutB.value.chunks[0]!.payload.subarray(0, 8))).toBe(true);
    expect(sameShape(a.shape, b.shape)).toBe(false);
    const c = mustParse(buildStateFile({ tokens: [...shared, ...tokensOf(20, 3)], cells: inOrder(320), vTrans: true, layers: f16Trans }));
    const cutC = cutChunks(c, 256);
    if (!cutC.ok) throw new Error('cut failed');
    expect(cutC.value.chunks[0]!.payload.equals(cutA.value.chunks[0]!.payload)).toBe(true);
    expect(cutC.value.tail!.payload.equals(cutA.value.tail!.payload)).toBe(false);
  });

  it('keeps the stream layout: other streams empty, cells in the chosen stream', () => {
    const file = buildStateFile({ tokens: tokensOf(40), cells: inOrder(40, 2), nStream: 3, stream: 2, vTrans: false, layers: q8Rows });
    expect(roundTrip(file, 16).equals(file)).toBe(true);
    const parsed = mustParse(file);
    const cut = cutChunks(parsed, 16);
    if (!cut.ok) throw new Error(cut.error.message);
    const intoZero = assembleStateFile(parsed.shape, cut.value.chunks.map((c) => c.payload), cut.value.tail?.payload);
    if (!intoZero.ok) throw new Error(intoZero.error.message);
    expect(intoZero.value.equals(buildStateFile({ tokens: tokensOf(40), cells: inOrder(40), nStream: 3, stream: 0, vTrans: false, layers: q8Rows }))).toBe(true);
    expect(mustParse(intoZero.value)).toMatchObject({ stream: 0, seqId: 0, cellCount: 40 });
    expect(assembleStateFile(parsed.shape, [], null, { stream: 3 })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('assembles an empty prefix as a file without cells', () => {
    const parsed = mustParse(buildStateFile({ tokens: tokensOf(4), cells: inOrder(4), nStream: 2, vTrans: false, layers: f16Rows }));
    const empty = assembleStateFile(parsed.shape, []);
    expect(empty.ok && Array.from(empty.value)).toEqual(Array.from(Buffer.concat([u32(0x67677371), u32(3), u32(0), u32(2), u32(0), u32(0)])));
  });

  it('refuses chunks that do not form one prefix of one shape', () => {
    const parsed = mustParse(buildStateFile({ tokens: tokensOf(64), cells: inOrder(64), vTrans: false, layers: f16Rows }));
    const other = mustParse(buildStateFile({ tokens: tokensOf(64), cells: inOrder(64), vTrans: true, layers: f16Trans }));
    const cut = cutChunks(parsed, 16);
    const cutOther = cutChunks(other, 16);
    if (!cut.ok || !cutOther.ok) throw new Error('cut failed');
    const [c0, c1, c2] = cut.value.chunks.map((c) => c.payload);
    const cases: [string, Uint8Array[], RegExp][] = [
      ['a gap', [c0!, c2!], /starts at token 32, not 16/],
      ['not from 0', [c1!], /starts at token 16, not 0/],
      ['another shape', [c0!, cutOther.value.chunks[1]!.payload], /another shape/],
      ['truncated', [c0!, c1!.subarray(0, c1!.length - 1)], /bytes where its header implies/],
      ['too short', [c0!.subarray(0, 10)], /shorter than its header/],
      ['garbage', [Buffer.alloc(c0!.length)], /wrong magic/],
    ];
    for (const [name, chunks, message] of cases) {
      const result = assembleStateFile(parsed.shape, chunks);
      expect(result.ok, name).toBe(false);
      if (!result.ok) expect(result.error.message, name).toMatch(message);
    }
  });

  it('cuts a chunk to its first tokens, as if cut from a shorter state', () => {
    for (const [vTrans, layers] of [[false, q8Rows], [true, f16Trans]] as const) {
      const parsed = mustParse(buildStateFile({ tokens: tokensOf(50), cells: inOrder(50), vTrans, layers }));
      const shorter = mustParse(buildStateFile({ tokens: tokensOf(43), cells: inOrder(43), vTrans, layers }));
      const cut = cutChunks(parsed, 32);
      const cutShorter = cutChunks(shorter, 32);
      if (!cut.ok || !cutShorter.ok) throw new Error('cut failed');
      const truncated = truncateChunk(parsed.shape, cut.value.tail!.payload, 11);
      expect(truncated.ok && truncated.value.equals(cutShorter.value.tail!.payload)).toBe(true);
      const whole = truncateChunk(parsed.shape, cut.value.tail!.payload, 18);
      expect(whole.ok && whole.value.equals(cut.value.tail!.payload)).toBe(true);
      expect(truncateChunk(parsed.shape, cut.value.tail!.payload, 19)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
      const none = truncateChunk(parsed.shape, cut.value.tail!.payload, 0);
      expect(none.ok && none.value.length).toBe(CHUNK_HEADER_BYTES);
    }
  });

  it('reads chunk headers back', () => {
    const parsed = mustParse(buildStateFile({ tokens: tokensOf(40), cells: inOrder(40), vTrans: true, layers: f16Trans }));
    const cut = cutChunks(parsed, 16);
    if (!cut.ok) throw new Error(cut.error.message);
    const tail = cut.value.tail!;
    const info = readChunkHeader(tail.payload, parsed.shape);
    expect(info).toMatchObject({ ok: true, value: { start: 32, length: 8, vTrans: true, nLayer: 2, bytesPerToken: 64 } });
    if (info.ok) expect(Array.from(readChunkTokens(tail.payload, info.value))).toEqual(tokensOf(40).slice(32));
    expect(tail.payload.length).toBe(CHUNK_HEADER_BYTES + 8 * (4 + 64));
  });
});
