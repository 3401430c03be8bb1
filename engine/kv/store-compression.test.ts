/**
 * The KV store with compressed payloads (frame.ts): raw sizes recorded per chunk and tail, the
 * schema migration for stores written before, version 1 chunk files still read, and damage
 * reported by a reader.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunkFileBytes, chunkHeaderBytes, chunkPath, chunksDir } from './chunk-file.ts';
import { chunkKeys } from './fingerprint.ts';
import { decodeChunk, encodeChunk } from './frame.ts';
import { fallbackKernels as kernels } from './kernels-fallback.ts';
import { f16Layers, syntheticChunks } from '../../test/support/kv-state.ts';
import { payloadFor, payloadsFor, range, sampleFingerprint, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 64;
const fp = sampleFingerprint();
const stores = useTestStores(C);

function chunkFiles(): string[] {
  const top = chunksDir(stores.root);
  return readdirSync(top)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(top, d)).map((f) => join(top, d, f)));
}

describe('the KV store with compressed payloads', () => {
  it('counts rawBytes at the payloads\' decoded size, and round-trips the stored bytes', async () => {
    const store = await openStoreForTest();
    const cut = syntheticChunks({ tokens: 2 * C + 10, layers: f16Layers(2), vTrans: false }, C);
    const stored = cut.chunks.map((c) => value(encodeChunk(cut.shape, c.payload, 'lossless', kernels)));
    const tail = value(encodeChunk(cut.shape, cut.tail!.payload, 'lossy', kernels));
    const ids = range(100, 2 * C + 10);
    value(await store.putManifest('chat/a', { fingerprint: fp, tokens: ids, chunks: stored, tailPayload: tail }));
    const stats = value(await store.stats());
    const raw = cut.chunks.reduce((s, c) => s + c.payload.byteLength, 0) + cut.tail!.payload.byteLength;
    expect(stats.rawBytes).toBe(raw);
    expect(stats.storedBytes).toBe(stored.reduce((s, p) => s + chunkFileBytes(C, p.byteLength), 0) + tail.byteLength);
    expect(stats.rawBytes / stats.storedBytes).toBeGreaterThan(1.1);
    const keys = chunkKeys(fp, ids, C);
    const read = value(await store.readChunk(keys[1]!));
    expect(Buffer.from(read.payload).equals(Buffer.from(stored[1]!))).toBe(true);
    expect(Buffer.from(value(decodeChunk(cut.shape, read.payload, kernels))).equals(cut.chunks[1]!.payload)).toBe(true);
    expect(value(await store.checkIntegrity()).ok).toBe(true);
    // The tail's raw size goes with the tail.
    value(await store.putManifest('chat/a', { fingerprint: fp, tokens: ids.slice(0, 2 * C), chunks: stored }));
    expect(value(await store.stats()).rawBytes).toBe(raw - cut.tail!.payload.byteLength);
  });

  it('migrates an index written before raw sizes were recorded', async () => {
    let store = await openStoreForTest();
    const tokens = range(0, 2 * C + 3);
    value(await store.putManifest('x', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C), tailPayload: payloadFor(tokens.slice(2 * C)) }));
    const before = value(await store.stats());
    await store.close();
    // Back to schema 1, as a store written before compression left it: no raw sizes, and the
    // tail payload (read from its file) and its checksum in the manifest row.
    const db = new DatabaseSync(join(stores.root, 'index.db'));
    const { file } = db.prepare("SELECT file FROM tails WHERE manifest_id = 'x'").get() as { file: string };
    db.exec(`
      ALTER TABLE chunks DROP COLUMN raw_bytes;
      ALTER TABLE manifests ADD COLUMN tail_payload BLOB;
      ALTER TABLE manifests ADD COLUMN tail_crc INTEGER;
      UPDATE manifests SET tail_crc = (SELECT crc FROM tails WHERE tails.manifest_id = manifests.id);`);
    db.prepare("UPDATE manifests SET tail_payload = ? WHERE id = 'x'").run(readFileSync(join(stores.root, 'tails', file)));
    db.exec(`
      DROP TABLE tails;
      DROP TABLE fingerprint_models;
      ALTER TABLE manifests DROP COLUMN tail_bytes;
      PRAGMA user_version = 1`);
    db.close();
    store = await openStoreForTest();
    const after = value(await store.stats());
    expect(after.rawBytes).toBe(before.rawBytes);
    expect(after.rawBytes).toBe(2 * 16 * C + 3 * 16);
    expect(after.storedBytes).toBe(before.storedBytes);
    expect(Buffer.from(value(store.readTail('x')).payload as Uint8Array).equals(Buffer.from(payloadFor(tokens.slice(2 * C))))).toBe(true);
    expect(value(await store.checkIntegrity()).ok).toBe(true);
  });

  it('reads and checks version 1 chunk files (zlib CRC-32), and rewrites none of them', async () => {
    const store = await openStoreForTest();
    const tokens = range(0, 3 * C);
    value(await store.putManifest('x', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) }));
    for (const path of chunkFiles()) {
      const v1 = readFileSync(path);
      v1.writeUInt16LE(1, 4);
      v1.writeUInt32LE(crc32(v1.subarray(chunkHeaderBytes)), 12);
      v1.writeUInt32LE(crc32(v1.subarray(0, 88)), 88);
      writeFileSync(path, v1);
    }
    const keys = chunkKeys(fp, tokens, C);
    const read = await store.readChunks(keys);
    expect(read.error).toBeNull();
    expect(read.chunks.map((c, i) => Buffer.from(c.payload).equals(Buffer.from(payloadFor(tokens.slice(C * i, C * (i + 1))))))).toEqual([true, true, true]);
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true, chunksVerified: 3 });
    expect(readFileSync(chunkPath(stores.root, keys[0]!)).readUInt16LE(4)).toBe(1);
  });

  it('records a chunk a reader could not decode: lookups stop before it, and the next save rewrites it', async () => {
    const store = await openStoreForTest();
    const tokens = range(0, 3 * C);
    value(await store.putManifest('x', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) }));
    const keys = chunkKeys(fp, tokens, C);
    const error = await store.recordDamage(keys[1]!, 'its frame does not decode');
    expect(error).toMatchObject({ reason: 'payload', key: keys[1] });
    expect(error.message).toContain('undecodable');
    const match = value(store.findLongestPrefix(fp, tokens));
    expect(match.chunks).toEqual([keys[0]]);
    expect(value(store.missingChunks(fp, tokens))).toEqual([1, 2]);
    const again = value(await store.putManifest('x', { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) }));
    expect(again.chunksWritten).toBe(2);
    expect(value(store.findLongestPrefix(fp, tokens)).chunks).toEqual(keys);
  });
});

function openStoreForTest() {
  return stores.open({ kernels });
}
