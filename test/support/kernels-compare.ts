/**
 * Tests only: runs two kernel implementations over the same seeded random inputs and lists every
 * difference. kernels.test.ts runs it in-process and in child processes whose addon was told to
 * use its portable or SSE2 paths (HEARTH_KV_SIMD), so the paths this CPU would not pick are
 * checked too.
 */
import { q8_0Bytes } from '../../engine/kv/kernels.ts';
import type { CodecKernels } from '../../engine/kv/kernels.ts';

/** A seeded xorshift32, so a failure reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** A fresh buffer of `length` bytes starting at an odd or even offset. */
function buffer(length: number, offset: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(length + 4), offset, length);
}

/** Random f16 bits weighted toward the edges: subnormals, ±0, values near 65504, NaN/Inf. */
function randomF16(next: () => number, n: number, offset: number, finite: boolean): Uint8Array {
  const out = buffer(2 * n, offset);
  const scale = next() % 5;
  for (let i = 0; i < n; i++) {
    const r = next();
    let h: number;
    switch ((r >>> 24) % 8) {
      case 0:
        h = r & 0x83ff;
        break;
      case 1:
        h = (r & 0x8000) | 0x7800 | (r & 0x3ff);
        break;
      case 2:
        h = r & 0x8000;
        break;
      default:
        h = scale === 0 ? r & 0xffff : (r & 0x8000) | ((((r >>> 10) & 7) + 4 * scale + 2) << 10) | (r & 0x3ff);
    }
    if (finite && (h & 0x7c00) === 0x7c00) h = 0x7bff;
    out[2 * i] = h;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

const LENGTHS = [0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 4097, 40_000];

/** Every way `actual` differs from `expected` on seeded random inputs (empty: identical). */
export function compareKernels(actual: CodecKernels, expected: CodecKernels, seed: number): string[] {
  const next = rng(seed);
  const problems: string[] = [];
  const same = (what: string, a: Uint8Array, b: Uint8Array): void => {
    const at = firstDifference(a, b);
    if (at >= 0) problems.push(`${what}: first difference at byte ${at}`);
  };
  for (const n of LENGTHS) {
    for (const offset of [0, 1]) {
      const src = buffer(2 * n, offset);
      for (let i = 0; i < src.length; i++) src[i] = next();
      const lo = [buffer(n, 1 - offset), buffer(n, offset)] as const;
      const hi = [buffer(n, offset), buffer(n, 1 - offset)] as const;
      actual.shuffle16(src, lo[0], hi[0]);
      expected.shuffle16(src, lo[1], hi[1]);
      same(`shuffle16 lo n=${n}`, lo[0], lo[1]);
      same(`shuffle16 hi n=${n}`, hi[0], hi[1]);
      const dst = [buffer(2 * n, offset), buffer(2 * n, 1 - offset)] as const;
      actual.unshuffle16(lo[1], hi[1], dst[0]);
      expected.unshuffle16(lo[1], hi[1], dst[1]);
      same(`unshuffle16 n=${n}`, dst[0], dst[1]);

      for (const finite of [true, false]) {
        const f16 = randomF16(next, n, offset, finite);
        const q = [buffer(q8_0Bytes(n), 1 - offset), buffer(q8_0Bytes(n), offset)] as const;
        const ok = [actual.f16ToQ8_0(f16, q[0]), expected.f16ToQ8_0(f16, q[1])];
        if (ok[0] !== ok[1]) problems.push(`f16ToQ8_0 n=${n}: returned ${ok[0]} vs ${ok[1]}`);
        else if (ok[0]) same(`f16ToQ8_0 n=${n}`, q[0], q[1]);
      }

      const q8 = buffer(q8_0Bytes(n), offset);
      for (let i = 0; i < q8.length; i++) q8[i] = next();
      for (let b = 0; b < q8.length; b += 34) {
        const r = next();
        // Mostly scales a real cache has; some subnormal, zero, huge or non-finite ones.
        const d = r % 4 === 0 ? (r >>> 8) & 0xffff : (r & 0x8000) | ((((r >>> 8) % 20) + 2) << 10) | ((r >>> 12) & 0x3ff);
        q8[b] = d;
        q8[b + 1] = d >>> 8;
      }
      const out = [buffer(2 * n, 1 - offset), buffer(2 * n, offset)] as const;
      actual.q8_0ToF16(q8, out[0]);
      expected.q8_0ToF16(q8, out[1]);
      same(`q8_0ToF16 n=${n}`, out[0], out[1]);
    }
  }
  for (const n of [0, 1, 7, 8, 9, 100, 767, 768, 769, 24_575, 24_576, 24_577, 100_003]) {
    const data = buffer(n, n & 3);
    for (let i = 0; i < n; i++) data[i] = next();
    const seedValue = next();
    const a = actual.crc32c(data, seedValue);
    const b = expected.crc32c(data, seedValue);
    if (a !== b) problems.push(`crc32c n=${n}: ${a} vs ${b}`);
  }
  return problems;
}
