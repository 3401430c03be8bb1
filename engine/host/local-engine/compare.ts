/**
 * Comparing the engine built for this computer with the prebuilt one on the loaded model. Only
 * one copy of the weights is ever in memory: the same trial (worker `measureTrial`, with the
 * settings the model runs with now) is measured on the prebuilt engine, the engine process is
 * restarted with the build and the model reloads, the trial is measured again, and the faster
 * engine stays. "Faster" is the reference turn's time (`SpeedTrial.turnSeconds`, prompt read
 * plus reply written), lower winning by more than measurement noise: switching engines costs a
 * re-read of every chat's stored KV once (the fingerprint differs), which a gain within noise
 * does not repay.
 */
import { err, errorText, ok, type EngineBuildKind, type ModelInfo, type Result, type SpeedSettings, type SpeedTrial } from '../../contract/index.ts';
import type { EngineComparison } from './manifest.ts';

/** Measurements per engine; the best of them counts (the first may still page weights in). */
export const COMPARE_RUNS = 2;
/** The local build must save more than this share of the turn's time to be used. */
export const MIN_GAIN = 0.02;

export interface CompareDeps {
  /** The model loaded now, or null. */
  readonly loaded: () => ModelInfo | null;
  /**
   * Restarts the engine process with that engine and waits until the model loaded again; answers
   * the engine that runs (a build that did not load leaves the prebuilt one) and the model.
   */
  readonly switchTo: (kind: EngineBuildKind) => Promise<Result<{ readonly running: EngineBuildKind; readonly fallback?: string; readonly model: ModelInfo }>>;
  /** One `measureTrial` on the loaded model. */
  readonly measure: (settings: SpeedSettings) => Promise<Result<SpeedTrial>>;
  /** The engine running now. */
  readonly inUse: () => EngineBuildKind;
  readonly onStep: (step: string) => void;
  /** Settings for what ModelInfo leaves out (an engine that does not report them). */
  readonly defaults: SpeedSettings;
  readonly now?: () => number;
}

/** The settings the loaded model runs with: what the comparison measures on both engines. */
export function trialSettings(model: ModelInfo, defaults: SpeedSettings): SpeedSettings {
  return {
    flashAttention: model.flashAttention ?? defaults.flashAttention,
    threads: model.threads !== undefined && model.threads > 0 ? model.threads : defaults.threads,
    batchSize: model.batchSize !== undefined && model.batchSize > 0 ? model.batchSize : defaults.batchSize,
  };
}

/** The measured trial with the lowest turn time; one that could not run only when all failed. */
export function bestTrial(trials: readonly SpeedTrial[]): SpeedTrial {
  const ran = trials.filter((trial) => trial.turnSeconds !== null);
  if (ran.length === 0) return trials[trials.length - 1]!;
  return ran.reduce((best, trial) => (trial.turnSeconds! < best.turnSeconds! ? trial : best));
}

/** Whether the local build is faster than the prebuilt engine on the reference turn, by more than `MIN_GAIN`. */
export function localIsFaster(prebuilt: SpeedTrial, local: SpeedTrial): boolean {
  if (local.turnSeconds === null) return false;
  if (prebuilt.turnSeconds === null) return true;
  return local.turnSeconds < prebuilt.turnSeconds * (1 - MIN_GAIN);
}

async function measureBest(deps: CompareDeps, settings: SpeedSettings, engine: string): Promise<Result<SpeedTrial>> {
  const trials: SpeedTrial[] = [];
  for (let run = 1; run <= COMPARE_RUNS; run++) {
    deps.onStep(`Measuring the ${engine} engine (${run} of ${COMPARE_RUNS})`);
    const trial = await deps.measure(settings);
    if (!trial.ok) return trial;
    trials.push(trial.value);
  }
  return ok(bestTrial(trials));
}

function modelName(model: ModelInfo): string {
  return model.name || model.path.split(/[\\/]/).pop() || model.path;
}

/**
 * Measures both engines on the loaded model and leaves the faster one running. On a failure the
 * prebuilt engine is put back (best effort) and the error answered.
 */
export async function compareEngines(deps: CompareDeps): Promise<Result<EngineComparison>> {
  const now = deps.now ?? Date.now;
  const start = deps.loaded();
  if (start === null) return err('MODEL_NOT_LOADED', 'No model is loaded to compare the engines on.', 'Load a model, then compare again.');
  const settings = trialSettings(start, deps.defaults);
  const back = async <T>(failure: Result<T>): Promise<Result<T>> => {
    if (deps.inUse() !== 'prebuilt') {
      deps.onStep('Going back to the prebuilt engine');
      await deps.switchTo('prebuilt');
    }
    return failure;
  };
  try {
    if (deps.inUse() !== 'prebuilt') {
      deps.onStep('Starting the prebuilt engine');
      const switched = await deps.switchTo('prebuilt');
      if (!switched.ok) return switched;
    }
    const prebuilt = await measureBest(deps, settings, 'prebuilt');
    if (!prebuilt.ok) return prebuilt;
    deps.onStep('Starting the engine built for this computer');
    const switched = await deps.switchTo('local');
    if (!switched.ok) return await back(switched);
    if (switched.value.running !== 'local') {
      return err('ENGINE_UNAVAILABLE', `The engine built for this computer did not start: ${switched.value.fallback ?? 'the prebuilt one runs instead'}.`, 'Build it again, or keep the prebuilt engine.');
    }
    const local = await measureBest(deps, settings, 'local');
    if (!local.ok) return await back(local);
    const faster = localIsFaster(prebuilt.value, local.value);
    if (!faster) {
      deps.onStep('Going back to the prebuilt engine');
      const restored = await deps.switchTo('prebuilt');
      if (!restored.ok) return restored;
    }
    return ok({ model: modelName(start), prebuilt: prebuilt.value, local: local.value, faster, measuredAt: now() });
  } catch (error) {
    return back(err('INTERNAL', `The engines could not be compared: ${errorText(error)}`));
  }
}
