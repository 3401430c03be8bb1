// The API server fails closed: seeded malformed requests to every endpoint (bad JSON, bodies that
// are not objects, every field of a valid body given a wrong type or an out-of-range value,
// required fields missing, unknown fields, deep nesting, odd content types and methods) get a
// 4xx in the dialect of the route asked (never a 5xx, never a hang), and the server keeps serving.
// Same style as server/fuzz.test.ts; seeded (mulberry32), so a failure reproduces.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { malformedBodies, mulberry32 } from '../../../test/support/fuzz.ts';
import { startTestHearth, value, type TestHearth } from '../../../test/support/host-fixture.ts';

const seed = 0xa91;
const key = 'test-key-fuzz-0123456789';

type Dialect = 'openai' | 'anthropic';
type Kind = 'string' | 'int' | 'number' | 'bool' | 'array' | 'object';

interface Endpoint {
  readonly route: string;
  readonly dialect: Dialect;
  readonly valid: Record<string, unknown>;
  /** Each field's accepted JSON kinds (null is left out: some fields take it, some do not). */
  readonly fields: Readonly<Record<string, readonly Kind[]>>;
  readonly required: readonly string[];
  /** Numbers each numeric field refuses (out of range, not whole). */
  readonly badNumbers: Readonly<Record<string, readonly number[]>>;
}

const user = [{ role: 'user', content: 'Hi' }];
const openAiNumbers = {
  max_tokens: [0, -1, -1e308, 1.5, 1e9, 1e308, 2 ** 64],
  temperature: [-0.1, 2.5, 1e308, -1e308],
  top_p: [0, -1, 1.5, 1e308],
  seed: [1.5, 2 ** 60, -(2 ** 60), 1e308],
};

const endpoints: readonly Endpoint[] = [
  {
    route: '/v1/chat/completions',
    dialect: 'openai',
    valid: { model: 'fake', messages: user, max_tokens: 8, temperature: 0.5, top_p: 0.9, seed: 1, stop: ['x'], stream: false, n: 1, user: 'u', truncation: 'auto', response_format: { type: 'text' }, tool_choice: 'auto', parallel_tool_calls: true, stream_options: { include_usage: true }, metadata: { a: 'b' }, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] },
    fields: {
      model: ['string'],
      messages: ['array'],
      max_tokens: ['int', 'number'],
      temperature: ['int', 'number'],
      top_p: ['int', 'number'],
      seed: ['int', 'number'],
      stop: ['string', 'array'],
      stream: ['bool'],
      n: ['int', 'number'],
      user: ['string'],
      truncation: ['string'],
      response_format: ['object'],
      tool_choice: ['string', 'object'],
      parallel_tool_calls: ['bool'],
      stream_options: ['object'],
      metadata: ['object'],
      tools: ['array'],
    },
    required: ['model', 'messages'],
    badNumbers: { ...openAiNumbers, n: [0, -1, 1.5, 1e308] },
  },
  {
    route: '/v1/completions',
    dialect: 'openai',
    valid: { model: 'fake', prompt: 'Once', max_tokens: 4, temperature: 0, top_p: 1, seed: 3, stop: 'x', stream: false, echo: false, suffix: '', best_of: 1 },
    fields: { model: ['string'], prompt: ['string', 'array'], max_tokens: ['int', 'number'], temperature: ['int', 'number'], top_p: ['int', 'number'], seed: ['int', 'number'], stop: ['string', 'array'], stream: ['bool'], echo: ['bool'], suffix: ['string'], best_of: ['int', 'number'] },
    required: ['model', 'prompt'],
    badNumbers: { ...openAiNumbers, best_of: [0, -1, 1.5, 1e308] },
  },
  {
    route: '/v1/messages',
    dialect: 'anthropic',
    valid: { model: 'fake', max_tokens: 8, messages: user, system: 'Be brief.', stop_sequences: ['x'], stream: false, temperature: 0.5, top_p: 0.9, metadata: { user_id: 'u' }, tool_choice: { type: 'auto' }, thinking: { type: 'disabled' }, tools: [{ name: 'f', input_schema: { type: 'object' } }] },
    fields: { model: ['string'], max_tokens: ['int', 'number'], messages: ['array'], system: ['string', 'array'], stop_sequences: ['array'], stream: ['bool'], temperature: ['int', 'number'], top_p: ['int', 'number'], metadata: ['object'], tool_choice: ['object'], thinking: ['object'], tools: ['array'] },
    required: ['model', 'max_tokens', 'messages'],
    badNumbers: { max_tokens: openAiNumbers.max_tokens, temperature: [-0.1, 1.5, 1e308], top_p: [0, -1, 1.5, 1e308] },
  },
  {
    route: '/v1/messages/count_tokens',
    dialect: 'anthropic',
    valid: { model: 'fake', messages: user, system: [{ type: 'text', text: 'Be brief.' }], tool_choice: { type: 'auto' }, tools: [{ name: 'f', input_schema: { type: 'object' } }] },
    fields: { model: ['string'], messages: ['array'], system: ['string', 'array'], tool_choice: ['object'], tools: ['array'] },
    required: ['model', 'messages'],
    badNumbers: {},
  },
];

