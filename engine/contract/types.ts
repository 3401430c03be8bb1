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
  /** The K and V cache types the context was created with (issue 4); absent from older hosts. */
  readonly kvType?: { readonly k: KvCacheType; readonly v: KvCacheType };
  readonly flashAttention?: boolean;
  /** Layers offloaded to the GPU (0 on CPU). */
  readonly gpuLayers?: number;
  /** The planner's estimate of the context's memory beside what llama.cpp really allocated. */
  readonly memory?: { readonly plannedBytes: number; readonly measuredBytes: number };
}

/** KV cache element types Hearth offers, by llama.cpp's names (issue 4). */
export type KvCacheType = 'f16' | 'q8_0' | 'q5_1' | 'q5_0' | 'q4_1' | 'q4_0' | 'iq4_nl';

/**
 * What a chat does when its conversation outgrows the context (issue 4):
 * - `refuse`: the turn fails with CONTEXT_OVERFLOW and says what to do;
 * - `rebuild`: the oldest messages are dropped (the system prompt stays) and the kept window is
 *   read again from a clean sequence (or restored from the store when it holds it): safe with
 *   every K type;
 * - `streaming`: StreamingLLM, keep 4 sink tokens plus a recent window by erasing the middle:
 *   F16 K only (a middle erase with a quantized K crashes llama.cpp 0.4.0, facts.md);
 * - `shift`: node-llama-cpp's chat-level context shift: F16 K only, for the same reason.
 */
export type OverflowPolicy = 'refuse' | 'rebuild' | 'streaming' | 'shift';

/** Per-model settings, stored with the model's profile (issue 4). `auto` lets the planner choose. */
export interface ModelProfile {
  readonly kType: KvCacheType | 'auto';
  readonly vType: KvCacheType | 'auto';
  readonly flashAttention: 'auto' | 'on' | 'off';
  /** Tokens per slot; 0 = automatic (the smaller of the trained length and 8192). */
  readonly contextSize: number;
  /** Layers offloaded to the GPU; `auto` = as many as fit. */
  readonly gpuLayers: number | 'auto';
  /** Resident sequences (see Settings.kvSlots, the default for models without a profile). */
  readonly slots: number;
  readonly overflowPolicy: OverflowPolicy;
}

/** A validation message about a profile, shown beside its field. Errors refuse the profile. */
export interface ProfileIssue {
  readonly field: keyof ModelProfile | 'model';
  readonly severity: 'error' | 'warning';
  readonly message: string;
}

/** A model's profile as stored, with what validation says of it on this machine. */
export interface ModelProfileView {
  readonly path: string;
  readonly profile: ModelProfile;
  readonly issues: readonly ProfileIssue[];
}

/** The memory the planner plans against (issue 4). */
export interface DeviceMemory {
  readonly backend: 'cuda' | 'vulkan' | 'metal' | 'cpu';
  readonly gpuName?: string;
  /** VRAM; on Apple silicon, what Metal lets this process use. null without a GPU. */
  readonly vramTotalBytes: number | null;
  readonly vramFreeBytes: number | null;
  /** GPU and CPU share one memory (Apple silicon). */
  readonly unifiedMemory: boolean;
  readonly ramTotalBytes: number;
  readonly ramFreeBytes: number;
}

/** One K/V pair in the planner's table. */
export interface KvPlanRow {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  /** Why validation refuses this pair here (flash attention, head size, backend); absent when allowed. */
  readonly refused?: string;
  readonly kvBytesPerToken: number;
  /** KV bytes at the plan's context size (all slots). */
  readonly kvBytes: number;
  /** Weights + KV + compute buffers at the plan's context size. */
  readonly totalBytes: number;
  /** Longest context per slot with every layer on the GPU; null without a GPU; 0 when the weights alone do not fit. */
  readonly maxContextFullGpu: number | null;
  /** Longest context per slot with the layers that fit on the GPU and the rest in RAM. */
  readonly maxContextPartial: number;
  /** The plan's context size fits (fully on the GPU where there is one, else in RAM). */
  readonly fits: boolean;
}

export interface KvPlan {
  readonly device: DeviceMemory;
  /** The context size per slot the rows were computed for. */
  readonly contextSize: number;
  readonly slots: number;
  readonly weightsBytes: number;
  readonly rows: readonly KvPlanRow[];
  /** The pair `auto` picks: the best quality that fits (V quantized before K); null when none fits. */
  readonly auto: { readonly kType: KvCacheType; readonly vType: KvCacheType } | null;
}

