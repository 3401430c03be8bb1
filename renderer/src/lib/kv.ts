/**
 * Words and figures for KV cache types, the planner and the quality meter. Pure, so
 * the Settings screen, the model screen and their tests share one way of saying each thing.
 */
import type { DeviceMemory, KvCacheType, KvPlan, KvPlanRow, KvQuality, ModelInfo, OverflowPolicy } from '../contract.ts';
import { formatBytes, formatCount } from './format.ts';

/**
 * The contract's `kvCacheTypes`, best quality first. Repeated here because the renderer takes
 * only types from the contract (its zod schemas stay out of the page bundle); the checks below
 * fail to compile if the two lists drift apart.
 */
export const kvTypes = ['f16', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0', 'iq4_nl'] as const satisfies readonly KvCacheType[];
export const overflowPolicyList = ['drop-oldest', 'streaming', 'stop'] as const satisfies readonly OverflowPolicy[];
type Missing<All, Listed> = [Exclude<All, Listed>] extends [never] ? true : never;
const kvTypesComplete: Missing<KvCacheType, (typeof kvTypes)[number]> = true;
const policiesComplete: Missing<OverflowPolicy, (typeof overflowPolicyList)[number]> = true;
void kvTypesComplete;
void policiesComplete;

export function isQuantized(type: KvCacheType | 'auto'): boolean {
  return type !== 'f16' && type !== 'auto';
}

/** The contract's ceiling on a profile's context size (api.ts modelProfilePatchSchema). */
export const maxContext = 1_048_576;

/** One line per overflow policy, shown beside its choice. */
export const overflowPolicyText: Readonly<Record<OverflowPolicy, { label: string; description: string }>> = {
  'drop-oldest': {
    label: 'Drop oldest messages',
    description: 'The default. The model stops seeing the oldest messages (the system prompt stays), in one large step so the turns after it reuse their cache. Safe with every K type.',
  },
  streaming: { label: 'StreamingLLM window', description: 'Keeps the first 4 tokens and the most recent ones by erasing the middle of the cache. Needs an F16 K.' },
  stop: { label: 'Stop and ask', description: 'The reply stops and the chat offers what to do: drop the oldest messages, raise the context, or start a new chat.' },
};

/** Policies that erase the middle of the KV in place, which crashes llama.cpp with a quantized K (docs/decisions/quantized-k-shift-crash.md). */
export function needsF16K(policy: OverflowPolicy): boolean {
  return policy === 'streaming';
}

/** "q8_0 / f16" */
export function pairText(k: KvCacheType, v: KvCacheType): string {
  return `${k} / ${v}`;
}

const tokens = formatCount;

/**
 * The device the plan was made for: "CPU · RAM 8.59 GB free of 17.2 GB",
 * "CUDA (RTX 4070) · VRAM 7.10 GB free of 8.59 GB · RAM …", or on Apple silicon what Metal
 * lets the process use of the unified memory.
 */
export function deviceLine(device: DeviceMemory): string {
  const backend = { cuda: 'CUDA', vulkan: 'Vulkan', metal: 'Metal', cpu: 'CPU' }[device.backend];
  const name = device.gpuName ? `${backend} (${device.gpuName})` : backend;
  const ram = `RAM ${formatBytes(device.ramFreeBytes)} free of ${formatBytes(device.ramTotalBytes)}`;
  if (device.vramTotalBytes === null) return `${name} · ${ram}`;
  const free = device.vramFreeBytes === null ? '' : `${formatBytes(device.vramFreeBytes)} free of `;
  const gpu = device.unifiedMemory
    ? `unified memory, Metal may use ${free}${formatBytes(device.vramTotalBytes)}`
    : `VRAM ${free}${formatBytes(device.vramTotalBytes)}`;
  return `${name} · ${gpu} · ${ram}`;
}

/** A longest-context cell: "—" without a GPU, and what 0 means. */
export function maxContextText(n: number | null): string {
  if (n === null) return '—';
  if (n === 0) return 'weights do not fit';
  return tokens(n);
}

/**
 * A row's longest context in one cell, as the compact plan shows it: "full GPU 32,768 ·
 * partial 65,536" with a GPU, "in RAM 131,072" without one, or why validation refuses the pair.
 */
export function longestText(row: KvPlanRow, device: DeviceMemory): string {
  if (row.refused) return `refused: ${row.refused}`;
  if (device.vramTotalBytes === null) return `in RAM ${maxContextText(row.maxContextPartial)}`;
  return `full GPU ${maxContextText(row.maxContextFullGpu)} · partial ${maxContextText(row.maxContextPartial)}`;
}

/** Whether a row fits, in words: "fits", "does not fit", or why validation refuses the pair. */
export function fitText(row: KvPlanRow): string {
  if (row.refused) return `refused: ${row.refused}`;
  return row.fits ? 'fits' : 'does not fit';
}

/** The rows' context: "4,096 tokens" or "4,096 tokens × 2 slots". */
export function planContextText(plan: Pick<KvPlan, 'contextSize' | 'slots'>): string {
  return plan.slots > 1 ? `${tokens(plan.contextSize)} tokens × ${plan.slots} slots` : `${tokens(plan.contextSize)} tokens`;
}

export function findRow(plan: KvPlan, pair: { kType: KvCacheType; vType: KvCacheType } | null): KvPlanRow | undefined {
  return pair ? plan.rows.find((r) => r.kType === pair.kType && r.vType === pair.vType) : undefined;
}

/**
 * The pair a profile stands for in this plan. `auto` on both sides is the planner's own pick;
 * `auto` on one side takes the best type (the contract's order, best first) that the plan says
 * fits beside the fixed one: an estimate, as the engine decides when it loads.
 */
export function chosenPair(plan: KvPlan, kType: KvCacheType | 'auto', vType: KvCacheType | 'auto'): { kType: KvCacheType; vType: KvCacheType } | null {
  if (kType !== 'auto' && vType !== 'auto') return { kType, vType };
  if (kType === 'auto' && vType === 'auto') return plan.auto;
  const usable = plan.rows.filter((r) => r.fits && !r.refused && (kType === 'auto' || r.kType === kType) && (vType === 'auto' || r.vType === vType));
  const rank = (t: KvCacheType) => kvTypes.indexOf(t);
  const best = usable.sort((a, b) => (kType === 'auto' ? rank(a.kType) - rank(b.kType) : rank(a.vType) - rank(b.vType)))[0];
  return best ? { kType: best.kType, vType: best.vType } : null;
}

/**
 * The planner's figure for the chosen pair, read before Apply:
 * "q8_0 / q8_0 at 4,096 tokens: KV 2.23 MB, total 5.10 MB. Fits."
 */
export function chosenLine(plan: KvPlan, row: KvPlanRow | undefined, auto: boolean): string {
  if (!row) return auto ? 'Auto finds no K/V pair that fits this context.' : 'The planner has no row for this pair.';
  const head = `${auto ? 'Auto picks ' : ''}${pairText(row.kType, row.vType)} at ${planContextText(plan)}: KV ${formatBytes(row.kvBytes)}, total ${formatBytes(row.totalBytes)}.`;
  if (row.refused) return `${head} Refused: ${row.refused}`;
  if (row.fits) return `${head} Fits.`;
  const longest = Math.max(row.maxContextFullGpu ?? 0, row.maxContextPartial);
  return `${head} Does not fit: the longest context that fits is ${tokens(longest)} tokens.`;
}

/** What the loaded context uses: "q8_0 / q8_0, flash attention on, 0 GPU layers", or null from an older host. */
export function loadedKvText(info: ModelInfo): string | null {
  if (!info.kvType) return null;
  const parts = [pairText(info.kvType.k, info.kvType.v)];
  if (info.flashAttention !== undefined) parts.push(`flash attention ${info.flashAttention ? 'on' : 'off'}`);
  if (info.gpuLayers !== undefined) parts.push(`${info.gpuLayers} GPU ${info.gpuLayers === 1 ? 'layer' : 'layers'}`);
  return parts.join(', ');
}

/**
 * The planner's estimate after a load beside what llama.cpp allocated: "planned 2.23 MB ·
 * measured 2.31 MB (+4%)". With no layer on a GPU (`gpuLayers` 0) both figures are llama.cpp's
 * own buffer sizes, so their agreement proves nothing and no percentage is shown
 * (docs/decisions/memory-estimate.md).
 */
export function memoryText(memory: NonNullable<ModelInfo['memory']>, gpuLayers?: number): string {
  const { plannedBytes, measuredBytes } = memory;
  const base = `planned ${formatBytes(plannedBytes)} · measured ${formatBytes(measuredBytes)}`;
  if (gpuLayers === 0) return `${base} (not a check without a GPU)`;
  if (!(plannedBytes > 0)) return base;
  const diff = Math.round(((measuredBytes - plannedBytes) / plannedBytes) * 100);
  return `${base} (${diff > 0 ? '+' : ''}${diff}%)`;
}

export const verdictText: Readonly<Record<KvQuality['verdict'], string>> = {
  'near-lossless': 'Near-lossless',
  small: 'Small loss',
  noticeable: 'Noticeable loss',
};

/** KL divergence with two significant digits, never in exponent form ("0.00019"). */
export function klText(kl: number): string {
  if (!Number.isFinite(kl)) return '?';
  if (kl === 0) return '0';
  const digits = Math.max(0, 1 - Math.floor(Math.log10(Math.abs(kl))));
  return Number(kl.toPrecision(2)).toFixed(Math.min(digits, 20));
}

/** 0..1 as a percentage with one decimal ("98.7%"); 1 stays "100%". */
export function agreementText(fraction: number): string {
  if (!Number.isFinite(fraction)) return '?';
  const pct = Math.min(100, Math.max(0, fraction * 100));
  return pct === 100 ? '100%' : `${pct.toFixed(1)}%`;
}