/** One value of each kind. */
const samples: Readonly<Record<Kind, readonly unknown[]>> = {
  string: ['', 'x', 'ü\u0000\ud800', 'x'.repeat(300)],
  int: [7, -3],
  number: [0.25],
  bool: [true, false],
  array: [[], [1, 'x', null], [[[]]]],
  object: [{}, { a: 1 }, { type: 'nonsense', nested: { deeper: [1, { x: null }] } }],
};

interface Case {
  readonly label: string;
  readonly route: string;
  readonly dialect: Dialect;
  readonly body: string | Buffer | null;
  readonly method?: string;
  readonly contentType?: string | null;
  /** True: the answer must be a 4xx. False: anything but a 5xx (a 200 must be well formed). */
  readonly refused: boolean;
}

/** A random JSON value, nested up to `depth`. */
function garbage(random: () => number, depth: number): unknown {
  const r = random();
  if (depth <= 0 || r < 0.45) {
    const leaves: unknown[] = [null, true, false, 0, -1, 1e308, -1e-308, 2 ** 53 + 1, 0.5, '', 'fake', 'user', 'assistant', 'text', 'tool_use', '\u0000', '\ud83d', 'x'.repeat(Math.floor(random() * 2000))];
    return leaves[Math.floor(random() * leaves.length)];
  }
  if (r < 0.7) return Array.from({ length: Math.floor(random() * 4) }, () => garbage(random, depth - 1));
  const keys = ['type', 'role', 'content', 'text', 'model', 'name', 'id', 'input', 'messages', 'function', 'tool_calls', 'x'];
  const object: Record<string, unknown> = {};
  for (let i = Math.floor(random() * 4); i > 0; i--) object[keys[Math.floor(random() * keys.length)]!] = garbage(random, depth - 1);
  return object;
}

