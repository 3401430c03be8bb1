/**
 * The KV store by model (store-models.ts): the KV a model left (manifests and distinct bytes),
 * forgetting it without touching another model's, a model file's hash looked up without hashing
 * (model-hash.ts `knownModelHash`), and an index written before fingerprints named their model.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import { openSqlite } from '../sqlite.ts';
import { chunkPath } from './chunk-file.ts';
import { chunkKeys } from './fingerprint.ts';
import { migrations } from './store-db.ts';
import type { KvStore } from './store.ts';
import { tailsDir } from './tail-file.ts';
import { payloadFor, range, sampleFingerprint, saveTokens, useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { open: openStore, chunkFiles } = stores;

const modelA = 'aa'.repeat(32);
const modelB = 'bb'.repeat(32);
const fpA = sampleFingerprint({ modelHash: modelA });
/** Model A under other cache settings: another fingerprint of the same model. */
const fpA8 = sampleFingerprint({ modelHash: modelA, kType: 'Q8_0', vType: 'Q8_0' });
const fpB = sampleFingerprint({ modelHash: modelB });

/** Bytes of the distinct chunk files of `saves` (fingerprint and tokens), read from disk, plus their tail payloads. */
function bytesOf(saves: readonly (readonly [string, number[]])[]): number {
  const keys = new Set(saves.flatMap(([fp, tokens]) => chunkKeys(fp, tokens, C)));
  const chunks = [...keys].reduce((sum, key) => sum + statSync(chunkPath(stores.root, key)).size, 0);
  const tails = saves.reduce((sum, [, tokens]) => sum + payloadFor(tokens.slice(Math.floor(tokens.length / C) * C)).length, 0);
  return chunks + tails;
}

const tailFiles = (): string[] => (existsSync(tailsDir(stores.root)) ? readdirSync(tailsDir(stores.root)) : []);

/** Two models' KV: A's chats share a system prompt (two branches of one chat, and another chat), and one chat under other settings; B's one chat. */
async function twoModels(store: KvStore) {
  const system = range(1000, 8);
  const a = {
    'x/1': [fpA, [...system, ...range(0, 6)]],
    'x/2': [fpA, [...system, ...range(50, 7)]],
    y: [fpA, [...system, ...range(100, 5)]],
    'z/1': [fpA8, range(300, 9)],
  } as const satisfies Record<string, readonly [string, number[]]>;
  const b = { 'w/1': [fpB, [...system, ...range(0, 6)]] } as const satisfies Record<string, readonly [string, number[]]>;
  value(store.recordFingerprint(fpA, modelA));
  value(store.recordFingerprint(fpA8, modelA));
  value(store.recordFingerprint(fpB, modelB));
  for (const [id, [fp, tokens]] of [...Object.entries(a), ...Object.entries(b)]) await saveTokens(store, fp, id, tokens);
  return { a, b, system };
}

