import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { err } from '../contract/index.ts';
import { openDatabase } from './db.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { HearthStartError, startHearth } from './hearth.ts';
import { physicalCoreCount } from './models.ts';
import { updateSettings } from './settings.ts';
import { ChatStore } from './chat-store.ts';
import { acceptAll, memoryLogger, tempDir, useTestHearths, value } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

describe('startup', () => {
  it('marks replies left streaming by a dead host as incomplete', async () => {
    const dataDir = tempDir();
    const db = openDatabase(path.join(dataDir, 'hearth.db'));
    const store = new ChatStore(db);
    const chat = store.createChat({ systemPrompt: '', sampling: { temperature: 0, topP: 1, maxTokens: 8 } });
    const turn = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q' } });
    store.saveContent(turn.assistantMessage.id, 'half a rep');
    db.close();

    const t = await start({ dataDir, loadModel: false });
    const detail = value(await t.hearth.api['chats.get']({ chatId: chat.id }));
    expect(detail.messages.map((m) => [m.content, m.status])).toEqual([
      ['q', 'complete'],
      ['half a rep', 'incomplete'],
    ]);
  });

  it('reports an unusable data directory clearly', async () => {
    const parent = tempDir();
    const file = path.join(parent, 'a-file');
    writeFileSync(file, '');
    const engine = new FakeEngine();
    const attempt = startHearth(
      { dataDir: path.join(file, 'data'), host: 'browser', version: '0' },
      { spawnEngine: engine.spawn, inspect: async () => err('INTERNAL', 'unused'), log: memoryLogger() },
    );
    await expect(attempt).rejects.toBeInstanceOf(HearthStartError);
    await expect(attempt).rejects.toThrow(/cannot write to its data directory .*a-file.*ENOTDIR/);
    expect(engine.ports).toHaveLength(0);
    rmSync(parent, { recursive: true, force: true });
  });

  it('loads the remembered model at start; a failed load leaves the app running', async () => {
    const dataDir = tempDir();
    const modelFile = path.join(dataDir, 'remembered.gguf');
    writeFileSync(modelFile, 'x');
    const db = openDatabase(path.join(dataDir, 'hearth.db'));
    updateSettings(db, { lastModelPath: modelFile });
    db.close();
    const t = await start({ dataDir, loadModel: false });
    await t.waitFor((e) => e.type === 'model.status' && e.payload.status === 'ready');
    expect(t.engine.callsOf('loadModel')[0]?.path).toBe(modelFile);

    const engine = new FakeEngine();
    engine.behaviour.loadError = { code: 'MODEL_UNSUPPORTED', message: 'unknown architecture' };
    const broken = await start({ engine, modelPath: t.modelFile, loadModel: false });
    const state = value(await broken.hearth.api['app.state']({}));
    expect(state.model).toMatchObject({ status: 'error', error: { code: 'MODEL_UNSUPPORTED' } });
    expect(state.engine.state).toBe('running');
    expect(value(await broken.hearth.api['chats.list']({})).chats).toEqual([]);
  });

  it('app.state tells the UI what it needs', async () => {
    const t = await start({ loadModel: false });
    const state = value(await t.hearth.api['app.state']({}));
    expect(state).toMatchObject({
      version: '0.0.0-test',
      host: 'browser',
      dataDir: t.dataDir,
      modelsDir: path.join(t.dataDir, 'models'),
      engine: { state: 'running', restarts: 0 },
      model: { status: 'idle' },
      settings: { threads: 0, contextSize: 0, theme: 'system', defaultSystemPrompt: 'You are a helpful assistant.' },
    });
  });
});

