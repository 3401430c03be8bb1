/**
 * Measuring a loaded model's speed with given context settings: a context of its own (so the
 * chats' slots are untouched and nothing is loaded twice), a prompt of `depth` tokens read in
 * batches (prefill), then `decodeTokens` evaluated one at a time after it (decode at depth), as
 * llama.cpp's own llama-bench times them. Sampling is left out: it costs the same whatever the
 * settings. `measureSpeed` runs the staged choice (speed-choice.ts) over these measurements.
 */
import os from 'node:os';
import type { LlamaContext, LlamaModel, Token } from 'node-llama-cpp';
import { err, errorText, ok, type EngineBuildKind, type KvCacheType, type Result, type SpeedProfile, type SpeedSettings, type SpeedTrial } from '../contract/index.ts';
import type { ResolvedProfile, WorkerMethods } from '../protocol.ts';
import { allPositiveIntegers, chooseSpeed, isSpeedSettings, needsFlashAttention, speedDepth, trialOf, type Measured, type SpeedSpace } from './speed-choice.ts';
import { ggmlKvTypeName } from './kv-types.ts';

/** A `measureTrial` request's depth when it names none; the in-app measurement picks its own (speedDepth). */
export const SPEED_DEPTH = 256;
/** Reply tokens timed per candidate. */
export const SPEED_DECODE_TOKENS = 16;
/** The probe that sets the in-app measurement's depth: this many prompt tokens with the first candidate's settings. */
const PROBE_TOKENS = 64;

/** Tokens evaluated (and then cleared) before timing: weights paged in, buffers allocated. */
const WARMUP_TOKENS = 8;

/**
 * How long the in-app measurement times one candidate's reply tokens at most: a candidate that
 * crawls (too many threads on a busy computer) is known to be slow after a few tokens, and a first
 * load must not wait on it. At least MIN_DECODE_TOKENS are timed.
 */
export const SPEED_DECODE_BUDGET_MS = 4000;
const MIN_DECODE_TOKENS = 4;

export interface TrialOptions extends SpeedSettings {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly depth: number;
  readonly decodeTokens: number;
  /** Stop timing reply tokens after this long (at least MIN_DECODE_TOKENS are timed); default: time them all. */
  readonly decodeBudgetMs?: number;
}

/** The middle value: one token slowed by another process does not move it, as it moves a mean. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Ordinary text's tokens, `count` of them: what is evaluated does not change the time, but real
 * tokens keep the model away from control tokens' special cases.
 */
export function filler(model: LlamaModel, count: number): Token[] {
  const sentence = 'The hearth was warm and the kettle sang while the letters from the coast were read aloud, one by one, until late. ';
  const tokens: Token[] = [];
  const piece = model.tokenize(sentence);
  if (piece.length === 0) throw new Error('the model tokenized the measurement text to nothing');
  while (tokens.length < count) tokens.push(...piece);
  return tokens.slice(0, count);
}

/**
 * Prefill and decode tokens per second with `options`, or why the context could not run them.
 * Decode is the median of the reply tokens' own times: on a shared computer a burst of other work
 * lands on a few tokens, and a mean would charge them to the settings.
 */
export async function measureTrial(model: LlamaModel, options: TrialOptions): Promise<Measured> {
  const { depth, decodeTokens, batchSize } = options;
  const tokens = filler(model, WARMUP_TOKENS + depth + decodeTokens);
  let context: LlamaContext | null = null;
  try {
    context = await model.createContext({
      contextSize: depth + decodeTokens + WARMUP_TOKENS,
      sequences: 1,
      threads: options.threads,
      batchSize: Math.min(batchSize, depth),
      flashAttention: options.flashAttention,
      experimentalKvCacheKeyType: ggmlKvTypeName(options.kType),
      experimentalKvCacheValueType: ggmlKvTypeName(options.vType),
    });
    const sequence = context.getSequence();
    await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, WARMUP_TOKENS));
    await sequence.clearHistory();
    const prompt = tokens.slice(WARMUP_TOKENS, WARMUP_TOKENS + depth);
    const prefillStart = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt);
    const prefillMs = performance.now() - prefillStart;
    const decodeStart = performance.now();
    const tokenMs: number[] = [];
    for (const token of tokens.slice(WARMUP_TOKENS + depth)) {
      const start = performance.now();
      await sequence.evaluateWithoutGeneratingNewTokens([token]);
      tokenMs.push(performance.now() - start);
      if (tokenMs.length >= MIN_DECODE_TOKENS && performance.now() - decodeStart > (options.decodeBudgetMs ?? Infinity)) break;
    }
    return { prefillTokPerS: (depth * 1000) / Math.max(prefillMs, 1e-3), decodeTokPerS: 1000 / Math.max(median(tokenMs), 1e-3) };
  } catch (error) {
    return { error: errorText(error) };
  } finally {
    await context?.dispose().catch(() => undefined);
  }
}

