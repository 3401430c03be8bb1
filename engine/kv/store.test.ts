import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { chunkFileBytes, chunkPath, chunksDir, writeChunkFile } from './chunk-file.ts';
import { chainKey, chunkKeys } from './fingerprint.ts';
import type { KvStore, KvStoreOptions, PersistencePause } from './store.ts';
import { openKvStore } from './store.ts';
import { fallbackKernels } from './kernels-fallback.ts';
import { fullWhileFlag, nodeFs } from './store-fs.ts';
import type { Faults } from '../../test/support/kv-store.ts';
import { faultyFs, payloadFor, payloadsFor, range, sampleFingerprint, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences
const fp = sampleFingerprint();

const stores = useTestStores(C);
const openStore = stores.open.bind(stores);

async function faultyStore(options: Partial<KvStoreOptions> = {}): Promise<{ store: KvStore; faults: Faults }> {
  const { fs, faults } = faultyFs();
  return { store: await openStore({ fs, ...options }), faults };
}

/** Saves `tokens` with every payload given. */
async function save(store: KvStore, id: string, tokens: number[], tail = true) {
  const tailTokens = tokens.slice(Math.floor(tokens.length / C) * C);
  return value(
    await store.putManifest(id, {
      fingerprint: fp,
      tokens,
      chunks: payloadsFor(tokens, C),
      ...(tail && tailTokens.length > 0 ? { tailPayload: payloadFor(tailTokens) } : {}),
    }),
  );
}

function chunkFiles(): string[] {
  const top = chunksDir(stores.root);
  return readdirSync(top)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(top, d)).map((f) => join(top, d, f)));
}

/** Refcounts as stored, read behind the store's back. */
function refcounts(): Map<string, number> {
  const db = new DatabaseSync(join(stores.root, 'index.db'), { readOnly: true });
  try {
    const rows = db.prepare('SELECT key, refcount FROM chunks').all() as { key: string; refcount: number }[];
    return new Map(rows.map((r) => [r.key, r.refcount]));
  } finally {
    db.close();
  }
}

function flipByte(path: string, fromEnd = 1): void {
  const bytes = readFileSync(path);
  const at = bytes.length - fromEnd;
  bytes[at] = (bytes[at] as number) ^ 0x01;
  writeFileSync(path, bytes);
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

describe('KV store: longest stored prefix', () => {
  it('finds a prefix stored by another chat, and the best tail after it', async () => {
    const store = await openStore();
    const system = range(1000, 8);
    await save(store, 'chat-1/m5', [...system, ...range(0, 6)]); // chunks: system ×2, [0..3]; tail [4, 5]
    const other = [...system, ...range(200, 9)];
    const found = value(store.findLongestPrefix(fp, other));
    expect(found).toMatchObject({ chunks: chunkKeys(fp, system, C), chunkedTokens: 8, stop: 'absent', tail: null, tokens: 8 });

    // The same chat continued: all three chunks, and its stored tail.
    const more = [...system, ...range(0, 6), 77];
    const resumed = value(store.findLongestPrefix(fp, more));
    expect(resumed).toMatchObject({ chunkedTokens: 12, stop: 'end', tail: { manifestId: 'chat-1/m5', tokens: 2, storedTokens: 2 }, tokens: 14 });
    // One more full chunk than stored: the walk stops at it, and the tail still continues the run.
    expect(value(store.findLongestPrefix(fp, [...more, 78]))).toMatchObject({ chunkedTokens: 12, stop: 'absent', tail: { tokens: 2 } });

    // A regenerate: the request diverges inside the stored tail.
    const regen = value(store.findLongestPrefix(fp, [...system, ...range(0, 5), 99]));
    expect(regen.tail).toMatchObject({ manifestId: 'chat-1/m5', tokens: 1, storedTokens: 2 });

    // Another fingerprint (other model, KV type, llama.cpp) shares nothing.
    expect(value(store.findLongestPrefix(sampleFingerprint({ flashAttention: true }), more))).toMatchObject({ chunks: [], tokens: 0, tail: null });
    expect(value(store.findLongestPrefix(fp, []))).toMatchObject({ chunks: [], tokens: 0, stop: 'end' });
  });

  it("stops at a chunk a manifest lists but the index lacks, as 'dangling' (damage, not a miss)", async () => {
    const store = await openStore();
    const tokens = range(0, 12);
    await save(store, 'a', tokens, false);
    const keys = chunkKeys(fp, tokens, C);
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.prepare('DELETE FROM chunks WHERE key = ?').run(keys[1] as string);
    db.close();
    expect(value(store.findLongestPrefix(fp, [...tokens, 1]))).toMatchObject({ chunks: [keys[0]], chunkedTokens: 4, stop: 'dangling' });
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: false, danglingReferences: [{ manifestId: 'a', index: 1, key: keys[1] }] });
    value(await store.checkIntegrity({ repair: true }));
    expect(value(await store.checkIntegrity()).ok).toBe(true);
    expect(value(store.findLongestPrefix(fp, [...tokens, 1]))).toMatchObject({ chunkedTokens: 4, stop: 'absent' });
  });
});

