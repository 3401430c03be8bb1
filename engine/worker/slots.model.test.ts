/**
 * Slots on real inference in an engine process: chats keep their KV in their
 * own slot; a swap goes through the disk store (a dirty slot is saved first) and the greedy reply
 * after it is identical to the uninterrupted one; a restore into another slot index is exact;
 * the quit flush saves a dirty slot.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateInput, GenerateOutput, PromptMessage } from '../protocol.ts';
import { openKvStore } from '../kv/store.ts';
import { startEngine, type EngineClient, slotsSettled } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { seededText } from '../../test/support/text.ts';

const CONTEXT = 2048;
const greedy = { temperature: 0, topP: 1, maxTokens: 40 };
let n = 0;
const request = (chatId: string, branchId: string | null, messages: readonly PromptMessage[]): GenerateInput => ({
  requestId: `s${++n}`,
  chatId,
  ...(branchId !== null ? { branchId } : {}),
  messages,
  sampling: greedy,
});
const opening = (seed: number, question: string): PromptMessage[] => [
  { role: 'system', text: `${seededText(seed, 150)}. Answer briefly.` },
  { role: 'user', text: question },
];
const next = (history: readonly PromptMessage[], reply: GenerateOutput, user: string): PromptMessage[] => [
  ...history,
  { role: 'assistant', text: reply.text },
  { role: 'user', text: user },
];

/** The prompt's length in tokens, from its readout. */
const promptTokens = (reply: GenerateOutput): number => reply.stats.tokensReused + reply.stats.tokensRestored + reply.stats.tokensPrefilled;

const chatA = opening(81, 'Tell me about the sea.');
const chatB = opening(82, 'Tell me about the sky.');
const secondA = 'And the boats?';
const secondB = 'And the clouds?';

let modelPath: string;
let dir: string;
/** The uninterrupted conversations (one chat at a time, no store). */
let referenceA1: GenerateOutput;
let referenceA2: GenerateOutput;
let referenceB2: GenerateOutput;
let engine: EngineClient | null = null;

beforeAll(async () => {
  modelPath = await testModelPath();
  dir = await mkdtemp(join(tmpdir(), 'hearth-slots-'));
});

