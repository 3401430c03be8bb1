import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ok, type KvQuality, type ModelInfo } from '../contract/index.ts';
import { openDatabase } from './db.ts';
import { calibrationTextPath, QualityResults, QualityMeter, type QualityKey } from './quality-results.ts';
import { tempDir, useTestHearths, value } from '../../test/support/host-fixture.ts';

const q8: KvQuality = { kType: 'q8_0', vType: 'q8_0', klDivergence: 0.0004, top1Agreement: 0.99, verdict: 'near-lossless', positions: 512, measuredAt: 1 };

describe('models.measureQuality (fake engine)', () => {
  const start = useTestHearths();

  it('asks the engine with the calibration text path, then serves the model and pair from the cache; fresh measures again', async () => {
    const t = await start();
    const first = value(await t.hearth.call('models.measureQuality', {})) as KvQuality;
    expect(first).toMatchObject({ kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1 });
    const calls = t.engine.callsOf('measureQuality');
    expect(calls).toHaveLength(1);
    expect(path.isAbsolute(calls[0]!.calibrationPath)).toBe(true);
    expect(existsSync(calls[0]!.calibrationPath)).toBe(true);

    expect(value(await t.hearth.call('models.measureQuality', {}))).toEqual(first);
    expect(value(await t.hearth.call('models.measureQuality', { fresh: false }))).toEqual(first);
    expect(t.engine.callsOf('measureQuality')).toHaveLength(1);

    t.engine.behaviour.quality = { ...first, klDivergence: 1e-9, measuredAt: 2 };
    expect(value(await t.hearth.call('models.measureQuality', { fresh: true }))).toMatchObject({ klDivergence: 1e-9, measuredAt: 2 });
    expect(t.engine.callsOf('measureQuality')).toHaveLength(2);
    // The fresh result replaced the cached one.
    expect(value(await t.hearth.call('models.measureQuality', {}))).toMatchObject({ measuredAt: 2 });
    expect(t.engine.callsOf('measureQuality')).toHaveLength(2);
  });

  it('measures again when the model file changes, and survives a restart through the database', async () => {
    const t = await start();
    value(await t.hearth.call('models.measureQuality', {}));
    const later = new Date(Date.now() + 60_000);
    utimesSync(t.modelFile, later, later);
    value(await t.hearth.call('models.measureQuality', {}));
    expect(t.engine.callsOf('measureQuality')).toHaveLength(2);

    await t.hearth.dispose();
    // The remembered model loads again in the background; the helper rewrote the file meanwhile.
    const again = await start({ dataDir: t.dataDir, loadModel: false });
    await again.waitFor((e) => e.type === 'model.status' && e.payload.status === 'ready');
    utimesSync(again.modelFile, later, later);
    value(await again.hearth.call('models.measureQuality', {}));
    expect(again.engine.callsOf('measureQuality')).toHaveLength(0);
  });

  it('says MODEL_NOT_LOADED without a model, without asking the engine', async () => {
    const t = await start({ loadModel: false });
    const result = await t.hearth.call('models.measureQuality', {});
    expect(result.ok ? null : result.error.code).toBe('MODEL_NOT_LOADED');
    expect(t.engine.callsOf('measureQuality')).toHaveLength(0);
  });

  it('rejects a fresh that is not a boolean', async () => {
    const t = await start();
    const result = await t.hearth.call('models.measureQuality', { fresh: 'yes' });
    expect(result.ok ? null : result.error.code).toBe('INVALID_INPUT');
  });
});

