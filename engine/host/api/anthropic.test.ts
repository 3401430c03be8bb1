// The Anthropic-compatible endpoints, driven by the official SDK against a Hearth on the fake
// engine (raw fetch where the exact error body matters).
import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { hearthError } from '../../contract/index.ts';
import type { GenerateInput } from '../../protocol.ts';
import { rejection, useTestHearths, value, type TestHearth } from '../../../test/support/host-fixture.ts';

const key = 'test-key-anthropic-0123456789';
const start = useTestHearths();

async function setup(): Promise<{ t: TestHearth; client: Anthropic; url: string }> {
  const t = await start({ api: { port: 0, key } });
  const state = value(await t.hearth.api['server.state']({}));
  const url = state.url!;
  // Anthropic's SDK adds /v1 itself.
  return { t, url, client: new Anthropic({ apiKey: key, baseURL: url.replace(/\/v1$/, ''), maxRetries: 0 }) };
}

function lastGenerate(t: TestHearth): GenerateInput {
  return t.engine.lastCallOf('generate');
}

/** The APIError a call rejects with (the test fails if it resolves). */
const failure = (call: Promise<unknown>): Promise<InstanceType<typeof Anthropic.APIError>> => rejection(call, Anthropic.APIError);

async function post(url: string, route: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const hi = [{ role: 'user' as const, content: 'Hi there' }];

describe('POST /v1/messages', () => {
  it('answers one message with the cache read as cache_read_input_tokens', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stats = { tokensReused: 4, tokensRestored: 6 };
    const reply = await client.messages.create({ model: 'fake', max_tokens: 64, messages: hi });
    expect(reply).toMatchObject({ type: 'message', role: 'assistant', model: 'fake', stop_reason: 'end_turn', stop_sequence: null });
    expect(reply.id).toMatch(/^msg_/);
    expect(reply.content).toEqual([{ type: 'text', text: 'Hello, world!' }]);
    // input_tokens counts only what was evaluated anew (8 characters of prefill in the fake).
    expect(reply.usage).toMatchObject({ input_tokens: 8, output_tokens: 4, cache_read_input_tokens: 10, cache_creation_input_tokens: 0 });
    expect((reply as unknown as { hearth: unknown }).hearth).toEqual({ reused: 4, restored: 6, prefilled: 8, restoreMs: 0 });
    const input = lastGenerate(t);
    expect(input.source).toBe('api');
    expect(input.sampling).toEqual({ temperature: 1, topP: 1, maxTokens: 64 });
    expect(input.overflowPolicy).toBe('stop');
  });

  it('streams the same message (SDK finalMessage) with usage at the end', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stats = { tokensReused: 1, tokensRestored: 2 };
    const whole = await client.messages.create({ model: 'fake', max_tokens: 64, messages: hi });
    const deltas: string[] = [];
    const stream = client.messages.stream({ model: 'fake', max_tokens: 64, messages: hi });
    stream.on('text', (text) => deltas.push(text));
    const final = await stream.finalMessage();
    expect(deltas).toEqual(['Hello', ',', ' world', '!']);
    expect(final.content).toEqual(whole.content);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(4);
    expect(final.usage.cache_read_input_tokens).toBe(3);
  });

  it('hands temperature, top_p and stop_sequences to the engine and reports which stop ended it', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stopReason = 'stopSequence';
    t.engine.behaviour.stopSequence = '###';
    const reply = await client.messages.create({ model: 'fake', max_tokens: 10, temperature: 0.2, top_p: 0.5, stop_sequences: ['###', 'END'], messages: hi } as Anthropic.MessageCreateParamsNonStreaming);
    expect(reply.stop_reason).toBe('stop_sequence');
    expect(reply.stop_sequence).toBe('###');
    const input = lastGenerate(t);
    expect(input.stop).toEqual(['###', 'END']);
    expect(input.sampling).toEqual({ temperature: 0.2, topP: 0.5, maxTokens: 10 });

    const final = await client.messages.stream({ model: 'fake', max_tokens: 10, stop_sequences: ['###'], messages: hi }).finalMessage();
    expect(final.stop_reason).toBe('stop_sequence');
    expect(final.stop_sequence).toBe('###');
  });

  it('says max_tokens when the reply was cut, and drops the oldest with truncation auto', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.stopReason = 'maxTokens';
    const reply = await client.messages.create({ model: 'fake', max_tokens: 4, messages: hi, truncation: 'auto' } as Anthropic.MessageCreateParamsNonStreaming);
    expect(reply.stop_reason).toBe('max_tokens');
    expect(lastGenerate(t).overflowPolicy).toBe('drop-oldest');
  });

  it('takes the system prompt as a string or as text blocks', async () => {
    const { t, client } = await setup();
    await client.messages.create({ model: 'fake', max_tokens: 8, system: 'Be brief.', messages: hi });
    expect(lastGenerate(t).messages).toEqual([
      { role: 'system', text: 'Be brief.' },
      { role: 'user', text: 'Hi there' },
    ]);
    await client.messages.create({
      model: 'fake',
      max_tokens: 8,
      system: [
        { type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } },
        { type: 'text', text: 'Be kind.' },
      ],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'there', cache_control: { type: 'ephemeral' } }] }],
    });
    expect(lastGenerate(t).messages).toEqual([
      { role: 'system', text: 'Be brief.\nBe kind.' },
      { role: 'user', text: 'Hi there' },
    ]);
  });

  it('folds tool_use and tool_result into the assistant message and offers the tools as functions', async () => {
    const { t, client } = await setup();
    const schema = { type: 'object' as const, properties: { city: { type: 'string' } } };
    await client.messages.create({
      model: 'fake',
      max_tokens: 32,
      tools: [{ name: 'weather', description: 'The weather', input_schema: schema }],
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Let me look.' },
            { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Oslo' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Rainy' }] },
            { type: 'text', text: 'Thanks!' },
          ],
        },
      ],
    });
    const input = lastGenerate(t);
    expect(input.functions).toEqual({ weather: { description: 'The weather', params: schema } });
    expect(input.messages).toEqual([
      { role: 'user', text: 'Weather in Oslo?' },
      { role: 'assistant', text: 'Let me look.', calls: [{ name: 'weather', params: { city: 'Oslo' }, result: 'Rainy' }] },
      { role: 'user', text: 'Thanks!' },
    ]);
    // An error result says so.
    await client.messages.create({
      model: 'fake',
      max_tokens: 32,
      tools: [{ name: 'weather', input_schema: schema }],
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't2', name: 'weather', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't2', content: 'no such city', is_error: true }] },
      ],
    });
    expect(lastGenerate(t).messages[1]).toEqual({ role: 'assistant', text: '', calls: [{ name: 'weather', params: {}, result: 'Error: no such city' }] });
  });

  it('answers the model function calls as tool_use blocks with stop_reason tool_use, streamed and not', async () => {
    const { t, client } = await setup();
    t.engine.behaviour.tokens = ['Checking.'];
    t.engine.behaviour.stopReason = 'functionCalls';
    t.engine.behaviour.functionCalls = [{ name: 'weather', params: { city: 'Oslo' } }];
    const tools = [{ name: 'weather', input_schema: { type: 'object' as const } }];
    const reply = await client.messages.create({ model: 'fake', max_tokens: 32, tools, messages: hi });
    expect(reply.stop_reason).toBe('tool_use');
    expect(reply.content).toHaveLength(2);
    expect(reply.content[0]).toEqual({ type: 'text', text: 'Checking.' });
    expect(reply.content[1]).toMatchObject({ type: 'tool_use', name: 'weather', input: { city: 'Oslo' } });
    expect((reply.content[1] as Anthropic.ToolUseBlock).id).toMatch(/^toolu_/);

    const final = await client.messages.stream({ model: 'fake', max_tokens: 32, tools, messages: hi }).finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content.find((b) => b.type === 'tool_use')).toMatchObject({ name: 'weather', input: { city: 'Oslo' } });
  });

  it('refuses extended thinking, forced tools, top_k, image blocks and misplaced tool blocks with a 400', async () => {
    const { t, client } = await setup();
    const thinking = await failure(client.messages.create({ model: 'fake', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: hi }));
    expect(thinking.status).toBe(400);
    expect(thinking.message).toMatch(/thinking/);
    const any = await failure(client.messages.create({ model: 'fake', max_tokens: 8, tool_choice: { type: 'any' }, tools: [{ name: 'f', input_schema: { type: 'object' } }], messages: hi }));
    expect(any.status).toBe(400);
    expect(any.message).toMatch(/tool_choice/);
    expect((await failure(client.messages.create({ model: 'fake', max_tokens: 8, top_k: 5, messages: hi } as Anthropic.MessageCreateParamsNonStreaming))).status).toBe(400);
    const image = await failure(client.messages.create({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } }] }] }));
    expect(image.status).toBe(400);
    expect(image.message).toMatch(/only text, tool_use and tool_result/);
    // A text block without its text (it once put "undefined" into the prompt).
    const textless = await failure(client.messages.create({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'text' } as Anthropic.TextBlockParam] }] }));
    expect(textless.status).toBe(400);
    expect(textless.message).toMatch(/messages\.0\.content\.0\.text/);
    const numeric = await failure(client.messages.create({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'text', text: 5 } as unknown as Anthropic.TextBlockParam] }] }));
    expect(numeric.status).toBe(400);
    const toolUseWithoutId = await failure(client.messages.create({ model: 'fake', max_tokens: 8, messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 'f', input: {} } as unknown as Anthropic.ToolUseBlockParam] }] }));
    expect(toolUseWithoutId.status).toBe(400);
    expect(toolUseWithoutId.message).toMatch(/messages\.0\.content\.0\.id/);
    const misplaced = await failure(client.messages.create({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'tool_use', id: 'x', name: 'f', input: {} }] }] }));
    expect(misplaced.status).toBe(400);
    expect(t.engine.callsOf('generate')).toEqual([]);
  });

  it('answers errors in Anthropic shape: invalid request, unknown model, overflow, engine trouble, bad key', async () => {
    const { t, url } = await setup();
    const shape = (type: string) => ({ type: 'error', error: { type, message: expect.any(String) as string } });

    const missing = await post(url, '/messages', { model: 'fake', messages: hi });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual(shape('invalid_request_error'));
    expect((missing.body as { error: { message: string } }).error.message).toMatch(/max_tokens/);

    const extra = await post(url, '/messages', { model: 'fake', max_tokens: 8, messages: hi, frob: 1 });
    expect(extra.status).toBe(400);
    expect((extra.body as { error: { message: string } }).error.message).toMatch(/Unrecognized request argument supplied: frob/);

    const badJson = await post(url, '/messages', '{"model":');
    expect(badJson.status).toBe(400);
    expect(badJson.body).toEqual(shape('invalid_request_error'));

    const model = await post(url, '/messages', { model: 'claude-sonnet-4', max_tokens: 8, messages: hi });
    expect(model.status).toBe(404);
    expect(model.body).toEqual(shape('not_found_error'));

    const auth = await post(url, '/messages', { model: 'fake', max_tokens: 8, messages: hi }, { 'x-api-key': 'wrong-key' });
    expect(auth.status).toBe(401);
    expect(auth.body).toEqual(shape('authentication_error'));

    const route = await post(url, '/messages/batches', {});
    expect(route.status).toBe(404);
    expect(route.body).toEqual(shape('not_found_error'));

    t.engine.behaviour.generateError = hearthError('CONTEXT_OVERFLOW', 'Too long.');
    const overflow = await post(url, '/messages', { model: 'fake', max_tokens: 8, messages: hi });
    expect(overflow.status).toBe(400);
    expect(overflow.body).toEqual(shape('invalid_request_error'));

    t.engine.behaviour.generateError = hearthError('ENGINE_CRASHED', 'The engine stopped.');
    const crashed = await post(url, '/messages', { model: 'fake', max_tokens: 8, messages: hi });
    expect(crashed.status).toBe(503);
    expect(crashed.body).toEqual(shape('overloaded_error'));

    // Mid-stream, the failure comes as an `error` event.
    const res = await fetch(`${url}/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake', max_tokens: 8, messages: hi, stream: true }) });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"overloaded_error","message":"The engine stopped\./);
    expect(text).not.toMatch(/message_stop/);
  });
});

describe('POST /v1/messages/count_tokens', () => {
  it('answers the engine count for the prompt and generates nothing', async () => {
    const { t, client } = await setup();
    const counted = await client.messages.countTokens({ model: 'fake', system: 'Be brief.', messages: hi });
    // The fake counts one token per character of every message's text.
    expect(counted).toEqual({ input_tokens: 'Be brief.'.length + 'Hi there'.length });
    const call = t.engine.callsOf('countTokens').at(-1)!;
    expect(call.messages).toEqual([
      { role: 'system', text: 'Be brief.' },
      { role: 'user', text: 'Hi there' },
    ]);
    expect(call.raw).toBeUndefined();
    const withTools = await client.messages.countTokens({ model: 'fake', tools: [{ name: 'f', input_schema: { type: 'object' } }], messages: hi });
    expect(withTools.input_tokens).toBe(8);
    expect(t.engine.callsOf('countTokens').at(-1)!.functions).toEqual({ f: { params: { type: 'object' } } });
    expect(t.engine.callsOf('generate')).toEqual([]);
  });

  it('refuses thinking and an unknown model in Anthropic shape', async () => {
    const { url } = await setup();
    const thinking = await post(url, '/messages/count_tokens', { model: 'fake', messages: hi, thinking: { type: 'enabled', budget_tokens: 1024 } });
    expect(thinking.status).toBe(400);
    expect(thinking.body).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    const model = await post(url, '/messages/count_tokens', { model: 'nope', messages: hi });
    expect(model.status).toBe(404);
    expect(model.body).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });
});
