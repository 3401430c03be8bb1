/**
 * The speed measurement on real inference, in a real engine process with the generated test
 * model: a load asked to measure tries the candidates, loads with the one it chose and says so;
 * a load given a stored choice measures nothing; a quantized V never runs without flash
 * attention; and `measureTrial` checks what it is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelProfile, SpeedProfile } from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { BATCH_SIZES, fastest, SPEED_MAX_DEPTH, SPEED_MIN_DEPTH } from './speed-choice.ts';

let modelPath: string;
let engine: EngineClient;

beforeAll(async () => {
  modelPath = await testModelPath();
  engine = await startEngine();
});

afterAll(async () => {
  await engine?.dispose();
});

async function resolve(patch: Partial<ModelProfile>): Promise<ResolvedProfile> {
  const profile: ModelProfile = { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 512, gpuLayers: 'auto', slots: 1, overflowPolicy: 'stop', ...patch };
  const checked = await engine.must('checkProfile', { path: modelPath, profile });
  expect(checked.issues.filter((issue) => issue.severity === 'error')).toEqual([]);
  return checked.resolved!;
}

const progressEvents = () => engine.events.flatMap((event) => (event.type === 'speedProgress' ? [event] : []));

describe('a load that measures its speed', () => {
  it('tries the candidates, loads with the fastest and reports every trial', async () => {
    const profile = await resolve({});
    const before = progressEvents().length;
    // One thread count (the tests' one thread): the thread stage is speed-choice.test.ts's.
    const info = await engine.must('loadModel', { path: modelPath, contextSize: 512, threads: 1, slots: 1, profile, speed: { flashAttention: 'auto', threads: [1] } });
    const speed = info.speed as SpeedProfile;
    // Flash attention on and off, then the other batch size.
    expect(speed.trials).toHaveLength(2 + BATCH_SIZES.length - 1);
    expect(speed.trials.map((trial) => trial.flashAttention).slice(0, 2)).toEqual([true, false]);
    for (const trial of speed.trials) {
      expect(trial.error).toBeUndefined();
      expect(trial.prefillTokPerS).toBeGreaterThan(0);
      expect(trial.decodeTokPerS).toBeGreaterThan(0);
    }
    const best = fastest(speed.trials)!;
    expect(speed.chosen).toEqual({ flashAttention: best.flashAttention, threads: best.threads, batchSize: best.batchSize });
    expect(info).toMatchObject({ flashAttention: speed.chosen.flashAttention, threads: speed.chosen.threads, batchSize: Math.min(speed.chosen.batchSize, 512) });
    expect(speed).toMatchObject({ kType: 'f16', vType: 'f16', engine: 'prebuilt', device: engine.initOutput?.device });
    expect(speed.device).toMatch(/CPU/);
    // Probed: as deep as its prompt speed affords, within the bounds.
    expect(speed.depth % 64).toBe(0);
    expect(speed.depth).toBeGreaterThanOrEqual(SPEED_MIN_DEPTH);
    expect(speed.depth).toBeLessThanOrEqual(SPEED_MAX_DEPTH);
    const progress = progressEvents().slice(before);
    expect(progress.map((event) => event.done)).toEqual([0, 1, 2, 3].slice(0, speed.trials.length + 1));
    // The model answers with the chosen settings.
    const reply = await engine.must('generate', { requestId: 'r1', chatId: 'c1', messages: [{ role: 'user', text: 'Hello there' }], sampling: { temperature: 0, topP: 1, maxTokens: 4 } });
    expect(reply.stats.tokensGenerated).toBeGreaterThan(0);
  });

  it('measures nothing with a stored choice, and runs with it', async () => {
    const profile = await resolve({});
    const before = progressEvents().length;
    const known = { flashAttention: false, threads: 1, batchSize: 256 };
    const info = await engine.must('loadModel', { path: modelPath, contextSize: 512, threads: 2, slots: 1, profile, speed: { flashAttention: 'auto', threads: [1], known } });
    expect(info.speed).toBeUndefined();
    expect(info).toMatchObject({ flashAttention: false, threads: 1, batchSize: 256 });
    expect(progressEvents().length).toBe(before);
  });

  it('keeps flash attention on for a quantized V, even when asked to measure with it off or given it off', async () => {
    const profile = await resolve({ kType: 'q8_0', vType: 'q8_0', flashAttention: 'on' });
    const measured = await engine.must('loadModel', { path: modelPath, contextSize: 512, threads: 1, slots: 1, profile, speed: { flashAttention: 'off', threads: [1] } });
    expect(measured.speed?.trials.every((trial) => trial.flashAttention)).toBe(true);
    expect(measured.flashAttention).toBe(true);
    const given = await engine.must('loadModel', { path: modelPath, contextSize: 512, threads: 1, slots: 1, profile, speed: { flashAttention: 'auto', threads: [1], known: { flashAttention: false, threads: 1, batchSize: 512 } } });
    expect(given.flashAttention).toBe(true);
    expect(given.kvType).toEqual({ k: 'q8_0', v: 'q8_0' });
  });

  it('refuses a malformed speed request before loading anything', async () => {
    const profile = await resolve({});
    const result = await engine.call('loadModel', { path: modelPath, contextSize: 512, threads: 1, slots: 1, profile, speed: { flashAttention: 'auto', threads: [0] } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/thread counts ≥ 1/) });
  });
});

describe('measureTrial', () => {
  it("measures the loaded model with its pair and the given settings, and checks what it is sent", async () => {
    const profile = await resolve({});
    await engine.must('loadModel', { path: modelPath, contextSize: 512, threads: 1, slots: 1, profile });
    const trial = await engine.must('measureTrial', { settings: { flashAttention: false, threads: 1, batchSize: 64 }, depth: 64, decodeTokens: 4 });
    expect(trial).toMatchObject({ flashAttention: false, threads: 1, batchSize: 64 });
    expect(trial.prefillTokPerS).toBeGreaterThan(0);
    expect(trial.turnSeconds).toBeGreaterThan(0);
    for (const bad of [
      { settings: { flashAttention: false, threads: 0, batchSize: 64 } },
      { settings: { flashAttention: 'no', threads: 1, batchSize: 64 } },
      { settings: { flashAttention: false, threads: 1, batchSize: 64 }, depth: 1e6 },
    ]) {
      const result = await engine.call('measureTrial', bad as never);
      expect(result.ok, JSON.stringify(bad)).toBe(false);
      if (!result.ok) expect(result.error.code).toBe('INVALID_INPUT');
    }
  });
});
