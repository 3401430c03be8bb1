/**
 * Which context settings (flash attention, threads, batch size) a model runs fastest with on
 * this computer, as rules over measurements, with no llama.cpp: the candidates a profile allows,
 * the score of a measurement, and the staged search that measures few candidates
 * (docs/decisions/speed-defaults.md). `speed.ts` measures; tests give a fake measurement.
 */
import { SPEED_TURN, type KvCacheType, type SpeedSettings, type SpeedTrial } from '../contract/index.ts';

/** Prompt batch sizes tried, the first being node-llama-cpp's default. */
export const BATCH_SIZES: readonly number[] = [512, 256];

/** What a model's load may vary, each list's first entry being the default. */
export interface SpeedSpace {
  readonly flashAttention: readonly boolean[];
  readonly threads: readonly number[];
  readonly batchSizes: readonly number[];
}

/** A quantized V only runs with flash attention (docs/decisions/flash-attention-auto.md): the one rule every speed path keeps. */
export function needsFlashAttention(vType: KvCacheType): boolean {
  return vType !== 'f16';
}

const positiveInteger = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0;

/** Whether a value from another process is speed settings: flash attention, threads ≥ 1, batch size ≥ 1. */
export function isSpeedSettings(value: unknown): value is SpeedSettings {
  if (typeof value !== 'object' || value === null) return false;
  const settings = value as Partial<SpeedSettings>;
  return typeof settings.flashAttention === 'boolean' && positiveInteger(settings.threads) && positiveInteger(settings.batchSize);
}

/** Whether every entry is a whole number ≥ 1 (thread counts, token counts). */
export function allPositiveIntegers(values: readonly unknown[]): boolean {
  return values.every(positiveInteger);
}

/** The inputs of the candidate rule. */
export interface SpaceInput {
  /** The profile's flash attention setting. */
  readonly setting: 'auto' | 'on' | 'off';
  /** Whether the architecture can run flash attention at all. */
  readonly supported: boolean;
  readonly vType: KvCacheType;
  /** Thread counts to try (the host's: the fixed count, or counts around the physical cores); deduplicated here. */
  readonly threads: readonly number[];
}

/**
 * The candidates: an explicit `on` or `off` is kept, and `auto` tries both where the
 * architecture allows, on first. A quantized V only runs with flash attention, so it is never
 * turned off for one, whatever the setting says (checkProfile refuses such a profile anyway).
 */
export function speedSpace(input: SpaceInput): SpeedSpace {
  let flashAttention: boolean[];
  if (needsFlashAttention(input.vType)) flashAttention = [true];
  else if (input.setting === 'on') flashAttention = [true];
  else if (input.setting === 'off' || !input.supported) flashAttention = [false];
  else flashAttention = [true, false];
  const threads = [...new Set(input.threads.filter((count) => Number.isInteger(count) && count > 0))];
  return { flashAttention, threads: threads.length > 0 ? threads : [1], batchSizes: BATCH_SIZES };
}

/**
 * How deep the in-app measurement reads before it times decode: as deep as about
 * PREFILL_BUDGET_MS of prompt reading at the probe's speed, between SPEED_MIN_DEPTH and
 * SPEED_MAX_DEPTH tokens, in steps of 64. Flash attention's cost in decode moves with depth, and
 * chats are read at thousands of tokens, so deeper is truer; a slow computer stays shallow so a
 * first load does not wait minutes (docs/decisions/speed-defaults.md).
 */
export const SPEED_MIN_DEPTH = 256;
export const SPEED_MAX_DEPTH = 1024;
export const PREFILL_BUDGET_MS = 5000;

export function speedDepth(probePrefillTokPerS: number | null): number {
  if (probePrefillTokPerS === null || !Number.isFinite(probePrefillTokPerS)) return SPEED_MIN_DEPTH;
  const affordable = Math.floor((probePrefillTokPerS * PREFILL_BUDGET_MS) / 1000 / 64) * 64;
  return Math.min(SPEED_MAX_DEPTH, Math.max(SPEED_MIN_DEPTH, affordable));
}

