/**
 * The state one open KV store shares between its modules (open, read, write, maintenance,
 * integrity, model hash), and the index primitives they all build on. The state is one plain
 * object rather than a class's private fields so that each concern can live in its own module;
 * only the store's modules see it (store.ts hands callers the `KvStore` interface).
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { err, hearthError } from '../contract/index.ts';
import type { HearthError, Result } from '../contract/index.ts';
import type { Emitter } from '../base/emitter.ts';
import type { Lock } from '../base/lock.ts';
import { chunkPath } from './chunk-file.ts';
import { isTailName, tailPath } from './tail-file.ts';
import type { CodecKernels } from './kernels.ts';
import type { RootLock } from './root-lock.ts';
import type { StoreFs, ReusableBuffer } from './store-fs.ts';
import { toHearthError } from './store-fs.ts';
import type { PersistencePause, StoreLog } from './store-types.ts';

export interface StoreContext {
  readonly root: string;
  readonly chunkTokens: number;
  readonly db: DatabaseSync;
  readonly fs: StoreFs;
  readonly now: () => number;
  readonly readConcurrency: number;
  readonly kernels: CodecKernels;
  readonly log: StoreLog;
  /** Every mutation runs under it: a save, an eviction and a GC never interleave. */
  readonly lock: Lock;
  /** Prepared statements by SQL text (`sql`). */
  readonly statements: Map<string, StatementSync>;
  /** Persistence pauses and resumes, as they happen. */
  readonly persistence: Emitter<PersistencePause | null>;
  /** Model hashes in progress, so two callers never hash the same file at once. */
  readonly hashing: Map<string, Promise<Result<string>>>;
  /** `forEachChunk`'s read buffer. */
  readonly readBuffer: ReusableBuffer;
  /**
   * `readTail`'s read buffer: the payload it returns is a view into it, valid until the next
   * `readTail` (store-types.ts `KvStore.readTail`). Not `readBuffer`: a restore reads its tail
   * first and its chunks after, through `forEachChunk`. Its buffers are large ones
   * (large-buffer.ts `allocateWithRoom`) because a new one is backed by huge pages (a fresh 8 MB
   * buffer faulted in 4 KiB pages cost ~30 ms here against ~9 ms with huge pages and ~0.5 ms
   * reused), and leaves room for the tail to grow over the next turns.
   */
  readonly tailBuffer: ReusableBuffer;
  budget: number;
  pause: PersistencePause | null;
  closed: boolean;
  /** The root's lock, when this store holds it (root-lock.ts). */
  rootLock: RootLock | null;
  /** False while another process holds the root: the store is read-only until it takes it over. */
  owner: boolean;
  /** While locked out: the timer that tries to take the root over. */
  claimTimer: NodeJS.Timeout | null;
}

export interface ChunkRow {
  key: string;
  parent: string;
  tokens: number;
  bytes: number;
  refcount: number;
  corrupt: string | null;
}

/** The prepared statement for `text`, prepared once per store. */
export function sql(ctx: StoreContext, text: string): StatementSync {
  let statement = ctx.statements.get(text);
  if (!statement) {
    statement = ctx.db.prepare(text);
    ctx.statements.set(text, statement);
  }
  return statement;
}

export function closedError<T>(): Result<T> {
  return err('INTERNAL', 'The KV store is closed.');
}

/** A sync read; a throw becomes INTERNAL. */
export function readIndex<T>(ctx: StoreContext, context: string, task: () => Result<T>): Result<T> {
  if (ctx.closed) return closedError<T>();
  try {
    return task();
  } catch (error) {
    return { ok: false, error: toHearthError(error, context) };
  }
}

export function setPause(ctx: StoreContext, pause: PersistencePause | null): void {
  if (pause === null && ctx.pause === null) return;
  ctx.pause = pause;
  ctx.persistence.emit(pause);
}

/** A write failure as data: DISK_FULL for no space (ENOSPC, EDQUOT, SQLITE_FULL), else INTERNAL. */
export function writeError(error: unknown, context: string): HearthError {
  const e = toHearthError(error, context);
  if (e.code === 'DISK_FULL' || e.code === 'INTERNAL') return e;
  return hearthError('INTERNAL', e.message, e.hint);
}

/** A failed write: persistence pauses with its reason, which is also the result. */
export function paused<T>(ctx: StoreContext, error: unknown, context: string): Result<T> {
  const reason = writeError(error, context);
  setPause(ctx, { reason, since: ctx.now() });
  return { ok: false, error: reason };
}

/** The rows of `keys` that exist, in one query (`columns`: those to fetch). Throws on SQLite errors. */
export function chunkRows<C extends 'corrupt' | 'bytes'>(ctx: StoreContext, keys: readonly string[], columns: C): Map<string, Pick<ChunkRow, C>> {
  const rows = sql(ctx, `SELECT key, ${columns} FROM chunks WHERE key IN (SELECT value FROM json_each(?))`).all(JSON.stringify(keys)) as unknown as (Pick<ChunkRow, C> & {
    key: string;
  })[];
  return new Map(rows.map((row) => [row.key, row]));
}

export function chunkRow(ctx: StoreContext, key: string): ChunkRow | undefined {
  return sql(ctx, 'SELECT key, parent, tokens, bytes, refcount, corrupt FROM chunks WHERE key = ?').get(key) as ChunkRow | undefined;
}

