/**
 * The KV store's integrity check and sweep: what `checkIntegrity`, `gc` and the check at open run
 * under the store's lock. The index is compared with the files (missing, damaged or unindexed
 * chunk and tail files, temp files of interrupted writes) and with itself (refcounts, manifests
 * that disagree with their chunk lists or their tails); a repair makes the index match the files
 * again, losing only cache, never a chunk a live manifest needs.
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ChunkFault } from './chunk-file.ts';
import { chunkPath, chunkSuffix, chunksDir, readChunkFile, tempSuffix } from './chunk-file.ts';
import { isDigest } from './fingerprint.ts';
import type { ChunkRow, StoreContext } from './store-context.ts';
import { collectUnreferenced, deleteTailPayload, dropTail, fileSize, sql, truncate, unlinkChunks, unlinkTails } from './store-context.ts';
import { transaction } from './store-db.ts';
import { errnoOf } from './store-fs.ts';
import type { GcReport, IntegrityReport } from './store-types.ts';
import { isTailName, readTailFileSync, scanTailFiles, tailPath, tailsDir } from './tail-file.ts';

interface ScannedFiles {
  readonly chunks: { key: string; path: string }[];
  /** Tail files, as names under `<root>/tails`. */
  readonly tails: string[];
  /** Temp files of chunk and tail writes, as paths. */
  readonly temps: string[];
}

/** Chunk files, tail files and temp files on disk, walking the fan-out directories. */
export async function scanFiles(ctx: StoreContext): Promise<ScannedFiles> {
  const tailFiles = await scanTailFiles(ctx.fs, ctx.root);
  const chunks: { key: string; path: string }[] = [];
  const temps: string[] = tailFiles.temps.map((name) => join(tailsDir(ctx.root), name));
  const found = { chunks, tails: tailFiles.files, temps };
  const top = chunksDir(ctx.root);
  let names: string[];
  try {
    names = await ctx.fs.readdir(top);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return found;
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
      files = await ctx.fs.readdir(path);
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
  return found;
}

function unindexed(ctx: StoreContext, files: { key: string; path: string }[]): { key: string; path: string }[] {
  return files.filter((f) => !sql(ctx, 'SELECT 1 FROM chunks WHERE key = ?').get(f.key));
}

/** Tail files no tails row names (a crash between a tail's write and its commit, or before its removal), as paths. */
function unindexedTails(ctx: StoreContext, names: string[]): string[] {
  return names.filter((name) => !sql(ctx, 'SELECT 1 FROM tails WHERE file = ?').get(name)).map((name) => tailPath(ctx.root, name));
}

export async function removeFiles(ctx: StoreContext, paths: string[]): Promise<number> {
  let bytes = 0;
  for (const path of paths) {
    const size = await fileSize(ctx, path);
    try {
      await ctx.fs.unlink(path);
      bytes += size ?? 0;
    } catch {
      // gone already, or not removable now: the next gc() tries again
    }
  }
  return bytes;
}


/**
 * Under the lock and holding the root, so every temp file seen here is stale: no write of this
 * process is in progress, and no other process writes here. Throws on index errors.
 */
export async function sweep(ctx: StoreContext): Promise<GcReport> {
  const unreferenced = transaction(ctx.db, () => collectUnreferenced(ctx));
  await unlinkChunks(ctx, unreferenced.map((r) => r.key));
  const files = await scanFiles(ctx);
  const orphans = [...unindexed(ctx, files.chunks).map((o) => o.path), ...unindexedTails(ctx, files.tails)];
  const bytesFreed = unreferenced.reduce((sum, r) => sum + r.bytes, 0) + (await removeFiles(ctx, [...orphans, ...files.temps]));
  return { unreferencedChunks: unreferenced.length, orphanFiles: orphans.length, tempFiles: files.temps.length, bytesFreed };
}


/** Under the lock: `checkIntegrity`'s work. Throws on index errors. */
export async function check(ctx: StoreContext, verify: boolean, repair: boolean): Promise<IntegrityReport> {
  const rows = sql(ctx, 'SELECT key, parent, tokens, bytes, refcount, corrupt FROM chunks ORDER BY key').all() as unknown as ChunkRow[];
  let chunksVerified = 0;
  const missing: string[] = [];
  const corrupt: { key: string; reason: ChunkFault }[] = [];
  const knownCorrupt: { key: string; reason: string }[] = [];
  for (const row of rows) {
    if (row.corrupt !== null) knownCorrupt.push({ key: row.key, reason: row.corrupt });
    if (verify) {
      const verdict = await readChunkFile(ctx.fs, ctx.root, row.key, ctx.kernels);
      if (verdict.ok && verdict.value.bytes === row.bytes) chunksVerified++;
      else if (verdict.ok) corrupt.push({ key: row.key, reason: 'length' });
      else if (verdict.fault === 'missing') missing.push(row.key);
      else corrupt.push({ key: row.key, reason: verdict.fault });
    } else {
      const size = await fileSize(ctx, chunkPath(ctx.root, row.key));
      if (size === null) missing.push(row.key);
      else if (size !== row.bytes) corrupt.push({ key: row.key, reason: size < row.bytes ? 'truncated' : 'length' });
      else chunksVerified++;
    }
  }
  const refcountMismatches = sql(
    ctx,
    `SELECT c.key AS key, c.refcount AS stored, count(mc.key) AS actual
     FROM chunks c LEFT JOIN manifest_chunks mc ON mc.key = c.key
     GROUP BY c.key HAVING c.refcount != count(mc.key)`,
  ).all() as unknown as { key: string; stored: number; actual: number }[];
  const danglingReferences = (
    sql(
      ctx,
      `SELECT manifest_id, idx, key FROM manifest_chunks WHERE key NOT IN (SELECT key FROM chunks) ORDER BY manifest_id, idx`,
    ).all() as unknown as { manifest_id: string; idx: number; key: string }[]
  ).map((r) => ({ manifestId: r.manifest_id, index: r.idx, key: r.key }));
  const inconsistentManifests = (
    sql(
      ctx,
      `SELECT m.id FROM manifests m LEFT JOIN (
         SELECT manifest_id, count(*) AS n, max(idx) AS top FROM manifest_chunks GROUP BY manifest_id
       ) s ON s.manifest_id = m.id
       WHERE coalesce(s.n, 0) != m.chunk_count
          OR (m.chunk_count > 0 AND (s.top != m.chunk_count - 1
              OR m.head != (SELECT key FROM manifest_chunks WHERE manifest_id = m.id AND idx = m.chunk_count - 1)))
          OR (m.chunk_count = 0 AND m.head != m.fingerprint)`,
    ).all() as unknown as { id: string }[]
  ).map((r) => r.id);
  const corruptTails = await checkTails(ctx, verify);
  // While another process holds the root, its temp files and not yet committed chunk and tail
  // files are writes in progress, not debris: only the holder judges them.
  const files = ctx.owner ? await scanFiles(ctx) : { chunks: [], tails: [], temps: [] };
  const orphanFiles = [...unindexed(ctx, files.chunks).map((o) => o.path), ...unindexedTails(ctx, files.tails)];
  const tempFiles = files.temps;
  const clean =
    missing.length + corrupt.length + knownCorrupt.length + orphanFiles.length + tempFiles.length + refcountMismatches.length + danglingReferences.length + inconsistentManifests.length + corruptTails.size === 0;
  if (repair && !clean) await repairIndex(ctx, { missing, corrupt, refcountMismatches, danglingReferences, inconsistentManifests, corruptTails: [...corruptTails] }, [...orphanFiles, ...tempFiles]);
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
    corruptTails: [...corruptTails].sort(),
    ok: clean,
    repaired: repair && !clean,
  };
}

