/**
 * The memory planner's rules (issue 4), free of llama.cpp so they test without a model: the K/V
 * pairs and their quality order, which pairs validation refuses and why, the "auto" choice, the
 * longest-context search, the plan table, and `checkProfile`'s validation and resolution.
 *
 * Memory itself comes from an injected `ContextEstimator`: in the engine it is node-llama-cpp's
 * `estimateContextResourceRequirementsV2` (planner.ts), which runs llama.cpp's own context setup
 * with allocation switched off, so it sees the real KV, compute and output buffers. The
 * deprecated V1 estimate is not used: facts.md measured it as badly wrong for quantized KV.
 *
 * Decisions:
 * - Quality order. A pair is as good as its worse half, with K counted half a step worse than
 *   V at the same type, because K is the more sensitive (facts.md, llama.cpp PR 7412: f16/q8_0
 *   KLD 0.00074 < q8_0/f16 0.00094 < q8_0/q8_0 0.00098 < f16/q5_1 0.0018). Types rank
 *   f16 < q8_0 < q5_1 < q5_0 < q4_1 < iq4_nl < q4_0 by bits per value; iq4_nl ranks above q4_0
 *   (same 4.5 bits, non-linear levels that lose less). Ties go to the pair whose two halves lose
 *   less in sum. The order starts f16/f16, f16/q8_0, q8_0/f16, q8_0/q8_0, f16/q5_1, q8_0/q5_1,
 *   q5_1/f16 … so "auto" quantizes V before K, as the issue asks.
 * - "auto" picks the first allowed pair in that order that fits the requested context.
 * - Fit. With a GPU, a context "fits" when weights + context fit in free VRAM (the whole model
 *   on the GPU); "partial" lets the layers that do not fit live in RAM, so it is bounded by free
 *   VRAM + free RAM (on unified memory, by the larger of the two, since they are one memory).
 *   Without a GPU both are RAM. Weights are counted whole, also for the GPU: llama.cpp keeps the
 *   token-embedding table in RAM, so a full-GPU fit is conservative by that table.
 * - The longest context is searched on multiples of 256 (llama.cpp pads the KV cache to 256
 *   cells) up to the model's trained length: a longer context runs but produces nonsense.
 * - Flash attention "auto": on whenever the model's architecture supports it, as llama.cpp's own
 *   "auto" decides. A quantized V needs it, facts.md measured every pair working with it, and
 *   without it the compute buffer holds the whole K·Q matrix: on the test model at 4,096
 *   tokens, f16/f16 takes 49 MB with it off and 11 MB with it on (and an 8B model at 32k
 *   tokens would need ~2 GiB more). The engine ran with it off before issue 4; chats saved then
 *   have another KV layout and are read again once (kv-cache.ts fingerprints it).
 */
import { kvCacheTypes, overflowPolicies, type DeviceMemory, type KvCacheType, type KvPlan, type KvPlanRow, type ModelProfile, type ProfileIssue } from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';

/** llama.cpp pads the KV cache to this many cells (node-llama-cpp's `contextSizePad`). */
export const CONTEXT_STEP = 256;

/** The longest context the planner considers (the contract's largest contextSize). */
export const MAX_PLAN_CONTEXT = 1_048_576;

/** The shortest context "automatic" may shrink to before the profile is refused instead. */
export const MIN_AUTO_CONTEXT = 512;

/** The most slots a context gets (Settings.kvSlots). */
export const MAX_SLOTS = 8;

export interface KvPair {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
}

/** ggml's block layout of each type (ggml-common.h) and its place in the quality order (0 = best). */
export const kvTypeInfo: Readonly<Record<KvCacheType, { readonly blockSize: number; readonly bytesPerBlock: number; readonly rank: number }>> = {
  f16: { blockSize: 1, bytesPerBlock: 2, rank: 0 },
  q8_0: { blockSize: 32, bytesPerBlock: 34, rank: 1 },
  q5_1: { blockSize: 32, bytesPerBlock: 24, rank: 2 },
  q5_0: { blockSize: 32, bytesPerBlock: 22, rank: 3 },
  q4_1: { blockSize: 32, bytesPerBlock: 20, rank: 4 },
  iq4_nl: { blockSize: 32, bytesPerBlock: 18, rank: 5 },
  q4_0: { blockSize: 32, bytesPerBlock: 18, rank: 6 },
};