/** The quality meter's result: the loaded model's KV pair against F16 over the calibration text. */
export interface KvQuality {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  /** Mean KL divergence (nats) of the next-token distributions, F16 as the reference. */
  readonly klDivergence: number;
  /** Share of positions whose most likely next token is the same as with F16. */
  readonly top1Agreement: number;
  readonly verdict: 'near-lossless' | 'small' | 'noticeable';
  /** Positions compared. */
  readonly positions: number;
  readonly measuredAt: number;
  /**
   * The lossy disk encoding (Settings.kvCompression `lossy`, issue 6) against a bit-exact restore:
   * the same context restored from the lossless and from the lossy encoding of the calibration
   * text's first half, its second half's next-token distributions compared. Absent when the pair
   * has no F16 side (lossy does not apply) or the measurement failed.
   */
  readonly lossy?: KvLossyQuality;
}

export interface KvLossyQuality {
  /** Mean KL divergence (nats), the lossless restore as the reference. */
  readonly klVsLossless: number;
  readonly top1Agreement: number;
  readonly positions: number;
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
  /**
   * Set while the engine keeps dying soon after each start (issue 7: a crash loop), in the
   * 'restarting' state only: the host waits longer before each new try instead of spinning, and
   * `error` is what to tell the user (calls made meanwhile answer it too).
   */
  readonly crashLoop?: {
    /** Crashes in a row, none after the engine had run stably. */
    readonly crashes: number;
    /** Epoch ms of the next start. */
    readonly retryAt: number;
    readonly error: HearthError;
  };
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
  /**
   * How stored KV chunks are encoded on disk (issue 6). Applied on save, as `kvPersistence` is.
   * Chunks already stored keep their encoding and stay readable whatever this says; only `lossy`
   * changes which chunks a chat can reuse (its KV is no longer bit-exact).
   */
  readonly kvCompression: KvCompression;
}

/**
 * - `off`: chunks hold the KV bytes as llama.cpp wrote them;
 * - `lossless`: F16 values byte-shuffled (their high bytes compressed with zstd, the low bytes
 *   stored as they are), quantized K/V compressed with zstd; restores are bit-exact;
 * - `lossy`: F16 K/V stored as q8_0 and expanded back to F16 on load (~0.5× the bytes, a small
 *   quality cost the quality meter reports). Never applied to quantized K/V (llama.cpp rotates
 *   those, facts.md), which stay lossless.
 */
export type KvCompression = 'off' | 'lossless' | 'lossy';

/** Which implementation of the KV codec's byte transforms the engine runs. */
export interface KvCodecInfo {
  /** `native`: the Node-API addon in native/; `fallback`: the TypeScript version (same output, slower). */
  readonly kernels: 'native' | 'fallback';
  /** Why the addon is not used (absent when it is). */
  readonly reason?: string;
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
  /** The encoding new chunks are written with (Settings.kvCompression as the engine applies it). */
  readonly compression: KvCompression;
  /** The codec's implementation; null while the engine has not started. */
  readonly codec: KvCodecInfo | null;
}

/**
 * The disk KV store's self-check (Settings → Cache → "Check the cache"; the fault suite runs it
 * after every injected fault). Every chunk file is read and verified against the index, and the
 * index against itself. Counts, so that the report stays small on a store of any size.
 */
export interface KvVerifyReport {
  /** False when persistence is off or the store is not open: nothing was checked. */
  readonly checked: boolean;
  /** True when nothing below was found (leftover temp files of an interrupted write count). */
  readonly ok: boolean;
  readonly chunksVerified: number;
  readonly missingChunks: number;
  readonly corruptChunks: number;
  /** Chunks already recorded as damaged when a restore read them, still referenced. */
  readonly knownCorruptChunks: number;
  readonly orphanFiles: number;
  readonly tempFiles: number;
  readonly refcountMismatches: number;
  readonly danglingReferences: number;
  readonly inconsistentManifests: number;
  readonly corruptTails: number;
  /** True when `repair` was asked for and something was fixed (only cache is ever dropped). */
  readonly repaired: boolean;
  /** Up to 20 lines naming what was found, for the UI and logs. */
  readonly problems: readonly string[];
  readonly ms: number;
}

/** A conversation written out for the user to save (`chats.export`). */
export interface ChatExport {
  /**
   * A bare file name derived from the chat's title: no directory part, no path separators, no
   * leading dot, no reserved device names, at most 100 characters, ending in the format's extension.
   */
  readonly fileName: string;
  readonly mimeType: string;
  readonly content: string;
}

/** What a slot is doing: generations, saves and restores run one at a time. */
export type SlotState = 'idle' | 'generating' | 'saving' | 'restoring';