/** Most tokens a `measureTrial` request may ask for: it holds the engine for its whole length. */
const MAX_TRIAL_TOKENS = 32_768;

/** Worker method `measureTrial`: the loaded model, its profile's K/V pair, the request's settings (checked: they come from another process). */
export async function measureLoadedTrial(model: LlamaModel, profile: ResolvedProfile, input: WorkerMethods['measureTrial']['input']): Promise<Result<SpeedTrial>> {
  const settings = input?.settings;
  const depth = input?.depth ?? SPEED_DEPTH;
  const decodeTokens = input?.decodeTokens ?? SPEED_DECODE_TOKENS;
  if (!isSpeedSettings(settings)) return err('INVALID_INPUT', 'measureTrial needs settings: flashAttention, threads ≥ 1 and batchSize ≥ 1.');
  if (!allPositiveIntegers([depth, decodeTokens]) || depth + decodeTokens > MAX_TRIAL_TOKENS) {
    return err('INVALID_INPUT', `measureTrial needs a depth and decodeTokens ≥ 1, together at most ${MAX_TRIAL_TOKENS}.`);
  }
  if (needsFlashAttention(profile.vType) && !settings.flashAttention) return err('INVALID_INPUT', 'A quantized V cache needs flash attention.');
  const chosen: SpeedSettings = { flashAttention: settings.flashAttention, threads: settings.threads, batchSize: settings.batchSize };
  return ok(trialOf(chosen, await measureTrial(model, { ...chosen, kType: profile.kType, vType: profile.vType, depth, decodeTokens })));
}

export interface MeasureSpeedOptions {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly engine: EngineBuildKind;
  readonly device: string;
  readonly space: SpeedSpace;
  /** Default: probed (speedDepth). */
  readonly depth?: number;
  readonly decodeTokens?: number;
  readonly onTrial?: (trial: SpeedTrial, done: number, total: number) => void;
}

/** Measures the staged candidates on the loaded model and says which settings to load it with. */
export async function measureSpeed(model: LlamaModel, options: MeasureSpeedOptions): Promise<SpeedProfile> {
  const decodeTokens = options.decodeTokens ?? SPEED_DECODE_TOKENS;
  const started = performance.now();
  const { kType, vType, space } = options;
  const depth = options.depth ?? (await probeDepth(model, space, kType, vType));
  const { trials, chosen } = await chooseSpeed(
    space,
    (settings) => measureTrial(model, { ...settings, kType, vType, depth, decodeTokens, decodeBudgetMs: SPEED_DECODE_BUDGET_MS }),
    options.onTrial,
  );
  return {
    kType,
    vType,
    engine: options.engine,
    device: options.device,
    depth,
    decodeTokens,
    trials,
    chosen,
    measuredAt: Date.now(),
    durationMs: Math.round(performance.now() - started),
  };
}

/** The depth speedDepth gives for a short prompt read with the first candidate's settings (the shallowest when it fails). */
async function probeDepth(model: LlamaModel, space: SpeedSpace, kType: KvCacheType, vType: KvCacheType): Promise<number> {
  const first = { flashAttention: space.flashAttention[0] ?? false, threads: space.threads[0] ?? 1, batchSize: space.batchSizes[0] ?? 512 };
  const probe = await measureTrial(model, { ...first, kType, vType, depth: PROBE_TOKENS, decodeTokens: 1 });
  return speedDepth('error' in probe ? null : probe.prefillTokPerS);
}

/** This computer and its llama.cpp backend, in words: the speed measurements are kept per device (with the build). */
export function describeDevice(gpu: string | false, gpuNames: readonly string[]): string {
  const cpus = os.cpus();
  const cpu = cpus[0]?.model.trim().replace(/\s+/g, ' ') || os.arch();
  const backend = gpu === false ? 'CPU' : `${gpu}${gpuNames.length > 0 ? ` (${gpuNames.join(', ')})` : ''}`;
  return `${cpu}, ${cpus.length} CPU${cpus.length === 1 ? '' : 's'}, ${backend}`;
}
