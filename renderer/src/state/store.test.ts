import { describe, expect, it } from 'vitest';
import type { EngineStatus, Message } from '../contract.ts';
import type { Route } from '../lib/route.ts';
import { appState, chat, msg, remoteEngine } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok, type FakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { nextEngineBanner } from './app-slice.ts';
import { bindEvents } from './events.ts';
import { joinOrphan } from './messages-slice.ts';
import { selectActivePathIds, selectBranchInfo, selectStreamingId, selectVisibleModelError } from './selectors.ts';
import { download, library } from './models.fixtures.ts';
import { createHearthStore } from './store.ts';


function setup(transport: FakeTransport = fakeTransport()) {
  const store = createHearthStore();
  const routes: Route[] = [];
  const actions = createActions(transport, store, {
    navigate: (route) => {
      routes.push(route);
      store.getState().setRoute(route);
    },
  });
  const frames: (() => void)[] = [];
  const unbind = bindEvents(transport, store, actions, (cb) => void frames.push(cb));
  const frame = () => frames.splice(0).forEach((cb) => cb());
  return { store, actions, transport, routes, frame, unbind };
}

/** A store holding chat c1 with the given messages, active leaf = last message. */
function loaded(messages: Message[], transport?: FakeTransport) {
  const t = setup(transport);
  const s = t.store.getState();
  s.setChatMessages('c1', messages);
  s.setChat(chat('c1', { activeLeafId: messages.at(-1)?.id ?? null }));
  s.setChatLoad('c1', 'loaded');
  return t;
}

describe('nextEngineBanner', () => {
  const running = (restarts: number): EngineStatus => ({ state: 'running', restarts });

  it('shows while a crash restart runs and after the restart count went up', () => {
    expect(nextEngineBanner(null, running(0), { state: 'restarting', restarts: 1, lastCrash: { at: 1, reason: 'SIGSEGV' } })).toEqual({
      restarting: true,
      restarts: 1,
      reason: 'SIGSEGV',
    });
    expect(nextEngineBanner(null, null, { state: 'restarting', restarts: 2 })).toEqual({ restarting: true, restarts: 2 });
    expect(nextEngineBanner(null, running(0), { ...running(1), lastCrash: { at: 1, reason: 'SIGSEGV' } })).toEqual({
      restarting: false,
      restarts: 1,
      reason: 'SIGSEGV',
    });
  });

  it('stays away at start and when nothing changed', () => {
    expect(nextEngineBanner(null, null, running(3))).toBeNull();
    expect(nextEngineBanner(null, running(3), running(3))).toBeNull();
  });

  it('a deliberate restart (settings applied: the count stays) is no crash and shows none', () => {
    const restarting: EngineStatus = { state: 'restarting', restarts: 0 };
    expect(nextEngineBanner(null, running(0), restarting)).toBeNull();
    expect(nextEngineBanner(null, restarting, running(0))).toBeNull();
    // After an earlier crash whose banner was dismissed, the same holds.
    const crashed = { lastCrash: { at: 1, reason: 'SIGSEGV' } };
    expect(nextEngineBanner(null, { ...running(2), ...crashed }, { state: 'restarting', restarts: 2, ...crashed })).toBeNull();
  });

  it('carries the crash loop\'s message while it lasts, and drops it once an engine runs', () => {
    const error = { code: 'ENGINE_UNAVAILABLE' as const, message: 'The engine crashed 3 times in a row.', hint: 'Try another model.' };
    const looping: EngineStatus = { state: 'restarting', restarts: 3, lastCrash: { at: 1, reason: 'signal SIGSEGV' }, crashLoop: { crashes: 3, retryAt: 5, error } };
    const shown = nextEngineBanner(null, running(2), looping);
    expect(shown).toEqual({ restarting: true, restarts: 3, reason: 'signal SIGSEGV', crashLoop: error });
    expect(nextEngineBanner(shown, looping, { state: 'running', restarts: 3, lastCrash: { at: 1, reason: 'signal SIGSEGV' } })).toEqual({
      restarting: false,
      restarts: 3,
      reason: 'signal SIGSEGV',
    });
  });

  it('turns "restarting" into "restarted" once running', () => {
    expect(nextEngineBanner({ restarting: true, restarts: 1 }, { state: 'restarting', restarts: 1 }, running(1))).toEqual({
      restarting: false,
      restarts: 1,
    });
  });
});

