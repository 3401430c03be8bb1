/**
 * The memory planner's rules, free of llama.cpp so they test without a model: the K/V pairs and
 * their quality order, which pairs validation refuses and why, the "auto" choice ("auto" picks
 * the first allowed pair in quality order that fits the requested context), the longest-context
 * search and the plan table. `checkProfile`'s validation builds on them (profile-check.ts).
 *
 * Memory itself comes from an injected `ContextEstimator`: in the engine it is node-llama-cpp's
 * `estimateContextResourceRequirementsV2` (planner.ts), which runs llama.cpp's own context setup
 * with allocation switched off, so it sees the real KV, compute and output buffers. The
 * deprecated V1 estimate is badly wrong for quantized KV (docs/decisions/memory-estimate.md).
 */
import { kvCacheTypes, type DeviceMemory, type KvCacheType, type KvPlan, type KvPlanRow, type ModelProfile } from '../contract/index.ts';

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

/**
 * A pair's quality loss on the ordering scale; lower is better. A pair is as good as its worse
 * half, with K counted half a step worse than V at the same type, because K is the more
 * sensitive (docs/decisions/kv-quality.md: f16/q8_0 KLD 0.00074 < q8_0/f16 0.00094 < q8_0/q8_0
 * 0.00098 < f16/q5_1 0.0018). Types rank f16 < q8_0 < q5_1 < q5_0 < q4_1 < iq4_nl < q4_0 by bits
 * per value; iq4_nl ranks above q4_0 (same 4.5 bits, non-linear levels that lose less). Ties go
 * to the pair whose two halves lose less in sum. The order starts f16/f16, f16/q8_0, q8_0/f16,
 * q8_0/q8_0, f16/q5_1, q8_0/q5_1, q5_1/f16 …, so "auto" quantizes V before K.
 */
function pairLoss(pair: KvPair): { worst: number; sum: number } {
  const k = kvTypeInfo[pair.kType].rank;
  const kLoss = k === 0 ? 0 : k + 0.5;
  const vLoss = kvTypeInfo[pair.vType].rank;
  return { worst: Math.max(kLoss, vLoss), sum: kLoss + vLoss };
}

/** Compares two pairs by quality, best first (see `pairLoss`). */
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
 *   run every pair of these types (every CPU pair was measured working); CUDA's prebuilt binaries
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

/**
 * Resolves the flash-attention setting. "auto" is on whenever the model's architecture supports
 * it, as llama.cpp's own "auto" decides (docs/decisions/flash-attention-auto.md): a quantized V
 * needs it, every pair works with it, and without it the compute buffer holds the whole K·Q
 * matrix (on the test model at 4,096 tokens, f16/f16 takes 49 MB with it off and 11 MB with it
 * on). Chats saved while the engine ran with it off have another KV layout and are read again
 * once (kv-shape.ts fingerprints it).
 */
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

/**
 * With a GPU, a context "fits" when weights + context fit in free VRAM (the whole model on the
 * GPU); "partial" lets the layers that do not fit live in RAM, so it is bounded by free VRAM +
 * free RAM (on unified memory, by the larger of the two, since they are one memory). Without a
 * GPU both are RAM. Weights are counted whole, also for the GPU: llama.cpp keeps the
 * token-embedding table in RAM, so a full-GPU fit is conservative by that table.
 */
export function budgetOf(device: DeviceMemory, reserve: Reserve): Budget {
  const ram = Math.max(0, device.ramFreeBytes - reserve.ramBytes);
  if (device.vramFreeBytes === null || device.backend === 'cpu') return { fullGpu: null, partial: ram };
  const vram = Math.max(0, device.vramFreeBytes - reserve.vramBytes);
  return { fullGpu: vram, partial: device.unifiedMemory ? Math.max(vram, ram) : vram + ram };
}

/**
 * The longest context per slot the planner considers for this model: its trained length (a
 * longer context runs but produces nonsense), capped. Searches step by CONTEXT_STEP, the cells
 * llama.cpp pads the KV cache to.
 */
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
