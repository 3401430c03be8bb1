import { describe, expect, it } from 'vitest';
import type { ContextView, Message, ModelInfo, ModelProfile, Result } from '../contract.ts';
import { appState, chat, cpuPlan, messageStats, msg } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok, type FakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { bindEvents } from './events.ts';
import { selectActivePathIds, selectDividerAbove, selectHasReplies, selectIsActiveLeaf, selectLatestView, selectStreamingId } from './selectors.ts';
import { createHearthStore } from './store.ts';

/** A chat c1 holding `messages`, its active leaf the last. The connection stays closed, so no resync calls mix in. */
function loaded(messages: Message[], transport: FakeTransport = quiet()) {
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  const frames: (() => void)[] = [];
  bindEvents(transport, store, actions, (cb) => void frames.push(cb));
  const frame = () => frames.splice(0).forEach((cb) => cb());
  const s = store.getState();
  s.setChatMessages('c1', messages);
  s.setChat(chat('c1', { activeLeafId: messages.at(-1)?.id ?? null }));
  s.setChatLoad('c1', 'loaded');
  return { store, actions, transport, frame };
}

function quiet(handlers: Parameters<typeof fakeTransport>[0] = {}): FakeTransport {
  return fakeTransport(handlers, 'closed');
}

/** A promise and the function that settles it, for answers a test holds back. */
function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const view = (extra: Partial<ContextView> = {}): ContextView => ({ policy: 'drop-oldest', contextSize: 1024, tokens: 900, droppedMessages: 0, droppedNow: 0, ...extra });
const overflow = { code: 'CONTEXT_OVERFLOW' as const, message: 'The chat no longer fits the context.' };
const loadedModel: ModelInfo = { path: '/m/model.gguf', name: 'model', sizeBytes: 1, architecture: 'llama', trainedContextLength: 32_768, contextSize: 4096, layerCount: 16 };
const profile: ModelProfile = { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 8192, gpuLayers: 'auto', slots: 1, overflowPolicy: 'stop' };

describe('the view selectors on a loaded chat', () => {
  it('find the newest view, the divider, the branch end and whether there are replies', () => {
    const messages = [
      msg('u1', null),
      msg('a1', 'u1', 'assistant', { stats: messageStats({ view: view() }) }),
      msg('u2', 'a1'),
      msg('a2', 'u2', 'assistant', { stats: messageStats({ view: view({ droppedMessages: 2, droppedNow: 2, firstMessageId: 'u2' }) }) }),
    ];
    const { store } = loaded(messages);
    const s = store.getState();
    expect(selectLatestView('c1')(s)?.firstMessageId).toBe('u2');
    expect(selectDividerAbove('c1')(s)).toBe('u2');
    expect(selectIsActiveLeaf('c1', 'a2')(s)).toBe(true);
    expect(selectIsActiveLeaf('c1', 'a1')(s)).toBe(false);
    expect(selectHasReplies('c1')(s)).toBe(true);
    // Back on the first reply's branch point, the newer view is not on screen.
    s.setActiveLeaf('c1', 'a1');
    expect(selectDividerAbove('c1')(store.getState())).toBeNull();
    expect(selectLatestView('c1')(store.getState())).toEqual(view());
  });

  it('say nothing for a chat without replies', () => {
    const { store } = loaded([msg('u1', null)]);
    expect(selectHasReplies('c1')(store.getState())).toBe(false);
    expect(selectLatestView('c1')(store.getState())).toBeNull();
    expect(selectDividerAbove('c1')(store.getState())).toBeNull();
  });
});