function cases(random: () => number): Case[] {
  const out: Case[] = [];
  const add = (c: Case): void => void out.push(c);
  for (const e of endpoints) {
    const base = { route: e.route, dialect: e.dialect };
    // The valid body itself answers 200 (a check that the mutations below are what fails).
    add({ ...base, label: 'valid', body: JSON.stringify(e.valid), refused: false });
    for (const [field, kinds] of Object.entries(e.fields)) {
      // Every value of a kind the field does not take.
      for (const [kind, values] of Object.entries(samples) as [Kind, readonly unknown[]][]) {
        if (kinds.includes(kind) || (kind === 'int' && kinds.includes('number'))) continue;
        for (const wrong of values) add({ ...base, label: `${field} = ${JSON.stringify(wrong).slice(0, 40)}`, body: JSON.stringify({ ...e.valid, [field]: wrong }), refused: true });
      }
      for (const wrong of e.badNumbers[field] ?? []) add({ ...base, label: `${field} = ${wrong}`, body: JSON.stringify({ ...e.valid, [field]: wrong }), refused: true });
      // null: some fields take it; it must never be a 5xx.
      add({ ...base, label: `${field} = null`, body: JSON.stringify({ ...e.valid, [field]: null }), refused: e.required.includes(field) });
      // Random nested garbage: usually wrong, occasionally acceptable.
      for (let i = 0; i < 3; i++) add({ ...base, label: `${field} = garbage ${i}`, body: JSON.stringify({ ...e.valid, [field]: garbage(random, 4) }), refused: false });
      const { [field]: _dropped, ...without } = e.valid;
      add({ ...base, label: `without ${field}`, body: JSON.stringify(without), refused: e.required.includes(field) });
    }
    // Unknown fields, at the top and inside a message.
    for (const extra of ['frobnicate', '__proto__', 'constructor', 'prototype', 'n_ctx', '']) {
      const body = JSON.stringify({ ...e.valid }).replace(/^\{/, `{${JSON.stringify(extra)}:${JSON.stringify(garbage(random, 2))},`);
      add({ ...base, label: `extra field ${JSON.stringify(extra)}`, body, refused: true });
    }
    add({ ...base, label: 'extra field in a message', body: JSON.stringify({ ...e.valid, messages: [{ role: 'user', content: 'Hi', extra: 1 }] }), refused: true });
    // Messages that are garbage in every other way.
    const messageCases: unknown[] = [[], [null], [1], ['Hi'], [{}], [{ role: 'user' }], [{ role: 'robot', content: 'x' }], [{ role: 'user', content: 5 }], [{ role: 'user', content: [{ type: 'text' }] }], [{ role: 'user', content: [{ type: 'text', text: 5 }] }], [{ role: 'user', content: [null] }], [{ role: 'tool', content: 'x', tool_call_id: 'nope' }], Array.from({ length: 10_001 }, () => ({ role: 'user', content: 'x' }))];
    if (e.route !== '/v1/completions') {
      for (const messages of messageCases) add({ ...base, label: `messages = ${JSON.stringify(messages).slice(0, 60)}`, body: JSON.stringify({ ...e.valid, messages }), refused: true });
      for (let i = 0; i < 8; i++) add({ ...base, label: `messages = garbage ${i}`, body: JSON.stringify({ ...e.valid, messages: [garbage(random, 5), garbage(random, 5)] }), refused: false });
    }
    // Whole bodies that are not an object, or not JSON.
    for (const body of ['[]', '"a string"', 'null', '42', 'true', JSON.stringify([e.valid])]) add({ ...base, label: `body ${body.slice(0, 30)}`, body, refused: true });
    for (const body of malformedBodies(random, 20)) add({ ...base, label: `malformed ${String(body).slice(0, 30)}`, body, refused: true });
    for (let i = 0; i < 10; i++) add({ ...base, label: `random body ${i}`, body: JSON.stringify(garbage(random, 6)), refused: true });
    add({ ...base, label: 'no body', body: null, refused: true });
    // Content types other than JSON: the body is still read as JSON (as OpenAI's server does).
    add({ ...base, label: 'text/plain JSON', body: JSON.stringify(e.valid), contentType: 'text/plain', refused: false });
    add({ ...base, label: 'no content type', body: JSON.stringify(e.valid), contentType: null, refused: false });
    add({ ...base, label: 'form body', body: 'model=fake&max_tokens=8', contentType: 'application/x-www-form-urlencoded', refused: true });
    add({ ...base, label: 'multipart body', body: '--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nfake\r\n--b--', contentType: 'multipart/form-data; boundary=b', refused: true });
    // Wrong methods.
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) add({ ...base, label: method, method, body: null, refused: true });
  }
  // Deep nesting where a schema takes any JSON (tool arguments, tool schemas, response schemas).
  for (const depth of [100, 2_000, 20_000, 200_000]) {
    // Built as text: JSON.stringify itself would overflow the stack on the deepest.
    const deep = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    const at = (body: unknown): string => JSON.stringify(body).replace('"DEEP"', deep);
    const openai = endpoints[0]!;
    add({ route: openai.route, dialect: 'openai', label: `deep tool parameters ${depth}`, body: at({ ...openai.valid, tools: [{ type: 'function', function: { name: 'f', parameters: 'DEEP' } }] }), refused: false });
    add({ route: openai.route, dialect: 'openai', label: `deep response schema ${depth}`, body: at({ model: 'fake', messages: user, response_format: { type: 'json_schema', json_schema: { name: 's', schema: 'DEEP' } } }), refused: false });
    add({ route: openai.route, dialect: 'openai', label: `deep tool call arguments ${depth}`, body: JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: deep } }] }, { role: 'tool', tool_call_id: 't', content: 'ok' }] }), refused: false });
    add({ route: '/v1/messages', dialect: 'anthropic', label: `deep tool_use input ${depth}`, body: at({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: 'DEEP' }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'ok' }] }] }), refused: false });
    add({ route: '/v1/messages/count_tokens', dialect: 'anthropic', label: `deep input_schema ${depth}`, body: at({ model: 'fake', messages: user, tools: [{ name: 'f', input_schema: 'DEEP' }] }), refused: false });
  }
  // Routes that do not exist, in each dialect.
  for (const route of ['/v1/embeddings', '/v1/messages/batches', '/v1/chat', '/v2/chat/completions', '/', '/v1/models/fake/../../x', '/v1/%00', '/v1/chat/completions/extra']) {
    add({ route, dialect: route.startsWith('/v1/messages') ? 'anthropic' : 'openai', label: `route ${route}`, body: '{}', refused: true });
  }
  add({ route: '/v1/models', dialect: 'openai', label: 'POST /v1/models', body: '{}', refused: true });
  return out;
}

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

