/**
 * The data that crosses the contract: models, settings, chats and messages, downloads and the
 * app's state (the KV cache's data is in kv-types.ts). Everything here is readonly JSON: no
 * classes, no functions, no `undefined`-vs-missing tricks beyond optional fields. Times are
 * epoch milliseconds unless a name says otherwise.
 */
import type { CacheMiss } from './server-types.ts';
import type { HearthError } from './errors.ts';
import type { CacheSource, KvCacheType, KvCompressionSetting, KvStatus } from './kv-types.ts';
import type { ChatEngineRef, ReplyEngine, ServerCacheStats } from './remote-types.ts';
import type { SpeedProfile, SpeedProgress } from './speed-types.ts';

/** Lifecycle of one resource: one shape for everything that loads, so every view shows it alike. */
export type ResourceState = 'idle' | 'loading' | 'ready' | 'error';

/** What is known about a loaded (or loadable) model. */
export interface ModelInfo {
  /** The GGUF file's absolute path. */
  readonly path: string;
  /** `general.name`, or the file name without extension. */
  readonly name: string;
  /** The file's size in bytes. */
  readonly sizeBytes: number;
  /** `general.architecture`, e.g. "llama". */
  readonly architecture: string;
  /** The context length the model was trained with, in tokens; 0 when the header does not say. */
  readonly trainedContextLength: number;
  /** The context size actually allocated for each slot, in tokens; 0 until loaded. */
  readonly contextSize: number;
  /** Transformer blocks (`<arch>.block_count`); 0 when the header does not say. */
  readonly layerCount: number;
  /** The K and V cache types the context was created with; absent from older hosts. */
  readonly kvType?: { readonly k: KvCacheType; readonly v: KvCacheType };
  /** Whether the context runs flash attention (the profile's `auto` resolved); absent until loaded. */
  readonly flashAttention?: boolean;
  /** Layers offloaded to the GPU (0 on CPU). */
  readonly gpuLayers?: number;
  /** The llama.cpp threads and prompt batch size the context runs with (measured, or the defaults); absent until loaded. */
  readonly threads?: number;
  readonly batchSize?: number;
  /** The planner's estimate of the context's memory beside what llama.cpp really allocated, in bytes. */
  readonly memory?: { readonly plannedBytes: number; readonly measuredBytes: number };
}

/**
 * What a chat does when the conversation plus room for the reply no longer fits its context.
 * The whole history always stays in the chat, in search and in exports; this is only about
 * what the model sees.
 * - `drop-oldest` (the default): the model's view keeps the system prompt and drops the oldest
 *   messages in one large step (down to about half the context), so that the turns after it
 *   extend one stable prefix and reuse its KV, from memory or from the disk store. Nothing is
 *   shifted in place: safe with every K type.
 * - `streaming`: StreamingLLM, keep 4 sink tokens plus a recent window by erasing the middle of
 *   the KV: F16 K only (docs/decisions/quantized-k-shift-crash.md).
 * - `stop`: the turn stops with CONTEXT_OVERFLOW and the chat offers what to do (drop the
 *   oldest messages for this chat, raise the context, start a new chat).
 */
export type OverflowPolicy = 'drop-oldest' | 'streaming' | 'stop';

/** Per-model settings, stored with the model's profile. `auto` lets the planner choose. */
export interface ModelProfile {
  /** The K cache's element type; `auto`: the best quality that fits. */
  readonly kType: KvCacheType | 'auto';
  /** The V cache's element type; a quantized V needs flash attention. */
  readonly vType: KvCacheType | 'auto';
  /** `auto` turns it on where the architecture supports it (docs/decisions/flash-attention-auto.md). */
  readonly flashAttention: 'auto' | 'on' | 'off';
  /** Tokens per slot; 0 = automatic (the smaller of the trained length and 8192). */
  readonly contextSize: number;
  /** Layers offloaded to the GPU; `auto` = as many as fit. */
  readonly gpuLayers: number | 'auto';
  /** Resident sequences, 1..8 (see Settings.kvSlots, the default for models without a profile). */
  readonly slots: number;
  /** What a chat does when it outgrows the context. */
  readonly overflowPolicy: OverflowPolicy;
}

