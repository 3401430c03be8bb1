/**
 * The KV store's public shape: its options, the reports its operations return, and the `KvStore`
 * interface. Kept apart from the implementation so that callers and the store's own modules share
 * one vocabulary without importing each other.
 */
import type { ScatterRequest, ScatterResult } from './store-scatter.ts';
import type { HearthError, Result } from '../contract/index.ts';
import type { Disposable } from '../base/disposable.ts';
import type { ChunkData, ChunkFault } from './chunk-file.ts';
import type { HashProgress } from './fingerprint.ts';
import type { CodecKernels } from './kernels.ts';
import type { Manifest, ManifestInput, PrefixMatch, TailData } from './manifest.ts';
import type { StoreFs } from './store-fs.ts';

/** The default chunk size in tokens (LMCache uses 256 too). */
export const defaultChunkTokens = 256;

export interface KvStoreOptions {
  /** The store's directory (the engine uses `<dataDir>/kv`). Created if missing; must be writable. */
  readonly root: string;
  /** The byte budget `enforceBudget()` keeps chunk files and tail payloads within. */
  readonly budgetBytes: number;
  /** Tokens per chunk. Changing it makes old chunks a cache miss (their keys cover other token runs). */
  readonly chunkTokens?: number;
  /** The file system, injectable so tests can fail writes (ENOSPC) without filling a disk. */
  readonly fs?: StoreFs;
  /** The clock for last-used times. */
  readonly now?: () => number;
  /**
   * Chunk files read in parallel by `readChunks` (default 8) when a read goes through the thread
   * pool; reads of indexed chunks on a file system with `readIntoSync` are synchronous and one at a time.
   */
  readonly readConcurrency?: number;
  /**
   * The codec kernels, for the chunk files' CRC-32C (chunk-file.ts). Default: the native addon
   * when it loads (kernels-load.ts `loadKernels`), else the TypeScript fallback.
   */
  readonly kernels?: CodecKernels;
  /**
   * How long `openKvStore` waits for another process to let go of the root (default 5 s: a killed
   * host's orphaned engine flushes for up to 2 s) before opening read-only with persistence paused.
   */
  readonly lockWaitMs?: number;
  /** While locked out, how often the store tries to take the root over (default 2 s). */
  readonly lockRetryMs?: number;
  /** Where the store says what it repaired by itself (a damaged index moved aside, debris swept). Default: warnings to stderr. */
  readonly log?: StoreLog;
}

/** The store's log: the engine passes its own (runtime.ts). */
export type StoreLog = (level: 'info' | 'warn' | 'error', message: string) => void;

/** Default `lockWaitMs`: more than a killed host's orphaned engine takes to flush and exit (≤ 2 s). */
export const defaultLockWaitMs = 5000;

/** A chunk read failure: a HearthError that names the fault and the key. */
export interface ChunkError extends HearthError {
  readonly reason: ChunkFault;
  readonly key: string;
}

/** A Result whose error is a ChunkError (assignable to Result<T>). */
export type ChunkResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ChunkError };

/** Set when a write failed (full disk, permissions, I/O); cleared by the next successful save. */
export interface PersistencePause {
  readonly reason: HearthError;
  readonly since: number;
}

export interface PutManifestResult {
  /** Chunk files written by this call (new keys, or damaged ones rewritten). */
  readonly chunksWritten: number;
  /** Bytes of those files. */
  readonly bytesWritten: number;
  /** Full chunks already stored and shared. */
  readonly chunksReused: number;
  /** The tail payload's bytes (stored as a file under `<root>/tails`, tail-file.ts). */
  readonly tailBytes: number;
  readonly totalTokens: number;
}

export interface DeleteResult {
  readonly deleted: boolean;
  /** Chunks no other manifest referenced, now removed. */
  readonly chunksRemoved: number;
  /** Those chunks' bytes plus the manifest's tail payload: what left `storedBytes`. */
  readonly bytesFreed: number;
}

export interface EvictionReport {
  readonly chunksRemoved: number;
  /** Chunk and tail bytes freed. */
  readonly bytesFreed: number;
  /** Manifests cut short (they keep their prefix: a restore re-reads the rest). */
  readonly truncated: readonly string[];
  /** Manifests evicted whole. */
  readonly deleted: readonly string[];
  /** Bytes under budget after eviction (chunk files + tail payloads). */
  readonly storedBytes: number;
  readonly budget: number;
}

export interface GcReport {
  /** Chunk rows no manifest referenced (normally none: they are removed when dropped). */
  readonly unreferencedChunks: number;
  /** Chunk and tail files on disk that the index does not know (a crash between rename and commit, or between a commit and a removal). */
  readonly orphanFiles: number;
  /** Temp files of interrupted writes. */
  readonly tempFiles: number;
  readonly bytesFreed: number;
}

