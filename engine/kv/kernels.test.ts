import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compareKernels, rng } from '../../test/support/kernels-compare.ts';
import { fallbackKernels as fb } from './kernels-fallback.ts';
import { nativeKernels } from './kernels-load.ts';
import { q8_0Bytes } from './kernels.ts';
import type { CodecKernels } from './kernels.ts';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const f16Bytes = (bits: number[]): Uint8Array => new Uint8Array(new Uint16Array(bits).buffer);
const f16Bits = (bytes: Uint8Array): number[] => [...new Uint16Array(bytes.slice().buffer)];

function randomBytes(next: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next();
  return out;
}

/** `bytes` copied to byte offset `offset` of a fresh buffer (exercises unaligned views). */
function at(bytes: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(bytes.length + offset + 3), offset, bytes.length);
  out.set(bytes);
  return out;
}

describe('fallback kernels, hand-checked vectors', () => {
  it('crc32c matches the check value, seeds and splits', () => {
    expect(fb.crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(fb.crc32c(new Uint8Array(0))).toBe(0);
    expect(fb.crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    expect(fb.crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
    const data = ascii('The quick brown fox jumps over the lazy dog, twice over.');
    for (const cut of [0, 1, 7, 8, 9, 30, data.length]) {
      expect(fb.crc32c(data.subarray(cut), fb.crc32c(data.subarray(0, cut)))).toBe(fb.crc32c(data));
    }
    expect(fb.crc32c(at(data, 3))).toBe(fb.crc32c(data));
  });

  it('shuffles and unshuffles 16-bit values', () => {
    const src = Uint8Array.of(1, 2, 3, 4, 5, 6);
    const lo = new Uint8Array(3);
    const hi = new Uint8Array(3);
    fb.shuffle16(src, lo, hi);
    expect([...lo]).toEqual([1, 3, 5]);
    expect([...hi]).toEqual([2, 4, 6]);
    const back = at(new Uint8Array(6), 1);
    fb.unshuffle16(lo, hi, back);
    expect([...back]).toEqual([1, 2, 3, 4, 5, 6]);
    fb.shuffle16(at(src, 1), lo, hi);
    expect([...hi]).toEqual([2, 4, 6]);
  });

  it('quantizes a known block (ties round away from zero)', () => {
    // -16 … 15: amax 16, d = 16/127 (f16 0x3008), id = 7.9375, so ±8 hit ±63.5 exactly.
    const values = Array.from({ length: 32 }, (_, j) => j - 16);
    const src = f16Bytes(values.map((v) => f16Of(v)));
    const dst = new Uint8Array(34);
    expect(fb.f16ToQ8_0(src, dst)).toBe(true);
    expect(dst[0]! | (dst[1]! << 8)).toBe(0x3008);
    expect([...new Int8Array(dst.buffer, 2, 32)]).toEqual([
      -127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8, 0, 8, 16, 24, 32, 40, 48,
      56, 64, 71, 79, 87, 95, 103, 111, 119,
    ]);
  });

  it('pads a partial final block with zeros', () => {
    // 0.5, -0.25, 0.1 (f16 0x2e66), -1.5, 2: d = 2/127 (0x2408), id = 63.5.
    const src = f16Bytes([0x3800, 0xb400, 0x2e66, 0xbe00, 0x4000]);
    const dst = new Uint8Array(34).fill(0x55);
    expect(q8_0Bytes(5)).toBe(34);
    expect(fb.f16ToQ8_0(src, dst)).toBe(true);
    expect(dst[0]! | (dst[1]! << 8)).toBe(0x2408);
    expect([...new Int8Array(dst.buffer, 2, 32)]).toEqual([32, -16, 6, -95, 127, ...Array<number>(27).fill(0)]);
    const back = new Uint8Array(10);
    fb.q8_0ToF16(dst, back);
    // 32 × d etc., rounded to f16: 32·(2/127) = 0.50394 → 0x3808.
    const d = f32(2 / 127);
    expect(f16Bits(back)).toEqual([32, -16, 6, -95, 127].map((q) => f16Of(f32(q * f32FromF16(0x2408)))));
    expect(f16Bits(back)[0]).toBe(0x3808);
    expect(d).toBeCloseTo(0.015748, 5);
  });

  it('gives d = 0 and q = 0 for an all-zero block, and -0 for negative zeros', () => {
    const dst = new Uint8Array(68).fill(7);
    expect(fb.f16ToQ8_0(f16Bytes([...Array<number>(32).fill(0), ...Array<number>(32).fill(0x8000)]), dst)).toBe(true);
    expect([...dst]).toEqual(Array<number>(68).fill(0));
  });

  it('refuses NaN and infinities', () => {
    for (const bad of [0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff]) {
      const src = f16Bytes([0x3c00, 0x4000, bad, 0]);
      expect(fb.f16ToQ8_0(src, new Uint8Array(34))).toBe(false);
    }
    // In a later block too.
    const src = new Uint16Array(40);
    src[37] = 0x7c00;
    expect(fb.f16ToQ8_0(new Uint8Array(src.buffer), new Uint8Array(68))).toBe(false);
  });

  it('expands to f16 with round-to-nearest-even, subnormals and overflow', () => {
    // d = 65504 (0x7bff): 1 × d = 65504; 2 × d overflows to infinity.
    // d = 2^-24 (0x0001, the smallest subnormal): q × d is exact as a subnormal.
    // d = 0.5 (0x3800) × -0 patterns; d = -0 gives -0 for q ≥ 0.
    const src = new Uint8Array(4 * 34);
    const set = (block: number, d: number, qs: number[]): void => {
      src[block * 34] = d;
      src[block * 34 + 1] = d >>> 8;
      new Int8Array(src.buffer, block * 34 + 2, 32).set(qs);
    };
    set(0, 0x7bff, [1, 2, -1, -2, 0]);
    set(1, 0x0001, [1, -1, 127, -128, 0]);
    set(2, 0x8000, [0, 1, -1]);
    // 0x3c01 = 1 + 2^-10; × 3 = 3 + 3·2^-10, exactly between 3 + 2^-9 (0x4201, odd mantissa)
    // and 3 + 2^-8 (0x4202, even): the tie goes to 0x4202.
    set(3, 0x3c01, [3, 1, -3]);
    const dst = new Uint8Array(4 * 64);
    fb.q8_0ToF16(src, dst);
    const out = f16Bits(dst);
    expect(out.slice(0, 5)).toEqual([0x7bff, 0x7c00, 0xfbff, 0xfc00, 0]);
    expect(out.slice(32, 37)).toEqual([0x0001, 0x8001, 0x007f, 0x8080, 0]);
    expect(out.slice(64, 67)).toEqual([0x8000, 0x8000, 0x0000]);
    expect(out.slice(96, 99)).toEqual([0x4202, 0x3c01, 0xc202]);
  });

  it('pins the result of a non-finite scale (damaged data)', () => {
    const src = new Uint8Array(34 * 2);
    src.set([0x00, 0x7c], 0); // +∞
    new Int8Array(src.buffer, 2, 3).set([1, -1, 0]);
    src.set([0x01, 0xfe], 34); // a NaN
    new Int8Array(src.buffer, 36, 2).set([1, 0]);
    const dst = new Uint8Array(2 * 64);
    fb.q8_0ToF16(src, dst);
    const out = f16Bits(dst);
    expect(out.slice(0, 3)).toEqual([0x7c00, 0xfc00, 0x7e00]);
    expect(out.slice(32, 34)).toEqual([0x7e00, 0x7e00]);
  });

  it('round-trips every finite f16 through f32 bits', () => {
    // Quantizing a block whose amax is 127 × 2^k gives d = 2^k, and q × d = the value when it is an
    // integer multiple of d: checks the f32 → f16 path at every exponent, subnormals included.
    for (let k = -24; k <= 8; k++) {
      const d = 2 ** k;
      const values = [127 * d, -127 * d, d, -d, 64 * d, 0];
      const bits = values.map((v) => f16Of(v));
      if (bits.some((b) => (b & 0x7c00) === 0x7c00)) continue;
      const q = new Uint8Array(34);
      expect(fb.f16ToQ8_0(f16Bytes(bits), q)).toBe(true);
      const back = new Uint8Array(values.length * 2);
      fb.q8_0ToF16(q, back);
      expect(f16Bits(back)).toEqual(bits);
    }
  });

  it('rejects wrong lengths with a RangeError', () => {
    expect(() => fb.shuffle16(new Uint8Array(3), new Uint8Array(1), new Uint8Array(1))).toThrow(RangeError);
    expect(() => fb.shuffle16(new Uint8Array(4), new Uint8Array(1), new Uint8Array(2))).toThrow(RangeError);
    expect(() => fb.unshuffle16(new Uint8Array(2), new Uint8Array(2), new Uint8Array(2))).toThrow(RangeError);
    expect(() => fb.f16ToQ8_0(new Uint8Array(64), new Uint8Array(33))).toThrow(RangeError);
    expect(() => fb.q8_0ToF16(new Uint8Array(33), new Uint8Array(64))).toThrow(RangeError);
  });
});

/** A float rounded to float32. */
function f32(x: number): number {
  return Math.fround(x);
}

/** The f16 bits of `x`, computed independently of the kernels (exact rational arithmetic). */
function f16Of(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  let a = Math.abs(x);
  if (a === 0) return sign;
  if (a >= 65520) return sign | 0x7c00;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const step = e < -14 ? 2 ** -24 : 2 ** (e - 10);
  a /= step;
  let m = Math.floor(a);
  const rest = a - m;
  if (rest > 0.5 || (rest === 0.5 && m % 2 === 1)) m++;
  if (e < -14) return sign | m; // subnormal (m may carry to 0x400, the smallest normal)
  // m in [1024, 2048]: the implicit bit plus the mantissa; 2048 carries into the exponent.
  return sign | (((e + 15) << 10) + (m - 1024));
}

function f32FromF16(h: number): number {
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1024 + m) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

// ---------------------------------------------------------------------------------------------
// Native vs fallback: byte-identical on random data.

const native = nativeKernels();

/** Byte equality without vitest's deep diff (slow on large arrays): a mismatch names its offset. */
function expectSame(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      first = i;
      break;
    }
  }
  const around = (b: Uint8Array): number[] => [...b.subarray(Math.max(0, first - 4), first + 4)];
  expect(first === -1 ? 'equal' : `differ at ${first}: ${around(actual).join(',')} vs ${around(expected).join(',')}`, what).toBe('equal');
}

describe('native kernels', () => {
  it('load (run `npm run build:native` if this fails)', () => {
    expect(
      native,
      'the native addon did not load: run `npm run build:native` (needs a C++ toolchain and Python)',
    ).not.toBeNull();
    expect(native?.kind).toBe('native');
  });

  const nk = (): CodecKernels => {
    if (!native) throw new Error('the native addon is not built: run `npm run build:native`');
    return native;
  };

  const lengths = [0, 1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000, 4097, 65_537];

  it('shuffle16 / unshuffle16 are identical', () => {
    const next = rng(1);
    for (const n of lengths) {
      for (const offset of [0, 1]) {
        const src = at(randomBytes(next, 2 * n), offset);
        const plane = (): Uint8Array => at(new Uint8Array(n), offset ^ 1);
        const [lo1, hi1, lo2, hi2] = [plane(), plane(), plane(), plane()];
        fb.shuffle16(src, lo1, hi1);
        nk().shuffle16(src, lo2, hi2);
        expectSame(lo2, lo1, 'lo2');
        expectSame(hi2, hi1, 'hi2');
        const d1 = at(new Uint8Array(2 * n), offset);
        const d2 = at(new Uint8Array(2 * n), offset);
        fb.unshuffle16(lo1, hi1, d1);
        nk().unshuffle16(lo1, hi1, d2);
        expectSame(d2, d1, 'd2');
        expectSame(d1, src, 'd1');
      }
    }
  });

  /** Random f16 patterns weighted toward the edges: subnormals, ±0, values near 65504. */
  function randomF16(next: () => number, n: number, finite: boolean): Uint8Array {
    const out = new Uint16Array(n);
    const scale = next() % 5;
    for (let i = 0; i < n; i++) {
      const r = next();
      let h: number;
      switch ((r >>> 24) % 8) {
        case 0:
          h = r & 0x83ff; // subnormal or ±0
          break;
        case 1:
          h = (r & 0x8000) | 0x7800 | (r & 0x3ff); // 32768 … 65504
          break;
        case 2:
          h = r & 0x8000; // ±0
          break;
        default:
          h = scale === 0 ? r & 0xffff : (r & 0x8000) | ((((r >>> 10) & 7) + 4 * scale + 2) << 10) | (r & 0x3ff);
      }
      if (finite && (h & 0x7c00) === 0x7c00) h = 0x7bff;
      out[i] = h;
    }
    return new Uint8Array(out.buffer);
  }

  it('f16ToQ8_0 is identical, and both refuse NaN/Inf', () => {
    const next = rng(2);
    for (let round = 0; round < 20; round++) {
      for (const n of lengths) {
        const src = at(randomF16(next, n, round % 4 !== 3), round & 1);
        const d1 = at(new Uint8Array(q8_0Bytes(n)), round & 1);
        const d2 = at(new Uint8Array(q8_0Bytes(n)).fill(0xaa), 1 - (round & 1));
        const ok1 = fb.f16ToQ8_0(src, d1);
        const ok2 = nk().f16ToQ8_0(src, d2);
        expect(ok2).toBe(ok1);
        if (ok1) expectSame(d2, d1, 'd2');
      }
    }
    for (const bad of [0x7c00, 0xfc00, 0x7e00, 0xfd01]) {
      const src = new Uint16Array(100);
      src[99] = bad;
      const bytes = new Uint8Array(src.buffer);
      expect(fb.f16ToQ8_0(bytes, new Uint8Array(q8_0Bytes(100)))).toBe(false);
      expect(nk().f16ToQ8_0(bytes, new Uint8Array(q8_0Bytes(100)))).toBe(false);
    }
  });

  it('q8_0ToF16 is identical on random blocks and scales', () => {
    const next = rng(3);
    for (let round = 0; round < 20; round++) {
      for (const n of lengths) {
        const src = at(randomBytes(next, q8_0Bytes(n)), round & 1);
        for (let b = 0; b < src.length; b += 34) {
          const r = next();
          let d: number;
          switch (r % 8) {
            case 0:
              d = r & 0x83ff; // subnormal or ±0
              break;
            case 1:
              d = (r >>> 8) & 0xffff; // anything, NaN and infinities included
              break;
            case 2:
              d = (r & 0x8000) | 0x7800 | ((r >>> 8) & 0x3ff); // overflows for most q
              break;
            default:
              d = (r & 0x8000) | ((((r >>> 8) % 20) + 2) << 10) | ((r >>> 12) & 0x3ff);
          }
          src[b] = d;
          src[b + 1] = d >>> 8;
        }
        const d1 = at(new Uint8Array(2 * n), round & 1);
        const d2 = at(new Uint8Array(2 * n), 1 - (round & 1));
        fb.q8_0ToF16(src, d1);
        nk().q8_0ToF16(src, d2);
        expectSame(d2, d1, 'd2');
      }
    }
  });

  it('q8_0ToF16 is identical for every (scale, q) pair', () => {
    // 65,536 scales × 256 int8 values: eight blocks per scale cover every q once.
    const blocks = 65536 * 8;
    const src = new Uint8Array(blocks * 34);
    for (let b = 0; b < blocks; b++) {
      const d = b >>> 3;
      src[b * 34] = d;
      src[b * 34 + 1] = d >>> 8;
      for (let j = 0; j < 32; j++) src[b * 34 + 2 + j] = ((b & 7) << 5) | j;
    }
    const d1 = new Uint8Array(blocks * 64);
    const d2 = new Uint8Array(blocks * 64);
    fb.q8_0ToF16(src, d1);
    nk().q8_0ToF16(src, d2);
    expectSame(d2, d1, 'every (scale, q)');
  });

  it('q8_0 round trips match through both', () => {
    const next = rng(4);
    const n = 32 * 500 + 13;
    const src = randomF16(next, n, true);
    const q1 = new Uint8Array(q8_0Bytes(n));
    const q2 = new Uint8Array(q8_0Bytes(n));
    expect(fb.f16ToQ8_0(src, q1)).toBe(true);
    expect(nk().f16ToQ8_0(src, q2)).toBe(true);
    expectSame(q2, q1, 'q2');
    const b1 = new Uint8Array(2 * n);
    const b2 = new Uint8Array(2 * n);
    fb.q8_0ToF16(q1, b1);
    nk().q8_0ToF16(q1, b2);
    expectSame(b2, b1, 'b2');
  });

  it('crc32c is identical with seeds and split buffers', () => {
    const next = rng(5);
    expect(nk().crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(nk().crc32c(new Uint8Array(0), 0x12345678)).toBe(0x12345678);
    for (const n of [...lengths, 300_000]) {
      const data = randomBytes(next, n);
      const seed = next();
      for (const offset of [0, 1, 5]) {
        const view = at(data, offset);
        expect(nk().crc32c(view)).toBe(fb.crc32c(view));
        expect(nk().crc32c(view, seed)).toBe(fb.crc32c(view, seed));
      }
      const cut = n >>> 1;
      expect(nk().crc32c(data.subarray(cut), nk().crc32c(data.subarray(0, cut)))).toBe(fb.crc32c(data));
    }
  });

  it('agrees on the shared comparison in-process', () => {
    expect(compareKernels(nk(), fb, 11)).toEqual([]);
  });

  // The CPU here picks the AVX2/F16C/SSE4.2 paths; the addon's portable and SSE2 code (what other
  // CPUs run) is checked in child processes that tell the addon to use it.
  it.each(['portable', 'sse2'])('its %s paths are identical too', (simd) => {
    nk();
    const script = [
      `import { compareKernels } from ${JSON.stringify(fileURLToPath(new URL('../../test/support/kernels-compare.ts', import.meta.url)))};`,
      `import { fallbackKernels } from ${JSON.stringify(fileURLToPath(new URL('./kernels-fallback.ts', import.meta.url)))};`,
      `import { nativeKernels, nativeStatus } from ${JSON.stringify(fileURLToPath(new URL('./kernels-load.ts', import.meta.url)))};`,
      'const k = nativeKernels();',
      'console.log(JSON.stringify({ status: nativeStatus(), problems: k ? compareKernels(k, fallbackKernels, 12) : ["no addon"] }));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
      env: { ...process.env, HEARTH_KV_SIMD: simd },
      encoding: 'utf8',
    });
    const result = JSON.parse(out) as { status: { features?: string }; problems: string[] };
    expect(result.status.features).toBe(simd);
    expect(result.problems).toEqual([]);
  });

  it('rejects misuse with TypeError/RangeError instead of touching memory', () => {
    const k = nk();
    expect(() => k.shuffle16(new Uint8Array(3), new Uint8Array(1), new Uint8Array(1))).toThrow(RangeError);
    expect(() => k.shuffle16(new Uint8Array(4), new Uint8Array(1), new Uint8Array(2))).toThrow(RangeError);
    expect(() => k.unshuffle16(new Uint8Array(2), new Uint8Array(2), new Uint8Array(2))).toThrow(RangeError);
    expect(() => k.f16ToQ8_0(new Uint8Array(64), new Uint8Array(33))).toThrow(RangeError);
    expect(() => k.q8_0ToF16(new Uint8Array(33), new Uint8Array(64))).toThrow(RangeError);
    expect(() => k.q8_0ToF16(new Uint8Array(34), new Uint8Array(66))).toThrow(RangeError);
    const bad = [1, 2] as unknown as Uint8Array;
    expect(() => k.crc32c(bad)).toThrow(TypeError);
    expect(() => k.unshuffle16(bad, bad, new Uint8Array(4))).toThrow(TypeError);
    expect(() => k.crc32c(new Uint8Array(1), 'x' as unknown as number)).toThrow(TypeError);
  });
});
