/** The KV store's writes (store-write.ts): saving manifests and chunks, and writes that fail. */
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chunkFileBytes } from './chunk-file.ts';
import { chunkKeys } from './fingerprint.ts';
import type { PersistencePause } from './store.ts';
import { fullWhileFlag } from './store-fs.ts';
import { tailsDir } from './tail-file.ts';
import { payloadFor, payloadsFor, range, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { fingerprint: fp, open: openStore, openFaulty: faultyStore, save, chunkFiles, refcounts } = stores;

/** The files in `<root>/tails` (tail files and temp files), read behind the store's back. */
function tailFiles(root = stores.root): string[] {
  return existsSync(tailsDir(root)) ? readdirSync(tailsDir(root)).sort() : [];
}

describe('KV store: manifests and chunks', () => {
  it('round-trips a manifest, its chunks and its tail', async () => {
    const store = await openStore();
    const tokens = range(0, 10); // two chunks and a 2-token tail
    const put = await save(store, 'chat/leaf', tokens);
    expect(put).toMatchObject({ chunksWritten: 2, chunksReused: 0, tailBytes: 2 * 16, totalTokens: 10 });
    const manifest = value(store.getManifest('chat/leaf'));
    expect(manifest.chunks).toEqual(chunkKeys(fp, tokens, C));
    expect(manifest).toMatchObject({ fingerprint: fp, chunkTokens: C, totalTokens: 10, tail: { bytes: 32 } });
    expect(Array.from(manifest.tail.tokens)).toEqual([8, 9]);

    const { chunks, error } = await store.readChunks(manifest.chunks);
    expect(error).toBeNull();
    expect(chunks.map((c) => Array.from(c.tokens))).toEqual([range(0, 4), range(4, 4)]);
    expect(chunks.map((c) => Buffer.from(c.payload))).toEqual(payloadsFor(tokens, C).map((p) => Buffer.from(p)));
    // One chunk at a time, in one reused buffer: the same bytes, copied out during each visit.
    const seen: Buffer[] = [];
    const each = await store.forEachChunk(manifest.chunks, (chunk, index) => {
      expect(chunk.key).toBe(manifest.chunks[index]);
      seen.push(Buffer.from(chunk.payload));
      return true;
    });
    expect(each).toEqual({ count: 2, bytes: chunks[0]!.bytes + chunks[1]!.bytes, error: null });
    expect(seen).toEqual(payloadsFor(tokens, C).map((p) => Buffer.from(p)));
    expect(await store.forEachChunk(manifest.chunks, () => false)).toMatchObject({ count: 0, error: null });
    const tail = value(store.readTail('chat/leaf'));
    expect(Array.from(tail.tokens)).toEqual([8, 9]);
    expect(Buffer.from(tail.payload as Uint8Array).equals(Buffer.from(payloadFor([8, 9])))).toBe(true);

    expect(store.getManifest('nope')).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await store.putManifest('', { fingerprint: fp, tokens })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await store.putManifest('x', { fingerprint: fp, tokens: [1.5] })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await store.putManifest('x', { fingerprint: 'f', tokens })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('writes each tail payload to a new file and removes the one it replaces, once committed', async () => {
    const store = await openStore();
    const tokens = range(0, 10);
    await save(store, 'a', tokens);
    const [first] = tailFiles();
    expect(first).toMatch(/^[0-9a-f]{24}\.kvt$/);
    expect(readFileSync(join(tailsDir(stores.root), first!)).equals(Buffer.from(payloadFor([8, 9])))).toBe(true);
    // The next turn: a longer tail, in a file of its own; the previous one is gone.
    await save(store, 'a', range(0, 11));
    const [second] = tailFiles();
    expect(tailFiles()).toEqual([second]);
    expect(second).not.toBe(first);
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([8, 9, 10])));
    // Counted like chunk files: in the budget's bytes and on disk.
    const stats = value(await store.stats());
    expect(stats.storedBytes).toBe(2 * chunkFileBytes(C, 16 * C) + 3 * 16);
    expect(stats.bytesOnDisk).toBeGreaterThanOrEqual(stats.storedBytes);
    // Another manifest's tail is its own file; a save without a payload, one ending on a chunk
    // boundary, and a delete each remove the manifest's file.
    await save(store, 'b', range(0, 9));
    expect(tailFiles()).toHaveLength(2);
    await save(store, 'a', range(0, 11), false);
    expect(tailFiles()).toHaveLength(1);
    await save(store, 'a', range(0, 10));
    await save(store, 'a', range(0, 8));
    expect(tailFiles()).toHaveLength(1);
    value(await store.deleteManifest('b'));
    expect(tailFiles()).toEqual([]);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
  });

  it('lists manifest ids by prefix, literally (no LIKE wildcards)', async () => {
    const store = await openStore();
    for (const id of ['a/1', 'a/2', 'ab/1', 'a%/1', 'b/1']) await save(store, id, range(0, 5));
    expect(value(store.manifestIds('a/'))).toEqual(['a/1', 'a/2']);
    expect(value(store.manifestIds('a%'))).toEqual(['a%/1']);
    expect(value(store.manifestIds('zzz'))).toEqual([]);
  });

  it('stores a shared prefix once, with a refcount per manifest', async () => {
    const store = await openStore();
    const system = range(1000, 8); // a "system prompt" of two chunks
    const a = [...system, ...range(0, 8)];
    const b = [...system, ...range(500, 8)];
    expect(await save(store, 'a', a)).toMatchObject({ chunksWritten: 4, chunksReused: 0 });
    expect(await save(store, 'b', b)).toMatchObject({ chunksWritten: 2, chunksReused: 2 });
    expect(chunkFiles()).toHaveLength(6);
    const shared = chunkKeys(fp, system, C);
    const counts = refcounts();
    expect(shared.map((k) => counts.get(k))).toEqual([2, 2]);
    expect([...counts.values()].filter((n) => n === 1)).toHaveLength(4);

    const stats = value(await store.stats());
    expect(stats.chunkCount).toBe(6);
    expect(stats.manifests).toBe(2);
    expect(stats.logicalBytes).toBeGreaterThan(stats.storedBytes); // shared chunks count per user
    expect(stats.bytesOnDisk).toBeGreaterThan(stats.storedBytes); // plus index.db
    expect(stats.freeBytes).toBeGreaterThan(0);

    // Replacing a manifest moves refcounts; deleting releases only what nobody else needs.
    await save(store, 'b', [...system, ...range(600, 4)]);
    expect(chunkFiles()).toHaveLength(5);
    expect(value(await store.deleteManifest('a'))).toMatchObject({ deleted: true, chunksRemoved: 2, bytesFreed: 2 * chunkFileBytes(C, 16 * C) });
    expect(refcounts().get(shared[0] as string)).toBe(1);
    expect(chunkFiles()).toHaveLength(3);
    expect(value(await store.deleteManifest('a')).deleted).toBe(false);
    expect(value(await store.checkIntegrity()).ok).toBe(true);
  });

  it('counts the raw KV payload: chunk files without header and tokens, plus tails', async () => {
    const store = await openStore();
    await save(store, 'x/1', range(0, 10)); // two chunks and a 2-token tail
    const stats = value(await store.stats());
    const payload = 16 * C; // payloadFor: 16 bytes per token
    expect(stats.storedBytes).toBe(2 * chunkFileBytes(C, payload) + 2 * 16);
    expect(stats.rawBytes).toBe(2 * payload + 2 * 16);
    const empty = value(await (await openStore({ root: join(stores.root, 'empty') })).stats());
    expect(empty).toMatchObject({ rawBytes: 0, storedBytes: 0 });
  });

  it('sums stored KV per chat: its longest branch, chunks its branches share counted once, largest first', async () => {
    const store = await openStore();
    const chunk = chunkFileBytes(C, 16 * C);
    const system = range(1000, 8);
    await save(store, 'A/1', [...system, ...range(0, 8)]); // 4 chunks
    await save(store, 'A/2', [...system, ...range(0, 4), ...range(700, 6)]); // 3 of A/1's, 1 new chunk, a 2-token tail
    await save(store, 'B/1', [...system, ...range(500, 8)]); // the system prompt's 2 chunks shared with A
    await save(store, 'AB/1', range(300, 4)); // not chat A's, though its id starts with A
    await save(store, 'solo', range(900, 5)); // an id without a branch is its own chat
    const a = { chatId: 'A', tokens: 18, bytes: 5 * chunk + 2 * 16 };
    const all = value(store.chatUsage({ limit: 10 }));
    expect(all.map(({ chatId, tokens, bytes }) => ({ chatId, tokens, bytes }))).toEqual([
      a,
      { chatId: 'B', tokens: 16, bytes: 4 * chunk },
      { chatId: 'solo', tokens: 5, bytes: chunk + 16 },
      { chatId: 'AB', tokens: 4, bytes: chunk },
    ]);
    expect(value(store.chatUsage({ limit: 2 })).map((c) => c.chatId)).toEqual(['A', 'B']);
    const one = value(store.chatUsage({ chatId: 'A' }));
    expect(one).toMatchObject([a]);
    // The latest of its branches' last use.
    await store.touch('A/1');
    const touched = value(store.chatUsage({ chatId: 'A' }))[0]!;
    expect(touched.lastUsed).toBeGreaterThan(one[0]!.lastUsed);
    expect(touched.lastUsed).toBe(Math.max(...all.map((c) => c.lastUsed), touched.lastUsed));
    expect(value(store.chatUsage({ chatId: 'Z' }))).toEqual([]);
    expect(value(store.chatUsage({ limit: 0 }))).toEqual([]);
    // A deleted branch frees its unshared chunk and its tail: chat A's usage drops by that much.
    expect(value(await store.deleteManifest('A/2'))).toMatchObject({ chunksRemoved: 1, bytesFreed: chunk + 2 * 16 });
    expect(value(store.chatUsage({ chatId: 'A' }))).toMatchObject([{ tokens: 16, bytes: 4 * chunk }]);
    const bad = store.chatUsage({ limit: -1 });
    expect(bad.ok || bad.error.code).toBe('INVALID_INPUT');
  });

  it('only asks for the chunks it lacks, and fails cleanly when one is withheld', async () => {
    const store = await openStore();
    const tokens = range(0, 12);
    await save(store, 'a', tokens.slice(0, 8));
    expect(value(store.missingChunks(fp, tokens))).toEqual([2]);
    const asked: number[] = [];
    const put = value(
      await store.putManifest('b', {
        fingerprint: fp,
        tokens,
        chunks: (index) => {
          asked.push(index);
          return payloadsFor(tokens, C)[index];
        },
      }),
    );
    expect(asked).toEqual([2]);
    expect(put).toMatchObject({ chunksWritten: 1, chunksReused: 2, tailBytes: 0 });

    const before = chunkFiles().length;
    const withheld = await store.putManifest('c', { fingerprint: fp, tokens: range(100, 8), chunks: [payloadFor(range(100, 4))] });
    expect(withheld).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(chunkFiles()).toHaveLength(before); // the first chunk it did write is removed again
    expect(store.getManifest('c').ok).toBe(false);
  });
});

describe('KV store: failing writes', () => {
  it('on ENOSPC mid-chunk: no partial file, DISK_FULL, persistence paused until a write succeeds', async () => {
    const { store, faults } = await faultyStore();
    await save(store, 'a', range(0, 8));
    const filesBefore = chunkFiles().sort();
    const events: (PersistencePause | null)[] = [];
    store.onDidChangePersistence((p) => events.push(p));

    faults.written = 0;
    faults.writeBudget = 200; // the first new chunk fits, the second fails halfway
    const failed = await store.putManifest('a', { fingerprint: fp, tokens: range(0, 16), chunks: payloadsFor(range(0, 16), C) });
    expect(failed).toMatchObject({ ok: false, error: { code: 'DISK_FULL' } });
    expect(chunkFiles().sort()).toEqual(filesBefore); // no temp file, no partial chunk, no half-saved new chunk
    expect(value(store.getManifest('a')).totalTokens).toBe(8); // the old manifest stands
    expect(store.persistencePaused?.reason.code).toBe('DISK_FULL');
    expect(value(await store.stats()).persistencePaused?.reason.code).toBe('DISK_FULL');
    expect(events).toHaveLength(1);
    // Restores keep working while paused.
    expect((await store.readChunks(value(store.getManifest('a')).chunks)).error).toBeNull();

    faults.writeBudget = null;
    await save(store, 'a', range(0, 16));
    expect(store.persistencePaused).toBeNull();
    expect(events.at(-1)).toBeNull();
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 4 });
  });

  it('on ENOSPC writing a tail: DISK_FULL, persistence paused, the previous save intact, no file left', async () => {
    const { store, faults } = await faultyStore();
    const tokens = range(0, 10);
    await save(store, 'a', tokens);
    const before = { manifest: value(store.getManifest('a')), chunks: chunkFiles().sort(), tails: tailFiles() };
    const events: (PersistencePause | null)[] = [];
    store.onDidChangePersistence((p) => events.push(p));

    // Every chunk is stored: the tail is all this save writes, and it fails halfway.
    faults.written = 0;
    faults.writeBudget = 10;
    const longer = range(0, 11);
    const failed = await store.putManifest('a', { fingerprint: fp, tokens: longer, chunks: payloadsFor(longer, C), tailPayload: payloadFor(longer.slice(8)) });
    expect(failed).toMatchObject({ ok: false, error: { code: 'DISK_FULL', message: expect.stringContaining('tail') } });
    expect(store.persistencePaused?.reason.code).toBe('DISK_FULL');
    expect(events).toHaveLength(1);
    // Nothing lost, nothing half-written: the old manifest and its tail, no temp file.
    expect(value(store.getManifest('a'))).toEqual(before.manifest);
    expect(tailFiles()).toEqual(before.tails);
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([8, 9])));

    // New chunks fit, the tail after them does not: the chunks written for it go again.
    const more = range(0, 18);
    faults.written = 0;
    faults.writeBudget = 2 * chunkFileBytes(C, 16 * C) + 10;
    expect(await store.putManifest('a', { fingerprint: fp, tokens: more, chunks: payloadsFor(more, C), tailPayload: payloadFor(more.slice(16)) })).toMatchObject({
      ok: false,
      error: { code: 'DISK_FULL' },
    });
    expect(chunkFiles().sort()).toEqual(before.chunks);
    expect(tailFiles()).toEqual(before.tails);
    expect(value(store.getManifest('a'))).toEqual(before.manifest);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, tempFiles: [], orphanFiles: [] });

    // Space again: the next save goes through, and persistence resumes.
    faults.writeBudget = null;
    await save(store, 'a', more);
    expect(store.persistencePaused).toBeNull();
    expect(events.at(-1)).toBeNull();
    expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([16, 17])));
    expect(tailFiles()).toHaveLength(1);
    expect(tailFiles()).not.toEqual(before.tails);
  });

  it('maps EDQUOT to DISK_FULL, and EACCES or an fsync EIO to INTERNAL', async () => {
    const { store, faults } = await faultyStore();
    faults.written = 0;
    faults.writeBudget = 10;
    faults.writeError = 'EDQUOT';
    expect(await store.putManifest('a', { fingerprint: fp, tokens: range(0, 4), chunks: payloadsFor(range(0, 4), C) })).toMatchObject({
      ok: false,
      error: { code: 'DISK_FULL' },
    });
    faults.writeBudget = null;
    faults.openError = 'EACCES';
    const denied = await store.putManifest('a', { fingerprint: fp, tokens: range(0, 4), chunks: payloadsFor(range(0, 4), C) });
    expect(denied).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(store.persistencePaused?.reason.message).toMatch(/permission/);
    faults.openError = null;
    faults.syncError = 'EIO';
    expect(await store.putManifest('a', { fingerprint: fp, tokens: range(0, 4), chunks: payloadsFor(range(0, 4), C) })).toMatchObject({
      ok: false,
      error: { code: 'INTERNAL' },
    });
    expect(chunkFiles()).toEqual([]);
    faults.syncError = null;
    await save(store, 'a', range(0, 4));
    expect(store.persistencePaused).toBeNull();
  });
});

