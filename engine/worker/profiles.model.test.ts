/**
 * Model profiles on real inference, through real engine processes: the crash guard
 * (a quantized-K chat longer than its context keeps answering and the process survives, whatever
 * policy it is given), the overflow policies, every K/V pair either working (its greedy
 * continuation matches its own save/restore) or refused by validation, and the readout of a chat
 * whose stored KV has another fingerprint.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kvCacheTypes, type KvCacheType, type ModelProfile } from '../contract/index.ts';
import type { GenerateInput, GenerateOutput, PromptMessage, ResolvedProfile } from '../protocol.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { seededText } from '../../test/support/text.ts';

const CONTEXT = 256;
let modelPath: string;
let dir: string;
let nextId = 0;

const profileOf = (patch: Partial<ModelProfile>): ModelProfile => ({
  kType: 'f16',
  vType: 'f16',
  flashAttention: 'on',
  contextSize: CONTEXT,
  gpuLayers: 'auto',
  slots: 1,
  overflowPolicy: 'refuse',
  ...patch,
});

/** Validates with the engine's checkProfile and loads with what it resolved. */
async function loadChecked(engine: EngineClient, patch: Partial<ModelProfile>) {
  const checked = await engine.must('checkProfile', { path: modelPath, profile: profileOf(patch) });
  expect(checked.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const resolved = checked.resolved!;
  const info = await engine.must('loadModel', { path: modelPath, contextSize: resolved.contextSize, threads: 1, slots: resolved.slots, profile: resolved });
  return { info, resolved };
}

/** Loads with a profile the host would never send (validation skipped), to test the guard alone. */
function loadForced(engine: EngineClient, profile: ResolvedProfile) {
  return engine.must('loadModel', { path: modelPath, contextSize: profile.contextSize, threads: 1, slots: profile.slots, profile });
}

function turn(chatId: string, messages: readonly PromptMessage[], maxTokens = 24, branchId?: string): GenerateInput {
  return { requestId: `p${++nextId}`, chatId, messages, sampling: { temperature: 0, topP: 1, maxTokens }, ...(branchId ? { branchId } : {}) };
}

/** A chat of `turns` turns, each user message `words` long, answered with `maxTokens` tokens. */
async function longChat(engine: EngineClient, chatId: string, turns: number, options: { words?: number; maxTokens?: number } = {}) {
  const messages: PromptMessage[] = [{ role: 'system', text: 'You are brief.' }];
  const results: Awaited<ReturnType<EngineClient['call']>>[] = [];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: 'user', text: seededText(100 + i, options.words ?? 40) });
    const result = await engine.call('generate', turn(chatId, messages, options.maxTokens ?? 24));
    results.push(result);
    messages.push({ role: 'assistant', text: result.ok ? (result.value as GenerateOutput).text : '' });
  }
  return results as Awaited<ReturnType<EngineClient['call']>>[] & { ok: boolean }[];
}

async function alive(engine: EngineClient): Promise<void> {
  const exited = await Promise.race([engine.exited, new Promise((resolve) => setTimeout(() => resolve(null), 50))]);
  expect(exited).toBeNull();
  expect((await engine.call('metrics', {})).ok).toBe(true);
}

