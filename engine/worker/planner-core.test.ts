/** The planner's rules without a model: a fake estimator stands in for llama.cpp's. */
import { describe, expect, it } from 'vitest';
import type { DeviceMemory } from '../contract/index.ts';
import {
  budgetOf,
  buildPlan,
  cellsPerSlot,
  kvBytesPerToken,
  maxContextThatFits,
  pairName,
  pairOrder,
  pairRefusal,
  resolveFlashAttention,
  type KvPair,
  type ModelShape,
} from './planner-core.ts';
import { cpu, fakeEstimator, GiB, llama8b, MiB, noReserve, tiny } from '../../test/support/planner.ts';


const names = (pairs: readonly KvPair[]) => pairs.map(pairName);

describe('pair order', () => {
  it('covers every pair once, best first, quantizing V before K', () => {
    expect(pairOrder).toHaveLength(49);
    expect(new Set(names(pairOrder)).size).toBe(49);
    expect(names(pairOrder.slice(0, 7))).toEqual(['f16/f16', 'f16/q8_0', 'q8_0/f16', 'q8_0/q8_0', 'f16/q5_1', 'q8_0/q5_1', 'q5_1/f16']);
    expect(pairName(pairOrder.at(-1)!)).toBe('q4_0/q4_0');
    // V is quantized before K: f16/x always precedes x/f16.
    for (const type of ['q8_0', 'q5_1', 'q5_0', 'q4_1', 'iq4_nl', 'q4_0']) {
      expect(names(pairOrder).indexOf(`f16/${type}`)).toBeLessThan(names(pairOrder).indexOf(`${type}/f16`));
    }
  });

  it('agrees with the published KL divergences (docs/decisions/kv-quality.md)', () => {
    const measured = ['f16/f16', 'f16/q8_0', 'q8_0/f16', 'q8_0/q8_0', 'f16/q5_1'];
    const positions = measured.map((name) => names(pairOrder).indexOf(name));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });
});

describe('KV bytes per token', () => {
  it('matches the sizes docs/decisions/state-file-layout.md gives', () => {
    // Test model: 256 B/token/layer in F16, 136 in Q8_0.
    expect(kvBytesPerToken(tiny, { kType: 'f16', vType: 'f16' })).toBe(4 * 256);
    expect(kvBytesPerToken(tiny, { kType: 'q8_0', vType: 'q8_0' })).toBe(4 * 136);
    // Published: Llama-3.1-8B 128 KiB/token in F16; Q8_0 is 34/64 of that, Q4_0 18/64.
    expect(kvBytesPerToken(llama8b, { kType: 'f16', vType: 'f16' })).toBe(128 * 1024);
    expect(kvBytesPerToken(llama8b, { kType: 'q8_0', vType: 'q8_0' })).toBe((128 * 1024 * 34) / 64);
    expect(kvBytesPerToken(llama8b, { kType: 'q4_0', vType: 'q4_0' })).toBe((128 * 1024 * 18) / 64);
    expect(kvBytesPerToken(llama8b, { kType: 'f16', vType: 'q4_0' })).toBe(64 * 1024 + (64 * 1024 * 18) / 64);
  });

  it('pads contexts to 256 cells', () => {
    expect([1, 256, 257, 4096, 4097].map(cellsPerSlot)).toEqual([256, 256, 512, 4096, 4352]);
  });
});

