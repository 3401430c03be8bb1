import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import type { HearthEvent } from '../contract/index.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

async function newChat(t: TestHearth, systemPrompt = 'Be brief.') {
  return value(await t.hearth.api['chats.create']({ systemPrompt }));
}

describe('sending', () => {
  it('returns both messages at once, streams deltas, then completes with stats', async () => {
    const t = await start();
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Hi there' }));
    expect(sent.userMessage).toMatchObject({ role: 'user', content: 'Hi there', status: 'complete', parentId: null });
    expect(sent.assistantMessage).toMatchObject({ role: 'assistant', content: '', status: 'streaming', parentId: sent.userMessage.id });
    const done = await t.waitFor(finished(sent.assistantMessage.id));
    expect(done.payload.message).toMatchObject({ status: 'complete', content: 'Hello, world!', stats: { tokensGenerated: 4 } });

    // Event order: the chat and both new messages first, then deltas, then the final state.
    const mine = t.events.filter(
      (e) => e.type !== 'model.status' && e.type !== 'engine.status' && !e.type.startsWith('cache.') && !(e.type === 'chats.changed' && e.payload.chat?.title === 'New chat'),
    );
    expect(mine.map((e) => e.type)).toEqual(['chats.changed', 'message.updated', 'message.updated', ...Array(4).fill('message.delta'), 'message.updated']);
    const deltas = mine.filter((e): e is Extract<HearthEvent, { type: 'message.delta' }> => e.type === 'message.delta');
    expect(deltas.map((e) => e.payload.delta).join('')).toBe('Hello, world!');

    const detail = value(await t.hearth.api['chats.get']({ chatId: chat.id }));
    expect(detail.chat.title).toBe('Hi there');
    expect(detail.chat.activeLeafId).toBe(sent.assistantMessage.id);
    expect(detail.messages.map((m) => m.status)).toEqual(['complete', 'complete']);

    const [prompt] = t.engine.callsOf('generate');
    expect(prompt?.messages).toEqual([
      { role: 'system', text: 'Be brief.' },
      { role: 'user', text: 'Hi there' },
    ]);
    expect(prompt?.sampling).toEqual({ temperature: 0.7, topP: 0.9, maxTokens: 0 });
    // The reply's message id names the branch's KV manifest in the engine.
    expect(prompt?.branchId).toBe(sent.assistantMessage.id);
  });

  it('passes the disk KV settings to the engine at start, and none when persistence is off', async () => {
    const t = await start();
    const [init] = t.engine.callsOf('init');
    expect(init).toMatchObject({ kvDir: expect.stringMatching(/[/\\]kv$/), kvBudgetBytes: 10 * 1024 ** 3, kvChunkTokens: 256, kvCompression: 'auto' });
    const updated = value(await t.hearth.api['settings.update']({ kvPersistence: false, kvChunkTokens: 128 }));
    expect(updated).toMatchObject({ kvPersistence: false, kvChunkTokens: 128, kvBudgetBytes: 10 * 1024 ** 3 });
    expect(t.engine.callsOf('init').at(-1)).toEqual({ kvDir: null, kvCompression: 'auto', logLevel: 'info' });
  });

  it('keeps the codec the engine names at init, and warns once when it is the TypeScript fallback', async () => {
    const engine = new FakeEngine();
    engine.behaviour.codec = { kernels: 'fallback', reason: 'the native addon is not built (npm run build:native)' };
    const t = await start({ engine });
    expect(value(await t.hearth.api['kv.stats']({}))).toMatchObject({
      // `auto`, as the fake engine resolves it.
      compression: 'off',
      compressionChoice: { setting: 'auto', applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s' },
      codec: { kernels: 'fallback', reason: 'the native addon is not built (npm run build:native)' },
    });
    const warning = 'warn the KV codec runs its TypeScript fallback (same bytes, slower): the native addon is not built (npm run build:native)';
    expect(t.log.lines.filter((line) => line.includes('TypeScript fallback'))).toEqual([warning]);
    // A restart (here: a crash) answers init again: no second warning.
    t.engine.crash();
    await until(() => t.events.some((e) => e.type === 'engine.status' && e.payload.state === 'running' && e.payload.restarts === 1));
    expect(t.log.lines.filter((line) => line.includes('TypeScript fallback'))).toEqual([warning]);
  });

  it('the native codec: no warning', async () => {
    const t = await start();
    expect(value(await t.hearth.api['kv.stats']({})).codec).toEqual({ kernels: 'native' });
    expect(t.log.lines.some((line) => line.includes('fallback'))).toBe(false);
  });

  it('commits the user message durably before the engine sees generate', async () => {
    const t = await start();
    const chat = await newChat(t);
    let seenByOtherConnection: unknown[] = [];
    t.engine.onCall = (call) => {
      if (call.method !== 'generate') return;
      const other = new DatabaseSync(path.join(t.dataDir, 'hearth.db'), { readOnly: true });
      seenByOtherConnection = other.prepare('SELECT role, content, status FROM messages ORDER BY rowid').all().map((r) => ({ ...r }));
      other.close();
    };
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'durable?' }));
    await t.waitFor(finished(sent.assistantMessage.id));
    expect(seenByOtherConnection).toEqual([
      { role: 'user', content: 'durable?', status: 'complete' },
      { role: 'assistant', content: '', status: 'streaming' },
    ]);
  });

  it('flushes streamed text to SQLite while streaming', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 2;
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'stream' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta').length === 2);
    await new Promise((r) => setTimeout(r, 60)); // > flushIntervalMs (20)
    const other = new DatabaseSync(path.join(t.dataDir, 'hearth.db'), { readOnly: true });
    const row = other.prepare('SELECT content, status FROM messages WHERE id = ?').get(sent.assistantMessage.id);
    other.close();
    expect({ ...row }).toEqual({ content: 'Hello,', status: 'streaming' });
    t.engine.release();
    await t.waitFor(finished(sent.assistantMessage.id));
  });

  it('a crash mid-reply keeps the partial text as incomplete; the engine restarts, the model reloads, the next send works', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 2;
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'crash me' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta').length === 2);
    const mark = t.events.length;
    t.engine.crash('SIGKILL');
    const done = await t.waitFor(finished(sent.assistantMessage.id));
    expect(done.payload.message).toMatchObject({ status: 'incomplete', content: 'Hello,', error: { code: 'ENGINE_CRASHED' } });
    expect(done.payload.message.error?.message).toContain('SIGKILL');

    await until(() => t.events.slice(mark).some((e) => e.type === 'model.status' && e.payload.status === 'ready'));
    expect(value(await t.hearth.api['app.state']({})).model.status).toBe('ready');
    const after = t.events.slice(mark);
    expect(after.filter((e) => e.type === 'engine.status').map((e) => (e.payload as { state: string }).state)).toEqual(['restarting', 'running']);
    expect(after.filter((e) => e.type === 'model.status').map((e) => (e.payload as { status: string }).status)).toEqual(
      expect.arrayContaining(['loading', 'ready']),
    );
    expect(t.engine.callsOf('loadModel')).toHaveLength(2);

    t.engine.behaviour.pauseAfter = null;
    const next = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'again' }));
    const nextDone = await t.waitFor(finished(next.assistantMessage.id));
    expect(nextDone.payload.message.status).toBe('complete');
    // The prompt of the next reply includes the partial text.
    expect(t.engine.callsOf('generate').at(-1)?.messages.map((m) => m.text)).toEqual(['Be brief.', 'crash me', 'Hello,', 'again']);
    const metrics = await t.hearth.metricsText();
    expect(metrics).toContain('hearth_engine_restarts_total 1');
  });

  it('refuses before saving: unknown chat (NOT_FOUND), no model (MODEL_NOT_LOADED), a second send (BUSY)', async () => {
    const t = await start({ loadModel: false });
    const missing = await t.hearth.call('chats.send', { chatId: 'no-such-chat', text: 'x' });
    expect(missing.ok || missing.error.code).toBe('NOT_FOUND');
    const chat = await newChat(t);
    const noModel = await t.hearth.api['chats.send']({ chatId: chat.id, text: 'x' });
    expect(noModel.ok || noModel.error.code).toBe('MODEL_NOT_LOADED');
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages).toEqual([]);

    value(await t.hearth.api['models.load']({ path: t.modelFile }));
    t.engine.behaviour.pauseAfter = 1;
    const first = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'one' }));
    const second = await t.hearth.api['chats.send']({ chatId: chat.id, text: 'two' });
    expect(second.ok || second.error.code).toBe('BUSY');
    const regen = await t.hearth.api['chats.regenerate']({ chatId: chat.id, messageId: first.assistantMessage.id });
    expect(regen.ok || regen.error.code).toBe('BUSY');
    // Another chat is not busy: its reply queues in the engine and shows as streaming.
    const other = await newChat(t);
    const queued = value(await t.hearth.api['chats.send']({ chatId: other.id, text: 'other' }));
    expect(queued.assistantMessage.status).toBe('streaming');
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages).toHaveLength(2);
    t.engine.behaviour.pauseAfter = null;
    t.engine.release();
    await t.waitFor(finished(first.assistantMessage.id));
    await t.waitFor(finished(queued.assistantMessage.id));
  });

  it('validates through call(): empty message, unknown call, bad id', async () => {
    const t = await start();
    const chat = await newChat(t);
    const empty = await t.hearth.call('chats.send', { chatId: chat.id, text: '   ' });
    expect(empty.ok || empty.error.code).toBe('INVALID_INPUT');
    const unknown = await t.hearth.call('chats.explode', {});
    expect(unknown.ok || unknown.error.code).toBe('NOT_FOUND');
    const badId = await t.hearth.call('chats.get', { chatId: '../etc' });
    expect(badId.ok || badId.error.code).toBe('INVALID_INPUT');
    const notFound = await t.hearth.call('chats.get', { chatId: 'abc' });
    expect(notFound.ok || notFound.error.code).toBe('NOT_FOUND');
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages).toEqual([]);
  });

  it('stop keeps the text so far as stopped; errors before any text are "error"', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 2;
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'stop me' }));
    await until(() => t.events.filter((e) => e.type === 'message.delta').length === 2);
    expect(value(await t.hearth.api['chats.stop']({ chatId: chat.id }))).toEqual({ stopped: true });
    const stopped = await t.waitFor(finished(sent.assistantMessage.id));
    expect(stopped.payload.message).toMatchObject({ status: 'stopped', content: 'Hello,' });
    expect(value(await t.hearth.api['chats.stop']({ chatId: chat.id }))).toEqual({ stopped: false });

    t.engine.behaviour.pauseAfter = null;
    t.engine.behaviour.tokens = [];
    t.engine.behaviour.generateError = { code: 'CONTEXT_OVERFLOW', message: 'The prompt does not fit.' };
    const failed = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'too long' }));
    const failedDone = await t.waitFor(finished(failed.assistantMessage.id));
    expect(failedDone.payload.message).toMatchObject({ status: 'error', content: '', error: { code: 'CONTEXT_OVERFLOW' } });
    // The failed reply is left out of the next prompt.
    t.engine.behaviour.generateError = null;
    t.engine.behaviour.tokens = ['ok'];
    const next = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'shorter' }));
    await t.waitFor(finished(next.assistantMessage.id));
    expect(t.engine.callsOf('generate').at(-1)?.messages.map((m) => m.text)).toEqual(['Be brief.', 'stop me', 'Hello,', 'too long', 'shorter']);
  });

  it('regenerate and edit make branches; switchBranch shows them', async () => {
    const t = await start();
    const chat = await newChat(t, '');
    const s1 = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'q1' }));
    await t.waitFor(finished(s1.assistantMessage.id));
    t.engine.behaviour.tokens = ['second'];
    const r = value(await t.hearth.api['chats.regenerate']({ chatId: chat.id, messageId: s1.assistantMessage.id }));
    expect(r.assistantMessage.parentId).toBe(s1.userMessage.id);
    await t.waitFor(finished(r.assistantMessage.id));
    expect(t.engine.callsOf('generate').at(-1)?.messages).toEqual([{ role: 'user', text: 'q1' }]);

    const e = value(await t.hearth.api['chats.edit']({ chatId: chat.id, messageId: s1.userMessage.id, text: 'q1 edited' }));
    expect(e.userMessage.parentId).toBeNull();
    await t.waitFor(finished(e.assistantMessage.id));
    expect(value(await t.hearth.api['chats.get']({ chatId: chat.id })).chat.activeLeafId).toBe(e.assistantMessage.id);

    const back = value(await t.hearth.api['chats.switchBranch']({ chatId: chat.id, messageId: s1.userMessage.id }));
    expect(back.activeLeafId).toBe(r.assistantMessage.id);
    const wrongRole = await t.hearth.api['chats.edit']({ chatId: chat.id, messageId: s1.assistantMessage.id, text: 'x' });
    expect(wrongRole.ok || wrongRole.error.code).toBe('INVALID_INPUT');
    const foreign = await t.hearth.api['chats.switchBranch']({ chatId: chat.id, messageId: 'nope' });
    expect(foreign.ok || foreign.error.code).toBe('NOT_FOUND');
  });

  it('delete stops a streaming reply and removes the chat', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 1;
    const chat = await newChat(t);
    value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'bye' }));
    expect(value(await t.hearth.api['chats.delete']({ chatId: chat.id }))).toEqual({ deleted: true });
    expect(t.engine.callsOf('abort')).toHaveLength(1);
    expect(value(await t.hearth.api['chats.list']({})).chats).toEqual([]);
    expect(t.events.some((e) => e.type === 'chats.changed' && e.payload.chat === null)).toBe(true);
    expect(value(await t.hearth.api['chats.delete']({ chatId: chat.id }))).toEqual({ deleted: false });
    // The engine is told to forget the chat's stored KV, once.
    await expect.poll(() => t.engine.callsOf('forgetChat')).toEqual([{ chatId: chat.id }]);
  });

  it('dispose stops replies (saved as stopped), the engine, and the database', async () => {
    const t = await start();
    t.engine.behaviour.pauseAfter = 1;
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'closing' }));
    await until(() => t.events.some((e) => e.type === 'message.delta'));
    await t.hearth.dispose();
    const other = new DatabaseSync(path.join(t.dataDir, 'hearth.db'), { readOnly: true });
    const row = other.prepare('SELECT content, status FROM messages WHERE id = ?').get(sent.assistantMessage.id);
    other.close();
    expect({ ...row }).toEqual({ content: 'Hello', status: 'stopped' });
    expect(t.engine.ports.every((p) => p.dead)).toBe(true);
    const late = await t.hearth.call('chats.list', {});
    expect(late.ok || late.error.code).toBe('ENGINE_UNAVAILABLE');
  });

  it('a disposed Hearth leaves no listener subscribed to the engine or to its events', async () => {
    let listeners = (): number => -1;
    const t = await start({ wiring: { probe: (count) => (listeners = count) } });
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'and then close' }));
    await t.waitFor(finished(sent.assistantMessage.id));
    expect(listeners()).toBeGreaterThan(0);
    await t.hearth.dispose();
    expect(listeners()).toBe(0);
  });

  it('dispose marks a reply the engine does not stop in time as incomplete', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    engine.behaviour.pauseAfter = 1;
    const chat = await newChat(t);
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'stuck' }));
    await until(() => t.events.some((e) => e.type === 'message.delta'));
    // An engine stuck in native code: the abort never wakes the generation.
    const port = engine.current;
    if (port) port.wakeAll = () => undefined;
    await t.hearth.dispose();
    const other = new DatabaseSync(path.join(t.dataDir, 'hearth.db'), { readOnly: true });
    const row = other.prepare('SELECT content, status FROM messages WHERE id = ?').get(sent.assistantMessage.id);
    other.close();
    expect({ ...row }).toEqual({ content: 'Hello', status: 'incomplete' });
  });
});