/** A validation message about a profile, shown beside its field. Errors refuse the profile. */
export interface ProfileIssue {
  /** The field it is about; `model` when it is about the file or the machine as a whole. */
  readonly field: keyof ModelProfile | 'model';
  /** `error` refuses the profile; `warning` only informs. */
  readonly severity: 'error' | 'warning';
  /** A sentence for the user. */
  readonly message: string;
}

/** A model's profile as stored, with what validation says of it on this machine. */
export interface ModelProfileView {
  /** The profile's key: the model file's absolute path (`~` expanded). */
  readonly path: string;
  /** The stored fields, the defaults for the rest. */
  readonly profile: ModelProfile;
  /** Empty when the profile is valid here. */
  readonly issues: readonly ProfileIssue[];
  /** The speed measured on this computer for the profile's K/V pair and the engine in use; null before the first. */
  readonly speed?: SpeedProfile | null;
}

/** The model's status: `{status, progress?, error?}`. */
export interface ModelStatus {
  /** `idle`: no model; `loading`; `ready`: one is loaded; `error`: the last load failed. */
  readonly status: ResourceState;
  /** 0..1 while loading. */
  readonly progress?: number;
  /** Why the last load failed (status `error`). */
  readonly error?: HearthError;
  /** The model being loaded or loaded. */
  readonly model?: ModelInfo;
  /** While loading: the speed measurement under way (the model's first load on this computer, or a re-run). */
  readonly measuring?: SpeedProgress;
}

/** The engine process, as the host supervising it sees it. */
export interface EngineStatus {
  /** `starting`: the first process is starting; `restarting`: after a death or to apply settings; `stopped`: Hearth is closing. */
  readonly state: 'starting' | 'running' | 'restarting' | 'stopped';
  /**
   * How many times the engine process was restarted after dying. A deliberate restart (the host
   * applying changed disk KV settings) also passes through 'restarting' but does not count here.
   */
  readonly restarts: number;
  /** The last time (epoch ms) the engine died unexpectedly, and how (e.g. "signal SIGSEGV"). */
  readonly lastCrash?: { readonly at: number; readonly reason: string };
  /**
   * Set while the engine keeps dying soon after each start (a crash loop), in the 'restarting'
   * state only: the host waits longer before each new try instead of spinning.
   */
  readonly crashLoop?: {
    /** Crashes in a row, none after the engine had run stably. */
    readonly crashes: number;
    /** Epoch ms of the next start. */
    readonly retryAt: number;
    /** What to tell the user; calls made meanwhile answer it too. */
    readonly error: HearthError;
  };
}

/** `system` follows the operating system's light or dark setting. */
export type Theme = 'system' | 'light' | 'dark';

/** How a reply's tokens are chosen. */
export interface Sampling {
  /** 0..2; 0 = greedy. */
  readonly temperature: number;
  /** Nucleus sampling, in (0, 1]: the smallest set of tokens whose probabilities reach it. */
  readonly topP: number;
  /**
   * The longest reply in tokens, 1..32768; 0 = automatic, an eighth of the context (at least 64,
   * at most 2048: worker/context-view.ts `autoReplyTokens`). A reply never gets more than the
   * room left in the context: it stops there and can be continued.
   */
  readonly maxTokens: number;
}

