/**
 * The KV index's schema (store-db.ts): tail payloads live in files that their own table names, so
 * that marking a manifest used rewrites a small row, never a payload; an index written before
 * upgrades in place with its tails (kept as BLOBs until the next save); and no tails row or tail
 * file outlives its manifest's tail.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it, vi } from 'vitest';
import { openSqlite } from '../sqlite.ts';
import { chunkKeys } from './fingerprint.ts';
import { migrations } from './store-db.ts';
import type { KvStore } from './store.ts';
import { tailPath, tailsDir } from './tail-file.ts';
import { payloadFor, payloadsFor, range, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { fingerprint: fp, open: openStore, save } = stores;

function withIndex<T>(fn: (db: DatabaseSync) => T, options: { foreignKeys?: boolean } = {}): T {
  const db = new DatabaseSync(join(stores.root, 'index.db'), { enableForeignKeyConstraints: options.foreignKeys ?? true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

interface TailRow {
  id: string;
  rowid: number;
  /** The payload's length: its file's size, or its BLOB's (a row written before tail files). */
  bytes: number | null;
  file: string | null;
}

/** Every tails row, and every manifest's tail_bytes, read behind the store's back. */
function tailState(): { tails: TailRow[]; manifests: Record<string, number | null> } {
  return withIndex((db) => ({
    tails: (db.prepare('SELECT manifest_id AS id, rowid, file, length(payload) AS bytes FROM tails ORDER BY manifest_id').all() as unknown as TailRow[]).map((t) => ({
      ...t,
      bytes: t.file === null ? t.bytes : existsSync(tailPath(stores.root, t.file)) ? statSync(tailPath(stores.root, t.file)).size : null,
    })),
    manifests: Object.fromEntries(
      (db.prepare('SELECT id, tail_bytes FROM manifests ORDER BY id').all() as { id: string; tail_bytes: number | null }[]).map((r) => [r.id, r.tail_bytes]),
    ),
  }));
}

/** The files in `<root>/tails`, read behind the store's back. */
function tailFiles(): string[] {
  return existsSync(tailsDir(stores.root)) ? readdirSync(tailsDir(stores.root)).sort() : [];
}

/**
 * A payload exactly for each manifest whose tail_bytes is set, of that length, and no other; a
 * tail file exactly for each row that names one.
 */
function expectTailsConsistent(): void {
  const { tails, manifests } = tailState();
  expect(Object.fromEntries(tails.map((t) => [t.id, t.bytes]))).toEqual(Object.fromEntries(Object.entries(manifests).filter(([, bytes]) => bytes !== null)));
  expect(tailFiles()).toEqual(tails.flatMap((t) => (t.file === null ? [] : [t.file])).sort());
}

/** Pages per table or index (overflow pages included), from SQLite's dbstat. */
function pagesOf(): Record<string, number> {
  return withIndex((db) =>
    Object.fromEntries((db.prepare('SELECT name, count(*) AS pages FROM dbstat GROUP BY name').all() as { name: string; pages: number }[]).map((r) => [r.name, r.pages])),
  );
}

/** The page numbers of the frames a WAL file holds, in order (WAL format: a 32-byte header, then a 24-byte header per page). */
function walPages(file: string): number[] {
  const wal = readFileSync(file);
  if (wal.length === 0) return [];
  const pageSize = wal.readUInt32BE(8);
  const pages: number[] = [];
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) pages.push(wal.readUInt32BE(at));
  return pages;
}

function columns(db: DatabaseSync, table: string): string[] {
  return (db.prepare(`SELECT name FROM pragma_table_info('${table}') ORDER BY cid`).all() as { name: string }[]).map((c) => c.name);
}

/**
 * Replaces the store's (closed) index.db with an index at schema `version`, built by that
 * version's own migrations and holding the same rows as that version's store wrote them: each
 * tail payload (read from its file), its checksum (and from version 2 its raw size) in the
 * manifest row. At schema 3, in the tails table. The tail files stay, unreferenced.
 */