/**
 * The device memory the Cache view draws (issue 5), as llama.cpp allocated it. The device is the
 * one the model's layers live on: a discrete GPU's VRAM, Apple silicon's unified memory, or RAM.
 */
export interface CacheMemory {
  readonly kind: 'vram' | 'unified' | 'ram';
  /** The GPU's name, or "RAM". */
  readonly deviceName: string;
  /** VRAM, the unified memory's size, or RAM. */
  readonly capacityBytes: number;
  /** Free on the device now (other processes' use counts as used); null when unknown. */
  readonly freeBytes: number | null;
  /** Apple silicon: what Metal lets this process use of the unified memory (its working-set limit). */
  readonly workingSetLimitBytes?: number;
  /** The loaded model's weights on this device. */
  readonly weightsBytes: number;
  /** KV allocated for every slot's whole context. */
  readonly kvAllocatedBytes: number;
  /** KV of the cells in use (part of `kvAllocatedBytes`). */
  readonly kvUsedBytes: number;
  /** The context's other buffers: compute graph and outputs. */
  readonly computeBytes: number;
}

/** One resident sequence (slot), as the Cache view lists it. */
export interface CacheSlot {
  readonly index: number;
  /** The chat whose KV it holds; null when free. */
  readonly chatId: string | null;
  readonly cellsUsed: number;
  /** The slot's context size in cells (tokens). */
  readonly cellsCapacity: number;
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  /** KV bytes of the cells in use. */
  readonly bytes: number;
  readonly state: SlotState;
}

/** The disk KV store in a Cache view tick: `kv.stats`' figures and the ratios derived from them. */
export interface CacheStoreStats extends KvStoreInfo {
  /** Bytes counted against the budget: chunk files plus partial-chunk tails. */
  readonly storedBytes: number;
  /** KV payload bytes those hold, before any compression (chunk headers and token lists excluded). */
  readonly rawBytes: number;
  /** Chat branches with stored KV. */
  readonly manifests: number;
  /** `logicalBytes / storedBytes`: above 1 when chats share chunks (a common prefix stored once). 1 when empty. */
  readonly dedupRatio: number;
  /** `rawBytes / storedBytes`: above 1 only with on-disk compression (issue 6). 1 when empty. */
  readonly compressionRatio: number;
}

/** One sample of the Cache view, taken by the engine at a fixed rate while a view watches. */
export interface CacheSnapshot {
  /** Epoch ms of the sample. */
  readonly at: number;
  /** +1 per tick since the host started: a gap means a dropped sample. */
  readonly seq: number;
  /** null without a loaded model. */
  readonly memory: CacheMemory | null;
  readonly slots: readonly CacheSlot[];
  /** null when persistence is off or the store cannot be read. */
  readonly store: CacheStoreStats | null;
}

/** A finished reply in the Cache view's timeline. */
export interface CacheTurn {
  readonly at: number;
  readonly chatId: string;
  readonly messageId: string;
  readonly stats: MessageStats;
}

/**
 * What the Cache view's event log records: KV saves, restores from disk, fallbacks (a re-read,
 * with its reason), budget evictions, forgotten caches, settings changes, engine restarts and
 * model loads.
 */
export type CacheEventKind = 'save' | 'restore' | 'fallback' | 'evict' | 'forget' | 'settings' | 'restart' | 'model';

export interface CacheEvent {
  /** Increases by one per event since the host started. */
  readonly id: number;
  readonly at: number;
  readonly kind: CacheEventKind;
  readonly chatId?: string;
  /** One line for the log, e.g. "saved 512 tokens (2 new chunks, 1.1 MB) in 14 ms". */
  readonly text: string;
  readonly tokens?: number;
  readonly bytes?: number;
  readonly ms?: number;
}

/** A chat's KV on disk, for the Cache view's largest chats. */
export interface CachedChat {
  readonly chatId: string;
  /** The longest branch's stored tokens. */
  readonly tokens: number;
  /** Chunk and tail bytes its branches reference (a chunk shared with another chat counted here too). */
  readonly bytes: number;
  readonly lastUsed: number;
}

/** A chat's cache at a glance (the chat header's badge). */
export interface ChatCache {
  readonly chatId: string;
  /** memory: a slot holds its KV; disk: only the store does; none: neither. */
  readonly where: CacheSource;
  /** The slot holding it, or null. */
  readonly slot: number | null;
  readonly tokensInMemory: number;
  readonly tokensOnDisk: number;
  readonly bytesOnDisk: number;
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
