import { describe, expect, it } from 'vitest';
import type { KvStoreInfo } from '../contract.ts';
import { chat, msg } from '../test-support/fixtures.ts';
import { fakeTransport, ok } from '../test-support/fake-transport.ts';
import { createActions } from './actions.ts';
import { selectEngineBusy, selectKvStats, selectKvStatsError } from './selectors.ts';
import { createHearthStore } from './store.ts';

const info: KvStoreInfo = {
  persistence: 'on',
  bytesOnDisk: 4096,
  chunkCount: 1,
  logicalBytes: 4096,
  budgetBytes: 1024 ** 3,
  freeDiskBytes: 10 * 1024 ** 3,
  chunkTokens: 256,
};

function setup() {
  const transport = fakeTransport();
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  return { transport, store, actions };
}

describe('kv stats in the store', () => {
  it('refreshKvStats keeps the figures, and on a failure the error beside the last figures', async () => {
    const t = setup();
    t.transport.handlers['kv.stats'] = () => ok(info);
    expect(await t.actions.refreshKvStats()).toEqual({ ok: true, value: info });
    expect(t.transport.calls).toEqual([{ name: 'kv.stats', input: {} }]);
    expect(selectKvStats(t.store.getState())).toEqual(info);

    const down = { code: 'ENGINE_UNAVAILABLE' as const, message: 'The engine is restarting.' };
    t.transport.handlers['kv.stats'] = () => ({ ok: false, error: down });
    await t.actions.refreshKvStats();
    expect(selectKvStats(t.store.getState())).toEqual(info);
    expect(selectKvStatsError(t.store.getState())).toEqual(down);

    t.transport.handlers['kv.stats'] = () => ok({ ...info, bytesOnDisk: 8192 });
    await t.actions.refreshKvStats();
    expect(selectKvStats(t.store.getState())?.bytesOnDisk).toBe(8192);
    expect(selectKvStatsError(t.store.getState())).toBeNull();
  });

  it('selectEngineBusy: a streaming reply, then a loading model, then a download', () => {
    const t = setup();
    const s = () => t.store.getState();
    expect(selectEngineBusy(s())).toBeNull();
    s().setDownload({ downloadId: 'd1', uri: 'hf:x/y', status: 'downloading', downloadedBytes: 1, totalBytes: 10 });
    expect(selectEngineBusy(s())).toBe('download');
    s().setModel({ status: 'loading', progress: 0.5 });
    expect(selectEngineBusy(s())).toBe('model');
    s().setChatMessages('c1', [msg('u', null), msg('a', 'u', 'assistant', { status: 'streaming' })]);
    s().setChat(chat('c1', { activeLeafId: 'a' }));
    expect(selectEngineBusy(s())).toBe('reply');
    s().upsertMessages([msg('a', 'u', 'assistant', { status: 'complete' })]);
    s().setModel({ status: 'ready' });
    s().setDownload({ downloadId: 'd1', uri: 'hf:x/y', status: 'done', downloadedBytes: 10, totalBytes: 10 });
    expect(selectEngineBusy(s())).toBeNull();
  });
});