export interface Settings {
  /**
   * llama.cpp threads; 0 = automatic: measured per model where its speed is measured, else the
   * physical core count. Never llama.cpp's default (docs/decisions/threads.md).
   */
  readonly threads: number;
  /** Context size per slot in tokens; 0 = automatic (the smaller of the trained length and 8192). */
  readonly contextSize: number;
  /** The UI's colour scheme. */
  readonly theme: Theme;
  /** The system prompt new chats start with. */
  readonly defaultSystemPrompt: string;
  /** The sampling new chats start with. */
  readonly defaultSampling: Sampling;
  /** The last model loaded, loaded again at start; null when none was, or it was unloaded. */
  readonly lastModelPath: string | null;
  /**
   * Keep each chat's KV cache on disk and restore it. Applied on save: the host restarts the
   * engine process gracefully (pending KV saves are flushed, the model reloads; not a crash).
   * While a reply streams, a model loads or a download runs, the restart waits until it ends.
   */
  readonly kvPersistence: boolean;
  /** Disk budget of the KV store in bytes. Applied on save, as `kvPersistence` is. */
  readonly kvBudgetBytes: number;
  /** Tokens per stored KV chunk (16..4096); changing it makes stored KV a cache miss. Applied on save, as `kvPersistence` is. */
  readonly kvChunkTokens: number;
  /**
   * Resident sequences (slots, 1..8): chats whose KV stays in memory at once. A chat that needs a
   * slot when all are taken swaps through the disk store. Applied at the next model load; on save
   * the host reloads the loaded model for it (once the engine is idle, as for `kvPersistence`).
   */
  readonly kvSlots: number;
  /**
   * How stored KV chunks are encoded on disk; `auto` (the default) lets the engine pick `off` or
   * `lossless` by measuring this machine at each start (KvCompressionSetting). Applied on save,
   * as `kvPersistence` is. Chunks already stored keep their encoding and stay readable whatever
   * this says; only `lossy` changes which chunks a chat can reuse (its KV is no longer bit-exact).
   */
  readonly kvCompression: KvCompressionSetting;
  /**
   * Where downloads go and the library's own models live (absolute); null = `models/` under the
   * data folder. Downloads already running finish where they started.
   */
  readonly modelsDir: string | null;
}

export interface ChatSummary {
  /** Opaque, URL- and path-safe (`idSchema`). */
  readonly id: string;
  /** Given at creation or by a rename; else the first message's first ~40 characters ("New chat" until then). */
  readonly title: string;
  /** When the chat was created. */
  readonly createdAt: number;
  /** The last rename, reconfiguration or new message: the list is ordered by it, newest first. */
  readonly updatedAt: number;
}

