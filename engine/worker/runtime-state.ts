/**
 * What the runtime's parts share, in one object instead of closure variables: llama-init.ts
 * sets the bindings and the KV cache, model-load.ts the loaded model, turn.ts and streaming.ts
 * run turns in it, cache-handlers.ts reads it for the Cache view. Each part takes the state as
 * an argument, so what it reads and writes is visible where it is called.
 */
import type { Llama, LlamaChat, LlamaContext, LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import type { Disposable } from '../base/disposable.ts';
import { Lock } from '../base/lock.ts';
import type { ModelInfo, Result } from '../contract/index.ts';
import type { KvStoreStats } from '../kv/store.ts';
import type { KvActivity, ResolvedProfile, WorkerEvent } from '../protocol.ts';
import { GrammarCache } from './api-options.ts';
import { cachedFor } from './kv-activity.ts';
import type { ViewCosts, ViewRenderer } from './context-view.ts';
import type { KvCache, KvProfile } from './kv-cache.ts';
import { LogRing, type LogLevel } from './logs.ts';
import type { KvGuard, StreamWindow } from './overflow.ts';
import type { SlotTable } from './slots.ts';

/**
 * How long `metrics` reuses the device's memory reading and the store's totals: the Cache view
 * asks 4 times a second, and neither needs to be fresher than that (a KV save, eviction or
 * forget reads the store again at once).
 */
export const METRICS_CACHE_MS = 1000;

/** Chats whose cache was forgotten with `reread`, remembered until their next turn (oldest dropped first). */
const FORGOTTEN_MEMORY = 256;

export const levelRank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** What lives in a slot: its sequence and the LlamaChat that drives it. */
export interface Resident {
  readonly sequence: LlamaContextSequence;
  readonly chat: LlamaChat;
}

/** A loaded model and its context (model-load.ts). */
export interface Loaded {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly slots: SlotTable<Resident>;
  readonly info: ModelInfo;
  /** The profile the context was created with (defaults when the host sent none). */
  readonly profile: ResolvedProfile;
  /** Every erase and shift on this context's sequences goes through it (overflow.ts). */
  readonly guard: KvGuard;
  /** `streaming`: the window each rolled sequence holds (streaming.ts). */
  readonly streams: Map<LlamaContextSequence, StreamWindow>;
  /** Renders prompts with the model's chat template (every slot's LlamaChat resolved the same one). */
  readonly view: ViewRenderer;
  /** `drop-oldest`: message token costs for the view's replay (context-view.ts). */
  readonly viewCosts: ViewCosts;
  /** The KV store's profile of this model+context; null when persistence is off. */
  readonly kvProfile: Promise<KvProfile> | null;
  /** K + V bytes of one cell (every layer) for the context's types, from the model's metadata. */
  readonly kvBytesPerCell: number;
  /** The weights' buffers as llama.cpp allocated them at load. */
  readonly weights: { readonly ramBytes: number; readonly vramBytes: number };
}

/**
 * Chats forgotten with `reread` ("Forget cache"): their next turn starts from an empty sequence
 * without a restore, so its readout shows a full re-read.
 */
export class ForgottenChats {
  readonly #chats = new Set<string>();

  remember(chatId: string): void {
    this.#chats.delete(chatId);
    this.#chats.add(chatId);
    if (this.#chats.size > FORGOTTEN_MEMORY) this.#chats.delete(this.#chats.values().next().value!);
  }

  drop(chatId: string): void {
    this.#chats.delete(chatId);
  }

  /** Whether the chat was forgotten; it is not any more. */
  take(chatId: string): boolean {
    return this.#chats.delete(chatId);
  }
}

export class RuntimeState {
  readonly emit: (event: WorkerEvent) => void;
  /** Orders model changes, generations and KV saves (FIFO); see runtime.ts. */
  readonly lock = new Lock('engine');
  /** llama.cpp's recent warnings and errors, which explain a failed load (logs.ts). */
  readonly logRing = new LogRing(50);
  llama: Llama | null = null;
  /** The llama.cpp build, as `init` describes it. */
  build = '';
  /** This computer and the backend llama.cpp runs on, in words (speed.ts describeDevice). */
  device = '';
  logLevel: LogLevel = 'warn';
  loaded: Loaded | null = null;
  kvCache: KvCache | null = null;
  /** Why disk KV is off for this process (the store could not be opened), shown in the readout. */
  kvOffReason: string | null = null;
  /** Forwards the store's persistence changes as `kvPersistence` events. */
  kvWatch: Disposable | null = null;
  /** Generations queued or running, by request id. */
  readonly generations = new Map<string, AbortController>();
  runningRequestId: string | null = null;
  readonly forgotten = new ForgottenChats();
  /** Output formats' grammars, per schema (api-options.ts); they belong to `llama`, which lives as long as the process. */
  readonly grammars = new GrammarCache();
  /** The store's totals for `metrics`, read at most once a second. */
  readonly storeStats = cachedFor<Result<KvStoreStats> | null>(METRICS_CACHE_MS, async () => (this.kvCache ? this.kvCache.stats() : null));

  constructor(emit: (event: WorkerEvent) => void) {
    this.emit = emit;
  }

  /** Forwards a log line at or above the host's level (bound: it is passed around as a function). */
  readonly log = (level: LogLevel, message: string): void => {
    if (levelRank[level] <= levelRank[this.logLevel]) this.emit({ type: 'log', level, message });
  };

  /** A KV save, eviction or forget: the store's totals changed. */
  kvActivity(activity: KvActivity): void {
    this.storeStats.invalidate();
    this.emit({ type: 'kvActivity', activity });
  }

  /** A model change first aborts the running generation, so it never waits for a long reply. */
  abortRunning(): void {
    if (this.runningRequestId !== null) this.generations.get(this.runningRequestId)?.abort(new Error('aborted'));
  }
}