describe('continueReply', () => {
  it("makes the reply stream again on the host's reopening, appends its deltas, and keeps them over the answer", async () => {
    const cut = msg('a', 'u', 'assistant', { content: 'Once upon', stats: messageStats({ stopReason: 'context' }) });
    const reopened: Message = { ...cut, status: 'streaming', stats: undefined };
    const answer = deferred<Result<{ assistantMessage: Message }>>();
    const transport = quiet({ 'chats.continue': () => answer.promise });
    const { store, actions, frame } = loaded([msg('u', null), cut], transport);

    const running = actions.continueReply('c1', 'a');
    const now = () => store.getState().messages.c1?.a;
    // The host announces the reopened reply before its first delta, and before its answer lands.
    transport.emit({ type: 'message.updated', payload: { message: reopened } });
    expect(now()).toMatchObject({ status: 'streaming', content: 'Once upon' });
    expect(now()?.stats).toBeUndefined();
    expect(selectStreamingId('c1')(store.getState())).toBe('a');

    // The first tokens overtake the call's answer.
    transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a', delta: ' a time' } });
    frame();
    expect(now()?.content).toBe('Once upon a time');
    answer.resolve(ok({ assistantMessage: reopened }));
    expect((await running).ok).toBe(true);
    expect(now()).toMatchObject({ status: 'streaming', content: 'Once upon a time' });
    expect(transport.calls.find((c) => c.name === 'chats.continue')?.input).toEqual({ chatId: 'c1', messageId: 'a' });

    const done = { ...cut, content: 'Once upon a time, the end.', stats: messageStats({ stopReason: 'eos' }) };
    transport.emit({ type: 'message.updated', payload: { message: done } });
    expect(now()).toEqual(done);
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['u', 'a']);
  });

  it('streams a reply continued from another window, and a late snapshot of it does not undo its end', async () => {
    const cut = msg('a', 'u', 'assistant', { content: 'Once upon', stats: messageStats({ stopReason: 'maxTokens' }) });
    const { store, transport, frame } = loaded([msg('u', null), cut]);
    const now = () => store.getState().messages.c1?.a;
    transport.emit({ type: 'message.updated', payload: { message: { ...cut, status: 'streaming' } } });
    expect(selectStreamingId('c1')(store.getState())).toBe('a');
    transport.emit({ type: 'message.delta', payload: { chatId: 'c1', messageId: 'a', delta: ' a time' } });
    frame();
    expect(now()).toMatchObject({ status: 'streaming', content: 'Once upon a time' });
    const done = { ...cut, content: 'Once upon a time.', stats: messageStats({ stopReason: 'eos' }) };
    transport.emit({ type: 'message.updated', payload: { message: done } });
    // A call's answer taken when the continuation began is a stale snapshot by now.
    store.getState().upsertMessages([{ ...cut, status: 'streaming' }]);
    expect(now()).toEqual(done);
  });

  it('leaves the reply as it was when the host refuses, and says why', async () => {
    const cut = msg('a', 'u', 'assistant', { content: 'Once upon', stats: messageStats({ stopReason: 'maxTokens' }) });
    const transport = quiet({ 'chats.continue': () => ({ ok: false, error: { code: 'BUSY', message: 'A reply is being written.' } }) });
    const { store, actions } = loaded([msg('u', null), cut], transport);
    expect((await actions.continueReply('c1', 'a')).ok).toBe(false);
    expect(store.getState().messages.c1?.a).toEqual(cut);
    expect(store.getState().notice).toEqual({ chatId: 'c1', error: { code: 'BUSY', message: 'A reply is being written.' } });
  });
});

describe("a chat's overflow policy", () => {
  it('configure sends the policy, null to follow the model, and leaves it out when not given', async () => {
    const transport = quiet({ 'chats.configure': () => ok(chat('c1', { overflowPolicy: 'stop' })) });
    const { store, actions } = loaded([msg('u', null)], transport);
    await actions.configure('c1', { overflowPolicy: 'stop' });
    await actions.configure('c1', { overflowPolicy: null });
    await actions.configure('c1', { systemPrompt: 'Be brief.' });
    expect(transport.calls.filter((c) => c.name === 'chats.configure').map((c) => c.input)).toEqual([
      { chatId: 'c1', overflowPolicy: 'stop' },
      { chatId: 'c1', overflowPolicy: null },
      { chatId: 'c1', systemPrompt: 'Be brief.' },
    ]);
    expect(store.getState().chats.c1?.overflowPolicy).toBe('stop');
  });
});