export function isQuantized(type: KvCacheType): boolean {
  return type !== 'f16';
}

/** A pair's quality loss on the ordering scale (see the module comment); lower is better. */
function pairLoss(pair: KvPair): { worst: number; sum: number } {
  const k = kvTypeInfo[pair.kType].rank;
  const kLoss = k === 0 ? 0 : k + 0.5;
  const vLoss = kvTypeInfo[pair.vType].rank;
  return { worst: Math.max(kLoss, vLoss), sum: kLoss + vLoss };
}

/** Compares two pairs by quality, best first (see the module comment). */
export function compareQuality(a: KvPair, b: KvPair): number {
  const la = pairLoss(a);
  const lb = pairLoss(b);
  return la.worst - lb.worst || la.sum - lb.sum || kvTypeInfo[a.kType].rank - kvTypeInfo[b.kType].rank;
}

/** Every K/V pair of the contract's types, best quality first. */
export const pairOrder: readonly KvPair[] = kvCacheTypes
  .flatMap((kType) => kvCacheTypes.map((vType): KvPair => ({ kType, vType })))
  .sort(compareQuality);

export const pairName = (pair: KvPair): string => `${pair.kType}/${pair.vType}`;

/** What the planner needs to know of a model, from its GGUF metadata (planner.ts `readModelShape`). */
export interface ModelShape {
  /** `block_count`. */
  readonly layers: number;
  /** KV heads of each layer (`head_count_kv`, which may be per layer). */
  readonly headCountKv: readonly number[];
  /** n_embd_head_k and n_embd_head_v: the head sizes quantized blocks must divide. */
  readonly headDimK: number;
  readonly headDimV: number;
  /** The trained context length; 0 when the file does not say. */
  readonly trainedContextLength: number;
  /** False for architectures llama.cpp runs without flash attention (or K and V head sizes that differ). */
  readonly flashAttentionSupported: boolean;
  /** The tensors' bytes. */
  readonly weightsBytes: number;
}

/** Bytes one row of `count` values of `type` takes (whole blocks). */
function rowBytes(type: KvCacheType, count: number): number {
  const { blockSize, bytesPerBlock } = kvTypeInfo[type];
  return Math.ceil(count / blockSize) * bytesPerBlock;
}

/** K and V bytes one token takes in one slot, over every layer. */
export function kvBytesPerToken(shape: ModelShape, pair: KvPair): number {
  let total = 0;
  for (const heads of shape.headCountKv) total += rowBytes(pair.kType, heads * shape.headDimK) + rowBytes(pair.vType, heads * shape.headDimV);
  return total;
}

/** The KV cells a context of `contextSize` tokens per slot allocates for each slot (padded as llama.cpp does). */
export function cellsPerSlot(contextSize: number): number {
  return Math.ceil(Math.max(1, contextSize) / CONTEXT_STEP) * CONTEXT_STEP;
}

export type Backend = DeviceMemory['backend'];

/** Why validation refuses a pair, with the profile field the message belongs to. */
export interface PairRefusal {
  readonly field: 'kType' | 'vType';
  readonly message: string;
}

