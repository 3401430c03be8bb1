// The OpenAI-compatible endpoints, driven by the official SDK against a Hearth on the fake engine:
// what a client gets back, and what reaches the engine (engine.calls) for each request field.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { hearthError } from '../../contract/index.ts';
import type { GenerateInput } from '../../protocol.ts';
import { rejection, useTestHearths, value, type TestHearth } from '../../../test/support/host-fixture.ts';

const key = 'test-key-openai-0123456789';
const start = useTestHearths();

async function setup(): Promise<{ t: TestHearth; client: OpenAI; url: string }> {
  const t = await start({ api: { port: 0, key } });
  const state = value(await t.hearth.api['server.state']({}));
  expect(state.status).toBe('listening');
  const url = state.url!;
  return { t, url, client: new OpenAI({ apiKey: key, baseURL: url, maxRetries: 0 }) };
}

function lastGenerate(t: TestHearth): GenerateInput {
  return t.engine.lastCallOf('generate');
}

/** The APIError a call rejects with (the test fails if it resolves). */
const failure = (call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> => rejection(call, OpenAI.APIError);

const hi = [{ role: 'user' as const, content: 'Hi there' }];

describe('GET /v1/models', () => {
  it('lists the local models by file name without .gguf, the loaded one first', async () => {
    const { t, client } = await setup();
    // Sorted by name, "aaa" would come before "fake": the loaded model must still lead.
    writeFileSync(path.join(t.dataDir, 'models', 'aaa-other.gguf'), 'GGUF fake');
    const models: OpenAI.Model[] = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.map((m) => m.id)).toEqual(['fake', 'aaa-other']);
    expect(models[0]).toMatchObject({ object: 'model', owned_by: 'local' });
    expect(typeof models[0]!.created).toBe('number');
  });
});

describe('choosing the model', () => {
  it('loads the model a request names, then lists it first', async () => {
    const { t, client } = await setup();
    const other = path.join(t.dataDir, 'models', 'aaa-other.gguf');
    writeFileSync(other, 'GGUF fake');
    const reply = await client.chat.completions.create({ model: 'aaa-other', messages: hi });
    expect(reply.model).toBe('aaa-other');
    expect(t.engine.callsOf('loadModel').at(-1)!.path).toBe(other);
    // The load came before the generation.
    const order = t.engine.calls.map((c) => c.method).filter((m) => m === 'loadModel' || m === 'generate');
    expect(order.slice(-2)).toEqual(['loadModel', 'generate']);
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models).toEqual(['aaa-other', 'fake']);
    // Asking again for the loaded model loads nothing.
    const loads = t.engine.callsOf('loadModel').length;
    await client.chat.completions.create({ model: 'aaa-other', messages: hi });
    expect(t.engine.callsOf('loadModel')).toHaveLength(loads);
  });
});

