/** `checkProfile`'s rules without a model: a fake estimator stands in for llama.cpp's. */
import { describe, expect, it } from 'vitest';
import { defaultModelProfile, type DeviceMemory, type ModelProfile } from '../contract/index.ts';
import type { ModelShape } from './planner-core.ts';
import { checkProfileCore, type ProfileCheckInput } from './profile-check.ts';
import { cpu, fakeEstimator, GiB, llama8b, MiB, noReserve, tiny } from '../../test/support/planner.ts';


const profile = (patch: Partial<ModelProfile> = {}): ModelProfile => ({ ...defaultModelProfile({ contextSize: 0, kvSlots: 1 }), ...patch });

const check = (patch: Partial<ModelProfile>, input: Partial<ProfileCheckInput> = {}) =>
  checkProfileCore({
    shape: tiny,
    device: cpu(16 * GiB),
    reserve: noReserve,
    profile: profile(patch),
    estimate: fakeEstimator(input.shape ?? tiny),
    totalLayers: 5,
    autoContextCap: 8192,
    ...input,
  });

describe('checkProfile', () => {
  it('resolves the defaults: the automatic context is the trained length capped, flash attention on', async () => {
    expect(await check({})).toEqual({
      issues: [],
      resolved: { kType: 'f16', vType: 'f16', flashAttention: true, contextSize: 8192, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' },
    });
    expect((await check({}, { autoContextCap: 4096 })).resolved?.contextSize).toBe(4096);
    expect((await check({ contextSize: 3000, slots: 3 })).resolved).toMatchObject({ contextSize: 3000, slots: 3 });
  });

  it('refuses a quantized V with flash attention off, on vType', async () => {
    const result = await check({ vType: 'q8_0', flashAttention: 'off' });
    expect(result.resolved).toBeNull();
    expect(result.issues).toEqual([{ field: 'vType', severity: 'error', message: expect.stringMatching(/q8_0 V cache needs flash attention/) }]);
    // A quantized K without flash attention is allowed.
    expect((await check({ kType: 'q8_0', flashAttention: 'off' })).resolved).toMatchObject({ kType: 'q8_0', vType: 'f16', flashAttention: false });
    // "auto" V with flash attention off stays f16.
    expect((await check({ vType: 'auto', flashAttention: 'off' })).resolved).toMatchObject({ vType: 'f16' });
  });

  it('refuses flash attention "on" for a model that cannot use it', async () => {
    const result = await check({ flashAttention: 'on' }, { shape: { ...tiny, flashAttentionSupported: false } });
    expect(result.issues).toEqual([{ field: 'flashAttention', severity: 'error', message: expect.any(String) }]);
  });

  it('refuses a type whose block does not divide the head size, and "auto" avoids it', async () => {
    const shape: ModelShape = { ...tiny, headDimK: 16, headDimV: 16 };
    expect((await check({ kType: 'q4_0' }, { shape })).issues).toEqual([{ field: 'kType', severity: 'error', message: expect.stringMatching(/head size \(16\)/) }]);
    expect((await check({ kType: 'auto', vType: 'auto' }, { shape })).resolved).toMatchObject({ kType: 'f16', vType: 'f16' });
  });

  it('refuses streaming overflow with a quantized K, and keeps an "auto" K at f16 for it', async () => {
    for (const overflowPolicy of ['streaming'] as const) {
      const refused = await check({ kType: 'q8_0', vType: 'q8_0', overflowPolicy });
      expect(refused.resolved).toBeNull();
      expect(refused.issues).toEqual([{ field: 'overflowPolicy', severity: 'error', message: expect.stringMatching(/crashes llama\.cpp/) }]);
    }
    expect((await check({ kType: 'q8_0', vType: 'q8_0', overflowPolicy: 'drop-oldest' })).resolved).toMatchObject({ kType: 'q8_0' });
    // 10 MiB leaves 863 B/token at 8,192 tokens: f16/f16 (1,024) does not fit, f16/q8_0 (784) does.
    expect((await check({ kType: 'auto', vType: 'auto', contextSize: 8192, overflowPolicy: 'streaming' }, { device: cpu(10 * MiB) })).resolved).toMatchObject({ kType: 'f16', vType: 'q8_0' });
    // 8 MiB leaves 607 B/token: q8_0/q8_0 (544) fits; with an f16 K nothing does (≥ 656), so an
    // automatic context shrinks rather than quantize K.
    expect((await check({ kType: 'auto', vType: 'auto', contextSize: 8192 }, { device: cpu(8 * MiB) })).resolved).toMatchObject({ kType: 'q8_0', vType: 'q8_0' });
    const streaming = await check({ kType: 'auto', vType: 'auto', overflowPolicy: 'streaming' }, { device: cpu(8 * MiB) });
    expect(streaming.resolved).toMatchObject({ kType: 'f16', vType: 'iq4_nl', contextSize: 7424 });
    expect(streaming.issues).toEqual([{ field: 'contextSize', severity: 'warning', message: expect.stringMatching(/Automatic context/) }]);
  });

  it('refuses a context that does not fit, naming the largest that does', async () => {
    const result = await check({ contextSize: 8192 }, { device: cpu(6 * MiB) });
    expect(result.resolved).toBeNull();
    // (6 MiB − 1,317,376 − 2 MiB) / 1,024 B per token = 2,809 → 2,560 on the 256 grid.
    expect(result.issues).toEqual([{ field: 'contextSize', severity: 'error', message: expect.stringMatching(/8,192 tokens does not fit with f16\/f16.*largest that fits is 2,560 tokens/) }]);
    // 5 MiB leaves 223 B/token; the most compact pairs (288) fit (5 MiB − 3.3 MB) / 288 = 6,348 → 6,144.
    const any = await check({ contextSize: 8192, kType: 'auto', vType: 'auto' }, { device: cpu(5 * MiB) });
    expect(any.resolved).toBeNull();
    expect(any.issues[0]?.message).toMatch(/with any allowed K\/V pair.*largest that fits is 6,144 tokens \(with iq4_nl\/iq4_nl\)/);
    // The weights alone do not fit: said about the model when the context is automatic.
    const none = await check({}, { device: cpu(MiB) });
    expect(none.issues).toEqual([{ field: 'model', severity: 'error', message: expect.stringMatching(/weights .* leave no room/) }]);
  });

  it('shrinks an automatic context to what fits, with a warning', async () => {
    const result = await check({}, { device: cpu(6 * MiB) });
    expect(result.resolved).toMatchObject({ kType: 'f16', vType: 'f16', contextSize: 2560 });
    expect(result.issues).toEqual([{ field: 'contextSize', severity: 'warning', message: expect.stringMatching(/Automatic context.*2,560 tokens/) }]);
  });

  it('checks slots, types and GPU layers, and warns where settings do not apply', async () => {
    expect((await check({ slots: 9 })).issues[0]).toMatchObject({ field: 'slots', severity: 'error' });
    expect((await check({ kType: 'q3_k' as never })).issues[0]).toMatchObject({ field: 'kType', severity: 'error' });
    expect((await check({ gpuLayers: -1 })).issues[0]).toMatchObject({ field: 'gpuLayers', severity: 'error' });
    expect((await check({ gpuLayers: 10 })).issues).toEqual([{ field: 'gpuLayers', severity: 'warning', message: expect.stringMatching(/no GPU/) }]);
    expect((await check({ contextSize: 16_384 })).issues).toEqual([{ field: 'contextSize', severity: 'warning', message: expect.stringMatching(/trained on 8,192 tokens/) }]);
  });

  it('warns when a GPU machine must offload part of the model, and errors when every layer is asked for', async () => {
    const pc: DeviceMemory = { backend: 'cuda', vramTotalBytes: 8 * GiB, vramFreeBytes: 8 * GiB, unifiedMemory: false, ramTotalBytes: 64 * GiB, ramFreeBytes: 48 * GiB };
    const big = { device: pc, shape: llama8b, estimate: fakeEstimator(llama8b), totalLayers: 33 };
    const partial = await check({ contextSize: 65_536 }, big);
    expect(partial.resolved).toMatchObject({ contextSize: 65_536 });
    expect(partial.issues).toEqual([{ field: 'gpuLayers', severity: 'warning', message: expect.stringMatching(/some layers run on the CPU/) }]);
    const allOnGpu = await check({ contextSize: 65_536, gpuLayers: 33 }, big);
    expect(allOnGpu.issues).toEqual([{ field: 'gpuLayers', severity: 'error', message: expect.stringMatching(/free VRAM/) }]);
  });
});
