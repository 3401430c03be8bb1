/**
 * The disk KV cache's activity as the Cache view's event log shows it (issue 5): one `KvActivity`
 * per save, budget eviction and forgotten chat, with a one-line text. Pure, so the wording is
 * unit-tested without llama.cpp.
 */
import type { EvictionReport } from '../kv/store.ts';
import type { KvActivity } from '../protocol.ts';
import type { ForgetReport, SaveReport } from './kv-cache.ts';
import { formatBytes } from '../contract/index.ts';

const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/** The chat a manifest belongs to: manifests are `<chatId>/<branchId>` (runtime.ts). */
export function manifestChat(manifestId: string): string {
  const slash = manifestId.indexOf('/');
  return slash < 0 ? manifestId : manifestId.slice(0, slash);
}

/** "saved 512 tokens (2 new chunks, 1.15 MB written) in 14 ms". */
export function saveActivity(chatId: string, report: Pick<SaveReport, 'tokens' | 'chunksWritten' | 'bytesWritten' | 'ms'>): KvActivity {
  const ms = Math.round(report.ms);
  return {
    kind: 'save',
    chatId,
    text: `saved ${plural(report.tokens, 'token')} (${plural(report.chunksWritten, 'new chunk')}, ${formatBytes(report.bytesWritten)} written) in ${ms} ms`,
    tokens: report.tokens,
    bytes: report.bytesWritten,
    ms,
  };
}

/**
 * "evicted 3 chunks (1.20 MB) to stay within the 10 GB budget: 1 chat cut short, 1 removed".
 * `chatId` is set when every manifest it touched is one chat's.
 */
export function evictActivity(report: Pick<EvictionReport, 'chunksRemoved' | 'bytesFreed' | 'truncated' | 'deleted' | 'budget'>): KvActivity {
  const cut = new Set(report.truncated.map(manifestChat));
  const removed = new Set(report.deleted.map(manifestChat));
  // A chat with one branch cut and another removed counts as cut: some of it is still stored.
  for (const chat of cut) removed.delete(chat);
  const chats = new Set([...cut, ...removed]);
  const parts = [...(cut.size > 0 ? [`${plural(cut.size, 'chat')} cut short`] : []), ...(removed.size > 0 ? [`${plural(removed.size, 'chat')} removed`] : [])];
  const only = chats.size === 1 ? [...chats][0]! : null;
  return {
    kind: 'evict',
    ...(only !== null ? { chatId: only } : {}),
    text: `evicted ${plural(report.chunksRemoved, 'chunk')} (${formatBytes(report.bytesFreed)}) to stay within the ${formatBytes(report.budget, true)} budget${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`,
    bytes: report.bytesFreed,
  };
}

/** "forgot its cache: 2 branches, 1.20 MB freed". */
export function forgetActivity(chatId: string, report: ForgetReport): KvActivity {
  return {
    kind: 'forget',
    chatId,
    text: `forgot its cache: ${plural(report.manifests, 'branch', 'branches')}, ${formatBytes(report.bytesFreed)} freed`,
    bytes: report.bytesFreed,
  };
}

/**
 * A value read at most once per `ms` (performance.now()): the Cache view samples metrics at 4 Hz,
 * and the device's free memory or the store's totals need not be read that often. Concurrent
 * callers share one read; a rejected read is not kept.
 */
export function cachedFor<T>(ms: number, read: () => Promise<T>, now: () => number = () => performance.now()): { get(): Promise<T>; invalidate(): void } {
  let cached: { at: number; value: Promise<T> } | null = null;
  return {
    get(): Promise<T> {
      const t = now();
      if (cached === null || t - cached.at >= ms) {
        const entry = { at: t, value: read() };
        cached = entry;
        entry.value.catch(() => {
          if (cached === entry) cached = null;
        });
      }
      return cached.value;
    },
    invalidate(): void {
      cached = null;
    },
  };
}
