/**
 * The one place that listens to the transport: events become store updates here, and nowhere
 * else. Deltas are batched to one store update per animation frame; any other event first
 * flushes pending deltas so the store sees everything in the order the host sent it.
 */
import type { HearthEvent } from '../contract.ts';
import { createDeltaBatcher, frameScheduler } from '../lib/delta-batcher.ts';
import { measureSince } from '../lib/measure.ts';
import type { Transport } from '../transport/types.ts';
import type { Actions } from './actions.ts';
import type { HearthStore } from './store.ts';

export function bindEvents(
  transport: Transport,
  store: HearthStore,
  actions: Actions,
  schedule: (callback: () => void) => void = frameScheduler,
): () => void {
  const state = () => store.getState();
  const batcher = createDeltaBatcher((batch) => state().applyDeltas(batch), schedule);

  /** The load under way reported a speed measurement. */
  let measuredDuringLoad = false;

  const onScreen = (chatId: string) => {
    const route = state().route;
    return route.name === 'chat' && route.chatId === chatId;
  };

  const handle = (event: HearthEvent) => {
    if (event.type === 'message.delta') {
      batcher.push(event.payload.chatId, event.payload.messageId, event.payload.delta);
      return;
    }
    batcher.flush();
    switch (event.type) {
      case 'engine.status':
        state().setEngine(event.payload);
        break;
      case 'model.status': {
        const status = event.payload;
        state().setModel(status);
        if (status.status === 'loading') {
          if (status.measuring) measuredDuringLoad = true;
          break;
        }
        // A load that measured the speed (a model's first on this computer) changed its profile;
        // a measurement asked for from the UI brings its own answer.
        const path = status.model?.path;
        if (measuredDuringLoad && status.status === 'ready' && path !== undefined && state().profile?.path === path && state().speedPendingPath !== path) void actions.loadProfile(path);
        measuredDuringLoad = false;
        break;
      }
      case 'message.updated': {
        const { message } = event.payload;
        state().upsertMessages([message], 'event');
        // A reply ended: its chat's badge shows what the turn left in the cache.
        if (message.role === 'assistant' && message.status !== 'streaming' && onScreen(message.chatId)) void actions.refreshChatCache(message.chatId);
        break;
      }
      case 'chats.changed': {
        const { chatId, chat } = event.payload;
        if (chat) {
          state().upsertChatSummary(chat);
        } else {
          state().removeChat(chatId);
          const route = state().route;
          if (route.name === 'chat' && route.chatId === chatId) actions.navigate({ name: 'home' });
        }
        break;
      }
      case 'download.progress': {
        const before = state().downloads[event.payload.id];
        state().applyDownload(event.payload);
        // Once per download: a done entry may be sent again (a resync, a clear's removal).
        if (event.payload.status === 'done' && !event.payload.removed && before?.status !== 'done') void actions.downloadDone(event.payload);
        break;
      }
      case 'kv.status':
        state().setKv(event.payload);
        break;
      case 'cache.tick': {
        const start = performance.now();
        state().applyCacheTick(event.payload);
        // React renders the change in a microtask that the update above queued: end after it.
        queueMicrotask(() => measureSince('hearth:cache:tick', start));
        break;
      }
      case 'cache.turn':
        state().addCacheTurn(event.payload);
        break;
      case 'cache.event': {
        const { kind, chatId } = event.payload;
        state().addCacheEvent(event.payload);
        // The save usually lands after the reply ended; an eviction may cut any chat.
        const route = state().route;
        const touches = kind === 'save' || kind === 'evict' || kind === 'forget';
        if (touches && route.name === 'chat' && (chatId === undefined || onScreen(chatId))) void actions.refreshChatCache(route.chatId);
        // The largest chats change with each save: once per turn, not per tick.
        if (touches && route.name === 'cache') void actions.refreshCachedChats();
        break;
      }
      case 'engines.changed':
        state().setEngines(event.payload.engines);
        break;
      case 'engine.local':
        state().setLocalEngine(event.payload, true);
        break;
      case 'cache.remote':
        state().applyRemoteSample(event.payload);
        break;
      case 'server.state':
        state().applyServerState(event.payload);
        break;
      case 'server.request':
        state().addServerRequest(event.payload);
        break;
      case 'app.command':
        if (event.payload.command === 'newChat') void actions.newChat();
        else if (event.payload.command === 'openSettings') actions.navigate({ name: 'settings' });
        else if (event.payload.command === 'openModels') actions.navigate({ name: 'models' });
        break;
    }
  };

  const offEvent = transport.onEvent(handle);
  const offConnection = transport.onConnection((connection) => {
    state().setConnection(connection);
    // After a reconnect (e.g. the host restarted) nothing we hold can be trusted: refetch.
    if (connection === 'open') void actions.resync();
  });
  return () => {
    offEvent();
    offConnection();
    batcher.flush();
  };
}