describe('pair validation', () => {
  const hd16: ModelShape = { ...tiny, headDimK: 16, headDimV: 16 };

  it('needs flash attention for a quantized V only', () => {
    expect(pairRefusal(tiny, { kType: 'f16', vType: 'q8_0' }, false, 'cpu')).toMatchObject({ field: 'vType', message: expect.stringMatching(/flash attention/) });
    expect(pairRefusal(tiny, { kType: 'q8_0', vType: 'f16' }, false, 'cpu')).toBeNull();
    expect(pairRefusal({ ...tiny, flashAttentionSupported: false }, { kType: 'f16', vType: 'q4_0' }, false, 'cpu')?.message).toMatch(/does not support/);
  });

  it('refuses a block size that does not divide the head size, on K or V, with flash attention on or off', () => {
    expect(pairRefusal(hd16, { kType: 'q8_0', vType: 'f16' }, true, 'cpu')).toMatchObject({ field: 'kType', message: expect.stringMatching(/head size \(16\).*block size \(32\)/) });
    expect(pairRefusal(hd16, { kType: 'q8_0', vType: 'f16' }, false, 'cpu')?.field).toBe('kType');
    expect(pairRefusal(hd16, { kType: 'f16', vType: 'iq4_nl' }, true, 'cpu')?.field).toBe('vType');
    expect(pairRefusal(hd16, { kType: 'f16', vType: 'f16' }, true, 'cpu')).toBeNull();
  });

  it("follows each backend's flash-attention kernels", () => {
    for (const pair of pairOrder) expect(pairRefusal(tiny, pair, true, 'cpu')).toBeNull();
    for (const pair of pairOrder) expect(pairRefusal(tiny, pair, true, 'vulkan')).toBeNull();
    const cuda = pairOrder.filter((pair) => pairRefusal(tiny, pair, true, 'cuda') === null);
    expect(names(cuda)).toEqual(['f16/f16', 'q8_0/q8_0', 'q4_0/q4_0']);
    const metal = pairOrder.filter((pair) => pairRefusal(tiny, pair, true, 'metal') === null);
    expect(names(metal)).toEqual(['f16/f16', 'q8_0/q8_0', 'q5_1/q5_1', 'q5_0/q5_0', 'q4_1/q4_1', 'q4_0/q4_0']);
    // Without flash attention only V's rule applies (K is read by plain matrix products).
    expect(pairRefusal(tiny, { kType: 'q5_1', vType: 'f16' }, false, 'cuda')).toBeNull();
  });

  it('turns flash attention on by "auto" where the architecture supports it', () => {
    expect(resolveFlashAttention('auto', tiny)).toBe(true);
    expect(resolveFlashAttention('auto', { ...tiny, flashAttentionSupported: false })).toBe(false);
    expect(resolveFlashAttention('off', tiny)).toBe(false);
    expect(resolveFlashAttention('on', tiny)).toBe(true);
  });
});

describe('the longest context that fits', () => {
  const options = { min: 256, max: 131_072, step: 256 };
  const bruteForce = (f: (n: number) => number, budget: number, max = options.max) => {
    let best = 0;
    for (let n = 256; n <= max; n += 256) if (f(n) <= budget) best = n;
    if (max % 256 !== 0 && f(max) <= budget) best = max;
    return best;
  };

  it('finds it in a few estimates when the estimate is affine', async () => {
    const f = (n: number) => 5_000_000 + 1024 * cellsPerSlot(n);
    for (const budget of [5_300_000, 20 * MiB, 60 * MiB, 100 * MiB]) {
      let calls = 0;
      const found = await maxContextThatFits((n) => (calls++, f(n)), budget, options);
      expect(found).toBe(bruteForce(f, budget));
      expect(calls).toBeLessThanOrEqual(5);
    }
  });

  it('is exact for curves that are not affine, at a few estimates more than halving', async () => {
    const curves = [(n: number) => n * n, (n: number) => Math.sqrt(n) * 1e6, (n: number) => (n > 40_000 ? 1e12 : n)];
    for (const f of curves) {
      for (const budget of [1e5, 1e8, 3e8, 1e9, 5e9]) {
        let calls = 0;
        const found = await maxContextThatFits((n) => (calls++, f(n)), budget, options);
        expect(found).toBe(bruteForce(f, budget));
        expect(calls).toBeLessThanOrEqual(Math.ceil(Math.log2(131_072 / 256)) + 6);
      }
    }
  });

  it('answers 0 when nothing fits, the maximum when everything does, and counts an off-grid maximum', async () => {
    expect(await maxContextThatFits(() => 10, 5, options)).toBe(0);
    expect(await maxContextThatFits(() => 10, 50, options)).toBe(131_072);
    expect(await maxContextThatFits((n) => n, 40_960, { min: 256, max: 40_960, step: 256 })).toBe(40_960);
    expect(await maxContextThatFits((n) => n, 5000, { min: 256, max: 5000, step: 256 })).toBe(5000);
    expect(await maxContextThatFits((n) => n, 4999, { min: 256, max: 5000, step: 256 })).toBe(4864);
  });
});

describe('budgets', () => {
  it('is RAM without a GPU, VRAM (+ RAM for partial offload) with one, and one memory on Apple silicon', () => {
    expect(budgetOf(cpu(8 * GiB), { vramBytes: 0, ramBytes: GiB })).toEqual({ fullGpu: null, partial: 7 * GiB });
    const pc: DeviceMemory = { backend: 'cuda', vramTotalBytes: 8 * GiB, vramFreeBytes: 7 * GiB, unifiedMemory: false, ramTotalBytes: 32 * GiB, ramFreeBytes: 20 * GiB };
    expect(budgetOf(pc, { vramBytes: GiB, ramBytes: 2 * GiB })).toEqual({ fullGpu: 6 * GiB, partial: 24 * GiB });
    const mac: DeviceMemory = { backend: 'metal', vramTotalBytes: 10 * GiB, vramFreeBytes: 10 * GiB, unifiedMemory: true, ramTotalBytes: 16 * GiB, ramFreeBytes: 12 * GiB };
    expect(budgetOf(mac, noReserve)).toEqual({ fullGpu: 10 * GiB, partial: 12 * GiB });
  });
});

