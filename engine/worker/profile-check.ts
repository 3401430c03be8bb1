/**
 * `checkProfile`'s rules: validates a model profile and resolves its "auto"s (K/V types, flash
 * attention, an automatic context) against the model's shape and this machine's memory, with the
 * planner's rules (planner-core.ts). Free of llama.cpp, so every rule is unit-tested.
 */
import { kvCacheTypes, overflowPolicies, type DeviceMemory, type ModelProfile, type ProfileIssue } from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';
import {
  budgetOf,
  contextCeiling,
  CONTEXT_STEP,
  formatBytes,
  isQuantized,
  kvBytesPerToken,
  kvTypeInfo,
  MAX_PLAN_CONTEXT,
  MAX_SLOTS,
  maxContextThatFits,
  memoizeEstimator,
  MIN_AUTO_CONTEXT,
  pairName,
  pairOrder,
  pairRefusal,
  resolveFlashAttention,
  type ContextEstimator,
  type KvPair,
  type ModelShape,
  type PairRefusal,
  type Reserve,
} from './planner-core.ts';

const tokens = (n: number): string => `${n.toLocaleString('en-US')} tokens`;

export interface ProfileCheckInput {
  readonly shape: ModelShape;
  readonly device: DeviceMemory;
  readonly reserve: Reserve;
  readonly profile: ModelProfile;
  readonly estimate: ContextEstimator;
  /** The GPU layers in the model (`GgufInsights.totalLayers`: blocks + the output layer). */
  readonly totalLayers: number;
  /** "Automatic" context: the trained length capped at this (constants.ts AUTO_CONTEXT_CAP). */
  readonly autoContextCap: number;
}

export interface ProfileCheck {
  readonly issues: ProfileIssue[];
  readonly resolved: ResolvedProfile | null;
}

/**
 * Validates a profile and resolves its "auto"s (worker method `checkProfile`, protocol.ts):
 * - slots 1..8, a whole context size 0..1,048,576, GPU layers ≥ 0;
 * - flash attention "on" for a model that cannot use it;
 * - each fixed type through `pairRefusal` (flash attention, head size, backend);
 * - `streaming` overflow with a quantized K: a middle erase with a quantized K crashes
 *   llama.cpp 0.4.0 (docs/decisions/quantized-k-shift-crash.md), so it is an error on
 *   `overflowPolicy`, and "auto" K stays f16 with it;
 * - "auto" types: the best-quality allowed pair (pairOrder) that fits the context;
 * - the fit: weights + context within the budget (`budgetOf`: partial offload for GPU layers
 *   "auto", everything on the GPU when the profile asks for every layer there). A fixed context
 *   that does not fit is an error on `contextSize` (or on `gpuLayers`, when it is the GPU
 *   that is too small for the layers asked) that names the largest context that fits. An
 *   automatic context (0) shrinks to the largest that fits, with a warning, down to
 *   MIN_AUTO_CONTEXT.
 * Warnings: a context beyond the trained length, GPU layers on a machine without a GPU, and a
 * model that will not fit entirely on the GPU.
 */
export async function checkProfileCore(input: ProfileCheckInput): Promise<ProfileCheck> {
  const { shape, device, profile } = input;
  const issues = new IssueList();
  const refused = (): ProfileCheck => ({ issues: issues.list, resolved: null });
  checkFields(profile, shape, issues);
  if (issues.list.length > 0) return refused();

  const hasGpu = device.backend !== 'cpu' && device.vramFreeBytes !== null;
  if (typeof profile.gpuLayers === 'number') {
    if (!hasGpu && profile.gpuLayers > 0) issues.warning('gpuLayers', 'There is no GPU: every layer runs on the CPU.');
    else if (profile.gpuLayers > input.totalLayers) issues.warning('gpuLayers', `The model has ${input.totalLayers} layers; all of them go to the GPU.`);
  }
  const candidates = allowedPairs(input, issues);
  if (!candidates) return refused();
  const { allowed, flashAttention } = candidates;
  const fit = await fitContext(input, allowed, flashAttention, hasGpu, issues);
  if (!fit) return refused();
  return {
    issues: issues.list,
    resolved: {
      kType: fit.chosen.kType,
      vType: fit.chosen.vType,
      flashAttention,
      contextSize: fit.contextSize,
      gpuLayers: profile.gpuLayers,
      slots: profile.slots,
      overflowPolicy: profile.overflowPolicy,
    },
  };
}

