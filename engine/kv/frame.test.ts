import { describe, expect, it } from 'vitest';
import { CHUNK_HEADER_BYTES, assembleStateFile, readChunkHeader, type StateShape } from './codec.ts';
import {
  FRAME_HEADER_BYTES,
  FRAME_MODE_LOSSLESS,
  FRAME_MODE_LOSSY,
  FRAME_PART_BYTES,
  PART_COPY,
  PART_Q8_0,
  PART_SHUFFLE16,
  decodeChunk,
  decodedSize,
  encodeChunk,
  lossyApplies,
  storedMode,
} from './frame.ts';
import { fallbackKernels } from './kernels-fallback.ts';
import { nativeKernels } from './kernels-load.ts';
import { GGML_BF16, GGML_F16, GGML_Q8_0, f16Layers, fromF16, prng, q8Layers, syntheticChunks, type SyntheticState } from '../../test/support/kv-state.ts';

const kernels = fallbackKernels;

function value<T>(result: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const specs: { name: string; spec: SyntheticState }[] = [
  { name: 'F16, flash attention on', spec: { tokens: 300, layers: f16Layers(3), vTrans: false } },
  { name: 'F16, flash attention off (V transposed)', spec: { tokens: 300, layers: f16Layers(3), vTrans: true } },
  { name: 'Q8_0 K+V', spec: { tokens: 300, layers: q8Layers(3), vTrans: false } },
  { name: 'Q8_0 K, F16 V transposed', spec: { tokens: 300, layers: [{ kType: GGML_Q8_0, kWidth: 64, vType: GGML_F16, vWidth: 64 }], vTrans: true } },
  { name: 'F16 K, Q8_0 V', spec: { tokens: 300, layers: [{ kType: GGML_F16, kWidth: 96, vType: GGML_Q8_0, vWidth: 64 }], vTrans: false } },
  { name: 'BF16', spec: { tokens: 300, layers: [{ kType: GGML_BF16, kWidth: 64, vType: GGML_BF16, vWidth: 64 }], vTrans: false } },
];

/** The stored payload's parts as (kind, outBytes) pairs. */
function partsOf(stored: Uint8Array): { kind: number; a: number; b: number; outBytes: number }[] {
  const view = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const count = view.readUInt16LE(24);
  return Array.from({ length: count }, (_, i) => {
    const at = FRAME_HEADER_BYTES + FRAME_PART_BYTES * i;
    return { kind: view[at]!, a: view[at + 1]!, b: view[at + 2]!, outBytes: view.readUInt32LE(at + 4) };
  });
}

/** f16 bit patterns of a section of `payload` (or every K/V value when no range is given). */
function f16Values(bytes: Uint8Array): number[] {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 2 }, (_, i) => fromF16(view.readUInt16LE(2 * i)));
}

/** Byte ranges of the K and V sections of a raw payload of `n` tokens. */
function sectionRanges(shape: StateShape, n: number): { type: number; start: number; end: number }[] {
  const out: { type: number; start: number; end: number }[] = [];
  let at = CHUNK_HEADER_BYTES + 4 * n;
  for (const l of shape.layers) {
    out.push({ type: l.kType, start: at, end: at + n * l.kRowBytes });
    at += n * l.kRowBytes;
    out.push({ type: l.vType, start: at, end: at + n * l.vRowBytes });
    at += n * l.vRowBytes;
  }
  return out;
}

