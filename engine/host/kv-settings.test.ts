/**
 * The disk KV settings through Hearth's API: `kv.stats`, and `settings.update` applying them now
 * (a graceful engine restart, or a model reload for slots) without ever cutting off a reply.
 */
import { describe, expect, it } from 'vitest';
import type { EngineStatus, HearthEvent } from '../contract/index.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

function engineStates(t: TestHearth, from = 0): EngineStatus[] {
  return t.events.slice(from).filter((e): e is Extract<HearthEvent, { type: 'engine.status' }> => e.type === 'engine.status').map((e) => e.payload);
}

/** The model's latest status event says ready. */
const modelReady = (t: TestHearth) => () =>
  t.events.filter((e): e is Extract<HearthEvent, { type: 'model.status' }> => e.type === 'model.status').at(-1)?.payload.status === 'ready';

describe('kv.stats', () => {
  it("reports the engine's store, the budget and chunk size in force, and the free disk", async () => {
    const engine = new FakeEngine();
    engine.behaviour.metrics = {
      kvCellsUsed: 5,
      kvCellsCapacity: 100,
      slots: [],
      kvStore: { bytesOnDisk: 4096, storedBytes: 4000, rawBytes: 3900, chunkCount: 2, manifests: 1, logicalBytes: 8192, budgetBytes: 10 * 1024 ** 3, freeBytes: 1 },
    };
    const t = await start({ engine });
    const stats = value(await t.hearth.call('kv.stats', {}));
    expect(stats).toEqual({
      persistence: 'on',
      bytesOnDisk: 4096,
      chunkCount: 2,
      logicalBytes: 8192,
      budgetBytes: 10 * 1024 ** 3,
      freeDiskBytes: expect.any(Number),
      chunkTokens: 256,
      compression: 'off',
      compressionChoice: { setting: 'auto', applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s', measured: { decodeBytesPerSec: 0.7e9, readBytesPerSec: 9.8e9 } },
      codec: { kernels: 'native' },
      // This sample carries none (a model whose KV profile is not ready yet).
      stateTransfer: null,
    });
    expect((await t.hearth.call('kv.stats', { extra: 1 })).ok).toBe(false);
  });

  it("carries the loaded model's state transfer as the engine reports it", async () => {
    const engine = new FakeEngine();
    engine.behaviour.metrics = { ...engine.behaviour.metrics, stateTransfer: { mode: 'file', reason: 'HEARTH_STATE_TRANSFER=file' } };
    const t = await start({ engine });
    expect(value(await t.hearth.api['kv.stats']({})).stateTransfer).toEqual({ mode: 'file', reason: 'HEARTH_STATE_TRANSFER=file' });
  });

  it('with persistence off: zeros, "off", and no state transfer', async () => {
    const t = await start();
    expect(value(await t.hearth.api['kv.stats']({})).stateTransfer).toEqual({ mode: 'memory' });
    value(await t.hearth.api['settings.update']({ kvPersistence: false }));
    expect(value(await t.hearth.api['kv.stats']({}))).toMatchObject({ persistence: 'off', bytesOnDisk: 0, chunkCount: 0, stateTransfer: null });
  });
});

describe('settings.update applies the disk KV settings now', () => {
  it('a new budget restarts the engine gracefully: not a crash, the model reloads, chats go on', async () => {
    const t = await start();
    const mark = t.events.length;
    const updated = value(await t.hearth.api['settings.update']({ kvBudgetBytes: 2 * 1024 ** 3 }));
    expect(updated.kvBudgetBytes).toBe(2 * 1024 ** 3);
    // Answered once the fresh engine runs, with the new budget in its init.
    expect(t.engine.callsOf('init')).toHaveLength(2);
    expect(t.engine.callsOf('init').at(-1)).toMatchObject({ kvBudgetBytes: 2 * 1024 ** 3, kvChunkTokens: 256 });
    expect(t.engine.ports[0]?.dead).toBe(true);
    expect(engineStates(t, mark)).toEqual([
      { state: 'restarting', restarts: 0 },
      { state: 'running', restarts: 0 },
    ]);
    await until(modelReady(t));
    expect(t.engine.callsOf('loadModel')).toHaveLength(2);
    expect(value(await t.hearth.api['kv.stats']({})).budgetBytes).toBe(2 * 1024 ** 3);

    const chat = value(await t.hearth.api['chats.create']({}));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'still there?' }));
    expect((await t.waitFor(finished(sent.assistantMessage.id))).payload.message.status).toBe('complete');
    expect(await t.hearth.metricsText()).toContain('hearth_engine_restarts_total 0');
  });

  it('unchanged KV settings, or other settings, do not restart the engine', async () => {
    const t = await start();
    value(await t.hearth.api['settings.update']({ kvBudgetBytes: 10 * 1024 ** 3, threads: 2, theme: 'dark' }));
    expect(t.engine.callsOf('init')).toHaveLength(1);
    expect(t.engine.callsOf('loadModel')).toHaveLength(1);
  });

  it('while a reply streams: saved at once, applied after the reply completes, which is never cut off', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 2;
    const chat = value(await t.hearth.api['chats.create']({}));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'long reply' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta').length === 2);

    const updated = value(await t.hearth.api['settings.update']({ kvChunkTokens: 128 }));
    expect(updated.kvChunkTokens).toBe(128);
    expect(value(await t.hearth.api['app.state']({})).settings.kvChunkTokens).toBe(128);
    await new Promise((r) => setTimeout(r, 30));
    expect(t.engine.callsOf('init')).toHaveLength(1);

    t.engine.behaviour.pauseAfter = null;
    t.engine.release();
    const done = await t.waitFor(finished(sent.assistantMessage.id));
    expect(done.payload.message).toMatchObject({ status: 'complete', content: 'Hello, world!' });
    await until(() => t.engine.callsOf('init').length === 2);
    expect(t.engine.callsOf('init').at(-1)).toMatchObject({ kvChunkTokens: 128 });
    await until(modelReady(t));
    expect(value(await t.hearth.api['app.state']({})).engine).toEqual({ state: 'running', restarts: 0 });
  });

  it('a new compression restarts the engine with it; kv.stats shows it once the fresh engine runs', async () => {
    const t = await start();
    const mark = t.events.length;
    expect(value(await t.hearth.api['settings.update']({ kvCompression: 'lossy' })).kvCompression).toBe('lossy');
    expect(t.engine.callsOf('init')).toHaveLength(2);
    expect(t.engine.callsOf('init').at(-1)).toMatchObject({ kvCompression: 'lossy', kvChunkTokens: 256 });
    expect(engineStates(t, mark)).toEqual([
      { state: 'restarting', restarts: 0 },
      { state: 'running', restarts: 0 },
    ]);
    expect(value(await t.hearth.api['kv.stats']({}))).toMatchObject({ compression: 'lossy', compressionChoice: { setting: 'lossy', applied: 'lossy' }, codec: { kernels: 'native' } });
    expect((await t.hearth.call('settings.update', { kvCompression: 'zstd' })).ok).toBe(false);
    // Back to auto: the fresh engine resolves it, and kv.stats says what it chose and why.
    await until(modelReady(t));
    expect(value(await t.hearth.api['settings.update']({ kvCompression: 'auto' })).kvCompression).toBe('auto');
    await until(() => t.engine.callsOf('init').length === 3);
    expect(t.engine.callsOf('init').at(-1)).toMatchObject({ kvCompression: 'auto' });
    expect(value(await t.hearth.api['kv.stats']({}))).toMatchObject({ compression: 'off', compressionChoice: { setting: 'auto', applied: 'off', reason: expect.stringContaining('slower than reading') } });
  });

  it('a compression change while a reply streams waits for it; kv.stats shows the compression in force meanwhile', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 1;
    const chat = value(await t.hearth.api['chats.create']({}));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'long reply' }));
    await until(() => t.events.some((e) => e.type === 'message.delta'));
    expect(value(await t.hearth.api['settings.update']({ kvCompression: 'lossless' })).kvCompression).toBe('lossless');
    expect(t.engine.callsOf('init')).toHaveLength(1);
    // Still what the running engine's `auto` chose.
    expect(value(await t.hearth.api['kv.stats']({})).compression).toBe('off');
    t.engine.behaviour.pauseAfter = null;
    t.engine.release();
    await t.waitFor(finished(sent.assistantMessage.id));
    await until(() => t.engine.callsOf('init').length === 2);
    expect(t.engine.callsOf('init').at(-1)).toMatchObject({ kvCompression: 'lossless' });
    await until(modelReady(t));
    expect(value(await t.hearth.api['kv.stats']({})).compression).toBe('lossless');
  });

  it('a new slot count reloads the loaded model without restarting the engine', async () => {
    const t = await start();
    const mark = t.events.length;
    value(await t.hearth.api['settings.update']({ kvSlots: 3 }));
    await until(() => t.engine.callsOf('loadModel').length === 2);
    await until(modelReady(t));
    expect(t.engine.callsOf('init')).toHaveLength(1);
    expect(engineStates(t, mark)).toEqual([]);
  });

  it('a new slot count with no model loaded waits for the next load', async () => {
    const t = await start({ loadModel: false });
    value(await t.hearth.api['settings.update']({ kvSlots: 2 }));
    await new Promise((r) => setTimeout(r, 20));
    expect(t.engine.callsOf('loadModel')).toHaveLength(0);
  });
});
