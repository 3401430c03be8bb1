/**
 * The KV store (issue 3): content-addressed, deduplicated KV chunks on disk, with one manifest per
 * chat branch in SQLite. It runs in the engine process and knows nothing of llama.cpp: a chunk is
 * opaque payload bytes plus its tokens (the codec, codec.ts, makes and reads the payloads).
 *
 * Layout under `root`:
 *   lock, lock.owner                 the engine process using the store (root-lock.ts)
 *   index.db (+ -wal, -shm)          manifests, chunk refcounts, model hashes (store-db.ts)
 *   index.db.damaged (+ -wal, -shm)  the last index that could not be read, moved aside at open
 *   chunks/<key[0..2]>/<key>.kvc     one file per chunk key (chunk-file.ts)
 *   chunks/<key[0..2]>/.<key>.*.tmp  a chunk being written; stale ones are swept at open and by gc()
 *
 * Invariants:
 * - A chunk file is visible under its name only when complete and fsynced (temp + rename), and it
 *   is verified (magic, version, key, lengths, checksum, key = sha256(parent ‖ tokens)) before any
 *   byte is returned.
 * - Payloads are opaque bytes here, stored as given; only their decoded size is read (frame.ts
 *   `decodedSize`, for `rawBytes`), never their contents.
 * - Files are written before the commit that references them and removed after the commit that
 *   drops them, so the index never references a file that was not written; a crash in between
 *   leaves orphan files, which gc() removes.
 * - chunks.refcount = the number of manifests listing the key, maintained in the same transaction
 *   as every change to manifest_chunks. A chunk is deleted only at refcount 0, so no eviction or
 *   GC removes a chunk that a live manifest needs. Along a hash chain refcounts never increase (a
 *   manifest holding chunk i holds chunks 0..i-1), so a chat's unshared chunks are its suffix.
 * - Every mutation runs under one FIFO lock (engine/base/lock.ts): a save, an eviction and a GC never
 *   interleave. Reads (findLongestPrefix, readChunk) take no lock: renames are atomic, and a file
 *   evicted under a reader is a verified `missing`, i.e. a cache miss.
 * - One process writes a root (root-lock.ts, issue 7). A store opened while another process holds
 *   the root waits for it a while (`lockWaitMs`), then runs read-only: restores work, writes are
 *   refused with persistence paused (BUSY, naming the other process), and it takes the root over
 *   by itself once the other process has exited. Holding the root is also what makes the sweep at
 *   open safe: every temp file and unindexed chunk file then belongs to a process that is gone.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { crc32 } from 'node:zlib';
import { err, hearthError, ok, errorText } from '../contract/index.ts';
import type { HearthError, Result } from '../contract/index.ts';
import type { ChunkData, ChunkFault } from './chunk-file.ts';
import { chunkHeaderBytes, chunkPath, chunkSuffix, chunksDir, readChunkFile, tempSuffix, writeChunkFile } from './chunk-file.ts';
import type { HashProgress } from './fingerprint.ts';
import { chunkKeys, firstBadToken, hashFile, isDigest, tokenBytes, tokensFromBytes } from './fingerprint.ts';
import { decodedSize } from './frame.ts';
import type { CodecKernels } from './kernels.ts';
import { loadKernels } from './kernels-load.ts';
import type { Manifest, ManifestInput, ManifestRow, PrefixMatch, TailData, TailMatch } from './manifest.ts';
import { commonPrefix, toManifest } from './manifest.ts';
import { openIndex, transaction } from './store-db.ts';
import type { StoreFs } from './store-fs.ts';
import { errnoOf, isDiskFull, nodeFs, ReusableBuffer, toHearthError } from './store-fs.ts';
import { Lock } from '../base/lock.ts';
import type { RootLock } from './root-lock.ts';
import { describeBusy, lockRoot, tryLockRoot } from './root-lock.ts';

export type { ChunkData, ChunkFault } from './chunk-file.ts';
export type { Manifest, ManifestInput, PrefixMatch, TailData, TailMatch } from './manifest.ts';
export type { StoreFs, StoreFileHandle } from './store-fs.ts';

/** The default chunk size in tokens (issue 3; LMCache uses 256 too). */
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

const defaultLog: StoreLog = (level, message) => {
  if (level !== 'info') console.error(`Hearth: ${message}`);
};

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
  /** The tail payload's bytes (stored in index.db). */
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
  /** Chunk files on disk that the index does not know (a crash between rename and commit). */
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
  /** Chunk files (`.kvc`) the index does not know, as paths. */
  readonly orphanFiles: readonly string[];
  /** Leftover temp files, as paths. */
  readonly tempFiles: readonly string[];
  readonly refcountMismatches: readonly { readonly key: string; readonly stored: number; readonly actual: number }[];
  /** Manifest entries whose chunk is not in the index at all. */
  readonly danglingReferences: readonly { readonly manifestId: string; readonly index: number; readonly key: string }[];
  /** Manifests whose row disagrees with their chunk list (count, head, or a gap in indices). */
  readonly inconsistentManifests: readonly string[];
  /** Manifests whose tail payload fails its checksum. */
  readonly corruptTails: readonly string[];
  /** True when nothing above was found. */
  readonly ok: boolean;
  /** True when `repair` was asked for and applied. */
  readonly repaired: boolean;
}

export interface KvStoreStats {
  /** Physical bytes: chunk files plus index.db and its WAL (tail payloads live in index.db). */
  readonly bytesOnDisk: number;
  /** Bytes counted against the budget: chunk files plus tail payloads. */
  readonly storedBytes: number;
  /** What the manifests reference, a shared chunk counted once per manifest that uses it. */
  readonly logicalBytes: number;
  /**
   * The KV the stored payloads decode to (chunk and tail payloads at their decoded size, frame.ts),
   * so rawBytes / storedBytes is the on-disk compression ratio (issue 6): just under 1 with
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

/** The store. Every method returns data, never throws (except on programmer misuse of types). */
export interface KvStore {
  readonly root: string;
  readonly chunkTokens: number;
  readonly budget: number;
  /** Non-null while writes fail; the UI shows "persistence paused" with its reason. */
  readonly persistencePaused: PersistencePause | null;
  /** Called whenever `persistencePaused` changes. Returns the unsubscribe function. */
  onDidChangePersistence(listener: (pause: PersistencePause | null) => void): () => void;
  setBudget(bytes: number): Result<void>;

  /** The sha256 of a model file, computed once per (path, size, mtime) and cached in index.db. */
  modelContentHash(path: string, options?: { onProgress?: HashProgress; signal?: AbortSignal }): Promise<Result<string>>;

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