/** Types whose flash-attention kernels exist per backend in llama.cpp v0.4.0 (see `pairRefusal`). */
const cudaFlashTypes: ReadonlySet<KvCacheType> = new Set(['f16', 'q8_0', 'q4_0']);
const metalFlashTypes: ReadonlySet<KvCacheType> = new Set(['f16', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0']);

/**
 * Why `pair` cannot run on this model and backend with flash attention on or off, or null.
 * - A quantized V needs flash attention (llama.cpp refuses the context otherwise).
 * - A quantized type's block size must divide the head size: llama.cpp v0.4.0 refuses K/V types
 *   whose block does not divide n_embd_head_k/v with flash attention on, and with it off the
 *   per-head views would split blocks; so it is refused either way.
 * - The backend, from llama.cpp v0.4.0's `supports_op` for FLASH_ATTN_EXT: the CPU and Vulkan
 *   run every pair of these types (facts.md measured every CPU pair); CUDA's prebuilt binaries
 *   (without GGML_CUDA_FA_ALL_QUANTS) only f16/f16, q8_0/q8_0 and q4_0/q4_0; Metal only K and V
 *   of one type, and not iq4_nl. Elsewhere the attention would fall back to the CPU, copying the
 *   cache every step, so it is refused rather than silently slow.
 */
export function pairRefusal(shape: ModelShape, pair: KvPair, flashAttention: boolean, backend: Backend): PairRefusal | null {
  const { kType, vType } = pair;
  if (isQuantized(vType) && !flashAttention) {
    return {
      field: 'vType',
      message: shape.flashAttentionSupported
        ? `A ${vType} V cache needs flash attention, which is off.`
        : `A ${vType} V cache needs flash attention, which this model's architecture does not support.`,
    };
  }
  for (const [field, type, headDim, half] of [['kType', kType, shape.headDimK, 'K'], ['vType', vType, shape.headDimV, 'V']] as const) {
    const { blockSize } = kvTypeInfo[type];
    if (isQuantized(type) && headDim % blockSize !== 0) {
      return { field, message: `This model's ${half} head size (${headDim}) is not a multiple of ${type}'s block size (${blockSize}).` };
    }
  }
  if (flashAttention && (isQuantized(kType) || isQuantized(vType))) {
    const field = isQuantized(kType) ? 'kType' : 'vType';
    if (backend === 'cuda' && (kType !== vType || !cudaFlashTypes.has(kType))) {
      return { field, message: `llama.cpp's CUDA build has flash-attention kernels for f16/f16, q8_0/q8_0 and q4_0/q4_0 only, not ${pairName(pair)}.` };
    }
    if (backend === 'metal' && (kType !== vType || !metalFlashTypes.has(kType))) {
      return { field, message: `llama.cpp's Metal flash attention needs K and V of one type (f16, q8_0, q5_1, q5_0, q4_1 or q4_0), not ${pairName(pair)}.` };
    }
  }
  return null;
}

/** Resolves the flash-attention setting (see the module comment for "auto"). */
export function resolveFlashAttention(setting: ModelProfile['flashAttention'], shape: ModelShape): boolean {
  return setting === 'auto' ? shape.flashAttentionSupported : setting === 'on';
}

/**
 * The largest context (a multiple of `step`, between `min` and `max`; `max` itself counts too)
 * whose estimate is within `budget`, or 0 when not even `min` fits. `estimate` must not
 * decrease as the context grows.
 *
 * A bisection, except that the first two steps try the point where the straight line through
 * the bracket's ends meets the budget, and then its neighbour: the estimate is nearly affine in
 * the context size (KV grows linearly, buffers slowly), so this usually ends after four or five
 * estimates in all, where plain halving takes a dozen. A curve that is not affine costs those two
 * steps (four estimates) more than the halving.
 */
export async function maxContextThatFits(
  estimate: (contextSize: number) => Promise<number> | number,
  budget: number,
  options: { readonly min: number; readonly max: number; readonly step: number },
): Promise<number> {
  const { step } = options;
  const max = Math.floor(options.max);
  let lo = Math.ceil(options.min / step) * step;
  if (max < lo) return 0;
  let fLo = await estimate(lo);
  if (fLo > budget) return 0;
  let hi = max;
  let fHi = await estimate(hi);
  if (fHi <= budget) return hi;
  // Invariant: f(lo) ≤ budget < f(hi); the answer is in [lo, hi).
  const gridBelow = (value: number) => Math.floor(value / step) * step;
  for (let round = 0; ; round++) {
    const lastBelowHi = gridBelow(hi - 1);
    if (lastBelowHi <= lo) return lo;
    const interpolate = round < 2 && fHi > fLo;
    let guess = interpolate ? gridBelow(lo + ((budget - fLo) * (hi - lo)) / (fHi - fLo)) : gridBelow((lo + hi) / 2);
    guess = Math.min(lastBelowHi, Math.max(lo + step, guess));
    const fGuess = await estimate(guess);
    if (fGuess <= budget) {
      lo = guess;
      fLo = fGuess;
    } else {
      hi = guess;
      fHi = fGuess;
    }
    if (!interpolate) continue;
    // The neighbour on the far side of the budget ends the search when the line was right.
    const neighbour = fGuess <= budget ? guess + step : guess - step;
    if (neighbour <= lo || neighbour >= hi) continue;
    const fNeighbour = await estimate(neighbour);
    if (fNeighbour <= budget) {
      lo = neighbour;
      fLo = fNeighbour;
    } else {
      hi = neighbour;
      fHi = fNeighbour;
    }
  }
}

/**
 * Estimates a context's memory (KV + compute + output buffers, every slot), as llama.cpp would
 * allocate it; weights excluded. In the engine: `estimateContextResourceRequirementsV2`.
 */
export type ContextEstimator = (request: {
  readonly contextSize: number;
  readonly slots: number;
  readonly pair: KvPair;
  readonly flashAttention: boolean;
}) => Promise<number>;

/** Memory kept free on top of what the model needs: node-llama-cpp's paddings (planner.ts). */
export interface Reserve {
  readonly vramBytes: number;
  readonly ramBytes: number;
}

/** What the model (weights + context) may use: all on the GPU, and with part of it in RAM. */
export interface Budget {
  /** null without a GPU. */
  readonly fullGpu: number | null;
  readonly partial: number;
}

export function budgetOf(device: DeviceMemory, reserve: Reserve): Budget {
  const ram = Math.max(0, device.ramFreeBytes - reserve.ramBytes);
  if (device.vramFreeBytes === null || device.backend === 'cpu') return { fullGpu: null, partial: ram };
  const vram = Math.max(0, device.vramFreeBytes - reserve.vramBytes);
  return { fullGpu: vram, partial: device.unifiedMemory ? Math.max(vram, ram) : vram + ram };
}

/** The longest context per slot the planner considers for this model: its trained length, capped. */
export function contextCeiling(shape: ModelShape): number {
  const trained = shape.trainedContextLength > 0 ? shape.trainedContextLength : MAX_PLAN_CONTEXT;
  return Math.max(CONTEXT_STEP, Math.min(trained, MAX_PLAN_CONTEXT));
}

export interface PlanInput {
  readonly shape: ModelShape;
  readonly device: DeviceMemory;
  readonly reserve: Reserve;
  /** Tokens per slot the rows' totals are for. */
  readonly contextSize: number;
  readonly slots: number;
  readonly estimate: ContextEstimator;
}

/** Memoizes an estimator, so that searches sharing points (the bracket ends) ask once. */
export function memoizeEstimator(estimate: ContextEstimator): ContextEstimator {
  const cache = new Map<string, Promise<number>>();
  return (request) => {
    const key = `${request.contextSize}:${request.slots}:${request.pair.kType}:${request.pair.vType}:${Number(request.flashAttention)}`;
    let value = cache.get(key);
    if (!value) {
      value = estimate(request);
      cache.set(key, value);
    }
    return value;
  };
}

/**
 * The planner's table for every pair (pairOrder), and the pair "auto" would pick. Refused pairs
 * keep their KV size and a total built from the f16/f16 context's buffers (their own cannot be
 * simulated: llama.cpp refuses them), and fit nowhere.
 */
export async function buildPlan(input: PlanInput): Promise<KvPlan> {
  const { shape, device, slots } = input;
  const contextSize = Math.max(1, Math.floor(input.contextSize));
  const estimate = memoizeEstimator(input.estimate);
  const budget = budgetOf(device, input.reserve);
  const ceiling = contextCeiling(shape);
  const cells = cellsPerSlot(contextSize) * slots;
  const reference: KvPair = { kType: 'f16', vType: 'f16' };
  const flashAttention = resolveFlashAttention('auto', shape);
  let referenceOverhead: number | null = null;

  const rows: KvPlanRow[] = [];
  for (const pair of pairOrder) {
    const refusal = pairRefusal(shape, pair, flashAttention, device.backend);
    const perToken = kvBytesPerToken(shape, pair);
    const kvBytes = perToken * cells;
    if (refusal) {
      referenceOverhead ??= (await estimate({ contextSize, slots, pair: reference, flashAttention })) - kvBytesPerToken(shape, reference) * cells;
      rows.push({
        kType: pair.kType,
        vType: pair.vType,
        refused: refusal.message,
        kvBytesPerToken: perToken,
        kvBytes,
        totalBytes: shape.weightsBytes + kvBytes + Math.max(0, referenceOverhead),
        maxContextFullGpu: budget.fullGpu === null ? null : 0,
        maxContextPartial: 0,
        fits: false,
      });
      continue;
    }
    const total = async (size: number) => shape.weightsBytes + (await estimate({ contextSize: size, slots, pair, flashAttention }));
    const totalBytes = await total(contextSize);
    const search = (limit: number) => maxContextThatFits(total, limit, { min: CONTEXT_STEP, max: ceiling, step: CONTEXT_STEP });
    const maxContextFullGpu = budget.fullGpu === null ? null : await search(budget.fullGpu);
    const maxContextPartial = await search(budget.partial);
    rows.push({
      kType: pair.kType,
      vType: pair.vType,
      kvBytesPerToken: perToken,
      kvBytes,
      totalBytes,
      maxContextFullGpu,
      maxContextPartial,
      fits: totalBytes <= (budget.fullGpu ?? budget.partial),
    });
  }
  const chosen = rows.find((row) => row.refused === undefined && row.fits);
  return {
    device,
    contextSize,
    slots,
    weightsBytes: shape.weightsBytes,
    rows,
    auto: chosen ? { kType: chosen.kType, vType: chosen.vType } : null,
  };
}

/** Bytes for people: 1.5 GiB, 320 MiB, 12 KiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

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
 * - `streaming` or `shift` overflow with a quantized K: a middle erase or a shift with a
 *   quantized K crashes llama.cpp 0.4.0 (facts.md), so it is an error on `overflowPolicy`,
 *   and "auto" K stays f16 with those policies;
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
  const issues: ProfileIssue[] = [];
  const error = (field: ProfileIssue['field'], message: string) => issues.push({ field, severity: 'error', message });
  const warning = (field: ProfileIssue['field'], message: string) => issues.push({ field, severity: 'warning', message });
  const refused = (): ProfileCheck => ({ issues, resolved: null });

  for (const field of ['kType', 'vType'] as const) {
    const type = profile[field];
    if (type !== 'auto' && !(type in kvTypeInfo)) error(field, `"${String(type)}" is not a KV cache type (${kvCacheTypes.join(', ')} or auto).`);
  }
  if (!['auto', 'on', 'off'].includes(profile.flashAttention)) error('flashAttention', 'Flash attention must be auto, on or off.');
  if (!(overflowPolicies as readonly string[]).includes(profile.overflowPolicy)) error('overflowPolicy', `The overflow policy must be one of ${overflowPolicies.join(', ')}.`);
  if (!Number.isInteger(profile.slots) || profile.slots < 1 || profile.slots > MAX_SLOTS) error('slots', `Slots must be a whole number from 1 to ${MAX_SLOTS}.`);
  if (!Number.isInteger(profile.contextSize) || profile.contextSize < 0 || profile.contextSize > MAX_PLAN_CONTEXT) {
    error('contextSize', `The context size must be a whole number of tokens up to ${MAX_PLAN_CONTEXT.toLocaleString('en-US')} (0 = automatic).`);
  }
  if (profile.gpuLayers !== 'auto' && (!Number.isInteger(profile.gpuLayers) || profile.gpuLayers < 0)) error('gpuLayers', 'GPU layers must be "auto" or a whole number ≥ 0.');
  if (profile.flashAttention === 'on' && !shape.flashAttentionSupported) error('flashAttention', "This model's architecture cannot use flash attention.");
  if (issues.length > 0) return refused();

  const hasGpu = device.backend !== 'cpu' && device.vramFreeBytes !== null;
  if (typeof profile.gpuLayers === 'number') {
    if (!hasGpu && profile.gpuLayers > 0) warning('gpuLayers', 'There is no GPU: every layer runs on the CPU.');
    else if (profile.gpuLayers > input.totalLayers) warning('gpuLayers', `The model has ${input.totalLayers} layers; all of them go to the GPU.`);
  }

  // The candidates: the fixed type(s), or every allowed type, in quality order.
  const streamingLike = profile.overflowPolicy === 'streaming' || profile.overflowPolicy === 'shift';
  if (streamingLike && profile.kType !== 'auto' && isQuantized(profile.kType)) {
    error(
      'overflowPolicy',
      `"${profile.overflowPolicy}" erases or shifts the middle of the conversation, which crashes llama.cpp with a quantized K cache (${profile.kType}). Use "rebuild" or "refuse", or set K to f16.`,
    );
    return refused();
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
    if (firstRefusal) error(firstRefusal.field, firstRefusal.message);
    else error('kType', 'No K/V pair matches these settings.');
    return refused();
  }

  // The fit.
  const budget = budgetOf(device, input.reserve);
  const wantsAllOnGpu = hasGpu && typeof profile.gpuLayers === 'number' && profile.gpuLayers >= input.totalLayers;
  const wantsCpuOnly = profile.gpuLayers === 0 || !hasGpu;
  const limit = wantsAllOnGpu ? (budget.fullGpu ?? budget.partial) : wantsCpuOnly ? Math.max(0, device.ramFreeBytes - input.reserve.ramBytes) : budget.partial;
  const where = wantsAllOnGpu ? 'free VRAM' : wantsCpuOnly ? 'free RAM' : hasGpu ? 'free VRAM and RAM' : 'free RAM';
  const estimate = memoizeEstimator(input.estimate);
  const slots = profile.slots;
  const total = async (pair: KvPair, size: number) => shape.weightsBytes + (await estimate({ contextSize: size, slots, pair, flashAttention }));
  const ceiling = contextCeiling(shape);
  const largest = (pair: KvPair) => maxContextThatFits((size) => total(pair, size), limit, { min: CONTEXT_STEP, max: ceiling, step: CONTEXT_STEP });

  const trained = shape.trainedContextLength;
  const automatic = profile.contextSize === 0;
  let contextSize = automatic ? (trained > 0 ? Math.min(trained, input.autoContextCap) : input.autoContextCap) : profile.contextSize;
  if (!automatic && trained > 0 && contextSize > trained) {
    warning('contextSize', `The model was trained on ${tokens(trained)}; beyond that its replies degrade.`);
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
    // The most compact allowed pair gives the longest context.
    const compact = allowed.reduce((best, pair) => (kvBytesPerToken(shape, pair) < kvBytesPerToken(shape, best) ? pair : best));
    const most = await largest(compact);
    const field = typeof profile.gpuLayers === 'number' && wantsAllOnGpu ? 'gpuLayers' : 'contextSize';
    if (most === 0) {
      error(automatic ? 'model' : field, `The model's weights (${formatBytes(shape.weightsBytes)}) leave no room for a context in ${formatBytes(limit)} of ${where}.`);
      return refused();
    }
    const pairs = allowed.length === 1 ? `with ${pairName(compact)}` : 'with any allowed K/V pair';
    if (!automatic || most < MIN_AUTO_CONTEXT) {
      error(
        field,
        `A context of ${tokens(contextSize)}${slots > 1 ? ` for each of ${slots} slots` : ''} does not fit ${pairs}: ${formatBytes(needed)} needed, ${formatBytes(limit)} of ${where}. The largest that fits is ${tokens(most)}${allowed.length > 1 ? ` (with ${pairName(compact)})` : ''}.`,
      );
      return refused();
    }
    warning('contextSize', `Automatic context: ${tokens(contextSize)} do not fit ${pairs} in ${formatBytes(limit)} of ${where}, so the context is ${tokens(most)}.`);
    contextSize = most;
    for (const pair of allowed) {
      if ((await total(pair, contextSize)) <= limit) {
        chosen = pair;
        break;
      }
    }
    chosen ??= compact;
  }
  if (hasGpu && profile.gpuLayers === 'auto' && budget.fullGpu !== null && (await total(chosen, contextSize)) > budget.fullGpu) {
    warning('gpuLayers', `The model and its context do not fit in ${formatBytes(budget.fullGpu)} of free VRAM: some layers run on the CPU, which is slower.`);
  }
  return {
    issues,
    resolved: {
      kType: chosen.kType,
      vType: chosen.vType,
      flashAttention,
      contextSize,
      gpuLayers: profile.gpuLayers,
      slots,
      overflowPolicy: profile.overflowPolicy,
    },
  };
}
