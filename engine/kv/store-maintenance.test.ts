/** The KV store's upkeep (store-maintenance.ts, store-integrity.ts): eviction, GC and the integrity check. */
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { chunkPath, chunksDir, writeChunkFile } from './chunk-file.ts';
import { chainKey, chunkKeys } from './fingerprint.ts';
import { fallbackKernels } from './kernels-fallback.ts';
import { nodeFs } from './store-fs.ts';
import { tailsDir } from './tail-file.ts';
import { flipByte, payloadFor, range, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { fingerprint: fp, open: openStore, save, chunkFiles, refcounts } = stores;

describe('KV store: budget and eviction', () => {
  it('evicts the least recently used chat first, its unshared suffix first, never a chunk another chat needs', async () => {
    const store = await openStore();
    const system = range(1000, 8);
    const a = [...system, ...range(0, 8)];
    const b = [...system, ...range(100, 8)];
    const c = [...system, ...range(200, 8)];
    await save(store, 'a', a, false);
    await save(store, 'b', b, false);
    await save(store, 'c', c, false);
    await store.touch('a'); // a is now the most recent; b the least
    const chunkBytes = statSync(chunkPath(stores.root, chunkKeys(fp, a, C)[0] as string)).size;
    expect(value(await store.stats()).storedBytes).toBe(8 * chunkBytes);

    // Over budget by one chunk: b loses its last chunk only.
    value(store.setBudget(7 * chunkBytes));
    const first = value(await store.enforceBudget());
    expect(first).toMatchObject({ chunksRemoved: 1, truncated: ['b'], deleted: [], storedBytes: 7 * chunkBytes });
    expect(value(store.getManifest('b')).chunks).toEqual(chunkKeys(fp, b, C).slice(0, 3));
    // b restores what is left and re-reads the rest.
    expect(value(store.findLongestPrefix(fp, b)).chunkedTokens).toBe(12);

    // Budget of the shared prefix plus one chat: b goes whole, then c loses its own chunks,
    // the shared chunks stay (a needs them), a is untouched.
    value(store.setBudget(4 * chunkBytes));
    const second = value(await store.enforceBudget());
    expect(second.deleted).toEqual(['b']);
    expect(second.truncated).toEqual(['c']);
    expect(value(store.getManifest('a')).chunks).toEqual(chunkKeys(fp, a, C));
    expect(value(store.getManifest('c')).chunks).toEqual(chunkKeys(fp, system, C));
    const counts = refcounts();
    expect(chunkKeys(fp, system, C).map((k) => counts.get(k))).toEqual([2, 2]);
    expect((await store.readChunks(chunkKeys(fp, a, C))).error).toBeNull();
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });

    // A budget of zero empties the store.
    value(store.setBudget(0));
    const third = value(await store.enforceBudget());
    expect(third.storedBytes).toBe(0);
    expect(chunkFiles()).toEqual([]);
    expect(value(await store.stats())).toMatchObject({ manifests: 0, chunkCount: 0 });
    expect(store.setBudget(-1).ok).toBe(false);
  });

  it('drops the tail payload of the oldest chat before its chunks', async () => {
    const store = await openStore();
    await save(store, 'old', range(0, 10)); // tail of 2 tokens, 32 bytes
    await save(store, 'new', range(100, 10));
    const stored = value(await store.stats()).storedBytes;
    value(store.setBudget(stored - 1));
    const report = value(await store.enforceBudget());
    expect(report).toMatchObject({ chunksRemoved: 0, bytesFreed: 32, truncated: ['old'] });
    expect(value(store.getManifest('old'))).toMatchObject({ totalTokens: 8, tail: { bytes: 0 } });
    expect(value(store.getManifest('new')).tail.bytes).toBe(32);
    // Its file goes with it: only the newer chat's is left.
    expect(readdirSync(tailsDir(stores.root))).toEqual([tailFileOf('new')]);
    // Evicted whole, a chat's tail file goes too.
    value(store.setBudget(0));
    value(await store.enforceBudget());
    expect(readdirSync(tailsDir(stores.root))).toEqual([]);
  });
});

/** The name of the file a manifest's tail is stored in, read behind the store's back. */
function tailFileOf(id: string): string {
  const db = new DatabaseSync(join(stores.root, 'index.db'));
  try {
    return (db.prepare('SELECT file FROM tails WHERE manifest_id = ?').get(id) as { file: string }).file;
  } finally {
    db.close();
  }
}