  /** Creates or replaces a manifest, writing only the chunks the store lacks. Call enforceBudget() after. */
  putManifest(id: string, input: ManifestInput): Promise<Result<PutManifestResult>>;
  getManifest(id: string): Result<Manifest>;
  /** Ids of the manifests whose id starts with `prefix` (a chat's branches), sorted. */
  manifestIds(prefix: string): Result<string[]>;
  /** The manifest's tail tokens and verified payload. */
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

const maxIdLength = 1024;
/** The longest stretch `readChunks` and `forEachChunk` keep the event loop busy before yielding once. */
const readSliceMs = 20;
const faultText: Readonly<Record<ChunkFault, string>> = {
  missing: 'missing',
  truncated: 'truncated',
  magic: 'not a chunk file',
  version: 'from another format version',
  header: 'damaged (header checksum)',
  key: 'misplaced (key mismatch)',
  length: 'longer than its header says',
  checksum: 'damaged (checksum)',
  payload: 'undecodable',
  io: 'unreadable',
};

function chunkError(key: string, reason: ChunkFault, detail: string): ChunkError {
  const base = hearthError(
    reason === 'missing' ? 'NOT_FOUND' : 'INTERNAL',
    `KV chunk ${key.slice(0, 12)}… is ${faultText[reason]}: ${detail}.`,
    reason === 'io' ? undefined : 'The chat re-reads its history from this point.',
  );
  return { ...base, reason, key };
}

/** A write failure as data: DISK_FULL for no space (ENOSPC, EDQUOT, SQLITE_FULL), else INTERNAL. */
function writeError(error: unknown, context: string): HearthError {
  const e = toHearthError(error, context);
  if (e.code === 'DISK_FULL' || e.code === 'INTERNAL') return e;
  return hearthError('INTERNAL', e.message, e.hint);
}

function checkId(id: unknown): string | null {
  if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength) return `a manifest id is a string of 1 to ${maxIdLength} characters`;
  return null;
}

function checkTokens(tokens: ArrayLike<number>): string | null {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') return 'tokens is not an array';
  const bad = firstBadToken(tokens);
  return bad === -1 ? null : `token ${bad} is not an int32 token id`;
}

interface ChunkRow {
  key: string;
  parent: string;
  tokens: number;
  bytes: number;
  refcount: number;
  corrupt: string | null;
}

/**
 * Opens (creating if needed) the store at `options.root`. An unwritable directory is a clear
 * INTERNAL error here, at start; a full disk is not an error (restores still work) but starts with
 * persistence paused, and so does a root another process holds (after waiting `lockWaitMs`). An
 * index.db SQLite cannot read is moved aside and the store starts empty (it is only a cache);
 * debris of interrupted writes (temp files, chunk files the index never committed) is swept.
 */
export async function openKvStore(options: KvStoreOptions): Promise<Result<KvStore>> {
  const fs = options.fs ?? nodeFs;
  const log = options.log ?? defaultLog;
  const now = options.now ?? Date.now;
  const chunkTokens = options.chunkTokens ?? defaultChunkTokens;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) return err('INVALID_INPUT', 'The KV chunk size must be a positive whole number of tokens.');
  if (!(Number.isFinite(options.budgetBytes) && options.budgetBytes >= 0)) return err('INVALID_INPUT', 'The KV store budget must be a non-negative number of bytes.');
  const root = resolve(options.root);
  const unwritable = (error: unknown): Result<KvStore> =>
    err(
      'INTERNAL',
      `The KV store directory ${root} is not usable: ${errorText(error)}.`,
      'Choose a data directory Hearth can write to, or fix its permissions.',
    );
  let pause: PersistencePause | null = null;
  try {
    await fs.mkdir(root);
  } catch (error) {
    return unwritable(error);
  }
  const attempt = await lockRoot(root, { waitMs: options.lockWaitMs ?? defaultLockWaitMs });
  let rootLock: RootLock | null = null;
  if (attempt.status === 'held') rootLock = attempt.lock;
  else if (attempt.status === 'busy') pause = { reason: lockedOut(root, attempt.owner), since: now() };
  else log('warn', `The KV store at ${root} cannot be locked (${attempt.error}); it is used without a lock, so no other Hearth process may use it at the same time.`);
  const owner = attempt.status !== 'busy';
  const fail = (result: Result<KvStore>): Result<KvStore> => {
    rootLock?.release();
    return result;
  };
  if (owner) {
    try {
      await fs.mkdir(chunksDir(root));
      const probe = join(chunksDir(root), `.probe-${process.pid}-${randomBytes(4).toString('hex')}${tempSuffix}`);
      const handle = await fs.open(probe, 'wx', 0o644);
      try {
        await handle.write(new Uint8Array([0]), 0, 1, 0);
        await handle.sync();
      } catch (error) {
        if (!isDiskFull(error)) throw error;
        pause = { reason: writeError(error, 'The KV store cannot write'), since: now() };
      } finally {
        await handle.close().catch(() => undefined);
        await fs.unlink(probe).catch(() => undefined);
      }
    } catch (error) {
      if (isDiskFull(error)) {
        pause = { reason: writeError(error, 'The KV store cannot write'), since: now() };
      } else {
        return fail(unwritable(error));
      }
    }
  }
  const indexFile = join(root, 'index.db');
  let db: DatabaseSync;
  try {
    db = openIndex(indexFile);
  } catch (error) {
    // Only the holder may replace the index: a locked-out process leaves it to the holder.
    if (!owner || !isUnreadableDatabase(error)) return fail(unwritable(error));
    const moved = await moveAside(fs, indexFile);
    if (!moved.ok) return fail(unwritable(moved.error));
    log(
      'warn',
      `The KV index ${indexFile} could not be read (${errorText(error)}): moved aside to ${indexFile}.damaged and started empty; its chunk files are removed, and each chat re-reads its history once.`,
    );
    try {
      db = openIndex(indexFile);
    } catch (again) {
      return fail(unwritable(again));
    }
  }
  const kernels = options.kernels ?? defaultKernels();
  const store = new DiskKvStore({
    root,
    db,
    fs,
    chunkTokens,
    budget: options.budgetBytes,
    now,
    readConcurrency: options.readConcurrency ?? 8,
    pause,
    kernels,
    log,
    rootLock,
    owner,
    lockRetryMs: options.lockRetryMs ?? 2000,
  });
  if (owner) store.sweepAtOpen();
  return ok(store);
}

/** The pause of a store whose root another process holds. */
function lockedOut(root: string, owner: Parameters<typeof describeBusy>[1]): HearthError {
  const who = describeBusy(root, owner);
  return hearthError(
    'BUSY',
    `${who.charAt(0).toUpperCase()}${who.slice(1)}, so this one does not save chats' KV to disk until it exits.`,
    'Close the other Hearth window or process; saving resumes by itself once it has exited.',
  );
}

/** SQLITE_NOTADB or SQLITE_CORRUPT: the file is not (or no longer) a database SQLite can read. */
function isUnreadableDatabase(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('errcode' in error)) return false;
  const code = (error as { errcode: unknown }).errcode;
  return typeof code === 'number' && ((code & 0xff) === 26 || (code & 0xff) === 11);
}

/**
 * Renames `file` and its WAL and shared-memory files to `<file>.damaged…`, replacing an earlier
 * damaged copy (one is kept, to look at; it is only cache). The WAL must go with it: SQLite would
 * replay a leftover WAL into the new, empty file.
 */
async function moveAside(fs: StoreFs, file: string): Promise<Result<void>> {
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      await fs.rename(`${file}${suffix}`, `${file}.damaged${suffix}`);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') return { ok: false, error: toHearthError(error, `Could not move the damaged KV index ${file}${suffix} aside`) };
      if (suffix !== '') await fs.unlink(`${file}.damaged${suffix}`).catch(() => undefined);
    }
  }
  return ok(undefined);
}

/** mkdir that ignores failures (a later write reports them). */
async function fsMkdirQuiet(fs: StoreFs, dir: string): Promise<void> {
  await fs.mkdir(dir).catch(() => undefined);
}

/** The kernels a store uses unless told otherwise: the process's choice (loaded once). */
function defaultKernels(): CodecKernels {
  return loadKernels().kernels;
}

/** A payload's decoded size (frame.ts), or its own size for bytes that are not a KV payload. */
function rawSize(payload: Uint8Array): number {
  const size = decodedSize(payload);
  return size.ok ? size.value : payload.byteLength;
}

interface DiskKvStoreInit {
  readonly root: string;
  readonly db: DatabaseSync;
  readonly fs: StoreFs;
  readonly chunkTokens: number;
  readonly budget: number;
  readonly now: () => number;
  readonly readConcurrency: number;
  readonly pause: PersistencePause | null;
  readonly kernels: CodecKernels;
  readonly log: StoreLog;
  /** The root's lock, when this store holds it (root-lock.ts). */
  readonly rootLock: RootLock | null;
  /** False while another process holds the root: the store is read-only until it takes it over. */
  readonly owner: boolean;
  readonly lockRetryMs: number;
}

