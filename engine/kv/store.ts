/**
 * The KV store: content-addressed, deduplicated KV chunks on disk, with one manifest per chat
 * branch in SQLite. It runs in the engine process and knows nothing of llama.cpp: a chunk is
 * opaque payload bytes plus its tokens (the codec, codec.ts, makes and reads the payloads).
 *
 * Under `root`: `lock` and `lock.owner` (root-lock.ts), `index.db` (store-db.ts; a damaged one is
 * moved aside to `index.db.damaged`), `chunks/<key[0..2]>/<key>.kvc` (chunk-file.ts), each
 * written as a temp file and renamed once complete and fsynced, and verified before any byte is
 * returned, and `tails/<name>.kvt` (tail-file.ts), each manifest's partial last chunk, rewritten
 * every turn. This module is the public entry: the work is split by concern into store-open.ts,
 * store-read.ts, store-write.ts, store-maintenance.ts, store-integrity.ts, store-models.ts and
 * model-hash.ts, which share one `StoreContext` (store-context.ts).
 */
import type { Result } from '../contract/index.ts';
import type { Disposable } from '../base/disposable.ts';
import type { ChunkData } from './chunk-file.ts';
import type { HashProgress } from './fingerprint.ts';
import type { Manifest, ManifestInput, PrefixMatch, TailData } from './manifest.ts';
import { knownModelHash, modelContentHash } from './model-hash.ts';
import type { StoreContext } from './store-context.ts';
import { checkIntegrity, enforceBudget, gc, setBudget, stats } from './store-maintenance.ts';
import { closeContext, openContext, sweepAtOpen } from './store-open.ts';
import { chatUsage, findLongestPrefix, forEachChunk, getManifest, manifestIds, missingChunks, readChunk, readChunks, readTail, recordDamage } from './store-read.ts';
import { fingerprintModel, forgetModel, modelUsage, recordFingerprint } from './store-models.ts';
import { scatterChunks, type ScatterRequest, type ScatterResult } from './store-scatter.ts';
import { deleteManifest, putManifest, touch } from './store-write.ts';
import type {
  ChatUsage,
  ChunkError,
  ChunkResult,
  DeleteResult,
  EvictionReport,
  ForgetModelResult,
  GcReport,
  IntegrityReport,
  KvStore,
  KvStoreOptions,
  KvStoreStats,
  ModelUsage,
  PersistencePause,
  PutManifestResult,
} from './store-types.ts';

export type { ChunkData, ChunkFault } from './chunk-file.ts';
export type { Manifest, ManifestInput, PrefixMatch, TailData, TailMatch } from './manifest.ts';
export type { StoreFs, StoreFileHandle } from './store-fs.ts';
export type { ScatterPlacement, ScatterRequest, ScatterResult } from './store-scatter.ts';
export type * from './store-types.ts';
export { defaultChunkTokens, defaultLockWaitMs } from './store-types.ts';

/**
 * Opens (creating if needed) the store at `options.root`. An unwritable directory is a clear
 * INTERNAL error here, at start; a full disk is not an error (restores still work) but starts with
 * persistence paused, and so does a root another process holds (after waiting `lockWaitMs`). An
 * index.db SQLite cannot read is moved aside and the store starts empty (it is only a cache);
 * debris of interrupted writes (temp files, chunk files the index never committed) is swept.
 */
export async function openKvStore(options: KvStoreOptions): Promise<Result<KvStore>> {
  const ctx = await openContext(options);
  if (!ctx.ok) return ctx;
  const store = new DiskKvStore(ctx.value);
  if (ctx.value.owner) sweepAtOpen(ctx.value);
  return { ok: true, value: store };
}

