import { describe, expect, it } from 'vitest';
import type { CallOutputs, ModelInfo, ModelProfile, ModelProfileView, Result } from '../contract.ts';
import { appState, localEngine, speedProfile } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok, type FakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { bindEvents } from './events.ts';
import { selectLocalEngine, selectLocalEngineError, selectSpeed, selectSpeedError, selectSpeedPending } from './selectors.ts';
import { createHearthStore } from './store.ts';

const profile: ModelProfile = { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' };
const view: ModelProfileView = { path: '/m/a.gguf', profile, issues: [], speed: null };
const info: ModelInfo = { path: '/m/a.gguf', name: 'a', sizeBytes: 1, architecture: 'llama', trainedContextLength: 4096, contextSize: 4096, layerCount: 4 };

function setup(transport: FakeTransport = fakeTransport({}, 'closed')) {
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  const unbind = bindEvents(transport, store, actions, (cb) => cb());
  return { store, actions, transport, s: () => store.getState(), unbind };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('the speed measurement in the store', () => {
  it('measureSpeed sends the path, is pending while it runs, and puts the answer into that model’s profile', async () => {
    const t = setup();
    t.s().setProfile(view);
    expect(selectSpeed('/m/a.gguf')(t.s())).toBeNull();
    expect(selectSpeed('/m/other.gguf')(t.s())).toBeUndefined();
    const answer = deferred<Result<CallOutputs['models.measureSpeed']>>();
    t.transport.handlers['models.measureSpeed'] = () => answer.promise;
    const running = t.actions.measureSpeed('/m/a.gguf');
    expect(t.transport.calls).toEqual([{ name: 'models.measureSpeed', input: { path: '/m/a.gguf' } }]);
    expect(selectSpeedPending('/m/a.gguf')(t.s())).toBe(true);
    expect(selectSpeedPending('/m/other.gguf')(t.s())).toBe(false);
    const measured = speedProfile();
    answer.resolve(ok(measured));
    expect(await running).toEqual({ ok: true, value: measured });
    expect(selectSpeedPending('/m/a.gguf')(t.s())).toBe(false);
    expect(selectSpeed('/m/a.gguf')(t.s())).toEqual(measured);
    expect(t.s().profile?.profile).toEqual(profile);
    t.unbind();
  });

  it('a failed measurement keeps the last result beside its error, for that model only; the next try clears it', async () => {
    const t = setup();
    const before = speedProfile();
    t.s().setProfile({ ...view, speed: before });
    const busy = { code: 'BUSY' as const, message: 'A reply is being written.', hint: 'Measure once it is done.' };
    t.transport.handlers['models.measureSpeed'] = () => ({ ok: false, error: busy });
    await t.actions.measureSpeed('/m/a.gguf');
    expect(selectSpeed('/m/a.gguf')(t.s())).toEqual(before);
    expect(selectSpeedError('/m/a.gguf')(t.s())).toEqual(busy);
    expect(selectSpeedError('/m/other.gguf')(t.s())).toBeNull();
    t.transport.handlers['models.measureSpeed'] = () => new Promise(() => undefined);
    void t.actions.measureSpeed('/m/a.gguf');
    expect(selectSpeedError('/m/a.gguf')(t.s())).toBeNull();
    t.unbind();
  });

  it('an answer for another model leaves the profile on screen alone', async () => {
    const t = setup();
    t.s().setProfile(view);
    t.transport.handlers['models.measureSpeed'] = () => ok(speedProfile());
    await t.actions.measureSpeed('/m/b.gguf');
    expect(selectSpeed('/m/a.gguf')(t.s())).toBeNull();
  });

  it('a load that measured the speed reads the profile again once ready; a plain load does not', async () => {
    const t = setup();
    t.s().setProfile(view);
    const measured = speedProfile();
    t.transport.handlers['models.getProfile'] = () => ok({ ...view, speed: measured });
    t.transport.emit({ type: 'model.status', payload: { status: 'loading', progress: 0.5, model: info } });
    t.transport.emit({ type: 'model.status', payload: { status: 'ready', model: info } });
    expect(t.transport.calls).toEqual([]);

    t.transport.emit({ type: 'model.status', payload: { status: 'loading', progress: 1, model: info, measuring: { done: 2, total: 8 } } });
    expect(t.s().model.measuring).toEqual({ done: 2, total: 8 });
    // The last loading step need not say it measured: the load did.
    t.transport.emit({ type: 'model.status', payload: { status: 'loading', progress: 1, model: info } });
    t.transport.emit({ type: 'model.status', payload: { status: 'ready', model: info } });
    expect(t.transport.calls).toEqual([{ name: 'models.getProfile', input: { path: '/m/a.gguf' } }]);
    await flush();
    expect(selectSpeed('/m/a.gguf')(t.s())).toEqual(measured);

    // The next plain load asks nothing again.
    t.transport.emit({ type: 'model.status', payload: { status: 'loading', progress: 0.1, model: info } });
    t.transport.emit({ type: 'model.status', payload: { status: 'ready', model: info } });
    expect(t.transport.calls).toHaveLength(1);
    t.unbind();
  });

  it('a measurement asked for from the UI brings its own answer: no second read', async () => {
    const t = setup();
    t.s().setProfile(view);
    const answer = deferred<Result<CallOutputs['models.measureSpeed']>>();
    t.transport.handlers['models.measureSpeed'] = () => answer.promise;
    const running = t.actions.measureSpeed('/m/a.gguf');
    t.transport.emit({ type: 'model.status', payload: { status: 'loading', model: info, measuring: { done: 1, total: 4 } } });
    t.transport.emit({ type: 'model.status', payload: { status: 'ready', model: info } });
    answer.resolve(ok(speedProfile()));
    await running;
    expect(t.transport.calls.map((c) => c.name)).toEqual(['models.measureSpeed']);
    t.unbind();
  });
});

describe('the local engine in the store', () => {
  it('engine.local is read into the store; a failure is kept beside the last state', async () => {
    const t = setup();
    expect(selectLocalEngine(t.s())).toBeNull();
    t.transport.handlers['engine.local'] = () => ok(localEngine());
    await t.actions.loadLocalEngine();
    expect(t.transport.calls).toEqual([{ name: 'engine.local', input: {} }]);
    expect(selectLocalEngine(t.s())).toEqual(localEngine());
    t.transport.handlers['engine.local'] = () => ({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'The engine is restarting.' } });
    await t.actions.loadLocalEngine();
    expect(selectLocalEngineError(t.s())?.message).toBe('The engine is restarting.');
    expect(selectLocalEngine(t.s())).toEqual(localEngine());
    t.unbind();
  });

  it('build, cancel and remove send their calls and keep the answer', async () => {
    const t = setup();
    const building = localEngine({ status: 'building', progress: 0, step: 'Configuring' });
    t.transport.handlers['engine.buildLocal'] = () => ok(building);
    t.transport.handlers['engine.cancelBuild'] = () => ok(localEngine());
    t.transport.handlers['engine.removeLocal'] = () => ok(localEngine({ status: 'idle' }));
    await t.actions.buildLocalEngine();
    expect(selectLocalEngine(t.s())).toEqual(building);
    await t.actions.cancelLocalBuild();
    expect(selectLocalEngine(t.s())?.status).toBe('idle');
    await t.actions.removeLocalEngine();
    expect(t.transport.calls).toEqual([
      { name: 'engine.buildLocal', input: {} },
      { name: 'engine.cancelBuild', input: {} },
      { name: 'engine.removeLocal', input: {} },
    ]);
    t.unbind();
  });

  it('events follow the build; an answer overtaken by an event does not put the older state back', async () => {
    const t = setup();
    const answer = deferred<Result<CallOutputs['engine.buildLocal']>>();
    t.transport.handlers['engine.buildLocal'] = () => answer.promise;
    const running = t.actions.buildLocalEngine();
    t.transport.emit({ type: 'engine.local', payload: localEngine({ status: 'building', progress: 0.3, step: 'Compiling ggml' }) });
    answer.resolve(ok(localEngine({ status: 'building', progress: 0, step: 'Configuring' })));
    expect((await running).ok).toBe(true);
    expect(selectLocalEngine(t.s())).toMatchObject({ progress: 0.3, step: 'Compiling ggml' });
    t.transport.emit({ type: 'engine.local', payload: localEngine({ status: 'ready', inUse: 'local' }) });
    expect(selectLocalEngine(t.s())).toMatchObject({ status: 'ready', inUse: 'local' });
    t.unbind();
  });

  it('is read again after a reconnect while Settings is open', async () => {
    const t = setup(
      fakeTransport(
        { 'app.state': () => ok(appState()), 'chats.list': () => ok({ chats: [] }), 'engines.list': () => ok({ engines: [] }), 'engine.local': () => ok(localEngine({ status: 'ready' })) },
        'closed',
      ),
    );
    t.s().setRoute({ name: 'settings' });
    await t.actions.resync();
    await flush();
    expect(t.transport.calls.filter((c) => c.name === 'engine.local')).toHaveLength(1);
    expect(selectLocalEngine(t.s())?.status).toBe('ready');
    t.s().setRoute({ name: 'home' });
    await t.actions.resync();
    await flush();
    expect(t.transport.calls.filter((c) => c.name === 'engine.local')).toHaveLength(1);
    t.unbind();
  });
});
