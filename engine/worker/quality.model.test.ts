/**
 * The quality meter on real inference, on the generated tiny model with `threads: 1`.
 *
 * The tiny model has seeded random weights, so its next-token distributions are flat: KV
 * quantization moves them little in KL but flips near-tied top tokens often. What is reliable on
 * it (and asserted): F16/F16 reproduces the reference exactly on CPU; q8_0/q8_0 gives a small
 * positive KL under the near-lossless line; q4_0/q4_0 a KL far above q8_0/q8_0's. Verdicts of
 * the quantized pairs depend on that flatness, so only their form is asserted. With an F16 side
 * the result carries `lossy`, a restore of q8_0-encoded chunks against the bit-exact one.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvQuality, Result } from '../contract/index.ts';
import { repoRoot, testModelPath } from '../../test/support/models.ts';
import { fallbackKernels } from '../kv/kernels-fallback.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { calibrationTokens, DEFAULT_QUALITY_TOKENS, measureKvQuality, measureLoadedQuality, measureLossyQuality } from './quality.ts';
import { verdictThresholds } from './quality-math.ts';
import { createRuntime } from './runtime.ts';

const calibrationPath = join(repoRoot, 'assets', 'calibration.txt');
let llama: Llama;
let model: LlamaModel;
let text: string;
let dir: string;

function value(result: Result<KvQuality>): KvQuality {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

const measure = async (kType: KvQuality['kType'], vType: KvQuality['vType'], extra: { flashAttention?: boolean; maxTokens?: number } = {}) =>
  measureKvQuality(model, { kType, vType, flashAttention: extra.flashAttention ?? true, threads: 1, text, ...(extra.maxTokens ? { maxTokens: extra.maxTokens } : {}) });

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: await testModelPath() });
  text = await readFile(calibrationPath, 'utf8');
  dir = await mkdtemp(join(tmpdir(), 'hearth-quality-'));
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('measureKvQuality', () => {
  it('f16/f16 against f16 gives KL 0 and full agreement over the capped calibration text', async () => {
    const q = value(await measure('f16', 'f16'));
    expect(q).toMatchObject({ kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1, verdict: 'near-lossless', positions: DEFAULT_QUALITY_TOKENS });
    expect(q.measuredAt).toBeGreaterThan(0);
    // A measurement, not the reference shortcut.
    expect(q.reference).toBeUndefined();
  });

  it('q8_0/q8_0 gives a small positive KL and a verdict; q4_0/q4_0 a clearly larger KL', async () => {
    const q8 = value(await measure('q8_0', 'q8_0'));
    expect(q8.klDivergence).toBeGreaterThan(0);
    expect(q8.klDivergence).toBeLessThan(verdictThresholds.nearLossless.maxKl);
    expect(q8.top1Agreement).toBeGreaterThan(0.9);
    expect(q8.top1Agreement).toBeLessThanOrEqual(1);
    expect(['near-lossless', 'small', 'noticeable']).toContain(q8.verdict);
    const q4 = value(await measure('q4_0', 'q4_0'));
    expect(q4.klDivergence).toBeGreaterThan(q8.klDivergence * 10);
    expect(q4.top1Agreement).toBeLessThanOrEqual(q8.top1Agreement);
  });

  it('measures on a head_dim-64 model, where llama.cpp rotates quantized caches', async () => {
    const hd64 = await llama.loadModel({ modelPath: await testModelPath('hd64') });
    try {
      const q = value(await measureKvQuality(hd64, { kType: 'q8_0', vType: 'q8_0', flashAttention: true, threads: 1, text }));
      expect(q.klDivergence).toBeGreaterThan(0);
      expect(q.klDivergence).toBeLessThan(verdictThresholds.nearLossless.maxKl);
    } finally {
      await hd64.dispose();
    }
  });

  it('honours maxTokens, and a quantized K with an F16 V works without flash attention', async () => {
    const q = value(await measure('q8_0', 'f16', { flashAttention: false, maxTokens: 100 }));
    expect(q.positions).toBe(100);
    expect(q.klDivergence).toBeGreaterThan(0);
  });

  it('refuses a quantized V without flash attention and an empty text, as data', async () => {
    const noFa = await measure('f16', 'q8_0', { flashAttention: false });
    expect(noFa.ok ? null : noFa.error.code).toBe('INVALID_INPUT');
    const empty = await measureKvQuality(model, { kType: 'q8_0', vType: 'q8_0', flashAttention: true, threads: 1, text: '' });
    expect(empty.ok ? null : empty.error.code).toBe('INVALID_INPUT');
  });
});

describe('measureLoadedQuality', () => {
  it("reads the loaded context's pair, flash attention and threads", async () => {
    const context = await model.createContext({ contextSize: 256, threads: 1, flashAttention: true, experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q4_0' });
    try {
      const q = value(await measureLoadedQuality(model, context, { calibrationPath }));
      expect(q).toMatchObject({ kType: 'q8_0', vType: 'q4_0', positions: DEFAULT_QUALITY_TOKENS });
      expect(q.klDivergence).toBeGreaterThan(0);
      // No F16 side: the lossy encoding does not apply (a quantized cache is stored losslessly).
      expect(q.lossy).toBeUndefined();
    } finally {
      await context.dispose();
    }
  });

  it('answers F16/F16 without a main measurement, adds the lossy figure, and a missing calibration file gives NOT_FOUND', async () => {
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const logged: string[] = [];
      const q = value(await measureLoadedQuality(model, context, { calibrationPath }, { kernels: fallbackKernels, log: (m) => logged.push(m) }));
      expect(q).toMatchObject({ kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1, verdict: 'near-lossless', positions: DEFAULT_QUALITY_TOKENS });
      // Not measured: the result says it is the reference, so no one shows its 0 and 1 as a measurement.
      expect(q.reference).toBe(true);
      expect(logged).toEqual([]);
      expect(q.lossy).toBeDefined();
      const lossy = q.lossy!;
      expect(Number.isFinite(lossy.klVsLossless)).toBe(true);
      expect(lossy.klVsLossless).toBeGreaterThanOrEqual(0);
      // q8_0 on disk does move the random model's distributions a little: the lossy path ran.
      expect(lossy.klVsLossless).toBeGreaterThan(0);
      expect(lossy.klVsLossless).toBeLessThan(verdictThresholds.nearLossless.maxKl);
      expect(lossy.top1Agreement).toBeGreaterThan(0.9);
      expect(lossy.top1Agreement).toBeLessThanOrEqual(1);
      // The calibration tokens' second half is compared.
      expect(lossy.positions).toBe(DEFAULT_QUALITY_TOKENS - DEFAULT_QUALITY_TOKENS / 2);
      const missing = await measureLoadedQuality(model, context, { calibrationPath: join(dir, 'nope.txt') });
      expect(missing.ok ? null : missing.error.code).toBe('NOT_FOUND');
    } finally {
      await context.dispose();
    }
  });
});

describe('measureLossyQuality', () => {
  it('measures an F16 V beside a q8_0 K with flash attention off (transposed V), and is null for q8_0/q8_0', async () => {
    const tokens = calibrationTokens(model, text, 300);
    const transposed = await measureLossyQuality(model, { kType: 'q8_0', vType: 'f16', flashAttention: false, threads: 1, tokens, kernels: fallbackKernels, chunkTokens: 64 });
    expect(transposed.ok ? null : transposed.error).toBeNull();
    const lossy = transposed.ok ? transposed.value : null;
    expect(lossy).not.toBeNull();
    expect(lossy!.positions).toBe(150);
    expect(Number.isFinite(lossy!.klVsLossless)).toBe(true);
    expect(lossy!.klVsLossless).toBeGreaterThanOrEqual(0);
    const quantized = await measureLossyQuality(model, { kType: 'q8_0', vType: 'q8_0', flashAttention: true, threads: 1, tokens, kernels: fallbackKernels });
    expect(quantized).toEqual({ ok: true, value: null });
  });

  it('leaves lossy out and logs why when the measurement fails; the main result stands', async () => {
    const broken: CodecKernels = {
      ...fallbackKernels,
      f16ToQ8_0: () => {
        throw new Error('kernel exploded');
      },
    };
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const logged: string[] = [];
      const q = value(await measureLoadedQuality(model, context, { calibrationPath }, { kernels: broken, log: (m) => logged.push(m) }));
      expect(q).toMatchObject({ kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1 });
      expect(q.lossy).toBeUndefined();
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain('kernel exploded');
    } finally {
      await context.dispose();
    }
  });
});

describe('the measureQuality worker handler', () => {
  it("says MODEL_NOT_LOADED without a model and measures the loaded model's pair", async () => {
    const runtime = createRuntime(() => undefined);
    try {
      expect((await runtime.handlers.init({ logLevel: 'error' })).ok).toBe(true);
      const none = await runtime.handlers.measureQuality({ calibrationPath });
      expect(none.ok ? null : none.error.code).toBe('MODEL_NOT_LOADED');
      const loaded = await runtime.handlers.loadModel({ path: await testModelPath(), contextSize: 256, threads: 1 });
      expect(loaded.ok).toBe(true);
      const shortText = join(dir, 'short.txt');
      await writeFile(shortText, 'A short calibration text, for the handler.');
      const q = await runtime.handlers.measureQuality({ calibrationPath: shortText });
      expect(q.ok ? q.value : q.error).toMatchObject({ kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1 });

      const profile = { kType: 'q8_0', vType: 'q4_0', flashAttention: true, contextSize: 256, gpuLayers: 'auto', slots: 1, overflowPolicy: 'stop' } as const;
      const quantized = await runtime.handlers.loadModel({ path: await testModelPath(), contextSize: 256, threads: 1, profile });
      expect(quantized.ok).toBe(true);
      const measured = await runtime.handlers.measureQuality({ calibrationPath });
      expect(measured.ok ? measured.value : measured.error).toMatchObject({ kType: 'q8_0', vType: 'q4_0', positions: DEFAULT_QUALITY_TOKENS });
      expect(measured.ok && measured.value.klDivergence).toBeGreaterThan(0);
      expect(measured.ok && measured.value.reference).toBeUndefined();
    } finally {
      await runtime.dispose();
    }
  });
});
