/**
 * The planner on the generated test model (the planner's estimate against the
 * measured allocation across context sizes and pairs) and `checkProfile`/`plan` through a real
 * engine process.
 */
import { GgufInsights, getLlama, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelProfile, type ModelProfile } from '../contract/index.ts';
import { RAM_CAP_ENV } from './constants.ts';
import { ggmlKvTypeName } from './kv-types.ts';
import { ggmlKvType, readModelShape, v2Estimator } from './planner.ts';
import { cellsPerSlot, kvBytesPerToken, type KvPair } from './planner-core.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';


const profile = (patch: Partial<ModelProfile> = {}): ModelProfile => ({ ...defaultModelProfile({ contextSize: 0, kvSlots: 1 }), ...patch });

describe('planned against measured context memory', () => {
  let llama: Llama;
  let model: LlamaModel;
  let path: string;

  beforeAll(async () => {
    path = await testModelPath();
    llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: path });
  });

  afterAll(async () => {
    await model?.dispose();
    await llama?.dispose();
  });

  const pairs: KvPair[] = [
    { kType: 'f16', vType: 'f16' },
    { kType: 'q8_0', vType: 'q8_0' },
    { kType: 'q4_0', vType: 'q4_0' },
    { kType: 'f16', vType: 'q8_0' },
    { kType: 'q8_0', vType: 'q4_0' },
    { kType: 'iq4_nl', vType: 'q5_1' },
  ];

  // On the CPU llama.cpp's estimate and its allocation are the same computation, so this checks
  // that the planner asks about the very context the engine creates (pair, slots, size, flash
  // attention), not the estimate's accuracy: that needs a GPU (docs/decisions/memory-estimate.md).
  it('asks llama.cpp about the same context the engine creates, within 10%, at 512, 2,048 and 8,192 tokens for f16, q8_0, q4_0 and mixed pairs, one and two slots', async () => {
    // The planner reads the file's metadata alone, as for a model not loaded (its own insights,
    // not the loaded model's, whose estimates node-llama-cpp cached when it created contexts).
    const insights = await GgufInsights.from(await readGgufFileInfo(path, { logWarnings: false }), llama);
    const shape = readModelShape(insights);
    const estimate = v2Estimator(insights, 0);
    const rows: string[] = [];
    for (const slots of [1, 2]) {
      for (const contextSize of slots === 1 ? [512, 2048, 8192] : [2048]) {
        for (const pair of pairs) {
          const planned = await estimate({ contextSize, slots, pair, flashAttention: true });
          const context = await model.createContext({
            contextSize,
            sequences: slots,
            threads: 1,
            flashAttention: true,
            experimentalKvCacheKeyType: ggmlKvTypeName(pair.kType),
            experimentalKvCacheValueType: ggmlKvTypeName(pair.vType),
          });
          try {
            expect(context.kvCacheKeyType).toBe(ggmlKvType[pair.kType]);
            expect(context.kvCacheValueType).toBe(ggmlKvType[pair.vType]);
            const measured = context.memoryUsage.ram + context.memoryUsage.vram;
            const kv = kvBytesPerToken(shape, pair) * cellsPerSlot(contextSize) * slots;
            rows.push(`${slots}×${contextSize} ${pair.kType}/${pair.vType}: planned ${planned}, measured ${measured}, KV ${kv}`);
            expect(Math.abs(planned - measured) / measured).toBeLessThanOrEqual(0.1);
            // The KV cache is in it, and it is most of what grows with the context.
            expect(measured).toBeGreaterThan(kv);
          } finally {
            await context.dispose();
          }
        }
      }
    }
    expect(rows).toHaveLength(24);
  });
});

