import os from 'node:os';
import path from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultModelProfile, type ProfileIssue } from '../contract/index.ts';
import { openDatabase } from './db.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { profileKey, readProfile, readProfilePatch, sanitizePatch, writeProfilePatch } from './model-profiles.ts';
import { defaultSettings } from './settings.ts';
import { tempDir, useTestHearths, value } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

describe('profile storage', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  function db() {
    const dir = tempDir();
    dirs.push(dir);
    return openDatabase(path.join(dir, 'hearth.db'));
  }

  it('gives a model without a profile the defaults, which follow Settings', () => {
    const d = db();
    expect(readProfile(d, '/m.gguf', defaultSettings)).toEqual({
      kType: 'f16',
      vType: 'f16',
      flashAttention: 'auto',
      contextSize: 0,
      gpuLayers: 'auto',
      slots: 1,
      overflowPolicy: 'drop-oldest',
    });
    expect(readProfile(d, '/m.gguf', { ...defaultSettings, contextSize: 2048, kvSlots: 3 })).toMatchObject({ contextSize: 2048, slots: 3 });
    d.close();
  });

  it('stores only the fields set, merges later patches, and keeps unset fields on the defaults', () => {
    const d = db();
    writeProfilePatch(d, '/m.gguf', { kType: 'q8_0', vType: 'q8_0' });
    writeProfilePatch(d, '/m.gguf', { vType: 'q4_0', flashAttention: 'on', kType: undefined });
    expect(readProfilePatch(d, '/m.gguf')).toEqual({ kType: 'q8_0', vType: 'q4_0', flashAttention: 'on' });
    // Settings still decide what the profile leaves unset.
    expect(readProfile(d, '/m.gguf', { ...defaultSettings, contextSize: 4096 })).toEqual({
      ...defaultModelProfile({ contextSize: 4096, kvSlots: 1 }),
      kType: 'q8_0',
      vType: 'q4_0',
      flashAttention: 'on',
    });
    // Another path is another model.
    expect(readProfilePatch(d, '/other.gguf')).toEqual({});
    d.close();
  });

  it('reads invalid or corrupt stored values as their defaults', () => {
    const d = db();
    d.prepare('INSERT INTO model_profiles (path, profile, updated_at) VALUES (?, ?, 0)').run('/a.gguf', JSON.stringify({ kType: 'q3_k', slots: 99, vType: 'q5_1', bogus: 1 }));
    d.prepare('INSERT INTO model_profiles (path, profile, updated_at) VALUES (?, ?, 0)').run('/b.gguf', '{not json');
    expect(readProfilePatch(d, '/a.gguf')).toEqual({ vType: 'q5_1' });
    expect(readProfile(d, '/b.gguf', defaultSettings)).toEqual(defaultModelProfile(defaultSettings));
    expect(sanitizePatch(null)).toEqual({});
    expect(sanitizePatch({ gpuLayers: 12, overflowPolicy: 'drop-oldest', contextSize: -1 })).toEqual({ gpuLayers: 12, overflowPolicy: 'drop-oldest' });
    // Policies of earlier versions read as the one that does what the user chose.
    expect(sanitizePatch({ overflowPolicy: 'refuse' })).toEqual({ overflowPolicy: 'stop' });
    expect(sanitizePatch({ overflowPolicy: 'rebuild' })).toEqual({ overflowPolicy: 'drop-oldest' });
    expect(sanitizePatch({ overflowPolicy: 'shift' })).toEqual({ overflowPolicy: 'drop-oldest' });
    expect(sanitizePatch({ overflowPolicy: 'sideways' })).toEqual({});
    d.close();
  });

  it('keys profiles by the absolute path', () => {
    expect(profileKey('~/models/a.gguf')).toBe(path.join(os.homedir(), 'models/a.gguf'));
    expect(profileKey('rel/a.gguf')).toBe(path.resolve('rel/a.gguf'));
    expect(profileKey('/x/../y/a.gguf')).toBe('/y/a.gguf');
  });
});

const errorIssue: ProfileIssue = { field: 'vType', severity: 'error', message: 'A quantized V cache needs flash attention.' };
const warningIssue: ProfileIssue = { field: 'contextSize', severity: 'warning', message: 'Only 3 layers fit on the GPU.' };