describe('KV store: the fault suite\'s full-disk flag', () => {
  it('fails chunk writes with DISK_FULL while the flag file exists, and works again once it is gone', async () => {
    const flag = join(stores.root, 'full.flag');
    writeFileSync(flag, '');
    const store = await openStore({ root: join(stores.root, 'kv'), fs: fullWhileFlag(flag) });
    expect(store.persistencePaused?.reason.code).toBe('DISK_FULL');
    const tokens = range(0, 8);
    expect(await store.putManifest('a', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) })).toMatchObject({ ok: false, error: { code: 'DISK_FULL' } });
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, tempFiles: [] });
    unlinkSync(flag);
    value(await store.putManifest('a', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) }));
    expect(store.persistencePaused).toBeNull();
    // Tail files go through the same file system: a save that only writes a tail fails too.
    writeFileSync(flag, '');
    const withTail = range(0, 10);
    expect(await store.putManifest('a', { fingerprint: fp, tokens: withTail, chunks: payloadsFor(withTail, C), tailPayload: payloadFor([8, 9]) })).toMatchObject({
      ok: false,
      error: { code: 'DISK_FULL' },
    });
    expect(store.persistencePaused?.reason.code).toBe('DISK_FULL');
    expect(value(store.getManifest('a')).totalTokens).toBe(8);
    expect(tailFiles(join(stores.root, 'kv'))).toEqual([]);
    unlinkSync(flag);
    value(await store.putManifest('a', { fingerprint: fp, tokens: withTail, chunks: payloadsFor(withTail, C), tailPayload: payloadFor([8, 9]) }));
    expect(store.persistencePaused).toBeNull();
    expect(tailFiles(join(stores.root, 'kv'))).toHaveLength(1);
  });
});