/** `KvStore` over one `StoreContext`: each operation is a function of the module for its concern. */
class DiskKvStore implements KvStore {
  readonly #ctx: StoreContext;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
  }

  get root(): string {
    return this.#ctx.root;
  }

  get chunkTokens(): number {
    return this.#ctx.chunkTokens;
  }

  get budget(): number {
    return this.#ctx.budget;
  }

  get persistencePaused(): PersistencePause | null {
    return this.#ctx.pause;
  }

  onDidChangePersistence(listener: (pause: PersistencePause | null) => void): Disposable {
    return this.#ctx.persistence.on(listener);
  }

  setBudget(bytes: number): Result<void> {
    return setBudget(this.#ctx, bytes);
  }

  modelContentHash(path: string, options?: { onProgress?: HashProgress; signal?: AbortSignal }): Promise<Result<string>> {
    return modelContentHash(this.#ctx, path, options);
  }

  knownModelHash(path: string): Promise<Result<string | null>> {
    return knownModelHash(this.#ctx, path);
  }

  recordFingerprint(fingerprint: string, modelHash: string): Result<void> {
    return recordFingerprint(this.#ctx, fingerprint, modelHash);
  }

  fingerprintModel(fingerprint: string): Result<string | null> {
    return fingerprintModel(this.#ctx, fingerprint);
  }

  modelUsage(modelHash: string): Result<ModelUsage> {
    return modelUsage(this.#ctx, modelHash);
  }

  forgetModel(modelHash: string): Promise<Result<ForgetModelResult>> {
    return forgetModel(this.#ctx, modelHash);
  }

  findLongestPrefix(fingerprint: string, tokens: ArrayLike<number>): Result<PrefixMatch> {
    return findLongestPrefix(this.#ctx, fingerprint, tokens);
  }

  missingChunks(fingerprint: string, tokens: ArrayLike<number>): Result<number[]> {
    return missingChunks(this.#ctx, fingerprint, tokens);
  }

  readChunk(key: string): Promise<ChunkResult<ChunkData>> {
    return readChunk(this.#ctx, key);
  }

  recordDamage(key: string, detail: string): Promise<ChunkError> {
    return recordDamage(this.#ctx, key, detail);
  }

  readChunks(keys: readonly string[]): Promise<{ chunks: ChunkData[]; error: ChunkError | null }> {
    return readChunks(this.#ctx, keys);
  }

  forEachChunk(keys: readonly string[], visit: (chunk: ChunkData, index: number) => boolean): Promise<{ count: number; bytes: number; error: ChunkError | null }> {
    return forEachChunk(this.#ctx, keys, visit);
  }

  scatterChunks(keys: readonly string[], request: ScatterRequest): Promise<ScatterResult> {
    return scatterChunks(this.#ctx, keys, request);
  }

  putManifest(id: string, input: ManifestInput): Promise<Result<PutManifestResult>> {
    return putManifest(this.#ctx, id, input);
  }

  getManifest(id: string): Result<Manifest> {
    return getManifest(this.#ctx, id);
  }

  manifestIds(prefix: string): Result<string[]> {
    return manifestIds(this.#ctx, prefix);
  }

  readTail(id: string): Result<TailData> {
    return readTail(this.#ctx, id);
  }

  deleteManifest(id: string): Promise<Result<DeleteResult>> {
    return deleteManifest(this.#ctx, id);
  }

  touch(id: string): Promise<Result<void>> {
    return touch(this.#ctx, id);
  }

  chatUsage(options: { readonly limit: number } | { readonly chatId: string }): Result<ChatUsage[]> {
    return chatUsage(this.#ctx, options);
  }

  enforceBudget(): Promise<Result<EvictionReport>> {
    return enforceBudget(this.#ctx);
  }

  gc(): Promise<Result<GcReport>> {
    return gc(this.#ctx);
  }

  checkIntegrity(options?: { verify?: boolean; repair?: boolean }): Promise<Result<IntegrityReport>> {
    return checkIntegrity(this.#ctx, options);
  }

  stats(): Promise<Result<KvStoreStats>> {
    return stats(this.#ctx);
  }

  close(): Promise<void> {
    return closeContext(this.#ctx);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
