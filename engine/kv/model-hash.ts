/**
 * The sha256 of a model file, part of the KV fingerprint (docs/decisions/model-identity.md: a
 * state loads silently into another model of the same shapes). Hashing gigabytes takes seconds,
 * so the hash is cached in index.db per (path, size, mtime), and two callers asking for the same
 * file share one hash in progress.
 */
import { resolve } from 'node:path';
import { err, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import type { HashProgress } from './fingerprint.ts';
import { hashFile } from './fingerprint.ts';
import type { StoreContext } from './store-context.ts';
import { closedError, readIndex, sql } from './store-context.ts';
import { toHearthError } from './store-fs.ts';

type HashOptions = { onProgress?: HashProgress; signal?: AbortSignal };

/** The hash of the model file at `path`, from the cache when the file has not changed. */
export async function modelContentHash(ctx: StoreContext, path: string, options: HashOptions = {}): Promise<Result<string>> {
  if (ctx.closed) return closedError();
  const file = resolve(path);
  let stat;
  try {
    stat = await ctx.fs.stat(file);
  } catch (error) {
    return { ok: false, error: toHearthError(error, `Could not read the model file ${file}`) };
  }
  if (!stat.isFile()) return err('NOT_FOUND', `${file} is not a file.`);
  const cached = cachedHash(ctx, file, stat);
  if (!cached.ok) return cached;
  if (cached.value !== null) return ok(cached.value);
  const id = `${file}\0${stat.size}\0${stat.mtimeMs}`;
  let running = ctx.hashing.get(id);
  if (!running) {
    running = hashModel(ctx, file, stat.size, stat.mtimeMs, options).finally(() => ctx.hashing.delete(id));
    ctx.hashing.set(id, running);
  }
  return running;
}

/**
 * The hash cached for the model file at `path`, never hashing: by its (path, size, mtime), null
 * when there is no such row (a file the store never hashed has no KV stored; hashing gigabytes
 * only to say so would be wrong). A file that no longer exists answers the row of its path
 * whatever its size and mtime: the last content hashed there is the one deleted, and its KV is
 * what is left of it.
 */
export async function knownModelHash(ctx: StoreContext, path: string): Promise<Result<string | null>> {
  if (ctx.closed) return closedError();
  if (typeof path !== 'string' || path === '') return err('INVALID_INPUT', 'A model file path is needed.');
  const file = resolve(path);
  let stat;
  try {
    stat = await ctx.fs.stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, error: toHearthError(error, `Could not read the model file ${file}`) };
    stat = null;
  }
  if (stat !== null && !stat.isFile()) return err('NOT_FOUND', `${file} is not a file.`);
  return cachedHash(ctx, file, stat);
}

/** The hash cached for this version of the file (its size and mtime), or for its path whatever they were when `version` is null. */
function cachedHash(ctx: StoreContext, file: string, version: { size: number; mtimeMs: number } | null): Result<string | null> {
  return readIndex(ctx, 'Could not read the model hash cache', () => {
    const row = (
      version === null
        ? sql(ctx, 'SELECT hash FROM model_hashes WHERE path = ?').get(file)
        : sql(ctx, 'SELECT hash FROM model_hashes WHERE path = ? AND size = ? AND mtime_ms = ?').get(file, version.size, version.mtimeMs)
    ) as { hash: string } | undefined;
    return ok(row?.hash ?? null);
  });
}

async function hashModel(ctx: StoreContext, file: string, size: number, mtimeMs: number, options: HashOptions): Promise<Result<string>> {
  const hashed = await hashFile(ctx.fs, file, options);
  if (!hashed.ok) return hashed;
  let after;
  try {
    after = await ctx.fs.stat(file);
  } catch (error) {
    return { ok: false, error: toHearthError(error, `Could not read the model file ${file}`) };
  }
  if (after.size !== size || after.mtimeMs !== mtimeMs || hashed.value.size !== size) {
    return err('INTERNAL', `The model file ${file} changed while it was being hashed.`, 'Wait for the file to finish copying, then load it again.');
  }
  return readIndex(ctx, 'Could not store the model hash', () => {
    // A cache row per path: a changed file replaces its old hash instead of piling up.
    sql(
      ctx,
      `INSERT INTO model_hashes (path, size, mtime_ms, hash, computed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, hash = excluded.hash, computed_at = excluded.computed_at`,
    ).run(file, size, mtimeMs, hashed.value.hash, ctx.now());
    return ok(hashed.value.hash);
  });
}
