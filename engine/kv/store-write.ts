/**
 * The KV store's writes: saving a manifest (its missing chunk files and its tail file, then one
 * commit), deleting one, and marking one used. Files are written before the commit that
 * references them (chunk files fsynced too; tail files not, tail-file.ts says why) and removed
 * after the commit that drops them, so the index never lists a file that was not written; a
 * crash in between leaves orphan files, which gc() removes. Every write runs under the store's
 * lock and needs its root (store-open.ts `locked`).
 */
import { crc32 } from 'node:zlib';
import { err, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import { writeChunkFile } from './chunk-file.ts';
import { chunkKeys, isDigest, tokenBytes } from './fingerprint.ts';
import { decodedSize } from './frame.ts';
import type { ManifestInput } from './manifest.ts';
import type { StoreContext } from './store-context.ts';
import { chunkRow, collectUnreferenced, deleteTailPayload, paused, setPause, sql, truncate, unlinkChunks, unlinkTails } from './store-context.ts';
import { transaction } from './store-db.ts';
import { locked } from './store-open.ts';
import { checkTokens } from './store-read.ts';
import type { DeleteResult, PutManifestResult } from './store-types.ts';
import { writeTailFile } from './tail-file.ts';

const maxIdLength = 1024;

function checkId(id: unknown): string | null {
  if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength) return `a manifest id is a string of 1 to ${maxIdLength} characters`;
  return null;
}

/** A payload's decoded size (frame.ts), or its own size for bytes that are not a KV payload. */
function rawSize(payload: Uint8Array): number {
  const size = decodedSize(payload);
  return size.ok ? size.value : payload.byteLength;
}

/** A chunk file written by this save, for its row. */
interface WrittenChunk {
  readonly key: string;
  readonly parent: string;
  readonly bytes: number;
  readonly raw: number;
}

/** The tail payload's file written by this save, for its row. */
interface WrittenTail {
  readonly file: string;
  readonly crc: number;
  readonly raw: number;
}

interface ChunkWrites {
  readonly written: WrittenChunk[];
  /** Written with no row yet: removed again if the commit fails. */
  readonly fresh: string[];
  readonly bytesWritten: number;
  readonly reused: number;
}

export function putManifest(ctx: StoreContext, id: string, input: ManifestInput): Promise<Result<PutManifestResult>> {
  return locked(ctx, 'Could not save the KV manifest', async () => {
    const invalid = checkId(id) ?? (isDigest(input.fingerprint) ? null : 'the fingerprint is not a sha256 hex digest') ?? checkTokens(input.tokens);
    if (invalid) return err('INVALID_INPUT', `Invalid manifest: ${invalid}.`);
    const size = ctx.chunkTokens;
    const { tokens } = input;
    const keys = chunkKeys(input.fingerprint, tokens, size);
    const tailStart = keys.length * size;
    if (input.tailPayload !== undefined && tailStart === tokens.length) {
      return err('INVALID_INPUT', 'Invalid manifest: a tail payload was given, but the tokens end on a chunk boundary.');
    }
    // 1. Chunk files, outside any transaction: only those the store lacks or holds damaged.
    const writes = await writeMissingChunks(ctx, input, keys);
    if (!writes.ok) return writes;
    const { written, fresh, bytesWritten, reused } = writes.value;
    // 2. The tail payload's file, under a new name: the one the manifest's row names now stays
    // as it is until the commit below replaces the row.
    const tailPayload = input.tailPayload ?? null;
    let tail: WrittenTail | null = null;
    if (tailPayload !== null) {
      try {
        tail = { file: await writeTailFile(ctx.fs, ctx.root, tailPayload), crc: crc32(tailPayload), raw: rawSize(tailPayload) };
      } catch (error) {
        await unlinkChunks(ctx, fresh);
        return paused(ctx, error, 'Could not write the KV tail');
      }
    }
    // 3. One transaction: chunk rows, refcounts, the manifest row, its tail row.
    let committed: { freed: { key: string; bytes: number }[]; dropped: string[] };
    try {
      committed = transaction(ctx.db, () => commitManifest(ctx, id, input, keys, written, tail));
    } catch (error) {
      await unlinkChunks(ctx, fresh);
      if (tail !== null) await unlinkTails(ctx, [tail.file]);
      return paused(ctx, error, 'Could not save the KV manifest');
    }
    // 4. What the commit let go: chunks nobody references, the tail file it replaced.
    await unlinkChunks(ctx, committed.freed.map((r) => r.key));
    await unlinkTails(ctx, committed.dropped);
    setPause(ctx, null);
    return ok({ chunksWritten: written.length, bytesWritten, chunksReused: reused, tailBytes: tailPayload?.length ?? 0, totalTokens: tokens.length });
  });
}