describe('frames: lossless', () => {
  it.each(specs)('round-trip every chunk and the tail exactly, and the state file assembles the same: $name', ({ spec }) => {
    const cut = syntheticChunks(spec, 128);
    const all = [...cut.chunks, ...(cut.tail ? [cut.tail] : [])];
    const decoded: Uint8Array[] = [];
    for (const chunk of all) {
      const stored = value(encodeChunk(cut.shape, chunk.payload, 'lossless', kernels));
      expect(storedMode(stored)).toBe('lossless');
      expect(stored.byteLength).toBeLessThan(chunk.payload.byteLength);
      expect(value(decodedSize(stored))).toBe(chunk.payload.byteLength);
      const back = value(decodeChunk(cut.shape, stored, kernels));
      expect(same(back, chunk.payload)).toBe(true);
      decoded.push(back);
    }
    const original = value(assembleStateFile(cut.shape, all.map((c) => c.payload)));
    expect(same(value(assembleStateFile(cut.shape, decoded)), original)).toBe(true);
  });

  it('shuffle F16 (low bytes raw, high bytes through zstd) and store quantized sections through zstd', () => {
    const f16 = syntheticChunks(specs[0]!.spec, 128);
    const stored = value(encodeChunk(f16.shape, f16.chunks[0]!.payload, 'lossless', kernels));
    // Header and tokens raw, then every F16 section as one merged shuffle.
    expect(partsOf(stored)).toEqual([
      { kind: PART_COPY, a: 0, b: 0, outBytes: CHUNK_HEADER_BYTES + 4 * 128 },
      { kind: PART_SHUFFLE16, a: 0, b: 1, outBytes: f16.chunks[0]!.payload.byteLength - CHUNK_HEADER_BYTES - 4 * 128 },
    ]);
    const q8 = syntheticChunks(specs[2]!.spec, 128);
    const q8Stored = value(encodeChunk(q8.shape, q8.chunks[0]!.payload, 'lossless', kernels));
    expect(partsOf(q8Stored).map((p) => [p.kind, p.a])).toEqual([
      [PART_COPY, 0],
      [PART_COPY, 1],
    ]);
  });

  it('decodes into the caller\'s buffer, and a raw payload as itself', () => {
    const cut = syntheticChunks(specs[1]!.spec, 128);
    const payload = cut.chunks[0]!.payload;
    const stored = value(encodeChunk(cut.shape, payload, 'lossless', kernels));
    const out = new Uint8Array(payload.byteLength + 100);
    const back = value(decodeChunk(cut.shape, stored, kernels, out));
    expect(back.buffer).toBe(out.buffer);
    expect(back.byteOffset).toBe(0);
    expect(back.byteLength).toBe(payload.byteLength);
    expect(same(back, payload)).toBe(true);
    // Too small: a new buffer, the same bytes.
    const small = new Uint8Array(10);
    const fresh = value(decodeChunk(cut.shape, stored, kernels, small));
    expect(fresh.buffer).not.toBe(small.buffer);
    expect(same(fresh, payload)).toBe(true);
    // off: the payload itself, decoded as itself.
    const off = value(encodeChunk(cut.shape, payload, 'off', kernels));
    expect(off).toBe(payload);
    expect(storedMode(off)).toBe('off');
    expect(value(decodeChunk(cut.shape, off, kernels, out))).toBe(off);
    expect(value(decodedSize(off))).toBe(payload.byteLength);
  });

  it('stores a payload that would not shrink as it is', () => {
    const cut = syntheticChunks(specs[2]!.spec, 128);
    const payload = Buffer.from(cut.chunks[0]!.payload);
    // Random bytes in the K/V sections: incompressible.
    const rand = prng(9);
    for (let i = CHUNK_HEADER_BYTES + 4 * 128; i < payload.length; i++) payload[i] = Math.floor(rand() * 256);
    expect(value(encodeChunk(cut.shape, payload, 'lossless', kernels))).toBe(payload);
  });

  it('refuses payloads of another shape and unknown modes', () => {
    const a = syntheticChunks(specs[0]!.spec, 128);
    const b = syntheticChunks(specs[1]!.spec, 128);
    expect(encodeChunk(b.shape, a.chunks[0]!.payload, 'lossless', kernels).ok).toBe(false);
    expect(encodeChunk(a.shape, a.chunks[0]!.payload, 'zip' as never, kernels).ok).toBe(false);
    const stored = value(encodeChunk(a.shape, a.chunks[0]!.payload, 'lossless', kernels));
    expect(decodeChunk(b.shape, stored, kernels).ok).toBe(false);
  });
});

