/**
 * Words, figures and chart series for the Cache view and the chat's cache readouts.
 * Pure, so the components, the charts and their tests share one way of saying each thing.
 */
import {
  remoteEngineKindNames,
  type CacheMemory,
  type CacheSnapshot,
  type CacheSource,
  type CacheStoreStats,
  type CacheTurn,
  type ChatCache,
  type KvCodecInfo,
  type KvCompressionChoice,
  type KvCompressionSetting,
  type KvStateTransfer,
  type MessageStats,
  type SlotState,
} from '../contract.ts';
import { formatBytes, formatCount as count, isRemoteReply } from './format.ts';
import { overflowPolicyText } from './kv.ts';
import type { Ring } from './ring.ts';

/** The issue asks for the hit ratio "over the last N turns": 20 is a few minutes of chatting. */
export const hitRatioTurns = 20;

/**
 * Prompt tokens served from a cache (in a slot, or restored from disk) over all prompt tokens,
 * for the newest `last` turns (`turns` oldest first). `ratio` is null when they had no prompt.
 */
export function hitRatio(turns: readonly CacheTurn[], last = hitRatioTurns): { readonly turns: number; readonly ratio: number | null } {
  const recent = turns.slice(Math.max(0, turns.length - last));
  let hit = 0;
  let all = 0;
  for (const { stats } of recent) {
    hit += stats.tokensReused + stats.tokensRestored;
    all += stats.tokensReused + stats.tokensRestored + stats.tokensPrefilled;
  }
  return { turns: recent.length, ratio: all > 0 ? hit / all : null };
}

/** "Hit ratio (last 3 turns): 67%". */
export function hitRatioText(turns: readonly CacheTurn[], last = hitRatioTurns): string {
  const { turns: n, ratio } = hitRatio(turns, last);
  if (n === 0) return 'Hit ratio: no turns yet.';
  const head = `Hit ratio (last ${n} ${n === 1 ? 'turn' : 'turns'})`;
  return ratio === null ? `${head}: no prompt tokens` : `${head}: ${Math.round(ratio * 100)}%`;
}

export type MemoryPartKey = 'weights' | 'kvUsed' | 'kvUnused' | 'compute' | 'other' | 'free';

export interface MemoryPart {
  readonly key: MemoryPartKey;
  readonly label: string;
  readonly bytes: number;
}

/**
 * The device memory bar's parts, in drawing order. "Other processes" is implied (capacity −
 * free − ours) and left out when free is unknown or the figures do not add up (ours then counts
 * memory the OS has not handed out yet, e.g. mmapped weights on RAM).
 */
export function memoryParts(m: CacheMemory): MemoryPart[] {
  const kvUsed = Math.min(m.kvUsedBytes, m.kvAllocatedBytes);
  const parts: MemoryPart[] = [
    { key: 'weights', label: 'Weights', bytes: m.weightsBytes },
    { key: 'kvUsed', label: 'KV in use', bytes: kvUsed },
    { key: 'kvUnused', label: 'KV allocated (unused)', bytes: Math.max(0, m.kvAllocatedBytes - kvUsed) },
    { key: 'compute', label: 'Compute', bytes: m.computeBytes },
  ];
  if (m.freeBytes !== null) {
    const ours = m.weightsBytes + m.kvAllocatedBytes + m.computeBytes;
    const other = m.capacityBytes - m.freeBytes - ours;
    if (other >= 0) parts.push({ key: 'other', label: 'Other processes', bytes: other });
    parts.push({ key: 'free', label: 'Free', bytes: m.freeBytes });
  }
  return parts;
}

/** "RAM", "VRAM", "Unified memory". */
export function memoryKindText(kind: CacheMemory['kind']): string {
  return kind === 'vram' ? 'VRAM' : kind === 'unified' ? 'Unified memory' : 'RAM';
}

/** The line under the heading: "VRAM · RTX 4070 · 8.59 GB", "Unified memory · Apple M2 · 17.2 GB · Metal limit 11.5 GB". */
export function memoryDeviceText(m: CacheMemory): string {
  const parts = [memoryKindText(m.kind)];
  if (m.deviceName && m.deviceName !== 'RAM') parts.push(m.deviceName);
  parts.push(formatBytes(m.capacityBytes));
  if (m.kind === 'unified' && m.workingSetLimitBytes !== undefined) parts.push(`Metal limit ${formatBytes(m.workingSetLimitBytes)}`);
  return parts.join(' · ');
}

/** The bar's accessible name: every part with its bytes, then the capacity. */
export function memoryLabel(m: CacheMemory): string {
  const parts = memoryParts(m).map((p) => `${p.label} ${formatBytes(p.bytes)}`);
  return `${parts.join(', ')}, of ${formatBytes(m.capacityBytes)} ${memoryKindText(m.kind)}`;
}