describe('KV store: damaged chunks', () => {
  const tokens = range(0, 16); // four chunks
  const setup = async () => {
    const store = await openStore();
    await save(store, 'a', tokens);
    await save(store, 'b', [...tokens.slice(0, 12), 90, 91, 92, 93, 94]);
    return { store, keys: chunkKeys(fp, tokens, C) };
  };

  for (const [name, damage, reason] of [
    ['a bit flip', (path: string) => flipByte(path), 'checksum'],
    ['a truncation', (path: string) => writeFileSync(path, readFileSync(path).subarray(0, 50)), 'truncated'],
    ['a deleted file', (path: string) => unlinkSync(path), 'missing'],
  ] as const) {
    it(`reports ${name} as '${reason}' and stops matching before it`, async () => {
      const { store, keys } = await setup();
      const bad = keys[1] as string;
      damage(chunkPath(stores.root, bad));
      const read = await store.readChunk(bad);
      expect(read.ok).toBe(false);
      if (read.ok) return;
      expect(read.error).toMatchObject({ reason, key: bad, code: reason === 'missing' ? 'NOT_FOUND' : 'INTERNAL' });
      expect(read.error.message).toContain(bad.slice(0, 12));

      // Both chats are cut before the bad chunk (its later chunks were computed on top of it).
      expect(value(store.findLongestPrefix(fp, tokens))).toMatchObject({ chunks: [keys[0]], chunkedTokens: 4, tail: null });
      expect(value(store.getManifest('a')).chunks).toEqual([keys[0]]);
      expect(value(store.getManifest('b'))).toMatchObject({ chunks: [keys[0]], tail: { bytes: 0 } });
      expect(existsSync(chunkPath(stores.root, keys[2] as string))).toBe(false);
      expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });

      // Re-reading from the bad chunk and saving again repairs the chain.
      expect(value(store.missingChunks(fp, tokens))).toEqual([1, 2, 3]);
      await save(store, 'a', tokens);
      expect(value(store.findLongestPrefix(fp, tokens)).chunkedTokens).toBe(16);
      expect((await store.readChunk(bad)).ok).toBe(true);
    });
  }

  it('stops a lookup at a chunk recorded as corrupt, and returns nothing unverified', async () => {
    const { store, keys } = await setup();
    flipByte(chunkPath(stores.root, keys[2] as string));
    const { chunks, error } = await store.readChunks(keys);
    expect(chunks.map((c) => c.key)).toEqual(keys.slice(0, 2));
    expect(error).toMatchObject({ reason: 'checksum', key: keys[2] });
    const visited: string[] = [];
    const each = await store.forEachChunk(keys, (chunk) => visited.push(chunk.key) > 0);
    expect(visited).toEqual(keys.slice(0, 2));
    // Recorded and invalidated by the read above: now a cache miss at the same place.
    expect(each).toMatchObject({ count: 2, error: { key: keys[2] } });
    expect(value(store.findLongestPrefix(fp, tokens))).toMatchObject({ chunkedTokens: 8, stop: 'absent' });

    // The record itself, seen before the invalidation: a chunk marked corrupt stops the walk.
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.prepare('UPDATE chunks SET corrupt = ? WHERE key = ?').run('checksum', keys[1] as string);
    db.close();
    expect(value(store.findLongestPrefix(fp, tokens))).toMatchObject({ chunkedTokens: 4, stop: 'corrupt' });
    expect(value(store.missingChunks(fp, tokens))).toEqual([1, 2, 3]);
  });

  it("reports a file longer than its header says as 'length'", async () => {
    const { store, keys } = await setup();
    const path = chunkPath(stores.root, keys[3] as string);
    writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.from([0])]));
    expect(await store.readChunk(keys[3] as string)).toMatchObject({ ok: false, error: { reason: 'length' } });
    expect(value(store.findLongestPrefix(fp, tokens)).chunkedTokens).toBe(12);
  });

  it('drops a damaged tail instead of returning it', async () => {
    const store = await openStore();
    await save(store, 'a', range(0, 6));
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    db.prepare('UPDATE manifests SET tail_crc = tail_crc + 1').run();
    db.close();
    expect(store.readTail('a')).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(value(store.readTail('a')).payload).toBeNull();
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
  });
});

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
  });
});

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
    db.prepare("UPDATE manifests SET tail_crc = 0 WHERE id = 'a'").run();
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

describe('KV store: model hash', () => {
  it('hashes a model once per path, size and mtime', async () => {
    const { store, faults } = await faultyStore();
    const model = join(stores.root, 'model.gguf');
    writeFileSync(model, Buffer.alloc(3 * 1024 * 1024, 1));
    const progress: [number, number][] = [];
    const first = value(await store.modelContentHash(model, { onProgress: (d, t) => progress.push([d, t]) }));
    expect(first).toBe(createHash('sha256').update(readFileSync(model)).digest('hex'));
    expect(progress.at(-1)).toEqual([3 * 1024 * 1024, 3 * 1024 * 1024]);
    expect(faults.reads.get(model)).toBe(1);

    // Cached: no read, also after reopening the store; concurrent callers share one hash.
    expect(value(await store.modelContentHash(model))).toBe(first);
    await store.close();
    const again = await faultyStore();
    expect(value(await again.store.modelContentHash(model))).toBe(first);
    expect(again.faults.reads.get(model)).toBeUndefined();

    // A new mtime (same bytes) recomputes once.
    utimesSync(model, new Date(), new Date(Date.now() + 60_000));
    const [x, y] = await Promise.all([again.store.modelContentHash(model), again.store.modelContentHash(model)]);
    expect(value(x)).toBe(first);
    expect(value(y)).toBe(first);
    expect(again.faults.reads.get(model)).toBe(1);
    writeFileSync(model, Buffer.alloc(10, 2));
    expect(value(await again.store.modelContentHash(model))).toBe(createHash('sha256').update(Buffer.alloc(10, 2)).digest('hex'));
    expect(await again.store.modelContentHash(join(stores.root, 'missing.gguf'))).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });
});

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
