/**
 * What API requests add to a turn, through a real engine process on the generated tiny model
 * (`threads: 1`, a disk KV store with small chunks): stop texts, seeds, JSON output, function
 * calling, raw completions, countTokens, the chat-before-API queue, and the cache-miss diagnosis.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateInput, GenerateOutput, PromptMessage } from '../protocol.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { testModelPath } from '../../test/support/models.ts';

const greedy = { temperature: 0, topP: 1, maxTokens: 24 };
let nextId = 0;
const request = (chatId: string, messages: readonly PromptMessage[], extra: Partial<GenerateInput> = {}): GenerateInput => ({
  requestId: `r${++nextId}`,
  chatId,
  messages,
  sampling: greedy,
  ...extra,
});
const ask = (text: string): PromptMessage[] => [
  { role: 'system', text: 'You are a helpful assistant.' },
  { role: 'user', text },
];
const promptLength = (stats: GenerateOutput['stats']) => stats.tokensReused + stats.tokensRestored + stats.tokensPrefilled;

/** turn.ts's and raw-turn.ts's warnings that node-llama-cpp evaluated another prompt than the one counted. */
const mismatches = (engine: EngineClient): string[] =>
  engine.events.flatMap((event) => (event.type === 'log' && /evaluated tokens where/.test(event.message) ? [event.message] : []));