function send(port: number, c: Case): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (c.contentType !== null) headers['content-type'] = c.contentType ?? 'application/json';
    if (c.body !== null) headers['content-length'] = String(Buffer.byteLength(c.body));
    const req = httpRequest({ host: '127.0.0.1', port, path: c.route, method: c.method ?? 'POST', headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${c.label}`)));
    req.on('error', reject);
    req.end(c.body ?? undefined);
  });
}

/** What is wrong with a reply to `c`, or null. */
function problem(c: Case, reply: Reply): string | null {
  if (reply.status >= 500) return `a ${reply.status}: ${reply.body.slice(0, 300)}`;
  if (c.refused && (reply.status < 400 || reply.status >= 500)) return `expected a 4xx, got ${reply.status}`;
  if (reply.status >= 400) {
    if (!reply.contentType.startsWith('application/json')) return `error content type ${reply.contentType}`;
    let body: unknown;
    try {
      body = JSON.parse(reply.body);
    } catch {
      return `error body is not JSON: ${reply.body.slice(0, 100)}`;
    }
    if (c.dialect === 'openai') {
      const e = (body as { error?: Record<string, unknown> }).error;
      if (!e || Object.keys(body as object).length !== 1) return `not an OpenAI error body: ${reply.body.slice(0, 200)}`;
      if (typeof e.message !== 'string' || e.message === '' || typeof e.type !== 'string' || !('param' in e) || !('code' in e)) return `incomplete OpenAI error: ${reply.body.slice(0, 200)}`;
      if (e.param !== null && typeof e.param !== 'string') return 'param is neither null nor a string';
      if (e.code !== null && typeof e.code !== 'string') return 'code is neither null nor a string';
    } else {
      const b = body as { type?: unknown; error?: { type?: unknown; message?: unknown } };
      if (b.type !== 'error' || typeof b.error?.type !== 'string' || typeof b.error.message !== 'string' || b.error.message === '') return `not an Anthropic error body: ${reply.body.slice(0, 200)}`;
      if (Object.keys(b).length !== 2 || Object.keys(b.error).length !== 2) return `extra keys in an Anthropic error body: ${reply.body.slice(0, 200)}`;
    }
    return null;
  }
  if (reply.status !== 200) return `unexpected status ${reply.status}`;
  if (reply.contentType.startsWith('text/event-stream')) {
    if (c.dialect === 'openai' ? !reply.body.endsWith('data: [DONE]\n\n') : !reply.body.includes('event: message_stop')) return `stream did not finish: ${reply.body.slice(-200)}`;
    return null;
  }
  try {
    JSON.parse(reply.body);
  } catch {
    return `200 body is not JSON: ${reply.body.slice(0, 100)}`;
  }
  return null;
}

describe('API fuzz', () => {
  let t: TestHearth;
  let port: number;

  beforeAll(async () => {
    t = await startTestHearth({ api: { port: 0, key } });
    t.engine.behaviour.tokens = ['ok'];
    t.engine.behaviour.tokenDelayMs = 0;
    port = Number(/:(\d+)\/v1$/.exec(value(await t.hearth.api['server.state']({})).url!)![1]);
  });

  afterAll(async () => {
    await t.cleanup();
  });

  it('answers every malformed request with a 4xx in its dialect, never a 5xx, and keeps serving', async () => {
    const all = cases(mulberry32(seed));
    expect(all.length).toBeGreaterThan(500);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    // A few at a time: well under the server's queue limit, so no case is answered 429.
    const batch = 12;
    for (let i = 0; i < all.length; i += batch) {
      const slice = all.slice(i, i + batch);
      const replies = await Promise.all(slice.map((c) => send(port, c).catch((error: unknown) => ({ status: 0, contentType: '', body: String(error) }))));
      slice.forEach((c, j) => {
        const reply = replies[j]!;
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        const wrong = reply.status === 0 ? `no answer: ${reply.body}` : problem(c, reply);
        if (wrong !== null) failures.push(`${c.route} ${c.label}: ${wrong}`);
      });
    }
    expect(failures).toEqual([]);
    // Most cases are refusals; the valid bodies (and a few acceptable mutations) were served.
    expect(statuses.get(200) ?? 0).toBeGreaterThanOrEqual(endpoints.length);
    expect([...statuses.entries()].filter(([s]) => s >= 400).reduce((n, [, k]) => n + k, 0)).toBeGreaterThan(all.length * 0.8);
    // Nothing failed inside the server.
    expect(t.log.lines.filter((l) => /failed/.test(l) && l.startsWith('warn'))).toEqual([]);

    // And it still answers a valid request as before.
    const after = await send(port, { route: '/v1/chat/completions', dialect: 'openai', label: 'after', body: JSON.stringify({ model: 'fake', messages: user }), refused: false });
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toMatchObject({ object: 'chat.completion', choices: [{ message: { content: 'ok' } }] });
    const messages = await send(port, { route: '/v1/messages', dialect: 'anthropic', label: 'after', body: JSON.stringify({ model: 'fake', max_tokens: 8, messages: user }), refused: false });
    expect(messages.status).toBe(200);
  }, 30_000);
});
