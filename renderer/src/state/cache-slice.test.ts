import { describe, expect, it } from 'vitest';
import { download } from './models.fixtures.ts';
import type { CacheEvent, KvStoreInfo } from '../contract.ts';
import { cacheRingCapacity } from '../lib/ring.ts';
import { appState, cacheSnapshot, cacheTurn, chat, msg } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { maxEvents, maxTurns } from './cache-slice.ts';
import { bindEvents } from './events.ts';
import {
  selectCachedChats,
  selectCacheEvents,
  selectCacheMemory,
  selectCacheOverviewError,
  selectCacheRing,
  selectCacheSlot,
  selectCacheStore,
  selectChatCache,
  selectEngineBusy,
  selectHitRatioText,
  selectKvStats,
  selectKvStatsError,
  selectSlotCount,
  selectTurns,
} from './selectors.ts';
import { createHearthStore } from './store.ts';

const info: KvStoreInfo = {
  persistence: 'on',
  bytesOnDisk: 4096,
  chunkCount: 1,
  logicalBytes: 4096,
  budgetBytes: 1024 ** 3,
  freeDiskBytes: 10 * 1024 ** 3,
  chunkTokens: 256,
  compression: 'lossless',
  compressionChoice: { setting: 'lossless', applied: 'lossless' },
  codec: { kernels: 'native' },
  stateTransfer: null,
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
    s().applyDownload(download('d1'));
    expect(selectEngineBusy(s())).toBe('download');
    s().setModel({ status: 'loading', progress: 0.5 });
    expect(selectEngineBusy(s())).toBe('model');
    s().setChatMessages('c1', [msg('u', null), msg('a', 'u', 'assistant', { status: 'streaming' })]);
    s().setChat(chat('c1', { activeLeafId: 'a' }));
    expect(selectEngineBusy(s())).toBe('reply');
    s().upsertMessages([msg('a', 'u', 'assistant', { status: 'complete' })]);
    s().setModel({ status: 'ready' });
    s().applyDownload(download('d1', { status: 'done' }));
    expect(selectEngineBusy(s())).toBeNull();
  });
});

