/** Opening and closing the KV store (store-open.ts): lifecycle, one process per root, and repair at open. */
import { chmodSync, existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { chunkPath, chunksDir, writeChunkFile } from './chunk-file.ts';
import { chainKey, chunkKeys } from './fingerprint.ts';
import type { KvStoreOptions, PersistencePause } from './store.ts';
import { openKvStore } from './store.ts';
import { fallbackKernels } from './kernels-fallback.ts';
import { nodeFs } from './store-fs.ts';
import { tailsDir } from './tail-file.ts';
import { faultyFs, flipByte, payloadFor, payloadsFor, range, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { fingerprint: fp, open: openStore, openFaulty: faultyStore, save, chunkFiles } = stores;

describe('KV store: lifecycle', () => {
  it('fails clearly at open when the directory cannot be written', async () => {
    writeFileSync(join(stores.root, 'file'), 'x');
    const underFile = await openKvStore({ root: join(stores.root, 'file', 'kv'), budgetBytes: 1 });
    expect(underFile).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    if (!underFile.ok) expect(underFile.error.message).toContain(join(stores.root, 'file', 'kv'));

    const { fs, faults } = faultyFs();
    faults.openError = 'EACCES';
    const denied = await openKvStore({ root: join(stores.root, 'denied'), budgetBytes: 1, fs });
    expect(denied).toMatchObject({ ok: false, error: { code: 'INTERNAL', hint: expect.stringContaining('write') } });

    if (process.getuid?.() !== 0) {
      const readOnly = join(stores.root, 'ro');
      await value(await openKvStore({ root: readOnly, budgetBytes: 1 })).close();
      chmodSync(readOnly, 0o500);
      chmodSync(chunksDir(readOnly), 0o500);
      expect((await openKvStore({ root: readOnly, budgetBytes: 1 })).ok).toBe(false);
      chmodSync(chunksDir(readOnly), 0o700);
      chmodSync(readOnly, 0o700);
    }

    // A full disk is not an error at open (restores still work), but persistence starts paused.
    faults.openError = null;
    faults.written = 0;
    faults.writeBudget = 0;
    const full = await openStore({ root: join(stores.root, 'full'), budgetBytes: 1, fs });
    expect(full.persistencePaused?.reason.code).toBe('DISK_FULL');
  });

  it('serialises mutations: a GC during a slow save never sweeps its temp files', async () => {
    const { store, faults } = await faultyStore();
    faults.writeDelayMs = 5;
    const tokens = range(0, 20);
    const put = store.putManifest('a', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) });
    const gc = store.gc();
    const evict = store.enforceBudget();
    await new Promise((r) => setTimeout(r, 12));
    const closing = store.close();
    expect(value(await put).chunksWritten).toBe(5);
    expect(value(await gc)).toMatchObject({ orphanFiles: 0, tempFiles: 0 });
    expect(value(await evict).chunksRemoved).toBe(0);
    await closing;
    expect(await store.touch('a')).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(store.getManifest('a').ok).toBe(false);

    const reopened = await openStore();
    expect(value(reopened.findLongestPrefix(fp, tokens)).chunkedTokens).toBe(20);
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 5 });
  });
});