describe('API turns in an engine process', () => {
  let engine: EngineClient;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-api-turns-'));
    engine = await startEngine({ init: { kvDir: join(dir, 'kv'), kvBudgetBytes: 1 << 30, kvChunkTokens: 32 } });
    await engine.must('loadModel', { path: await testModelPath(), contextSize: 4096, threads: 1 });
  });

  afterAll(async () => {
    await engine?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ends the reply just before a stop text, which it leaves out', async () => {
    const messages = ask('Tell me about the sea.');
    const full = await engine.must('generate', request('stop', messages, { sampling: { ...greedy, maxTokens: 30 } }));
    // A stop text from the greedy reply's own middle: the same greedy reply must stop there.
    const stop = full.text.slice(12, 15);
    const at = full.text.indexOf(stop);
    expect(at).toBeGreaterThan(0);
    const cut = await engine.must('generate', request('stop', messages, { sampling: { ...greedy, maxTokens: 30 }, stop: ['zzzzzz', stop] }));
    expect(cut.stopReason).toBe('stopSequence');
    expect(cut.stopSequence).toBe(stop);
    expect(cut.text).toBe(full.text.slice(0, at));
    expect(cut.text).not.toContain(stop);
    // The streamed deltas add up to the same text: the held-back stop text was never sent.
    expect(engine.deltas(`r${nextId}`).join('')).toBe(cut.text);
  });

  it('repeats a sampled reply for the same seed', async () => {
    const sampled = (seed: number) => engine.must('generate', request('seed', ask('Write a line.'), { sampling: { temperature: 1, topP: 1, maxTokens: 24 }, seed }));
    const a = await sampled(42);
    const b = await sampled(42);
    expect(b.text).toBe(a.text);
    expect(a.stats.tokensGenerated).toBe(24);
    // Other seeds run; whether two of them differ is up to the model, so it is not asserted.
    for (const seed of [1, 2 ** 32 + 7]) expect((await sampled(seed)).stats.tokensGenerated).toBe(24);
    const refused = await engine.call('generate', request('seed', ask('x'), { seed: -1 }));
    expect(refused.ok ? null : refused.error.code).toBe('INVALID_INPUT');
  });

  it('writes JSON for a json format, and JSON matching a schema for json_schema', async () => {
    const json = await engine.must('generate', request('json', ask('Give me JSON.'), { sampling: { ...greedy, maxTokens: 60 }, format: { type: 'json' } }));
    expect(() => JSON.parse(json.text) as unknown).not.toThrow();
    expect(json.stopReason).toBe('eos');

    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, color: { enum: ['red', 'blue'] } }, required: ['ok', 'color'] };
    const shaped = await engine.must('generate', request('json', ask('Is it ok?'), { sampling: { temperature: 0.8, topP: 1, maxTokens: 60 }, seed: 3, format: { type: 'json_schema', schema } }));
    const value = JSON.parse(shaped.text) as { ok: unknown; color: unknown };
    expect(typeof value.ok).toBe('boolean');
    expect(['red', 'blue']).toContain(value.color);

    const bad = await engine.call('generate', request('json', ask('x'), { format: { type: 'json_schema', schema: { enum: 'red' } } }));
    expect(bad.ok ? null : bad.error.code).toBe('INVALID_INPUT');
    const unknownType = await engine.call('generate', request('json', ask('x'), { format: { type: 'json_schema', schema: { type: 'colour' } } }));
    expect(unknownType.ok ? null : unknownType.error.message).toMatch(/"colour"/);
    const both = await engine.call('generate', request('json', ask('x'), { format: { type: 'json' }, functions: { f: { description: 'f' } } }));
    expect(both.ok ? null : both.error.code).toBe('INVALID_INPUT');
  });

  it('renders functions and earlier calls with their results into the prompt', async () => {
    const functions = { get_weather: { description: 'The weather in a city', params: { type: 'object', properties: { city: { type: 'string' } } } } };
    const history = (calls: boolean): PromptMessage[] => [
      ...ask('What is the weather in Paris?'),
      { role: 'assistant', text: '', ...(calls ? { calls: [{ name: 'get_weather', params: { city: 'Paris' }, result: '{"sky":"sunny","celsius":21}' }] } : {}) },
      { role: 'user', text: 'Thanks. And tomorrow?' },
    ];
    const withCalls = await engine.must('countTokens', { messages: history(true), functions });
    const without = await engine.must('countTokens', { messages: history(false), functions });
    const noFunctions = await engine.must('countTokens', { messages: history(false) });
    expect(withCalls.tokens).toBeGreaterThan(without.tokens + 10);
    expect(without.tokens).toBeGreaterThan(noFunctions.tokens + 10);
    expect(withCalls.contextSize).toBe(4096);

    const reply = await engine.must('generate', request('functions', history(true), { functions }));
    expect(['maxTokens', 'functionCalls', 'eos']).toContain(reply.stopReason);
    if (reply.stopReason === 'functionCalls') expect(reply.functionCalls?.length).toBeGreaterThan(0);
    // The prompt LlamaChat evaluated is the one countTokens rendered (functions documented, the call and its result in).
    expect(promptLength(reply.stats)).toBe(withCalls.tokens);
    // And LlamaChat evaluated no more than that: turn.ts warns when the evaluated prompt differs.
    expect(mismatches(engine)).toEqual([]);
  });

  it('counts a chat prompt as generate evaluates it', async () => {
    const messages = ask('Count me.');
    const counted = await engine.must('countTokens', { messages });
    const reply = await engine.must('generate', request('count', messages, { sampling: { ...greedy, maxTokens: 4 } }));
    expect(promptLength(reply.stats)).toBe(counted.tokens);
  });

  it('completes a raw prompt without a template, reusing its prefix on the next run', async () => {
    const messages: PromptMessage[] = [{ role: 'user', text: 'Once upon a time, in a small house by the sea, there lived' }];
    const counted = await engine.must('countTokens', { messages, raw: true });
    const chatCounted = await engine.must('countTokens', { messages });
    expect(counted.tokens).toBeLessThan(chatCounted.tokens);
    const first = await engine.must('generate', request('raw', messages, { raw: true, branchId: 'b1' }));
    expect(first.stats.tokensGenerated).toBe(24);
    expect(promptLength(first.stats)).toBe(counted.tokens);
    const second = await engine.must('generate', request('raw', messages, { raw: true, branchId: 'b1' }));
    expect(second.text).toBe(first.text);
    expect(second.stats.tokensReused + second.stats.tokensRestored).toBeGreaterThan(0);
    expect(second.stats.tokensPrefilled).toBe(1);
    expect(promptLength(second.stats)).toBe(counted.tokens);
    expect(mismatches(engine)).toEqual([]);

    // `stop` refuses a prompt that does not fit; `drop-oldest` keeps its end.
    const long: PromptMessage[] = [{ role: 'user', text: 'abc '.repeat(1200) }];
    const refused = await engine.call('generate', request('raw-long', long, { raw: true, overflowPolicy: 'stop' }));
    expect(refused.ok ? null : refused.error.code).toBe('CONTEXT_OVERFLOW');
    const kept = await engine.must('generate', request('raw-long', long, { raw: true, overflowPolicy: 'drop-oldest', sampling: { ...greedy, maxTokens: 4 } }));
    expect(promptLength(kept.stats) + 4).toBeLessThanOrEqual(4096);
    expect(promptLength(kept.stats)).toBeGreaterThan(2048);
    expect(kept.stats.tokensGenerated).toBe(4);
    const notOne = await engine.call('generate', request('raw', [...messages, ...messages], { raw: true }));
    expect(notOne.ok ? null : notOne.error.code).toBe('INVALID_INPUT');
  });

  it('runs a waiting chat turn before a waiting API turn', async () => {
    const long = request('long', ask('Go on and on.'), { sampling: { ...greedy, maxTokens: 100_000 }, source: 'api' });
    const started = engine.firstToken(long.requestId);
    const running = engine.call('generate', long);
    await started;
    const finished: string[] = [];
    const api = engine.must('generate', request('api', ask('API here.'), { source: 'api', sampling: { ...greedy, maxTokens: 4 } })).then(() => finished.push('api'));
    const chat = engine.must('generate', request('chat', ask('Chat here.'), { sampling: { ...greedy, maxTokens: 4 } })).then(() => finished.push('chat'));
    // Both wait behind the long turn; let their calls reach the engine before it ends.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await engine.must('abort', { requestId: long.requestId });
    expect((await running).ok).toBe(true);
    await Promise.all([api, chat]);
    expect(finished).toEqual(['chat', 'api']);
  });

  it('says where a prompt left a stored conversation, and nothing for an extension of one', async () => {
    const story = (fruit: string) =>
      `Here is a long note to remember. The garden has a ${fruit} tree next to the old stone wall, and every summer the children climb it and sit in its shade for hours.`;
    const stored = ask(story('apple'));
    const saved = await engine.must('generate', request('diag', stored, { branchId: 'b1', sampling: { ...greedy, maxTokens: 4 } }));
    // Another chat takes the one slot, so only the store still holds the stored conversation.
    await engine.must('generate', request('other', [{ role: 'user', text: 'Something else entirely.' }], { sampling: { ...greedy, maxTokens: 4 } }));

    const changed = await engine.must('generate', request('diag-2', ask(story('melon')), { diagnose: true, sampling: { ...greedy, maxTokens: 4 } }));
    const miss = changed.stats.cacheMiss;
    expect(miss).toBeDefined();
    const counted = await engine.must('countTokens', { messages: ask(story('melon')) });
    expect(miss!.promptTokens).toBe(counted.tokens);
    // The stored sequence: the prompt and the reply's tokens but the last (sampled, never evaluated).
    expect(miss!.storedTokens).toBe(promptLength(saved.stats) + saved.stats.tokensGenerated - 1);
    // The tokenizer spells each letter: the first difference is the fruit's first letter.
    const before = await engine.must('countTokens', { messages: ask(story('apple').slice(0, story('apple').indexOf('apple'))) });
    expect(miss!.atToken).toBeGreaterThan(before.tokens - 12);
    expect(miss!.atToken).toBeLessThan(miss!.promptTokens - 16);
    expect(miss!.sent).toMatch(/^melon tree/);
    expect(miss!.stored).toMatch(/^apple tree/);
    expect(miss!.before).toMatch(/has a $/);
    expect(miss!.before.length).toBeLessThanOrEqual(60);

    // The stored conversation, answered and followed by a new question: nothing was lost.
    const extended: PromptMessage[] = [...stored, { role: 'assistant', text: saved.text }, { role: 'user', text: 'And what else?' }];
    const next = await engine.must('generate', request('diag', extended, { diagnose: true, sampling: { ...greedy, maxTokens: 4 } }));
    expect(next.stats.cacheMiss).toBeUndefined();
    expect(next.stats.tokensRestored).toBeGreaterThan(0);
    // Without `diagnose`, nothing is looked at.
    const plain = await engine.must('generate', request('diag-3', ask(story('melon')), { sampling: { ...greedy, maxTokens: 4 } }));
    expect(plain.stats.cacheMiss).toBeUndefined();
  });
});