/**
 * Each part's place on the bar (0–1: where it starts, and its share). The bar's whole is the
 * capacity, or the parts' sum when that is larger (free unknown, or allocations the OS has not
 * committed), so it never overflows.
 */
export function memoryShares(m: CacheMemory): { readonly key: MemoryPartKey; readonly start: number; readonly share: number }[] {
  const parts = memoryParts(m);
  const whole = Math.max(m.capacityBytes, parts.reduce((sum, p) => sum + p.bytes, 0));
  let start = 0;
  return parts.map((p) => {
    const share = whole > 0 ? p.bytes / whole : 0;
    const placed = { key: p.key, start, share };
    start += share;
    return placed;
  });
}

/** A slot's meter text: "123 / 4,096". */
export function cellsText(used: number, capacity: number): string {
  return `${count(used)} / ${count(capacity)}`;
}

export const slotStateText: Readonly<Record<SlotState, string>> = {
  idle: 'idle',
  generating: 'generating',
  saving: 'saving',
  restoring: 'restoring',
};

/** "1.00×". */
export function ratioText(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '—';
}

/**
 * The contract's `kvCompressionSettings`, in the order the Settings list offers them. Repeated
 * here because the renderer takes only types from the contract; the check below fails to
 * compile if the two drift apart.
 */
export const kvCompressionList = ['auto', 'off', 'lossless', 'lossy'] as const satisfies readonly KvCompressionSetting[];
const compressionsComplete: [Exclude<KvCompressionSetting, (typeof kvCompressionList)[number]>] extends [never] ? true : never = true;
void compressionsComplete;

/** The Settings list's option names. */
export const compressionLabels: Readonly<Record<KvCompressionSetting, string>> = {
  auto: 'Auto (recommended)',
  off: 'Off',
  lossless: 'Lossless',
  lossy: 'Lossy (F16 K/V only)',
};

/**
 * The compression ratio and the encoding new chunks get: "1.25× (lossless)", "0.98× (compression
 * off)"; just the ratio while the encoding is not known yet (`auto` before an engine chose).
 */
export function compressionText(store: Pick<CacheStoreStats, 'compressionRatio' | 'compression'>): string {
  if (store.compression === null) return ratioText(store.compressionRatio);
  const mode = store.compression === 'off' ? 'compression off' : store.compression;
  return `${ratioText(store.compressionRatio)} (${mode})`;
}

/**
 * What the running engine writes new chunks with, beside the Compression list: "In use: Off
 * (auto: decoding 0.70 GB/s is slower than reading 9.8 GB/s)", "In use: Lossless"; null until
 * an engine has said.
 */
export function compressionChoiceText(choice: KvCompressionChoice | null): string | null {
  if (choice === null) return null;
  const applied = `In use: ${compressionLabels[choice.applied]}`;
  if (choice.setting !== 'auto') return applied;
  const reason = choice.reason?.trim().replace(/\.+$/, '');
  return reason ? `${applied} (auto: ${reason})` : `${applied} (auto)`;
}

/** "State transfer: memory", "State transfer: file (why)"; null without a loaded model. */
export function stateTransferText(transfer: KvStateTransfer | null): string | null {
  if (transfer === null) return null;
  if (transfer.mode === 'memory') return 'State transfer: memory';
  const reason = transfer.reason?.trim().replace(/\.+$/, '');
  return reason ? `State transfer: file (${reason})` : 'State transfer: file';
}

/** "Codec: native", "Codec: TypeScript fallback (why)"; null until the engine has named its codec. */
export function codecText(codec: KvCodecInfo | null): string | null {
  if (codec === null) return null;
  if (codec.kernels === 'native') return 'Codec: native';
  const reason = codec.reason?.trim().replace(/\.+$/, '');
  return reason ? `Codec: TypeScript fallback (${reason})` : 'Codec: TypeScript fallback';
}

export const sourceText: Readonly<Record<CacheSource, string>> = { memory: 'memory', disk: 'disk', none: 'none' };

/** The chat header's badge: "412 tokens cached · memory · 1.20 MB on disk", or "No cache". */
export function chatCacheText(cache: ChatCache | undefined): string {
  if (!cache) return 'Cache: checking…';
  const tokens = Math.max(cache.tokensInMemory, cache.tokensOnDisk);
  if (cache.where === 'none' || tokens === 0) return 'No cache';
  const disk = cache.bytesOnDisk > 0 ? `${formatBytes(cache.bytesOnDisk)} on disk` : 'not on disk';
  return `${count(tokens)} ${tokens === 1 ? 'token' : 'tokens'} cached · ${sourceText[cache.where]} · ${disk}`;
}

/** Milliseconds for a table cell: "35", or "—" when not measured. */
export function msText(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '—' : count(Math.round(ms));
}