describe('frames: lossy', () => {
  it('applies when some section is F16', () => {
    const shapeOf = (spec: SyntheticState): StateShape => syntheticChunks(spec, 128).shape;
    expect(lossyApplies(shapeOf(specs[0]!.spec))).toBe(true);
    expect(lossyApplies(shapeOf(specs[2]!.spec))).toBe(false);
    expect(lossyApplies(shapeOf(specs[3]!.spec))).toBe(true);
    expect(lossyApplies(shapeOf(specs[5]!.spec))).toBe(false);
  });

  it.each(specs)('keeps F16 within q8_0 error and every other byte exact: $name', ({ spec }) => {
    const cut = syntheticChunks(spec, 128);
    for (const chunk of [...cut.chunks, cut.tail!]) {
      const payload = chunk.payload;
      const stored = value(encodeChunk(cut.shape, payload, 'lossy', kernels));
      const back = value(decodeChunk(cut.shape, stored, kernels));
      expect(back.byteLength).toBe(payload.byteLength);
      expect(storedMode(stored)).toBe(lossyApplies(cut.shape) ? 'lossy' : 'lossless');
      const n = chunk.tokens.length;
      expect(same(back.subarray(0, CHUNK_HEADER_BYTES + 4 * n), payload.subarray(0, CHUNK_HEADER_BYTES + 4 * n))).toBe(true);
      for (const section of sectionRanges(cut.shape, n)) {
        const want = payload.subarray(section.start, section.end);
        const got = back.subarray(section.start, section.end);
        if (section.type !== GGML_F16) {
          expect(same(got, want)).toBe(true);
          continue;
        }
        // q8_0: half a step (amax / 127) of rounding, plus the scale's own f16 rounding (≤ 127 ×
        // 2^-11 steps) and the result's f16 rounding.
        const w = f16Values(want);
        const g = f16Values(got);
        let worst = 0;
        for (let b = 0; b < w.length; b += 32) {
          const block = w.slice(b, b + 32);
          const step = Math.max(...block.map(Math.abs)) / 127;
          for (let j = 0; j < block.length; j++) {
            const bound = step * 0.57 + Math.abs(block[j]!) * 2 ** -11 + 1e-7;
            worst = Math.max(worst, Math.abs(g[b + j]! - block[j]!) / bound);
          }
        }
        expect(worst).toBeLessThanOrEqual(1);
      }
    }
  });

  it('is about half the size of F16', () => {
    const cut = syntheticChunks(specs[0]!.spec, 128);
    const payload = cut.chunks[0]!.payload;
    const stored = value(encodeChunk(cut.shape, payload, 'lossy', kernels));
    expect(stored.byteLength / payload.byteLength).toBeLessThan(0.56);
    expect(partsOf(stored).filter((p) => p.kind === PART_Q8_0)).toHaveLength(6);
  });

  it('stores a section holding a NaN losslessly', () => {
    for (const vTrans of [false, true]) {
      const cut = syntheticChunks({ tokens: 128, layers: f16Layers(2), vTrans, nan: { layer: 1, which: 'v', token: 5 } }, 128);
      const payload = cut.chunks[0]!.payload;
      const stored = value(encodeChunk(cut.shape, payload, 'lossy', kernels));
      const frame = Buffer.from(stored);
      expect(frame[6]).toBe(FRAME_MODE_LOSSY);
      expect(partsOf(stored).map((p) => p.kind)).toEqual([PART_COPY, PART_Q8_0, PART_Q8_0, PART_Q8_0, PART_SHUFFLE16]);
      const back = value(decodeChunk(cut.shape, stored, kernels));
      const v = sectionRanges(cut.shape, 128)[3]!;
      expect(same(back.subarray(v.start, v.end), payload.subarray(v.start, v.end))).toBe(true);
    }
  });

  it('marks a quantized cache\'s frame lossless', () => {
    const cut = syntheticChunks(specs[2]!.spec, 128);
    const stored = value(encodeChunk(cut.shape, cut.chunks[0]!.payload, 'lossy', kernels));
    expect(Buffer.from(stored)[6]).toBe(FRAME_MODE_LOSSLESS);
    expect(same(value(decodeChunk(cut.shape, stored, kernels)), cut.chunks[0]!.payload)).toBe(true);
  });
});