export interface IntegrityReport {
  /** Chunks whose file was read and verified (or, with `verify: false`, had the right size). */
  readonly chunksVerified: number;
  /** Chunk keys in the index whose file is missing. */
  readonly missing: readonly string[];
  /** Chunk files that failed verification. */
  readonly corrupt: readonly { readonly key: string; readonly reason: ChunkFault }[];
  /** Chunks the index records as corrupt (found at read time) that are still referenced. */
  readonly knownCorrupt: readonly { readonly key: string; readonly reason: string }[];
  /** Chunk files (`.kvc`) and tail files (`.kvt`) the index does not know, as paths. */
  readonly orphanFiles: readonly string[];
  /** Leftover temp files, as paths. */
  readonly tempFiles: readonly string[];
  readonly refcountMismatches: readonly { readonly key: string; readonly stored: number; readonly actual: number }[];
  /** Manifest entries whose chunk is not in the index at all. */
  readonly danglingReferences: readonly { readonly manifestId: string; readonly index: number; readonly key: string }[];
  /** Manifests whose row disagrees with their chunk list (count, head, or a gap in indices). */
  readonly inconsistentManifests: readonly string[];
  /**
   * Manifests whose tail payload is missing or damaged: its file is gone or of the wrong size
   * (or, verifying, fails its checksum), or the manifest and its tails row disagree.
   */
  readonly corruptTails: readonly string[];
  /** True when nothing above was found. */
  readonly ok: boolean;
  /** True when `repair` was asked for and applied. */
  readonly repaired: boolean;
}

export interface KvStoreStats {
  /** Physical bytes: chunk and tail files plus index.db and its WAL (which hold the tails saved before tail files). */
  readonly bytesOnDisk: number;
  /** Bytes counted against the budget: chunk files plus tail payloads. */
  readonly storedBytes: number;
  /** What the manifests reference, a shared chunk counted once per manifest that uses it. */
  readonly logicalBytes: number;
  /**
   * The KV the stored payloads decode to (chunk and tail payloads at their decoded size, frame.ts),
   * so rawBytes / storedBytes is the on-disk compression ratio: just under 1 with
   * compression off (the files' headers and tokens), above it with compression on.
   */
  readonly rawBytes: number;
  readonly chunkCount: number;
  readonly manifests: number;
  readonly budget: number;
  /** storedBytes / budget (may exceed 1 until `enforceBudget()` runs). */
  readonly usage: number;
  /** Free bytes for an unprivileged user on the store's file system; null if unknown. */
  readonly freeBytes: number | null;
  readonly persistencePaused: PersistencePause | null;
}

/** One chat's stored KV (`chatUsage`): its manifests are `<chatId>/<branchId>`. */
export interface ChatUsage {
  readonly chatId: string;
  /** The longest branch's tokens. */
  readonly tokens: number;
  /** Chunk files its branches reference (each once, shared with other chats or not) plus its tail payloads. */
  readonly bytes: number;
  /** The latest last-used time of its branches. */
  readonly lastUsed: number;
}

/** The KV one model file left in the store (`modelUsage`): every manifest of its fingerprints. */
export interface ModelUsage {
  /** Its manifests (chat branches). */
  readonly conversations: number;
  /** The distinct chunk files they reference plus their tail payloads. */
  readonly bytes: number;
}

export interface ForgetModelResult {
  /** Manifests (chat branches) deleted. */
  readonly manifests: number;
  /** Chunks no other manifest referenced, now removed. */
  readonly chunksRemoved: number;
  /** Those chunks' bytes plus the manifests' tail payloads: what left `storedBytes`. */
  readonly bytesFreed: number;
}

/** The store. Every method returns data, never throws (except on programmer misuse of types). */
export interface KvStore {
  readonly root: string;
  readonly chunkTokens: number;
  readonly budget: number;
  /** Non-null while writes fail; the UI shows "persistence paused" with its reason. */
  readonly persistencePaused: PersistencePause | null;
  /** Called whenever `persistencePaused` changes, until the returned subscription is disposed. */
  onDidChangePersistence(listener: (pause: PersistencePause | null) => void): Disposable;
  setBudget(bytes: number): Result<void>;

  /** The sha256 of a model file, computed once per (path, size, mtime) and cached in index.db. */
  modelContentHash(path: string, options?: { onProgress?: HashProgress; signal?: AbortSignal }): Promise<Result<string>>;