describe('stop and ask', () => {
  const failed = () => [msg('u', null), msg('a', 'u', 'assistant', { status: 'error', content: '', error: overflow })];
  const retry = msg('a2', 'u', 'assistant', { status: 'streaming', content: '' });

  it('"Continue without the oldest messages" sets this chat to drop them, then writes the reply again', async () => {
    const transport = quiet({
      'chats.configure': () => ok(chat('c1', { overflowPolicy: 'drop-oldest', activeLeafId: 'a' })),
      'chats.regenerate': () => ok({ assistantMessage: retry }),
    });
    const { store, actions } = loaded(failed(), transport);
    expect((await actions.dropOldestAndRetry('c1', 'a')).ok).toBe(true);
    expect(transport.calls.map((c) => [c.name, c.input])).toEqual([
      ['chats.configure', { chatId: 'c1', overflowPolicy: 'drop-oldest' }],
      ['chats.regenerate', { chatId: 'c1', messageId: 'a' }],
    ]);
    expect(store.getState().chats.c1?.overflowPolicy).toBe('drop-oldest');
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['u', 'a2']);
  });

  it('writes nothing again when the policy could not be set', async () => {
    const transport = quiet({ 'chats.configure': () => ({ ok: false, error: { code: 'NOT_FOUND', message: 'No such chat.' } }) });
    const { store, actions } = loaded(failed(), transport);
    expect((await actions.dropOldestAndRetry('c1', 'a')).ok).toBe(false);
    expect(transport.calls.map((c) => c.name)).toEqual(['chats.configure']);
    expect(store.getState().notice?.error.code).toBe('NOT_FOUND');
  });

  it('"Raise the context" saves the larger context, and writes the reply again once the model is ready', async () => {
    let state = appState({ model: { status: 'loading', model: loadedModel } });
    const transport = quiet({
      'models.setProfile': () => ok({ path: loadedModel.path, profile, issues: [] }),
      'app.state': () => ok(state),
      'chats.regenerate': () => ok({ assistantMessage: retry }),
    });
    const { store, actions } = loaded(failed(), transport);
    const running = actions.raiseContextAndRetry('c1', 'a', loadedModel.path, 8192);
    await new Promise((r) => setTimeout(r, 0));
    // Still loading: nothing is written yet.
    expect(transport.calls.map((c) => c.name)).toEqual(['models.setProfile', 'app.state']);
    expect(transport.calls[0]?.input).toEqual({ path: loadedModel.path, profile: { contextSize: 8192 } });
    state = appState({ model: { status: 'ready', model: { ...loadedModel, contextSize: 8192 } } });
    transport.emit({ type: 'model.status', payload: state.model });
    expect((await running).ok).toBe(true);
    expect(transport.calls.map((c) => c.name)).toEqual(['models.setProfile', 'app.state', 'chats.regenerate']);
    expect(selectActivePathIds('c1')(store.getState())).toEqual(['u', 'a2']);
  });

  it('does not write the reply again when the model failed to load with the larger context', async () => {
    const error = { code: 'OUT_OF_MEMORY' as const, message: 'The context does not fit.' };
    const transport = quiet({
      'models.setProfile': () => ok({ path: loadedModel.path, profile, issues: [] }),
      'app.state': () => ok(appState({ model: { status: 'error', error } })),
      'chats.regenerate': () => ok({ assistantMessage: retry }),
    });
    const { store, actions } = loaded(failed(), transport);
    expect((await actions.raiseContextAndRetry('c1', 'a', loadedModel.path, 8192)).ok).toBe(false);
    expect(transport.calls.some((c) => c.name === 'chats.regenerate')).toBe(false);
    expect(store.getState().notice).toEqual({ chatId: 'c1', error });
  });

  it('asks the planner about the larger context without touching the Settings planner', async () => {
    const plan = cpuPlan({ contextSize: 8192 });
    const transport = quiet({ 'models.plan': () => ok(plan) });
    const { store, actions } = loaded(failed(), transport);
    expect(await actions.planContext(loadedModel.path, 8192)).toEqual(ok(plan));
    expect(transport.calls[0]?.input).toEqual({ path: loadedModel.path, contextSize: 8192 });
    expect(store.getState().kvPlan).toBeNull();
  });
});
