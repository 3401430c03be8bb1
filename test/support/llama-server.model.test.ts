/**
 * What the llama-server of node-llama-cpp's llama.cpp release answers, checked against the real
 * server on the generated test model: the facts docs/decisions/llama-server-in-tests.md records
 * and remote engines rely on. A failure here after an upgrade means that record is out of date.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlamaServer, type LlamaServer } from './llama-server.ts';
import { testModelPath } from './models.ts';
import { seededText } from './text.ts';

/** The first build of llama-server takes minutes on a small machine; later runs find it cached. */
const buildTimeoutMs = 40 * 60 * 1000;

const ctxSize = 8192;
const parallel = 2;
const slotCtx = ctxSize / parallel;

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
interface Timings {
  cache_n: number;
  prompt_n: number;
  predicted_n: number;
}
interface Completion {
  model: string;
  object: string;
  choices: { message: { role: string; content: string }; finish_reason: string }[];
  usage: Usage;
  timings: Timings;
}

async function post(server: LlamaServer, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal });
}

async function complete(server: LlamaServer, body: Record<string, unknown>): Promise<Completion> {
  const response = await post(server, '/v1/chat/completions', { temperature: 0, ...body });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Completion;
}

/** The `data:` payloads of a server-sent-events body, in order, read as they arrive. */
async function* sseData(response: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data !== '') yield data;
    }
  }
}

interface Metric {
  type: string;
  value: number;
}