/** How a reply ended, for its readout's Ended row and (past "Stopped") the line beside Continue. */
export const stopReasonRowText: Readonly<Record<NonNullable<MessageStats['stopReason']>, string>> = {
  eos: 'the model ended its turn',
  maxTokens: "at the reply's max tokens",
  context: 'at the end of the context',
};

/** Every figure of a reply's readout, for its expanded view. */
export function statsRows(stats: MessageStats): [label: string, value: string][] {
  const ms = (value: number | undefined) => (value === undefined ? '—' : `${msText(value)} ms`);
  const rows: [string, string][] = [];
  const engine = stats.engine;
  if (engine) {
    rows.push(['Engine', engine.kind === 'local' ? engine.name : `${engine.name} (${remoteEngineKindNames[engine.kind]})`], ['Model', engine.model]);
  }
  if (stats.movedFrom !== undefined) rows.push(['Moved from', stats.movedFrom]);
  // A remote reply's prompt met the server's cache, not this computer's slots and disk store.
  if (isRemoteReply(stats)) {
    if (stats.server) {
      rows.push(['Prompt (server count)', `${count(stats.server.promptTokens)} tokens`]);
      rows.push(['Server cache', stats.server.cachedTokens === null ? 'not reported' : `${count(stats.server.cachedTokens)} tokens`]);
    }
    rows.push(
      ['Prefilled', `${count(stats.tokensPrefilled)} tokens`],
      ['Generated', `${count(stats.tokensGenerated)} tokens`],
      ['Time to first token', ms(stats.ttftMs)],
      ['Prefill', ms(stats.prefillMs)],
    );
  } else {
    rows.push(
      ['Reused', `${count(stats.tokensReused)} tokens`],
      ['Restored', `${count(stats.tokensRestored)} tokens`],
      ['Prefilled', `${count(stats.tokensPrefilled)} tokens`],
      ['Generated', `${count(stats.tokensGenerated)} tokens`],
      ['Time to first token', ms(stats.ttftMs)],
      ['Prefill', ms(stats.prefillMs)],
      ['Restore', ms(stats.restoreMs)],
      ['Cache source', sourceText[stats.cacheSource]],
    );
  }
  if (stats.fallbackReason) rows.push(['Fallback reason', stats.fallbackReason]);
  if (stats.stopReason) rows.push(['Ended', stopReasonRowText[stats.stopReason]]);
  const view = stats.view;
  if (view) {
    rows.push(['In view', `${count(view.tokens)} / ${count(view.contextSize)} tokens`]);
    rows.push(['Outside the view', `${count(view.droppedMessages)} ${view.droppedMessages === 1 ? 'message' : 'messages'}`]);
    if (view.droppedNow > 0) rows.push(['Dropped by this reply', `${count(view.droppedNow)} ${view.droppedNow === 1 ? 'message' : 'messages'}`]);
    rows.push(['Overflow policy', overflowPolicyText[view.policy].label]);
  }
  return rows;
}

/** A log or table time with seconds: ticks and turns come seconds apart. */
export function clockText(epochMs: number): string {
  return new Date(epochMs).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/**
 * The memory chart's columns from the ring (uPlot's aligned data): time in seconds, then KV in
 * use, KV allocated and weights in bytes; null where a tick had no model (a gap in the line).
 */
export function memorySeries(ring: Pick<Ring<CacheSnapshot>, 'forEach' | 'size'>): [number[], (number | null)[], (number | null)[], (number | null)[]] {
  const xs = new Array<number>(ring.size);
  const used = new Array<number | null>(ring.size);
  const allocated = new Array<number | null>(ring.size);
  const weights = new Array<number | null>(ring.size);
  ring.forEach((snapshot, i) => {
    xs[i] = snapshot.at / 1000;
    used[i] = snapshot.memory?.kvUsedBytes ?? null;
    allocated[i] = snapshot.memory?.kvAllocatedBytes ?? null;
    weights[i] = snapshot.memory?.weightsBytes ?? null;
  });
  return [xs, used, allocated, weights];
}

/**
 * The turns chart's columns (turns oldest first): turn number, then the stacked tops (all
 * prompt tokens, reused + restored, reused: drawn in that order, each bar over the last, they
 * read as one stacked bar), then TTFT in ms.
 */
export function turnSeries(turns: readonly CacheTurn[]): [number[], number[], number[], number[], number[]] {
  const xs: number[] = [];
  const total: number[] = [];
  const cached: number[] = [];
  const reused: number[] = [];
  const ttft: number[] = [];
  turns.forEach(({ stats }, i) => {
    xs.push(i + 1);
    reused.push(stats.tokensReused);
    cached.push(stats.tokensReused + stats.tokensRestored);
    total.push(stats.tokensReused + stats.tokensRestored + stats.tokensPrefilled);
    ttft.push(Math.round(stats.ttftMs));
  });
  return [xs, total, cached, reused, ttft];
}