describe('models.getProfile and models.setProfile', () => {
  it('return the defaults with what checkProfile says', async () => {
    const engine = new FakeEngine();
    engine.behaviour.profileIssues = [warningIssue];
    const t = await start({ engine, loadModel: false });
    const view = value(await t.hearth.api['models.getProfile']({ path: t.modelFile }));
    // Nothing was measured on this device yet.
    expect(view).toEqual({ path: t.modelFile, profile: defaultModelProfile(defaultSettings), issues: [warningIssue], speed: null });
    expect(engine.callsOf('checkProfile').at(-1)).toEqual({ path: t.modelFile, profile: defaultModelProfile(defaultSettings) });
  });

  it('save a valid patch and pass the resolved profile to the next load', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, loadModel: false });
    const view = value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { kType: 'q8_0', vType: 'q8_0', flashAttention: 'on', contextSize: 2048, slots: 2, overflowPolicy: 'drop-oldest' } }));
    expect(view.profile).toMatchObject({ kType: 'q8_0', vType: 'q8_0', flashAttention: 'on', contextSize: 2048, slots: 2, overflowPolicy: 'drop-oldest', gpuLayers: 'auto' });
    expect(view.issues).toEqual([]);
    // Not loaded: nothing is reloaded.
    expect(engine.callsOf('loadModel')).toHaveLength(0);
    expect(value(await t.hearth.api['models.getProfile']({ path: t.modelFile })).profile).toEqual(view.profile);

    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    const load = engine.callsOf('loadModel').at(-1);
    expect(load).toMatchObject({
      path: t.modelFile,
      contextSize: 2048,
      slots: 2,
      profile: { kType: 'q8_0', vType: 'q8_0', flashAttention: true, contextSize: 2048, gpuLayers: 'auto', slots: 2, overflowPolicy: 'drop-oldest' },
    });
  });

  it('refuse a profile with errors, naming them, and save nothing', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, loadModel: false });
    engine.behaviour.profileIssues = [errorIssue, warningIssue];
    const refused = await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { vType: 'q4_0', flashAttention: 'off' } });
    expect(!refused.ok && refused.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('vType: A quantized V cache needs flash attention.') });
    expect(!refused.ok && refused.error.message).not.toContain('Only 3 layers');
    engine.behaviour.profileIssues = [];
    expect(value(await t.hearth.api['models.getProfile']({ path: t.modelFile })).profile).toEqual(defaultModelProfile(defaultSettings));
    // And through the contract's validation, a bad value never reaches the engine.
    const invalid = await t.hearth.call('models.setProfile', { path: t.modelFile, profile: { kType: 'q3_k' } });
    expect(!invalid.ok && invalid.error.code).toBe('INVALID_INPUT');
  });

  it('reload the loaded model when its profile changes, and not for another model', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    expect(engine.callsOf('loadModel')).toHaveLength(1);
    value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { kType: 'q8_0', vType: 'q8_0' } }));
    expect(engine.callsOf('loadModel')).toHaveLength(2);
    expect(engine.callsOf('loadModel')[1]?.profile).toMatchObject({ kType: 'q8_0', vType: 'q8_0' });
    const state = value(await t.hearth.api['app.state']({}));
    expect(state.model.status).toBe('ready');
    // The same values again change nothing, so nothing reloads.
    value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { kType: 'q8_0' } }));
    expect(engine.callsOf('loadModel')).toHaveLength(2);
    value(await t.hearth.api['models.setProfile']({ path: path.join(t.dataDir, 'models', 'other.gguf'), profile: { slots: 4 } }));
    expect(engine.callsOf('loadModel')).toHaveLength(2);
  });

  it('report a failed reload as a warning, with the profile saved', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    engine.behaviour.loadError = { code: 'OUT_OF_MEMORY', message: 'The context does not fit.' };
    const view = value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { contextSize: 65_536 } }));
    expect(view.profile.contextSize).toBe(65_536);
    expect(view.issues).toEqual([expect.objectContaining({ field: 'model', severity: 'warning', message: expect.stringContaining('The context does not fit.') })]);
  });

  it('refuse to load a model whose profile has errors, and keep the loaded one', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    engine.behaviour.profileIssues = [{ field: 'contextSize', severity: 'error', message: 'It does not fit: at most 4096 tokens fit.' }];
    const other = path.join(t.dataDir, 'models', 'other.gguf');
    writeFileSync(other, 'GGUF fake');
    const refused = await t.hearth.api['models.load']({ path: other });
    expect(!refused.ok && refused.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('contextSize: It does not fit: at most 4096 tokens fit.') });
    expect(engine.callsOf('loadModel')).toHaveLength(1);
    const state = value(await t.hearth.api['app.state']({}));
    expect(state.model).toMatchObject({ status: 'ready', model: { path: t.modelFile } });
  });

  it('say validation is pending while the engine is down, and save anyway', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine, loadModel: false, wiring: { backoff: { initialMs: 60_000, maxMs: 60_000, stableMs: 60_000 } } });
    engine.crash();
    await t.waitFor((e) => e.type === 'engine.status' && e.payload.state === 'restarting');
    const view = value(await t.hearth.api['models.getProfile']({ path: t.modelFile }));
    expect(view.issues).toEqual([expect.objectContaining({ field: 'model', severity: 'warning', message: expect.stringMatching(/could not be checked yet/) })]);
    const saved = value(await t.hearth.api['models.setProfile']({ path: t.modelFile, profile: { overflowPolicy: 'drop-oldest' } }));
    expect(saved.profile.overflowPolicy).toBe('drop-oldest');
    expect(saved.issues[0]?.severity).toBe('warning');
  });
});
