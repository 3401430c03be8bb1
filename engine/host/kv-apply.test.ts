import { describe, expect, it } from 'vitest';
import { ok, type Result } from '../contract/index.ts';
import { KvSettingsApplier, planKvApply, type KvApplierDeps } from './kv-apply.ts';
import { defaultSettings } from './settings.ts';
import { until } from '../../test/support/host-fixture.ts';

describe('planKvApply', () => {
  it('restarts the engine for what init reads, reloads the model for slots, and does nothing otherwise', () => {
    const s = defaultSettings;
    expect(planKvApply(s, { ...s, kvBudgetBytes: 1 })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, kvPersistence: !s.kvPersistence })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, kvChunkTokens: 64 })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, kvCompression: 'lossy' })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, kvCompression: 'off' })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, kvSlots: 3 })).toEqual({ restartEngine: false, reloadModel: true });
    // A restart reloads the model anyway.
    expect(planKvApply(s, { ...s, kvSlots: 3, kvChunkTokens: 64 })).toEqual({ restartEngine: true, reloadModel: false });
    expect(planKvApply(s, { ...s, threads: 4, theme: 'dark' })).toEqual({ restartEngine: false, reloadModel: false });
  });
});

function setup(initial: { busy?: boolean; model?: string | null } = {}) {
  const state = { busy: initial.busy ?? false, model: initial.model === undefined ? '/m.gguf' : initial.model };
  const calls: string[] = [];
  let finishRestart: (() => void) | null = null;
  const deps: KvApplierDeps = {
    busy: () => state.busy,
    restartEngine: () =>
      new Promise<Result<void>>((resolve) => {
        calls.push('restart');
        finishRestart = () => resolve(ok(undefined));
      }),
    loadedModel: () => state.model,
    loadModel: async (file) => {
      calls.push(`load ${file}`);
      return ok({});
    },
    log: () => undefined,
  };
  const applier = new KvSettingsApplier(deps);
  const finish = async () => {
    await until(() => finishRestart !== null);
    finishRestart?.();
    finishRestart = null;
  };
  return { applier, state, calls, finish };
}

const restart = { restartEngine: true, reloadModel: false };
const reload = { restartEngine: false, reloadModel: true };

describe('KvSettingsApplier', () => {
  it('restarts at once when the engine is idle, answering after the restart', async () => {
    const t = setup();
    let outcome: string | null = null;
    const applying = t.applier.apply(restart).then((o) => (outcome = o));
    await until(() => t.calls.length === 1);
    expect(outcome).toBeNull(); // still restarting
    await t.finish();
    await applying;
    expect(outcome).toBe('applied');
    expect(t.calls).toEqual(['restart']);
    expect(await t.applier.apply({ restartEngine: false, reloadModel: false })).toBe('none');
  });

  it('queues while the engine is busy and runs once it is idle; changes made meanwhile merge into one restart', async () => {
    const t = setup({ busy: true });
    expect(await t.applier.apply(reload)).toBe('queued');
    expect(await t.applier.apply(restart)).toBe('queued');
    expect(t.applier.pending).toBe(true);
    t.applier.poke(); // still busy
    await new Promise((r) => setTimeout(r, 5));
    expect(t.calls).toEqual([]);
    t.state.busy = false;
    t.applier.poke();
    await t.finish();
    await until(() => !t.applier.pending);
    await new Promise((r) => setTimeout(r, 5));
    // The restart reloads the model itself: no separate reload.
    expect(t.calls).toEqual(['restart']);
  });

  it('a change while a restart runs waits for it, then runs', async () => {
    const t = setup();
    const first = t.applier.apply(restart);
    await until(() => t.calls.length === 1);
    expect(await t.applier.apply(restart)).toBe('queued');
    await t.finish();
    await first;
    await t.finish();
    await until(() => t.calls.length === 2 && !t.applier.pending);
    expect(t.calls).toEqual(['restart', 'restart']);
  });

  it('reloads the loaded model for a new slot count, and does nothing without one', async () => {
    const t = setup();
    expect(await t.applier.apply(reload)).toBe('applied');
    await until(() => t.calls.length === 1);
    expect(t.calls).toEqual(['load /m.gguf']);
    t.state.model = null;
    await until(() => !t.applier.pending);
    expect(await t.applier.apply(reload)).toBe('applied');
    await new Promise((r) => setTimeout(r, 5));
    expect(t.calls).toEqual(['load /m.gguf']);
  });

  it('drops a queued change on dispose', async () => {
    const t = setup({ busy: true });
    await t.applier.apply(restart);
    t.applier.dispose();
    t.state.busy = false;
    t.applier.poke();
    await new Promise((r) => setTimeout(r, 5));
    expect(t.calls).toEqual([]);
    expect(await t.applier.apply(restart)).toBe('none');
  });
});