class DiskKvStore implements KvStore {
  readonly root: string;
  readonly chunkTokens: number;
  readonly #db: DatabaseSync;
  readonly #fs: StoreFs;
  readonly #now: () => number;
  readonly #readConcurrency: number;
  readonly #kernels: CodecKernels;
  readonly #log: StoreLog;
  readonly #lock = new Lock('kv-store');
  readonly #statements = new Map<string, StatementSync>();
  readonly #listeners = new Set<(pause: PersistencePause | null) => void>();
  /** Model hashes in progress, so two callers never hash the same file at once. */
  readonly #hashing = new Map<string, Promise<Result<string>>>();
  /** `forEachChunk`'s read buffer. */
  readonly #readBuffer = new ReusableBuffer();
  #budget: number;
  #pause: PersistencePause | null;
  #closed = false;
  #rootLock: RootLock | null;
  #owner: boolean;
  /** While locked out: the timer that tries to take the root over. */
  #claimTimer: NodeJS.Timeout | null = null;

  constructor(init: DiskKvStoreInit) {
    this.root = init.root;
    this.#db = init.db;
    this.#fs = init.fs;
    this.chunkTokens = init.chunkTokens;
    this.#budget = init.budget;
    this.#now = init.now;
    this.#readConcurrency = Math.max(1, Math.floor(init.readConcurrency));
    this.#pause = init.pause;
    this.#kernels = init.kernels;
    this.#log = init.log;
    this.#rootLock = init.rootLock;
    this.#owner = init.owner;
    if (!this.#owner) {
      this.#claimTimer = setInterval(() => {
        void this.#lock.run(() => this.#claim()).catch(() => undefined);
      }, Math.max(10, init.lockRetryMs));
      this.#claimTimer.unref();
    }
  }

  get budget(): number {
    return this.#budget;
  }

  get persistencePaused(): PersistencePause | null {
    return this.#pause;
  }

  onDidChangePersistence(listener: (pause: PersistencePause | null) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  setBudget(bytes: number): Result<void> {
    if (!(Number.isFinite(bytes) && bytes >= 0)) return err('INVALID_INPUT', 'The KV store budget must be a non-negative number of bytes.');
    this.#budget = bytes;
    return ok(undefined);
  }

  // ---- plumbing -------------------------------------------------------------------------------

  #sql(text: string): StatementSync {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #closedError<T>(): Result<T> {
    return err('INTERNAL', 'The KV store is closed.');
  }

  /**
   * Runs a task under the lock; a throw becomes INTERNAL (a bug or an I/O failure). A task that
   * writes (`writes`, the default) first needs the root (`#claim`): while another process holds
   * it, the task is refused with the pause's BUSY reason.
   */
  #locked<T>(context: string, task: () => Promise<Result<T>> | Result<T>, options: { readonly writes?: boolean } = {}): Promise<Result<T>> {
    return this.#lock.run(async () => {
      if (this.#closed) return this.#closedError<T>();
      try {
        if (options.writes !== false) {
          const busy = await this.#claim();
          if (busy !== null) return { ok: false, error: busy } as const;
        }
        return await task();
      } catch (error) {
        const e = toHearthError(error, context);
        return { ok: false, error: e } as const;
      }
    });
  }

  /**
   * Under the lock: makes sure this store holds its root, taking it over when the process that
   * held it has exited (then saving resumes, and that process's debris is swept). Returns the
   * reason writes are refused, or null.
   */
  async #claim(): Promise<HearthError | null> {
    if (this.#owner || this.#closed) return null;
    const attempt = tryLockRoot(this.root);
    if (attempt.status === 'busy') return this.#pause?.reason.code === 'BUSY' ? this.#pause.reason : lockedOut(this.root, attempt.owner);
    if (attempt.status === 'held') this.#rootLock = attempt.lock;
    else this.#log('warn', `The KV store at ${this.root} cannot be locked any more (${attempt.error}); it is used without a lock.`);
    this.#owner = true;
    if (this.#claimTimer !== null) clearInterval(this.#claimTimer);
    this.#claimTimer = null;
    this.#log('info', `The other process using the KV store at ${this.root} has exited: this one saves chats' KV again.`);
    if (this.#pause?.reason.code === 'BUSY') this.#setPause(null);
    await fsMkdirQuiet(this.#fs, chunksDir(this.root));
    await this.#sweepAndLog();
    return null;
  }

  /**
   * Starts the check at open: what an interrupted run left is repaired before any later mutation
   * (it runs under the lock). A killed process leaves temp files and chunk files it never
   * committed; a power cut can also lose a commit (synchronous=NORMAL, store-db.ts) whose
   * chunk files were already removed, leaving manifests that list missing files. Sizes are
   * checked, not contents (a stat per chunk): damaged contents are caught when read.
   */
  sweepAtOpen(): void {
    void this.#lock.run(async () => {
      if (!this.#closed) await this.#sweepAndLog();
    });
  }

  async #sweepAndLog(): Promise<void> {
    try {
      const found = await this.#check(false, true);
      if (found.ok) return;
      const parts = [
        [found.tempFiles.length, 'temp file(s)'],
        [found.orphanFiles.length, 'unindexed chunk file(s)'],
        [found.missing.length, 'missing chunk file(s)'],
        [found.corrupt.length, 'chunk file(s) of the wrong size'],
        [found.knownCorrupt.length, 'chunk(s) found damaged earlier'],
        [found.danglingReferences.length + found.inconsistentManifests.length + found.refcountMismatches.length + found.corruptTails.length, 'index inconsistencies'],
      ]
        .filter(([n]) => (n as number) > 0)
        .map(([n, what]) => `${n} ${what}`);
      this.#log('info', `The KV store repaired what an interrupted run left: ${parts.join(', ')}; chats re-read what was lost.`);
    } catch (error) {
      this.#log('warn', `The KV store could not check itself at open: ${errorText(error)}.`);
    }
  }

  /** A sync read; a throw becomes INTERNAL. */
  #read<T>(context: string, task: () => Result<T>): Result<T> {
    if (this.#closed) return this.#closedError<T>();
    try {
      return task();
    } catch (error) {
      return { ok: false, error: toHearthError(error, context) };
    }
  }

  #setPause(pause: PersistencePause | null): void {
    if (pause === null && this.#pause === null) return;
    this.#pause = pause;
    for (const listener of [...this.#listeners]) {
      try {
        listener(pause);
      } catch (error) {
        console.error('Hearth: a KV store listener threw:', error);
      }
    }
  }

  #paused<T>(error: unknown, context: string): Result<T> {
    const reason = writeError(error, context);
    this.#setPause({ reason, since: this.#now() });
    return { ok: false, error: reason };
  }

  /** The rows of `keys` that exist, in one query (`columns`: those to fetch). Throws on SQLite errors. */
  #chunkRows<C extends 'corrupt' | 'bytes'>(keys: readonly string[], columns: C): Map<string, Pick<ChunkRow, C>> {
    const rows = this.#sql(`SELECT key, ${columns} FROM chunks WHERE key IN (SELECT value FROM json_each(?))`).all(JSON.stringify(keys)) as unknown as (Pick<ChunkRow, C> & { key: string })[];
    return new Map(rows.map((row) => [row.key, row]));
  }

  #chunkRow(key: string): ChunkRow | undefined {
    return this.#sql('SELECT key, parent, tokens, bytes, refcount, corrupt FROM chunks WHERE key = ?').get(key) as ChunkRow | undefined;
  }

  async #fileSize(path: string): Promise<number | null> {
    try {
      return (await this.#fs.stat(path)).size;
    } catch {
      return null;
    }
  }

  /** Removes chunk files after the commit that dropped them; a failure leaves an orphan for gc(). */
  async #unlinkChunks(keys: Iterable<string>): Promise<void> {
    for (const key of keys) await this.#fs.unlink(chunkPath(this.root, key)).catch(() => undefined);
  }

  /**
   * In a transaction: deletes chunk rows nobody references and returns them (files go after
   * commit). The NOT EXISTS re-checks the refcount against manifest_chunks itself, so even a wrong
   * refcount could never make GC remove a chunk that a manifest lists.
   */
  #collectUnreferenced(): { key: string; bytes: number }[] {
    const unreferenced = 'refcount <= 0 AND NOT EXISTS (SELECT 1 FROM manifest_chunks mc WHERE mc.key = chunks.key)';
    const rows = this.#sql(`SELECT key, bytes FROM chunks WHERE ${unreferenced}`).all() as unknown as { key: string; bytes: number }[];
    if (rows.length > 0) this.#sql(`DELETE FROM chunks WHERE ${unreferenced}`).run();
    return rows;
  }

  /** In a transaction: cuts manifest `id` to its first `index` chunks and drops its tail (it continued the cut chain). */
  #truncate(id: string, index: number): 'truncated' | 'deleted' | 'absent' {
    const manifest = this.#sql('SELECT chunk_tokens FROM manifests WHERE id = ?').get(id) as { chunk_tokens: number } | undefined;
    if (!manifest) return 'absent';
    const dropped = this.#sql('SELECT key FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').all(id, index) as unknown as { key: string }[];
    for (const { key } of dropped) this.#sql('UPDATE chunks SET refcount = refcount - 1 WHERE key = ?').run(key);
    this.#sql('DELETE FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').run(id, index);
    if (index === 0) {
      // Nothing left to restore from: a manifest with neither chunks nor a tail payload is noise.
      this.#sql('DELETE FROM manifests WHERE id = ?').run(id);
      return 'deleted';
    }
    const head = this.#sql('SELECT key FROM manifest_chunks WHERE manifest_id = ? AND idx = ?').get(id, index - 1) as { key: string };
    this.#sql(
      `UPDATE manifests SET chunk_count = ?, head = ?, tail_tokens = x'', tail_payload = NULL, tail_crc = NULL, total_tokens = ?
       WHERE id = ?`,
    ).run(index, head.key, index * manifest.chunk_tokens, id);
    return 'truncated';
  }

  /**
   * Under the lock: a chunk found damaged at read time stops being used. Every manifest that
   * lists it is cut just before it (its later chunks were computed on top of it, and its tail
   * too), and chunks that nobody references any more are removed with their files.
   */
  async #invalidate(key: string): Promise<void> {
    const row = this.#chunkRow(key);
    if (!row || row.corrupt === null) return; // rewritten (repaired) or collected meanwhile
    const freed = transaction(this.#db, () => {
      const users = this.#sql('SELECT manifest_id, idx FROM manifest_chunks WHERE key = ?').all(key) as unknown as { manifest_id: string; idx: number }[];
      for (const user of users) this.#truncate(user.manifest_id, user.idx);
      return this.#collectUnreferenced();
    });
    await this.#unlinkChunks(freed.map((r) => r.key));
  }

  /** Records a fault seen at read time: at once (so lookups stop matching), then invalidates under the lock. */
  async #recordFault(key: string, reason: ChunkFault): Promise<void> {
    if (this.#closed) return;
    this.#sql('UPDATE chunks SET corrupt = ? WHERE key = ?').run(reason, key);
    await this.#lock
      .run(async () => {
        // A store locked out of its root only marks the chunk (lookups stop before it); the
        // holder cuts the manifests, and a save rewrites the file.
        if (!this.#closed && (await this.#claim()) === null) await this.#invalidate(key);
      })
      .catch((error: unknown) => console.error('Hearth: could not invalidate a damaged KV chunk:', error));
  }

  // ---- model hash -----------------------------------------------------------------------------

  async modelContentHash(path: string, options: { onProgress?: HashProgress; signal?: AbortSignal } = {}): Promise<Result<string>> {
    if (this.#closed) return this.#closedError();
    const file = resolve(path);
    let stat;
    try {
      stat = await this.#fs.stat(file);
    } catch (error) {
      return { ok: false, error: toHearthError(error, `Could not read the model file ${file}`) };
    }
    if (!stat.isFile()) return err('NOT_FOUND', `${file} is not a file.`);
    const cached = this.#read('Could not read the model hash cache', () => {
      const row = this.#sql('SELECT hash FROM model_hashes WHERE path = ? AND size = ? AND mtime_ms = ?').get(file, stat.size, stat.mtimeMs) as
        | { hash: string }
        | undefined;
      return ok(row?.hash ?? null);
    });
    if (!cached.ok) return cached;
    if (cached.value !== null) return ok(cached.value);
    const id = `${file}\0${stat.size}\0${stat.mtimeMs}`;
    let running = this.#hashing.get(id);
    if (!running) {
      running = this.#hashModel(file, stat.size, stat.mtimeMs, options).finally(() => this.#hashing.delete(id));
      this.#hashing.set(id, running);
    }
    return running;
  }

  async #hashModel(file: string, size: number, mtimeMs: number, options: { onProgress?: HashProgress; signal?: AbortSignal }): Promise<Result<string>> {
    const hashed = await hashFile(this.#fs, file, options);
    if (!hashed.ok) return hashed;
    let after;
    try {
      after = await this.#fs.stat(file);
    } catch (error) {
      return { ok: false, error: toHearthError(error, `Could not read the model file ${file}`) };
    }
    if (after.size !== size || after.mtimeMs !== mtimeMs || hashed.value.size !== size) {
      return err('INTERNAL', `The model file ${file} changed while it was being hashed.`, 'Wait for the file to finish copying, then load it again.');
    }
    return this.#read('Could not store the model hash', () => {
      // A cache row per path: a changed file replaces its old hash instead of piling up.
      this.#sql(
        `INSERT INTO model_hashes (path, size, mtime_ms, hash, computed_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, hash = excluded.hash, computed_at = excluded.computed_at`,
      ).run(file, size, mtimeMs, hashed.value.hash, this.#now());
      return ok(hashed.value.hash);
    });
  }

  // ---- lookups --------------------------------------------------------------------------------

  findLongestPrefix(fingerprint: string, tokens: ArrayLike<number>): Result<PrefixMatch> {
    return this.#read('Could not look up the KV store', () => {
      if (!isDigest(fingerprint)) return err('INVALID_INPUT', 'The fingerprint is not a sha256 hex digest.');
      const bad = checkTokens(tokens);
      if (bad) return err('INVALID_INPUT', `Invalid tokens: ${bad}.`);
      const size = this.chunkTokens;
      const chunks: string[] = [];
      let head = fingerprint;
      let stop: PrefixMatch['stop'] = 'end';
      // Every key first (hashing is cheap), then one query for all of them: a query per chunk
      // cost ~1.5 ms of a 16k-token restore whose budget is a few ms over the read time.
      const keys = chunkKeys(fingerprint, tokens, size);
      const rows = this.#chunkRows(keys, 'corrupt');
      for (const key of keys) {
        const row = rows.get(key);
        if (!row) {
          // A key some manifest lists but the index lacks is damage (an index rolled back or
          // edited behind the store's back), not a chunk never stored: the caller says so.
          stop = this.#sql('SELECT 1 FROM manifest_chunks WHERE key = ? LIMIT 1').get(key) ? 'dangling' : 'absent';
          break;
        }
        if (row.corrupt !== null) {
          stop = 'corrupt';
          break;
        }
        chunks.push(key);
        head = key;
      }
      const chunkedTokens = chunks.length * size;
      const tail = this.#bestTail(fingerprint, head, tokens, chunkedTokens);
      return ok({ chunks, chunkedTokens, stop, tail, tokens: chunkedTokens + (tail?.tokens ?? 0) });
    });
  }

  /** Among the tails that continue `head` (any manifest), the one sharing the most next tokens. */
  #bestTail(fingerprint: string, head: string, tokens: ArrayLike<number>, start: number): TailMatch | null {
    if (start >= tokens.length) return null;
    const rows = this.#sql(
      `SELECT id, tail_tokens, length(tail_payload) AS bytes FROM manifests
       WHERE head = ? AND fingerprint = ? AND tail_payload IS NOT NULL
       ORDER BY last_used DESC`,
    ).all(head, fingerprint) as unknown as { id: string; tail_tokens: Uint8Array; bytes: number }[];
    let best: TailMatch | null = null;
    for (const row of rows) {
      const stored = tokensFromBytes(row.tail_tokens);
      const matched = commonPrefix(stored, tokens, start);
      if (matched > 0 && (best === null || matched > best.tokens)) {
        best = { manifestId: row.id, tokens: matched, storedTokens: stored.length, bytes: row.bytes };
      }
    }
    return best;
  }

  missingChunks(fingerprint: string, tokens: ArrayLike<number>): Result<number[]> {
    return this.#read('Could not look up the KV store', () => {
      if (!isDigest(fingerprint)) return err('INVALID_INPUT', 'The fingerprint is not a sha256 hex digest.');
      const bad = checkTokens(tokens);
      if (bad) return err('INVALID_INPUT', `Invalid tokens: ${bad}.`);
      const missing: number[] = [];
      chunkKeys(fingerprint, tokens, this.chunkTokens).forEach((key, index) => {
        const row = this.#sql('SELECT corrupt FROM chunks WHERE key = ?').get(key) as { corrupt: string | null } | undefined;
        if (!row || row.corrupt !== null) missing.push(index);
      });
      return ok(missing);
    });
  }

  readChunk(key: string): Promise<ChunkResult<ChunkData>> {
    return this.#readChunk(key);
  }

  async forEachChunk(keys: readonly string[], visit: (chunk: ChunkData, index: number) => boolean): Promise<{ count: number; bytes: number; error: ChunkError | null }> {
    // Sizes first, so that one buffer (kept between restores: ReusableBuffer) holds every file.
    let indexed: Map<string, Pick<ChunkRow, 'bytes'>> = new Map();
    try {
      if (!this.#closed) indexed = this.#chunkRows(keys.filter(isDigest), 'bytes');
    } catch {
      // the index is unreadable: verify by the files alone
    }
    const sizes = keys.map((key) => indexed.get(key)?.bytes);
    const largest = sizes.reduce<number>((max, size) => Math.max(max, size ?? 0), 0);
    const reuse = largest > 0 ? this.#readBuffer.get(largest + 1) : undefined;
    let bytes = 0;
    let sliceStart = performance.now();
    for (const [index, key] of keys.entries()) {
      const result = await this.#readChunk(key, reuse, sizes[index]);
      if (!result.ok) return { count: index, bytes, error: result.error };
      bytes += result.value.bytes;
      if (!visit(result.value, index)) return { count: index, bytes, error: null };
      if (performance.now() - sliceStart > readSliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    return { count: keys.length, bytes, error: null };
  }

  /** The size index.db records for chunk `key`; undefined when it has none or cannot say. */
  #indexedBytes(key: string): number | undefined {
    if (this.#closed || !isDigest(key)) return undefined;
    try {
      return this.#chunkRow(key)?.bytes;
    } catch {
      // the index is unreadable: verify by the file alone
      return undefined;
    }
  }

  /** `indexed`: the chunk's size from the index when the caller looked it up (`#indexedBytes`). */
  async #readChunk(key: string, reuse?: Buffer, indexed?: number): Promise<ChunkResult<ChunkData>> {
    if (this.#closed) return { ok: false, error: { ...hearthError('INTERNAL', 'The KV store is closed.'), reason: 'io', key } };
    if (!isDigest(key)) return { ok: false, error: chunkError(String(key), 'missing', 'not a chunk key') };
    const expected = indexed ?? this.#indexedBytes(key);
    const verdict = await readChunkFile(this.#fs, this.root, key, this.#kernels, expected, reuse);
    if (verdict.ok) return verdict;
    // An I/O error says nothing about the bytes (it may be transient); any other fault is recorded
    // so that lookups stop before this chunk and the manifests using it are cut there.
    if (verdict.fault !== 'io') {
      try {
        if (!this.#closed && this.#chunkRow(key)) await this.#recordFault(key, verdict.fault);
      } catch (error) {
        console.error('Hearth: could not record a damaged KV chunk:', error);
      }
    }
    return { ok: false, error: chunkError(key, verdict.fault, verdict.detail) };
  }

  async recordDamage(key: string, detail: string): Promise<ChunkError> {
    try {
      if (!this.#closed && isDigest(key) && this.#chunkRow(key)) await this.#recordFault(key, 'payload');
    } catch (error) {
      console.error('Hearth: could not record a damaged KV chunk:', error);
    }
    return chunkError(key, 'payload', detail);
  }

  async readChunks(keys: readonly string[]): Promise<{ chunks: ChunkData[]; error: ChunkError | null }> {
    const chunks: ChunkData[] = [];
    const inFlight: Promise<ChunkResult<ChunkData>>[] = [];
    let next = 0;
    const launch = (): void => {
      while (next < keys.length && inFlight.length < this.#readConcurrency) inFlight.push(this.readChunk(keys[next++] as string));
    };
    // Reads of known-size chunks are synchronous (store-fs.ts `readIntoSync`): give the event
    // loop a turn every few milliseconds so that a long read from a slow disk does not stall it.
    let sliceStart = performance.now();
    launch();
    while (inFlight.length > 0) {
      const result = await (inFlight.shift() as Promise<ChunkResult<ChunkData>>);
      if (!result.ok) {
        await Promise.allSettled(inFlight);
        return { chunks, error: result.error };
      }
      chunks.push(result.value);
      if (performance.now() - sliceStart > readSliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      launch();
    }
    return { chunks, error: null };
  }

  // ---- manifests ------------------------------------------------------------------------------

  putManifest(id: string, input: ManifestInput): Promise<Result<PutManifestResult>> {
    return this.#locked('Could not save the KV manifest', async () => {
      const invalid = checkId(id) ?? (isDigest(input.fingerprint) ? null : 'the fingerprint is not a sha256 hex digest') ?? checkTokens(input.tokens);
      if (invalid) return err('INVALID_INPUT', `Invalid manifest: ${invalid}.`);
      const size = this.chunkTokens;
      const { fingerprint, tokens } = input;
      const keys = chunkKeys(fingerprint, tokens, size);
      const tailStart = keys.length * size;
      if (input.tailPayload !== undefined && tailStart === tokens.length) {
        return err('INVALID_INPUT', 'Invalid manifest: a tail payload was given, but the tokens end on a chunk boundary.');
      }
      const source = input.chunks;
      const payloadOf = async (index: number, key: string): Promise<Uint8Array | undefined> =>
        typeof source === 'function' ? await source(index, key) : source?.[index];

      // 1. Chunk files, outside any transaction: only those the store lacks or holds damaged.
      const fresh: string[] = []; // written with no row yet: removed again if the commit fails
      const written: { key: string; parent: string; bytes: number; raw: number }[] = [];
      let bytesWritten = 0;
      let reused = 0;
      for (let index = 0; index < keys.length; index++) {
        const key = keys[index] as string;
        const row = this.#chunkRow(key);
        // The index is trusted here (no stat per chunk per turn): a file damaged behind the
        // store's back is caught when it is read, recorded, and rewritten by the next save.
        if (row && row.corrupt === null) {
          reused++;
          continue;
        }
        const payload = await payloadOf(index, key);
        if (payload === undefined) {
          await this.#unlinkChunks(fresh);
          return err('NOT_FOUND', `KV chunk ${index} (${key.slice(0, 12)}…) is not stored, and no payload was given for it.`);
        }
        const parent = index === 0 ? fingerprint : (keys[index - 1] as string);
        try {
          const bytes = await writeChunkFile(
            this.#fs,
            this.root,
            { key, parent, tokens: Array.prototype.slice.call(tokens, index * size, (index + 1) * size) as number[], payload },
            this.#kernels,
          );
          written.push({ key, parent, bytes, raw: rawSize(payload) });
          if (!row) fresh.push(key);
          bytesWritten += bytes;
        } catch (error) {
          await this.#unlinkChunks(fresh);
          return this.#paused(error, 'Could not write a KV chunk');
        }
      }

      // 2. One transaction: chunk rows, refcounts, the manifest row.
      const tailTokens = tokenBytes(tokens, tailStart);
      const tailPayload = input.tailPayload ?? null;
      const totalTokens = tokens.length;
      let freed: { key: string; bytes: number }[];
      try {
        freed = transaction(this.#db, () => {
          const now = this.#now();
          for (const w of written) {
            this.#sql(
              `INSERT INTO chunks (key, parent, tokens, bytes, raw_bytes, refcount, last_used, created_at, corrupt) VALUES (?, ?, ?, ?, ?, 0, ?, ?, NULL)
               ON CONFLICT(key) DO UPDATE SET bytes = excluded.bytes, raw_bytes = excluded.raw_bytes, corrupt = NULL, last_used = excluded.last_used`,
            ).run(w.key, w.parent, size, w.bytes, w.raw, now, now);
          }
          const old = this.#sql('SELECT key FROM manifest_chunks WHERE manifest_id = ?').all(id) as unknown as { key: string }[];
          for (const { key } of old) this.#sql('UPDATE chunks SET refcount = refcount - 1 WHERE key = ?').run(key);
          this.#sql('DELETE FROM manifest_chunks WHERE manifest_id = ?').run(id);
          keys.forEach((key, index) => {
            const changed = this.#sql('UPDATE chunks SET refcount = refcount + 1, last_used = ? WHERE key = ?').run(now, key);
            if (Number(changed.changes) !== 1) throw new Error(`chunk ${key} vanished during a save`);
            this.#sql('INSERT INTO manifest_chunks (manifest_id, idx, key) VALUES (?, ?, ?)').run(id, index, key);
          });
          this.#sql(
            `INSERT INTO manifests (id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, tail_payload, tail_crc, tail_raw_bytes, total_tokens, last_used, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET fingerprint = excluded.fingerprint, chunk_tokens = excluded.chunk_tokens,
               chunk_count = excluded.chunk_count, head = excluded.head, tail_tokens = excluded.tail_tokens,
               tail_payload = excluded.tail_payload, tail_crc = excluded.tail_crc, tail_raw_bytes = excluded.tail_raw_bytes,
               total_tokens = excluded.total_tokens, last_used = excluded.last_used`,
          ).run(
            id,
            fingerprint,
            size,
            keys.length,
            keys.at(-1) ?? fingerprint,
            tailTokens,
            tailPayload,
            tailPayload === null ? null : crc32(tailPayload),
            tailPayload === null ? null : rawSize(tailPayload),
            totalTokens,
            now,
            now,
          );
          return this.#collectUnreferenced();
        });
      } catch (error) {
        await this.#unlinkChunks(fresh);
        return this.#paused(error, 'Could not save the KV manifest');
      }
      await this.#unlinkChunks(freed.map((r) => r.key));
      this.#setPause(null);
      return ok({ chunksWritten: written.length, bytesWritten, chunksReused: reused, tailBytes: tailPayload?.length ?? 0, totalTokens });
    });
  }

  getManifest(id: string): Result<Manifest> {
    return this.#read('Could not read the KV manifest', () => {
      const row = this.#sql(
        `SELECT id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, length(tail_payload) AS tail_bytes, total_tokens, last_used, created_at
         FROM manifests WHERE id = ?`,
      ).get(id) as ManifestRow | undefined;
      if (!row) return err('NOT_FOUND', `No KV manifest ${id}.`);
      const keys = this.#sql('SELECT key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx').all(id) as unknown as { key: string }[];
      return ok(toManifest(row, keys.map((k) => k.key)));
    });
  }

  manifestIds(prefix: string): Result<string[]> {
    return this.#read('Could not list KV manifests', () => {
      // substr instead of LIKE: ids may contain % and _.
      const rows = this.#sql('SELECT id FROM manifests WHERE substr(id, 1, ?) = ? ORDER BY id').all(prefix.length, prefix) as unknown as { id: string }[];
      return ok(rows.map((r) => r.id));
    });
  }

  chatUsage(options: { readonly limit: number } | { readonly chatId: string }): Result<ChatUsage[]> {
    return this.#read('Could not read the KV store\'s chats', () => {
      const one = 'chatId' in options;
      if (one ? typeof options.chatId !== 'string' || options.chatId === '' : !(Number.isInteger(options.limit) && options.limit >= 0)) {
        return err('INVALID_INPUT', 'chatUsage needs a chatId or a whole-number limit.');
      }
      // A chunk two branches of one chat share (their common history) counts once for the chat.
      const chat = "CASE WHEN instr(id, '/') > 0 THEN substr(id, 1, instr(id, '/') - 1) ELSE id END";
      const where = one ? 'WHERE substr(id, 1, ?) = ?' : '';
      const rows = this.#sql(
        `WITH m AS (SELECT id, ${chat} AS chat, total_tokens, last_used, coalesce(length(tail_payload), 0) AS tail FROM manifests ${where}),
              per AS (SELECT chat, max(total_tokens) AS tokens, max(last_used) AS last_used, sum(tail) AS tail_bytes FROM m GROUP BY chat),
              used AS (SELECT DISTINCT m.chat AS chat, mc.key AS key FROM m JOIN manifest_chunks mc ON mc.manifest_id = m.id),
              chunk_bytes AS (SELECT used.chat AS chat, sum(c.bytes) AS bytes FROM used JOIN chunks c ON c.key = used.key GROUP BY used.chat)
         SELECT per.chat AS chat, per.tokens AS tokens, per.last_used AS last_used, per.tail_bytes + coalesce(chunk_bytes.bytes, 0) AS bytes
         FROM per LEFT JOIN chunk_bytes ON chunk_bytes.chat = per.chat
         ORDER BY bytes DESC, last_used DESC, chat ASC LIMIT ?`,
      ).all(...(one ? [options.chatId.length + 1, `${options.chatId}/`, 1] : [options.limit])) as unknown as { chat: string; tokens: number; last_used: number; bytes: number }[];
      return ok(rows.map((r) => ({ chatId: r.chat, tokens: r.tokens, bytes: r.bytes, lastUsed: r.last_used })));
    });
  }

  readTail(id: string): Result<TailData> {
    return this.#read('Could not read the KV tail', () => {
      const row = this.#sql('SELECT tail_tokens, tail_payload, tail_crc FROM manifests WHERE id = ?').get(id) as
        | { tail_tokens: Uint8Array; tail_payload: Uint8Array | null; tail_crc: number | null }
        | undefined;
      if (!row) return err('NOT_FOUND', `No KV manifest ${id}.`);
      const tokens = tokensFromBytes(row.tail_tokens);
      if (row.tail_payload === null) return ok({ tokens, payload: null });
      if (crc32(row.tail_payload) !== row.tail_crc) {
        // Drop exactly this damaged tail (a newer save may have replaced it meanwhile): the chat
        // then re-reads its last partial chunk. A single statement, so it needs no lock.
        this.#sql('UPDATE manifests SET tail_payload = NULL, tail_crc = NULL WHERE id = ? AND tail_crc IS ?').run(id, row.tail_crc);
        return err('INTERNAL', `The KV tail of ${id} is damaged (checksum).`, 'The chat re-reads its last partial chunk.');
      }
      return ok({ tokens, payload: row.tail_payload });
    });
  }

  deleteManifest(id: string): Promise<Result<DeleteResult>> {
    return this.#locked<DeleteResult>('Could not delete the KV manifest', async () => {
      const plan = transaction(this.#db, () => {
        const tail = this.#sql('SELECT coalesce(length(tail_payload), 0) AS bytes FROM manifests WHERE id = ?').get(id) as { bytes: number } | undefined;
        return tail === undefined || this.#truncate(id, 0) === 'absent' ? null : { freed: this.#collectUnreferenced(), tailBytes: tail.bytes };
      });
      if (plan === null) return ok({ deleted: false, chunksRemoved: 0, bytesFreed: 0 });
      await this.#unlinkChunks(plan.freed.map((r) => r.key));
      return ok({ deleted: true, chunksRemoved: plan.freed.length, bytesFreed: plan.freed.reduce((sum, r) => sum + r.bytes, 0) + plan.tailBytes });
    });
  }

  touch(id: string): Promise<Result<void>> {
    return this.#locked('Could not update the KV manifest', () =>
      transaction(this.#db, () => {
        const now = this.#now();
        const changed = this.#sql('UPDATE manifests SET last_used = ? WHERE id = ?').run(now, id);
        if (Number(changed.changes) === 0) return err('NOT_FOUND', `No KV manifest ${id}.`);
        this.#sql('UPDATE chunks SET last_used = ? WHERE key IN (SELECT key FROM manifest_chunks WHERE manifest_id = ?)').run(now, id);
        return ok(undefined);
      }),
    );
  }

  // ---- budget and GC --------------------------------------------------------------------------

  #storedBytes(): number {
    const row = this.#sql(
      `SELECT (SELECT coalesce(sum(bytes), 0) FROM chunks) + (SELECT coalesce(sum(length(tail_payload)), 0) FROM manifests) AS bytes`,
    ).get() as { bytes: number };
    return row.bytes;
  }

  enforceBudget(): Promise<Result<EvictionReport>> {
    return this.#locked('Could not evict from the KV store', async () => {
      const budget = this.#budget;
      const truncated = new Set<string>();
      const deleted: string[] = [];
      const plan = transaction(this.#db, () => {
        const freed = this.#collectUnreferenced();
        let stored = this.#storedBytes();
        let tailBytes = 0;
        const lru = this.#sql('SELECT id FROM manifests ORDER BY last_used ASC, created_at ASC, id ASC').all() as unknown as { id: string }[];
        for (const { id } of lru) {
          if (stored <= budget) break;
          const tail = this.#sql('SELECT length(tail_payload) AS bytes FROM manifests WHERE id = ?').get(id) as { bytes: number | null };
          if (tail.bytes !== null) {
            this.#sql("UPDATE manifests SET tail_payload = NULL, tail_crc = NULL, tail_tokens = x'', total_tokens = chunk_count * chunk_tokens WHERE id = ?").run(id);
            stored -= tail.bytes;
            tailBytes += tail.bytes;
            truncated.add(id);
          }
          // The chat's unshared chunks are its suffix (refcounts never increase along a chain), so
          // cutting from the end frees bytes first and never leaves a later chunk without the
          // chunks before it. A shared chunk only loses this chat's reference.
          const keys = this.#sql('SELECT idx, key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx DESC').all(id) as unknown as { idx: number; key: string }[];
          let cut: number | null = null;
          for (const { idx, key } of keys) {
            if (stored <= budget) break;
            const row = this.#sql('SELECT refcount, bytes FROM chunks WHERE key = ?').get(key) as { refcount: number; bytes: number } | undefined;
            if (row && row.refcount <= 1) stored -= row.bytes;
            cut = idx;
          }
          if (cut !== null) {
            if (this.#truncate(id, cut) === 'deleted') deleted.push(id);
            else truncated.add(id);
            freed.push(...this.#collectUnreferenced());
          } else if (keys.length === 0 && tail.bytes !== null) {
            this.#truncate(id, 0);
            deleted.push(id);
          }
        }
        return { freed, tailBytes, stored };
      });
      await this.#unlinkChunks(plan.freed.map((r) => r.key));
      for (const id of deleted) truncated.delete(id);
      return ok({
        chunksRemoved: plan.freed.length,
        bytesFreed: plan.freed.reduce((sum, r) => sum + r.bytes, 0) + plan.tailBytes,
        truncated: [...truncated],
        deleted,
        storedBytes: this.#storedBytes(),
        budget,
      });
    });
  }

  /** Chunk files and temp files on disk, walking the fan-out directories. */
  async #scanFiles(): Promise<{ chunks: { key: string; path: string }[]; temps: string[] }> {
    const chunks: { key: string; path: string }[] = [];
    const temps: string[] = [];
    const top = chunksDir(this.root);
    let names: string[];
    try {
      names = await this.#fs.readdir(top);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return { chunks, temps };
      throw error;
    }
    for (const name of names) {
      const path = join(top, name);
      if (name.endsWith(tempSuffix)) {
        temps.push(path);
        continue;
      }
      if (!/^[0-9a-f]{2}$/.test(name)) continue;
      let files: string[];
      try {
        files = await this.#fs.readdir(path);
      } catch {
        continue; // not a directory, or gone
      }
      for (const file of files) {
        if (file.endsWith(tempSuffix)) temps.push(join(path, file));
        else if (file.endsWith(chunkSuffix)) {
          const key = file.slice(0, -chunkSuffix.length);
          if (isDigest(key) && key.startsWith(name)) chunks.push({ key, path: join(path, file) });
        }
      }
    }
    return { chunks, temps };
  }

  #orphans(files: { key: string; path: string }[]): { key: string; path: string }[] {
    return files.filter((f) => !this.#sql('SELECT 1 FROM chunks WHERE key = ?').get(f.key));
  }

  async #removeFiles(paths: string[]): Promise<number> {
    let bytes = 0;
    for (const path of paths) {
      const size = await this.#fileSize(path);
      try {
        await this.#fs.unlink(path);
        bytes += size ?? 0;
      } catch {
        // gone already, or not removable now: the next gc() tries again
      }
    }
    return bytes;
  }

  gc(): Promise<Result<GcReport>> {
    return this.#locked('Could not clean the KV store', async () => ok(await this.#sweep()));
  }

  /**
   * Under the lock and holding the root, so every temp file seen here is stale: no write of this
   * process is in progress, and no other process writes here. Throws on index errors.
   */
  async #sweep(): Promise<GcReport> {
    const unreferenced = transaction(this.#db, () => this.#collectUnreferenced());
    await this.#unlinkChunks(unreferenced.map((r) => r.key));
    const files = await this.#scanFiles();
    const orphans = this.#orphans(files.chunks);
    const bytesFreed = unreferenced.reduce((sum, r) => sum + r.bytes, 0) + (await this.#removeFiles([...orphans.map((o) => o.path), ...files.temps]));
    return { unreferencedChunks: unreferenced.length, orphanFiles: orphans.length, tempFiles: files.temps.length, bytesFreed };
  }

  checkIntegrity(options: { verify?: boolean; repair?: boolean } = {}): Promise<Result<IntegrityReport>> {
    const verify = options.verify ?? true;
    const repair = options.repair ?? false;
    return this.#locked(
      'Could not check the KV store',
      async () => ok(await this.#check(verify, repair)),
      // Only a repair writes; a check also runs while another process holds the root.
      { writes: repair },
    );
  }

  /** Under the lock: `checkIntegrity`'s work. Throws on index errors. */
  async #check(verify: boolean, repair: boolean): Promise<IntegrityReport> {
    const rows = this.#sql('SELECT key, parent, tokens, bytes, refcount, corrupt FROM chunks ORDER BY key').all() as unknown as ChunkRow[];
    let chunksVerified = 0;
    const missing: string[] = [];
    const corrupt: { key: string; reason: ChunkFault }[] = [];
    const knownCorrupt: { key: string; reason: string }[] = [];
    for (const row of rows) {
      if (row.corrupt !== null) knownCorrupt.push({ key: row.key, reason: row.corrupt });
      if (verify) {
        const verdict = await readChunkFile(this.#fs, this.root, row.key, this.#kernels);
        if (verdict.ok && verdict.value.bytes === row.bytes) chunksVerified++;
        else if (verdict.ok) corrupt.push({ key: row.key, reason: 'length' });
        else if (verdict.fault === 'missing') missing.push(row.key);
        else corrupt.push({ key: row.key, reason: verdict.fault });
      } else {
        const size = await this.#fileSize(chunkPath(this.root, row.key));
        if (size === null) missing.push(row.key);
        else if (size !== row.bytes) corrupt.push({ key: row.key, reason: size < row.bytes ? 'truncated' : 'length' });
        else chunksVerified++;
      }
    }
    const refcountMismatches = this.#sql(
      `SELECT c.key AS key, c.refcount AS stored, count(mc.key) AS actual
       FROM chunks c LEFT JOIN manifest_chunks mc ON mc.key = c.key
       GROUP BY c.key HAVING c.refcount != count(mc.key)`,
    ).all() as unknown as { key: string; stored: number; actual: number }[];
    const danglingReferences = (
      this.#sql(
        `SELECT manifest_id, idx, key FROM manifest_chunks WHERE key NOT IN (SELECT key FROM chunks) ORDER BY manifest_id, idx`,
      ).all() as unknown as { manifest_id: string; idx: number; key: string }[]
    ).map((r) => ({ manifestId: r.manifest_id, index: r.idx, key: r.key }));
    const inconsistentManifests = (
      this.#sql(
        `SELECT m.id FROM manifests m LEFT JOIN (
           SELECT manifest_id, count(*) AS n, max(idx) AS top FROM manifest_chunks GROUP BY manifest_id
         ) s ON s.manifest_id = m.id
         WHERE coalesce(s.n, 0) != m.chunk_count
            OR (m.chunk_count > 0 AND (s.top != m.chunk_count - 1
                OR m.head != (SELECT key FROM manifest_chunks WHERE manifest_id = m.id AND idx = m.chunk_count - 1)))
            OR (m.chunk_count = 0 AND m.head != m.fingerprint)`,
      ).all() as unknown as { id: string }[]
    ).map((r) => r.id);
    const corruptTails: string[] = [];
    // Tails are read only when verifying contents: they can add up to gigabytes (a large model's
    // partial chunk per chat), and a damaged one is caught when it is read anyway (readTail).
    const tails = verify ? this.#sql('SELECT id, tail_payload, tail_crc FROM manifests WHERE tail_payload IS NOT NULL').iterate() : [];
    for (const tail of tails as Iterable<{ id: string; tail_payload: Uint8Array; tail_crc: number | null }>) {
      if (crc32(tail.tail_payload) !== tail.tail_crc) corruptTails.push(tail.id);
    }
    // While another process holds the root, its temp files and not yet committed chunk files
    // are writes in progress, not debris: only the holder judges them.
    const files = this.#owner ? await this.#scanFiles() : { chunks: [], temps: [] };
    const orphanFiles = this.#orphans(files.chunks).map((o) => o.path);
    const tempFiles = files.temps;
    const clean =
      missing.length + corrupt.length + knownCorrupt.length + orphanFiles.length + tempFiles.length + refcountMismatches.length + danglingReferences.length + inconsistentManifests.length + corruptTails.length === 0;
    if (repair && !clean) await this.#repair({ missing, corrupt, refcountMismatches, danglingReferences, inconsistentManifests, corruptTails }, [...orphanFiles, ...tempFiles]);
    return {
      chunksVerified,
      missing,
      corrupt,
      knownCorrupt,
      orphanFiles,
      tempFiles,
      refcountMismatches,
      danglingReferences,
      inconsistentManifests,
      corruptTails,
      ok: clean,
      repaired: repair && !clean,
    };
  }

  /** Under the lock: makes the index match the files again, losing only cache, never a needed chunk. */
  async #repair(
    found: Pick<IntegrityReport, 'missing' | 'corrupt' | 'refcountMismatches' | 'danglingReferences' | 'inconsistentManifests' | 'corruptTails'>,
    strayFiles: string[],
  ): Promise<void> {
    const bad = new Set([...found.missing, ...found.corrupt.map((c) => c.key), ...found.danglingReferences.map((d) => d.key)]);
    const freed = transaction(this.#db, () => {
      // Manifests whose row and chunk list disagree are rebuilt from the list up to its first gap.
      for (const id of found.inconsistentManifests) {
        const keys = this.#sql('SELECT idx, key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx').all(id) as unknown as { idx: number; key: string }[];
        let run = 0;
        while (run < keys.length && (keys[run] as { idx: number }).idx === run) run++;
        this.#sql('DELETE FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').run(id, run);
        const fp = (this.#sql('SELECT fingerprint FROM manifests WHERE id = ?').get(id) as { fingerprint: string }).fingerprint;
        if (run === 0) this.#sql('DELETE FROM manifests WHERE id = ?').run(id);
        else {
          this.#sql(
            `UPDATE manifests SET chunk_count = ?, head = ?, tail_tokens = x'', tail_payload = NULL, tail_crc = NULL, total_tokens = ? * chunk_tokens WHERE id = ?`,
          ).run(run, run > 0 ? (keys[run - 1] as { key: string }).key : fp, run, id);
        }
      }
      // Refcounts first, from the truth (manifest_chunks), so the cuts below count correctly.
      this.#sql('UPDATE chunks SET refcount = (SELECT count(*) FROM manifest_chunks mc WHERE mc.key = chunks.key)').run();
      for (const key of bad) {
        this.#sql("UPDATE chunks SET corrupt = coalesce(corrupt, 'missing') WHERE key = ?").run(key);
        const users = this.#sql('SELECT manifest_id, idx FROM manifest_chunks WHERE key = ?').all(key) as unknown as { manifest_id: string; idx: number }[];
        for (const user of users) this.#truncate(user.manifest_id, user.idx);
      }
      for (const id of found.corruptTails) this.#sql("UPDATE manifests SET tail_payload = NULL, tail_crc = NULL, tail_tokens = x'', total_tokens = chunk_count * chunk_tokens WHERE id = ?").run(id);
      // Known-corrupt chunks nobody references go with the unreferenced ones.
      return this.#collectUnreferenced();
    });
    await this.#unlinkChunks(freed.map((r) => r.key));
    await this.#removeFiles(strayFiles);
  }

  async stats(): Promise<Result<KvStoreStats>> {
    const counts = this.#read('Could not read KV store stats', () =>
      ok(
        this.#sql(
          `SELECT (SELECT coalesce(sum(bytes), 0) FROM chunks) AS chunk_bytes,
                  (SELECT count(*) FROM chunks) AS chunk_count,
                  (SELECT count(*) FROM manifests) AS manifests,
                  (SELECT coalesce(sum(length(tail_payload)), 0) FROM manifests) AS tail_bytes,
                  (SELECT coalesce(sum(coalesce(raw_bytes, bytes - ? - 4 * tokens)), 0) FROM chunks) AS chunk_raw_bytes,
                  (SELECT coalesce(sum(coalesce(tail_raw_bytes, length(tail_payload))), 0) FROM manifests WHERE tail_payload IS NOT NULL) AS tail_raw_bytes,
                  (SELECT coalesce(sum(c.bytes), 0) FROM manifest_chunks mc JOIN chunks c ON c.key = mc.key) AS referenced_bytes`,
        ).get(chunkHeaderBytes) as {
          chunk_bytes: number;
          chunk_count: number;
          manifests: number;
          tail_bytes: number;
          chunk_raw_bytes: number;
          tail_raw_bytes: number;
          referenced_bytes: number;
        },
      ),
    );
    if (!counts.ok) return counts;
    const c = counts.value;
    let indexBytes = 0;
    for (const suffix of ['', '-wal', '-shm']) indexBytes += (await this.#fileSize(join(this.root, `index.db${suffix}`))) ?? 0;
    let freeBytes: number | null = null;
    try {
      const fsStats = await this.#fs.statfs(this.root);
      freeBytes = Number(fsStats.bavail) * Number(fsStats.bsize);
    } catch {
      // unknown on this file system
    }
    const storedBytes = c.chunk_bytes + c.tail_bytes;
    const budget = this.#budget;
    return ok({
      bytesOnDisk: c.chunk_bytes + indexBytes,
      storedBytes,
      logicalBytes: c.referenced_bytes + c.tail_bytes,
      rawBytes: c.chunk_raw_bytes + c.tail_raw_bytes,
      chunkCount: c.chunk_count,
      manifests: c.manifests,
      budget,
      usage: budget > 0 ? storedBytes / budget : storedBytes > 0 ? 1 : 0,
      freeBytes,
      persistencePaused: this.#pause,
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#lock.run(() => {
      if (this.#closed) return;
      this.#closed = true;
      if (this.#claimTimer !== null) clearInterval(this.#claimTimer);
      this.#claimTimer = null;
      this.#statements.clear();
      this.#listeners.clear();
      this.#db.close();
      // After the index is closed: the next holder finds nothing of this process open.
      this.#rootLock?.release();
      this.#rootLock = null;
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
