/**
 * A chat that goes on past its context under the default policy (`drop-oldest`), in a real engine
 * process: which turns drop messages and by how much, the stable prefix the turns between drops
 * reuse, the view restored from disk after a restart, a reply cut by the end of the context and
 * continued, and an edit above the view's start.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';
import { seededText } from '../../test/support/text.ts';
import type { GenerateInput, GenerateOutput, PromptMessage } from '../protocol.ts';
import { DROP_TARGET } from './context-view.ts';

const CONTEXT = 512;
const SYSTEM: PromptMessage = { role: 'system', text: 'You are a patient assistant who answers briefly.' };

let modelPath: string;
let dir: string;
let nextId = 0;

function turn(messages: readonly PromptMessage[], options: { maxTokens?: number; chatId?: string } = {}): GenerateInput {
  const id = `t${++nextId}`;
  return { requestId: id, chatId: options.chatId ?? 'long', branchId: id, messages, sampling: { temperature: 0, topP: 1, maxTokens: options.maxTokens ?? 0 } };
}

async function start(kvDir: string): Promise<EngineClient> {
  const engine = await startEngine();
  await engine.must('init', { logLevel: 'warn', kvDir, kvBudgetBytes: 1 << 30, kvChunkTokens: 64 });
  // No profile: the defaults, as for a model the user never configured.
  await engine.must('loadModel', { path: modelPath, contextSize: CONTEXT, threads: 1 });
  return engine;
}

/**
 * Sends `turns` more user messages (seeded, 10 words: ~40 tokens with the template) to the chat
 * in `messages`, each answered with at most 24 tokens, appending each reply.
 */
async function chat(engine: EngineClient, messages: PromptMessage[], turns: number, seed: number): Promise<GenerateOutput[]> {
  const outputs: GenerateOutput[] = [];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: 'user', text: seededText(seed + i, 10) });
    const out = await engine.must('generate', turn(messages, { maxTokens: 24 }));
    outputs.push(out);
    messages.push({ role: 'assistant', text: out.text });
  }
  return outputs;
}