describe('KV store: a model\'s stored KV', () => {
  it('counts each model\'s manifests, and its distinct chunk files once plus its tails', async () => {
    const store = await openStore();
    const { a, b, system } = await twoModels(store);
    const aBytes = bytesOf(Object.values(a));
    // The system prompt's two chunks are shared by three of A's manifests: counted once.
    const listed = Object.values(a).reduce((sum, [fp, tokens]) => sum + chunkKeys(fp, tokens, C).length, 0);
    expect(new Set(Object.values(a).flatMap(([fp, tokens]) => chunkKeys(fp, tokens, C))).size).toBe(listed - 2 * 2);
    expect(value(store.modelUsage(modelA))).toEqual({ conversations: 4, bytes: aBytes });
    expect(value(store.modelUsage(modelB))).toEqual({ conversations: 1, bytes: bytesOf(Object.values(b)) });
    // B's chat has the same tokens as one of A's, yet its own chunks: keys chain from the fingerprint.
    expect(chunkKeys(fpB, [...system, ...range(0, 6)], C)).not.toContain(chunkKeys(fpA, [...system, ...range(0, 6)], C)[0]);
    // Together, everything the store holds.
    expect(value(store.modelUsage(modelA)).bytes + value(store.modelUsage(modelB)).bytes).toBe(value(await store.stats()).storedBytes);
    expect(value(store.modelUsage('cc'.repeat(32)))).toEqual({ conversations: 0, bytes: 0 });
    expect(store.modelUsage('not a hash')).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('records a fingerprint once, for one model', async () => {
    const store = await openStore();
    expect(value(store.fingerprintModel(fpA))).toBeNull();
    value(store.recordFingerprint(fpA, modelA));
    value(store.recordFingerprint(fpA, modelA));
    expect(value(store.fingerprintModel(fpA))).toBe(modelA);
    expect(store.recordFingerprint(fpA, 'nope')).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(store.recordFingerprint('nope', modelA)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    await store.close();
    const again = await openStore();
    expect(value(again.fingerprintModel(fpA))).toBe(modelA);
  });

  it('forgets one model\'s KV, chunks and tail files, leaving the other model\'s intact and readable', async () => {
    const store = await openStore();
    const { a, b } = await twoModels(store);
    const before = value(store.modelUsage(modelA));
    const bBefore = value(store.modelUsage(modelB));
    const aKeys = new Set(Object.values(a).flatMap(([fp, tokens]) => chunkKeys(fp, tokens, C)));
    expect(tailFiles()).toHaveLength(5);

    const report = value(await store.forgetModel(modelA));
    expect(report).toEqual({ manifests: 4, chunksRemoved: aKeys.size, bytesFreed: before.bytes });
    for (const id of Object.keys(a)) expect(store.getManifest(id)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    for (const key of aKeys) expect(existsSync(chunkPath(stores.root, key))).toBe(false);
    expect(value(store.modelUsage(modelA))).toEqual({ conversations: 0, bytes: 0 });

    // B's chat is whole: its usage, chunks, tail file, and a restore's lookup and reads.
    expect(value(store.modelUsage(modelB))).toEqual(bBefore);
    const [fp, tokens] = b['w/1'];
    const keys = chunkKeys(fp, tokens, C);
    expect(chunkFiles().map((f) => f.slice(f.lastIndexOf('/') + 1)).sort()).toEqual(keys.map((k) => `${k}.kvc`).sort());
    expect(tailFiles()).toHaveLength(1);
    expect(value(store.findLongestPrefix(fp, [...tokens, 7]))).toMatchObject({ chunkedTokens: keys.length * C, tail: { manifestId: 'w/1' } });
    expect((await store.readChunks(keys)).error).toBeNull();
    expect(Buffer.from(value(store.readTail('w/1')).payload!)).toEqual(Buffer.from(payloadFor(tokens.slice(keys.length * C))));
    expect(value(await store.checkIntegrity())).toMatchObject({ ok: true });
    expect(value(await store.stats())).toMatchObject({ manifests: 1, storedBytes: bBefore.bytes });

    // Nothing left of A: a second forget frees nothing.
    expect(value(await store.forgetModel(modelA))).toEqual({ manifests: 0, chunksRemoved: 0, bytesFreed: 0 });
    expect(await store.forgetModel('nope')).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('leaves KV whose fingerprint was never recorded to no model', async () => {
    const store = await openStore();
    const unknown = sampleFingerprint({ modelHash: modelA, nStream: 2 });
    await saveTokens(store, unknown, 'u', range(0, 9));
    expect(value(store.modelUsage(modelA))).toEqual({ conversations: 0, bytes: 0 });
    expect(value(await store.forgetModel(modelA))).toEqual({ manifests: 0, chunksRemoved: 0, bytesFreed: 0 });
    expect(value(store.getManifest('u')).totalTokens).toBe(9);
  });
});

describe('KV store: a model file\'s hash, without hashing', () => {
  it('answers the hash cached for the file as it is, never reading the file', async () => {
    const { store, faults } = await stores.openFaulty();
    const model = join(stores.root, 'model.gguf');
    writeFileSync(model, Buffer.alloc(64 * 1024, 3));
    // Never hashed: no hash, and the file was not read.
    expect(value(await store.knownModelHash(model))).toBeNull();
    expect(faults.reads.get(model)).toBeUndefined();
    const hash = value(await store.modelContentHash(model));
    expect(hash).toBe(createHash('sha256').update(Buffer.alloc(64 * 1024, 3)).digest('hex'));
    expect(value(await store.knownModelHash(model))).toBe(hash);
    expect(faults.reads.get(model)).toBe(1);

    // Changed since (another size): the cached hash is not this content's.
    writeFileSync(model, Buffer.alloc(100, 4));
    expect(value(await store.knownModelHash(model))).toBeNull();
    expect(faults.reads.get(model)).toBe(1);
    // Deleted: the last hash cached for its path, so its KV can still be forgotten.
    const other = value(await store.modelContentHash(model));
    unlinkSync(model);
    expect(value(await store.knownModelHash(model))).toBe(other);
    expect(value(await store.knownModelHash(join(stores.root, 'never.gguf')))).toBeNull();
    expect(await store.knownModelHash(stores.root)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });
});

describe('KV index: fingerprints name their model (schema 5)', () => {
  /** Replaces the store's (closed) index.db with one at schema 4 holding the same rows. */
  function rewriteAtSchema4(): void {
    const file = join(stores.root, 'index.db');
    const old = `${file}.old`;
    const db = openSqlite(old, { migrations: migrations.slice(0, 4), what: 'The old KV index' });
    try {
      db.prepare('ATTACH DATABASE ? AS cur').run(file);
      for (const table of ['chunks', 'manifests', 'manifest_chunks', 'tails', 'model_hashes']) db.exec(`INSERT INTO main.${table} SELECT * FROM cur.${table}`);
      db.exec('DETACH DATABASE cur');
    } finally {
      db.close();
    }
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    renameSync(old, file);
  }

  it('upgrades an index at schema 4: its manifests stay, attributed once their fingerprint is computed again', async () => {
    let store = await openStore();
    const tokens = range(0, 10);
    await saveTokens(store, fpA, 'old', tokens);
    await store.close();
    rewriteAtSchema4();
    const read = (sql: string): unknown => {
      const db = new DatabaseSync(join(stores.root, 'index.db'), { readOnly: true });
      try {
        return db.prepare(sql).get();
      } finally {
        db.close();
      }
    };
    expect(read('PRAGMA user_version')).toEqual({ user_version: 4 });

    store = await openStore();
    expect(read('PRAGMA user_version')).toEqual({ user_version: migrations.length });
    expect(migrations).toHaveLength(5);
    // Saved before fingerprints named their model: no model's, and still restored.
    expect(value(store.modelUsage(modelA))).toEqual({ conversations: 0, bytes: 0 });
    expect(value(await store.forgetModel(modelA))).toMatchObject({ manifests: 0, bytesFreed: 0 });
    expect(value(store.findLongestPrefix(fpA, [...tokens, 1]))).toMatchObject({ chunkedTokens: 8, tail: { manifestId: 'old' } });
    expect((await store.readChunks(chunkKeys(fpA, tokens, C))).error).toBeNull();

    // A load computes the fingerprint again: from then on the manifest is the model's.
    value(store.recordFingerprint(fpA, modelA));
    const bytes = bytesOf([[fpA, tokens]]);
    expect(value(store.modelUsage(modelA))).toEqual({ conversations: 1, bytes });
    expect(value(await store.forgetModel(modelA))).toMatchObject({ manifests: 1, bytesFreed: bytes });
    expect(chunkFiles()).toEqual([]);
    expect(tailFiles()).toEqual([]);
  });
});