class IssueList {
  readonly list: ProfileIssue[] = [];

  error(field: ProfileIssue['field'], message: string): void {
    this.list.push({ field, severity: 'error', message });
  }

  warning(field: ProfileIssue['field'], message: string): void {
    this.list.push({ field, severity: 'warning', message });
  }
}

/** Each field on its own: types, ranges, and flash attention the model cannot use. */
function checkFields(profile: ModelProfile, shape: ModelShape, issues: IssueList): void {
  for (const field of ['kType', 'vType'] as const) {
    const type = profile[field];
    if (type !== 'auto' && !(type in kvTypeInfo)) issues.error(field, `"${String(type)}" is not a KV cache type (${kvCacheTypes.join(', ')} or auto).`);
  }
  if (!['auto', 'on', 'off'].includes(profile.flashAttention)) issues.error('flashAttention', 'Flash attention must be auto, on or off.');
  if (!(overflowPolicies as readonly string[]).includes(profile.overflowPolicy)) issues.error('overflowPolicy', `The overflow policy must be one of ${overflowPolicies.join(', ')}.`);
  if (!Number.isInteger(profile.slots) || profile.slots < 1 || profile.slots > MAX_SLOTS) issues.error('slots', `Slots must be a whole number from 1 to ${MAX_SLOTS}.`);
  if (!Number.isInteger(profile.contextSize) || profile.contextSize < 0 || profile.contextSize > MAX_PLAN_CONTEXT) {
    issues.error('contextSize', `The context size must be a whole number of tokens up to ${MAX_PLAN_CONTEXT.toLocaleString('en-US')} (0 = automatic).`);
  }
  if (profile.gpuLayers !== 'auto' && (!Number.isInteger(profile.gpuLayers) || profile.gpuLayers < 0)) issues.error('gpuLayers', 'GPU layers must be "auto" or a whole number ≥ 0.');
  if (profile.flashAttention === 'on' && !shape.flashAttentionSupported) issues.error('flashAttention', "This model's architecture cannot use flash attention.");
}

/** The candidates: the fixed type(s), or every allowed type, in quality order; null (with the error) when none is. */
function allowedPairs(input: ProfileCheckInput, issues: IssueList): { allowed: KvPair[]; flashAttention: boolean } | null {
  const { shape, device, profile } = input;
  const streamingLike = profile.overflowPolicy === 'streaming';
  if (streamingLike && profile.kType !== 'auto' && isQuantized(profile.kType)) {
    issues.error(
      'overflowPolicy',
      `StreamingLLM erases the middle of the conversation's KV, which crashes llama.cpp with a quantized K cache (${profile.kType}). Use "drop oldest" or "stop and ask", or set K to f16.`,
    );
    return null;
  }
  const matching = pairOrder.filter(
    (pair) =>
      (profile.kType === 'auto' ? !(streamingLike && isQuantized(pair.kType)) : pair.kType === profile.kType) &&
      (profile.vType === 'auto' || pair.vType === profile.vType),
  );
  const flashAttention = resolveFlashAttention(profile.flashAttention, shape);
  const allowed: KvPair[] = [];
  let firstRefusal: PairRefusal | null = null;
  for (const pair of matching) {
    const refusal = pairRefusal(shape, pair, flashAttention, device.backend);
    if (refusal) firstRefusal ??= refusal;
    else allowed.push(pair);
  }
  if (allowed.length === 0) {
    if (firstRefusal) issues.error(firstRefusal.field, firstRefusal.message);
    else issues.error('kType', 'No K/V pair matches these settings.');
    return null;
  }
  return { allowed, flashAttention };
}