export async function fileSize(ctx: StoreContext, path: string): Promise<number | null> {
  try {
    return (await ctx.fs.stat(path)).size;
  } catch {
    return null;
  }
}

/** Removes chunk files after the commit that dropped them; a failure leaves an orphan for gc(). */
export async function unlinkChunks(ctx: StoreContext, keys: Iterable<string>): Promise<void> {
  for (const key of keys) await ctx.fs.unlink(chunkPath(ctx.root, key)).catch(() => undefined);
}

/**
 * Removes tail files after the commit that dropped their rows (`dropped`, as the functions below
 * collect them); a failure leaves an orphan for gc().
 */
export async function unlinkTails(ctx: StoreContext, dropped: Iterable<string>): Promise<void> {
  for (const name of dropped) await ctx.fs.unlink(tailPath(ctx.root, name)).catch(() => undefined);
}

/**
 * In a transaction: deletes chunk rows nobody references and returns them (files go after
 * commit). The NOT EXISTS re-checks the refcount against manifest_chunks itself, so even a wrong
 * refcount could never make GC remove a chunk that a manifest lists.
 */
export function collectUnreferenced(ctx: StoreContext): { key: string; bytes: number }[] {
  const unreferenced = 'refcount <= 0 AND NOT EXISTS (SELECT 1 FROM manifest_chunks mc WHERE mc.key = chunks.key)';
  const rows = sql(ctx, `SELECT key, bytes FROM chunks WHERE ${unreferenced}`).all() as unknown as { key: string; bytes: number }[];
  if (rows.length > 0) sql(ctx, `DELETE FROM chunks WHERE ${unreferenced}`).run();
  return rows;
}

/**
 * In a transaction: cuts manifest `id` to its first `index` chunks and drops its tail (it continued
 * the cut chain). The tail's file, if any, is added to `dropped`: unlink it after the commit.
 */
export function truncate(ctx: StoreContext, id: string, index: number, dropped: string[]): 'truncated' | 'deleted' | 'absent' {
  const manifest = sql(ctx, 'SELECT chunk_tokens FROM manifests WHERE id = ?').get(id) as { chunk_tokens: number } | undefined;
  if (!manifest) return 'absent';
  const cut = sql(ctx, 'SELECT key FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').all(id, index) as unknown as { key: string }[];
  for (const { key } of cut) sql(ctx, 'UPDATE chunks SET refcount = refcount - 1 WHERE key = ?').run(key);
  sql(ctx, 'DELETE FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').run(id, index);
  if (index === 0) {
    // Nothing left to restore from: a manifest with neither chunks nor a tail payload is noise.
    // Its tails row would go with it (the foreign key's ON DELETE CASCADE, store-db.ts), but
    // its file would not: the row goes first, saying which file that is.
    deleteTailPayload(ctx, id, dropped);
    sql(ctx, 'DELETE FROM manifests WHERE id = ?').run(id);
    return 'deleted';
  }
  const head = sql(ctx, 'SELECT key FROM manifest_chunks WHERE manifest_id = ? AND idx = ?').get(id, index - 1) as { key: string };
  sql(ctx, `UPDATE manifests SET chunk_count = ?, head = ?, tail_tokens = x'', tail_bytes = NULL, total_tokens = ? WHERE id = ?`).run(
    index,
    head.key,
    index * manifest.chunk_tokens,
    id,
  );
  deleteTailPayload(ctx, id, dropped);
  return 'truncated';
}

/** In a transaction: drops manifest `id`'s tail, tokens and payload alike; it keeps its chunks. Its file goes to `dropped`. */
export function dropTail(ctx: StoreContext, id: string, dropped: string[]): void {
  sql(ctx, "UPDATE manifests SET tail_tokens = x'', tail_bytes = NULL, total_tokens = chunk_count * chunk_tokens WHERE id = ?").run(id);
  deleteTailPayload(ctx, id, dropped);
}

/**
 * In a transaction: deletes manifest `id`'s tails row, and adds the name of its file (when it has
 * one; a row written before tail files holds its payload itself) to `dropped`, to unlink once the
 * transaction has committed: before, a rollback would leave the row naming a removed file. Every
 * caller also sets the manifest's tail_bytes to NULL, or replaces the row, in the same
 * transaction: the two always agree. A name that is not a tail file's (an index edited behind
 * the store's back) is never turned into a path.
 */
export function deleteTailPayload(ctx: StoreContext, id: string, dropped: string[]): void {
  const row = sql(ctx, 'DELETE FROM tails WHERE manifest_id = ? RETURNING file').get(id) as { file: string | null } | undefined;
  if (isTailName(row?.file)) dropped.push(row.file);
}

/** Chunk files plus tail payloads (files or, for rows written before, BLOBs): what the budget counts. tail_bytes, so no payload is read. */
export function storedBytes(ctx: StoreContext): number {
  const row = sql(
    ctx,
    `SELECT (SELECT coalesce(sum(bytes), 0) FROM chunks) + (SELECT coalesce(sum(tail_bytes), 0) FROM manifests) AS bytes`,
  ).get() as { bytes: number };
  return row.bytes;
}
