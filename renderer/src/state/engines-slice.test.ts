import { describe, expect, it } from 'vitest';
import type { Chat } from '../contract.ts';
import { appState, chat, msg, remoteEngine, remoteSample } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok, type FakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { bindEvents } from './events.ts';
import { selectEngineById, selectEngines, selectEnginesError, selectRemoteSample } from './selectors.ts';
import { createHearthStore } from './store.ts';

function setup(transport: FakeTransport = fakeTransport({}, 'closed')) {
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  const unbind = bindEvents(transport, store, actions, (cb) => cb());
  return { store, actions, transport, s: () => store.getState(), unbind };
}

const gpu = remoteEngine('e1');
const lab = remoteEngine('e2', { name: 'Lab', kind: 'sglang', baseUrl: 'https://lab.example:30000' });

describe('the engines in the store', () => {
  it('are listed at start (resync), and a failed list is kept as the error', async () => {
    const t = setup(
      fakeTransport(
        {
          'app.state': () => ok(appState()),
          'chats.list': () => ok({ chats: [] }),
          'engines.list': () => ok({ engines: [gpu, lab] }),
        },
        'closed',
      ),
    );
    expect(selectEngines(t.s())).toBeNull();
    await t.actions.resync();
    await Promise.resolve();
    expect(t.transport.calls.filter((c) => c.name === 'engines.list')).toEqual([{ name: 'engines.list', input: {} }]);
    expect(selectEngines(t.s())?.map((e) => e.id)).toEqual(['e1', 'e2']);

    t.transport.handlers['engines.list'] = () => ({ ok: false, error: { code: 'INTERNAL', message: 'broken' } });
    await t.actions.loadEngines();
    expect(selectEnginesError(t.s())?.message).toBe('broken');
    // The last list stays: an error is no reason to forget the engines.
    expect(selectEngines(t.s())?.length).toBe(2);
    t.unbind();
  });

  it('engines.changed replaces the list; an engine gone loses its readings', () => {
    const t = setup();
    t.transport.emit({ type: 'engines.changed', payload: { engines: [gpu, lab] } });
    t.transport.emit({ type: 'cache.remote', payload: remoteSample('e1') });
    t.transport.emit({ type: 'cache.remote', payload: remoteSample('e2', { kvUsage: 0.1 }) });
    const e2Ring = t.s().remoteRing('e2');
    expect(e2Ring.size).toBe(1);

    t.transport.emit({ type: 'engines.changed', payload: { engines: [gpu] } });
    expect(selectEngines(t.s())).toEqual([gpu]);
    expect(selectRemoteSample('e1')(t.s())?.kvUsage).toBe(0.42);
    expect(selectRemoteSample('e2')(t.s())).toBeUndefined();
    expect(t.s().remoteRings.has('e2')).toBe(false);
    expect(t.s().remoteRings.has('e1')).toBe(true);
    t.unbind();
  });

  it('cache.remote keeps the latest reading and a ring per engine', () => {
    const t = setup();
    const ring = t.s().remoteRing('e1');
    let pushes = 0;
    ring.subscribe(() => (pushes += 1));
    t.transport.emit({ type: 'cache.remote', payload: remoteSample('e1', { at: 1, kvUsage: 0.1 }) });
    t.transport.emit({ type: 'cache.remote', payload: remoteSample('e1', { at: 2, kvUsage: 0.2 }) });
    t.transport.emit({ type: 'cache.remote', payload: remoteSample('e2', { at: 3, kvUsage: 0.9 }) });
    expect(pushes).toBe(2);
    // The same ring object each time: a chart subscribes once.
    expect(t.s().remoteRing('e1')).toBe(ring);
    expect(ring.toArray().map((x) => x.kvUsage)).toEqual([0.1, 0.2]);
    expect(t.s().remoteRing('e2').toArray().map((x) => x.kvUsage)).toEqual([0.9]);
    expect(selectRemoteSample('e1')(t.s())?.at).toBe(2);
    t.unbind();
  });

  it('add, update and check put the answer in the list; remove takes it out; test stores nothing', async () => {
    const t = setup();
    t.transport.handlers['engines.add'] = (input) => ok(remoteEngine('e9', { name: input.name, baseUrl: input.baseUrl, kind: input.kind, hasApiKey: input.apiKey !== undefined }));
    const added = await t.actions.addEngine({ name: 'Box', baseUrl: 'http://box:8080', kind: 'llama-server', apiKey: 'sk-1' });
    expect(added.ok).toBe(true);
    expect(t.transport.calls.at(-1)).toEqual({ name: 'engines.add', input: { name: 'Box', baseUrl: 'http://box:8080', kind: 'llama-server', apiKey: 'sk-1' } });
    expect(selectEngineById('e9')(t.s())).toMatchObject({ name: 'Box', kind: 'llama-server', hasApiKey: true });

    t.transport.handlers['engines.update'] = (input) => ok(remoteEngine(input.engineId, { name: input.name ?? 'x', hasApiKey: input.apiKey !== null }));
    await t.actions.updateEngine({ engineId: 'e9', name: 'Box 2', apiKey: null });
    expect(t.transport.calls.at(-1)).toEqual({ name: 'engines.update', input: { engineId: 'e9', name: 'Box 2', apiKey: null } });
    expect(selectEngines(t.s())?.map((e) => [e.id, e.name, e.hasApiKey])).toEqual([['e9', 'Box 2', false]]);

    const failing = { state: 'error' as const, checkedAt: 5, models: [], metrics: false, error: { code: 'NETWORK_ERROR' as const, message: 'Cannot reach box:8080.' } };
    t.transport.handlers['engines.check'] = ({ engineId }) => ok(remoteEngine(engineId, { name: 'Box 2', status: failing }));
    await t.actions.checkEngine('e9');
    expect(selectEngineById('e9')(t.s())?.status.state).toBe('error');

    t.transport.handlers['engines.test'] = () => ok(gpu.status);
    const tested = await t.actions.testEngine({ baseUrl: 'http://other:1', kind: 'vllm' });
    expect(tested).toEqual({ ok: true, value: gpu.status });
    expect(selectEngines(t.s())?.length).toBe(1);

    t.transport.handlers['engines.remove'] = () => ok({ removed: true, chats: 3 });
    expect(await t.actions.removeEngine('e9')).toEqual({ ok: true, value: { removed: true, chats: 3 } });
    expect(selectEngines(t.s())).toEqual([]);
    t.unbind();
  });

  it('a refused add leaves the list alone and hands the error back', async () => {
    const t = setup();
    t.transport.emit({ type: 'engines.changed', payload: { engines: [gpu] } });
    t.transport.handlers['engines.add'] = () => ({ ok: false, error: { code: 'INVALID_INPUT', message: 'An engine has this name already.', hint: 'Choose another name.' } });
    const result = await t.actions.addEngine({ name: 'GPU box', baseUrl: 'http://x:1', kind: 'vllm' });
    expect(result).toEqual({ ok: false, error: { code: 'INVALID_INPUT', message: 'An engine has this name already.', hint: 'Choose another name.' } });
    expect(selectEngines(t.s())).toEqual([gpu]);
    t.unbind();
  });

  it('the Cache view watches a remote engine by naming it; the local view sends nothing more', async () => {
    const t = setup();
    t.transport.handlers['cache.watch'] = () => ok({ intervalMs: 250, leaseMs: 10_000 });
    await t.actions.watchCache();
    await t.actions.watchCache('e1');
    expect(t.transport.calls).toEqual([
      { name: 'cache.watch', input: {} },
      { name: 'cache.watch', input: { engineId: 'e1' } },
    ]);
    t.unbind();
  });
});