describe('messages slice', () => {
  it('appends batched deltas once per frame, and only to streaming messages', () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant', { status: 'streaming', content: '' });
    const { store, transport, frame } = loaded([u, a]);
    let updates = 0;
    store.subscribe(() => updates++);
    for (const piece of ['Hel', 'lo', ' there']) transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a', delta: piece } });
    expect(store.getState().messages.c1?.a?.content).toBe('');
    frame();
    expect(store.getState().messages.c1?.a?.content).toBe('Hello there');
    expect(updates).toBe(1);
  });

  it('flushes pending deltas before a message.updated, which then wins', () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant', { status: 'streaming', content: '' });
    const { store, transport, frame } = loaded([u, a]);
    transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a', delta: 'Hi' } });
    transport.emit({ type: 'message.updated', payload: { message: { ...a, status: 'stopped', content: 'Hi' } } });
    frame();
    expect(store.getState().messages.c1?.a).toMatchObject({ status: 'stopped', content: 'Hi' });
    // A late delta after the final state is ignored.
    transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a', delta: '!!' } });
    frame();
    expect(store.getState().messages.c1?.a?.content).toBe('Hi');
  });

  it('keeps deltas that overtook the send answer', async () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant');
    const transport = fakeTransport();
    const t = loaded([u, a], transport);
    const u2 = msg('u2', 'a', 'user', { content: 'next' });
    const a2 = msg('a2', 'u2', 'assistant', { status: 'streaming', content: '' });
    transport.handlers['chats.send'] = () => {
      // The host streams before the answer arrives.
      transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a2', delta: 'Early ' } });
      transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a2', delta: 'bird' } });
      t.frame();
      return ok({ userMessage: u2, assistantMessage: a2 });
    };
    const result = await t.actions.send('c1', 'next');
    expect(result.ok).toBe(true);
    const state = t.store.getState();
    expect(state.messages.c1?.a2?.content).toBe('Early bird');
    expect(state.orphanDeltas).toEqual({});
    expect(selectActivePathIds('c1')(state)).toEqual(['u', 'a', 'u2', 'a2']);
    expect(selectStreamingId('c1')(state)).toBe('a2');
    expect(transport.calls.find((c) => c.name === 'chats.send')?.input).toEqual({ chatId: 'c1', text: 'next', parentId: 'a' });
  });

  it('joins an orphan and a snapshot without doubling text', () => {
    expect(joinOrphan('', 'abc')).toBe('abc');
    expect(joinOrphan('ab', 'abc')).toBe('abc');
    expect(joinOrphan('xabc', 'abc')).toBe('xabc');
    expect(joinOrphan('x', 'y')).toBe('xy');
  });

  it('advances the view when a new message continues the branch on screen', () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant');
    const { store, transport } = loaded([u, a]);
    transport.emit({ type: 'message.updated', payload: { message: msg('u2', 'a') } });
    expect(store.getState().chats.c1?.activeLeafId).toBe('u2');
    // A sibling branch created elsewhere does not move the view.
    transport.emit({ type: 'message.updated', payload: { message: msg('a-alt', 'u', 'assistant') } });
    expect(store.getState().chats.c1?.activeLeafId).toBe('u2');
  });

  it('ignores messages and deltas of chats it has not loaded', () => {
    const { store, transport, frame } = setup();
    transport.emit({ type: 'message.updated', payload: { message: { ...msg('z', null), chatId: 'other' } } });
    transport.emit({ type: 'message.delta', payload: { chatId: 'other', messageId: 'z', delta: 'x' } });
    frame();
    expect(store.getState().messages).toEqual({});
    expect(store.getState().orphanDeltas).toEqual({});
  });
});