describe('QualityMeter', () => {
  const modelInfo = (file: string, extra: Partial<ModelInfo> = {}): ModelInfo => ({
    path: file, name: 'm', sizeBytes: 9, architecture: 'llama', trainedContextLength: 8192, contextSize: 4096, layerCount: 4, ...extra,
  });

  function setup(info: () => ModelInfo | null, answer: () => KvQuality) {
    const dir = tempDir();
    const db = openDatabase(path.join(dir, 'hearth.db'));
    const calibrationPath = path.join(dir, 'calibration.txt');
    writeFileSync(calibrationPath, 'calibration text');
    let calls = 0;
    let release: (() => void) | null = null;
    let hold = false;
    const meter = new QualityMeter({
      engine: {
        request: async () => {
          calls++;
          if (hold) await new Promise<void>((resolve) => (release = resolve));
          return ok(answer());
        },
      },
      loadedModel: info,
      cache: new QualityResults(db),
      calibrationPath,
    });
    return { dir, db, meter, calibrationPath, calls: () => calls, hold: () => (hold = true), release: () => release?.() };
  }

  it("keys by the model's pair and flash attention, and files a result under the pair the engine measured", async () => {
    const dir = tempDir();
    const file = path.join(dir, 'm.gguf');
    writeFileSync(file, 'GGUF');
    let info = modelInfo(file, { kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true });
    const s = setup(() => info, () => q8);
    value(await s.meter.measure({}));
    value(await s.meter.measure({}));
    expect(s.calls()).toBe(1);
    info = modelInfo(file, { kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: false });
    value(await s.meter.measure({}));
    expect(s.calls()).toBe(2);
    s.db.close();
  });

  it('measures again when the calibration text changes', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'm.gguf');
    writeFileSync(file, 'GGUF');
    const info = modelInfo(file, { kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true });
    const s = setup(() => info, () => q8);
    value(await s.meter.measure({}));
    writeFileSync(s.calibrationPath, 'another calibration text');
    value(await s.meter.measure({}));
    expect(s.calls()).toBe(2);
    s.db.close();
  });

  it('shares one running measurement between concurrent calls', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'm.gguf');
    writeFileSync(file, 'GGUF');
    const info = modelInfo(file, { kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true });
    const s = setup(() => info, () => q8);
    s.hold();
    const a = s.meter.measure({ fresh: true });
    const b = s.meter.measure({ fresh: true });
    await new Promise((resolve) => setTimeout(resolve, 10));
    s.release();
    expect(value(await a)).toEqual(q8);
    expect(value(await b)).toEqual(q8);
    expect(s.calls()).toBe(1);
    s.db.close();
  });
});

describe('QualityResults', () => {
  it('misses for another file version and replaces a row on put', () => {
    const db = openDatabase(path.join(tempDir(), 'hearth.db'));
    const cache = new QualityResults(db);
    const key: QualityKey = { modelPath: '/m.gguf', modelSize: 10, modelMtimeMs: 5, kType: 'q8_0', vType: 'q8_0', flashAttention: true, calibration: '1:abc' };
    expect(cache.get(key)).toBeNull();
    cache.put(key, q8);
    expect(cache.get(key)).toEqual(q8);
    expect(cache.get({ ...key, modelMtimeMs: 6 })).toBeNull();
    expect(cache.get({ ...key, vType: 'f16' })).toBeNull();
    cache.put({ ...key, modelMtimeMs: 6 }, { ...q8, measuredAt: 9 });
    expect(cache.get(key)).toBeNull();
    expect(cache.get({ ...key, modelMtimeMs: 6 })).toMatchObject({ measuredAt: 9 });
    expect((db.prepare('SELECT COUNT(*) AS n FROM kv_quality').get() as { n: number }).n).toBe(1);
    db.close();
  });
});

describe('calibrationTextPath', () => {
  it("finds the repository's assets/calibration.txt when not packaged", () => {
    const file = calibrationTextPath();
    expect(file.endsWith(path.join('assets', 'calibration.txt'))).toBe(true);
    expect(existsSync(file)).toBe(true);
  });

  it("prefers Electron's resources directory when the file is there (a packaged app)", () => {
    const resources = tempDir();
    writeFileSync(path.join(resources, 'calibration.txt'), 'packaged');
    const proc = process as { resourcesPath?: string };
    proc.resourcesPath = resources;
    try {
      expect(calibrationTextPath()).toBe(path.join(resources, 'calibration.txt'));
    } finally {
      delete proc.resourcesPath;
    }
  });
});