describe("a chat's engine", () => {
  it('moveChat calls chats.move and the open chat runs there; back to this computer with null', async () => {
    const t = setup();
    t.s().setChatMessages('c1', [msg('u', null)]);
    t.s().setChat(chat('c1'));
    const moved = (engine: Chat['engine']) => ok(chat('c1', { engine, updatedAt: 9 }));
    t.transport.handlers['chats.move'] = ({ engine }) => moved(engine);
    const result = await t.actions.moveChat('c1', { engineId: 'e1', model: 'llama-3-70b' });
    expect(result.ok).toBe(true);
    expect(t.transport.calls).toEqual([{ name: 'chats.move', input: { chatId: 'c1', engine: { engineId: 'e1', model: 'llama-3-70b' } } }]);
    expect(t.s().chats.c1?.engine).toEqual({ engineId: 'e1', model: 'llama-3-70b' });

    await t.actions.moveChat('c1', null);
    expect(t.transport.calls.at(-1)).toEqual({ name: 'chats.move', input: { chatId: 'c1', engine: null } });
    expect(t.s().chats.c1?.engine).toBeNull();
    t.unbind();
  });

  it('a refused move leaves the chat where it was', async () => {
    const t = setup();
    t.s().setChatMessages('c1', []);
    t.s().setChat(chat('c1'));
    t.transport.handlers['chats.move'] = () => ({ ok: false, error: { code: 'BUSY', message: 'A reply is being written.' } });
    const result = await t.actions.moveChat('c1', { engineId: 'e1', model: 'm' });
    expect(result.ok).toBe(false);
    expect(t.s().chats.c1?.engine).toBeNull();
    t.unbind();
  });

  it('newChat starts on this computer, or on the engine it names', async () => {
    const t = setup();
    t.transport.handlers['chats.create'] = (input) => ok(chat('n1', { engine: input.engine ?? null }));
    await t.actions.newChat();
    await t.actions.newChat({ engineId: 'e1', model: 'qwen-7b' });
    expect(t.transport.calls.map((c) => c.input)).toEqual([{}, { engine: { engineId: 'e1', model: 'qwen-7b' } }]);
    expect(t.s().chats.n1?.engine).toEqual({ engineId: 'e1', model: 'qwen-7b' });
    t.unbind();
  });

  it('the chat keeps its engine through renames and list updates, and follows a summary that carries one', () => {
    const t = setup();
    const ref = { engineId: 'e1', model: 'llama-3-70b' };
    t.s().setChat(chat('c1', { engine: ref }));
    t.transport.emit({ type: 'chats.changed', payload: { chatId: 'c1', chat: { id: 'c1', title: 'Renamed', createdAt: 1, updatedAt: 7 } } });
    expect(t.s().chats.c1).toMatchObject({ title: 'Renamed', engine: ref });
    t.s().setChatList([{ id: 'c1', title: 'Renamed', createdAt: 1, updatedAt: 7 }]);
    expect(t.s().chats.c1?.engine).toEqual(ref);
    // A host that sends the whole chat: another window moved it back to this computer.
    t.transport.emit({ type: 'chats.changed', payload: { chatId: 'c1', chat: chat('c1', { title: 'Renamed', updatedAt: 8, engine: null }) } });
    expect(t.s().chats.c1?.engine).toBeNull();
    // The list holds summaries only.
    expect(t.s().chatList[0]).toEqual({ id: 'c1', title: 'Renamed', createdAt: 1, updatedAt: 8 });
    t.unbind();
  });
});
