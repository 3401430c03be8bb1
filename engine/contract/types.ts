/**
 * The data that crosses the contract. Everything here is readonly JSON: no classes, no
 * functions, no `undefined`-vs-missing tricks beyond optional fields.
 */
import type { HearthError } from './errors.ts';

/** Lifecycle of one resource (style.md §6). */
export type ResourceState = 'idle' | 'loading' | 'ready' | 'error';

/** What is known about a loaded (or loadable) model. */
export interface ModelInfo {
  readonly path: string;
  /** `general.name`, or the file name without extension. */
  readonly name: string;
  readonly sizeBytes: number;
  /** `general.architecture`, e.g. "llama". */
  readonly architecture: string;
  /** The context length the model was trained with. */
  readonly trainedContextLength: number;
  /** The context size actually allocated for each slot; 0 until loaded. */
  readonly contextSize: number;
  readonly layerCount: number;
}

/** The model's status: `{status, progress?, error?}` (issue 2). */
export interface ModelStatus {
  readonly status: ResourceState;
  /** 0..1 while loading. */
  readonly progress?: number;
  readonly error?: HearthError;
  /** The model being loaded or loaded. */
  readonly model?: ModelInfo;
}

/** The engine process, as the host supervising it sees it. */
export interface EngineStatus {
  readonly state: 'starting' | 'running' | 'restarting' | 'stopped';
  /**
   * How many times the engine process was restarted after dying. A deliberate restart (the host
   * applying changed disk KV settings) also passes through 'restarting' but does not count here.
   */
  readonly restarts: number;
  /** The last time the engine died unexpectedly, and how. */
  readonly lastCrash?: { readonly at: number; readonly reason: string };
}

export type Theme = 'system' | 'light' | 'dark';

export interface Sampling {
  /** 0 = greedy. */
  readonly temperature: number;
  readonly topP: number;
  readonly maxTokens: number;
}

export interface Settings {
  /** llama.cpp threads; 0 = the physical core count. Never llama.cpp's default (facts.md: 50× slower). */
  readonly threads: number;
  /** Context size per slot in tokens; 0 = automatic (the smaller of the trained length and 8192). */
  readonly contextSize: number;
  readonly theme: Theme;
  /** The system prompt new chats start with. */
  readonly defaultSystemPrompt: string;
  readonly defaultSampling: Sampling;
  /** The last model loaded, loaded again at start. */
  readonly lastModelPath: string | null;
  /**
   * Keep each chat's KV cache on disk and restore it (issue 3). Applied on save: the host restarts
   * the engine process gracefully (pending KV saves are flushed, the model reloads; not a crash).
   * While a reply streams, a model loads or a download runs, the restart waits until it ends.
   */
  readonly kvPersistence: boolean;
  /** Disk budget of the KV store in bytes. Applied on save, as `kvPersistence` is. */
  readonly kvBudgetBytes: number;
  /** Tokens per stored KV chunk; changing it makes stored KV a cache miss. Applied on save, as `kvPersistence` is. */
  readonly kvChunkTokens: number;
  /**
   * Resident sequences (slots): chats whose KV stays in memory at once. A chat that needs a slot
   * when all are taken swaps through the disk store. Applied at the next model load; on save the
   * host reloads the loaded model for it (once the engine is idle, as for `kvPersistence`).
   */
  readonly kvSlots: number;
}

export interface ChatSummary {
  readonly id: string;
  readonly title: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface Chat extends ChatSummary {
  readonly systemPrompt: string;
  readonly sampling: Sampling;
  /** The leaf of the branch the user is looking at; null for an empty chat. */
  readonly activeLeafId: string | null;
}

export type Role = 'user' | 'assistant';

/**
 * - `streaming`: being generated now.
 * - `complete`: finished normally (end of turn or max tokens).
 * - `stopped`: the user pressed Stop; the text so far is kept.
 * - `incomplete`: generation was cut off by a crash or kill; the text so far is kept.
 * - `error`: generation failed before any text; `error` says why.
 */
export type MessageStatus = 'streaming' | 'complete' | 'stopped' | 'incomplete' | 'error';

/** Where the prompt's KV came from for one reply (issue 3 fills in `disk`). */
export type CacheSource = 'memory' | 'disk' | 'none';

/** The per-reply readout. */
export interface MessageStats {
  /** Prompt tokens already in the slot's memory. */
  readonly tokensReused: number;
  /** Prompt tokens restored from the disk KV store. */
  readonly tokensRestored: number;
  /** Prompt tokens evaluated from scratch. */
  readonly tokensPrefilled: number;
  readonly tokensGenerated: number;
  readonly ttftMs: number;
  readonly prefillMs?: number;
  readonly restoreMs?: number;
  readonly cacheSource: CacheSource;
  /** Why the cache could not be used, when it could not. */
  readonly fallbackReason?: string;
}

export interface Message {
  readonly id: string;
  readonly chatId: string;
  /** null for the first message of a chat. Siblings (same parent) are branches. */
  readonly parentId: string | null;
  readonly role: Role;
  readonly content: string;
  readonly status: MessageStatus;
  readonly createdAt: number;
  readonly error?: HearthError;
  readonly stats?: MessageStats;
}

/** A chat and every message of every branch. The renderer derives the active path. */
export interface ChatDetail {
  readonly chat: Chat;
  readonly messages: readonly Message[];
}

export interface LocalModel {
  readonly path: string;
  readonly fileName: string;
  readonly sizeBytes: number;
  readonly modifiedAt: number;
}

export interface RecommendedModel {
  readonly id: string;
  readonly name: string;
  /** A node-llama-cpp model URI (`hf:owner/repo:quant`) or an https URL. */
  readonly uri: string;
  readonly approxSizeBytes: number;
  readonly description: string;
}

export interface DownloadProgress {
  readonly downloadId: string;
  readonly uri: string;
  readonly status: 'downloading' | 'done' | 'error' | 'cancelled';
  readonly downloadedBytes: number;
  readonly totalBytes: number;
  /** Set when done. */
  readonly path?: string;
  readonly error?: HearthError;
}

/**
 * Whether chats' KV caches are being saved to disk. `paused`: writes fail (a full disk, a
 * permission or I/O error, or a store that could not be opened); chats keep working and re-read
 * their history when reopened. `off`: disk KV persistence is turned off in Settings.
 */
export interface KvStatus {
  readonly persistence: 'on' | 'paused' | 'off';
  /** Why persistence is paused. */
  readonly reason?: HearthError;
}

/** The disk KV store at a glance, for Settings (the budget is shown beside the free disk). */
export interface KvStoreInfo {
  readonly persistence: KvStatus['persistence'];
  /** Chunk files and tails on disk. */
  readonly bytesOnDisk: number;
  readonly chunkCount: number;
  /** What the chats' manifests reference, a shared chunk counted once per chat. */
  readonly logicalBytes: number;
  readonly budgetBytes: number;
  /** Free space on the disk that holds the store; null when it cannot be read. */
  readonly freeDiskBytes: number | null;
  readonly chunkTokens: number;
}

export interface AppState {
  readonly version: string;
  readonly host: 'electron' | 'browser';
  readonly dataDir: string;
  readonly modelsDir: string;
  readonly engine: EngineStatus;
  readonly model: ModelStatus;
  readonly settings: Settings;
  /** Disk KV persistence; absent from hosts that predate it. */
  readonly kv?: KvStatus;
}
