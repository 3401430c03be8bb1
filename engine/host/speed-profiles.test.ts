import path from 'node:path';
import { rmSync, statSync, utimesSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { HearthEvent, SpeedProfile } from '../contract/index.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { startTestHearth, tempDir, useTestHearths, value } from '../../test/support/host-fixture.ts';
import { openDatabase } from './db.ts';
import { speedThreadCandidates } from './models.ts';
import { SpeedStore, type SpeedKey } from './speed-profiles.ts';

const start = useTestHearths();

const loads = (engine: FakeEngine) => engine.callsOf('loadModel');
const measuring = (events: readonly HearthEvent[]) =>
  events.flatMap((event) => (event.type === 'model.status' && event.payload.measuring ? [event.payload.measuring] : []));

/** Another measurement than the fake engine's default, choosing other settings. */
const remeasured = (base: SpeedProfile): SpeedProfile => ({
  ...base,
  trials: [{ flashAttention: true, threads: 2, batchSize: 256, prefillTokPerS: 400, decodeTokPerS: 40, turnSeconds: 128 / 400 + 256 / 40 }],
  chosen: { flashAttention: true, threads: 2, batchSize: 256 },
  measuredAt: base.measuredAt + 1,
});

describe('measured speed defaults', () => {
  it("measures on a model's first load on this device, shows the progress, and loads with the choice", async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, measureSpeed: true });
    const { measuredSpeed } = engine.behaviour;
    expect(loads(engine)).toHaveLength(1);
    expect(loads(engine)[0]?.speed).toEqual({ flashAttention: 'auto', threads: speedThreadCandidates(null) });
    expect(measuring(t.events).at(-1)).toEqual({ done: measuredSpeed.trials.length, total: measuredSpeed.trials.length });
    const status = value(await t.hearth.api['app.state']({})).model;
    expect(status.status).toBe('ready');
    expect(status.measuring).toBeUndefined();
    expect(status.model).toMatchObject({ flashAttention: false, threads: 1, batchSize: 512 });
    // The status carries the model, not the measurement: that is the profile's.
    expect(status.model && 'speed' in status.model).toBe(false);
    expect(value(await t.hearth.api['models.getProfile']({ path: t.modelFile })).speed).toEqual(measuredSpeed);
  });

  it('reuses a stored choice: later loads, in this run and the next, measure nothing and run with it', async () => {
    const dataDir = tempDir();
    try {
      const first = await startTestHearth({ dataDir, measureSpeed: true });
      const chosen = first.engine.behaviour.measuredSpeed.chosen;
      value(await first.hearth.api['models.load']({ path: first.modelFile }));
      expect(loads(first.engine).map((load) => load.speed?.known)).toEqual([undefined, chosen]);
      const { atime, mtime } = statSync(first.modelFile);
      await first.hearth.dispose();

      const second = await startTestHearth({ dataDir, measureSpeed: true, loadModel: false });
      // The fixture writes the file again: give it back the time it had, as an untouched file keeps it.
      utimesSync(second.modelFile, atime, mtime);
      value(await second.hearth.api['models.load']({ path: second.modelFile }));
      expect(loads(second.engine)[0]?.speed?.known).toEqual(chosen);
      expect(measuring(second.events)).toEqual([]);
      await second.hearth.dispose();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('measures again when the model file changed', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, measureSpeed: true });
    const later = new Date(Date.now() + 60_000);
    utimesSync(t.modelFile, later, later);
    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    expect(loads(engine).map((load) => load.speed?.known)).toEqual([undefined, undefined]);
  });

  it('measures again on request even with a stored choice, and keeps the new one', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, measureSpeed: true });
    engine.behaviour.measuredSpeed = remeasured(engine.behaviour.measuredSpeed);
    const speed = value(await t.hearth.api['models.measureSpeed']({ path: t.modelFile }));
    expect(speed).toEqual(engine.behaviour.measuredSpeed);
    expect(loads(engine).at(-1)?.speed?.known).toBeUndefined();
    expect(value(await t.hearth.api['app.state']({})).model.model).toMatchObject({ threads: 2, batchSize: 256 });
    expect(value(await t.hearth.api['models.getProfile']({ path: t.modelFile })).speed).toEqual(speed);
    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    expect(loads(engine).at(-1)?.speed?.known).toEqual({ flashAttention: true, threads: 2, batchSize: 256 });
  });

  it('tries only the thread count the user fixed', async () => {
    const engine = new FakeEngine();
    await start({ engine, measureSpeed: true, threads: 3 });
    expect(loads(engine)[0]?.speed?.threads).toEqual([3]);
  });

  it('with first-load measuring off, loads with the defaults until asked, then uses the measurement', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, measureSpeed: false });
    expect(loads(engine)[0]?.speed).toBeUndefined();
    expect(value(await t.hearth.api['models.getProfile']({ path: t.modelFile })).speed).toBeNull();
    value(await t.hearth.api['models.measureSpeed']({ path: t.modelFile }));
    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    expect(loads(engine).at(-1)?.speed?.known).toEqual(engine.behaviour.measuredSpeed.chosen);
  });

  it('says why a measurement could not be made when the load fails', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, measureSpeed: true });
    engine.behaviour.loadError = { code: 'OUT_OF_MEMORY', message: 'no memory' };
    const result = await t.hearth.api['models.measureSpeed']({ path: t.modelFile });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code: 'OUT_OF_MEMORY', message: 'no memory' });
  });
});

describe('SpeedStore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('files a measurement per device, file version, pair and candidate set', () => {
    const dir = tempDir();
    dirs.push(dir);
    const db = openDatabase(path.join(dir, 'hearth.db'));
    const store = new SpeedStore(db);
    const key: SpeedKey = { device: 'build; cpu', modelPath: '/m.gguf', modelSize: 10, modelMtimeMs: 5, kType: 'f16', vType: 'f16', space: 'a' };
    const engine = new FakeEngine();
    store.put(key, engine.behaviour.measuredSpeed);
    expect(store.get(key)).toEqual(engine.behaviour.measuredSpeed);
    for (const other of [{ device: 'other build; cpu' }, { modelSize: 11 }, { modelMtimeMs: 6 }, { vType: 'q8_0' as const }, { space: 'b' }]) {
      expect(store.get({ ...key, ...other }), JSON.stringify(other)).toBeNull();
    }
    db.prepare("UPDATE speed_profiles SET result = '{broken'").run();
    expect(store.get(key)).toBeNull();
    db.close();
  });
});
