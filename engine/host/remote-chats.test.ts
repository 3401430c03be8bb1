/**
 * Chats on a remote engine, through the host's calls: an OpenAI-compatible emulator stands in
 * for the server (the real llama-server runs in remote.model.test.ts and the end-to-end tests).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatEngineRef, HearthEvent, RemoteCacheSample } from '../contract/index.ts';
import { startOpenAiEmulator, type OpenAiEmulator } from '../../test/support/openai-emulator.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();
let emulator: OpenAiEmulator;

beforeEach(async () => {
  emulator = await startOpenAiEmulator();
  emulator.models = [{ id: 'big-model', max_model_len: 32768 }, { id: 'other-model' }];
});
afterEach(async () => {
  await emulator.close();
});

async function withEngine(t: TestHearth, apiKey?: string) {
  return value(await t.hearth.api['engines.add']({ name: 'GPU box', baseUrl: `${emulator.baseUrl}/v1/`, kind: 'vllm', ...(apiKey ? { apiKey } : {}) }));
}

async function reply(t: TestHearth, chatId: string, text: string) {
  const sent = value(await t.hearth.api['chats.send']({ chatId, text }));
  return (await t.waitFor(finished(sent.assistantMessage.id))).payload.message;
}

describe('remote engines', () => {
  it('adds an engine with a normalized address, checks it, and keeps its key out of every answer', async () => {
    const t = await start();
    emulator.apiKey = 'sk-secret';
    const engine = await withEngine(t, 'sk-secret');
    expect(engine).toMatchObject({ name: 'GPU box', baseUrl: emulator.baseUrl, kind: 'vllm', hasApiKey: true, status: { state: 'online', metrics: false } });
    expect(engine.status.models).toEqual([{ id: 'big-model', contextLength: 32768 }, { id: 'other-model' }]);
    expect(JSON.stringify(value(await t.hearth.api['engines.list']({})))).not.toContain('sk-secret');
    expect(t.events.some((e) => e.type === 'engines.changed' && e.payload.engines.length === 1)).toBe(true);

    // A wrong key: the engine stays, its status says why.
    const wrong = value(await t.hearth.api['engines.update']({ engineId: engine.id, apiKey: 'sk-wrong' }));
    expect(wrong.status).toMatchObject({ state: 'error', error: { code: 'AUTH_REQUIRED', message: 'GPU box refused the API key (HTTP 401).' } });
    // The models the last good check found are still named.
    expect(wrong.status.models.map((m) => m.id)).toEqual(['big-model', 'other-model']);
    const tested = value(await t.hearth.api['engines.test']({ baseUrl: emulator.baseUrl, kind: 'vllm', apiKey: 'sk-secret' }));
    expect(tested.state).toBe('online');
  });

  it('runs a chat there: streams, saves, and the readout has the server cache figures', async () => {
    const t = await start();
    const engine = await withEngine(t);
    emulator.chat = { kind: 'stream', pieces: ['Far', ' away'], usage: { prompt_tokens: 40, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 32 } } };
    const chat = value(await t.hearth.api['chats.create']({ systemPrompt: 'Be brief.', engine: { engineId: engine.id, model: 'big-model' } }));
    expect(chat.engine).toEqual({ engineId: engine.id, model: 'big-model' });
    const message = await reply(t, chat.id, 'Hello?');
    expect(message).toMatchObject({ status: 'complete', content: 'Far away' });
    expect(message.stats).toMatchObject({
      tokensReused: 32,
      tokensPrefilled: 8,
      tokensGenerated: 2,
      cacheSource: 'memory',
      engine: { id: engine.id, name: 'GPU box', model: 'big-model', kind: 'vllm' },
      server: { promptTokens: 40, cachedTokens: 32 },
    });
    expect(message.stats?.movedFrom).toBeUndefined();
    // The local engine was never asked.
    expect(t.engine.callsOf('generate')).toEqual([]);
    const sent = emulator.requests.find((r) => r.path === '/v1/chat/completions');
    expect(sent?.body).toMatchObject({ model: 'big-model', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello?' }] });
    // History, search and export are Hearth's own.
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.map((m) => m.content)).toEqual(['Hello?', 'Far away']);
    expect(value(await t.hearth.api['chats.export']({ chatId: chat.id, format: 'markdown' })).content).toContain('Far away');
  });

  it('moves a chat both ways, and the first reply after each move says where it came from', async () => {
    const t = await start();
    const engine = await withEngine(t);
    const chat = value(await t.hearth.api['chats.create']({ systemPrompt: '' }));
    const local = await reply(t, chat.id, 'One');
    expect(local.stats?.engine).toEqual({ id: 'local', name: 'This computer', model: path.basename(t.modelFile), kind: 'local' });

    const there: ChatEngineRef = { engineId: engine.id, model: 'big-model' };
    expect(value(await t.hearth.api['chats.move']({ chatId: chat.id, engine: there })).engine).toEqual(there);
    // Every window's header follows the move.
    const changed = t.events.filter((e): e is Extract<HearthEvent, { type: 'chats.changed' }> => e.type === 'chats.changed').at(-1);
    expect(changed?.payload.chat?.engine).toEqual(there);
    const remote = await reply(t, chat.id, 'Two');
    expect(remote.stats?.movedFrom).toBe(`This computer · ${path.basename(t.modelFile)}`);
    // The whole branch went to the server: its history was read again there.
    const sent = emulator.requests.filter((r) => r.path === '/v1/chat/completions').at(-1);
    expect((sent?.body as { messages: { content: string }[] }).messages.map((m) => m.content)).toEqual(['One', 'Hello, world!', 'Two']);
    expect((await reply(t, chat.id, 'Three')).stats?.movedFrom).toBeUndefined();

    value(await t.hearth.api['chats.move']({ chatId: chat.id, engine: null }));
    const back = await reply(t, chat.id, 'Four');
    expect(back.stats?.movedFrom).toBe('GPU box · big-model');
    expect(t.engine.callsOf('generate').at(-1)?.messages.map((m) => m.text)).toEqual(['One', 'Hello, world!', 'Two', 'Hello there', 'Three', 'Hello there', 'Four']);
  });

  it('refuses a model the engine does not serve, and a move while a reply streams', async () => {
    const t = await start();
    const engine = await withEngine(t);
    const chat = value(await t.hearth.api['chats.create']({}));
    const missing = await t.hearth.api['chats.move']({ chatId: chat.id, engine: { engineId: engine.id, model: 'nope' } });
    expect(missing).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', message: 'GPU box does not serve a model named nope.' } });
    emulator.chat = { kind: 'hang', pieces: ['…'] };
    value(await t.hearth.api['chats.move']({ chatId: chat.id, engine: { engineId: engine.id, model: 'big-model' } }));
    value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Hi' }));
    const busy = await t.hearth.api['chats.move']({ chatId: chat.id, engine: null });
    expect(busy).toMatchObject({ ok: false, error: { code: 'BUSY' } });
    value(await t.hearth.api['chats.stop']({ chatId: chat.id }));
  });

  it('stops a remote reply: the request is cancelled on the server and the text kept', async () => {
    const t = await start();
    const engine = await withEngine(t);
    emulator.chat = { kind: 'hang', pieces: ['Partial'] };
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'big-model' } }));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Go' }));
    await until(() => t.events.some((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id));
    expect(value(await t.hearth.api['chats.stop']({ chatId: chat.id })).stopped).toBe(true);
    const stopped = (await t.waitFor(finished(sent.assistantMessage.id))).payload.message;
    expect(stopped).toMatchObject({ status: 'stopped', content: 'Partial' });
    await until(() => emulator.clientClosed === 1);
  });

  it('passes a fast server\'s tokens on in batches that add up to the reply', async () => {
    const t = await start();
    const engine = await withEngine(t);
    const pieces = Array.from({ length: 400 }, (_, i) => `w${i} `);
    emulator.chat = { kind: 'stream', pieces };
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'big-model' } }));
    const message = await reply(t, chat.id, 'Go');
    const deltas = t.events.filter((e): e is Extract<HearthEvent, { type: 'message.delta' }> => e.type === 'message.delta' && e.payload.messageId === message.id);
    expect(deltas.map((e) => e.payload.delta).join('')).toBe(pieces.join(''));
    expect(message.content).toBe(pieces.join(''));
    // 400 events from the server, far fewer to the renderer.
    expect(deltas.length).toBeLessThan(100);
  });

  it('keeps a reply cut midway as incomplete, with why', async () => {
    const t = await start();
    const engine = await withEngine(t);
    emulator.chat = { kind: 'cut', pieces: ['Half a ', 'thought'] };
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'big-model' } }));
    const message = await reply(t, chat.id, 'Go');
    expect(message).toMatchObject({ status: 'incomplete', content: 'Half a thought', error: { code: 'NETWORK_ERROR' } });
    expect(message.error?.message).toMatch(/GPU box was cut before the reply finished/);
  });

  it('fails a reply before any text as an error, and saves the user message', async () => {
    const t = await start();
    const engine = await withEngine(t);
    emulator.chat = { kind: 'status', status: 404, body: JSON.stringify({ error: { message: 'The model `big-model` does not exist.' } }) };
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'big-model' } }));
    const message = await reply(t, chat.id, 'Still there?');
    expect(message).toMatchObject({ status: 'error', content: '', error: { code: 'NOT_FOUND' } });
    expect(message.error?.hint).toMatch(/move this chat/);
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages[0]).toMatchObject({ role: 'user', content: 'Still there?' });
  });

  it('refuses to continue a remote reply, and to send once its engine is removed', async () => {
    const t = await start();
    const engine = await withEngine(t);
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'big-model' } }));
    const message = await reply(t, chat.id, 'Hi');
    expect(await t.hearth.api['chats.continue']({ chatId: chat.id, messageId: message.id })).toMatchObject({ ok: false, error: { code: 'NOT_SUPPORTED' } });

    expect(value(await t.hearth.api['engines.remove']({ engineId: engine.id }))).toEqual({ removed: true, chats: 1 });
    const before = value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.length;
    const refused = await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Hello?' });
    expect(refused).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', message: 'The engine this chat runs on was removed.' } });
    // Nothing was saved for a send that could go nowhere; the history stays.
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.length).toBe(before);
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).chat.engine?.engineId).toBe(engine.id);
    // Moving it back home works.
    value(await t.hearth.api['chats.move']({ chatId: chat.id, engine: null }));
    expect((await reply(t, chat.id, 'Home')).status).toBe('complete');
  });

  it('keeps engines and the chats bound to them across a restart', async () => {
    const t = await start();
    const engine = await withEngine(t);
    const chat = value(await t.hearth.api['chats.create']({ engine: { engineId: engine.id, model: 'other-model' } }));
    await t.hearth.dispose();
    const again = await start({ dataDir: t.dataDir });
    const engines = value(await again.hearth.api['engines.list']({})).engines;
    expect(engines.map((e) => [e.id, e.name, e.status.models.length])).toEqual([[engine.id, 'GPU box', 2]]);
    expect(value(await again.hearth.api['chats.get']({ chatId: chat.id })).chat.engine).toEqual({ engineId: engine.id, model: 'other-model' });
  });
});

describe("the Cache view's figures for a remote engine", () => {
  const samples = (t: TestHearth): RemoteCacheSample[] =>
    t.events.filter((e): e is Extract<HearthEvent, { type: 'cache.remote' }> => e.type === 'cache.remote').map((e) => e.payload);

  it('reads its /metrics while watched, with the recent hit rate between readings', async () => {
    const t = await start();
    const vllm = readFileSync(path.join(import.meta.dirname, '../../test/fixtures/remote-metrics/vllm.txt'), 'utf8');
    emulator.metricsText = vllm;
    const engine = await withEngine(t);
    expect(engine.status.metrics).toBe(true);
    value(await t.hearth.api['cache.watch']({ engineId: engine.id }));
    await until(() => samples(t).length >= 1);
    expect(samples(t)[0]).toMatchObject({ engineId: engine.id, kvUsage: 0.25, prefixHitRate: 0.4, recentPrefixHitRate: null, requestsRunning: 5, requestsWaiting: 1 });
    // 1,000 more looked-up tokens on engine 0, 900 of them hits: the last second's rate is 0.9.
    emulator.metricsText = vllm.replace('prefix_cache_queries_total{engine="0",model_name="Qwen/Qwen3-8B"} 120000.0', 'prefix_cache_queries_total{engine="0",model_name="Qwen/Qwen3-8B"} 121000.0').replace('prefix_cache_hits_total{engine="0",model_name="Qwen/Qwen3-8B"} 45000.0', 'prefix_cache_hits_total{engine="0",model_name="Qwen/Qwen3-8B"} 45900.0');
    await until(() => samples(t).length >= 2, 4000);
    expect(samples(t)[1]?.recentPrefixHitRate).toBeCloseTo(0.9, 6);
  });

  it('says why there are no figures: nothing Hearth reads, or no /metrics at all', async () => {
    const t = await start();
    emulator.metricsText = '# TYPE go_goroutines gauge\ngo_goroutines 12\n';
    const engine = await withEngine(t);
    value(await t.hearth.api['cache.watch']({ engineId: engine.id }));
    await until(() => samples(t).length >= 1);
    expect(samples(t)[0]).toMatchObject({ kvUsage: null, requestsRunning: null, error: { code: 'NOT_SUPPORTED' } });
    emulator.metricsText = null;
    await until(() => samples(t).length >= 2, 4000);
    expect(samples(t)[1]).toMatchObject({ kvUsage: null, error: { code: 'NOT_FOUND', message: 'GPU box publishes no /metrics.' } });
    expect(await t.hearth.api['cache.watch']({ engineId: 'gone' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });
});
