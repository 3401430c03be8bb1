/**
 * The KV store's upkeep: the byte budget and LRU eviction, GC, the integrity check as an
 * operation, and stats. Eviction cuts a chat's unshared suffix first: refcounts never increase
 * along a hash chain (a manifest holding chunk i holds chunks 0..i-1), so no eviction or GC
 * removes a chunk that a live manifest needs.
 */
import { join } from 'node:path';
import { err, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import { chunkHeaderBytes } from './chunk-file.ts';
import type { StoreContext } from './store-context.ts';
import { collectUnreferenced, dropTail, fileSize, readIndex, sql, storedBytes, truncate, unlinkChunks, unlinkTails } from './store-context.ts';
import { transaction } from './store-db.ts';
import { check, sweep } from './store-integrity.ts';
import { locked } from './store-open.ts';
import type { EvictionReport, GcReport, IntegrityReport, KvStoreStats } from './store-types.ts';

export function setBudget(ctx: StoreContext, bytes: number): Result<void> {
  if (!(Number.isFinite(bytes) && bytes >= 0)) return err('INVALID_INPUT', 'The KV store budget must be a non-negative number of bytes.');
  ctx.budget = bytes;
  return ok(undefined);
}

/** Evicts least-recently-used chats (their unshared suffix first) until within the budget. */
export function enforceBudget(ctx: StoreContext): Promise<Result<EvictionReport>> {
  return locked(ctx, 'Could not evict from the KV store', async () => {
    const budget = ctx.budget;
    const truncated = new Set<string>();
    const deleted: string[] = [];
    const plan = transaction(ctx.db, () => {
      const dropped: string[] = [];
      const freed = collectUnreferenced(ctx);
      let stored = storedBytes(ctx);
      let tailBytes = 0;
      const lru = sql(ctx, 'SELECT id FROM manifests ORDER BY last_used ASC, created_at ASC, id ASC').all() as unknown as { id: string }[];
      for (const { id } of lru) {
        if (stored <= budget) break;
        const tail = sql(ctx, 'SELECT tail_bytes AS bytes FROM manifests WHERE id = ?').get(id) as { bytes: number | null };
        if (tail.bytes !== null) {
          dropTail(ctx, id, dropped);
          stored -= tail.bytes;
          tailBytes += tail.bytes;
          truncated.add(id);
        }
        // The chat's unshared chunks are its suffix (refcounts never increase along a chain), so
        // cutting from the end frees bytes first and never leaves a later chunk without the
        // chunks before it. A shared chunk only loses this chat's reference.
        const keys = sql(ctx, 'SELECT idx, key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx DESC').all(id) as unknown as { idx: number; key: string }[];
        let cut: number | null = null;
        for (const { idx, key } of keys) {
          if (stored <= budget) break;
          const row = sql(ctx, 'SELECT refcount, bytes FROM chunks WHERE key = ?').get(key) as { refcount: number; bytes: number } | undefined;
          if (row && row.refcount <= 1) stored -= row.bytes;
          cut = idx;
        }
        if (cut !== null) {
          if (truncate(ctx, id, cut, dropped) === 'deleted') deleted.push(id);
          else truncated.add(id);
          freed.push(...collectUnreferenced(ctx));
        } else if (keys.length === 0 && tail.bytes !== null) {
          truncate(ctx, id, 0, dropped);
          deleted.push(id);
        }
      }
      return { freed, tailBytes, stored, dropped };
    });
    await unlinkChunks(ctx, plan.freed.map((r) => r.key));
    await unlinkTails(ctx, plan.dropped);
    for (const id of deleted) truncated.delete(id);
    return ok({
      chunksRemoved: plan.freed.length,
      bytesFreed: plan.freed.reduce((sum, r) => sum + r.bytes, 0) + plan.tailBytes,
      truncated: [...truncated],
      deleted,
      storedBytes: storedBytes(ctx),
      budget,
    });
  });
}

/** Removes unreferenced chunks, orphan chunk and tail files, and stale temp files. */
export function gc(ctx: StoreContext): Promise<Result<GcReport>> {
  return locked(ctx, 'Could not clean the KV store', async () => ok(await sweep(ctx)));
}

export function checkIntegrity(ctx: StoreContext, options: { verify?: boolean; repair?: boolean } = {}): Promise<Result<IntegrityReport>> {
  const verify = options.verify ?? true;
  const repair = options.repair ?? false;
  return locked(
    ctx,
    'Could not check the KV store',
    async () => ok(await check(ctx, verify, repair)),
    // Only a repair writes; a check also runs while another process holds the root.
    { writes: repair },
  );
}

export async function stats(ctx: StoreContext): Promise<Result<KvStoreStats>> {
  // Tail sizes come from manifests.tail_bytes and tails.raw_bytes (stored before any payload in
  // its row), so no payload or file is read. Tail files are on disk beside the chunk files; the
  // payloads of rows written before them are inside index.db, so counted by its size.
  const counts = readIndex(ctx, 'Could not read KV store stats', () =>
    ok(
      sql(
        ctx,
        `SELECT (SELECT coalesce(sum(bytes), 0) FROM chunks) AS chunk_bytes,
                (SELECT count(*) FROM chunks) AS chunk_count,
                (SELECT count(*) FROM manifests) AS manifests,
                (SELECT coalesce(sum(tail_bytes), 0) FROM manifests) AS tail_bytes,
                (SELECT coalesce(sum(m.tail_bytes), 0) FROM manifests m JOIN tails t ON t.manifest_id = m.id WHERE t.file IS NOT NULL) AS tail_file_bytes,
                (SELECT coalesce(sum(coalesce(raw_bytes, bytes - ? - 4 * tokens)), 0) FROM chunks) AS chunk_raw_bytes,
                (SELECT coalesce(sum(raw_bytes), 0) FROM tails) AS tail_raw_bytes,
                (SELECT coalesce(sum(c.bytes), 0) FROM manifest_chunks mc JOIN chunks c ON c.key = mc.key) AS referenced_bytes`,
      ).get(chunkHeaderBytes) as {
        chunk_bytes: number;
        chunk_count: number;
        manifests: number;
        tail_bytes: number;
        tail_file_bytes: number;
        chunk_raw_bytes: number;
        tail_raw_bytes: number;
        referenced_bytes: number;
      },
    ),
  );
  if (!counts.ok) return counts;
  const c = counts.value;
  let indexBytes = 0;
  for (const suffix of ['', '-wal', '-shm']) indexBytes += (await fileSize(ctx, join(ctx.root, `index.db${suffix}`))) ?? 0;
  let freeBytes: number | null = null;
  try {
    const fsStats = await ctx.fs.statfs(ctx.root);
    freeBytes = Number(fsStats.bavail) * Number(fsStats.bsize);
  } catch {
    // unknown on this file system
  }
  const storedBytes = c.chunk_bytes + c.tail_bytes;
  const budget = ctx.budget;
  return ok({
    bytesOnDisk: c.chunk_bytes + c.tail_file_bytes + indexBytes,
    storedBytes,
    logicalBytes: c.referenced_bytes + c.tail_bytes,
    rawBytes: c.chunk_raw_bytes + c.tail_raw_bytes,
    chunkCount: c.chunk_count,
    manifests: c.manifests,
    budget,
    usage: budget > 0 ? storedBytes / budget : storedBytes > 0 ? 1 : 0,
    freeBytes,
    persistencePaused: ctx.pause,
  });
}