beforeAll(async () => {
  modelPath = await testModelPath();
  dir = await mkdtemp(join(tmpdir(), 'hearth-profiles-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the crash guard, in a real engine process', () => {
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await startEngine();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('keeps a q8_0-K chat longer than its context answering with "rebuild", and says what was left out', async () => {
    const { info } = await loadChecked(engine, { kType: 'q8_0', vType: 'q8_0', overflowPolicy: 'rebuild' });
    expect(info).toMatchObject({ contextSize: CONTEXT, kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true, gpuLayers: 0 });
    const results = await longChat(engine, 'rebuild', 8);
    for (const result of results) expect(result.ok && (result.value as GenerateOutput).stats.tokensGenerated).toBeGreaterThan(0);
    const last = results.at(-1)!;
    if (!last.ok) throw new Error(last.error.message);
    const stats = (last.value as GenerateOutput).stats;
    expect(stats.fallbackReason).toMatch(/outgrew the context \(256 tokens\), so its oldest \d+ messages were left out \(the system prompt kept\)/);
    expect(stats.tokensReused + stats.tokensPrefilled).toBeLessThanOrEqual(CONTEXT);
    await alive(engine);
  });

  it('refuses to shift a q8_0 K cache even when told to stream, and survives', async () => {
    await loadForced(engine, { kType: 'q8_0', vType: 'q8_0', flashAttention: true, contextSize: CONTEXT, gpuLayers: 'auto', slots: 1, overflowPolicy: 'streaming' });
    // A prompt longer than the context, and a reply that would need the context to shift.
    const result = await engine.call('generate', turn('forced', [{ role: 'user', text: seededText(7, 400) }], 300));
    expect(!result.ok && result.error).toMatchObject({ code: 'CONTEXT_OVERFLOW', message: expect.stringMatching(/Refused to erase tokens \d+–\d+ from the middle of a Q8_0 K cache/) });
    await alive(engine);
    // The chat still answers (the window was read fresh; the reply stops at the context end now).
    const short = await engine.call('generate', turn('forced', [{ role: 'user', text: 'Hi' }], 20));
    expect(short.ok).toBe(true);
  });

  it('survives node-llama-cpp\'s chat-level shift forced on a q4_0 K cache', async () => {
    await loadForced(engine, { kType: 'q4_0', vType: 'q4_0', flashAttention: true, contextSize: CONTEXT, gpuLayers: 'auto', slots: 1, overflowPolicy: 'shift' });
    const results = await longChat(engine, 'forced-shift', 6, { maxTokens: 60 });
    // Its chat-level shift only erases tails; a sequence-level shift would be refused.
    for (const result of results) expect(result.ok || result.error.code === 'CONTEXT_OVERFLOW').toBe(true);
    await alive(engine);
  });

  it('validation refuses "streaming" and "shift" with a quantized K', async () => {
    for (const overflowPolicy of ['streaming', 'shift'] as const) {
      const checked = await engine.must('checkProfile', { path: modelPath, profile: profileOf({ kType: 'q8_0', vType: 'f16', overflowPolicy }) });
      expect(checked.resolved).toBeNull();
      expect(checked.issues).toContainEqual(expect.objectContaining({ field: 'overflowPolicy', severity: 'error' }));
    }
  });
});

describe('overflow policies with an F16 K cache', () => {
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await startEngine();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('"streaming" keeps 4 sinks and a recent window, continuing it without reading the history again', async () => {
    await loadChecked(engine, { overflowPolicy: 'streaming' });
    const results = await longChat(engine, 'stream', 7);
    for (const result of results) expect(result.ok).toBe(true);
    const outputs = results.map((r) => (r.ok ? (r.value as GenerateOutput) : null)!);
    const rolled = outputs.filter((o) => o.stats.fallbackReason?.includes('StreamingLLM'));
    expect(rolled.length).toBeGreaterThan(0);
    // Once rolling, a turn reads only its new message: the window stays in memory.
    const later = rolled.at(-1)!;
    expect(later.stats.fallbackReason).toMatch(/keeps its first 4 tokens and the most recent ones, so \d+ older tokens are no longer seen/);
    expect(later.stats.tokensReused).toBeGreaterThan(later.stats.tokensPrefilled);
    // A reply may run past the end of the context.
    const long = await engine.must('generate', turn('stream-long', [{ role: 'user', text: 'Tell a long story.' }], 400));
    expect(long.stats.tokensGenerated).toBe(400);
    expect(long.stopReason).toBe('maxTokens');
    expect(engine.deltas(`p${nextId}`).join('')).toBe(long.text);
    await alive(engine);
  });

  it('"shift" lets node-llama-cpp shift the chat, and says so', async () => {
    await loadChecked(engine, { overflowPolicy: 'shift' });
    const results = await longChat(engine, 'shift', 7);
    for (const result of results) expect(result.ok).toBe(true);
    const notes = results.map((r) => (r.ok ? (r.value as GenerateOutput).stats.fallbackReason : undefined));
    expect(notes.some((n) => n?.includes("node-llama-cpp's context shift"))).toBe(true);
    const long = await engine.must('generate', turn('shift-long', [{ role: 'user', text: 'Tell a long story.' }], 400));
    expect(long.stats.tokensGenerated).toBe(400);
    await alive(engine);
  });

  it('"refuse" still refuses', async () => {
    await loadChecked(engine, { overflowPolicy: 'refuse' });
    const result = await engine.call('generate', turn('refuse', [{ role: 'user', text: seededText(3, 400) }]));
    expect(!result.ok && result.error.code).toBe('CONTEXT_OVERFLOW');
    const fits = await engine.must('generate', turn('refuse', [{ role: 'user', text: 'Hi' }], 10_000));
    expect(fits.stopReason).toBe('maxTokens');
    expect(fits.stats.tokensPrefilled + fits.stats.tokensGenerated).toBeLessThan(CONTEXT);
  });
});

describe('every K/V pair', () => {
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await startEngine();
    await engine.must('init', { logLevel: 'warn', kvDir: join(dir, 'pairs-kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 32 });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('with flash attention on, continues greedily the same after its own save and restore, or is refused by validation', async () => {
    const prompt: PromptMessage[] = [{ role: 'user', text: seededText(11, 90) }];
    const refused: string[] = [];
    for (const kType of kvCacheTypes) {
      for (const vType of kvCacheTypes) {
        const pair = `${kType}/${vType}`;
        const checked = await engine.must('checkProfile', { path: modelPath, profile: profileOf({ kType, vType, flashAttention: 'on' }) });
        if (checked.resolved === null) {
          expect(checked.issues.some((i) => i.severity === 'error'), pair).toBe(true);
          refused.push(pair);
          continue;
        }
        const { info } = await loadChecked(engine, { kType, vType, flashAttention: 'on' });
        expect(info.kvType, pair).toEqual({ k: kType, v: vType });
        const chatId = `pair-${kType}-${vType}`;
        const first = await engine.must('generate', turn(chatId, prompt, 16, 'b1'));
        // Reloading the model empties the slot: the same prompt now restores from the store.
        await engine.must('unloadModel', {});
        await loadChecked(engine, { kType, vType, flashAttention: 'on' });
        const again = await engine.must('generate', turn(chatId, prompt, 16, 'b1'));
        expect(again.stats.tokensRestored, pair).toBeGreaterThan(0);
        expect(again.text, pair).toBe(first.text);
      }
    }
    // The generated model's head size (32) suits every block size: nothing is refused here.
    expect(refused).toEqual([]);
  });

  it('with flash attention off, loads a quantized K with an F16 V and refuses a quantized V by validation', async () => {
    for (const type of kvCacheTypes.filter((t): t is Exclude<KvCacheType, 'f16'> => t !== 'f16')) {
      const vQuant = await engine.must('checkProfile', { path: modelPath, profile: profileOf({ kType: 'f16', vType: type, flashAttention: 'off' }) });
      expect(vQuant.resolved).toBeNull();
      expect(vQuant.issues).toContainEqual(expect.objectContaining({ field: 'vType', severity: 'error' }));
      const { info } = await loadChecked(engine, { kType: type, vType: 'f16', flashAttention: 'off' });
      expect(info).toMatchObject({ kvType: { k: type, v: 'f16' }, flashAttention: false });
      expect((await engine.must('generate', turn(`off-${type}`, [{ role: 'user', text: 'Hi' }], 4))).stats.tokensGenerated).toBe(4);
    }
  });

  it('a context llama.cpp refuses is a clear error, not a crash', async () => {
    const result = await engine.call('loadModel', {
      path: modelPath,
      contextSize: CONTEXT,
      threads: 1,
      profile: { kType: 'f16', vType: 'q8_0', flashAttention: false, contextSize: CONTEXT, gpuLayers: 'auto', slots: 1, overflowPolicy: 'refuse' },
    });
    expect(!result.ok && result.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/could not create a context with K f16, V q8_0 and flash attention off/) });
    await alive(engine);
  });
});

describe('a chat whose stored KV has another fingerprint', () => {
  it('is read again on its next turn, and the readout says why', async () => {
    const engine = await startEngine();
    try {
      await engine.must('init', { logLevel: 'warn', kvDir: join(dir, 'fingerprint-kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 32 });
      await loadChecked(engine, { kType: 'f16', vType: 'f16' });
      const messages: PromptMessage[] = [{ role: 'user', text: seededText(21, 40) }];
      const first = await engine.must('generate', turn('fp', messages, 16, 'b1'));
      messages.push({ role: 'assistant', text: first.text }, { role: 'user', text: 'And then?' });

      await loadChecked(engine, { kType: 'q8_0', vType: 'q8_0' });
      const second = await engine.must('generate', turn('fp', messages, 16, 'b2'));
      expect(second.stats.tokensRestored).toBe(0);
      expect(second.stats.fallbackReason).toMatch(
        /the stored KV \(\d+ tokens\) was saved with other cache settings \(then K\/V f16\/f16, flash attention on, 1 slot; now K\/V q8_0\/q8_0, flash attention on, 1 slot\); re-read/,
      );
      // Saved again under the new settings: the next turn restores, without the note.
      messages.push({ role: 'assistant', text: second.text }, { role: 'user', text: 'Go on.' });
      await engine.must('unloadModel', {});
      await loadChecked(engine, { kType: 'q8_0', vType: 'q8_0' });
      const third = await engine.must('generate', turn('fp', messages, 16, 'b3'));
      expect(third.stats.tokensRestored).toBeGreaterThan(0);
      expect(third.stats.fallbackReason ?? '').not.toMatch(/other cache settings/);

      // Another model's weights (same shapes): no cache setting explains it, and the readout says so.
      const other = await testModelPath('otherWeights');
      const checked = await engine.must('checkProfile', { path: other, profile: profileOf({ kType: 'q8_0', vType: 'q8_0' }) });
      await engine.must('loadModel', { path: other, contextSize: CONTEXT, threads: 1, profile: checked.resolved! });
      const started = performance.now();
      const fourth = await engine.must('generate', turn('fp', messages, 4, 'b4'));
      expect(fourth.stats.tokensRestored).toBe(0);
      expect(fourth.stats.fallbackReason).toMatch(/the stored KV \(\d+ tokens\) was saved for another model file or llama\.cpp build; re-read/);
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      await engine.dispose();
    }
  });
});