/**
 * How many candidates `chooseSpeed` measures in `space` at most: one fewer when the thread
 * stage keeps the first thread count (flash attention then needs no second look).
 */
export function trialCount(space: SpeedSpace): number {
  const revisit = space.flashAttention.length > 1 && space.threads.length > 1 ? 1 : 0;
  return space.flashAttention.length + space.threads.length - 1 + revisit + space.batchSizes.length - 1;
}

/** Seconds of the reference turn (SPEED_TURN) at these speeds. */
export function turnSeconds(prefillTokPerS: number, decodeTokPerS: number): number {
  return SPEED_TURN.promptTokens / prefillTokPerS + SPEED_TURN.replyTokens / decodeTokPerS;
}

/** A measured candidate: its speeds, or why it could not run. */
export type Measured = { readonly prefillTokPerS: number; readonly decodeTokPerS: number } | { readonly error: string };

/** A trial from a measurement of `settings`. */
export function trialOf(settings: SpeedSettings, measured: Measured): SpeedTrial {
  if ('error' in measured) return { ...settings, prefillTokPerS: null, decodeTokPerS: null, turnSeconds: null, error: measured.error };
  const { prefillTokPerS, decodeTokPerS } = measured;
  return { ...settings, prefillTokPerS, decodeTokPerS, turnSeconds: turnSeconds(prefillTokPerS, decodeTokPerS) };
}

/** The fastest trial that ran (the earliest of equals), or null when none did. */
export function fastest(trials: readonly SpeedTrial[]): SpeedTrial | null {
  let best: SpeedTrial | null = null;
  for (const trial of trials) {
    if (trial.turnSeconds === null) continue;
    if (best === null || trial.turnSeconds < (best.turnSeconds ?? Infinity)) best = trial;
  }
  return best;
}

const settingsOf = (trial: SpeedSettings): SpeedSettings => ({ flashAttention: trial.flashAttention, threads: trial.threads, batchSize: trial.batchSize });

/**
 * The staged search: flash attention first (at the default threads and batch size), then
 * threads with the faster setting, flash attention again when another thread count won (the two
 * interact: on a CPU, flash attention's cost in decode differs between 1 thread and several),
 * then batch sizes with the fastest so far. Each dimension is decided with few trials rather
 * than measuring every combination, which keeps a first load to a handful of candidates
 * (`trialCount`; `onTrial`'s total drops by one when the second look is not needed). When no
 * candidate runs, the defaults are chosen and every trial says why it failed.
 */
export async function chooseSpeed(
  space: SpeedSpace,
  measure: (settings: SpeedSettings) => Promise<Measured>,
  onTrial?: (trial: SpeedTrial, done: number, total: number) => void,
): Promise<{ readonly trials: readonly SpeedTrial[]; readonly chosen: SpeedSettings }> {
  let total = trialCount(space);
  const trials: SpeedTrial[] = [];
  const run = async (settings: SpeedSettings): Promise<void> => {
    const trial = trialOf(settings, await measure(settings));
    trials.push(trial);
    onTrial?.(trial, trials.length, total);
  };
  const defaults: SpeedSettings = { flashAttention: space.flashAttention[0] ?? false, threads: space.threads[0] ?? 1, batchSize: space.batchSizes[0] ?? 512 };
  const best = (): SpeedSettings => settingsOf(fastest(trials) ?? defaults);
  for (const flashAttention of space.flashAttention) await run({ ...defaults, flashAttention });
  const afterFlash = best();
  for (const threads of space.threads.slice(1)) await run({ ...afterFlash, threads });
  const afterThreads = best();
  if (space.flashAttention.length > 1 && space.threads.length > 1) {
    if (afterThreads.threads !== defaults.threads) {
      for (const flashAttention of space.flashAttention.filter((value) => value !== afterThreads.flashAttention)) await run({ ...afterThreads, flashAttention });
    } else {
      total -= 1;
    }
  }
  const afterSecondLook = best();
  for (const batchSize of space.batchSizes.slice(1)) await run({ ...afterSecondLook, batchSize });
  return { trials, chosen: best() };
}
