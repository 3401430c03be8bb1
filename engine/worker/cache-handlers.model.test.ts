/**
 * The Cache view's engine side on real inference in an engine process: metrics' slots,
 * memory, store and state transfer after a turn, also while a reply streams; the largest chats and one chat's
 * cache; "Forget cache" makes the next turn re-read with its reason; KV activity events.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateInput, KvActivity, PromptMessage } from '../protocol.ts';
import { startEngine, type EngineClient, slotsSettled } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { seededText } from '../../test/support/text.ts';
import { FORGOTTEN_REASON } from './turn-kv.ts';

const CONTEXT = 2048;
/** The default test model: 4 layers × 2 KV heads × head_dim 32, K and V in F16. */
const F16_BYTES_PER_CELL = 4 * 2 * (2 * 32 * 2);
const greedy = { temperature: 0, topP: 1, maxTokens: 24 };
let n = 0;
const request = (chatId: string, branchId: string, messages: readonly PromptMessage[], maxTokens = greedy.maxTokens): GenerateInput => ({
  requestId: `c${++n}`,
  chatId,
  branchId,
  messages,
  sampling: { ...greedy, maxTokens },
});
const chatA: PromptMessage[] = [
  { role: 'system', text: `${seededText(51, 200)}. Answer briefly.` },
  { role: 'user', text: 'Tell me about the sea.' },
];


const activities = (engine: EngineClient, kind: KvActivity['kind']): KvActivity[] =>
  engine.events.flatMap((event) => (event.type === 'kvActivity' && event.activity.kind === kind ? [event.activity] : []));

let modelPath: string;
let dir: string;
let engine: EngineClient | null = null;

beforeAll(async () => {
  modelPath = await testModelPath();
  dir = await mkdtemp(join(tmpdir(), 'hearth-cache-'));
});

