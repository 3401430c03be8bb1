import { formatBytes, type DownloadItem, type MessageStats, type ReplyEngine, type ServerCacheStats } from '../contract.ts';

export { formatBytes };

/** Bytes in a gigabyte as the cache settings count them (see `formatBinaryBytes`). */
export const GB = 1024 ** 3;

/**
 * `formatBytes` in steps of 1024: the disk budget is typed in GB of 1024³ bytes (so the default
 * 10 × 1024³ shows as "10"), and the figures beside it must use the same unit.
 */
export function formatBinaryBytes(bytes: number): string {
  return formatBytes(bytes, true);
}

/** 0..1 → "42%"; clamped, never NaN. */
export function formatPercent(fraction: number): string {
  const clamped = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  return `${Math.floor(clamped * 100)}%`;
}

/** 0..1, or null when the total is unknown. */
export function downloadFraction(progress: Pick<DownloadItem, 'downloadedBytes' | 'totalBytes'>): number | null {
  if (!(progress.totalBytes > 0)) return null;
  return Math.min(1, Math.max(0, progress.downloadedBytes / progress.totalBytes));
}

/** "12,345": counts of tokens and chunks, the same in every locale (tests and screenshots read them). */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

const count = formatCount;

/**
 * What a reply that moved the model's view did: "dropped 12 older messages · re-read 1,840
 * tokens" (the kept messages are read again from their new place); null when it moved nothing.
 */
export function droppedText(stats: MessageStats): string | null {
  const dropped = stats.view?.droppedNow ?? 0;
  if (dropped <= 0) return null;
  return `dropped ${count(dropped)} older ${dropped === 1 ? 'message' : 'messages'} · re-read ${count(stats.tokensPrefilled)} tokens`;
}

/** Where a reply was written, as its readout names it: "GPU box · Llama-3-70B", "This computer · tiny-model". */
export function replyEngineText(engine: ReplyEngine): string {
  return `${engine.name} · ${engine.model}`;
}

/** A remote reply's engine, not this computer's (older replies name none: they were local). */
export function isRemoteReply(stats: MessageStats): stats is MessageStats & { readonly engine: ReplyEngine } {
  return stats.engine !== undefined && stats.engine.kind !== 'local';
}

/** What the server's prefix cache did for a prompt: "Server cache: 1,536 of 1,600 prompt tokens". */
export function serverCacheText(server: ServerCacheStats): string {
  if (server.cachedTokens === null) return 'Server cache: the server did not report cached tokens';
  return `Server cache: ${count(server.cachedTokens)} of ${count(server.promptTokens)} prompt tokens`;
}

/** The first reply after a move: "Moved from This computer · tiny-model: the history was read again here (1,840 tokens)". */
export function movedText(stats: MessageStats): string | null {
  if (stats.movedFrom === undefined) return null;
  return `Moved from ${stats.movedFrom}: the history was read again here (${count(stats.tokensPrefilled)} tokens)`;
}

/**
 * The small readout under a reply, e.g. "reused 120 · prefilled 14 tokens · first token 35 ms",
 * or after a disk restore "restored 3,840 tokens from disk in 41 ms · prefilled 12 · …", or when
 * the reply moved the model's view "dropped 12 older messages · re-read 1,840 tokens · …", then
 * why the cache could not be used, when it could not. A remote engine's reply names the engine and
 * model, and what its server's cache did: this computer's slots and disk store took no part.
 */
export function formatStats(stats: MessageStats): string {
  const parts: string[] = [];
  const dropped = droppedText(stats);
  if (isRemoteReply(stats)) {
    parts.push(replyEngineText(stats.engine));
    if (dropped !== null) parts.push(dropped);
    if (stats.server) parts.push(serverCacheText(stats.server));
  } else if (dropped !== null) {
    parts.push(dropped);
    if (stats.tokensRestored > 0) parts.push(`restored ${count(stats.tokensRestored)} from disk`);
  } else if (stats.tokensRestored > 0) {
    const took = stats.restoreMs !== undefined ? ` in ${count(Math.round(stats.restoreMs))} ms` : '';
    parts.push(`restored ${count(stats.tokensRestored)} tokens from disk${took}`, `prefilled ${count(stats.tokensPrefilled)}`);
  } else {
    parts.push(`reused ${count(stats.tokensReused)}`, `prefilled ${count(stats.tokensPrefilled)} tokens`);
  }
  parts.push(`first token ${count(Math.round(stats.ttftMs))} ms`);
  if (stats.tokensGenerated > 0) parts.push(`${count(stats.tokensGenerated)} generated`);
  if (stats.fallbackReason) parts.push(stats.fallbackReason);
  return parts.join(' · ');
}

export function formatTime(epochMs: number, now = Date.now()): string {
  const date = new Date(epochMs);
  const sameDay = new Date(now).toDateString() === date.toDateString();
  return sameDay
    ? date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}