/**
 * The manifests whose tail is damaged, and tails rows without a manifest. A manifest and its
 * tails row must agree: a row exactly when tail_bytes is not NULL, and no row without its
 * manifest (the foreign key deletes it with the manifest, but only on a connection that enforces
 * foreign keys). A tail file must exist with tail_bytes bytes (a stat; a legacy BLOB's length is
 * read from its row's header), so this is cheap enough for the check at open. Contents are read
 * only when verifying: tails can add up to gigabytes (a large model's partial chunk per chat),
 * and a damaged one is caught when it is read anyway (readTail).
 */
async function checkTails(ctx: StoreContext, verify: boolean): Promise<Set<string>> {
  const corrupt = new Set(
    (
      sql(
        ctx,
        `SELECT m.id AS id FROM manifests m LEFT JOIN tails t ON t.manifest_id = m.id
         WHERE (m.tail_bytes IS NULL) != (t.manifest_id IS NULL) OR (t.payload IS NOT NULL AND m.tail_bytes IS NOT length(t.payload))
         UNION SELECT manifest_id AS id FROM tails WHERE manifest_id NOT IN (SELECT id FROM manifests)`,
      ).all() as unknown as { id: string }[]
    ).map((r) => r.id),
  );
  const rows = sql(
    ctx,
    `SELECT t.manifest_id AS id, t.crc AS crc, t.file AS file, m.tail_bytes AS bytes FROM tails t JOIN manifests m ON m.id = t.manifest_id
     WHERE t.payload IS NULL AND m.tail_bytes IS NOT NULL`,
  ).all() as unknown as { id: string; crc: number; file: string | null; bytes: number }[];
  // One buffer for every file read (this runs rarely, not on a restore); not the store's tail
  // buffer, which holds the payload the last readTail returned.
  const buffer = verify && rows.length > 0 ? Buffer.allocUnsafeSlow(rows.reduce((max, r) => Math.max(max, r.bytes), 0) + 1) : null;
  for (const row of rows) {
    if (!isTailName(row.file)) corrupt.add(row.id);
    else if (buffer === null) {
      if ((await fileSize(ctx, tailPath(ctx.root, row.file))) !== row.bytes) corrupt.add(row.id);
    } else {
      const view = buffer.subarray(0, row.bytes + 1);
      const read = readTailFileSync(ctx.fs, ctx.root, row.file, view);
      // An I/O error is damage here too: the check says what it could not verify.
      if (!read.ok || read.bytes !== row.bytes || crc32(view.subarray(0, row.bytes)) !== row.crc) corrupt.add(row.id);
      await new Promise((resolve) => setImmediate(resolve)); // a large file per turn of the event loop
    }
  }
  if (verify) {
    for (const tail of sql(ctx, 'SELECT manifest_id, crc, payload FROM tails WHERE payload IS NOT NULL').iterate() as Iterable<{ manifest_id: string; crc: number; payload: Uint8Array }>) {
      if (crc32(tail.payload) !== tail.crc) corrupt.add(tail.manifest_id);
    }
  }
  return corrupt;
}

