/** 'models.plan' on the host: its defaults and its forwarding to the engine's `plan` (fake engine). */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTestHearths, value } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

describe('models.plan', () => {
  it('plans a local model at its profile context and slots, which default to Settings (4096 for an automatic context)', async () => {
    const t = await start({ loadModel: false });
    const plan = value(await t.hearth.api['models.plan']({ path: t.modelFile }));
    expect(t.engine.callsOf('plan')).toEqual([{ path: t.modelFile, contextSize: 4096, slots: 1 }]);
    expect(plan).toMatchObject({ contextSize: 4096, slots: 1, auto: { kType: 'f16', vType: 'f16' } });
    expect(plan.rows.length).toBeGreaterThan(0);

    value(await t.hearth.api['settings.update']({ contextSize: 2048, kvSlots: 2 }));
    value(await t.hearth.api['models.plan']({ path: t.modelFile }));
    expect(t.engine.callsOf('plan')[1]).toEqual({ path: t.modelFile, contextSize: 2048, slots: 2 });
  });

  it("uses the model's stored profile over Settings, and the call's own values over both", async () => {
    const t = await start({ loadModel: false });
    value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { contextSize: 16_384, slots: 3 } }));
    value(await t.hearth.api['models.plan']({ path: t.modelFile }));
    value(await t.hearth.api['models.plan']({ path: t.modelFile, contextSize: 1000, slots: 1 }));
    expect(t.engine.callsOf('plan')).toEqual([
      { path: t.modelFile, contextSize: 16_384, slots: 3 },
      { path: t.modelFile, contextSize: 1000, slots: 1 },
    ]);
  });

  it('sends an absolute path, with ~ expanded', async () => {
    const t = await start({ loadModel: false });
    value(await t.hearth.api['models.plan']({ path: '~/models/x.gguf' }));
    const [call] = t.engine.callsOf('plan');
    expect(path.isAbsolute(call?.path ?? '')).toBe(true);
    expect(call?.path).toMatch(/models[/\\]x\.gguf$/);
  });

  it('refuses through the contract a call without a path, with an address, or with a context out of range', async () => {
    const t = await start({ loadModel: false });
    for (const payload of [{}, { uri: 'https://example.org/a.gguf' }, { path: 'a.gguf', uri: 'https://example.org/a.gguf' }, { path: 'a.gguf', contextSize: 0 }, { path: 'a.gguf', slots: 9 }]) {
      const result = await t.hearth.call('models.plan', payload);
      expect(!result.ok && result.error.code).toBe('INVALID_INPUT');
    }
    expect(t.engine.callsOf('plan')).toEqual([]);
  });

  it("passes the engine's error through", async () => {
    const t = await start({ loadModel: false });
    t.engine.onCall = (call) => {
      if (call.method === 'plan') t.engine.crash();
    };
    const result = await t.hearth.api['models.plan']({ path: t.modelFile });
    expect(!result.ok && result.error.code).toBe('ENGINE_CRASHED');
  });
});