function rewriteAtVersion(version: 1 | 2 | 3): void {
  const file = join(stores.root, 'index.db');
  const old = `${file}.old`;
  const db = openSqlite(old, { migrations: migrations.slice(0, version), what: 'The old KV index' });
  try {
    db.prepare('ATTACH DATABASE ? AS cur').run(file);
    const chunkRaw = version >= 2 ? ', raw_bytes' : '';
    db.exec(
      `INSERT INTO chunks (key, parent, tokens, bytes, refcount, last_used, created_at, corrupt${chunkRaw})
       SELECT key, parent, tokens, bytes, refcount, last_used, created_at, corrupt${chunkRaw} FROM cur.chunks`,
    );
    const payloadOf = (file: string | null, payload: Uint8Array | null): Uint8Array | null => (file === null ? payload : readFileSync(tailPath(stores.root, file)));
    const tails = db.prepare('SELECT manifest_id AS id, crc, raw_bytes, file, payload FROM cur.tails').all() as unknown as {
      id: string;
      crc: number;
      raw_bytes: number;
      file: string | null;
      payload: Uint8Array | null;
    }[];
    if (version === 3) {
      db.exec(
        `INSERT INTO manifests (id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, tail_bytes, total_tokens, last_used, created_at)
         SELECT id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, tail_bytes, total_tokens, last_used, created_at FROM cur.manifests`,
      );
      for (const t of tails) db.prepare('INSERT INTO tails (manifest_id, crc, raw_bytes, payload) VALUES (?, ?, ?, ?)').run(t.id, t.crc, t.raw_bytes, payloadOf(t.file, t.payload));
    } else {
      db.exec(
        `INSERT INTO manifests (id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, total_tokens, last_used, created_at)
         SELECT id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, total_tokens, last_used, created_at FROM cur.manifests`,
      );
      for (const t of tails) {
        db.prepare(`UPDATE manifests SET tail_payload = ?, tail_crc = ?${version >= 2 ? ', tail_raw_bytes = ?' : ''} WHERE id = ?`).run(
          payloadOf(t.file, t.payload),
          t.crc,
          ...(version >= 2 ? [t.raw_bytes] : []),
          t.id,
        );
      }
    }
    db.exec('INSERT INTO manifest_chunks (manifest_id, idx, key) SELECT manifest_id, idx, key FROM cur.manifest_chunks');
    db.exec('DETACH DATABASE cur');
  } finally {
    db.close();
  }
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
  renameSync(old, file);
}

/** What a store says about its manifests, tails and sizes: the same before and after an upgrade. */
async function observe(store: KvStore, ids: readonly string[], lookups: readonly number[][]) {
  const stats = value(await store.stats());
  return {
    manifests: ids.map((id) => value(store.getManifest(id))),
    tails: ids.map((id) => {
      const tail = value(store.readTail(id));
      return { tokens: Array.from(tail.tokens), payload: tail.payload === null ? null : Buffer.from(tail.payload).toString('base64') };
    }),
    lookups: lookups.map((tokens) => value(store.findLongestPrefix(fp, tokens))),
    usage: value(store.chatUsage({ limit: 10 })),
    sizes: { storedBytes: stats.storedBytes, logicalBytes: stats.logicalBytes, rawBytes: stats.rawBytes, chunkCount: stats.chunkCount, manifests: stats.manifests },
  };
}