describe('POST /v1/chat/completions', () => {
  it('answers one completion with usage, the cache account and a stop reason', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stats = { tokensReused: 5, tokensRestored: 7 };
    const reply = await client.chat.completions.create({ model: 'fake', messages: hi });
    expect(reply.object).toBe('chat.completion');
    expect(reply.id).toMatch(/^chatcmpl-/);
    expect(reply.model).toBe('fake');
    expect(reply.choices).toHaveLength(1);
    expect(reply.choices[0]!.message).toMatchObject({ role: 'assistant', content: 'Hello, world!' });
    expect(reply.choices[0]!.message.tool_calls).toBeUndefined();
    expect(reply.choices[0]!.finish_reason).toBe('stop');
    // Prefill is one token per character in the fake: "Hi there" is 8.
    expect(reply.usage).toEqual({ prompt_tokens: 12 + 8, completion_tokens: 4, total_tokens: 24, prompt_tokens_details: { cached_tokens: 12 } });
    expect((reply as unknown as { hearth: unknown }).hearth).toEqual({ reused: 5, restored: 7, prefilled: 8, restoreMs: 0 });
  });

  it('streams the same content as deltas, ends with a finish reason, and reports usage when asked', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stats = { tokensReused: 2, tokensRestored: 9 };
    const whole = await client.chat.completions.create({ model: 'fake', messages: hi });
    const stream = await client.chat.completions.create({ model: 'fake', messages: hi, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id)).toBe(true);
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishes.map((c) => c.choices[0]!.finish_reason)).toEqual(['stop']);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.prompt_tokens_details?.cached_tokens).toBe(11);
    expect(last.usage).toMatchObject({ prompt_tokens: 11 + 8, completion_tokens: 4, total_tokens: 23 });
    expect((last as unknown as { hearth: unknown }).hearth).toEqual({ reused: 2, restored: 9, prefilled: 8, restoreMs: 0 });
    // The chunks before the usage one carry usage: null, as OpenAI's do.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('puts the cache account on the finish chunk when usage was not asked for', async () => {
    const { client } = await setup();
    const stream = await client.chat.completions.create({ model: 'fake', messages: hi, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices[0]!.finish_reason).toBe('stop');
    expect(last.usage).toBeUndefined();
    expect((last as unknown as { hearth: unknown }).hearth).toEqual({ reused: 3, restored: 0, prefilled: 8, restoreMs: 0 });
  });

  it('says finish_reason length when the reply hit max tokens', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stopReason = 'maxTokens';
    const reply = await client.chat.completions.create({ model: 'fake', messages: hi, max_tokens: 4 });
    expect(reply.choices[0]!.finish_reason).toBe('length');
  });

  it('hands sampling, stop, seed and the overflow policy to the engine as an API turn', async () => {
    const { t, client } = await setup();
    await client.chat.completions.create({ model: 'fake', messages: [{ role: 'system', content: 'Be brief.' }, ...hi], max_tokens: 7, temperature: 0.3, top_p: 0.9, seed: 42, stop: ['END', '\n\n'] });
    const input = lastGenerate(t);
    expect(input.source).toBe('api');
    expect(input.sampling).toEqual({ temperature: 0.3, topP: 0.9, maxTokens: 7 });
    expect(input.stop).toEqual(['END', '\n\n']);
    expect(input.seed).toBe(42);
    expect(input.overflowPolicy).toBe('stop');
    expect(input.messages).toEqual([
      { role: 'system', text: 'Be brief.' },
      { role: 'user', text: 'Hi there' },
    ]);
    expect(input.format).toBeUndefined();
    expect(input.functions).toBeUndefined();
    expect(input.raw).toBeUndefined();
    expect(input.requestId).toMatch(/^api-/);
    expect(input.chatId).toMatch(/^api-[0-9a-f]{16}$/);

    // OpenAI's defaults when left out; a single stop string; max_completion_tokens wins; truncation auto.
    await client.chat.completions.create({ model: 'fake', messages: hi, stop: 'X', max_tokens: 3, max_completion_tokens: 9, truncation: 'auto' } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const second = lastGenerate(t);
    expect(second.sampling).toEqual({ temperature: 1, topP: 1, maxTokens: 9 });
    expect(second.stop).toEqual(['X']);
    expect(second.seed).toBeUndefined();
    expect(second.overflowPolicy).toBe('drop-oldest');
  });

  it('files requests that start the same way under one conversation, and others apart', async () => {
    const { t, client } = await setup();
    await client.chat.completions.create({ model: 'fake', messages: hi });
    await client.chat.completions.create({ model: 'fake', messages: [...hi, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'More' }] });
    await client.chat.completions.create({ model: 'fake', messages: [{ role: 'user', content: 'Something else' }] });
    const [a, b, c] = t.engine.callsOf('generate');
    expect(a!.chatId).toBe(b!.chatId);
    expect(a!.branchId).not.toBe(b!.branchId);
    expect(c!.chatId).not.toBe(a!.chatId);
  });

  it('turns response_format into an output format', async () => {
    const { t, client } = await setup();
    await client.chat.completions.create({ model: 'fake', messages: hi, response_format: { type: 'json_object' } });
    expect(lastGenerate(t).format).toEqual({ type: 'json' });
    const schema = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] };
    await client.chat.completions.create({ model: 'fake', messages: hi, response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } } });
    expect(lastGenerate(t).format).toEqual({ type: 'json_schema', schema });
    await client.chat.completions.create({ model: 'fake', messages: hi, response_format: { type: 'text' } });
    expect(lastGenerate(t).format).toBeUndefined();
  });

  it('turns tools into functions and folds tool calls and their results into the assistant message', async () => {
    const { t, client } = await setup();
    const parameters = { type: 'object', properties: { city: { type: 'string' } } };
    await client.chat.completions.create({
      model: 'fake',
      tools: [{ type: 'function', function: { name: 'weather', description: 'The weather in a city', parameters } }],
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'Rainy, 7 °C' },
        { role: 'user', content: [{ type: 'text', text: 'And ' }, { type: 'text', text: 'tomorrow?' }] },
      ],
    });
    const input = lastGenerate(t);
    expect(input.functions).toEqual({ weather: { description: 'The weather in a city', params: parameters } });
    expect(input.messages).toEqual([
      { role: 'user', text: 'Weather in Oslo?' },
      { role: 'assistant', text: '', calls: [{ name: 'weather', params: { city: 'Oslo' }, result: 'Rainy, 7 °C' }] },
      { role: 'user', text: 'And tomorrow?' },
    ]);
    // tool_choice none: the tools are not offered.
    await client.chat.completions.create({ model: 'fake', messages: hi, tool_choice: 'none', tools: [{ type: 'function', function: { name: 'weather', parameters } }] });
    expect(lastGenerate(t).functions).toBeUndefined();
  });

  it('refuses a tool result that answers no call', async () => {
    const { client } = await setup();
    const e = await failure(client.chat.completions.create({ model: 'fake', messages: [...hi, { role: 'tool', tool_call_id: 'nope', content: 'x' }] }));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/no earlier assistant message called/);
  });

  it('answers the model function calls as tool_calls with finish_reason tool_calls, streamed and not', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.tokens = [];
    t.engine.behaviour.stopReason = 'functionCalls';
    t.engine.behaviour.functionCalls = [
      { name: 'weather', params: { city: 'Oslo' } },
      { name: 'time', params: undefined },
    ];
    const tools = [
      { type: 'function' as const, function: { name: 'weather', parameters: { type: 'object' } } },
      { type: 'function' as const, function: { name: 'time' } },
    ];
    const reply = await client.chat.completions.create({ model: 'fake', messages: hi, tools });
    const choice = reply.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const calls = choice.message.tool_calls as OpenAI.ChatCompletionMessageFunctionToolCall[];
    expect(calls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ['function', 'weather', { city: 'Oslo' }],
      ['function', 'time', {}],
    ]);
    expect(new Set(calls.map((c) => c.id)).size).toBe(2);
    expect(calls[0]!.id).toMatch(/^call_/);

    const stream = await client.chat.completions.create({ model: 'fake', messages: hi, tools, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas.map((d) => [d.index, d.function?.name, d.function?.arguments])).toEqual([
      [0, 'weather', '{"city":"Oslo"}'],
      [1, 'time', '{}'],
    ]);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('refuses what it cannot honour with a 400 that names it', async () => {
    const { t, client } = await setup();
    const required = await failure(client.chat.completions.create({ model: 'fake', messages: hi, tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f' } }] }));
    expect(required.status).toBe(400);
    expect(required.param).toBe('tool_choice');
    const named = await failure(client.chat.completions.create({ model: 'fake', messages: hi, tool_choice: { type: 'function', function: { name: 'f' } }, tools: [{ type: 'function', function: { name: 'f' } }] }));
    expect(named.status).toBe(400);
    const n = await failure(client.chat.completions.create({ model: 'fake', messages: hi, n: 2 }));
    expect(n.status).toBe(400);
    expect(n.param).toBe('n');
    expect(n.code).toBe('unsupported_parameter');
    expect(n.message).toMatch(/\bn\b/);
    const unknown = await failure(client.chat.completions.create({ model: 'fake', messages: hi, frobnicate: true } as OpenAI.ChatCompletionCreateParamsNonStreaming));
    expect(unknown.status).toBe(400);
    expect(unknown.message).toMatch(/Unrecognized request argument supplied: frobnicate/);
    expect(unknown.param).toBe('frobnicate');
    const penalty = await failure(client.chat.completions.create({ model: 'fake', messages: hi, presence_penalty: 0.5 }));
    expect(penalty.param).toBe('presence_penalty');
    const image = await failure(client.chat.completions.create({ model: 'fake', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }));
    expect(image.status).toBe(400);
    expect(image.code).toBe('unsupported_content');
    const mixed = await failure(client.chat.completions.create({ model: 'fake', messages: hi, response_format: { type: 'json_object' }, tools: [{ type: 'function', function: { name: 'f' } }] }));
    expect(mixed.param).toBe('response_format');
    // None of them reached the engine.
    expect(t.engine.callsOf('generate')).toEqual([]);
  });

  it('answers 404 model_not_found for a model that is not here', async () => {
    const { t, client } = await setup();
    const e = await failure(client.chat.completions.create({ model: 'gpt-4o', messages: hi }));
    expect(e.status).toBe(404);
    expect(e.code).toBe('model_not_found');
    expect(e.param).toBe('model');
    expect(t.engine.callsOf('generate')).toEqual([]);
  });

  it('answers 400 context_length_exceeded when the prompt does not fit', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.generateError = hearthError('CONTEXT_OVERFLOW', 'The prompt is 9000 tokens; the context holds 4096.');
    const e = await failure(client.chat.completions.create({ model: 'fake', messages: hi }));
    expect(e.status).toBe(400);
    expect(e.code).toBe('context_length_exceeded');
    expect(e.message).toMatch(/truncation/);
  });

  it('answers a stream refused before its first token with its 4xx status, not a 200', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.tokens = [];
    t.engine.behaviour.generateError = hearthError('CONTEXT_OVERFLOW', 'Too long.');
    const e = await failure(client.chat.completions.create({ model: 'fake', messages: hi, stream: true }));
    expect(e.status).toBe(400);
    expect(e.code).toBe('context_length_exceeded');
  });

  it('answers 503 when the engine cannot serve, and reports a failure mid-stream as an error event', async () => {
    const { t, client, url } = await setup();
    t.engine.behaviour.generateError = hearthError('OUT_OF_MEMORY', 'Out of memory.');
    const e = await failure(client.chat.completions.create({ model: 'fake', messages: hi }));
    expect(e.status).toBe(503);
    // Streamed: the status line is sent already; the error comes as a data event and no [DONE].
    const res = await fetch(`${url}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake', messages: hi, stream: true }) });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toMatch(/data: \{"error":\{"message":"Out of memory\./);
    expect(body).not.toMatch(/\[DONE\]/);
  });
});

describe('POST /v1/completions', () => {
  it('runs the prompt raw, 16 tokens by default, streamed and not', async () => {
    const { t, client } = await setup();
    const reply = await client.completions.create({ model: 'fake', prompt: 'Once upon a time' });
    expect(reply.object).toBe('text_completion');
    expect(reply.choices[0]).toMatchObject({ index: 0, text: 'Hello, world!', finish_reason: 'stop' });
    expect(reply.usage?.prompt_tokens).toBe(3 + 'Once upon a time'.length);
    const input = lastGenerate(t);
    expect(input.raw).toBe(true);
    expect(input.messages).toEqual([{ role: 'user', text: 'Once upon a time' }]);
    expect(input.sampling.maxTokens).toBe(16);
    expect(input.source).toBe('api');

    const stream = await client.completions.create({ model: 'fake', prompt: ['Once upon a time'], max_tokens: 5, stream: true, stop: '.' });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe('Hello, world!');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    const second = lastGenerate(t);
    expect(second.sampling.maxTokens).toBe(5);
    expect(second.stop).toEqual(['.']);
    expect(second.raw).toBe(true);
  });

  it('refuses an empty prompt, echo, suffix and best_of', async () => {
    const { t, client } = await setup();
    expect((await failure(client.completions.create({ model: 'fake', prompt: '' }))).param).toBe('prompt');
    expect((await failure(client.completions.create({ model: 'fake', prompt: 'x', echo: true }))).param).toBe('echo');
    expect((await failure(client.completions.create({ model: 'fake', prompt: 'x', suffix: 'y' }))).param).toBe('suffix');
    expect((await failure(client.completions.create({ model: 'fake', prompt: 'x', best_of: 3 }))).param).toBe('best_of');
    expect(t.engine.callsOf('generate')).toEqual([]);
  });
});
