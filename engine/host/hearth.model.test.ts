/**
 * The host side against a real engine process and the generated tiny model (threads: 1):
 * a chat end to end, a SIGKILL of the engine mid-reply, and a broken GGUF.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HearthEvent, Message } from '../contract/index.ts';
import { createHearth, type Hearth } from '../index.ts';
import { brokenModelPath, testModelPath } from '../../test/support/models.ts';
import { forkEngine } from '../spawn.ts';
import { tempDir } from '../../test/support/host-fixture.ts';

let hearth: Hearth;
let dataDir: string;
let modelPath: string;
const events: HearthEvent[] = [];

function value<T>(result: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

function waitFor(match: (event: HearthEvent) => boolean, from = 0, timeoutMs = 60_000): Promise<HearthEvent> {
  const seen = events.slice(from).find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error('timed out waiting for an event'));
    }, timeoutMs);
    const stop = hearth.onEvent((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      stop();
      resolve(event);
    });
  });
}

const finalOf = (id: string) => (e: HearthEvent) =>
  e.type === 'message.updated' && e.payload.message.id === id && e.payload.message.status !== 'streaming';

async function finalMessage(id: string, from = 0): Promise<Message> {
  const event = await waitFor(finalOf(id), from);
  return (event as Extract<HearthEvent, { type: 'message.updated' }>).payload.message;
}

beforeAll(async () => {
  modelPath = await testModelPath();
  dataDir = tempDir('hearth-model-test-');
  hearth = await createHearth({
    dataDir,
    host: 'browser',
    version: 'test',
    threads: 1,
    measureSpeed: false,
    modelPath,
    logLevel: 'warn',
    spawnEngine: () => forkEngine({ stdio: 'ignore' }),
  });
  hearth.onEvent((event) => events.push(event));
});

afterAll(async () => {
  await hearth?.dispose();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('Hearth with a real engine', () => {
  it('loads the model given at start and streams a complete reply', async () => {
    const state = value(await hearth.api['app.state']({}));
    expect(state.model).toMatchObject({ status: 'ready', model: { path: modelPath, architecture: 'llama' } });
    expect(state.model.model?.contextSize).toBeGreaterThan(0);

    const chat = value(await hearth.api['chats.create']({ systemPrompt: 'You are terse.' }));
    value(await hearth.api['chats.configure']({ chatId: chat.id, sampling: { temperature: 0, maxTokens: 24 } }));
    const from = events.length;
    const sent = value(await hearth.api['chats.send']({ chatId: chat.id, text: 'Hello there' }));
    const done = await finalMessage(sent.assistantMessage.id, from);
    expect(done.status).toBe('complete');
    expect(done.stats?.tokensGenerated).toBeGreaterThan(0);
    expect(done.stats?.tokensPrefilled).toBeGreaterThan(0);
    const deltas = events
      .slice(from)
      .filter((e): e is Extract<HearthEvent, { type: 'message.delta' }> => e.type === 'message.delta' && e.payload.messageId === done.id);
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.map((e) => e.payload.delta).join('')).toBe(done.content);

    const metrics = await hearth.metricsText();
    expect(metrics).toMatch(/hearth_generated_tokens_total [1-9]/);
    expect(metrics).toMatch(/hearth_kv_cells_capacity [1-9]/);
  });

  it('a SIGKILL of the engine mid-reply: incomplete with the partial text, restart, reload, next reply completes', async () => {
    const chat = value(await hearth.api['chats.create']({ systemPrompt: '' }));
    // A long greedy reply, so that the kill lands while it streams.
    value(await hearth.api['chats.configure']({ chatId: chat.id, sampling: { temperature: 0, maxTokens: 4000 } }));
    let interrupted: Message | undefined;
    let userText = '';
    for (let attempt = 0; attempt < 4 && !interrupted; attempt++) {
      await untilModelReady();
      const from = events.length;
      userText = `Tell me a long story, take ${attempt}`;
      const sent = value(await hearth.api['chats.send']({ chatId: chat.id, text: userText }));
      await waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, from);
      const pid = hearth.enginePid;
      expect(pid).not.toBeNull();
      process.kill(pid as number, 'SIGKILL');
      const done = await finalMessage(sent.assistantMessage.id, from);
      if (done.status === 'incomplete') interrupted = done;
    }
    expect(interrupted).toBeDefined();
    expect(interrupted?.content.length).toBeGreaterThan(0);
    expect(interrupted?.error?.code).toBe('ENGINE_CRASHED');
    expect(interrupted?.error?.message).toContain('SIGKILL');

    // The partial text is in the database too.
    const detail = value(await hearth.api['chats.get']({ chatId: chat.id }));
    expect(detail.messages.find((m) => m.id === interrupted?.id)).toMatchObject({ status: 'incomplete', content: interrupted?.content });

    await untilModelReady();
    const state = value(await hearth.api['app.state']({}));
    expect(state.engine.state).toBe('running');
    expect(state.engine.restarts).toBeGreaterThanOrEqual(1);
    expect(state.engine.lastCrash?.reason).toContain('SIGKILL');

    value(await hearth.api['chats.configure']({ chatId: chat.id, sampling: { maxTokens: 16 } }));
    const from = events.length;
    const next = value(await hearth.api['chats.send']({ chatId: chat.id, text: 'And now?' }));
    const nextDone = await finalMessage(next.assistantMessage.id, from);
    expect(nextDone.status).toBe('complete');
    // The interrupted reply stays in the conversation the model sees.
    const path = value(await hearth.api['chats.get']({ chatId: chat.id })).messages.map((m) => m.content);
    expect(path).toContain(userText);
  });

  it('a truncated GGUF is refused with MODEL_INVALID and the app keeps working', async () => {
    const broken = await brokenModelPath('truncated');
    const result = await hearth.api['models.load']({ path: broken });
    expect(result.ok || result.error.code).toBe('MODEL_INVALID');
    const state = value(await hearth.api['app.state']({}));
    expect(state.model.status).toBe('ready');
    expect(state.engine.state).toBe('running');
    const chat = value(await hearth.api['chats.create']({}));
    value(await hearth.api['chats.configure']({ chatId: chat.id, sampling: { maxTokens: 8 } }));
    const from = events.length;
    const sent = value(await hearth.api['chats.send']({ chatId: chat.id, text: 'Still there?' }));
    expect((await finalMessage(sent.assistantMessage.id, from)).status).toBe('complete');
  });
});

async function untilModelReady(timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    const state = value(await hearth.api['app.state']({}));
    if (state.model.status === 'ready' && state.engine.state === 'running') return;
    if (state.model.status === 'error') throw new Error(`model error: ${state.model.error?.message}`);
    if (Date.now() - started > timeoutMs) throw new Error('the model did not become ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}
