/** The KV store's reads (store-read.ts): prefix lookups, and what a damaged chunk does to them. */
import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it, vi } from 'vitest';
import { chunkPath } from './chunk-file.ts';
import { chunkKeys } from './fingerprint.ts';
import { nodeFs } from './store-fs.ts';
import { tailPath } from './tail-file.ts';
import { errno, flipByte, payloadFor, payloadsFor, range, sampleFingerprint, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { fingerprint: fp, open: openStore, save } = stores;

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
    db.prepare('UPDATE tails SET crc = crc + 1').run();
    db.close();
    expect(store.readTail('a')).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(value(store.readTail('a')).payload).toBeNull();
  });

  /** The file a manifest's tail is stored in, read from the index behind the store's back. */
  function tailFileOf(id: string): string {
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    try {
      const row = db.prepare('SELECT file FROM tails WHERE manifest_id = ?').get(id) as { file: string } | undefined;
      if (!row) throw new Error(`${id} has no tail file`);
      return tailPath(stores.root, row.file);
    } finally {
      db.close();
    }
  }

  const damages: readonly { readonly name: string; readonly damage: (path: string) => void; readonly says: string }[] = [
    { name: 'missing', damage: (path) => unlinkSync(path), says: 'missing' },
    { name: 'truncated', damage: (path) => truncateSync(path, statSync(path).size - 1), says: 'truncated' },
    { name: 'longer than its row says', damage: (path) => appendFileSync(path, Buffer.from([0])), says: 'length' },
    { name: 'bit-flipped', damage: (path) => flipByte(path, 7), says: 'checksum' },
    { name: 'emptied', damage: (path) => truncateSync(path, 0), says: 'truncated' },
  ];
  for (const { name, damage, says } of damages) {
    it(`reports a ${name} tail file as a damaged tail: never returned, dropped, and the tail's tokens re-read`, async () => {
      const store = await openStore();
      const tokens = range(0, 10); // two chunks and a 2-token tail
      await save(store, 'a', tokens);
      const path = tailFileOf('a');
      damage(path);
      const read = store.readTail('a');
      expect(read).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringContaining(`damaged (${says})`) } });
      // Dropped in its own small transaction: the chunks and the tail's tokens stay, the payload
      // is gone, so a lookup restores the chunks and the tail's tokens are evaluated again.
      expect(value(store.readTail('a'))).toEqual({ tokens: Int32Array.from([8, 9]), payload: null });
      expect(value(store.getManifest('a'))).toMatchObject({ totalTokens: 10, tail: { bytes: 0 } });
      expect(value(store.findLongestPrefix(fp, [...tokens, 1]))).toMatchObject({ chunkedTokens: 8, tail: null, tokens: 8 });
      await vi.waitFor(() => expect(existsSync(path)).toBe(false));
      expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
      // The next save stores a tail again.
      await save(store, 'a', tokens);
      expect(Buffer.from(value(store.readTail('a')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor([8, 9])));
    });
  }

  it('reads tails of any size one after another, each as stored (one reused buffer)', async () => {
    const store = await openStore();
    const big = payloadFor(range(4, 2), 100_000);
    value(await store.putManifest('big', { fingerprint: fp, tokens: range(0, 6), chunks: payloadsFor(range(0, 6), C), tailPayload: big }));
    await save(store, 'small', range(50, 7));
    await save(store, 'empty', range(80, 5), false);
    for (let round = 0; round < 2; round++) {
      expect(Buffer.from(value(store.readTail('big')).payload as Uint8Array).equals(Buffer.from(big))).toBe(true);
      expect(Buffer.from(value(store.readTail('small')).payload as Uint8Array)).toEqual(Buffer.from(payloadFor(range(54, 3))));
      expect(value(store.readTail('empty')).payload).toBeNull();
    }
  });

  it('keeps a tail it could not read for another reason than damage (an I/O error)', async () => {
    const unreadable = (): never => {
      throw errno('EIO', 'read');
    };
    const store = await openStore({ fs: { ...nodeFs, readIntoSync: unreadable } });
    await save(store, 'a', range(0, 6));
    expect(store.readTail('a')).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringContaining('could not be read') } });
    expect(value(store.getManifest('a')).tail.bytes).toBe(2 * 16);
  });
});