/** Under the lock: writes the chunk files of `keys` the store lacks. On failure the files it wrote are gone again. */
async function writeMissingChunks(ctx: StoreContext, input: ManifestInput, keys: readonly string[]): Promise<Result<ChunkWrites>> {
  const size = ctx.chunkTokens;
  const { fingerprint, tokens, chunks: source } = input;
  const payloadOf = async (index: number, key: string): Promise<Uint8Array | undefined> =>
    typeof source === 'function' ? await source(index, key) : source?.[index];
  const fresh: string[] = [];
  const written: WrittenChunk[] = [];
  let bytesWritten = 0;
  let reused = 0;
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index] as string;
    const row = chunkRow(ctx, key);
    // The index is trusted here (no stat per chunk per turn): a file damaged behind the
    // store's back is caught when it is read, recorded, and rewritten by the next save.
    if (row && row.corrupt === null) {
      reused++;
      continue;
    }
    const payload = await payloadOf(index, key);
    if (payload === undefined) {
      await unlinkChunks(ctx, fresh);
      return err('NOT_FOUND', `KV chunk ${index} (${key.slice(0, 12)}…) is not stored, and no payload was given for it.`);
    }
    const parent = index === 0 ? fingerprint : (keys[index - 1] as string);
    try {
      const bytes = await writeChunkFile(
        ctx.fs,
        ctx.root,
        { key, parent, tokens: Array.prototype.slice.call(tokens, index * size, (index + 1) * size) as number[], payload },
        ctx.kernels,
      );
      written.push({ key, parent, bytes, raw: rawSize(payload) });
      if (!row) fresh.push(key);
      bytesWritten += bytes;
    } catch (error) {
      await unlinkChunks(ctx, fresh);
      return paused(ctx, error, 'Could not write a KV chunk');
    }
  }
  return ok({ written, fresh, bytesWritten, reused });
}

/**
 * In a transaction: the rows of the written chunks, the manifest's chunk list and row, its tail
 * row (`tail`: the file written for it; null keeps only the tail's tokens). Returns the chunks it
 * freed and the tail file it dropped (the manifest's previous one), to remove after the commit.
 */
function commitManifest(
  ctx: StoreContext,
  id: string,
  input: ManifestInput,
  keys: readonly string[],
  written: readonly WrittenChunk[],
  tail: WrittenTail | null,
): { freed: { key: string; bytes: number }[]; dropped: string[] } {
  const size = ctx.chunkTokens;
  const { fingerprint, tokens } = input;
  const tailTokens = tokenBytes(tokens, keys.length * size);
  const tailBytes = tail === null ? null : (input.tailPayload as Uint8Array).length;
  const now = ctx.now();
  for (const w of written) {
    sql(
      ctx,
      `INSERT INTO chunks (key, parent, tokens, bytes, raw_bytes, refcount, last_used, created_at, corrupt) VALUES (?, ?, ?, ?, ?, 0, ?, ?, NULL)
       ON CONFLICT(key) DO UPDATE SET bytes = excluded.bytes, raw_bytes = excluded.raw_bytes, corrupt = NULL, last_used = excluded.last_used`,
    ).run(w.key, w.parent, size, w.bytes, w.raw, now, now);
  }
  const old = sql(ctx, 'SELECT key FROM manifest_chunks WHERE manifest_id = ?').all(id) as unknown as { key: string }[];
  for (const { key } of old) sql(ctx, 'UPDATE chunks SET refcount = refcount - 1 WHERE key = ?').run(key);
  sql(ctx, 'DELETE FROM manifest_chunks WHERE manifest_id = ?').run(id);
  keys.forEach((key, index) => {
    const changed = sql(ctx, 'UPDATE chunks SET refcount = refcount + 1, last_used = ? WHERE key = ?').run(now, key);
    if (Number(changed.changes) !== 1) throw new Error(`chunk ${key} vanished during a save`);
    sql(ctx, 'INSERT INTO manifest_chunks (manifest_id, idx, key) VALUES (?, ?, ?)').run(id, index, key);
  });
  sql(
    ctx,
    `INSERT INTO manifests (id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, tail_bytes, total_tokens, last_used, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT(id) DO UPDATE SET fingerprint = excluded.fingerprint, chunk_tokens = excluded.chunk_tokens,
       chunk_count = excluded.chunk_count, head = excluded.head, tail_tokens = excluded.tail_tokens,
       tail_bytes = excluded.tail_bytes, total_tokens = excluded.total_tokens, last_used = excluded.last_used`,
  ).run(id, fingerprint, size, keys.length, keys.at(-1) ?? fingerprint, tailTokens, tailBytes, tokens.length, now, now);
  // The tail row after its manifest row (the foreign key needs the row), in the same
  // transaction. The previous row goes first, whatever it held: its file (or, written before
  // tail files, its BLOB) is replaced, or dropped by a save without a payload.
  const dropped: string[] = [];
  deleteTailPayload(ctx, id, dropped);
  if (tail !== null) {
    sql(ctx, 'INSERT INTO tails (manifest_id, crc, raw_bytes, file, payload) VALUES (?, ?, ?, ?, NULL)').run(id, tail.crc, tail.raw, tail.file);
  }
  return { freed: collectUnreferenced(ctx), dropped };
}

