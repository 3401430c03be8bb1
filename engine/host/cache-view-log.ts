/**
 * The Cache view's history: the recent turns for its timeline and the event log. Both
 * are bounded rings kept in the host, so a view that opens late still shows what happened, and
 * every entry is also pushed as it happens (`cache.turn`, `cache.event`).
 *
 * Where the events come from:
 * - turns, and the restores and fallbacks they report: each finished reply's stats;
 * - saves, evictions, forgotten caches: the engine's `kvActivity` events;
 * - settings changes, engine restarts and model loads: the host's own, worded by the
 *   `describe…` functions below.
 */
import { formatBytes, type CacheEvent, type CacheEventKind, type CacheTurn, type EngineStatus, type HearthEvent, type MessageStats, type ModelInfo, type ModelProfile, type Settings } from '../contract/index.ts';
import type { KvActivity } from '../protocol.ts';

/** The timeline's length: enough for a hit ratio over the last N turns and a useful chart. */
export const logTurnLimit = 100;
export const logEventLimit = 200;

/** The optional figures of an event. */
export interface CacheEventDetail {
  readonly chatId?: string | undefined;
  readonly tokens?: number | undefined;
  readonly bytes?: number | undefined;
  readonly ms?: number | undefined;
}

export interface CacheViewLogDeps {
  readonly emit: (event: HearthEvent) => void;
  readonly now?: () => number;
  readonly turnLimit?: number;
  readonly eventLimit?: number;
}

function pushBounded<T>(ring: T[], item: T, limit: number): void {
  ring.push(item);
  if (ring.length > limit) ring.splice(0, ring.length - limit);
}

export class CacheViewLog {
  readonly #deps: CacheViewLogDeps;
  readonly #now: () => number;
  readonly #turnLimit: number;
  readonly #eventLimit: number;
  /** Oldest first. */
  readonly #turns: CacheTurn[] = [];
  /** Oldest first (newest last). */
  readonly #events: CacheEvent[] = [];
  #nextEventId = 1;

  constructor(deps: CacheViewLogDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#turnLimit = deps.turnLimit ?? logTurnLimit;
    this.#eventLimit = deps.eventLimit ?? logEventLimit;
  }