/** The first allowed pair (quality order) whose weights + context fit, and the context size; null (with the error) when none does. */
async function fitContext(input: ProfileCheckInput, allowed: KvPair[], flashAttention: boolean, hasGpu: boolean, issues: IssueList): Promise<{ chosen: KvPair; contextSize: number } | null> {
  const { shape, device, profile } = input;
  const budget = budgetOf(device, input.reserve);
  const wantsAllOnGpu = hasGpu && typeof profile.gpuLayers === 'number' && profile.gpuLayers >= input.totalLayers;
  const wantsCpuOnly = profile.gpuLayers === 0 || !hasGpu;
  const limit = wantsAllOnGpu ? (budget.fullGpu ?? budget.partial) : wantsCpuOnly ? Math.max(0, device.ramFreeBytes - input.reserve.ramBytes) : budget.partial;
  const where = wantsAllOnGpu ? 'free VRAM' : wantsCpuOnly ? 'free RAM' : hasGpu ? 'free VRAM and RAM' : 'free RAM';
  const estimate = memoizeEstimator(input.estimate);
  const slots = profile.slots;
  const total = async (pair: KvPair, size: number) => shape.weightsBytes + (await estimate({ contextSize: size, slots, pair, flashAttention }));

  const trained = shape.trainedContextLength;
  const automatic = profile.contextSize === 0;
  let contextSize = automatic ? (trained > 0 ? Math.min(trained, input.autoContextCap) : input.autoContextCap) : profile.contextSize;
  if (!automatic && trained > 0 && contextSize > trained) {
    issues.warning('contextSize', `The model was trained on ${tokens(trained)}; beyond that its replies degrade.`);
  }

  let chosen: KvPair | null = null;
  let needed = 0;
  for (const pair of allowed) {
    needed = await total(pair, contextSize);
    if (needed <= limit) {
      chosen = pair;
      break;
    }
  }
  if (!chosen) {
    const shrunk = await shrinkContext({ shape, profile, allowed, limit, where, wantsAllOnGpu, automatic, total }, contextSize, needed, issues);
    if (!shrunk) return null;
    ({ chosen, contextSize } = shrunk);
  }
  if (hasGpu && profile.gpuLayers === 'auto' && budget.fullGpu !== null && (await total(chosen, contextSize)) > budget.fullGpu) {
    issues.warning('gpuLayers', `The model and its context do not fit in ${formatBytes(budget.fullGpu)} of free VRAM: some layers run on the CPU, which is slower.`);
  }
  return { chosen, contextSize };
}

/** What `shrinkContext` needs of the fit. */
interface Fit {
  readonly shape: ModelShape;
  readonly profile: ModelProfile;
  readonly allowed: readonly KvPair[];
  readonly limit: number;
  readonly where: string;
  readonly wantsAllOnGpu: boolean;
  readonly automatic: boolean;
  total(pair: KvPair, size: number): Promise<number>;
}

/**
 * No pair fits `contextSize` (`needed` bytes with the last one): an automatic context shrinks to
 * the largest that fits, down to MIN_AUTO_CONTEXT, with a warning; a fixed one is an error that
 * names the largest that fits.
 */
async function shrinkContext(fit: Fit, contextSize: number, needed: number, issues: IssueList): Promise<{ chosen: KvPair; contextSize: number } | null> {
  const { shape, profile, allowed, limit, where, automatic } = fit;
  const slots = profile.slots;
  // The most compact allowed pair gives the longest context.
  const compact = allowed.reduce((best, pair) => (kvBytesPerToken(shape, pair) < kvBytesPerToken(shape, best) ? pair : best));
  const most = await maxContextThatFits((size) => fit.total(compact, size), limit, { min: CONTEXT_STEP, max: contextCeiling(shape), step: CONTEXT_STEP });
  const field = typeof profile.gpuLayers === 'number' && fit.wantsAllOnGpu ? 'gpuLayers' : 'contextSize';
  if (most === 0) {
    issues.error(automatic ? 'model' : field, `The model's weights (${formatBytes(shape.weightsBytes)}) leave no room for a context in ${formatBytes(limit)} of ${where}.`);
    return null;
  }
  const pairs = allowed.length === 1 ? `with ${pairName(compact)}` : 'with any allowed K/V pair';
  if (!automatic || most < MIN_AUTO_CONTEXT) {
    issues.error(
      field,
      `A context of ${tokens(contextSize)}${slots > 1 ? ` for each of ${slots} slots` : ''} does not fit ${pairs}: ${formatBytes(needed)} needed, ${formatBytes(limit)} of ${where}. The largest that fits is ${tokens(most)}${allowed.length > 1 ? ` (with ${pairName(compact)})` : ''}.`,
    );
    return null;
  }
  issues.warning('contextSize', `Automatic context: ${tokens(contextSize)} do not fit ${pairs} in ${formatBytes(limit)} of ${where}, so the context is ${tokens(most)}.`);
  for (const pair of allowed) {
    if ((await fit.total(pair, most)) <= limit) return { chosen: pair, contextSize: most };
  }
  return { chosen: compact, contextSize: most };
}
