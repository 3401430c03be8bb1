/**
 * The models calls through the host, with the fake engine: the library (Hearth's folder and a
 * fake home's other apps), the models folder setting, deleting with KV, the Hugging Face token,
 * fit verdicts per model of a repository, and a download from the loopback Hub into the library.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { appendFile, copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { err, ok, type HearthEvent } from '../contract/index.ts';
import { ModelFiles, type ModelFilesDeps } from './model-files.ts';
import type { WorkerMethods } from '../protocol.ts';
import { makeFakeHome, type FakeHome } from '../../test/support/fake-homes.ts';
import { startHubEmulator, type HubEmulator } from '../../test/support/hf-emulator.ts';
import { rejection, tempDir, useTestHearths, value } from '../../test/support/host-fixture.ts';
import { HearthStartError } from './hearth.ts';
import { testModelPath } from '../../test/support/models.ts';

const start = useTestHearths();
let hub: HubEmulator | null = null;

afterEach(async () => {
  await hub?.close();
  hub = null;
});

async function fakeHome(): Promise<FakeHome> {
  return makeFakeHome(tempDir('hearth-home-'));
}

describe('the library through the host', () => {
  it('lists Hearth’s folder and the other apps’ models of the home it is given, and follows the models folder setting', async () => {
    const home = await fakeHome();
    const t = await start({ loadModel: false, otherApps: { home: home.home, env: home.env } });
    const before = value(await t.hearth.api['models.list']({}));
    expect(before.modelsDir).toBe(path.join(t.dataDir, 'models'));

    value(await t.hearth.api['settings.update']({ modelsDir: home.modelsDir }));
    expect(value(await t.hearth.api['app.state']({})).modelsDir).toBe(home.modelsDir);
    const library = value(await t.hearth.api['models.list']({}));
    expect(library.modelsDir).toBe(home.modelsDir);
    // Only what lies in the fake home and folder: a real Ollama service folder may exist too.
    const mine = library.models.filter((m) => m.path.startsWith(home.home) || m.path.startsWith(home.modelsDir));
    expect(mine.map((m) => [m.source, m.path])).toEqual(home.expected.map((m) => [m.source, m.path]));
    expect(new Set(mine.map((m) => m.source))).toEqual(new Set(['hearth', 'lmstudio', 'ollama', 'jan', 'gpt4all']));
    expect(library.folders.find((f) => f.source === 'hearth')).toMatchObject({ dir: home.modelsDir, exists: true });

    // Back to the default: the data folder's models.
    value(await t.hearth.api['settings.update']({ modelsDir: null }));
    expect(value(await t.hearth.api['models.list']({})).modelsDir).toBe(path.join(t.dataDir, 'models'));
  });

  it('refuses a models folder it cannot use, and creates one that does not exist yet', async () => {
    const t = await start({ loadModel: false });
    const refused = await t.hearth.api['settings.update']({ modelsDir: 'relative/models' });
    expect(refused.ok || refused.error.code).toBe('INVALID_INPUT');
    const file = path.join(t.dataDir, 'models', 'fake.gguf');
    const notAFolder = await t.hearth.api['settings.update']({ modelsDir: file });
    expect(notAFolder.ok || notAFolder.error.code).toBe('INVALID_INPUT');
    expect(value(await t.hearth.api['app.state']({})).settings.modelsDir).toBeNull();
    const fresh = path.join(tempDir(), 'new', 'models');
    expect(value(await t.hearth.api['settings.update']({ modelsDir: fresh })).modelsDir).toBe(fresh);
    expect(statSync(fresh).isDirectory()).toBe(true);
  });

  it('deletes only Hearth’s own models: the loaded one is unloaded first, and its KV is forgotten while the file still exists', async () => {
    const home = await fakeHome();
    const t = await start({ loadModel: false, otherApps: { home: home.home, env: home.env } });
    const model = path.join(t.dataDir, 'models', 'mine.gguf');
    await copyFile(await testModelPath(), model);
    t.engine.behaviour.modelKv = { [model]: { conversations: 3, bytes: 12_345 } };
    value(await t.hearth.api['models.load']({ path: model }));

    const other = home.expected.find((m) => m.source === 'ollama')!;
    const forbidden = await t.hearth.api['models.delete']({ path: other.path, deleteKv: true });
    expect(forbidden.ok || forbidden.error.code).toBe('FORBIDDEN');
    expect(existsSync(other.path)).toBe(true);
    const missing = await t.hearth.api['models.delete']({ path: path.join(t.dataDir, 'models', 'nothing.gguf'), deleteKv: false });
    expect(missing.ok || missing.error.code).toBe('NOT_FOUND');

    expect(value(await t.hearth.api['models.kvUsage']({ path: model }))).toEqual({ conversations: 3, bytes: 12_345 });
    let fileWhenForgotten: boolean | null = null;
    t.engine.onCall = (call) => {
      if (call.method === 'forgetModel') fileWhenForgotten = existsSync(model);
    };
    const size = statSync(model).size;
    expect(value(await t.hearth.api['models.delete']({ path: model, deleteKv: true }))).toEqual({ modelBytes: size, kvBytes: 12_345 });
    expect(fileWhenForgotten).toBe(true);
    expect(existsSync(model)).toBe(false);
    const methods = t.engine.calls.map((c) => c.method);
    expect(methods.lastIndexOf('unloadModel')).toBeLessThan(methods.indexOf('forgetModel'));
    expect(value(await t.hearth.api['app.state']({})).model.status).toBe('idle');
    expect(value(await t.hearth.api['models.list']({})).models.some((m) => m.path === model)).toBe(false);
  });

  it('keeps a model’s KV when asked to delete the model alone', async () => {
    const t = await start({ loadModel: false });
    const model = path.join(t.dataDir, 'models', 'mine.gguf');
    await copyFile(await testModelPath(), model);
    t.engine.behaviour.modelKv = { [model]: { conversations: 1, bytes: 99 } };
    expect(value(await t.hearth.api['models.delete']({ path: model, deleteKv: false })).kvBytes).toBe(0);
    expect(t.engine.calls.some((c) => c.method === 'forgetModel')).toBe(false);
    expect(existsSync(model)).toBe(false);
  });
});

describe('the library while the engine is down', () => {
  it('says it cannot tell a model’s stored KV, and deleting it with its KV keeps the model', async () => {
    const modelsDir = tempDir('hearth-models-');
    const model = path.join(modelsDir, 'mine.gguf');
    await copyFile(await testModelPath(), model);
    const down = err('ENGINE_UNAVAILABLE', 'The engine is restarting; try again in a moment.');
    const files = new ModelFiles({
      modelsDir: () => modelsDir,
      home: tempDir('hearth-home-'),
      env: {},
      platform: 'linux',
      engine: { request: async () => down } as unknown as ModelFilesDeps['engine'],
      model: { status: { status: 'idle' }, unload: async () => ok({ status: 'idle' }) },
    });
    expect(await files.kvUsage(model)).toEqual(down);
    expect(await files.delete(model, true)).toEqual(down);
    expect(existsSync(model)).toBe(true);
    expect((await files.delete(model, false)).ok).toBe(true);
    expect(existsSync(model)).toBe(false);
  });
});

describe('Hugging Face through the host', () => {
  it('refuses to start with a Hub address the token must not travel to: not a URL, plain http off this machine, credentials', async () => {
    for (const hubEndpoint of ['not a url', 'ftp://mirror.example', 'http://mirror.example', 'https://user:pass@mirror.example', 'https://mirror.example/?x=1']) {
      const failure = await rejection(start({ loadModel: false, hubEndpoint }), HearthStartError);
      expect(failure.message, hubEndpoint).toMatch(/Hugging Face address/);
      expect(failure.hint).toMatch(/HEARTH_HF_ENDPOINT/);
    }
    for (const hubEndpoint of ['https://mirror.example/hf/', 'http://127.0.0.1:9']) {
      const t = await start({ loadModel: false, hubEndpoint });
      expect(value(await t.hearth.api['hub.auth']({})).endpoint).toBe(hubEndpoint.replace(/\/$/, ''));
    }
  });

  async function hubWith(files: readonly string[], options: { gated?: 'manual' } = {}): Promise<HubEmulator> {
    const source = await testModelPath();
    const dir = tempDir('hearth-hub-');
    const repoFiles = [];
    for (const [index, name] of files.entries()) {
      // Files of different sizes, so the smallest of a model is known: copies with padding.
      const file = path.join(dir, name);
      await mkdir(path.dirname(file), { recursive: true });
      await copyFile(source, file);
      if (index > 0) await appendFile(file, Buffer.alloc(index * 1000));
      repoFiles.push({ path: name, source: file });
    }
    hub = await startHubEmulator({ repos: [{ id: 'owner/models', files: repoFiles, ...(options.gated ? { gated: options.gated, allowedTokens: ['hf_allowed'] } : {}) }] });
    return hub;
  }

  it('judges every file, reading one header per model of the repository, at the listed commit', async () => {
    const emulator = await hubWith(['Small-A-Q4_K_M.gguf', 'Small-A-Q8_0.gguf', 'Other-B-Q4_K_M.gguf']);
    const t = await start({ loadModel: false, hubEndpoint: emulator.endpoint });
    const repo = value(await t.hearth.api['hub.repo']({ repo: 'owner/models' }));
    expect(repo.files.map((f) => f.name).sort()).toEqual(['Other-B-Q4_K_M.gguf', 'Small-A-Q4_K_M.gguf', 'Small-A-Q8_0.gguf']);
    const fit = value(await t.hearth.api['hub.fit']({ repo: 'owner/models' }));
    expect(Object.keys(fit.files).sort()).toEqual(repo.files.map((f) => f.id).sort());
    for (const file of repo.files) expect(fit.files[file.id]).toMatchObject({ fit: { verdict: 'ram', weightsBytes: file.sizeBytes } });

    const calls = t.engine.callsOf('fitRemote') as WorkerMethods['fitRemote']['input'][];
    expect(calls).toHaveLength(2);
    const modelA = calls.find((c) => c.files.length === 2)!;
    // The smaller file's header stands for both quantizations, at the commit the list came from.
    expect(modelA.url).toBe(`${emulator.endpoint}/owner/models/resolve/${repo.revision}/Small-A-Q4_K_M.gguf`);
    expect(modelA.headers).toEqual({});
  });

  it('keeps the token as a secret: 0600, never answered back, sent with header reads, and forgotten on request', async () => {
    const emulator = await hubWith(['Gated-Q4_K_M.gguf'], { gated: 'manual' });
    const t = await start({ loadModel: false, hubEndpoint: emulator.endpoint });
    expect(value(await t.hearth.api['hub.auth']({}))).toEqual({ hasToken: false, endpoint: emulator.endpoint });
    const stored = value(await t.hearth.api['hub.setToken']({ token: 'hf_allowed' }));
    expect(stored).toEqual({ hasToken: true, endpoint: emulator.endpoint });
    const file = path.join(t.dataDir, 'secrets', 'hf-token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe('hf_allowed');

    value(await t.hearth.api['hub.fit']({ repo: 'owner/models' }));
    const [call] = t.engine.callsOf('fitRemote') as WorkerMethods['fitRemote']['input'][];
    expect(call?.headers).toEqual({ Authorization: 'Bearer hf_allowed' });
    const everything = JSON.stringify(t.events);
    expect(everything).not.toContain('hf_allowed');

    expect(value(await t.hearth.api['hub.setToken']({ token: null })).hasToken).toBe(false);
    expect(existsSync(file)).toBe(false);
  });

  it('says what a gated repository needs when its files are downloaded without access', async () => {
    const emulator = await hubWith(['Gated-Q4_K_M.gguf'], { gated: 'manual' });
    const t = await start({ loadModel: false, hubEndpoint: emulator.endpoint });
    const repo = value(await t.hearth.api['hub.repo']({ repo: 'owner/models' }));
    expect(repo.gated).toBe('manual');
    const started = await t.hearth.api['downloads.start']({ repo: 'owner/models', file: repo.files[0]!.id });
    const failure = started.ok ? (await t.waitFor((e) => e.type === 'download.progress' && e.payload.status === 'error', 10_000)) : null;
    const error = started.ok ? (failure as Extract<HearthEvent, { type: 'download.progress' }>).payload.error : started.error;
    expect(error?.code).toBe('AUTH_REQUIRED');
    expect(`${error?.message} ${error?.hint ?? ''}`).toMatch(/token/i);
  });

  it('downloads a repository’s file into the models folder, where the library lists it as Hearth’s', async () => {
    const emulator = await hubWith(['Tiny-Q4_K_M.gguf']);
    const t = await start({ loadModel: false, hubEndpoint: emulator.endpoint });
    const repo = value(await t.hearth.api['hub.repo']({ repo: 'owner/models' }));
    const item = value(await t.hearth.api['downloads.start']({ repo: 'owner/models', file: repo.files[0]!.id }));
    expect(item.path).toBe(path.join(t.dataDir, 'models', 'Tiny-Q4_K_M.gguf'));
    await t.waitFor((e) => e.type === 'download.progress' && e.payload.id === item.id && e.payload.status === 'done', 20_000);
    expect(value(await t.hearth.api['downloads.list']({})).downloads.map((d) => [d.id, d.status])).toEqual([[item.id, 'done']]);
    const listed = value(await t.hearth.api['models.list']({})).models.find((m) => m.path === item.path);
    expect(listed).toMatchObject({ source: 'hearth', sizeBytes: repo.files[0]!.sizeBytes, architecture: 'llama' });
    expect(value(await t.hearth.api['downloads.clear']({}))).toEqual({ removed: 1 });
    expect(value(await t.hearth.api['downloads.list']({})).downloads).toEqual([]);
  });
});
