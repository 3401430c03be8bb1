/**
 * A model's stored KV through the engine process's handlers (cache-handlers.ts `modelKv`,
 * `forgetModel`), with two generated models of the same shape and other weights: each model's
 * conversations and bytes, forgetting one while the other stays readable, refused while the
 * model (or a copy of its file) is loaded, and nothing to say without a store.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateInput, PromptMessage } from '../protocol.ts';
import { startEngine, type EngineClient, slotsSettled } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { seededText } from '../../test/support/text.ts';

const CONTEXT = 2048;
const greedy = { temperature: 0, topP: 1, maxTokens: 16 };
let n = 0;
const request = (chatId: string, branchId: string, messages: readonly PromptMessage[]): GenerateInput => ({
  requestId: `m${++n}`,
  chatId,
  branchId,
  messages,
  sampling: greedy,
});
const system: PromptMessage = { role: 'system', text: `${seededText(61, 200)}. Answer briefly.` };
const ask = (text: string): PromptMessage[] => [system, { role: 'user', text }];


async function turn(engine: EngineClient, input: GenerateInput) {
  const reply = await engine.must('generate', input);
  await slotsSettled(engine);
  return reply;
}

const chatBytes = async (engine: EngineClient, chatId: string): Promise<number> =>
  (await engine.must('kvChats', { limit: 10 })).chats.find((c) => c.chatId === chatId)?.bytes ?? 0;

let defaultPath: string;
let otherPath: string;
let dir: string;
let engine: EngineClient | null = null;

beforeAll(async () => {
  defaultPath = await testModelPath('default');
  otherPath = await testModelPath('otherWeights');
  dir = await mkdtemp(join(tmpdir(), 'hearth-model-kv-'));
});

afterAll(async () => {
  await engine?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a model's stored KV in an engine process", () => {
  it('says nothing is stored for a model never loaded', async () => {
    engine = await startEngine();
    await engine.must('init', { logLevel: 'warn', kvDir: join(dir, 'kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 64 });
    expect(await engine.must('modelKv', { path: defaultPath })).toEqual({ conversations: 0, bytes: 0 });
    expect(await engine.must('forgetModel', { path: defaultPath })).toEqual({ bytesFreed: 0 });
    expect(await engine.call('modelKv', { path: '' })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await engine.callRaw('forgetModel', { path: 7 })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it("counts each model's conversations and bytes, and refuses to forget a loaded model's", async () => {
    const e = engine!;
    await e.must('loadModel', { path: defaultPath, contextSize: CONTEXT, threads: 1, slots: 1 });
    // Two branches of one chat: their shared history's chunks count once.
    await turn(e, request('A', 'a1', ask('Tell me about the sea.')));
    await turn(e, request('A', 'a2', ask('Tell me about the hills.')));
    const usageA = await e.must('modelKv', { path: defaultPath });
    expect(usageA.conversations).toBe(2);
    expect(usageA.bytes).toBeGreaterThan(0);
    expect(usageA.bytes).toBe(await chatBytes(e, 'A'));
    expect(usageA.bytes).toBe((await e.must('metrics', {})).kvStore!.storedBytes);
    expect(await e.call('forgetModel', { path: defaultPath })).toMatchObject({ ok: false, error: { code: 'BUSY' } });

    await e.must('loadModel', { path: otherPath, contextSize: CONTEXT, threads: 1, slots: 1 });
    await turn(e, request('B', 'b1', ask('Tell me about the sea.')));
    const usageB = await e.must('modelKv', { path: otherPath });
    expect(usageB).toEqual({ conversations: 1, bytes: await chatBytes(e, 'B') });
    expect(usageB.bytes).toBeGreaterThan(0);
    // The same history under another model's weights is that model's own KV.
    const now = await e.must('modelKv', { path: defaultPath });
    expect(now.conversations).toBe(2);
    expect(now.bytes + usageB.bytes).toBe((await e.must('metrics', {})).kvStore!.storedBytes);
    expect(await e.call('forgetModel', { path: otherPath })).toMatchObject({ ok: false, error: { code: 'BUSY' } });
  });

  it("forgets a model's KV; the other model's stays and restores", async () => {
    const e = engine!;
    const before = await e.must('modelKv', { path: defaultPath });
    const other = await e.must('modelKv', { path: otherPath });
    expect(await e.must('forgetModel', { path: defaultPath })).toEqual({ bytesFreed: before.bytes });
    expect(await e.must('modelKv', { path: defaultPath })).toEqual({ conversations: 0, bytes: 0 });
    expect(await e.must('modelKv', { path: otherPath })).toEqual(other);
    expect((await e.must('kvChats', { limit: 10 })).chats.map((c) => c.chatId)).toEqual(['B']);
    expect((await e.must('metrics', {})).kvStore).toMatchObject({ storedBytes: other.bytes, manifests: 1 });
    const forgets = e.events.flatMap((event) => (event.type === 'kvActivity' && event.activity.kind === 'forget' ? [event.activity] : []));
    expect(forgets).toHaveLength(1);
    expect(forgets[0]).toMatchObject({ bytes: before.bytes });
    expect(forgets[0]!.text).toMatch(/^forgot the cache of model default-[0-9a-f]+\.gguf: 2 branches, .+ freed$/);
    expect(await e.must('forgetModel', { path: defaultPath })).toEqual({ bytesFreed: 0 });

    expect(await e.must('kvVerify', { repair: false })).toMatchObject({ ok: true });
    // Loaded again, with nothing in memory: B's next turn restores what is stored of it.
    await e.must('unloadModel', {});
    await e.must('loadModel', { path: otherPath, contextSize: CONTEXT, threads: 1, slots: 1 });
    const again = await turn(e, request('B', 'b1', ask('Tell me about the sea.')));
    expect(again.stats.tokensRestored).toBeGreaterThan(0);
  });

  it("refuses while a copy of the model's file is loaded, and forgets once it is unloaded", async () => {
    const e = engine!;
    const copy = join(dir, 'copy.gguf');
    await copyFile(otherPath, copy);
    await e.must('loadModel', { path: copy, contextSize: CONTEXT, threads: 1, slots: 1 });
    // A first turn waits for the copy's profile (its hash) and proves it is in use.
    await turn(e, request('D', 'd1', ask('Tell me about the sea.')));
    expect(await e.call('forgetModel', { path: otherPath })).toMatchObject({ ok: false, error: { code: 'BUSY' } });

    await e.must('unloadModel', {});
    const usage = await e.must('modelKv', { path: otherPath });
    expect(usage.conversations).toBe(2); // B and D: the copy's KV is the same model's
    expect(await e.must('modelKv', { path: copy })).toEqual(usage);
    expect(await e.must('forgetModel', { path: otherPath })).toEqual({ bytesFreed: usage.bytes });
    expect((await e.must('metrics', {})).kvStore).toMatchObject({ storedBytes: 0, manifests: 0 });
  });

  it('without a store, nothing is stored and nothing is freed', async () => {
    const off = await startEngine();
    try {
      await off.must('init', { logLevel: 'warn', kvDir: null });
      expect(await off.must('modelKv', { path: defaultPath })).toEqual({ conversations: 0, bytes: 0 });
      expect(await off.must('forgetModel', { path: defaultPath })).toEqual({ bytesFreed: 0 });
    } finally {
      await off.dispose();
    }
  });
});
