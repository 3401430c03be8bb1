/** The model content hash (model-hash.ts), cached in the KV store's index. */
import { createHash } from 'node:crypto';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTestStores, value } from '../../test/support/kv-store.ts';

const C = 4; // tokens per chunk: small, so tests cut many chunks from short sequences

const stores = useTestStores(C);
const { openFaulty: faultyStore } = stores;

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