export async function deleteManifest(ctx: StoreContext, id: string): Promise<Result<DeleteResult>> {
  const deleted = await deleteManifests(ctx, 'Could not delete the KV manifest', () =>
    sql(ctx, 'SELECT id, coalesce(tail_bytes, 0) AS tail FROM manifests WHERE id = ?').all(id) as unknown as ManifestToDelete[],
  );
  if (!deleted.ok) return deleted;
  const { manifests, chunksRemoved, bytesFreed } = deleted.value;
  return ok({ deleted: manifests > 0, chunksRemoved, bytesFreed });
}

/** A manifest `deleteManifests` deletes, with its tail payload's bytes. */
export interface ManifestToDelete {
  readonly id: string;
  readonly tail: number;
}

/**
 * Deletes the manifests `select` lists (read inside the transaction) and the chunks only they
 * used, in one transaction under the store's lock, so never between a save's chunk files and its
 * commit. The files go after the commit. One manifest's delete and a model's forget both use it.
 */
export function deleteManifests(
  ctx: StoreContext,
  what: string,
  select: () => readonly ManifestToDelete[],
): Promise<Result<{ manifests: number; chunksRemoved: number; bytesFreed: number }>> {
  return locked(ctx, what, async () => {
    const plan = transaction(ctx.db, () => {
      const dropped: string[] = [];
      let manifests = 0;
      let tailBytes = 0;
      for (const { id, tail } of select()) {
        if (truncate(ctx, id, 0, dropped) !== 'deleted') continue;
        manifests++;
        tailBytes += tail;
      }
      return { manifests, tailBytes, dropped, freed: manifests > 0 ? collectUnreferenced(ctx) : [] };
    });
    await unlinkChunks(ctx, plan.freed.map((r) => r.key));
    await unlinkTails(ctx, plan.dropped);
    return ok({ manifests: plan.manifests, chunksRemoved: plan.freed.length, bytesFreed: plan.freed.reduce((sum, r) => sum + r.bytes, 0) + plan.tailBytes });
  });
}

/**
 * Marks a manifest and its chunks used (every restore). The manifest row holds no payload (its
 * tail is a file, store-db.ts), so this rewrites a few small rows, never a tail payload.
 */
export function touch(ctx: StoreContext, id: string): Promise<Result<void>> {
  return locked(ctx, 'Could not update the KV manifest', () =>
    transaction(ctx.db, () => {
      const now = ctx.now();
      const changed = sql(ctx, 'UPDATE manifests SET last_used = ? WHERE id = ?').run(now, id);
      if (Number(changed.changes) === 0) return err('NOT_FOUND', `No KV manifest ${id}.`);
      sql(ctx, 'UPDATE chunks SET last_used = ? WHERE key IN (SELECT key FROM manifest_chunks WHERE manifest_id = ?)').run(now, id);
      return ok(undefined);
    }),
  );
}