  /** The recent turns, oldest first. */
  get turns(): readonly CacheTurn[] {
    return [...this.#turns];
  }

  /** The event log, oldest first. */
  get events(): readonly CacheEvent[] {
    return [...this.#events];
  }

  /**
   * Fills the timeline with turns from before this start (the database's, oldest first), so it
   * survives an app restart. Emits nothing: no view can be open before the host started.
   */
  seed(turns: readonly CacheTurn[]): void {
    for (const turn of turns) pushBounded(this.#turns, turn, this.#turnLimit);
  }

  /** A reply finished with stats: its timeline row, and events for a restore and a fallback. */
  recordTurn(chatId: string, messageId: string, stats: MessageStats, source: 'chat' | 'api' = 'chat'): CacheTurn {
    const turn: CacheTurn = { at: this.#now(), chatId, messageId, stats, ...(source === 'api' ? { source } : {}) };
    pushBounded(this.#turns, turn, this.#turnLimit);
    this.#deps.emit({ type: 'cache.turn', payload: turn });
    if (stats.tokensRestored > 0) {
      const ms = stats.restoreMs !== undefined ? Math.round(stats.restoreMs) : undefined;
      const text = `restored ${count(stats.tokensRestored)} tokens from disk${ms !== undefined ? ` in ${count(ms)} ms` : ''}`;
      this.record('restore', text, { chatId, tokens: stats.tokensRestored, ms });
    }
    if (stats.fallbackReason) this.record('fallback', stats.fallbackReason, { chatId, tokens: stats.tokensPrefilled });
    return turn;
  }

  /** Something the engine's disk KV cache did (a save, an eviction, a forgotten chat). */
  recordActivity(activity: KvActivity): CacheEvent {
    return this.record(activity.kind, activity.text, activity);
  }

  /** Adds one line to the event log and pushes it as `cache.event`. */
  record(kind: CacheEventKind, text: string, detail: CacheEventDetail = {}): CacheEvent {
    const event: CacheEvent = {
      id: this.#nextEventId++,
      at: this.#now(),
      kind,
      text,
      ...(detail.chatId !== undefined ? { chatId: detail.chatId } : {}),
      ...(detail.tokens !== undefined ? { tokens: detail.tokens } : {}),
      ...(detail.bytes !== undefined ? { bytes: detail.bytes } : {}),
      ...(detail.ms !== undefined ? { ms: detail.ms } : {}),
    };
    pushBounded(this.#events, event, this.#eventLimit);
    this.#deps.emit({ type: 'cache.event', payload: event });
    return event;
  }
}

/** 4096 → "4,096": the same digits the renderer shows. */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

const onOff = (on: boolean): string => (on ? 'on' : 'off');

/**
 * "Cache settings: budget 10 GB → 2 GB, chunk 256 → 128 tokens", or null when no disk KV
 * setting (persistence, budget, chunk size, slots, compression) changed.
 */
export function describeKvSettings(before: Settings, after: Settings): string | null {
  const changes: string[] = [];
  if (before.kvPersistence !== after.kvPersistence) changes.push(`persistence ${onOff(before.kvPersistence)} → ${onOff(after.kvPersistence)}`);
  if (before.kvBudgetBytes !== after.kvBudgetBytes) changes.push(`budget ${formatBytes(before.kvBudgetBytes, true)} → ${formatBytes(after.kvBudgetBytes, true)}`);
  if (before.kvChunkTokens !== after.kvChunkTokens) changes.push(`chunk ${count(before.kvChunkTokens)} → ${count(after.kvChunkTokens)} tokens`);
  if (before.kvSlots !== after.kvSlots) changes.push(`slots ${before.kvSlots} → ${after.kvSlots}`);
  if (before.kvCompression !== after.kvCompression) changes.push(`compression ${before.kvCompression} → ${after.kvCompression}`);
  return changes.length > 0 ? `Cache settings: ${changes.join(', ')}` : null;
}

const profileFields: readonly { readonly key: keyof ModelProfile; readonly label: string }[] = [
  { key: 'kType', label: 'K' },
  { key: 'vType', label: 'V' },
  { key: 'flashAttention', label: 'flash attention' },
  { key: 'contextSize', label: 'context' },
  { key: 'gpuLayers', label: 'GPU layers' },
  { key: 'slots', label: 'slots' },
  { key: 'overflowPolicy', label: 'overflow' },
];

function profileValue(key: keyof ModelProfile, value: ModelProfile[keyof ModelProfile]): string {
  if (key === 'contextSize' && value === 0) return 'auto';
  return typeof value === 'number' ? count(value) : String(value);
}

/** "Saved the profile of tiny.gguf: K f16 → q8_0, context 4,096 → 8,192" (or "unchanged"). */
export function describeProfileSaved(file: string, before: ModelProfile, after: ModelProfile): string {
  const changes = profileFields
    .filter(({ key }) => before[key] !== after[key])
    .map(({ key, label }) => `${label} ${profileValue(key, before[key])} → ${profileValue(key, after[key])}`);
  const name = file.split(/[/\\]/).pop() ?? file;
  return `Saved the profile of ${name}: ${changes.length > 0 ? changes.join(', ') : 'unchanged'}`;
}

/** "Loaded tiny: K/V f16 / q8_0, 4,096 tokens × 2 slots". */
export function describeModelLoaded(model: ModelInfo, slots: number): string {
  const types = model.kvType ? `K/V ${model.kvType.k} / ${model.kvType.v}, ` : '';
  return `Loaded ${model.name}: ${types}${count(model.contextSize)} tokens × ${slots} slot${slots === 1 ? '' : 's'}`;
}

/**
 * The log line for an engine status change, or null when it is not a restart: a crash (the
 * crash count rose, each failed restart too) with its reason, or the graceful restart that
 * applies changed Cache settings (Supervisor.restart: 'restarting' without a crash counted).
 */
export function describeRestart(before: EngineStatus, after: EngineStatus): string | null {
  if (after.restarts > before.restarts) return `Engine crashed (${after.lastCrash?.reason ?? 'unknown cause'}); restarting it`;
  if (after.state === 'restarting' && before.state !== 'restarting') return 'Engine restarting to apply the Cache settings';
  return null;
}
