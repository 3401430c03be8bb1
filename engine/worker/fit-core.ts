/**
 * Fit verdicts ("will this file run on my machine?"), free of llama.cpp so they test without a
 * model: for one file, the longest context of each of the contract's KV types (f16, q8_0, q4_0,
 * K and V of one type) fully on the GPU and with part of the model in RAM, and from those where
 * it would run. Built on the planner's rules (planner-core.ts): its budgets, refusals, search
 * and ceiling. The engine feeds it a remote file's header (planner.ts `fitRemote`).
 */
import { FIT_MIN_CONTEXT, fitKvTypes, type DeviceMemory, type FileFit, type FitContext, type FitKvType, type FitVerdict } from '../contract/index.ts';
import {
  budgetOf,
  CONTEXT_STEP,
  contextCeiling,
  maxContextThatFits,
  memoizeEstimator,
  pairRefusal,
  resolveFlashAttention,
  type ContextEstimator,
  type KvPair,
  type ModelShape,
  type Reserve,
} from './planner-core.ts';

export interface FileFitInput {
  /** The model's shape, with `weightsBytes` the file's weights. */
  readonly shape: ModelShape;
  /** This machine's memory; only its totals count (see `deviceTotals`). */
  readonly device: DeviceMemory;
  readonly reserve: Reserve;
  /** A context's memory; shared by every file of one model (it does not depend on the weights). */
  readonly estimate: ContextEstimator;
}

/**
 * The device as a verdict sees it: everything free. Whether to download a model should not
 * depend on what else happens to be open right now (a browser, another model), and the verdict
 * must not change from one visit to the next; the planner's reserve is still kept.
 */
export function deviceTotals(device: DeviceMemory): DeviceMemory {
  return { ...device, vramFreeBytes: device.vramTotalBytes, ramFreeBytes: device.ramTotalBytes };
}

/** One KV type's longest contexts: on the GPU alone (null without a GPU) and with part in RAM. */
interface TypeReach {
  readonly kvType: FitKvType;
  readonly refused?: string;
  readonly fullGpu: number | null;
  /** Computed only when no type runs fully on the GPU (null until then). */
  partial: number | null;
}

/**
 * The verdict for one file, with one slot and flash attention as "auto" resolves it:
 * - `gpu`: some allowed type runs the shortest useful context (`FIT_MIN_CONTEXT`, or the trained
 *   context when that is shorter) with the whole model on the GPU;
 * - `partial`: none does on the GPU alone, but one does with the layers that do not fit in RAM
 *   (on unified memory, within the larger of Metal's limit and RAM, as `budgetOf` says);
 * - `ram`: there is no GPU, and it fits in RAM;
 * - `too-large`: not even that.
 * Each type's `maxContext` is its longest context where the verdict says the model runs (on the
 * GPU for `gpu`, with RAM for the others; for `too-large` that is shorter than the shortest
 * useful context, often 0); a refused type has 0 and why. `chosen` is the best type (f16, q8_0,
 * q4_0 in that order) whose `maxContext` reaches the shortest useful context: the quality
 * Hearth would pick at that length, not the longest context.
 */
export async function fileFit(input: FileFitInput): Promise<FileFit> {
  const { shape } = input;
  const device = deviceTotals(input.device);
  const budget = budgetOf(device, input.reserve);
  const ceiling = contextCeiling(shape);
  const needed = Math.min(FIT_MIN_CONTEXT, ceiling);
  const flashAttention = resolveFlashAttention('auto', shape);
  const estimate = memoizeEstimator(input.estimate);
  const search = (pair: KvPair, limit: number) =>
    maxContextThatFits(
      async (contextSize) => shape.weightsBytes + (await estimate({ contextSize, slots: 1, pair, flashAttention })),
      limit,
      { min: CONTEXT_STEP, max: ceiling, step: CONTEXT_STEP },
    );

  const reaches: TypeReach[] = [];
  for (const kvType of fitKvTypes) {
    const pair: KvPair = { kType: kvType, vType: kvType };
    const refusal = pairRefusal(shape, pair, flashAttention, device.backend);
    if (refusal) {
      reaches.push({ kvType, refused: refusal.message, fullGpu: budget.fullGpu === null ? null : 0, partial: 0 });
      continue;
    }
    reaches.push({ kvType, fullGpu: budget.fullGpu === null ? null : await search(pair, budget.fullGpu), partial: null });
  }

  let verdict: FitVerdict;
  let maxContext: (reach: TypeReach) => number;
  if (reaches.some((reach) => (reach.fullGpu ?? 0) >= needed)) {
    verdict = 'gpu';
    maxContext = (reach) => reach.fullGpu ?? 0;
  } else {
    // Only now the wider budget: a model that runs on the GPU alone never needs it.
    for (const reach of reaches) reach.partial ??= await search({ kType: reach.kvType, vType: reach.kvType }, budget.partial);
    maxContext = (reach) => reach.partial ?? 0;
    const runs = reaches.some((reach) => maxContext(reach) >= needed);
    verdict = !runs ? 'too-large' : budget.fullGpu === null ? 'ram' : 'partial';
  }

  const contexts: FitContext[] = reaches.map((reach) =>
    reach.refused === undefined ? { kvType: reach.kvType, maxContext: maxContext(reach) } : { kvType: reach.kvType, maxContext: 0, refused: reach.refused },
  );
  const chosen = verdict === 'too-large' ? null : (contexts.find((context) => context.refused === undefined && context.maxContext >= needed)?.kvType ?? null);
  return { verdict, weightsBytes: shape.weightsBytes, contexts, chosen, trainedContextLength: shape.trainedContextLength };
}

/** Verdicts from best to worst, for comparisons (`partial` and `ram` rank alike: both run partly or wholly from RAM). */
export const verdictRank: Readonly<Record<FitVerdict, number>> = { gpu: 2, partial: 1, ram: 1, 'too-large': 0 };