describe('models', () => {
  it('loads with progress and the thread count; remembers the model', async () => {
    const t = await start({ threads: 1, loadModel: false });
    const info = value(await t.hearth.api['models.load']({ path: t.modelFile }));
    expect(info.path).toBe(t.modelFile);
    const statuses = t.events.filter((e) => e.type === 'model.status').map((e) => e.payload);
    expect(statuses[0]).toMatchObject({ status: 'loading', progress: 0, model: { name: 'fake', contextSize: 0, trainedContextLength: 8192 } });
    expect(statuses).toContainEqual(expect.objectContaining({ status: 'loading', progress: 0.5 }));
    expect(statuses.at(-1)).toMatchObject({ status: 'ready', model: { path: t.modelFile } });
    expect(t.engine.callsOf('loadModel')[0]).toEqual({
      path: t.modelFile,
      contextSize: 0,
      threads: 1,
      slots: 1,
      profile: { kType: 'f16', vType: 'f16', flashAttention: true, contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' },
    });
    expect(value(await t.hearth.api['app.state']({})).settings.lastModelPath).toBe(t.modelFile);

    expect(value(await t.hearth.api['models.unload']({}))).toEqual({ status: 'idle' });
    expect(value(await t.hearth.api['app.state']({})).settings.lastModelPath).toBeNull();
  });

  it('rejects missing files, folders and invalid GGUFs before the engine sees them', async () => {
    const t = await start({
      loadModel: false,
      wiring: { inspect: async (file) => (file.endsWith('bad.gguf') ? err('MODEL_INVALID', 'truncated GGUF') : acceptAll(file)) },
    });
    const missing = await t.hearth.api['models.load']({ path: path.join(t.dataDir, 'nope.gguf') });
    expect(missing.ok || missing.error.code).toBe('NOT_FOUND');
    const folder = await t.hearth.api['models.load']({ path: t.dataDir });
    expect(folder.ok || folder.error).toMatchObject({ code: 'MODEL_INVALID', message: expect.stringContaining('folder') });
    const bad = path.join(t.dataDir, 'bad.gguf');
    writeFileSync(bad, 'GGU');
    const invalid = await t.hearth.api['models.load']({ path: bad });
    expect(invalid.ok || invalid.error.code).toBe('MODEL_INVALID');
    expect(t.engine.callsOf('loadModel')).toEqual([]);
    expect(value(await t.hearth.api['app.state']({})).model).toMatchObject({ status: 'error', error: { code: 'MODEL_INVALID' } });

    // With a model loaded, a bad pick leaves it loaded.
    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    await t.hearth.api['models.load']({ path: bad });
    expect(value(await t.hearth.api['app.state']({})).model.status).toBe('ready');
  });

  it('pick is not supported here', async () => {
    const t = await start({ loadModel: false });
    const pick = await t.hearth.api['models.pick']({});
    expect(pick.ok || pick.error.code).toBe('NOT_SUPPORTED');
  });
});

describe('cores', () => {
  it('estimates physical cores within the available CPUs', () => {
    const cores = physicalCoreCount();
    expect(cores).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(cores)).toBe(true);
  });
});

describe('settings and metrics', () => {
  it('settings.update merges and persists', async () => {
    const t = await start({ loadModel: false });
    const updated = value(await t.hearth.api['settings.update']({ theme: 'dark', defaultSampling: { temperature: 0.2 } }));
    expect(updated).toMatchObject({ theme: 'dark', defaultSampling: { temperature: 0.2, topP: 0.9, maxTokens: 0 } });
    const chat = value(await t.hearth.api['chats.create']({}));
    expect(chat.sampling.temperature).toBe(0.2);
    expect(chat.systemPrompt).toBe('You are a helpful assistant.');
    const invalid = await t.hearth.call('settings.update', { threads: -1 });
    expect(invalid.ok || invalid.error.code).toBe('INVALID_INPUT');
  });

  it('metrics text has every series, with counters from replies and gauges from the engine', async () => {
    const idle = await start({ loadModel: false });
    const empty = await idle.hearth.metricsText();
    expect(empty).toContain('hearth_kv_cells_used 0');
    expect(empty).toContain('hearth_kv_cells_capacity 0');

    const t = await start();
    const chat = value(await t.hearth.api['chats.create']({ systemPrompt: '' }));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'count me' }));
    await t.waitFor((e) => e.type === 'message.updated' && e.payload.message.id === sent.assistantMessage.id && e.payload.message.status === 'complete');
    const text = await t.hearth.metricsText();
    for (const series of [
      'hearth_prompt_tokens_total{source="prefilled"} 8',
      'hearth_prompt_tokens_total{source="reused"} 3',
      'hearth_prompt_tokens_total{source="restored"} 0',
      'hearth_generated_tokens_total 4',
      'hearth_ttft_seconds_bucket{le="0.05"} 1',
      'hearth_ttft_seconds_bucket{le="+Inf"} 1',
      'hearth_ttft_seconds_sum 0.04',
      'hearth_ttft_seconds_count 1',
      'hearth_kv_cells_used 17',
      'hearth_kv_cells_capacity 4096',
      'hearth_engine_restarts_total 0',
      '# TYPE hearth_ttft_seconds histogram',
      '# TYPE hearth_prompt_tokens_total counter',
    ]) {
      expect(text).toContain(series);
    }
    expect(text.endsWith('\n')).toBe(true);
  });
});