afterAll(async () => {
  await engine?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('slots in an engine process', () => {
  it('without a store: a chat that lost its slot re-reads, says why, and replies the same', async () => {
    const plain = await startEngine();
    try {
      await plain.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1, slots: 1 });
      referenceA1 = await plain.must('generate', request('A', 'a1', chatA));
      referenceA2 = await plain.must('generate', request('A', 'a2', next(chatA, referenceA1, secondA)));
      expect(referenceA2.stats.cacheSource).toBe('memory');
      const b1 = await plain.must('generate', request('B', 'b1', chatB));
      referenceB2 = await plain.must('generate', request('B', 'b2', next(chatB, b1, secondB)));

      // A comes back to the one slot, which B holds: nothing to restore from.
      const again = await plain.must('generate', request('A', 'a2x', next(chatA, referenceA1, secondA)));
      expect(again.text).toBe(referenceA2.text);
      expect(again.stats.tokensRestored).toBe(0);
      expect(again.stats.cacheSource).not.toBe('disk');
      expect(again.stats.tokensPrefilled).toBeGreaterThan(promptTokens(referenceA1));
      // All of its prompt but the shared prefix (and the last token, always evaluated) was in memory before.
      expect(again.stats.fallbackReason).toBe(
        `this chat's slot went to another chat and KV persistence is off, so ${again.stats.tokensPrefilled - 1} tokens of its history were read again`,
      );
      // A's first turn had no slot to lose: no reason.
      expect(referenceA1.stats.fallbackReason).toBeUndefined();
    } finally {
      await plain.dispose();
    }
  });

  it('slots = 2: two chats take turns and each is served from its own slot in memory', async () => {
    engine = await startEngine();
    await engine.must('init', { logLevel: 'warn', kvDir: join(dir, 'kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 64 });
    const info = await engine.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1, slots: 2 });
    // Per slot, as Settings says.
    expect(info.contextSize).toBe(CONTEXT);
    const a1 = await engine.must('generate', request('A', 'a1', chatA));
    expect(a1.text).toBe(referenceA1.text);
    const b1 = await engine.must('generate', request('B', 'b1', chatB));
    const b2 = await engine.must('generate', request('B', 'b2', next(chatB, b1, secondB)));
    const a2 = await engine.must('generate', request('A', 'a2', next(chatA, a1, secondA)));
    for (const [second, first] of [[a2, a1], [b2, b1]] as const) {
      expect(second.stats).toMatchObject({ cacheSource: 'memory', tokensRestored: 0 });
      expect(second.stats.tokensReused).toBeGreaterThanOrEqual(promptTokens(first) - 1);
      expect(second.stats.fallbackReason).toBeUndefined();
    }
    expect(a2.text).toBe(referenceA2.text);
    expect(b2.text).toBe(referenceB2.text);

    await slotsSettled(engine);
    const metrics = await engine.must('metrics', {});
    expect(metrics.slots).toHaveLength(2);
    expect(metrics.slots.map((s) => [s.index, s.chatId, s.state, s.cellsCapacity])).toEqual([
      [0, 'A', 'idle', CONTEXT],
      [1, 'B', 'idle', CONTEXT],
    ]);
    // Each slot holds its chat's prompt and all but the last generated token.
    expect(metrics.slots[0]!.cellsUsed).toBe(promptTokens(a2) + a2.stats.tokensGenerated - 1);
    expect(metrics.slots[1]!.cellsUsed).toBe(promptTokens(b2) + b2.stats.tokensGenerated - 1);
    expect(metrics.kvCellsUsed).toBe(metrics.slots[0]!.cellsUsed + metrics.slots[1]!.cellsUsed);
    expect(metrics.kvCellsCapacity).toBe(2 * CONTEXT);
  });

  it('restores chunks saved from slot 0 into slot 1 exactly', async () => {
    const e = engine!;
    // A copy of A's second turn under another chat: it takes B's slot (1, the least recently
    // used) and finds A's turns in the store, saved from slot 0.
    const copy = await e.must('generate', request('A-copy', 'c1', next(chatA, referenceA1, secondA)));
    const metrics = await e.must('metrics', {});
    expect(metrics.slots.map((s) => s.chatId)).toEqual(['A', 'A-copy']);
    expect(copy.stats.cacheSource).toBe('disk');
    expect(copy.stats.tokensRestored).toBe(promptTokens(copy) - 1);
    expect(copy.stats.fallbackReason).toBeUndefined();
    expect(copy.text).toBe(referenceA2.text);
  });

  it('slots = 1 with a store: a chat swapped out restores from disk and replies as if uninterrupted', async () => {
    const e = engine!;
    // One slot is another stream count, so another fingerprint: the store starts empty for it.
    await e.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1, slots: 1 });
    const a1 = await e.must('generate', request('A', 'a1', chatA));
    const b1 = await e.must('generate', request('B', 'b1', chatB));
    expect(b1.stats.cacheSource).not.toBe('disk');
    const a2 = await e.must('generate', request('A', 'a2', next(chatA, a1, secondA)));
    expect(a2.stats.cacheSource).toBe('disk');
    expect(a2.stats.tokensRestored).toBeGreaterThanOrEqual(promptTokens(a1) - 1);
    expect(a2.stats.tokensReused).toBe(0);
    expect(a2.stats.fallbackReason).toBeUndefined();
    expect(a2.text).toBe(referenceA2.text);
    const b2 = await e.must('generate', request('B', 'b2', next(chatB, b1, secondB)));
    expect(b2.stats.cacheSource).toBe('disk');
    expect(b2.text).toBe(referenceB2.text);
    const metrics = await e.must('metrics', {});
    expect(metrics.slots.map((s) => [s.index, s.chatId])).toEqual([[0, 'B']]);
  });

  /** Makes the store's chunk writes fail (ENOTDIR), as a broken disk would; returns the repair. */
  async function breakChunkWrites(): Promise<() => Promise<void>> {
    const chunks = join(dir, 'kv', 'chunks');
    await rename(chunks, `${chunks}-away`);
    await writeFile(chunks, 'not a directory');
    return async () => {
      await rm(chunks);
      await rename(`${chunks}-away`, chunks);
    };
  }

  const chatD = opening(91, 'Tell me about the hills.');
  // Long enough to complete new chunks (64 tokens each): a turn that only grows the tail writes
  // no chunk file.
  const secondD = `And the rivers? ${seededText(92, 60)}`;

  it('a swap saves a dirty slot (its turn\'s save failed) before another chat takes it', async () => {
    const e = engine!;
    const d1 = await e.must('generate', request('D', 'd1', chatD));
    await slotsSettled(e);
    const repair = await breakChunkWrites();
    let d2: GenerateOutput;
    try {
      d2 = await e.must('generate', request('D', 'd2', next(chatD, d1, secondD)));
      await slotsSettled(e);
    } finally {
      await repair();
    }
    expect(d2.stats.cacheSource).toBe('memory');
    expect(e.events.some((ev) => ev.type === 'log' && ev.level === 'warn' && ev.message.startsWith('KV save of D/d2 failed'))).toBe(true);
    expect(e.events.some((ev) => ev.type === 'kvPersistence' && ev.paused)).toBe(true);
    const pausedAt = e.events.length;

    // E takes D's slot: D's unsaved second turn is saved first, and persistence resumes.
    await e.must('generate', request('E', 'e1', opening(93, 'Tell me about the rain.')));
    expect(e.events.slice(pausedAt).some((ev) => ev.type === 'kvPersistence' && !ev.paused)).toBe(true);

    // Without that save the store would only hold D's first turn (about promptTokens(d1) + 40).
    const d3 = await e.must('generate', request('D', 'd3', next(next(chatD, d1, secondD), d2, 'And the lakes?')));
    expect(d3.stats.cacheSource).toBe('disk');
    expect(d3.stats.tokensRestored).toBeGreaterThanOrEqual(promptTokens(d2) - 1);
    expect(promptTokens(d2) - 1).toBeGreaterThan(promptTokens(d1) + d1.stats.tokensGenerated);
  });

  it('the quit flush saves a dirty slot within its time bound', async () => {
    const e = engine!;
    const f1 = await e.must('generate', request('F', 'f1', opening(95, 'Tell me about the wind.')));
    await slotsSettled(e);
    const repair = await breakChunkWrites();
    const history = next(opening(95, 'Tell me about the wind.'), f1, `And the trees? ${seededText(96, 60)}`);
    let f2: GenerateOutput;
    try {
      f2 = await e.must('generate', request('F', 'f2', history));
      await slotsSettled(e);
    } finally {
      await repair();
    }
    expect(e.events.some((ev) => ev.type === 'log' && ev.level === 'warn' && ev.message.startsWith('KV save of F/f2 failed'))).toBe(true);
    // SIGTERM is how the host asks the engine to quit (main.ts: flush, then exit).
    e.port.kill('SIGTERM');
    expect(await e.exited).toEqual({ code: 0, signal: null });
    engine = null;
    const store = await openKvStore({ root: join(dir, 'kv'), budgetBytes: 1 << 30, chunkTokens: 64 });
    if (!store.ok) throw new Error(store.error.message);
    try {
      // Before the quit only F's first turn was stored (the second turn's save failed).
      const ids = store.value.manifestIds('F/');
      expect(ids.ok && ids.value).toContain('F/f2');
      const manifest = store.value.getManifest('F/f2');
      expect(manifest.ok && manifest.value.totalTokens).toBe(promptTokens(f2) + f2.stats.tokensGenerated - 1);
    } finally {
      await store.value.close();
    }
  });
});