beforeAll(async () => {
  modelPath = await testModelPath();
  dir = await mkdtemp(join(tmpdir(), 'hearth-context-view-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('drop-oldest, the default, in a real engine process', () => {
  let engine: EngineClient;
  const messages: PromptMessage[] = [SYSTEM];
  let outputs: GenerateOutput[] = [];
  const kvDir = () => join(dir, 'kv');

  beforeAll(async () => {
    engine = await start(kvDir());
    outputs = await chat(engine, messages, 24, 100);
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('answers every turn, and its view never holds more than the context', () => {
    for (const out of outputs) {
      expect(out.stats.tokensGenerated).toBeGreaterThan(0);
      expect(out.stats.view).toMatchObject({ policy: 'drop-oldest', contextSize: CONTEXT });
      expect(out.stats.view!.tokens).toBeLessThanOrEqual(CONTEXT);
    }
  });

  it('sizes a reply from the context when max tokens is automatic', async () => {
    const out = await engine.must('generate', turn([SYSTEM, { role: 'user', text: 'Tell me a story.' }], { chatId: 'auto' }));
    // An eighth of the 512-token context.
    expect(out.stats.tokensGenerated).toBeLessThanOrEqual(64);
    if (out.stopReason !== 'eos') expect(out.stats.tokensGenerated).toBe(64);
  });

  it('drops whole turns in large steps, down to about half the context, and only when a turn no longer fits', () => {
    const views = outputs.map((o) => o.stats.view!);
    const moves = views.flatMap((v, i) => (v.droppedNow > 0 ? [i] : []));
    expect(moves.length).toBeGreaterThanOrEqual(2);
    // Fewer moves than turns after the first: most turns extend the view instead of moving it.
    expect(moves.length).toBeLessThan((outputs.length - moves[0]!) / 2);
    for (const i of moves) {
      // Messages are dropped by turns (a user message and its reply).
      expect(views[i]!.droppedNow % 2).toBe(0);
      expect(views[i]!.droppedMessages).toBe((views[i - 1]?.droppedMessages ?? 0) + views[i]!.droppedNow);
      // What the model sees after the move (the prompt, before the reply) is at most the target.
      const prompt = views[i]!.tokens - outputs[i]!.stats.tokensGenerated;
      expect(prompt).toBeLessThanOrEqual(CONTEXT * DROP_TARGET);
      // The moving turn re-read the kept messages (the readout says so from the view), which is
      // no cache failure.
      expect(outputs[i]!.stats.tokensPrefilled).toBeGreaterThan(prompt / 2);
      expect(outputs[i]!.stats.fallbackReason).toBeUndefined();
    }
    for (let i = 1; i < views.length; i++) expect(views[i]!.droppedMessages).toBeGreaterThanOrEqual(views[i - 1]!.droppedMessages);
  });

  it('between moves, a turn reuses the stable prefix and reads only its new message', () => {
    const views = outputs.map((o) => o.stats.view!);
    const steady = outputs.filter((o, i) => i > 0 && views[i]!.droppedNow === 0);
    expect(steady.length).toBeGreaterThan(outputs.length / 2);
    for (const out of steady) {
      expect(out.stats.cacheSource).toBe('memory');
      // A 10-word message (~21 tokens) and the template around it, plus the previous reply's
      // end as the template closes it; everything before that was in the slot.
      expect(out.stats.tokensPrefilled).toBeLessThan(80);
      expect(out.stats.tokensReused).toBeGreaterThan(out.stats.tokensPrefilled);
    }
  });

  it('after a restart, the next turn restores the same view from disk', async () => {
    const before = outputs.at(-1)!.stats.view!;
    // unloadModel waits for the last turn's save, as the host's shutdown does.
    await engine.must('unloadModel', {});
    await engine.dispose();
    engine = await start(kvDir());
    const [next] = await chat(engine, messages, 1, 500);
    expect(next!.stats.cacheSource).toBe('disk');
    expect(next!.stats.tokensRestored).toBeGreaterThan(CONTEXT / 8);
    // The view did not move for the restart (unless this very turn had to).
    if (next!.stats.view!.droppedNow === 0) expect(next!.stats.view!.droppedMessages).toBe(before.droppedMessages);
  });

  it('an edit of a message above the view starts a branch that works, with its own view', async () => {
    const dropped = outputs.at(-1)!.stats.view!.droppedMessages;
    expect(dropped).toBeGreaterThan(2);
    // The branch: everything before the second user message, which is outside the view now.
    const branch: PromptMessage[] = [...messages.slice(0, 3), { role: 'user', text: 'An edited question, asked again.' }];
    const edited = await engine.must('generate', turn(branch, { chatId: 'long' }));
    expect(edited.stats.tokensGenerated).toBeGreaterThan(0);
    expect(edited.stats.view).toMatchObject({ droppedMessages: 0, droppedNow: 0 });
    // And the main branch still continues from its own view.
    const again = await engine.must('generate', turn([...messages, { role: 'user', text: 'Back on the main branch.' }]));
    expect(again.stats.view!.droppedMessages).toBeGreaterThanOrEqual(dropped);
  });
});

describe('a reply cut by the end of the context', () => {
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await start(join(dir, 'kv-continue'));
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('stops with "context", and Continue writes on in the same reply under the same policy', async () => {
    const messages: PromptMessage[] = [SYSTEM, { role: 'user', text: seededText(7, 100) }];
    // A max tokens larger than the room left: never refused, cut where the context ends.
    const first = await engine.must('generate', turn(messages, { maxTokens: 4000 }));
    expect(first.stopReason).toBe('context');
    expect(first.stats.view!.tokens).toBeGreaterThan(CONTEXT - 8);
    // Continue: the reply so far ends the prompt, and the model writes on after it.
    const more = await engine.must('generate', turn([...messages, { role: 'assistant', text: first.text }], { maxTokens: 100 }));
    expect(more.stats.tokensGenerated).toBeGreaterThan(0);
    expect(more.text.length).toBeGreaterThan(0);
    expect(more.stats.view!.policy).toBe('drop-oldest');
    // The user message and the long reply do not both fit with room for more: the view kept the reply.
    expect(more.stats.view!.droppedMessages).toBe(1);
    expect(more.stats.view!.tokens).toBeLessThanOrEqual(CONTEXT);
  });
});
