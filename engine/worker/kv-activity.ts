/**
 * The disk KV cache's activity as the Cache view's event log shows it: one `KvActivity`
 * per save, budget eviction and forgotten chat, with a one-line text. Pure, so the wording is
 * unit-tested without llama.cpp.
 */
import type { EvictionReport, IntegrityReport } from '../kv/store.ts';
import type { KvActivity } from '../protocol.ts';
import type { ForgetReport, SaveReport } from './kv-cache.ts';
import { formatBytes, type KvVerifyReport } from '../contract/index.ts';

const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/** The chat a manifest belongs to: manifests are `<chatId>/<branchId>` (turn-kv.ts). */
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

/** What `kvVerify` answers without a store (persistence off, or the store could not open). */
export const uncheckedReport: KvVerifyReport = {
  checked: false,
  ok: true,
  chunksVerified: 0,
  missingChunks: 0,
  corruptChunks: 0,
  knownCorruptChunks: 0,
  orphanFiles: 0,
  tempFiles: 0,
  refcountMismatches: 0,
  danglingReferences: 0,
  inconsistentManifests: 0,
  corruptTails: 0,
  repaired: false,
  problems: [],
  ms: 0,
};

const maxProblemLines = 20;

/** The store's integrity report as the contract's counts, with its first findings as text. */
export function summarizeIntegrity(report: IntegrityReport, ms: number): KvVerifyReport {
  const problems = [
    ...report.missing.map((key) => `chunk ${key}: its file is missing`),
    ...report.corrupt.map((c) => `chunk ${c.key}: ${c.reason}`),
    ...report.knownCorrupt.map((c) => `chunk ${c.key}: found damaged at a restore (${c.reason})`),
    ...report.danglingReferences.map((d) => `manifest ${d.manifestId}: chunk ${d.index} (${d.key}) is not in the index`),
    ...report.inconsistentManifests.map((id) => `manifest ${id}: its row disagrees with its chunk list`),
    ...report.corruptTails.map((id) => `manifest ${id}: its tail is missing, the wrong size or fails its checksum`),
    ...report.refcountMismatches.map((r) => `chunk ${r.key}: refcount ${r.stored}, referenced ${r.actual} times`),
    ...report.orphanFiles.map((path) => `${path}: a chunk or tail file the index does not know`),
    ...report.tempFiles.map((path) => `${path}: a temp file of an interrupted write`),
  ];
  return {
    checked: true,
    ok: report.ok,
    chunksVerified: report.chunksVerified,
    missingChunks: report.missing.length,
    corruptChunks: report.corrupt.length,
    knownCorruptChunks: report.knownCorrupt.length,
    orphanFiles: report.orphanFiles.length,
    tempFiles: report.tempFiles.length,
    refcountMismatches: report.refcountMismatches.length,
    danglingReferences: report.danglingReferences.length,
    inconsistentManifests: report.inconsistentManifests.length,
    corruptTails: report.corruptTails.length,
    repaired: report.repaired,
    problems: problems.slice(0, maxProblemLines),
    ms: Math.round(ms),
  };
}