describe('the Cache view in the store', () => {
  function bound() {
    const transport = fakeTransport();
    const store = createHearthStore();
    const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
    const unbind = bindEvents(transport, store, actions, (cb) => cb());
    return { transport, store, actions, unbind, s: () => store.getState() };
  }
  const event = (id: number, kind: CacheEvent['kind'] = 'save', extra: Partial<CacheEvent> = {}): CacheEvent => ({ id, at: 1000 + id, kind, text: `event ${id}`, ...extra });
  const overview = { turns: [cacheTurn('m1')], events: [event(1)], chats: [{ chatId: 'c1', tokens: 512, bytes: 4096, lastUsed: 5 }] };

  it('a tick goes into the ring and becomes the latest snapshot; the ring stays bounded', () => {
    const t = bound();
    let redraws = 0;
    selectCacheRing(t.s()).subscribe(() => redraws++);
    t.transport.emit({ type: 'cache.tick', payload: cacheSnapshot({ seq: 1 }) });
    expect(selectCacheRing(t.s()).size).toBe(1);
    expect(redraws).toBe(1);
    expect(selectSlotCount(t.s())).toBe(1);
    expect(selectCacheSlot(0)(t.s())?.cellsUsed).toBe(123);
    expect(selectCacheMemory(t.s())?.kind).toBe('ram');
    expect(selectCacheStore(t.s())?.chunkCount).toBe(3);
    for (let seq = 2; seq <= 300; seq++) t.transport.emit({ type: 'cache.tick', payload: cacheSnapshot({ seq }) });
    expect(selectCacheRing(t.s()).size).toBe(cacheRingCapacity);
    expect(t.s().snapshot?.seq).toBe(300);
    expect(selectCacheRing(t.s()).toArray()[0]?.seq).toBe(61);
    t.transport.emit({ type: 'cache.tick', payload: cacheSnapshot({ seq: 301, memory: null, slots: [], store: null }) });
    expect(selectSlotCount(t.s())).toBe(0);
    expect(selectCacheMemory(t.s())).toBeNull();
    t.unbind();
  });

  it('turns and events arrive live, bounded, without doubles', () => {
    const t = bound();
    for (let i = 0; i < 120; i++) t.transport.emit({ type: 'cache.turn', payload: cacheTurn(`m${i}`, {}, 1000 + i) });
    t.transport.emit({ type: 'cache.turn', payload: cacheTurn('m119', {}, 1119) });
    expect(selectTurns(t.s())).toHaveLength(maxTurns);
    expect(selectTurns(t.s())[0]?.messageId).toBe('m20');
    expect(selectTurns(t.s()).at(-1)?.messageId).toBe('m119');
    for (let i = 0; i < 250; i++) t.transport.emit({ type: 'cache.event', payload: event(i) });
    t.transport.emit({ type: 'cache.event', payload: event(249) });
    expect(selectCacheEvents(t.s())).toHaveLength(maxEvents);
    expect(selectCacheEvents(t.s())[0]?.id).toBe(50);
    expect(selectCacheEvents(t.s()).at(-1)?.id).toBe(249);
    t.unbind();
  });

  it('the overview replaces the history; a failure keeps what was there', async () => {
    const t = bound();
    t.transport.handlers['cache.overview'] = () => ok(overview);
    await t.actions.loadCacheOverview();
    expect(selectTurns(t.s())).toEqual(overview.turns);
    expect(selectCacheEvents(t.s())).toEqual(overview.events);
    expect(selectCachedChats(t.s())).toEqual(overview.chats);
    expect(selectHitRatioText(t.s())).toBe('Hit ratio (last 1 turn): 0%');
    t.transport.handlers['cache.overview'] = () => ({ ok: false, error: { code: 'INTERNAL', message: 'boom' } });
    await t.actions.loadCacheOverview();
    expect(selectCachedChats(t.s())).toEqual(overview.chats);
    expect(selectCacheOverviewError(t.s())?.message).toBe('boom');
    // The periodic refresh touches only the chats.
    t.transport.handlers['cache.overview'] = () => ok({ turns: [], events: [], chats: [] });
    await t.actions.refreshCachedChats();
    expect(selectCachedChats(t.s())).toEqual([]);
    expect(selectTurns(t.s())).toEqual(overview.turns);
    t.unbind();
  });

  it('forget: calls cache.forget, then reloads the overview and the chat badge', async () => {
    const t = bound();
    t.transport.handlers['cache.forget'] = () => ok({ bytesFreed: 4096 });
    t.transport.handlers['cache.overview'] = () => ok({ ...overview, chats: [] });
    t.transport.handlers['cache.chat'] = ({ chatId }) => ok({ chatId, where: 'none', slot: null, tokensInMemory: 0, tokensOnDisk: 0, bytesOnDisk: 0 });
    expect(await t.actions.forgetCache('c1')).toEqual({ ok: true, value: { bytesFreed: 4096 } });
    // (The app.state and chats.list before these are bindEvents' resync on connect.)
    expect(t.transport.calls.map((c) => c.name).filter((name) => name.startsWith('cache.'))).toEqual(['cache.forget', 'cache.overview', 'cache.chat']);
    expect(selectCachedChats(t.s())).toEqual([]);
    expect(selectChatCache('c1')(t.s())?.where).toBe('none');
    t.unbind();
  });

  it("the open chat's badge refreshes when its reply ends and when its KV is saved or forgotten", () => {
    const t = bound();
    t.transport.handlers['cache.chat'] = ({ chatId }) => ok({ chatId, where: 'memory', slot: 0, tokensInMemory: 40, tokensOnDisk: 0, bytesOnDisk: 0 });
    t.s().setRoute({ name: 'chat', chatId: 'c1' });
    const badgeCalls = () => t.transport.calls.filter((c) => c.name === 'cache.chat').length;
    t.transport.emit({ type: 'message.updated', payload: { message: msg('a', 'u', 'assistant', { status: 'streaming' }) } });
    expect(badgeCalls()).toBe(0);
    t.transport.emit({ type: 'message.updated', payload: { message: msg('a', 'u', 'assistant', { status: 'complete' }) } });
    expect(badgeCalls()).toBe(1);
    // Another chat's reply, or a user message, leaves this badge alone.
    t.transport.emit({ type: 'message.updated', payload: { message: msg('b', 'u', 'assistant', { chatId: 'c2', status: 'complete' }) } });
    t.transport.emit({ type: 'message.updated', payload: { message: msg('u2', 'a', 'user') } });
    expect(badgeCalls()).toBe(1);
    t.transport.emit({ type: 'cache.event', payload: event(1, 'save', { chatId: 'c1' }) });
    t.transport.emit({ type: 'cache.event', payload: event(2, 'save', { chatId: 'c2' }) });
    t.transport.emit({ type: 'cache.event', payload: event(3, 'evict') });
    t.transport.emit({ type: 'cache.event', payload: event(4, 'settings') });
    expect(badgeCalls()).toBe(3);
    expect(t.transport.calls.at(-1)).toEqual({ name: 'cache.chat', input: { chatId: 'c1' } });
    t.unbind();
  });

  it('a resync on the Cache view reloads its history', async () => {
    const t = bound();
    t.transport.handlers['app.state'] = () => ok(appState());
    t.transport.handlers['chats.list'] = () => ok({ chats: [] });
    t.transport.handlers['cache.overview'] = () => ok(overview);
    t.s().setRoute({ name: 'cache' });
    await t.actions.resync();
    expect(t.transport.calls.map((c) => c.name)).toContain('cache.overview');
    expect(selectCachedChats(t.s())).toEqual(overview.chats);
    t.unbind();
  });
});
