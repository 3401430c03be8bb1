/**
 * Opening a KV store, and holding its root. One process writes a root (root-lock.ts): a store
 * opened while another process holds it waits a while (`lockWaitMs`), then runs read-only with
 * persistence paused (BUSY) and takes the root over by itself once that process has exited.
 * Holding the root is what makes the sweep at open safe: every temp file and unindexed chunk
 * or tail file then belongs to a process that is gone. An index.db SQLite cannot read is moved aside
 * and the store starts empty (it is only a cache).
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { err, errorText, hearthError, ok } from '../contract/index.ts';
import type { HearthError, Result } from '../contract/index.ts';
import { Emitter } from '../base/emitter.ts';
import { Lock } from '../base/lock.ts';
import { chunksDir, tempSuffix } from './chunk-file.ts';
import type { CodecKernels } from './kernels.ts';
import { allocateWithRoom, RETAIN_MS } from './large-buffer.ts';
import { loadKernels } from './kernels-load.ts';
import type { RootLock } from './root-lock.ts';
import { describeBusy, lockRoot, tryLockRoot } from './root-lock.ts';
import type { StoreContext } from './store-context.ts';
import { closedError, setPause, writeError } from './store-context.ts';
import { openIndex } from './store-db.ts';
import type { StoreFs } from './store-fs.ts';
import { errnoOf, isDiskFull, nodeFs, ReusableBuffer, toHearthError } from './store-fs.ts';
import { check } from './store-integrity.ts';
import type { KvStoreOptions, PersistencePause, StoreLog } from './store-types.ts';
import { defaultChunkTokens, defaultLockWaitMs } from './store-types.ts';
import { tailSuffix } from './tail-file.ts';

const defaultLog: StoreLog = (level, message) => {
  if (level !== 'info') console.error(`Hearth: ${message}`);
};

/**
 * The shared state of a store opened at `options.root`, creating it if needed. An unwritable
 * directory is a clear INTERNAL error; a full disk is not an error (restores still work) but
 * starts with persistence paused, and so does a root another process holds. The caller starts
 * `sweepAtOpen` when the store holds its root.
 */
export async function openContext(options: KvStoreOptions): Promise<Result<StoreContext>> {
  const fs = options.fs ?? nodeFs;
  const log = options.log ?? defaultLog;
  const now = options.now ?? Date.now;
  const chunkTokens = options.chunkTokens ?? defaultChunkTokens;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) return err('INVALID_INPUT', 'The KV chunk size must be a positive whole number of tokens.');
  if (!(Number.isFinite(options.budgetBytes) && options.budgetBytes >= 0)) return err('INVALID_INPUT', 'The KV store budget must be a non-negative number of bytes.');
  const root = resolve(options.root);
  try {
    await fs.mkdir(root);
  } catch (error) {
    return unwritable(root, error);
  }
  const attempt = await lockRoot(root, { waitMs: options.lockWaitMs ?? defaultLockWaitMs });
  let pause: PersistencePause | null = null;
  let rootLock: RootLock | null = null;
  if (attempt.status === 'held') rootLock = attempt.lock;
  else if (attempt.status === 'busy') pause = { reason: lockedOut(root, attempt.owner), since: now() };
  else log('warn', `The KV store at ${root} cannot be locked (${attempt.error}); it is used without a lock, so no other Hearth process may use it at the same time.`);
  const owner = attempt.status !== 'busy';
  const fail = <T>(result: Result<T>): Result<T> => {
    rootLock?.release();
    return result;
  };
  if (owner) {
    try {
      const full = await probeWritable(fs, root);
      if (full !== null) pause = { reason: full, since: now() };
    } catch (error) {
      return fail(unwritable(root, error));
    }
  }
  const db = await openOrRebuildIndex(fs, root, owner, log);
  if (!db.ok) return fail(db);
  const ctx: StoreContext = {
    root,
    chunkTokens,
    db: db.value,
    fs,
    now,
    readConcurrency: Math.max(1, Math.floor(options.readConcurrency ?? 8)),
    kernels: options.kernels ?? defaultKernels(),
    log,
    lock: new Lock('kv-store'),
    statements: new Map(),
    persistence: new Emitter<PersistencePause | null>((error) => console.error('Hearth: a KV store listener threw:', error)),
    hashing: new Map(),
    readBuffer: new ReusableBuffer(),
    tailBuffer: new ReusableBuffer(RETAIN_MS, allocateWithRoom),
    budget: options.budgetBytes,
    pause,
    closed: false,
    rootLock,
    owner,
    claimTimer: null,
  };
  if (!owner) startClaiming(ctx, options.lockRetryMs ?? 2000);
  return ok(ctx);
}

