import { describe, expect, it } from 'vitest';
import { hearthError } from '../contract/index.ts';
import type { KvStore } from '../kv/store.ts';
import { faultyFs, payloadsFor, range, sampleFingerprint, useTestStores, value } from '../../test/support/kv-store.ts';
import type { WorkerEvent } from '../protocol.ts';
import { kvUnavailableEvent, watchKvPersistence } from './kv-persistence.ts';

const C = 4;
const fp = sampleFingerprint();

const stores = useTestStores(C);

function put(store: KvStore, id: string, tokens: number[]) {
  return store.putManifest(id, { fingerprint: fp, tokens, chunks: payloadsFor(tokens, C) });
}

describe('kvPersistence worker events', () => {
  it('reports the initial state, one pause on ENOSPC (however many writes fail), and the resume', async () => {
    const { fs, faults } = faultyFs();
    const store = await stores.open({ fs });
    const events: WorkerEvent[] = [];
    const unwatch = watchKvPersistence(store, (e) => events.push(e));
    expect(events).toEqual([{ type: 'kvPersistence', paused: false }]);

    faults.written = 0;
    faults.writeBudget = 50; // the disk fills halfway through the first chunk
    expect(await put(store, 'a', range(0, 8))).toMatchObject({ ok: false, error: { code: 'DISK_FULL' } });
    expect(await put(store, 'b', range(100, 8))).toMatchObject({ ok: false, error: { code: 'DISK_FULL' } });
    expect(events).toHaveLength(2);
    expect(events[1]).toMatchObject({ type: 'kvPersistence', paused: true, reason: { code: 'DISK_FULL' } });

    faults.writeBudget = null;
    value(await put(store, 'a', range(0, 8)));
    expect(events.at(-1)).toEqual({ type: 'kvPersistence', paused: false });
    expect(events).toHaveLength(3);

    unwatch.dispose();
    faults.written = 0;
    faults.writeBudget = 0;
    await put(store, 'c', range(200, 8));
    expect(events).toHaveLength(3);
  });

  it('reports a store that opens on a full disk as paused at once', async () => {
    const { fs, faults } = faultyFs();
    faults.writeBudget = 0;
    const store = await stores.open({ fs });
    const events: WorkerEvent[] = [];
    watchKvPersistence(store, (e) => events.push(e));
    expect(events).toEqual([expect.objectContaining({ type: 'kvPersistence', paused: true, reason: expect.objectContaining({ code: 'DISK_FULL' }) })]);
  });

  it('reports a store that could not be opened as paused with its error', () => {
    const reason = hearthError('INTERNAL', 'The KV store directory /x is not usable: EACCES.');
    expect(kvUnavailableEvent(reason)).toEqual({ type: 'kvPersistence', paused: true, reason });
  });
});