  /**
   * The content hash the store last computed for the model file at `path`, without hashing it:
   * the cached hash of its (path, size, mtime), or null when there is none (the file was never
   * loaded with persistence on, or changed since). When the file is gone, the hash last cached
   * for its path, so a model's KV can still be forgotten after its file was deleted.
   */
  knownModelHash(path: string): Promise<Result<string | null>>;
  /**
   * Records that `fingerprint` was computed from the model whose content hash is `modelHash`, so
   * `modelUsage` and `forgetModel` find the manifests saved under it. Idempotent; a fingerprint
   * already recorded costs one indexed read.
   */
  recordFingerprint(fingerprint: string, modelHash: string): Result<void>;
  /** The model hash `fingerprint` was recorded for, or null. */
  fingerprintModel(fingerprint: string): Result<string | null>;
  /** The manifests saved under the recorded fingerprints of `modelHash`, and their bytes. */
  modelUsage(modelHash: string): Result<ModelUsage>;
  /**
   * Deletes every manifest saved under a recorded fingerprint of `modelHash`, and the chunks no
   * other manifest references (chunk keys chain from their fingerprint, so another model's
   * manifests never share them), in one transaction under the store's lock.
   */
  forgetModel(modelHash: string): Promise<Result<ForgetModelResult>>;

  /** The longest stored prefix of `tokens` over all manifests. Pass tokens without the last one to leave a token to evaluate. */
  findLongestPrefix(fingerprint: string, tokens: ArrayLike<number>): Result<PrefixMatch>;
  /** Indices of the full chunks of `tokens` the store lacks (absent or known corrupt). */
  missingChunks(fingerprint: string, tokens: ArrayLike<number>): Result<number[]>;
  /** Reads and verifies one chunk. A fault is recorded (the chunk and what follows it stop matching). */
  readChunk(key: string): Promise<ChunkResult<ChunkData>>;
  /**
   * Records that a chunk which passed verification is unusable all the same (its payload does not
   * decode: a bug, or a file forged with a valid checksum): it is handled like a damaged file, so
   * lookups stop before it and the next save rewrites it.
   */
  recordDamage(key: string, detail: string): Promise<ChunkError>;
  /** Reads chunks in order (a few in parallel) and stops at the first fault: the verified prefix and that fault. */
  readChunks(keys: readonly string[]): Promise<{ chunks: ChunkData[]; error: ChunkError | null }>;
  /**
   * Reads and verifies `keys` in order and hands each chunk to `visit` before reading the next:
   * one buffer is reused for all of them, so a chunk's views are valid only during its call.
   * Stops at the first fault (recorded as `readChunk` records it) or when `visit` returns false.
   */
  forEachChunk(keys: readonly string[], visit: (chunk: ChunkData, index: number) => boolean): Promise<{ count: number; bytes: number; error: ChunkError | null }>;

  /**
   * Reads raw chunks straight into their places in a state image, in parallel, verified as
   * `readChunk` verifies (store-scatter.ts). `done: false` when that does not apply or anything
   * is off: then read the usual way, which reports faults. Never records damage itself.
   */
  scatterChunks(keys: readonly string[], request: ScatterRequest): Promise<ScatterResult>;

  /** Creates or replaces a manifest, writing only the chunks the store lacks. Call enforceBudget() after. */
  putManifest(id: string, input: ManifestInput): Promise<Result<PutManifestResult>>;
  getManifest(id: string): Result<Manifest>;
  /** Ids of the manifests whose id starts with `prefix` (a chat's branches), sorted. */
  manifestIds(prefix: string): Result<string[]>;
  /**
   * The manifest's tail tokens and verified payload. A damaged payload (a missing, short or
   * altered file) is never returned: it is dropped, keeping the tail's tokens, and the call
   * fails, so the chat re-reads those tokens.
   *
   * The payload may be a view into a buffer the store reuses for every tail it reads (a fresh
   * buffer of tens of MB costs more to fault in than the read): it is valid until the next
   * `readTail` of this store. Copy it to keep it longer, or read no other tail while using it
   * (the engine restores one chat at a time, under its lock).
   */
  readTail(id: string): Result<TailData>;
  deleteManifest(id: string): Promise<Result<DeleteResult>>;
  /** Marks a manifest (and its chunks) used now, for LRU eviction. */
  touch(id: string): Promise<Result<void>>;
  /**
   * Stored KV per chat (manifest ids `<chatId>/<branchId>`; an id without a slash is its own
   * chat): the `limit` largest chats, or the one chat `chatId` (empty when it has nothing stored).
   * Largest first.
   */
  chatUsage(options: { readonly limit: number } | { readonly chatId: string }): Result<ChatUsage[]>;

  /** Evicts least-recently-used chats (their unshared suffix first) until within the budget. */
  enforceBudget(): Promise<Result<EvictionReport>>;
  /** Removes unreferenced chunks, orphan chunk files and stale temp files. */
  gc(): Promise<Result<GcReport>>;
  /** Verifies the store. `verify: false` checks file sizes instead of reading chunks and tails; `repair: true` also fixes what it finds. */
  checkIntegrity(options?: { verify?: boolean; repair?: boolean }): Promise<Result<IntegrityReport>>;
  stats(): Promise<Result<KvStoreStats>>;

  /** Waits for running mutations, then closes the index. Later calls fail with INTERNAL. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
