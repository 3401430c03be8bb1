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
  overflowPolicy: 'stop',
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

  for (const kType of ['q8_0', 'q4_0'] as const) {
    it(`keeps a ${kType}-K chat longer than its context answering with "drop-oldest", and says what was left out of view`, async () => {
      const { info } = await loadChecked(engine, { kType, vType: kType, overflowPolicy: 'drop-oldest' });
      expect(info).toMatchObject({ contextSize: CONTEXT, kvType: { k: kType, v: kType }, flashAttention: true, gpuLayers: 0 });
      const results = await longChat(engine, `drop-${kType}`, 8);
      for (const result of results) expect(result.ok && (result.value as GenerateOutput).stats.tokensGenerated).toBeGreaterThan(0);
      const stats = results.map((r) => (r.ok ? (r.value as GenerateOutput) : null)!.stats);
      const moved = stats.filter((s) => s.view!.droppedNow > 0);
      expect(moved.length).toBeGreaterThan(0);
      expect(moved[0]!.view).toMatchObject({ policy: 'drop-oldest', contextSize: CONTEXT, droppedMessages: moved[0]!.view!.droppedNow });
      for (const s of stats) expect(s.tokensReused + s.tokensRestored + s.tokensPrefilled).toBeLessThanOrEqual(CONTEXT);
      expect(stats.at(-1)!.view!.droppedMessages).toBeGreaterThan(0);
      await alive(engine);
    });
  }

  it('refuses to stream a q8_0 K cache even when the profile says so, before anything is erased, and survives', async () => {
    await loadForced(engine, { kType: 'q8_0', vType: 'q8_0', flashAttention: true, contextSize: CONTEXT, gpuLayers: 'auto', slots: 1, overflowPolicy: 'streaming' });
    // A prompt longer than the context, and a reply that would need the context to shift.
    const result = await engine.call('generate', turn('forced', [{ role: 'user', text: seededText(7, 400) }], 300));
    expect(!result.ok && result.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/StreamingLLM erases the middle .* Q8_0 K cache/) });
    await alive(engine);
    // The chat still answers under a policy that never moves cells.
    const short = await engine.call('generate', { ...turn('forced', [{ role: 'user', text: seededText(7, 400) }, { role: 'assistant', text: 'Yes.' }, { role: 'user', text: 'Hi' }], 20), overflowPolicy: 'drop-oldest' });
    expect(short.ok).toBe(true);
  });

  it('validation refuses "streaming" with a quantized K, and so does a chat that asks for it', async () => {
    const checked = await engine.must('checkProfile', { path: modelPath, profile: profileOf({ kType: 'q8_0', vType: 'f16', overflowPolicy: 'streaming' }) });
    expect(checked.resolved).toBeNull();
    expect(checked.issues).toContainEqual(expect.objectContaining({ field: 'overflowPolicy', severity: 'error' }));
    await loadChecked(engine, { kType: 'q8_0', vType: 'q8_0', overflowPolicy: 'drop-oldest' });
    const refused = await engine.call('generate', { ...turn('chat-streaming', [{ role: 'user', text: 'Hi' }]), overflowPolicy: 'streaming' });
    expect(!refused.ok && refused.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/StreamingLLM .* Q8_0 K cache/) });
    await alive(engine);
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
    expect(later.stats.view).toMatchObject({ policy: 'streaming', contextSize: CONTEXT, droppedMessages: 0 });
    expect(later.stats.view!.tokens).toBeLessThanOrEqual(CONTEXT);
    // A reply may run past the end of the context.
    const long = await engine.must('generate', turn('stream-long', [{ role: 'user', text: 'Tell a long story.' }], 400));
    expect(long.stats.tokensGenerated).toBe(400);
    expect(long.stopReason).toBe('maxTokens');
    expect(engine.deltas(`p${nextId}`).join('')).toBe(long.text);
    await alive(engine);
  });

  it('"stop" stops and asks, and a long reply stops at the end of the context', async () => {
    await loadChecked(engine, { overflowPolicy: 'stop' });
    const result = await engine.call('generate', turn('stop', [{ role: 'user', text: seededText(3, 400) }]));
    expect(!result.ok && result.error).toMatchObject({
      code: 'CONTEXT_OVERFLOW',
      message: expect.stringMatching(/outgrown the context/),
      hint: 'Continue without the oldest messages, raise the context size, or start a new chat.',
    });
    // A reply is never refused for its max tokens: it is cut where the context ends, and says so.
    const fits = await engine.must('generate', turn('stop', [{ role: 'user', text: 'Hi' }], 10_000));
    expect(fits.stopReason).toBe('context');
    expect(fits.stats.tokensPrefilled + fits.stats.tokensGenerated).toBeLessThan(CONTEXT);
    // The chat's own policy wins over the model's.
    const dropped = await engine.call('generate', { ...turn('stop', [{ role: 'user', text: seededText(3, 400) }]), overflowPolicy: 'drop-oldest' });
    expect(!dropped.ok && dropped.error.message).toMatch(/The last message alone is too long/);
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
      profile: { kType: 'f16', vType: 'q8_0', flashAttention: false, contextSize: CONTEXT, gpuLayers: 'auto', slots: 1, overflowPolicy: 'stop' },
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