describe('actions', () => {
  it('keeps nothing and reports the error when send fails', async () => {
    const transport = fakeTransport({
      'chats.send': () => ({ ok: false, error: { code: 'MODEL_NOT_LOADED', message: 'No model is loaded.', hint: 'Load a model first.' } }),
    });
    const { store, actions } = loaded([], transport);
    const result = await actions.send('c1', 'hello');
    expect(result.ok).toBe(false);
    expect(store.getState().notice).toEqual({ chatId: 'c1', error: { code: 'MODEL_NOT_LOADED', message: 'No model is loaded.', hint: 'Load a model first.' } });
    expect(transport.calls.at(-1)?.input).toEqual({ chatId: 'c1', text: 'hello', parentId: null });
  });

  it('regenerate and edit show the new branch; switching shows the other one', async () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant');
    const transport = fakeTransport();
    const { store, actions } = loaded([u, a], transport);
    const a2 = msg('a2', 'u', 'assistant', { status: 'streaming', content: '' });
    transport.handlers['chats.regenerate'] = () => ok({ assistantMessage: a2 });
    await actions.regenerate('c1', 'a');
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['u', 'a2']);
    expect(selectBranchInfo('c1', 'a2')(store.getState())).toMatchObject({ position: 2, count: 2, previousId: 'a' });

    transport.emit({ type: 'message.updated', payload: { message: { ...a2, status: 'complete', content: 'again' } } });
    transport.handlers['chats.switchBranch'] = () => ok(chat('c1', { activeLeafId: 'a' }));
    await actions.switchBranch('c1', 'a');
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['u', 'a']);

    const ue = msg('ue', null, 'user', { content: 'edited' });
    const ae = msg('ae', 'ue', 'assistant', { status: 'streaming', content: '' });
    transport.handlers['chats.edit'] = () => ok({ userMessage: ue, assistantMessage: ae });
    await actions.edit('c1', 'u', 'edited');
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['ue', 'ae']);
    expect(selectBranchInfo('c1', 'ue')(store.getState())).toMatchObject({ position: 2, count: 2 });
  });

  it('rolls back an optimistic branch switch that the host refused', async () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant');
    const b = msg('b', 'u', 'assistant');
    const transport = fakeTransport({ 'chats.switchBranch': () => ({ ok: false, error: { code: 'BUSY', message: 'busy' } }) });
    const { store, actions } = loaded([u, a, b], transport);
    await actions.switchBranch('c1', 'a');
    expect(store.getState().chats.c1?.activeLeafId).toBe('b');
  });

  it('new chat opens it and focuses the composer', async () => {
    const transport = fakeTransport({ 'chats.create': () => ok(chat('n1', { title: 'New chat' })) });
    const { store, actions, routes } = setup(transport);
    await actions.newChat();
    expect(routes.at(-1)).toEqual({ name: 'chat', chatId: 'n1' });
    expect(store.getState().chatList.map((c) => c.id)).toEqual(['n1']);
    expect(store.getState().chatLoad.n1).toBe('loaded');
    expect(store.getState().composerFocus).toBe(1);
  });

  it('resync loads app state and chats, and sends a first run without a model to the model screen', async () => {
    const transport = fakeTransport({
      'app.state': () => ok(appState({ model: { status: 'idle' } })),
      'chats.list': () => ok({ chats: [chat('old', { updatedAt: 1 }), chat('new', { updatedAt: 5 })] }),
      'models.list': () => ok(library()),
      'models.recommended': () => ok({ models: [] }),
      'downloads.list': () => ok({ downloads: [] }),
    });
    const { store, actions, routes } = setup(transport);
    await actions.resync();
    const state = store.getState();
    expect(state.booted).toBe(true);
    expect(state.chatList.map((c) => c.id)).toEqual(['new', 'old']);
    // The first resync (the open connection's) decides once the engines are listed.
    await expect.poll(() => routes).toContainEqual({ name: 'models' });
  });

  it('resync keeps a first run without a local model at home when a remote engine can take the chats', async () => {
    const transport = fakeTransport({
      'app.state': () => ok(appState({ model: { status: 'idle' } })),
      'chats.list': () => ok({ chats: [] }),
      'downloads.list': () => ok({ downloads: [] }),
      'engines.list': () => ok({ engines: [remoteEngine()] }),
    });
    const { store, actions, routes } = setup(transport);
    await actions.resync();
    await expect.poll(() => store.getState().engines?.length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(routes).not.toContainEqual({ name: 'models' });
  });

  it('a failed app.state is a boot error', async () => {
    const transport = fakeTransport({
      'app.state': () => ({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'Cannot reach Hearth' } }),
      'chats.list': () => ok({ chats: [] }),
    });
    const { store, actions } = setup(transport);
    await actions.resync();
    expect(store.getState().bootError?.message).toBe('Cannot reach Hearth');
    expect(store.getState().booted).toBe(false);
  });

  it('a reconnect refetches the open chat', async () => {
    const u = msg('u', null);
    const a = msg('a', 'u', 'assistant', { status: 'incomplete', content: 'partial' });
    const transport = fakeTransport({
      'app.state': () => ok(appState()),
      'chats.list': () => ok({ chats: [chat('c1')] }),
      'chats.get': () => ok({ chat: chat('c1', { activeLeafId: 'a' }), messages: [u, a] }),
    });
    const { store } = setup(transport);
    store.getState().setRoute({ name: 'chat', chatId: 'c1' });
    transport.setConnection('closed');
    transport.setConnection('open');
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    expect(store.getState().messages.c1?.a?.status).toBe('incomplete');
    expect(transport.calls.filter((c) => c.name === 'chats.get')).toHaveLength(2);
  });

  it('a deleted chat leaves the screen', () => {
    const { store, transport, routes } = loaded([msg('u', null)]);
    store.getState().setRoute({ name: 'chat', chatId: 'c1' });
    transport.emit({ type: 'chats.changed', payload: { chatId: 'c1', chat: null } });
    expect(store.getState().chats.c1).toBeUndefined();
    expect(store.getState().messages.c1).toBeUndefined();
    expect(routes.at(-1)).toEqual({ name: 'home' });
  });

  it('a renamed chat updates list and detail', () => {
    const { store, transport } = loaded([msg('u', null)]);
    transport.emit({ type: 'chats.changed', payload: { chatId: 'c1', chat: { id: 'c1', title: 'Renamed', createdAt: 1, updatedAt: 9 } } });
    expect(store.getState().chatList[0]?.title).toBe('Renamed');
    expect(store.getState().chats.c1?.title).toBe('Renamed');
  });

  it('model errors show until dismissed, and come back for a new error', () => {
    const { store, transport } = setup();
    const error = { code: 'MODEL_INVALID' as const, message: 'Not a GGUF file.' };
    transport.emit({ type: 'model.status', payload: { status: 'error', error } });
    expect(selectVisibleModelError(store.getState())).toBe(error);
    store.getState().dismissModelError();
    expect(selectVisibleModelError(store.getState())).toBeNull();
    transport.emit({ type: 'model.status', payload: { status: 'error', error: { ...error } } });
    expect(selectVisibleModelError(store.getState())).not.toBeNull();
  });

  it('tracks downloads and lists the library again once one is done', async () => {
    const transport = fakeTransport({
      'downloads.start': () => ok(download('d1', { status: 'queued', downloadedBytes: 0 })),
      'models.list': () => ok(library()),
      'models.recommended': () => ok({ models: [] }),
    });
    const { store, actions } = setup(transport);
    await actions.startDownload({ repo: 'org/model-GGUF', file: 'model-Q4_K_M.gguf' });
    expect(store.getState().downloads.d1?.status).toBe('queued');
    transport.emit({ type: 'download.progress', payload: download('d1', { status: 'done', downloadedBytes: 4e9 }) });
    expect(store.getState().downloads.d1?.status).toBe('done');
    expect(transport.calls.some((c) => c.name === 'models.list')).toBe(true);
  });
});
