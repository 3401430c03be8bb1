/**
 * Chats on a real remote engine: llama-server built from the llama.cpp source node-llama-cpp
 * ships (test/support/llama-server.ts), serving the generated test model, through the host's
 * calls. The emulator tests (remote-chats.test.ts) cover what a real server cannot be made to do
 * on demand; these check that Hearth and the real thing agree.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HearthEvent, RemoteCacheSample, Sampling } from '../contract/index.ts';
import { startLlamaServer, type LlamaServer } from '../../test/support/llama-server.ts';
import { testModelPath } from '../../test/support/models.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();
const servers: LlamaServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
});

/** `--ignore-eos` keeps the random test model writing until max_tokens, so a stop or a kill lands midway. */
async function server(extraArgs: string[] = [], apiKey?: string): Promise<LlamaServer> {
  const started = await startLlamaServer({ model: await testModelPath(), ctxSize: 4096, extraArgs: ['--ignore-eos', ...extraArgs], ...(apiKey ? { apiKey } : {}) });
  servers.push(started);
  return started;
}

async function remoteChat(t: TestHearth, llama: LlamaServer, sampling: Partial<Sampling> = {}) {
  const engine = value(await t.hearth.api['engines.add']({ name: 'Lab server', baseUrl: llama.baseUrl, kind: 'llama-server' }));
  expect(engine.status).toMatchObject({ state: 'online', metrics: true });
  const model = engine.status.models[0]!.id;
  const chat = value(await t.hearth.api['chats.create']({ systemPrompt: 'You are terse.', engine: { engineId: engine.id, model } }));
  value(await t.hearth.api['chats.configure']({ chatId: chat.id, sampling: { temperature: 0, maxTokens: 16, ...sampling } }));
  return { engine, model, chat };
}

/** A gauge or counter from the server's own /metrics. */
async function serverMetric(llama: LlamaServer, name: string): Promise<number> {
  const text = await (await fetch(`${llama.baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} is not in /metrics`);
  return Number(line.split(' ')[1]);
}

describe('a chat on llama-server', () => {
  it('lists its model, streams replies, and the readout has the cached tokens the server reports', async () => {
    const t = await start();
    const llama = await server();
    const { engine, model, chat } = await remoteChat(t, llama);
    expect(model).toContain(path.basename(await testModelPath(), '.gguf'));

    const first = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Tell me about the sea, the wind and the long grey shore.' }));
    const one = (await t.waitFor(finished(first.assistantMessage.id))).payload.message;
    expect(one.status).toBe('complete');
    expect(one.content.length).toBeGreaterThan(0);
    expect(one.stats).toMatchObject({ tokensGenerated: 16, stopReason: 'maxTokens', engine: { id: engine.id, name: 'Lab server', model, kind: 'llama-server' } });
    expect(one.stats?.server?.promptTokens).toBeGreaterThan(10);
    expect(t.events.filter((e) => e.type === 'message.delta' && e.payload.messageId === first.assistantMessage.id).length).toBeGreaterThan(1);

    // The second turn extends the first: the server finds the shared prefix in its cache and says so.
    const second = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'And the birds?' }));
    const two = (await t.waitFor(finished(second.assistantMessage.id))).payload.message;
    const cached = two.stats?.server?.cachedTokens ?? 0;
    expect(cached).toBeGreaterThan(0);
    expect(cached).toBeLessThan(two.stats!.server!.promptTokens);
    expect(two.stats?.tokensReused).toBe(cached);
    expect(two.stats?.cacheSource).toBe('memory');
  });

  it('stops a reply: the server stops generating too', async () => {
    const t = await start();
    const llama = await server();
    const { chat } = await remoteChat(t, llama, { maxTokens: 3000 });
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Write at length.' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id).length >= 3, 30_000);
    expect(await serverMetric(llama, 'llamacpp:requests_processing')).toBe(1);
    value(await t.hearth.api['chats.stop']({ chatId: chat.id }));
    const stopped = (await t.waitFor(finished(sent.assistantMessage.id))).payload.message;
    expect(stopped.status).toBe('stopped');
    expect(stopped.content.length).toBeGreaterThan(0);
    // llama-server notices the closed connection at its next token and frees the slot.
    await expect.poll(() => serverMetric(llama, 'llamacpp:requests_processing'), { timeout: 10_000 }).toBe(0);
  });

  it('keeps a reply whose server was killed midway, marked incomplete, and says the engine is unreachable after', async () => {
    const t = await start();
    const llama = await server();
    const { engine, chat } = await remoteChat(t, llama, { maxTokens: 3000 });
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Write at length.' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id).length >= 3, 30_000);
    llama.kill('SIGKILL');
    const cut = (await t.waitFor(finished(sent.assistantMessage.id))).payload.message;
    expect(cut.status).toBe('incomplete');
    expect(cut.content.length).toBeGreaterThan(0);
    expect(cut.error?.message).toMatch(/Lab server was cut before the reply finished/);
    const saved = value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.find((m) => m.id === sent.assistantMessage.id);
    expect(saved).toMatchObject({ status: 'incomplete', content: cut.content });

    await llama.exited;
    const checked = value(await t.hearth.api['engines.check']({ engineId: engine.id }));
    expect(checked.status.error?.message).toBe(`Could not reach Lab server at ${llama.baseUrl}: the connection was refused.`);
  });

  it("shows the server's figures in the Cache view", async () => {
    const t = await start();
    const llama = await server();
    const { engine, chat } = await remoteChat(t, llama);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Once upon a time there was a lighthouse keeper.' }));
    await t.waitFor(finished(sent.assistantMessage.id));
    const again = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'What did she keep?' }));
    await t.waitFor(finished(again.assistantMessage.id));
    value(await t.hearth.api['cache.watch']({ engineId: engine.id }));
    const samples = (): RemoteCacheSample[] => t.events.filter((e): e is Extract<HearthEvent, { type: 'cache.remote' }> => e.type === 'cache.remote').map((e) => e.payload);
    await until(() => samples().length >= 1, 5000);
    const sample = samples()[0]!;
    expect(sample.error).toBeUndefined();
    expect(sample).toMatchObject({ engineId: engine.id, requestsRunning: 0, requestsWaiting: 0 });
    // The second turn's cached prefix is in the server's counters.
    expect(sample.prefixHitRate).toBeGreaterThan(0);
    expect(sample.prefixHitRate).toBeLessThan(1);
  });

  it('needs the right API key', async () => {
    const t = await start();
    const llama = await server([], 'sk-lab');
    const refused = value(await t.hearth.api['engines.add']({ name: 'Locked', baseUrl: llama.baseUrl, kind: 'llama-server', apiKey: 'sk-wrong' }));
    expect(refused.status).toMatchObject({ state: 'error', error: { code: 'AUTH_REQUIRED', message: 'Locked refused the API key (HTTP 401).' } });
    const fixed = value(await t.hearth.api['engines.update']({ engineId: refused.id, apiKey: 'sk-lab' }));
    expect(fixed.status.state).toBe('online');
  });
});