export interface Chat extends ChatSummary {
  /** This chat's system prompt (new chats copy Settings' default). */
  readonly systemPrompt: string;
  /** This chat's sampling (new chats copy Settings' default). */
  readonly sampling: Sampling;
  /** The leaf of the branch the user is looking at; null for an empty chat. */
  readonly activeLeafId: string | null;
  /** This chat's overflow policy; null follows the loaded model's profile. */
  readonly overflowPolicy: OverflowPolicy | null;
  /**
   * The remote engine and model its replies run on; null: this computer's engine, with the
   * loaded model. An engine that was removed still names its id here until the chat is moved.
   */
  readonly engine: ChatEngineRef | null;
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

/** The per-reply readout. */
export interface MessageStats {
  /** Prompt tokens already in the slot's memory. */
  readonly tokensReused: number;
  /** Prompt tokens restored from the disk KV store. */
  readonly tokensRestored: number;
  /** Prompt tokens evaluated from scratch. */
  readonly tokensPrefilled: number;
  /** Tokens of the reply. */
  readonly tokensGenerated: number;
  /** From the engine receiving the request (waiting for its turn included) to the first token, in ms. */
  readonly ttftMs: number;
  /** Evaluating the prompt tokens that were not reused or restored, in ms. */
  readonly prefillMs?: number;
  /** Reading and loading the KV restored from disk, in ms; absent when nothing was restored. */
  readonly restoreMs?: number;
  /** `disk` when any prompt KV was restored, else `memory` when any was reused, else `none`. */
  readonly cacheSource: CacheSource;
  /** Why the cache could not be used, when it could not. */
  readonly fallbackReason?: string;
  /**
   * How the reply ended (the engine's stop reason, kept by the host): the model ended its turn
   * (`eos`), it reached its max tokens, or it reached the end of the context (`context`: it can
   * be continued). Absent from older replies and from stopped ones.
   */
  readonly stopReason?: 'eos' | 'maxTokens' | 'context';
  /** What the model saw of the chat for this reply; absent from older replies. */
  readonly view?: ContextView;
  /** API requests: where the prompt diverged from the conversation the cache held, when it did. */
  readonly cacheMiss?: CacheMiss;
  /** Where the reply was generated; absent from older replies. */
  readonly engine?: ReplyEngine;
  /** A remote engine's own account of the prompt (its prefix cache); remote replies only. */
  readonly server?: ServerCacheStats;
  /**
   * Set on the first reply after the chat moved: where the branch's previous reply was
   * generated ("vLLM box · Llama-3-70B"). Its history was read again here (`tokensPrefilled`).
   */
  readonly movedFrom?: string;
}

/** The model's view of a chat at one reply (MessageStats.view): the context meter and the divider. */
export interface ContextView {
  /** The overflow policy the reply ran under (the chat's, else the model's). */
  readonly policy: OverflowPolicy;
  /** Tokens the context holds for one chat. */
  readonly contextSize: number;
  /** Tokens in the view once the reply was written: the prompt and the reply. */
  readonly tokens: number;
  /** Messages of the branch (the system prompt aside) outside the view: 0 when the model sees them all. */
  readonly droppedMessages: number;
  /** Of those, the ones this reply dropped (the view moved): the kept ones were read again (`tokensPrefilled`). */
  readonly droppedNow: number;
  /** The first message in the view, when older ones are outside it (the chat's divider goes above it). */
  readonly firstMessageId?: string;
}

export interface Message {
  /** Opaque, URL- and path-safe (`idSchema`). */
  readonly id: string;
  /** The chat it belongs to. */
  readonly chatId: string;
  /** null for the first message of a chat. Siblings (same parent) are branches. */
  readonly parentId: string | null;
  /** Who wrote it: the user, or the model's reply. */
  readonly role: Role;
  /** The text; while streaming, what was saved so far (deltas arrive as `message.delta`). */
  readonly content: string;
  /** Where the message is in its life; user messages are always `complete`. */
  readonly status: MessageStatus;
  /** When it was created; siblings show oldest first. */
  readonly createdAt: number;
  /** Why the reply failed or was cut off (status `error` or `incomplete`). */
  readonly error?: HearthError;
  /** An assistant reply's readout, once it finished. */
  readonly stats?: MessageStats;
}

/** A chat and every message of every branch. The renderer derives the active path. */
export interface ChatDetail {
  /** The chat's own fields. */
  readonly chat: Chat;
  /** Oldest first. */
  readonly messages: readonly Message[];
}

/** A GGUF file in the models directory. */
/** A small instruct model known to work, offered on first run with its fit verdict. */
export interface RecommendedModel {
  /** A stable name for the entry. */
  readonly id: string;
  /** A name for the list. */
  readonly name: string;
  /** The Hugging Face repository (`owner/name`). */
  readonly repo: string;
  /** The quantization to download from it (`Q4_K_M`). */
  readonly quantization: string;
  /** The download's size, roughly, in bytes (the Hub's file list says exactly). */
  readonly approxSizeBytes: number;
  /** One line on what it is good for. */
  readonly description: string;
}

/** A conversation written out for the user to save (`chats.export`). */
export interface ChatExport {
  /**
   * A bare file name derived from the chat's title: no directory part, no path separators, no
   * leading dot, no reserved device names, at most 100 characters, ending in the format's extension.
   */
  readonly fileName: string;
  /** `text/markdown` or `application/json`. */
  readonly mimeType: string;
  /** The file's text. */
  readonly content: string;
}

/** Everything the UI needs at start (`app.state`). */
export interface AppState {
  /** The app's version. */
  readonly version: string;
  /** Which host serves the UI: the desktop app, or the browser host. */
  readonly host: 'electron' | 'browser';
  /** Where hearth.db, models/, kv/ and logs/ live (absolute). */
  readonly dataDir: string;
  /** Where downloads go and Hearth's own models live (absolute): Settings.modelsDir or the default. */
  readonly modelsDir: string;
  /** The engine process now. */
  readonly engine: EngineStatus;
  /** The model now (`idle` when none is loaded). */
  readonly model: ModelStatus;
  /** The saved settings. */
  readonly settings: Settings;
  /** Disk KV persistence; absent from hosts that predate it. */
  readonly kv?: KvStatus;
}
