/**
 * The KV cache's data as it crosses the contract: the planner's table, the quality meter, the
 * disk store's state and self-check, and the Cache view's samples and history. Readonly JSON, as
 * in types.ts; sizes are bytes and times epoch milliseconds unless a name says otherwise.
 */
import type { HearthError } from './errors.ts';
import type { MessageStats } from './types.ts';

/** KV cache element types Hearth offers, by llama.cpp's names. */
export type KvCacheType = 'f16' | 'q8_0' | 'q5_1' | 'q5_0' | 'q4_1' | 'q4_0' | 'iq4_nl';

/** The memory the planner plans against. */
export interface DeviceMemory {
  /** The llama.cpp backend the model would run on. */
  readonly backend: 'cuda' | 'vulkan' | 'metal' | 'cpu';
  /** The GPU's name; absent on CPU. */
  readonly gpuName?: string;
  /** VRAM; on Apple silicon, what Metal lets this process use. null without a GPU. */
  readonly vramTotalBytes: number | null;
  /** VRAM free now (other processes' use counts as used); null without a GPU. */
  readonly vramFreeBytes: number | null;
  /** GPU and CPU share one memory (Apple silicon). */
  readonly unifiedMemory: boolean;
  /** The machine's RAM. */
  readonly ramTotalBytes: number;
  /** RAM available now. */
  readonly ramFreeBytes: number;
}