describe('KV store: GC and integrity', () => {
  it('sweeps orphan chunk files and temp files, and keeps everything referenced', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 8));
    // A crash between rename and commit: a complete chunk file the index never learnt of.
    const orphanTokens = range(500, 4);
    const orphan = chainKey(fp, orphanTokens);
    await writeChunkFile(nodeFs, stores.root, { key: orphan, parent: fp, tokens: orphanTokens, payload: payloadFor(orphanTokens) }, fallbackKernels);
    const dir = join(chunksDir(stores.root), orphan.slice(0, 2));
    writeFileSync(join(dir, `.${orphan}.123-abcd.tmp`), 'partial');
    writeFileSync(join(dir, 'README'), 'not ours');

    const report = value(await store.checkIntegrity());
    expect(report).toMatchObject({ ok: false, chunksVerified: 2, orphanFiles: [chunkPath(stores.root, orphan)] });
    expect(report.tempFiles).toHaveLength(1);

    expect(value(await store.gc())).toMatchObject({ orphanFiles: 1, tempFiles: 1, unreferencedChunks: 0 });
    expect(existsSync(chunkPath(stores.root, orphan))).toBe(false);
    expect(existsSync(join(dir, 'README'))).toBe(true);
    expect((await store.readChunks(value(store.getManifest('a')).chunks)).error).toBeNull();
    expect(value(await store.checkIntegrity()).ok).toBe(true);
  });

  it('sweeps tail files no row names and temp files of tail writes, and keeps the referenced ones', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 6));
    const kept = tailFileOf('a');
    const orphan = join(tailsDir(stores.root), `${'0f'.repeat(12)}.kvt`);
    const temp = join(tailsDir(stores.root), `.${'1e'.repeat(12)}.kvt.4242.tmp`);
    writeFileSync(orphan, Buffer.alloc(100));
    writeFileSync(temp, Buffer.alloc(7));
    writeFileSync(join(tailsDir(stores.root), 'README'), 'not ours');

    expect(value(await store.checkIntegrity())).toMatchObject({ ok: false, orphanFiles: [orphan], tempFiles: [temp], corruptTails: [] });
    expect(value(await store.gc())).toMatchObject({ orphanFiles: 1, tempFiles: 1, bytesFreed: 107 });
    expect(readdirSync(tailsDir(stores.root)).sort()).toEqual(['README', kept].sort());
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([4, 5])));
    expect(value(await store.checkIntegrity()).ok).toBe(true);
  });

  it('checks tail files: their size without verifying, their checksum with; a repair drops the tail and its file', async () => {
    const store = await openStore();
    for (const id of ['missing', 'grown', 'flipped', 'fine']) await save(store, id, range(0, 6));
    const path = (id: string): string => join(tailsDir(stores.root), tailFileOf(id));
    const flipped = path('flipped');
    const grown = path('grown');
    unlinkSync(path('missing'));
    writeFileSync(grown, Buffer.concat([readFileSync(grown), Buffer.from([1])]));
    flipByte(flipped);

    expect(value(await store.checkIntegrity({ verify: false }))).toMatchObject({ ok: false, corruptTails: ['grown', 'missing'] });
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: false, corruptTails: ['flipped', 'grown', 'missing'] });
    expect(value(await store.checkIntegrity({ repair: true }))).toMatchObject({ repaired: true, corruptTails: ['flipped', 'grown', 'missing'] });
    expect(existsSync(flipped)).toBe(false);
    expect(existsSync(grown)).toBe(false);
    expect(readdirSync(tailsDir(stores.root))).toEqual([tailFileOf('fine')]);
    for (const id of ['missing', 'grown', 'flipped']) expect(value(store.getManifest(id)).tail.bytes).toBe(0);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
  });

  it('never collects a chunk a manifest lists, even when its refcount is wrong', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 8));
    const keys = value(store.getManifest('a')).chunks;
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.prepare('UPDATE chunks SET refcount = 0').run();
    db.close();
    expect(value(await store.gc()).unreferencedChunks).toBe(0);
    value(store.setBudget(1 << 30));
    await store.enforceBudget();
    expect((await store.readChunks(keys)).error).toBeNull();
    expect(value(await store.checkIntegrity()).refcountMismatches).toHaveLength(2);
    await store.checkIntegrity({ repair: true });
    expect([...refcounts().values()]).toEqual([1, 1]);
  });

  it('reports missing, corrupt, refcount and tail problems, and repairs them', async () => {
    const store = await openStore();
    const tokens = range(0, 14);
    await save(store, 'a', tokens);
    await save(store, 'b', tokens.slice(0, 8));
    const keys = chunkKeys(fp, tokens, C);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 3, repaired: false });

    flipByte(chunkPath(stores.root, keys[2] as string));
    unlinkSync(chunkPath(stores.root, keys[1] as string));
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.prepare('UPDATE chunks SET refcount = 7 WHERE key = ?').run(keys[0] as string);
    db.prepare("UPDATE tails SET crc = 0 WHERE manifest_id = 'a'").run();
    db.close();

    const report = value(await store.checkIntegrity());
    expect(report).toMatchObject({
      ok: false,
      chunksVerified: 1,
      missing: [keys[1]],
      corrupt: [{ key: keys[2], reason: 'checksum' }],
      refcountMismatches: [{ key: keys[0], stored: 7, actual: 2 }],
      corruptTails: ['a'],
    });
    expect(value(await store.checkIntegrity({ verify: false }))).toMatchObject({ missing: [keys[1]], chunksVerified: 2 });

    expect(value(await store.checkIntegrity({ repair: true })).repaired).toBe(true);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 1 });
    expect(value(store.getManifest('a'))).toMatchObject({ chunks: [keys[0]], tail: { bytes: 0 } });
    expect(value(store.findLongestPrefix(fp, tokens)).chunkedTokens).toBe(4);
  });
});