describe('KV index: tail payloads in their own table', () => {
  for (const version of [3, 2, 1] as const) {
    it(`upgrades an index at schema ${version} in place: every tail restores byte-identically`, async () => {
      let store = await openStore();
      await save(store, 'a/1', range(0, 10)); // two chunks and a 2-token tail
      await save(store, 'a/2', range(0, 9)); // the same chunks, a 1-token tail
      await save(store, 'b', range(100, 6), false); // the tail's tokens only
      // A payload spanning many overflow pages, random so that a single wrong byte shows.
      const big = new Uint8Array(randomBytes(300_000));
      value(await store.putManifest('c', { fingerprint: fp, tokens: range(200, 7), chunks: payloadsFor(range(200, 7), C), tailPayload: big }));
      const ids = ['a/1', 'a/2', 'b', 'c'];
      const lookups = [[...range(0, 10), 5], range(0, 9), [...range(100, 6), 1], range(200, 7)];
      const before = await observe(store, ids, lookups);
      await store.close();

      const files = tailFiles();
      expect(files).toHaveLength(3);
      rewriteAtVersion(version);
      withIndex((db) => {
        expect(db.prepare('PRAGMA user_version').get()).toEqual({ user_version: version });
        if (version === 3) expect(columns(db, 'tails')).toEqual(['manifest_id', 'crc', 'raw_bytes', 'payload']);
        else {
          expect(columns(db, 'manifests')).toContain('tail_payload');
          expect(db.prepare("SELECT name FROM sqlite_schema WHERE name = 'tails'").get()).toBeUndefined();
        }
      });

      store = await openStore();
      const after = await observe(store, ids, lookups);
      expect(after).toEqual(before);
      expect(after.tails[3]?.payload).toBe(Buffer.from(big).toString('base64'));
      expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, corruptTails: [] });
      withIndex((db) => {
        expect(db.prepare('PRAGMA user_version').get()).toEqual({ user_version: migrations.length });
        const manifestColumns = columns(db, 'manifests');
        expect(manifestColumns).toContain('tail_bytes');
        for (const gone of ['tail_payload', 'tail_crc', 'tail_raw_bytes']) expect(manifestColumns).not.toContain(gone);
        expect(columns(db, 'tails')).toEqual(['manifest_id', 'crc', 'raw_bytes', 'file', 'payload']);
      });
      // The payloads stay in the index (BLOBs) until their manifest's next save; the files the
      // old index never named were swept at open.
      expect(tailState().tails.map((t) => [t.id, t.file])).toEqual([
        ['a/1', null],
        ['a/2', null],
        ['c', null],
      ]);
      expect(tailFiles()).toEqual([]);
      expectTailsConsistent();
      // The upgraded store keeps working: the next save of a manifest writes its tail to a file,
      // and its BLOB goes; the others still restore from theirs.
      await save(store, 'a/1', range(0, 11));
      expect(Array.from(value(store.readTail('a/1')).tokens)).toEqual([8, 9, 10]);
      expect(Buffer.from(value(store.readTail('a/1')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([8, 9, 10])));
      const [a1] = tailState().tails;
      expect(a1).toMatchObject({ id: 'a/1', file: expect.stringMatching(/\.kvt$/), bytes: 3 * 16 });
      expect(withIndex((db) => db.prepare("SELECT payload FROM tails WHERE manifest_id = 'a/1'").get())).toEqual({ payload: null });
      expect(tailFiles()).toEqual([a1!.file]);
      expect(Buffer.from(value(store.readTail('c')).payload as Uint8Array).equals(Buffer.from(big))).toBe(true);
      expectTailsConsistent();
      expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
    });
  }

  it('drops, at the upgrade, a payload stored without a checksum, and keeps its tokens', async () => {
    let store = await openStore();
    await save(store, 'a', range(0, 6));
    await save(store, 'b', range(50, 6));
    await store.close();
    rewriteAtVersion(2);
    withIndex((db) => db.prepare("UPDATE manifests SET tail_crc = NULL WHERE id = 'a'").run());
    store = await openStore();
    expect(value(store.getManifest('a'))).toMatchObject({ totalTokens: 6, tail: { bytes: 0 } });
    expect(value(store.readTail('a'))).toEqual({ tokens: Int32Array.from([4, 5]), payload: null });
    expect(Buffer.from(value(store.readTail('b')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([54, 55])));
    expect(value(await store.checkIntegrity()).ok).toBe(true);
    expectTailsConsistent();
  });

  it('a save writes its tail payload to a file, not the index; a touch rewrites the manifest row only', async () => {
    const store = await openStore();
    const tokens = range(0, 6);
    value(await store.putManifest('warm', { fingerprint: fp, tokens: range(100, 6), chunks: payloadsFor(range(100, 6), C) }));
    const wal = join(stores.root, 'index.db-wal');
    // An empty WAL, so that what it holds afterwards is exactly what the next call wrote.
    const emptyWal = (): void => {
      withIndex((db) => expect(db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get()).toMatchObject({ busy: 0 }));
      expect(statSync(wal).size).toBe(0);
    };
    emptyWal();
    // A 1 MiB tail (256 pages): in the index it would put at least as much into the WAL.
    const payload = payloadFor(tokens.slice(4), 512 * 1024);
    value(await store.putManifest('a', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C), tailPayload: payload }));
    expect(statSync(wal).size).toBeLessThan(64 * 1024);
    // Neither table holds a payload: each is one page, so reading or rewriting a row (a lookup,
    // a touch) never walks a payload's overflow pages.
    expect(pagesOf()).toMatchObject({ manifests: 1, tails: 1 });
    const [tail] = tailState().tails;
    expect(tail).toMatchObject({ id: 'a', file: expect.any(String), bytes: payload.length });
    expect(readFileSync(tailPath(stores.root, tail!.file!)).equals(Buffer.from(payload))).toBe(true);
    const before = tailState();
    const lastUsed = value(store.getManifest('a')).lastUsed;
    emptyWal();

    value(await store.touch('a'));
    expect(statSync(wal).size).toBeLessThan(64 * 1024);
    const written = walPages(wal);
    const owners = withIndex((db) => new Map((db.prepare('SELECT pageno, name FROM dbstat').all() as { pageno: number; name: string }[]).map((r) => [r.pageno, r.name])));
    const tables = new Set(written.map((page) => owners.get(page)));
    expect(tables).toContain('manifests');
    expect(tables).not.toContain('tails');
    expect(tables).not.toContain('sqlite_autoindex_tails_1');
    expect(value(store.getManifest('a')).lastUsed).toBeGreaterThan(lastUsed);
    expect(tailState()).toEqual(before);
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array).equals(Buffer.from(payload))).toBe(true);
  });

  it('leaves no tails row behind: delete, a save without a payload, eviction, damaged chunks and tails', async () => {
    const store = await openStore();
    await save(store, 'deleted', range(0, 6));
    expect(value(await store.deleteManifest('deleted'))).toMatchObject({ deleted: true, bytesFreed: expect.any(Number) });
    expect(tailState().tails).toEqual([]);

    // A later save without a payload keeps the tail's tokens, not the old payload.
    await save(store, 'resaved', range(0, 6));
    await save(store, 'resaved', range(0, 6), false);
    expect(value(store.getManifest('resaved')).tail.bytes).toBe(0);
    expect(value(store.readTail('resaved'))).toEqual({ tokens: Int32Array.from([4, 5]), payload: null });
    expectTailsConsistent();
    // One whose tokens end on a chunk boundary has no tail at all.
    await save(store, 'resaved', range(0, 5));
    await save(store, 'resaved', range(0, 8));
    expect(tailState().tails).toEqual([]);

    // A damaged chunk cuts the manifests using it before it, and their tails go too; cut to
    // nothing, the manifest goes, and its tail with it.
    await save(store, 'cut', range(300, 10));
    await save(store, 'gone', range(400, 6));
    await store.recordDamage(chunkKeys(fp, range(300, 10), C)[1] as string, 'test');
    await store.recordDamage(chunkKeys(fp, range(400, 6), C)[0] as string, 'test');
    expect(value(store.getManifest('cut'))).toMatchObject({ totalTokens: 4, tail: { bytes: 0 } });
    expect(store.getManifest('gone')).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(tailState().tails).toEqual([]);
    expectTailsConsistent();

    // Eviction drops the oldest chat's tail payload first.
    for (const id of ['resaved', 'cut']) value(await store.deleteManifest(id));
    await save(store, 'old', range(500, 10));
    await save(store, 'new', range(600, 10));
    value(store.setBudget(value(await store.stats()).storedBytes - 1));
    expect(value(await store.enforceBudget())).toMatchObject({ truncated: ['old'], bytesFreed: 32 });
    expect(tailState().tails.map((t) => t.id)).toEqual(['new']);
    expectTailsConsistent();

    // A tail that fails its checksum is dropped when read; its tokens stay.
    withIndex((db) => db.prepare("UPDATE tails SET crc = crc + 1 WHERE manifest_id = 'new'").run());
    expect(store.readTail('new')).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(value(store.readTail('new'))).toEqual({ tokens: Int32Array.from([608, 609]), payload: null });
    expect(tailState().tails).toEqual([]);
    // Its file goes after the commit, without the read waiting for it.
    await vi.waitFor(() => expectTailsConsistent());
    expect(value(await store.checkIntegrity()).ok).toBe(true);
  });

  it('reports a tails row that disagrees with its manifest, or has none, and repairs it', async () => {
    const store = await openStore();
    for (const id of ['a', 'b', 'c', 'd']) await save(store, id, range(0, 6));
    // Edits a connection that does not enforce foreign keys could make.
    withIndex(
      (db) => {
        db.prepare("UPDATE manifests SET tail_bytes = tail_bytes + 1 WHERE id = 'b'").run();
        db.prepare("DELETE FROM tails WHERE manifest_id = 'c'").run();
        db.prepare("DELETE FROM manifest_chunks WHERE manifest_id = 'd'").run();
        db.prepare("DELETE FROM manifests WHERE id = 'd'").run();
        db.prepare('UPDATE chunks SET refcount = refcount - 1').run();
      },
      { foreignKeys: false },
    );
    expect(tailState().tails.map((t) => t.id)).toEqual(['a', 'b', 'd']);
    // Found without reading any payload, so by the check at open too.
    expect(value(await store.checkIntegrity({ verify: false }))).toMatchObject({ ok: false, corruptTails: ['b', 'c', 'd'] });
    // A read of such a tail is refused as damaged, and drops it.
    expect(store.readTail('c')).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(value(store.readTail('c')).payload).toBeNull();
    expect(value(await store.checkIntegrity({ repair: true }))).toMatchObject({ corruptTails: ['b', 'd'], repaired: true });
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
    expect(tailState().tails.map((t) => t.id)).toEqual(['a']);
    expectTailsConsistent();
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([4, 5])));
  });
});