/** One K/V pair in the planner's table. */
export interface KvPlanRow {
  /** The K cache's element type. */
  readonly kType: KvCacheType;
  /** The V cache's element type. */
  readonly vType: KvCacheType;
  /** Why validation refuses this pair here (flash attention, head size, backend); absent when allowed. */
  readonly refused?: string;
  /** KV bytes one token takes in one slot, every layer's K and V together. */
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

/** The planner's answer (`models.plan`), from GGUF metadata alone. */
export interface KvPlan {
  /** What the plan was computed against: this machine now. */
  readonly device: DeviceMemory;
  /** The context size per slot the rows were computed for, in tokens. */
  readonly contextSize: number;
  /** The slot count the rows were computed for. */
  readonly slots: number;
  /** The model's weights. */
  readonly weightsBytes: number;
  /** One row per K/V pair Hearth offers. */
  readonly rows: readonly KvPlanRow[];
  /** The pair `auto` picks: the best quality that fits (V quantized before K); null when none fits. */
  readonly auto: { readonly kType: KvCacheType; readonly vType: KvCacheType } | null;
}

/**
 * The quality meter's result: the loaded model's KV pair against F16 over the calibration text
 * (docs/decisions/kv-quality.md).
 */
export interface KvQuality {
  /** The loaded context's K type. */
  readonly kType: KvCacheType;
  /** The loaded context's V type. */
  readonly vType: KvCacheType;
  /** Mean KL divergence (nats, ≥ 0) of the next-token distributions, F16 as the reference. */
  readonly klDivergence: number;
  /** Share (0..1) of positions whose most likely next token is the same as with F16. */
  readonly top1Agreement: number;
  /** `near-lossless`: KL ≤ 0.002 and top-1 ≥ 98 %; `small`: KL ≤ 0.01 and top-1 ≥ 95 %; else `noticeable`. */
  readonly verdict: 'near-lossless' | 'small' | 'noticeable';
  /** Positions compared. */
  readonly positions: number;
  /** When it was measured (a cached result keeps its time). */
  readonly measuredAt: number;
  /** True for f16/f16, the reference itself: its KL 0 and top-1 1 hold by definition and were not measured. */
  readonly reference?: true;
  /**
   * The lossy disk encoding (Settings.kvCompression `lossy`) against a bit-exact restore: the
   * same context restored from the lossless and from the lossy encoding of the calibration
   * text's first half, its second half's next-token distributions compared. Absent when the pair
   * has no F16 side (lossy does not apply) or the measurement failed.
   */
  readonly lossy?: KvLossyQuality;
}

/** The lossy disk encoding's cost, measured against a lossless restore. */
export interface KvLossyQuality {
  /** Mean KL divergence (nats), the lossless restore as the reference. */
  readonly klVsLossless: number;
  /** Share (0..1) of positions whose most likely next token matches the lossless restore's. */
  readonly top1Agreement: number;
  /** Positions compared. */
  readonly positions: number;
}

/**
 * - `off`: chunks hold the KV bytes as llama.cpp wrote them;
 * - `lossless`: F16 values byte-shuffled (their high bytes compressed with zstd, the low bytes
 *   stored as they are), quantized K/V compressed with zstd; restores are bit-exact;
 * - `lossy`: F16 K/V stored as q8_0 and expanded back to F16 on load (~0.5× the bytes, a small
 *   quality cost the quality meter reports). Never applied to quantized K/V, which stay lossless
 *   (docs/decisions/lossy-only-f16.md).
 */
export type KvCompression = 'off' | 'lossless' | 'lossy';

/**
 * Settings.kvCompression: an encoding, or `auto` (the default), which the engine resolves at
 * each start by measuring this machine: `lossless` where decoding it is at least as fast as
 * reading the same bytes uncompressed would be, else `off`, so that the default never makes a
 * restore slower (docs/decisions/kv-compression-auto.md).
 */
export type KvCompressionSetting = 'auto' | KvCompression;

/** How the running engine resolved Settings.kvCompression. */
export interface KvCompressionChoice {
  /** The setting the engine started with. */
  readonly setting: KvCompressionSetting;
  /** The encoding new chunks are written with: the setting itself, or what `auto` chose. */
  readonly applied: KvCompression;
  /**
   * `auto` only: why it chose `applied`, with the figures, e.g. "decoding 0.70 GB/s is slower
   * than reading 9.8 GB/s", or why nothing was measured or the measurement failed.
   */
  readonly reason?: string;
  /** `auto` only, when the measurement succeeded: its figures. */
  readonly measured?: KvRestoreThroughput;
}

/** The two ways a restore can get a chunk's raw bytes, measured on this machine at engine start. */
export interface KvRestoreThroughput {
  /** The lossless decode: raw bytes out per second. */
  readonly decodeBytesPerSec: number;
  /** Reading the same raw bytes from a file in the KV store's directory (page cache), per second. */
  readonly readBytesPerSec: number;
}

/**
 * How the loaded model's sequence state moves between llama.cpp and Hearth on saves and
 * restores: `memory` (copied directly) or `file` (through a scratch file), with why.
 */
export interface KvStateTransfer {
  /** See the interface's comment. */
  readonly mode: 'memory' | 'file';
  /** Why the file path is used; absent for `memory`. */
  readonly reason?: string;
}

/** Which implementation of the KV codec's byte transforms the engine runs. */
export interface KvCodecInfo {
  /** `native`: the Node-API addon in native/; `fallback`: the TypeScript version (same output, slower). */
  readonly kernels: 'native' | 'fallback';
  /** Why the addon is not used (absent when it is). */
  readonly reason?: string;
}

/** Where the prompt's KV came from for one reply. */
export type CacheSource = 'memory' | 'disk' | 'none';

/**
 * Whether chats' KV caches are being saved to disk. `paused`: writes fail (a full disk, a
 * permission or I/O error, or a store that could not be opened); chats keep working and re-read
 * their history when reopened. `off`: disk KV persistence is turned off in Settings.
 */
export interface KvStatus {
  /** See the interface's comment. */
  readonly persistence: 'on' | 'paused' | 'off';
  /** Why persistence is paused. */
  readonly reason?: HearthError;
}

/** The disk KV store at a glance, for Settings (the budget is shown beside the free disk). */
export interface KvStoreInfo {
  /** As in `KvStatus`. */
  readonly persistence: KvStatus['persistence'];
  /** Chunk files and tails on disk. */
  readonly bytesOnDisk: number;
  /** Chunks stored (each shared chunk once). */
  readonly chunkCount: number;
  /** What the chats' manifests reference, a shared chunk counted once per chat. */
  readonly logicalBytes: number;
  /** Settings.kvBudgetBytes: least recently used KV is evicted above it. */
  readonly budgetBytes: number;
  /** Free space on the disk that holds the store; null when it cannot be read. */
  readonly freeDiskBytes: number | null;
  /** Tokens per chunk (Settings.kvChunkTokens). */
  readonly chunkTokens: number;
  /**
   * The encoding new chunks are written with (Settings.kvCompression as the engine applies it);
   * null while no engine has answered yet and the setting is `auto` (only the engine resolves it).
   */
  readonly compression: KvCompression | null;
  /** How the running engine resolved the setting (`auto`'s choice and figures); null while the engine has not started. */
  readonly compressionChoice: KvCompressionChoice | null;
  /** The codec's implementation; null while the engine has not started. */
  readonly codec: KvCodecInfo | null;
  /** How the loaded model's sequence state moves; null without a loaded model or a KV store. */
  readonly stateTransfer: KvStateTransfer | null;
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
  /** Chunk files read and verified. */
  readonly chunksVerified: number;
  /** Chunks in the index whose file is missing. */
  readonly missingChunks: number;
  /** Chunk files that failed verification (size, header or checksum). */
  readonly corruptChunks: number;
  /** Chunks already recorded as damaged when a restore read them, still referenced. */
  readonly knownCorruptChunks: number;
  /** Chunk files the index does not know (a crash between writing one and recording it). */
  readonly orphanFiles: number;
  /** Temp files of interrupted writes. */
  readonly tempFiles: number;
  /** Chunks whose stored reference count differs from the manifests that use them. */
  readonly refcountMismatches: number;
  /** Manifest entries whose chunk is not in the index at all. */
  readonly danglingReferences: number;
  /** Manifests whose record disagrees with their chunk list (count, head, or a gap). */
  readonly inconsistentManifests: number;
  /** Manifests whose partial-chunk tail fails its checksum. */
  readonly corruptTails: number;
  /** True when `repair` was asked for and something was fixed (only cache is ever dropped). */
  readonly repaired: boolean;
  /** Up to 20 lines naming what was found, for the UI and logs. */
  readonly problems: readonly string[];
  /** How long the check took, in ms. */
  readonly ms: number;
}

/** What a slot is doing: generations, saves and restores run one at a time. */
export type SlotState = 'idle' | 'generating' | 'saving' | 'restoring';

/**
 * The device memory the Cache view draws, as llama.cpp allocated it. The device is the one the
 * model's layers live on: a discrete GPU's VRAM, Apple silicon's unified memory, or RAM.
 */
export interface CacheMemory {
  /** Which memory the figures are of. */
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
  /** 0-based, below the model's slot count. */
  readonly index: number;
  /** The chat whose KV it holds; null when free. */
  readonly chatId: string | null;
  /** Cells (tokens) holding KV now. */
  readonly cellsUsed: number;
  /** The slot's context size in cells (tokens). */
  readonly cellsCapacity: number;
  /** The K type of the slot's context. */
  readonly kType: KvCacheType;
  /** The V type of the slot's context. */
  readonly vType: KvCacheType;
  /** KV bytes of the cells in use. */
  readonly bytes: number;
  /** What the slot is doing now. */
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
  /** `rawBytes / storedBytes`: above 1 only with on-disk compression. 1 when empty. */
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
  /** Every slot of the loaded model; empty without one. */
  readonly slots: readonly CacheSlot[];
  /** null when persistence is off or the store cannot be read. */
  readonly store: CacheStoreStats | null;
}

/** A finished reply in the Cache view's timeline. */
export interface CacheTurn {
  /** When the reply finished; for turns read back at start, its message's creation time. */
  readonly at: number;
  /** The chat the reply belongs to. */
  readonly chatId: string;
  /** The reply's message. */
  readonly messageId: string;
  /** The reply's readout. */
  readonly stats: MessageStats;
  /** `api`: a request to the local API server (chatId names its conversation, not a chat). Absent: a chat. */
  readonly source?: 'chat' | 'api';
}

/**
 * What the Cache view's event log records: KV saves, restores from disk, fallbacks (a re-read,
 * with its reason), budget evictions, forgotten caches, settings changes, engine restarts and
 * model loads.
 */
export type CacheEventKind = 'save' | 'restore' | 'fallback' | 'evict' | 'forget' | 'settings' | 'restart' | 'model';

/** One line of the Cache view's event log. */
export interface CacheEvent {
  /** Increases by one per event since the host started. */
  readonly id: number;
  /** When it happened. */
  readonly at: number;
  /** What happened. */
  readonly kind: CacheEventKind;
  /** The chat it concerns, when one does. */
  readonly chatId?: string;
  /** One line for the log, e.g. "saved 512 tokens (2 new chunks, 1.1 MB) in 14 ms". */
  readonly text: string;
  /** Tokens saved, restored, re-read, evicted or forgotten, when the event has a count. */
  readonly tokens?: number;
  /** Bytes written, read or freed, when the event has a size. */
  readonly bytes?: number;
  /** How long it took, in ms, when timed. */
  readonly ms?: number;
}

/** A chat's KV on disk, for the Cache view's largest chats. */
export interface CachedChat {
  /** The chat whose KV it is. */
  readonly chatId: string;
  /** The longest branch's stored tokens. */
  readonly tokens: number;
  /** Chunk and tail bytes its branches reference (a chunk shared with another chat counted here too). */
  readonly bytes: number;
  /** When one of its branches was last saved or restored. */
  readonly lastUsed: number;
}

/** A chat's cache at a glance (the chat header's badge). */
export interface ChatCache {
  /** The chat asked about. */
  readonly chatId: string;
  /** memory: a slot holds its KV; disk: only the store does; none: neither. */
  readonly where: CacheSource;
  /** The slot holding it, or null. */
  readonly slot: number | null;
  /** Tokens of its KV in its slot; 0 when in none. */
  readonly tokensInMemory: number;
  /** Its longest branch's stored tokens; 0 when nothing is stored. */
  readonly tokensOnDisk: number;
  /** Chunk and tail bytes its branches reference on disk. */
  readonly bytesOnDisk: number;
}