/** Under the lock: makes the index match the files again, losing only cache, never a needed chunk. */
async function repairIndex(
  ctx: StoreContext,
  found: Pick<IntegrityReport, 'missing' | 'corrupt' | 'refcountMismatches' | 'danglingReferences' | 'inconsistentManifests' | 'corruptTails'>,
  strayFiles: string[],
): Promise<void> {
  const bad = new Set([...found.missing, ...found.corrupt.map((c) => c.key), ...found.danglingReferences.map((d) => d.key)]);
  const dropped: string[] = [];
  const freed = transaction(ctx.db, () => {
    // Manifests whose row and chunk list disagree are rebuilt from the list up to its first gap.
    for (const id of found.inconsistentManifests) {
      const keys = sql(ctx, 'SELECT idx, key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx').all(id) as unknown as { idx: number; key: string }[];
      let run = 0;
      while (run < keys.length && (keys[run] as { idx: number }).idx === run) run++;
      sql(ctx, 'DELETE FROM manifest_chunks WHERE manifest_id = ? AND idx >= ?').run(id, run);
      const fp = (sql(ctx, 'SELECT fingerprint FROM manifests WHERE id = ?').get(id) as { fingerprint: string }).fingerprint;
      if (run === 0) {
        deleteTailPayload(ctx, id, dropped); // before the foreign key deletes the row, so its file is known
        sql(ctx, 'DELETE FROM manifests WHERE id = ?').run(id);
      } else {
        sql(
          ctx,
          `UPDATE manifests SET chunk_count = ?, head = ?, tail_tokens = x'', tail_bytes = NULL, total_tokens = ? * chunk_tokens WHERE id = ?`,
        ).run(run, run > 0 ? (keys[run - 1] as { key: string }).key : fp, run, id);
        deleteTailPayload(ctx, id, dropped);
      }
    }
    // Refcounts first, from the truth (manifest_chunks), so the cuts below count correctly.
    sql(ctx, 'UPDATE chunks SET refcount = (SELECT count(*) FROM manifest_chunks mc WHERE mc.key = chunks.key)').run();
    for (const key of bad) {
      sql(ctx, "UPDATE chunks SET corrupt = coalesce(corrupt, 'missing') WHERE key = ?").run(key);
      const users = sql(ctx, 'SELECT manifest_id, idx FROM manifest_chunks WHERE key = ?').all(key) as unknown as { manifest_id: string; idx: number }[];
      for (const user of users) truncate(ctx, user.manifest_id, user.idx, dropped);
    }
    // A damaged tail goes, tokens and payload (its file too); so does a tails row whose manifest is gone.
    for (const id of found.corruptTails) dropTail(ctx, id, dropped);
    // Known-corrupt chunks nobody references go with the unreferenced ones.
    return collectUnreferenced(ctx);
  });
  await unlinkChunks(ctx, freed.map((r) => r.key));
  await unlinkTails(ctx, dropped);
  await removeFiles(ctx, strayFiles);
}