describe('frames: damaged and hostile input', () => {
  const cut = syntheticChunks(specs[1]!.spec, 64);
  const payload = cut.chunks[0]!.payload;
  const lossless = Buffer.from(value(encodeChunk(cut.shape, payload, 'lossless', kernels)));
  const lossy = Buffer.from(value(encodeChunk(cut.shape, payload, 'lossy', kernels)));

  /** Decodes into a guarded buffer: whatever happens, nothing past the raw size is written. */
  function decodeGuarded(stored: Uint8Array): { ok: boolean } {
    const out = new Uint8Array(payload.byteLength + 64).fill(0xa5);
    let result: { ok: boolean };
    expect(() => {
      result = decodeChunk(cut.shape, stored, kernels, out);
    }).not.toThrow();
    expect(out.subarray(payload.byteLength).every((b) => b === 0xa5)).toBe(true);
    return result!;
  }

  it('fails cleanly at every truncation', () => {
    for (const frame of [lossless, lossy]) {
      for (let len = 0; len < frame.length; len += len < 200 ? 1 : 97) {
        const result = decodeGuarded(frame.subarray(0, len));
        expect(result.ok).toBe(false);
      }
      expect(decodeGuarded(Buffer.concat([frame, Buffer.alloc(1)])).ok).toBe(false);
    }
  });

  it('never throws or overruns on flipped bytes; header and part-table damage is always caught', () => {
    for (const frame of [lossless, lossy]) {
      const table = FRAME_HEADER_BYTES + FRAME_PART_BYTES * frame.readUInt16LE(24);
      for (let i = 0; i < frame.length; i += i < table + 64 ? 1 : 61) {
        for (const mask of i < table + 64 ? [0x01, 0x80, 0xff] : [0x10]) {
          const bad = Buffer.from(frame);
          bad[i] = bad[i]! ^ mask;
          const result = decodeGuarded(bad);
          // The header, the part table and the payload header's layout fields are cross-checked;
          // flips in the start token, the reserved word, tokens or K/V bytes are the chunk file
          // checksum's to catch.
          const payloadField = i - table;
          const checked = payloadField < 0 || (payloadField < CHUNK_HEADER_BYTES && !(payloadField >= 12 && payloadField < 16) && payloadField < 28);
          if (checked) expect(result.ok, `byte ${i} ^ ${mask}`).toBe(false);
        }
      }
    }
  });

  it('rejects lying lengths', () => {
    const lie = (offset: number, v: number, bytes: 2 | 4 = 4): Buffer => {
      const b = Buffer.from(lossless);
      if (bytes === 4) b.writeUInt32LE(v >>> 0, offset);
      else b.writeUInt16LE(v, offset);
      return b;
    };
    const raw = lossless.readUInt32LE(8);
    const zDecoded = lossless.readUInt32LE(20);
    for (const b of [
      lie(8, raw + 2),
      lie(8, 0xffffffff),
      lie(12, lossless.readUInt32LE(12) + 1),
      lie(16, lossless.readUInt32LE(16) - 1),
      lie(20, zDecoded + 2),
      lie(20, 0xffffffff),
      lie(24, 1, 2),
      lie(24, 0xffff, 2),
      lie(FRAME_HEADER_BYTES + 4, CHUNK_HEADER_BYTES + 4 * 64 - 2),
      lie(FRAME_HEADER_BYTES + 12, 0xfffffffe),
    ]) {
      expect(decodeGuarded(b).ok).toBe(false);
    }
    // A shuffle moved onto the payload header, and a q8_0 part in a lossless frame.
    const moved = Buffer.from(lossless);
    moved[FRAME_HEADER_BYTES] = PART_SHUFFLE16;
    expect(decodeGuarded(moved).ok).toBe(false);
    const q8 = Buffer.from(lossless);
    q8[FRAME_HEADER_BYTES + FRAME_PART_BYTES] = PART_Q8_0;
    expect(decodeGuarded(q8).ok).toBe(false);
    // A frame whose parts are consistent but claim a longer payload than its header says.
    expect(decodedSize(Buffer.from('HKVZ')).ok).toBe(false);
    expect(decodedSize(Buffer.from('nope....')).ok).toBe(false);
  });

  it('a damaged Z stream is an error, not a crash', () => {
    const rStart = FRAME_HEADER_BYTES + FRAME_PART_BYTES * lossless.readUInt16LE(24);
    const zStart = rStart + lossless.readUInt32LE(12);
    let failures = 0;
    for (let i = zStart; i < lossless.length; i += 7) {
      const bad = Buffer.from(lossless);
      bad[i] = bad[i]! ^ 0x5a;
      if (!decodeGuarded(bad).ok) failures++;
    }
    expect(failures).toBeGreaterThan(0);
  });
});

describe('frames: native and fallback kernels', () => {
  it('give the same frame bytes (when the addon is built)', () => {
    const native = nativeKernels();
    if (native === null) {
      console.log('frame.test: the native addon is not available; only the fallback was checked');
      return;
    }
    for (const { spec } of specs) {
      const cut = syntheticChunks(spec, 128);
      for (const chunk of [...cut.chunks, cut.tail!]) {
        for (const mode of ['lossless', 'lossy'] as const) {
          const a = value(encodeChunk(cut.shape, chunk.payload, mode, fallbackKernels));
          const b = value(encodeChunk(cut.shape, chunk.payload, mode, native));
          expect(same(a, b)).toBe(true);
          expect(same(value(decodeChunk(cut.shape, a, native)), value(decodeChunk(cut.shape, a, fallbackKernels)))).toBe(true);
        }
      }
    }
  });
});

describe('frames: headers', () => {
  it('decodedSize reads the raw size from the header alone', () => {
    const cut = syntheticChunks(specs[0]!.spec, 128);
    const stored = value(encodeChunk(cut.shape, cut.tail!.payload, 'lossy', kernels));
    expect(value(decodedSize(stored.subarray(0, FRAME_HEADER_BYTES)))).toBe(cut.tail!.payload.byteLength);
    expect(readChunkHeader(value(decodeChunk(cut.shape, stored, kernels)), cut.shape).ok).toBe(true);
  });
});