describe('the plan', () => {
  it('has a row per pair with its KV size, total and longest contexts, and picks the best pair that fits', async () => {
    // 12 MiB of RAM: the weights (1.3 MB) and the 2 MiB buffer leave ~8.7 MB for KV, i.e. 8,192
    // tokens at ≤ 1,061 B/token. f16/f16 (1,024 B) fits 8,192 tokens; at 16,384 only smaller pairs do.
    const plan = await buildPlan({ shape: tiny, device: cpu(12 * MiB), reserve: noReserve, contextSize: 8192, slots: 1, estimate: fakeEstimator(tiny) });
    expect(plan.rows).toHaveLength(49);
    expect(plan).toMatchObject({ contextSize: 8192, slots: 1, weightsBytes: tiny.weightsBytes, auto: { kType: 'f16', vType: 'f16' } });
    const f16 = plan.rows[0]!;
    expect(f16).toMatchObject({ kType: 'f16', vType: 'f16', kvBytesPerToken: 1024, kvBytes: 1024 * 8192, maxContextFullGpu: null, fits: true });
    expect(f16.totalBytes).toBe(tiny.weightsBytes + 2 * MiB + 1024 * 8192);
    // The trained length caps every search.
    expect(Math.max(...plan.rows.map((r) => r.maxContextPartial))).toBe(8192);

    const longer = await buildPlan({ shape: { ...tiny, trainedContextLength: 32_768 }, device: cpu(12 * MiB), reserve: noReserve, contextSize: 16_384, slots: 1, estimate: fakeEstimator(tiny) });
    // (12 MiB − 1,317,376 − 2 MiB) / 1,024 B per token = 8,953 → 8,704 on the 256 grid.
    expect(longer.rows[0]).toMatchObject({ fits: false, maxContextPartial: 8704 });
    expect(longer.auto).toEqual({ kType: 'q8_0', vType: 'q8_0' });
  });

  it('counts every slot, and fits a GPU machine on VRAM while partial offload adds RAM', async () => {
    const pc: DeviceMemory = { backend: 'vulkan', vramTotalBytes: 8 * GiB, vramFreeBytes: 8 * GiB, unifiedMemory: false, ramTotalBytes: 32 * GiB, ramFreeBytes: 16 * GiB };
    const counter = { calls: 0 };
    const plan = await buildPlan({ shape: llama8b, device: pc, reserve: noReserve, contextSize: 32_768, slots: 2, estimate: fakeEstimator(llama8b, counter) });
    const f16 = plan.rows[0]!;
    expect(f16.kvBytes).toBe(128 * 1024 * 32_768 * 2);
    expect(f16.fits).toBe(false);
    // 8 GiB − 4.9 GB − 2 MiB over 2 slots × 128 KiB per token.
    expect(f16.maxContextFullGpu).toBe(Math.floor((8 * GiB - 4.9e9 - 2 * MiB) / (2 * 128 * 1024) / 256) * 256);
    expect(f16.maxContextPartial).toBeGreaterThan(f16.maxContextFullGpu!);
    const q4 = plan.rows.find((r) => r.kType === 'q4_0' && r.vType === 'q4_0')!;
    expect(q4.maxContextFullGpu).toBeGreaterThan(f16.maxContextFullGpu! * 3);
    // (8 GiB − 4.9 GB − 2 MiB) / 65,536 cells = 56,272 B/token: q8_0/q5_1 (59,392) is too big, q5_1/q5_1 (49,152) fits.
    expect(plan.auto).toEqual({ kType: 'q5_1', vType: 'q5_1' });
    // The searches share their bracket ends and end quickly: well under a dozen estimates per search.
    expect(counter.calls).toBeLessThan(49 * 10);
  });

  it('marks refused pairs and never picks them', async () => {
    const hd16: ModelShape = { ...tiny, headDimK: 16, headDimV: 16 };
    const plan = await buildPlan({ shape: hd16, device: cpu(4 * GiB), reserve: noReserve, contextSize: 4096, slots: 1, estimate: fakeEstimator(hd16) });
    const allowed = plan.rows.filter((r) => r.refused === undefined);
    expect(names(allowed)).toEqual(['f16/f16']);
    const refused = plan.rows.find((r) => r.kType === 'q8_0' && r.vType === 'q8_0')!;
    expect(refused).toMatchObject({ refused: expect.stringMatching(/head size/), fits: false, maxContextPartial: 0, maxContextFullGpu: null });
    expect(refused.totalBytes).toBe(hd16.weightsBytes + 2 * MiB + kvBytesPerToken(hd16, refused) * 4096);
    expect(plan.auto).toEqual({ kType: 'f16', vType: 'f16' });
  });
});