afterAll(async () => {
  await engine?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the Cache view in an engine process', () => {
  it('metrics: without a model, no slots and no memory', async () => {
    engine = await startEngine();
    const init = await engine.must('init', { logLevel: 'warn', kvDir: join(dir, 'kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 64 });
    // No compression asked for: lossless, as it is (only `auto` is measured).
    expect(init.compression).toEqual({ setting: 'lossless', applied: 'lossless' });
    const metrics = await engine.must('metrics', {});
    expect(metrics.slots).toEqual([]);
    expect(metrics.memory).toBeUndefined();
    expect(metrics.stateTransfer).toBeUndefined();
    expect(metrics.kvStore).toMatchObject({ storedBytes: 0, rawBytes: 0, chunkCount: 0, manifests: 0, budgetBytes: 1 << 30 });
    expect(await engine.must('kvChats', { limit: 10 })).toEqual({ chats: [] });
  });

  it('metrics after a turn: the slot\'s cells, types and bytes, the memory, the store; a save event', async () => {
    const e = engine!;
    await e.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1, slots: 1 });
    const a1 = await e.must('generate', request('A', 'a1', chatA));
    await slotsSettled(e);
    const metrics = await e.must('metrics', {});
    const memory = metrics.memory!;
    expect(memory.kvBytesPerCell).toBe(F16_BYTES_PER_CELL);
    const [slot] = metrics.slots;
    expect(slot).toMatchObject({ index: 0, chatId: 'A', state: 'idle', kType: 'f16', vType: 'f16', cellsCapacity: CONTEXT });
    expect(slot!.cellsUsed).toBe(a1.stats.tokensPrefilled + a1.stats.tokensGenerated - 1);
    expect(slot!.bytes).toBe(slot!.cellsUsed * memory.kvBytesPerCell);
    expect(slot!.bytes).toBeGreaterThan(0);

    expect(memory.device.backend).toBe('cpu');
    expect(memory.gpuLayers).toBe(0);
    expect(memory.weights.ramBytes + memory.weights.vramBytes).toBeGreaterThan(0);
    // The context holds every slot's KV plus its compute buffers.
    const kvAllocated = memory.kvBytesPerCell * metrics.kvCellsCapacity;
    expect(memory.context.ramBytes + memory.context.vramBytes).toBeGreaterThanOrEqual(kvAllocated);

    const store = metrics.kvStore!;
    expect(store.manifests).toBe(1);
    expect(store.storedBytes).toBeGreaterThan(0);
    // The default encoding is lossless: F16 KV takes fewer bytes on disk than it holds.
    expect(store.rawBytes).toBeGreaterThan(0);
    expect(store.storedBytes).toBeLessThan(store.rawBytes);
    expect(store.budgetBytes).toBe(1 << 30);
    // How the loaded model's state moves, for Settings → Cache: a file path always says why.
    const transfer = metrics.stateTransfer!;
    expect(['memory', 'file']).toContain(transfer.mode);
    if (transfer.mode === 'file') expect(transfer.reason).toEqual(expect.any(String));
    else expect(transfer.reason).toBeUndefined();

    const saves = activities(e, 'save');
    expect(saves).toHaveLength(1);
    expect(saves[0]).toMatchObject({ kind: 'save', chatId: 'A', tokens: slot!.cellsUsed });
    expect(saves[0]!.bytes).toBeGreaterThan(0);
    expect(saves[0]!.text).toMatch(/^saved \d+ tokens \(\d+ new chunks?, [\d.]+ [KM]?i?B written\) in \d+ ms$/);
  });

  it('lists the chat with its stored KV, and says where a chat\'s cache is', async () => {
    const e = engine!;
    const { chats } = await e.must('kvChats', { limit: 10 });
    expect(chats).toHaveLength(1);
    expect(chats[0]).toMatchObject({ chatId: 'A' });
    expect(chats[0]!.bytes).toBeGreaterThan(0);
    const metrics = await e.must('metrics', {});
    expect(chats[0]!.bytes).toBeLessThanOrEqual(metrics.kvStore!.storedBytes);
    expect(await e.must('chatCache', { chatId: 'A' })).toEqual({
      slot: 0,
      tokensInMemory: metrics.slots[0]!.cellsUsed,
      tokensOnDisk: chats[0]!.tokens,
      bytesOnDisk: chats[0]!.bytes,
    });
    expect(await e.must('chatCache', { chatId: 'nobody' })).toEqual({ slot: null, tokensInMemory: 0, tokensOnDisk: 0, bytesOnDisk: 0 });
    expect((await e.call('kvChats', { limit: -1 })).ok).toBe(false);
  });

  it('answers metrics while a reply streams: the slot is generating and its cells rise', async () => {
    const e = engine!;
    const long = [...chatA, { role: 'assistant', text: 'The sea is wide.' }, { role: 'user', text: 'Go on, at length.' }] satisfies PromptMessage[];
    const reply = e.must('generate', request('A', 'a2', long, 1500));
    let done = false;
    void reply.then(() => (done = true), () => (done = true));
    const seen: number[] = [];
    while (!done) {
      const metrics = await e.must('metrics', {});
      if (metrics.slots[0]?.state === 'generating') seen.push(metrics.slots[0].cellsUsed);
    }
    await reply;
    await slotsSettled(e);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)!).toBeGreaterThan(seen[0]!);
  });

  it('"Forget cache": frees the chat\'s bytes, and its next identical-history turn reads it all again and says why', async () => {
    const e = engine!;
    const before = (await e.must('kvChats', { limit: 10 })).chats.find((c) => c.chatId === 'A')!;
    const { bytesFreed } = await e.must('forgetChat', { chatId: 'A', reread: true });
    // Nobody else shares its chunks here, so all of them go.
    expect(bytesFreed).toBe(before.bytes);
    const forgets = activities(e, 'forget');
    expect(forgets).toHaveLength(1);
    expect(forgets[0]).toMatchObject({ chatId: 'A', bytes: bytesFreed });
    expect(await e.must('kvChats', { limit: 10 })).toEqual({ chats: [] });
    expect(await e.must('chatCache', { chatId: 'A' })).toEqual({ slot: null, tokensInMemory: 0, tokensOnDisk: 0, bytesOnDisk: 0 });
    expect((await e.must('metrics', {})).kvStore).toMatchObject({ storedBytes: 0, manifests: 0 });

    // The slot still holds A's tokens, and the history is the same as before: nothing is reused.
    const again = await e.must('generate', request('A', 'a1', chatA));
    expect(again.stats).toMatchObject({ tokensReused: 0, tokensRestored: 0, cacheSource: 'none', fallbackReason: FORGOTTEN_REASON });
    expect(FORGOTTEN_REASON).toMatch(/cache was forgotten/);
    await slotsSettled(e);
    // Only that one turn: the next reuses what this one left in memory.
    const next = await e.must('generate', request('A', 'a1', chatA));
    expect(next.stats.tokensReused).toBeGreaterThan(0);
    expect(next.stats.fallbackReason).toBeUndefined();
    await slotsSettled(e);
  });

  it('deleting a chat (forget without reread) frees its bytes and reports it', async () => {
    const e = engine!;
    const before = (await e.must('kvChats', { limit: 10 })).chats.find((c) => c.chatId === 'A')!;
    expect(before.bytes).toBeGreaterThan(0);
    expect(await e.must('forgetChat', { chatId: 'A' })).toEqual({ bytesFreed: before.bytes });
    expect(activities(e, 'forget')).toHaveLength(2);
    // Nothing stored and nothing held: another forget frees nothing and logs nothing.
    expect(await e.must('forgetChat', { chatId: 'A' })).toEqual({ bytesFreed: 0 });
    expect(activities(e, 'forget')).toHaveLength(2);
  });

  it('reports a budget eviction', async () => {
    const tight = await startEngine();
    try {
      // A budget below one chunk: every save is evicted right away.
      await tight.must('init', { logLevel: 'warn', kvDir: join(dir, 'kv-tight'), kvBudgetBytes: 1000, kvChunkTokens: 64 });
      await tight.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1, slots: 1 });
      await tight.must('generate', request('T', 't1', chatA));
      await slotsSettled(tight);
      const evictions = activities(tight, 'evict');
      expect(evictions).toHaveLength(1);
      expect(evictions[0]).toMatchObject({ kind: 'evict', chatId: 'T' });
      expect(evictions[0]!.bytes).toBeGreaterThan(0);
      expect(evictions[0]!.text).toMatch(/^evicted \d+ chunks? \(.+\) to stay within the 1000 B budget: 1 chat removed$/);
      expect((await tight.must('metrics', {})).kvStore).toMatchObject({ storedBytes: 0, manifests: 0 });
    } finally {
      await tight.dispose();
    }
  });
});