describe('the planner in an engine process', () => {
  let engine: EngineClient;
  let path: string;

  beforeAll(async () => {
    path = await testModelPath();
    engine = await startEngine();
  });

  afterAll(async () => {
    await engine?.dispose();
  });

  it('plans every pair from the metadata, on this CPU-only machine', async () => {
    const plan = await engine.must('plan', { path, contextSize: 4096, slots: 1 });
    expect(plan.device).toMatchObject({ backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false });
    expect(plan.device.ramTotalBytes).toBeGreaterThan(0);
    expect(plan).toMatchObject({ contextSize: 4096, slots: 1, auto: { kType: 'f16', vType: 'f16' } });
    expect(plan.rows).toHaveLength(49);
    expect(plan.rows.every((row) => row.refused === undefined && row.fits && row.maxContextFullGpu === null && row.maxContextPartial === 8192)).toBe(true);
    const [f16] = plan.rows;
    expect(f16).toMatchObject({ kType: 'f16', vType: 'f16', kvBytesPerToken: 1024, kvBytes: 4096 * 1024 });
    expect(f16!.totalBytes).toBeGreaterThan(plan.weightsBytes + f16!.kvBytes);
  });

  it('resolves the defaults and every "auto"', async () => {
    const checked = await engine.must('checkProfile', { path, profile: profile({ kType: 'auto', vType: 'auto' }) });
    expect(checked).toEqual({
      issues: [],
      resolved: { kType: 'f16', vType: 'f16', flashAttention: true, contextSize: 8192, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' },
    });
  });

  it('refuses a quantized V with flash attention off', async () => {
    const checked = await engine.must('checkProfile', { path, profile: profile({ vType: 'q8_0', flashAttention: 'off' }) });
    expect(checked.resolved).toBeNull();
    expect(checked.issues).toEqual([{ field: 'vType', severity: 'error', message: expect.stringMatching(/needs flash attention/) }]);
  });

  it('refuses quantized types whose block does not divide the head size (16)', async () => {
    const hd16 = await testModelPath('hd16');
    for (const patch of [{ kType: 'q8_0' }, { vType: 'q4_0' }, { kType: 'iq4_nl', vType: 'iq4_nl' }] as const) {
      const checked = await engine.must('checkProfile', { path: hd16, profile: profile(patch) });
      expect(checked.resolved).toBeNull();
      expect(checked.issues[0]).toMatchObject({ severity: 'error', message: expect.stringMatching(/head size \(16\) is not a multiple of .* block size \(32\)/) });
    }
    expect((await engine.must('checkProfile', { path: hd16, profile: profile({ kType: 'auto', vType: 'auto' }) })).resolved).toMatchObject({ kType: 'f16', vType: 'f16' });
    const plan = await engine.must('plan', { path: hd16, contextSize: 2048, slots: 1 });
    expect(plan.rows.filter((row) => row.refused === undefined).map((row) => `${row.kType}/${row.vType}`)).toEqual(['f16/f16']);
  });

  it('refuses streaming overflow with a quantized K', async () => {
    for (const overflowPolicy of ['streaming'] as const) {
      const checked = await engine.must('checkProfile', { path, profile: profile({ kType: 'q4_0', overflowPolicy }) });
      expect(checked.resolved).toBeNull();
      expect(checked.issues).toEqual([{ field: 'overflowPolicy', severity: 'error', message: expect.stringMatching(/quantized K/) }]);
    }
  });

  it('answers a model it cannot read with an issue on the model', async () => {
    const checked = await engine.must('checkProfile', { path: `${path}.missing`, profile: profile() });
    expect(checked).toEqual({ issues: [{ field: 'model', severity: 'error', message: expect.stringMatching(/cannot be read/) }], resolved: null });
  });

  // As above: on the CPU this checks the load's parameters reach the estimate, not its accuracy.
  it("reports the load's planned and measured memory, within 10% for the same parameters", async () => {
    for (const contextSize of [512, 4096]) {
      const info = await engine.must('loadModel', { path, contextSize, threads: 1 });
      expect(info.memory).toBeDefined();
      const { plannedBytes, measuredBytes } = info.memory!;
      expect(measuredBytes).toBeGreaterThan(contextSize * 1024);
      expect(Math.abs(plannedBytes - measuredBytes) / measuredBytes).toBeLessThanOrEqual(0.1);
    }
  });
});

describe('a context that does not fit', () => {
  it('is refused with the largest that fits, under a 12 MiB RAM cap (the f16 context alone is ~19 MB at 8,192 tokens)', async () => {
    const engine = await startEngine({ env: { ...process.env, [RAM_CAP_ENV]: String(12 * 1024 * 1024) } });
    try {
      const path = await testModelPath();
      const fixed = await engine.must('checkProfile', { path, profile: profile({ contextSize: 8192 }) });
      expect(fixed.resolved).toBeNull();
      expect(fixed.issues).toEqual([{ field: 'contextSize', severity: 'error', message: expect.stringMatching(/8,192 tokens does not fit with f16\/f16: .* of free RAM\. The largest that fits is [\d,]+ tokens\./) }]);
      const largest = Number(/largest that fits is ([\d,]+) tokens/.exec(fixed.issues[0]!.message)![1]!.replace(/,/g, ''));
      expect(largest).toBeGreaterThanOrEqual(1024);
      expect(largest).toBeLessThan(8192);
      // That context passes; an automatic context shrinks to it with a warning.
      expect((await engine.must('checkProfile', { path, profile: profile({ contextSize: largest }) })).resolved).toMatchObject({ contextSize: largest });
      const automatic = await engine.must('checkProfile', { path, profile: profile() });
      expect(automatic.resolved).toMatchObject({ contextSize: largest });
      expect(automatic.issues).toEqual([{ field: 'contextSize', severity: 'warning', message: expect.stringMatching(/Automatic context/) }]);
      // The plan agrees: f16/f16 does not fit 8,192 tokens, and its longest context is the same.
      const plan = await engine.must('plan', { path, contextSize: 8192, slots: 1 });
      expect(plan.device.ramTotalBytes).toBe(12 * 1024 * 1024);
      expect(plan.rows[0]).toMatchObject({ fits: false, maxContextPartial: largest });
    } finally {
      await engine.dispose();
    }
  });
});
