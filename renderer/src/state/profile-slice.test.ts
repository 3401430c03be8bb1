import { describe, expect, it } from 'vitest';
import type { KvPlan, KvQuality, ModelProfile, ModelProfileView, Result } from '../contract.ts';
import { fakeTransport, ok } from '../../../test/support/renderer/fake-transport.ts';
import { appState, cpuPlan } from '../../../test/support/renderer/fixtures.ts';
import { createActions } from './actions.ts';
import {
  selectKvPlan,
  selectKvPlanError,
  selectKvPlanInput,
  selectKvPlanPending,
  selectKvQuality,
  selectKvQualityError,
  selectKvQualityPath,
  selectKvQualityPending,
  selectModelPlan,
  selectProfile,
  selectProfileError,
  selectProfilePath,
} from './selectors.ts';
import { createHearthStore } from './store.ts';

const profile: ModelProfile = { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' };
const view: ModelProfileView = { path: '/m/a.gguf', profile, issues: [] };
const quality: KvQuality = { kType: 'q8_0', vType: 'q8_0', klDivergence: 0.001, top1Agreement: 0.99, verdict: 'near-lossless', positions: 256, measuredAt: 5 };

function setup() {
  const transport = fakeTransport();
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  return { transport, store, actions, s: () => store.getState() };
}

/** A promise and the function that settles it, so a test decides when a call answers. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('the model profile in the store', () => {
  it('the path is the loaded model, else the last one, else none', () => {
    const t = setup();
    expect(selectProfilePath(t.s())).toBeNull();
    t.s().setAppState(appState({ model: { status: 'idle' }, settings: { ...appState().settings, lastModelPath: '/m/last.gguf' } }));
    expect(selectProfilePath(t.s())).toBe('/m/last.gguf');
    t.s().setModel({ status: 'ready', model: { path: '/m/a.gguf', name: 'a', sizeBytes: 1, architecture: 'llama', trainedContextLength: 1, contextSize: 1, layerCount: 1 } });
    expect(selectProfilePath(t.s())).toBe('/m/a.gguf');
  });

  it('loadProfile keeps the view; a failure keeps the last view beside the error', async () => {
    const t = setup();
    t.transport.handlers['models.getProfile'] = () => ok(view);
    expect(await t.actions.loadProfile('/m/a.gguf')).toEqual({ ok: true, value: view });
    expect(t.transport.calls).toEqual([{ name: 'models.getProfile', input: { path: '/m/a.gguf' } }]);
    expect(selectProfile(t.s())).toEqual(view);
    const down = { code: 'ENGINE_UNAVAILABLE' as const, message: 'The engine is restarting.' };
    t.transport.handlers['models.getProfile'] = () => ({ ok: false, error: down });
    await t.actions.loadProfile('/m/a.gguf');
    expect(selectProfile(t.s())).toEqual(view);
    expect(selectProfileError(t.s())).toEqual(down);
  });

  it('saveProfile sends the profile; a refusal leaves the stored view alone', async () => {
    const t = setup();
    const saved = { ...view, profile: { ...profile, kType: 'q8_0' as const, vType: 'q8_0' as const } };
    t.transport.handlers['models.setProfile'] = () => ok(saved);
    const patch = { ...profile, kType: 'q8_0' as const, vType: 'q8_0' as const };
    expect(await t.actions.saveProfile('/m/a.gguf', patch)).toEqual({ ok: true, value: saved });
    expect(t.transport.calls).toEqual([{ name: 'models.setProfile', input: { path: '/m/a.gguf', profile: patch } }]);
    expect(selectProfile(t.s())).toEqual(saved);

    t.transport.handlers['models.setProfile'] = () => ({ ok: false, error: { code: 'INVALID_INPUT', message: 'vType: needs flash attention' } });
    const refused = await t.actions.saveProfile('/m/a.gguf', { ...patch, flashAttention: 'off' });
    expect(refused.ok).toBe(false);
    expect(selectProfile(t.s())).toEqual(saved);
    expect(selectProfileError(t.s())).toBeNull();
  });

  it('planKv: pending while it runs, the plan with its input after; only the latest call reaches the store', async () => {
    const t = setup();
    const slow = deferred<Result<KvPlan>>();
    const fast = cpuPlan({ contextSize: 8192 });
    let n = 0;
    t.transport.handlers['models.plan'] = () => (++n === 1 ? slow.promise : ok(fast));
    const first = t.actions.planKv({ path: '/m/a.gguf', contextSize: 4096, slots: 1 });
    expect(selectKvPlanPending(t.s())).toBe(true);
    await t.actions.planKv({ path: '/m/a.gguf', contextSize: 8192, slots: 1 });
    expect(selectKvPlan(t.s())).toEqual(fast);
    expect(selectKvPlanInput(t.s())).toEqual({ path: '/m/a.gguf', contextSize: 8192, slots: 1 });
    expect(selectKvPlanPending(t.s())).toBe(false);
    // The first call answers late: it is returned to its caller, and the store keeps the newer plan.
    slow.resolve(ok(cpuPlan()));
    expect((await first).ok).toBe(true);
    expect(selectKvPlan(t.s())?.contextSize).toBe(8192);

    t.transport.handlers['models.plan'] = () => ({ ok: false, error: { code: 'NOT_FOUND', message: 'No such file.' } });
    await t.actions.planKv({ path: '/m/b.gguf', slots: 1 });
    expect(selectKvPlanError(t.s())).toEqual({ code: 'NOT_FOUND', message: 'No such file.' });
    expect(selectKvPlan(t.s())?.contextSize).toBe(8192);
    expect(selectKvPlanInput(t.s())?.path).toBe('/m/a.gguf');
  });

  it('measureQuality: busy while it runs, the result with the loaded model, fresh on request, errors as data', async () => {
    const t = setup();
    t.s().setModel({ status: 'ready', model: { path: '/m/a.gguf', name: 'a', sizeBytes: 1, architecture: 'llama', trainedContextLength: 1, contextSize: 1, layerCount: 1 } });
    const answer = deferred<Result<KvQuality>>();
    t.transport.handlers['models.measureQuality'] = () => answer.promise;
    const running = t.actions.measureQuality();
    expect(selectKvQualityPending(t.s())).toBe(true);
    answer.resolve(ok(quality));
    await running;
    expect(selectKvQualityPending(t.s())).toBe(false);
    expect(selectKvQuality(t.s())).toEqual(quality);
    expect(selectKvQualityPath(t.s())).toBe('/m/a.gguf');

    t.transport.handlers['models.measureQuality'] = () => ({ ok: false, error: { code: 'BUSY', message: 'A reply is being written.' } });
    await t.actions.measureQuality(true);
    expect(t.transport.calls.map((c) => c.input)).toEqual([{}, { fresh: true }]);
    expect(selectKvQualityError(t.s())).toEqual({ code: 'BUSY', message: 'A reply is being written.' });
    expect(selectKvQuality(t.s())).toEqual(quality);
    // A new measurement clears the old error as it starts.
    t.transport.handlers['models.measureQuality'] = () => ok(quality);
    const again = t.actions.measureQuality(true);
    expect(selectKvQualityError(t.s())).toBeNull();
    await again;
  });
});

describe("the Models screen's plans in the store", () => {
  const local = { path: '/m/a.gguf' };
  const other = { path: '/m/b.gguf' };

  it('planModel: pending while it runs, then kept per path; opening again asks nothing', async () => {
    const t = setup();
    const header = deferred<Result<KvPlan>>();
    t.transport.handlers['models.plan'] = (input) => (input.path === other.path ? header.promise : ok(cpuPlan()));
    const running = t.actions.planModel(other);
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: null, error: null, pending: true });
    // A second opening while the file is read joins the same call.
    const joined = t.actions.planModel(other);
    expect(t.transport.calls).toEqual([{ name: 'models.plan', input: { path: '/m/b.gguf' } }]);
    header.resolve(ok(cpuPlan({ contextSize: 8192 })));
    expect(await running).toEqual(await joined);
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: cpuPlan({ contextSize: 8192 }), error: null, pending: false });

    expect((await t.actions.planModel(local)).ok).toBe(true);
    expect(selectModelPlan(local)(t.s())?.plan).toEqual(cpuPlan());
    // Each path is cached apart; asking again answers from the store.
    expect(await t.actions.planModel(other)).toEqual({ ok: true, value: cpuPlan({ contextSize: 8192 }) });
    expect(await t.actions.planModel(local)).toEqual({ ok: true, value: cpuPlan() });
    expect(t.transport.calls).toHaveLength(2);
    // Nor does it touch the Settings planner's state.
    expect(selectKvPlan(t.s())).toBeNull();
    expect(selectKvPlanPending(t.s())).toBe(false);
  });

  it('a failure is kept as a message, and the next opening (or Try again) asks again', async () => {
    const t = setup();
    const offline = { code: 'NOT_FOUND' as const, message: 'There is no file at /m/b.gguf.' };
    t.transport.handlers['models.plan'] = () => ({ ok: false, error: offline });
    expect(await t.actions.planModel(other)).toEqual({ ok: false, error: offline });
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: null, error: offline, pending: false });
    t.transport.handlers['models.plan'] = () => ok(cpuPlan());
    const retry = t.actions.planModel(other);
    // The old message goes as the new try starts.
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: null, error: null, pending: true });
    await retry;
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: cpuPlan(), error: null, pending: false });
    // A fresh plan that fails keeps the last plan beside the error.
    t.transport.handlers['models.plan'] = () => ({ ok: false, error: offline });
    await t.actions.planModel(other, { fresh: true });
    expect(selectModelPlan(other)(t.s())).toEqual({ plan: cpuPlan(), error: offline, pending: false });
    expect(t.transport.calls).toHaveLength(3);
  });

  it("a saved profile drops that model's plan; new default context or slots drop them all; a late answer for a dropped plan is ignored", async () => {
    const t = setup();
    t.transport.handlers['models.plan'] = () => ok(cpuPlan());
    await t.actions.planModel(local);
    await t.actions.planModel({ path: '/m/b.gguf' });
    await t.actions.planModel(other);
    t.transport.handlers['models.setProfile'] = () => ok(view);
    await t.actions.saveProfile('/m/a.gguf', profile);
    expect(selectModelPlan(local)(t.s())).toBeUndefined();
    expect(selectModelPlan({ path: '/m/b.gguf' })(t.s())).toBeDefined();
    expect(selectModelPlan(other)(t.s())).toBeDefined();

    t.transport.handlers['settings.update'] = () => ok(appState().settings);
    await t.actions.updateSettings({ theme: 'dark' });
    expect(selectModelPlan(other)(t.s())).toBeDefined();

    const late = deferred<Result<KvPlan>>();
    t.transport.handlers['models.plan'] = () => late.promise;
    const running = t.actions.planModel(local);
    await t.actions.updateSettings({ contextSize: 8192 });
    expect(t.s().modelPlans).toEqual({});
    late.resolve(ok(cpuPlan({ contextSize: 2048 })));
    await running;
    expect(selectModelPlan(local)(t.s())).toBeUndefined();
  });
});
