import { describe, expect, it } from 'vitest';
import { err, ok, type EngineBuildKind, type ModelInfo, type Result, type SpeedSettings, type SpeedTrial } from '../../contract/index.ts';
import { bestTrial, compareEngines, localIsFaster, MIN_GAIN, trialSettings, type CompareDeps } from './compare.ts';

const model: ModelInfo = { path: '/models/m.gguf', name: 'M', sizeBytes: 1, architecture: 'llama', trainedContextLength: 4096, contextSize: 4096, layerCount: 32, flashAttention: true, threads: 6, batchSize: 256 };
const defaults: SpeedSettings = { flashAttention: false, threads: 2, batchSize: 512 };

function trial(turnSeconds: number | null, settings: SpeedSettings = trialSettings(model, defaults)): SpeedTrial {
  return { ...settings, prefillTokPerS: turnSeconds === null ? null : 100, decodeTokPerS: turnSeconds === null ? null : 10, turnSeconds, ...(turnSeconds === null ? { error: 'refused' } : {}) };
}

/** Fake engines: each measures the turn times listed for it, in order; switching restarts into the one asked for unless `loads` says otherwise. */
function engines(times: Record<EngineBuildKind, Array<number | null>>, options: { start?: EngineBuildKind; localLoads?: boolean; measureError?: EngineBuildKind } = {}) {
  let running: EngineBuildKind = options.start ?? 'prebuilt';
  const switches: EngineBuildKind[] = [];
  const measured: Array<{ engine: EngineBuildKind; settings: SpeedSettings }> = [];
  const steps: string[] = [];
  const deps: CompareDeps = {
    loaded: () => model,
    inUse: () => running,
    switchTo: async (kind) => {
      switches.push(kind);
      running = kind === 'local' && options.localLoads === false ? 'prebuilt' : kind;
      return ok({ running, ...(running !== kind ? { fallback: 'its addon did not load' } : {}), model });
    },
    measure: async (settings): Promise<Result<SpeedTrial>> => {
      measured.push({ engine: running, settings });
      if (options.measureError === running) return err('ENGINE_CRASHED', 'The engine process died.');
      return ok(trial(times[running].shift() ?? null, settings));
    },
    onStep: (step) => void steps.push(step),
    defaults,
    now: () => 42,
  };
  return { deps, switches, measured, steps, running: () => running };
}

describe('the decision', () => {
  it('takes the best of the runs, and a run that could not run only when none could', () => {
    expect(bestTrial([trial(3), trial(2.5), trial(2.8)]).turnSeconds).toBe(2.5);
    expect(bestTrial([trial(null), trial(4)]).turnSeconds).toBe(4);
    expect(bestTrial([trial(null)]).turnSeconds).toBeNull();
  });

  it('the local build is faster only when its turn is shorter by more than noise', () => {
    expect(localIsFaster(trial(10), trial(9))).toBe(true);
    expect(localIsFaster(trial(10), trial(10 * (1 - MIN_GAIN / 2)))).toBe(false);
    expect(localIsFaster(trial(10), trial(11))).toBe(false);
    expect(localIsFaster(trial(10), trial(null))).toBe(false);
    expect(localIsFaster(trial(null), trial(10))).toBe(true);
  });

  it("measures with the loaded model's settings, or the defaults for what it does not report", () => {
    expect(trialSettings(model, defaults)).toEqual({ flashAttention: true, threads: 6, batchSize: 256 });
    const { flashAttention: _f, threads: _t, batchSize: _b, ...bare } = model;
    expect(trialSettings(bare, defaults)).toEqual(defaults);
  });
});

describe('compareEngines', () => {
  it('keeps a faster build running, having measured both engines with the same settings', async () => {
    const fake = engines({ prebuilt: [10, 9.5], local: [7, 6.5] });
    const result = await compareEngines(fake.deps);
    expect(result).toEqual(ok({ model: 'M', prebuilt: trial(9.5), local: trial(6.5), faster: true, measuredAt: 42 }));
    expect(fake.switches).toEqual(['local']);
    expect(fake.running()).toBe('local');
    expect(fake.measured.map((m) => m.engine)).toEqual(['prebuilt', 'prebuilt', 'local', 'local']);
    expect(new Set(fake.measured.map((m) => JSON.stringify(m.settings))).size).toBe(1);
    expect(fake.steps).toContain('Measuring the local engine (2 of 2)');
  });

  it('goes back to the prebuilt engine when the build is slower', async () => {
    const fake = engines({ prebuilt: [10, 10], local: [12, 11] });
    const result = await compareEngines(fake.deps);
    expect(result.ok && result.value.faster).toBe(false);
    expect(fake.switches).toEqual(['local', 'prebuilt']);
    expect(fake.running()).toBe('prebuilt');
  });

  it('starts from the prebuilt engine when the build runs already (a rebuild)', async () => {
    const fake = engines({ prebuilt: [10, 10], local: [8, 8] }, { start: 'local' });
    await compareEngines(fake.deps);
    expect(fake.switches).toEqual(['prebuilt', 'local']);
    expect(fake.measured[0]!.engine).toBe('prebuilt');
  });

  it('says why when the build did not load, and the prebuilt engine runs', async () => {
    const fake = engines({ prebuilt: [10, 10], local: [] }, { localLoads: false });
    const result = await compareEngines(fake.deps);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error.message).toBe('The engine built for this computer did not start: its addon did not load.');
    expect(fake.running()).toBe('prebuilt');
  });

  it('goes back to the prebuilt engine when measuring the build fails', async () => {
    const fake = engines({ prebuilt: [10, 10], local: [] }, { measureError: 'local' });
    const result = await compareEngines(fake.deps);
    expect(!result.ok && result.error.code).toBe('ENGINE_CRASHED');
    expect(fake.switches).toEqual(['local', 'prebuilt']);
  });

  it('needs a loaded model', async () => {
    const fake = engines({ prebuilt: [], local: [] });
    const result = await compareEngines({ ...fake.deps, loaded: () => null });
    expect(!result.ok && result.error.code).toBe('MODEL_NOT_LOADED');
    expect(fake.switches).toEqual([]);
  });
});