describe('KV store: one process per root, and what a crash leaves', () => {
  type Logged = { level: string; message: string };
  const logInto = (lines: Logged[]): KvStoreOptions['log'] => (level, message) => lines.push({ level, message });

  it('a second store waits, opens read-only with persistence paused (BUSY), and takes over once the first exits', async () => {
    const first = await openStore();
    await save(first, 'a', range(0, 8));
    const lines: Logged[] = [];
    const started = performance.now();
    const second = await openStore({ lockWaitMs: 150, lockRetryMs: 20, log: logInto(lines) });
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(second.persistencePaused?.reason).toMatchObject({ code: 'BUSY', hint: expect.stringContaining('resumes by itself') });
    expect(second.persistencePaused?.reason.message).toContain(`using the KV cache at ${stores.root}`);
    const changes: (PersistencePause | null)[] = [];
    second.onDidChangePersistence((pause) => changes.push(pause));

    // Reads work; every write is refused with the reason, and nothing of the holder's is touched.
    expect(value(second.findLongestPrefix(fp, range(0, 8))).chunkedTokens).toBe(8);
    expect((await second.readChunks(value(second.getManifest('a')).chunks)).error).toBeNull();
    expect(await second.putManifest('b', { fingerprint: fp, tokens: range(100, 8), chunks: payloadsFor(range(100, 8), C) })).toMatchObject({ ok: false, error: { code: 'BUSY' } });
    expect(await second.deleteManifest('a')).toMatchObject({ ok: false, error: { code: 'BUSY' } });
    expect(await second.gc()).toMatchObject({ ok: false, error: { code: 'BUSY' } });
    expect(await second.checkIntegrity({ repair: true })).toMatchObject({ ok: false, error: { code: 'BUSY' } });
    expect(value(await second.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 2 });
    // A damaged chunk it reads is marked (lookups stop), but only the holder cuts manifests.
    flipByte(chunkPath(stores.root, value(first.getManifest('a')).chunks[1] as string));
    expect((await second.readChunks(value(second.getManifest('a')).chunks)).error?.reason).toBe('checksum');
    expect(value(second.getManifest('a')).chunks).toHaveLength(2);
    expect(changes).toEqual([]);

    await first.close();
    const deadline = Date.now() + 2000;
    while (second.persistencePaused !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(second.persistencePaused).toBeNull();
    expect(changes).toEqual([null]);
    expect(lines.some((l) => l.message.includes('has exited'))).toBe(true);
    // Now the holder: the damaged chunk is rewritten by the next save.
    await save(second, 'a', range(0, 8));
    expect(value(await second.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 2 });
  });

  it('opens normally when the other store closes within the wait', async () => {
    const first = await openStore();
    setTimeout(() => void first.close(), 100);
    const second = await openStore({ lockWaitMs: 3000 });
    expect(second.persistencePaused).toBeNull();
    await save(second, 'a', range(0, 8));
  });

  it('removes temp files and unindexed chunk files of interrupted writes when it opens', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 8));
    await store.close();
    // What a process killed mid-save leaves: a temp file, and a chunk file renamed but never committed.
    const orphanTokens = range(500, 4);
    const orphan = chainKey(fp, orphanTokens);
    await writeChunkFile(nodeFs, stores.root, { key: orphan, parent: fp, tokens: orphanTokens, payload: payloadFor(orphanTokens) }, fallbackKernels);
    const temp = join(chunksDir(stores.root), orphan.slice(0, 2), `.${orphan}.999-dead.tmp`);
    writeFileSync(temp, 'partial');

    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 2, tempFiles: [], orphanFiles: [] });
    expect(existsSync(temp)).toBe(false);
    expect(existsSync(chunkPath(stores.root, orphan))).toBe(false);
    expect(lines).toEqual([{ level: 'info', message: expect.stringMatching(/repaired what an interrupted run left: 1 temp file\(s\), 1 unindexed chunk file\(s\);/) }]);
  });

  it('removes tail files no row names, and temp files of tail writes, when it opens', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 6));
    await store.close();
    const kept = readdirSync(tailsDir(stores.root));
    expect(kept).toHaveLength(1);
    // What a process killed mid-save leaves: a tail file written but never committed (or whose
    // replacement was committed before it was removed), and a temp file of one being written.
    const orphan = join(tailsDir(stores.root), `${'ab'.repeat(12)}.kvt`);
    const temp = join(tailsDir(stores.root), `.${'cd'.repeat(12)}.kvt.999.tmp`);
    writeFileSync(orphan, payloadFor([1, 2]));
    writeFileSync(temp, 'partial');
    // Not the store's: left alone.
    const other = join(tailsDir(stores.root), 'notes.txt');
    writeFileSync(other, 'x');

    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, tempFiles: [], orphanFiles: [] });
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(temp)).toBe(false);
    expect(readdirSync(tailsDir(stores.root)).sort()).toEqual([...kept, 'notes.txt'].sort());
    expect(lines).toEqual([{ level: 'info', message: expect.stringMatching(/repaired what an interrupted run left: 1 temp file\(s\), 1 unindexed tail file\(s\);/) }]);
    expect(Buffer.from(value(reopened.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([4, 5])));
  });

  it('repairs at open a tail whose file a power cut lost or cut short (tail files are not fsynced)', async () => {
    const store = await openStore();
    await save(store, 'lost', range(0, 6));
    await save(store, 'short', range(100, 7));
    await save(store, 'fine', range(200, 6));
    await store.close();
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    const fileOf = (id: string): string => join(tailsDir(stores.root), (db.prepare('SELECT file FROM tails WHERE manifest_id = ?').get(id) as { file: string }).file);
    const [lost, short] = [fileOf('lost'), fileOf('short')];
    db.close();
    unlinkSync(lost);
    writeFileSync(short, '');

    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, corruptTails: [] });
    expect(lines).toEqual([{ level: 'info', message: expect.stringContaining('2 missing or damaged tail(s)') }]);
    expect(existsSync(short)).toBe(false);
    for (const id of ['lost', 'short']) expect(value(reopened.getManifest(id)).tail.bytes).toBe(0);
    expect(value(reopened.getManifest('fine')).tail.bytes).toBe(2 * 16);
    expect(value(reopened.findLongestPrefix(fp, [...range(0, 6), 1]))).toMatchObject({ chunkedTokens: 4, tail: null });
  });

  it('repairs at open what a lost commit leaves: a manifest listing a chunk file already removed', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 12));
    await store.close();
    // A power cut lost the commit that dropped chunk 1, but not the unlink after it.
    const keys = chunkKeys(fp, range(0, 12), C);
    unlinkSync(chunkPath(stores.root, keys[1] as string));
    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 1 });
    expect(value(reopened.getManifest('a')).chunks).toEqual([keys[0]]);
    expect(lines[0]?.message).toContain('1 missing chunk file(s)');
  });

  it('says nothing at open when there is nothing to repair', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 8));
    await store.close();
    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(value(await reopened.checkIntegrity()).ok).toBe(true);
    expect(lines).toEqual([]);
  });

  it('moves an unreadable index.db aside, says so, and starts empty without its chunk files', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 8));
    await store.close();
    const garbage = Buffer.from('this is not an SQLite database, it is garbage '.repeat(200));
    writeFileSync(join(stores.root, 'index.db'), garbage);

    const lines: Logged[] = [];
    const reopened = await openStore({ log: logInto(lines) });
    expect(lines[0]).toMatchObject({ level: 'warn', message: expect.stringContaining(`moved aside to ${join(stores.root, 'index.db')}.damaged`) });
    expect(readFileSync(join(stores.root, 'index.db.damaged')).equals(garbage)).toBe(true);
    expect(reopened.getManifest('a')).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 0 });
    expect(chunkFiles()).toEqual([]);
    await save(reopened, 'a', range(0, 8));
    expect(value(await reopened.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 2 });
  });

  it('leaves an index written by a newer Hearth alone (a clear error, nothing moved)', async () => {
    const store = await openStore();
    await store.close();
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.exec('PRAGMA user_version = 999');
    db.close();
    const opened = await openKvStore({ root: stores.root, budgetBytes: 1 });
    expect(opened).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringContaining('newer Hearth') } });
    expect(existsSync(join(stores.root, 'index.db.damaged'))).toBe(false);
  });
});