function unwritable<T>(root: string, error: unknown): Result<T> {
  return err('INTERNAL', `The KV store directory ${root} is not usable: ${errorText(error)}.`, 'Choose a data directory Hearth can write to, or fix its permissions.');
}

/**
 * Writes and fsyncs a probe file under the chunks directory: null when writes work, the pause
 * reason when the disk is full. Throws when the root is not usable.
 */
async function probeWritable(fs: StoreFs, root: string): Promise<HearthError | null> {
  try {
    await fs.mkdir(chunksDir(root));
    const probe = join(chunksDir(root), `.probe-${process.pid}-${randomBytes(4).toString('hex')}${tempSuffix}`);
    const handle = await fs.open(probe, 'wx', 0o644);
    try {
      await handle.write(new Uint8Array([0]), 0, 1, 0);
      await handle.sync();
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      return writeError(error, 'The KV store cannot write');
    } finally {
      await handle.close().catch(() => undefined);
      await fs.unlink(probe).catch(() => undefined);
    }
  } catch (error) {
    if (isDiskFull(error)) return writeError(error, 'The KV store cannot write');
    throw error;
  }
  return null;
}

/** Opens index.db; one SQLite cannot read is moved aside and replaced, but only by the root's holder. */
async function openOrRebuildIndex(fs: StoreFs, root: string, owner: boolean, log: StoreLog): Promise<Result<DatabaseSync>> {
  const indexFile = join(root, 'index.db');
  try {
    return ok(openIndex(indexFile));
  } catch (error) {
    // Only the holder may replace the index: a locked-out process leaves it to the holder.
    if (!owner || !isUnreadableDatabase(error)) return unwritable(root, error);
    const moved = await moveAside(fs, indexFile);
    if (!moved.ok) return unwritable(root, moved.error);
    log(
      'warn',
      `The KV index ${indexFile} could not be read (${errorText(error)}): moved aside to ${indexFile}.damaged and started empty; its chunk files are removed, and each chat re-reads its history once.`,
    );
  }
  try {
    return ok(openIndex(indexFile));
  } catch (again) {
    return unwritable(root, again);
  }
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

/** The kernels a store uses unless told otherwise: the process's choice (loaded once). */
function defaultKernels(): CodecKernels {
  return loadKernels().kernels;
}

/** While locked out: tries to take the root over every `retryMs`. */
function startClaiming(ctx: StoreContext, retryMs: number): void {
  ctx.claimTimer = setInterval(() => {
    void ctx.lock.run(() => claim(ctx)).catch(() => undefined);
  }, Math.max(10, retryMs));
  ctx.claimTimer.unref();
}

/**
 * Runs a task under the lock; a throw becomes INTERNAL (a bug or an I/O failure). A task that
 * writes (`writes`, the default) first needs the root (`claim`): while another process holds
 * it, the task is refused with the pause's BUSY reason.
 */
export function locked<T>(
  ctx: StoreContext,
  context: string,
  task: () => Promise<Result<T>> | Result<T>,
  options: { readonly writes?: boolean } = {},
): Promise<Result<T>> {
  return ctx.lock.run(async () => {
    if (ctx.closed) return closedError<T>();
    try {
      if (options.writes !== false) {
        const busy = await claim(ctx);
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
export async function claim(ctx: StoreContext): Promise<HearthError | null> {
  if (ctx.owner || ctx.closed) return null;
  const attempt = tryLockRoot(ctx.root);
  if (attempt.status === 'busy') return ctx.pause?.reason.code === 'BUSY' ? ctx.pause.reason : lockedOut(ctx.root, attempt.owner);
  if (attempt.status === 'held') ctx.rootLock = attempt.lock;
  else ctx.log('warn', `The KV store at ${ctx.root} cannot be locked any more (${attempt.error}); it is used without a lock.`);
  ctx.owner = true;
  if (ctx.claimTimer !== null) clearInterval(ctx.claimTimer);
  ctx.claimTimer = null;
  ctx.log('info', `The other process using the KV store at ${ctx.root} has exited: this one saves chats' KV again.`);
  if (ctx.pause?.reason.code === 'BUSY') setPause(ctx, null);
  // A failure here is reported by the next write.
  await ctx.fs.mkdir(chunksDir(ctx.root)).catch(() => undefined);
  await sweepAndLog(ctx);
  return null;
}

/**
 * Starts the check at open: what an interrupted run left is repaired before any later mutation
 * (it runs under the lock). A killed process leaves temp files, and chunk and tail files it
 * never committed (or committed the removal of, but had not removed yet); a power cut can also
 * lose a commit (synchronous=NORMAL, store-db.ts) whose chunk or tail files were already
 * removed, or the contents of a tail file (they are not fsynced), leaving manifests that list
 * missing files. Sizes are checked, not contents (a stat per chunk and tail file): damaged
 * contents are caught when read.
 */
export function sweepAtOpen(ctx: StoreContext): void {
  void ctx.lock.run(async () => {
    if (!ctx.closed) await sweepAndLog(ctx);
  });
}

async function sweepAndLog(ctx: StoreContext): Promise<void> {
  try {
    const found = await check(ctx, false, true);
    if (found.ok) return;
    const parts = [
      [found.tempFiles.length, 'temp file(s)'],
      [found.orphanFiles.filter((path) => !path.endsWith(tailSuffix)).length, 'unindexed chunk file(s)'],
      [found.orphanFiles.filter((path) => path.endsWith(tailSuffix)).length, 'unindexed tail file(s)'],
      [found.missing.length, 'missing chunk file(s)'],
      [found.corrupt.length, 'chunk file(s) of the wrong size'],
      [found.knownCorrupt.length, 'chunk(s) found damaged earlier'],
      [found.corruptTails.length, 'missing or damaged tail(s)'],
      [found.danglingReferences.length + found.inconsistentManifests.length + found.refcountMismatches.length, 'index inconsistencies'],
    ]
      .filter(([n]) => (n as number) > 0)
      .map(([n, what]) => `${n} ${what}`);
    ctx.log('info', `The KV store repaired what an interrupted run left: ${parts.join(', ')}; chats re-read what was lost.`);
  } catch (error) {
    ctx.log('warn', `The KV store could not check itself at open: ${errorText(error)}.`);
  }
}

/** Waits for running mutations, then closes the index and lets go of the root. */
export async function closeContext(ctx: StoreContext): Promise<void> {
  if (ctx.closed) return;
  await ctx.lock.run(() => {
    if (ctx.closed) return;
    ctx.closed = true;
    if (ctx.claimTimer !== null) clearInterval(ctx.claimTimer);
    ctx.claimTimer = null;
    ctx.statements.clear();
    ctx.tailBuffer.clear();
    ctx.persistence.dispose();
    ctx.db.close();
    // After the index is closed: the next holder finds nothing of this process open.
    ctx.rootLock?.release();
    ctx.rootLock = null;
  });
}