/** Prometheus text: every `llamacpp:` metric's TYPE and (unlabelled) value. */
async function metrics(server: LlamaServer): Promise<Map<string, Metric>> {
  const response = await fetch(`${server.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  const text = await response.text();
  const out = new Map<string, Metric>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (llamacpp:\S+) (\S+)$/.exec(line);
    if (type) out.set(type[1]!, { type: type[2]!, value: Number.NaN });
    const sample = /^(llamacpp:[^\s{]+) (\S+)$/.exec(line);
    if (sample) {
      const metric = out.get(sample[1]!);
      expect(metric, `${sample[1]} has a value but no TYPE line`).toBeDefined();
      metric!.value = Number(sample[2]);
    }
  }
  return out;
}

async function metric(server: LlamaServer, name: string): Promise<number> {
  const value = (await metrics(server)).get(`llamacpp:${name}`)?.value;
  if (value === undefined) throw new Error(`no llamacpp:${name} in /metrics`);
  return value;
}

async function tokenCount(server: LlamaServer, content: string): Promise<number> {
  const response = await post(server, '/tokenize', { content });
  expect(response.status).toBe(200);
  return ((await response.json()) as { tokens: number[] }).tokens.length;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('llama-server (the release node-llama-cpp bundles)', () => {
  let model: string;
  let server: LlamaServer;

  beforeAll(async () => {
    model = await testModelPath();
    server = await startLlamaServer({ model, ctxSize, parallel });
  }, buildTimeoutMs);

  afterAll(async () => {
    await server?.stop();
  });

  it('lists the one model it serves under its file path, with the per-slot context', async () => {
    const response = await fetch(`${server.baseUrl}/v1/models`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { object: string; data: { id: string; object: string; owned_by: string; meta: { n_ctx: number; n_ctx_train: number } }[] };
    expect(body.object).toBe('list');
    expect(body.data).toHaveLength(1);
    expect(body.data[0]).toMatchObject({ id: model, object: 'model', owned_by: 'llamacpp' });
    // -c is the whole KV, split evenly between the -np slots.
    expect(body.data[0]!.meta).toMatchObject({ n_ctx: slotCtx, n_ctx_train: 8192 });

    const slots = (await (await fetch(`${server.baseUrl}/slots`)).json()) as { id: number; n_ctx: number; is_processing: boolean }[];
    expect(slots.map((slot) => [slot.id, slot.n_ctx])).toEqual([
      [0, slotCtx],
      [1, slotCtx],
    ]);
  });

  it('streams chat completion chunks, then a usage chunk with no choices, then [DONE]', async () => {
    const maxTokens = 6;
    const response = await post(server, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Say something.' }],
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const data: string[] = [];
    for await (const payload of sseData(response)) data.push(payload);

    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((payload) => JSON.parse(payload) as {
      id: string;
      object: string;
      model: string;
      choices: { index: number; delta: { role?: string; content?: string | null }; finish_reason: string | null }[];
      usage?: Usage;
      timings?: Timings;
    });
    for (const chunk of chunks) {
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.id).toBe(chunks[0]!.id);
      expect(chunk.model).toBe(model);
    }
    // The first chunk carries only the role; the content follows one token per chunk.
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: null });
    const content = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta.content ?? '')).join('');
    expect(content.length).toBeGreaterThan(0);
    const finishes = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.finish_reason)).filter((reason) => reason !== null);
    expect(finishes).toEqual(['length']);

    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toBeDefined();
    const usage = last.usage!;
    expect(usage.completion_tokens).toBe(maxTokens);
    expect(usage.prompt_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(typeof usage.prompt_tokens_details.cached_tokens).toBe('number');
    // llama.cpp's own timings ride on the same chunk: prompt_tokens = cached + evaluated.
    expect(last.timings).toBeDefined();
    expect(last.timings!.cache_n).toBe(usage.prompt_tokens_details.cached_tokens);
    expect(last.timings!.cache_n + last.timings!.prompt_n).toBe(usage.prompt_tokens);
    expect(last.timings!.predicted_n).toBe(maxTokens);
  });

  it('reports a reused prefix as usage.prompt_tokens_details.cached_tokens and timings.cache_n', async () => {
    const prefix = seededText(41, 1200).slice(0, 1200);
    const prefixTokens = await tokenCount(server, prefix);
    expect(prefixTokens).toBeGreaterThan(1000);
    const cachedBefore = await metric(server, 'prompt_tokens_cached_total');

    const first = await complete(server, { messages: [{ role: 'user', content: `${prefix} first question` }], max_tokens: 2 });
    expect(first.usage.prompt_tokens_details.cached_tokens).toBeLessThan(prefixTokens);

    const second = await complete(server, { messages: [{ role: 'user', content: `${prefix} second question` }], max_tokens: 2 });
    const cached = second.usage.prompt_tokens_details.cached_tokens;
    // The same slot is picked for the similar prompt, and its cells up to the first difference are reused.
    expect(cached).toBeGreaterThanOrEqual(prefixTokens);
    expect(cached).toBeLessThan(second.usage.prompt_tokens);
    expect(second.timings.cache_n).toBe(cached);
    expect(second.timings.prompt_n).toBe(second.usage.prompt_tokens - cached);
    expect(second.usage.total_tokens).toBe(second.usage.prompt_tokens + second.usage.completion_tokens);
    // The non-streamed response has the same shape.
    expect(second.object).toBe('chat.completion');
    expect(second.choices[0]!.message.role).toBe('assistant');

    expect(await metric(server, 'prompt_tokens_cached_total')).toBe(cachedBefore + first.usage.prompt_tokens_details.cached_tokens + cached);
  });

  it('serves Prometheus text with these llamacpp: metrics and types', async () => {
    const response = await fetch(`${server.baseUrl}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const all = await metrics(server);
    const types = Object.fromEntries([...all].map(([name, { type }]) => [name, type]));
    expect(types).toEqual({
      'llamacpp:prompt_tokens_total': 'counter',
      'llamacpp:prompt_tokens_cached_total': 'counter',
      'llamacpp:prompt_seconds_total': 'counter',
      'llamacpp:tokens_predicted_total': 'counter',
      'llamacpp:tokens_predicted_seconds_total': 'counter',
      'llamacpp:n_decode_total': 'counter',
      'llamacpp:n_tokens_max': 'counter',
      'llamacpp:spec_decode_num_draft_tokens_total': 'counter',
      'llamacpp:spec_decode_num_accepted_tokens_total': 'counter',
      'llamacpp:spec_decode_num_drafts_total': 'counter',
      'llamacpp:prompt_tokens_seconds': 'gauge',
      'llamacpp:predicted_tokens_seconds': 'gauge',
      'llamacpp:requests_processing': 'gauge',
      'llamacpp:requests_deferred': 'gauge',
      'llamacpp:n_busy_slots_per_decode': 'gauge',
    });
    for (const [name, { value }] of all) expect(Number.isFinite(value), name).toBe(true);
    // The earlier tests ran prompts and generations through this server.
    expect(all.get('llamacpp:prompt_tokens_total')!.value).toBeGreaterThan(0);
    expect(all.get('llamacpp:tokens_predicted_total')!.value).toBeGreaterThan(0);
    expect(all.get('llamacpp:requests_processing')!.value).toBe(0);
  });

  it('stops generating and frees the slot when the client closes a streaming request', async () => {
    const maxTokens = slotCtx - 200;
    const predictedBefore = await metric(server, 'tokens_predicted_total');
    const controller = new AbortController();
    const response = await post(
      server,
      '/v1/chat/completions',
      { messages: [{ role: 'user', content: 'Go on for a long time.' }], max_tokens: maxTokens, temperature: 0, stream: true },
      {},
      controller.signal,
    );
    expect(response.status).toBe(200);
    let received = 0;
    let busy = { processing: -1, slots: 0 };
    try {
      for await (const payload of sseData(response)) {
        if (payload.includes('"content":"')) received++;
        if (received === 10) {
          // Still generating: one request in progress and one slot busy.
          const slots = (await (await fetch(`${server.baseUrl}/slots`)).json()) as { is_processing: boolean }[];
          busy = { processing: await metric(server, 'requests_processing'), slots: slots.filter((slot) => slot.is_processing).length };
          controller.abort();
        }
      }
    } catch (error) {
      expect((error as Error).name).toBe('AbortError');
    }
    expect(received).toBeGreaterThanOrEqual(10);
    expect(busy).toEqual({ processing: 1, slots: 1 });

    await until('requests_processing to return to 0', async () => (await metric(server, 'requests_processing')) === 0);
    const slots = (await (await fetch(`${server.baseUrl}/slots`)).json()) as { is_processing: boolean }[];
    expect(slots.every((slot) => !slot.is_processing)).toBe(true);
    // It stopped early rather than running to max_tokens, and the slot serves the next request.
    expect((await metric(server, 'tokens_predicted_total')) - predictedBefore).toBeLessThan(maxTokens);
    const next = await complete(server, { messages: [{ role: 'user', content: 'Again.' }], max_tokens: 3 });
    expect(next.usage.completion_tokens).toBe(3);
  });

  it('ignores the model field: an unknown name is answered by the loaded model', async () => {
    const answer = await complete(server, { model: 'no-such-model', messages: [{ role: 'user', content: 'Hello.' }], max_tokens: 2 });
    expect(answer.model).toBe(model);
    expect(answer.usage.completion_tokens).toBe(2);
  });

  it('refuses a prompt longer than the slot context with 400 exceed_context_size_error, streamed or not', async () => {
    const content = seededText(7, slotCtx + 500).slice(0, slotCtx + 500);
    for (const stream of [false, true]) {
      const response = await post(server, '/v1/chat/completions', { messages: [{ role: 'user', content }], max_tokens: 4, stream });
      expect(response.status, `stream: ${stream}`).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await response.json()) as { error: { code: number; message: string; type: string; n_prompt_tokens: number; n_ctx: number } };
      expect(Object.keys(body)).toEqual(['error']);
      expect(body.error).toEqual({
        code: 400,
        type: 'exceed_context_size_error',
        message: `request (${body.error.n_prompt_tokens} tokens) exceeds the available context size (${slotCtx} tokens), try increasing it`,
        n_prompt_tokens: body.error.n_prompt_tokens,
        n_ctx: slotCtx,
      });
      expect(body.error.n_prompt_tokens).toBeGreaterThan(slotCtx);
    }
  });

  describe('with --api-key', () => {
    const apiKey = 'hearth-test-key';
    let keyed: LlamaServer;

    beforeAll(async () => {
      keyed = await startLlamaServer({ model, ctxSize: 1024, parallel: 1, apiKey });
    }, buildTimeoutMs);

    afterAll(async () => {
      await keyed?.stop();
    });

    it('answers 401 with an OpenAI-style error body without the key; /health stays open', async () => {
      expect((await fetch(`${keyed.baseUrl}/health`)).status).toBe(200);
      const refusals = [
        await fetch(`${keyed.baseUrl}/v1/models`),
        await fetch(`${keyed.baseUrl}/v1/models`, { headers: { authorization: 'Bearer wrong-key' } }),
        await post(keyed, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi.' }], max_tokens: 1 }),
        await fetch(`${keyed.baseUrl}/metrics`),
      ];
      for (const response of refusals) {
        expect(response.status).toBe(401);
        expect(response.headers.get('content-type')).toMatch(/^application\/json/);
        expect(await response.json()).toEqual({ error: { message: 'Invalid API Key', type: 'authentication_error', code: 401 } });
      }
      // The key is accepted as a bearer token or, Anthropic-style, as X-Api-Key.
      expect((await fetch(`${keyed.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
      expect((await fetch(`${keyed.baseUrl}/v1/models`, { headers: { 'x-api-key': apiKey } })).status).toBe(200);
    });
  });
});
