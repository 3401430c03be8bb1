// The API server's locks: off until turned on, 127.0.0.1 only (unless LAN), the key (and only the
// key; that the browser host's UI token is refused is checked in server/main.test.ts, since the
// engine may not import the server), Host and Origin checks, CORS, body and queue limits, a gone client's generation stopped,
// the key kept 0600 and rotated, and the request log. Fake engine; raw node:http where headers
// (Host, Origin) must be set freely.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import type { ApiRequestLog, HearthEvent } from '../../contract/index.ts';
import { startTestHearth, until, useTestHearths, value, type TestHearth } from '../../../test/support/host-fixture.ts';
import { maxActiveRequests, maxApiBodyBytes, maxQueuedRequests } from './http.ts';

const key = 'test-key-security-0123456789';
const start = useTestHearths();

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on its own connection (no pooling: the queue test needs every one in flight). */
function call(port: number, route: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; host?: string; chunked?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = options.body;
    const headers: Record<string, string> = { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers };
    if (body !== undefined && !options.chunked) headers['content-length'] = String(Buffer.byteLength(body));
    const req = httpRequest({ host: options.host ?? '127.0.0.1', port, path: route, method: options.method ?? (body !== undefined ? 'POST' : 'GET'), headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined && options.chunked) {
      // Several writes without a length: Transfer-Encoding chunked.
      const buffer = Buffer.from(body);
      const step = 1024 * 1024;
      for (let i = 0; i < buffer.length; i += step) req.write(buffer.subarray(i, i + step));
    } else if (body !== undefined) {
      req.write(body);
    }
    req.end();
  });
}

const auth = { authorization: `Bearer ${key}` };
const chatBody = (extra: Record<string, unknown> = {}): string => JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'Hi' }], ...extra });

async function withApi(): Promise<{ t: TestHearth; port: number }> {
  const t = await start({ api: { port: 0, key } });
  const state = value(await t.hearth.api['server.state']({}));
  return { t, port: Number(/:(\d+)\/v1$/.exec(state.url!)![1]) };
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

/** Whether a TCP connection to host:port is refused (or otherwise fails). */
async function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    await call(port, '/v1/models', { host, headers: auth });
    return false;
  } catch {
    return true;
  }
}

/** This machine's first non-loopback IPv4 address, or null. */
function otherAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

const requestEvents = (t: TestHearth): ApiRequestLog[] => t.events.filter((e): e is Extract<HearthEvent, { type: 'server.request' }> => e.type === 'server.request').map((e) => e.payload);

describe('turning the API server on and off', () => {
  it('is off by default, listens on 127.0.0.1 only once turned on, and stops when turned off', async () => {
    const t = await start();
    const port = await freePort();
    const initial = value(await t.hearth.api['server.state']({}));
    expect(initial).toMatchObject({ status: 'off', url: null, error: null, overridden: false, settings: { enabled: false, port: 4724, lan: false, corsOrigins: [] } });
    expect(initial.key).toMatch(/^hearth-[A-Za-z0-9_-]{43}$/);
    // A port alone does not turn it on.
    value(await t.hearth.api['server.configure']({ port }));
    expect(value(await t.hearth.api['server.state']({})).status).toBe('off');
    expect(await refused(port)).toBe(true);

    const on = value(await t.hearth.api['server.configure']({ enabled: true }));
    expect(on.status).toBe('listening');
    expect(on.url).toBe(`http://127.0.0.1:${port}/v1`);
    expect(t.events.some((e) => e.type === 'server.state' && e.payload.status === 'listening')).toBe(true);
    expect(t.log.lines).toContain(`info API server listening on 127.0.0.1:${port}`);
    const models = await call(port, '/v1/models', { headers: { authorization: `Bearer ${on.key}` } });
    expect(models.status).toBe(200);
    expect(JSON.parse(models.body)).toMatchObject({ object: 'list', data: [{ id: 'fake' }] });
    // Not on other addresses of this machine.
    const other = otherAddress();
    if (other !== null) expect(await refused(port, other)).toBe(true);

    const off = value(await t.hearth.api['server.configure']({ enabled: false }));
    expect(off.status).toBe('off');
    expect(off.url).toBeNull();
    expect(await refused(port)).toBe(true);
  });

  it('reports a taken port as an error state, not a crash', async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const t = await start();
      const state = value(await t.hearth.api['server.configure']({ enabled: true, port }));
      expect(state.status).toBe('error');
      expect(state.url).toBeNull();
      expect(state.error).toMatchObject({ code: 'BUSY' });
      expect(state.error!.message).toContain(String(port));
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('with LAN on binds every interface, still shows the 127.0.0.1 address, and skips the Host check', async () => {
    const t = await start();
    const port = await freePort();
    const state = value(await t.hearth.api['server.configure']({ enabled: true, port, lan: true }));
    expect(state.url).toBe(`http://127.0.0.1:${port}/v1`);
    expect(t.log.lines).toContain(`info API server listening on 0.0.0.0:${port}`);
    const k = { authorization: `Bearer ${state.key}` };
    expect((await call(port, '/v1/models', { headers: k })).status).toBe(200);
    // Another machine names this one by its LAN address or name.
    expect((await call(port, '/v1/models', { headers: { ...k, host: `hearth.lan:${port}` } })).status).toBe(200);
    const other = otherAddress();
    if (other !== null) expect((await call(port, '/v1/models', { host: other, headers: k })).status).toBe(200);
    // The key is still required.
    expect((await call(port, '/v1/models', { headers: { host: `hearth.lan:${port}` } })).status).toBe(401);
    // And back to loopback only.
    value(await t.hearth.api['server.configure']({ lan: false }));
    if (other !== null) expect(await refused(port, other)).toBe(true);
    expect((await call(port, '/v1/models', { headers: { ...k, host: `hearth.lan:${port}` } })).status).toBe(403);
  });

  it('applies the network switch when the command line set the port, and keeps that port', async () => {
    const port = await freePort();
    const t = await start({ api: { port, key } });
    value(await t.hearth.api['server.configure']({ lan: true, port: 1 }));
    expect(t.log.lines).toContain(`info API server listening on 0.0.0.0:${port}`);
    expect(value(await t.hearth.api['server.state']({})).url).toBe(`http://127.0.0.1:${port}/v1`);
  });
});

describe('the key', () => {
  it('is required, as a Bearer token or x-api-key, and nothing else passes', async () => {
    const { port } = await withApi();
    const none = await call(port, '/v1/models');
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ error: { type: 'authentication_error', code: 'invalid_api_key' } });
    expect((await call(port, '/v1/models', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    // Same length, one character off.
    expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${key.slice(0, -1)}X` } })).status).toBe(401);
    expect((await call(port, '/v1/models', { headers: { authorization: `Basic ${key}` } })).status).toBe(401);
    expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await call(port, '/v1/models', { headers: { authorization: `bearer  ${key}` } })).status).toBe(200);
    expect((await call(port, '/v1/models', { headers: { 'x-api-key': key } })).status).toBe(200);
    // The key is checked before the body is read or the route is looked up.
    expect((await call(port, '/v1/chat/completions', { body: chatBody() })).status).toBe(401);
    expect((await call(port, '/v1/nothing-here')).status).toBe(401);
    const anthropic = await call(port, '/v1/messages', { body: '{}' });
    expect(anthropic.status).toBe(401);
    expect(JSON.parse(anthropic.body)).toEqual({ type: 'error', error: { type: 'authentication_error', message: expect.any(String) as string } });
  });

  it('is stored 0600 under secrets/, survives a restart, and a rotation refuses the old one at once', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'hearth-api-key-'));
    const first = await startTestHearth({ dataDir });
    let firstDisposed = false;
    try {
      const port = await freePort();
      const on = value(await first.hearth.api['server.configure']({ enabled: true, port }));
      const file = path.join(dataDir, 'secrets', 'api-key');
      expect(readFileSync(file, 'utf8').trim()).toBe(on.key);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(path.join(dataDir, 'secrets')).mode & 0o777).toBe(0o700);
      expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${on.key}` } })).status).toBe(200);

      const rotated = value(await first.hearth.api['server.rotateKey']({}));
      expect(rotated.key).not.toBe(on.key);
      expect(rotated.key).toMatch(/^hearth-/);
      expect(first.events.some((e) => e.type === 'server.state' && e.payload.key === rotated.key)).toBe(true);
      expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${on.key}` } })).status).toBe(401);
      expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${rotated.key}` } })).status).toBe(200);
      expect(readFileSync(file, 'utf8').trim()).toBe(rotated.key);
      expect(statSync(file).mode & 0o777).toBe(0o600);

      await first.hearth.dispose();
      firstDisposed = true;
      expect(await refused(port)).toBe(true);
      // A new Hearth on the same data directory: the same key, the saved settings, listening again.
      const second = await start({ dataDir });
      const again = value(await second.hearth.api['server.state']({}));
      expect(again.key).toBe(rotated.key);
      expect(again.status).toBe('listening');
      expect(again.settings).toMatchObject({ enabled: true, port });
      expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${rotated.key}` } })).status).toBe(200);
    } finally {
      if (!firstDisposed) await first.hearth.dispose();
    }
  });

  it('from the command line is used for the run without replacing the stored one', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'hearth-api-key-'));
    const plain = await startTestHearth({ dataDir });
    const stored = value(await plain.hearth.api['server.state']({})).key;
    await plain.hearth.dispose();
    const t = await start({ dataDir, api: { port: 0, key } });
    const state = value(await t.hearth.api['server.state']({}));
    expect(state).toMatchObject({ key, overridden: true, status: 'listening' });
    expect(readFileSync(path.join(dataDir, 'secrets', 'api-key'), 'utf8').trim()).toBe(stored);
    const port = Number(/:(\d+)\/v1$/.exec(state.url!)![1]);
    expect((await call(port, '/v1/models', { headers: { authorization: `Bearer ${stored}` } })).status).toBe(401);
    expect((await call(port, '/v1/models', { headers: auth })).status).toBe(200);
    // The screen's switch does not stop a command-line server.
    expect(value(await t.hearth.api['server.configure']({ enabled: false })).status).toBe('listening');
    expect((await call(port, '/v1/models', { headers: auth })).status).toBe(200);
  });
});

describe('Host, Origin and CORS', () => {
  it('refuses a Host that is not this machine (DNS rebinding) with 403', async () => {
    const { port } = await withApi();
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.evil.example:${port}`, `127.0.0.1:${port + 1}`]) {
      const reply = await call(port, '/v1/models', { headers: { ...auth, host } });
      expect(reply.status, host).toBe(403);
      expect(JSON.parse(reply.body)).toMatchObject({ error: { type: 'permission_error', code: 'forbidden_host' } });
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
      expect((await call(port, '/v1/models', { headers: { ...auth, host } })).status, host).toBe(200);
    }
    const anthropic = await call(port, '/v1/messages', { headers: { ...auth, host: 'evil.example' }, body: '{}' });
    expect(anthropic.status).toBe(403);
    expect(JSON.parse(anthropic.body)).toMatchObject({ type: 'error', error: { type: 'permission_error' } });
  });

  it('refuses web pages unless their origin is listed, and answers listed ones with CORS headers', async () => {
    const { t, port } = await withApi();
    const page = 'http://localhost:3000';
    const refusedOrigin = await call(port, '/v1/models', { headers: { ...auth, origin: page } });
    expect(refusedOrigin.status).toBe(403);
    expect(JSON.parse(refusedOrigin.body)).toMatchObject({ error: { code: 'forbidden_origin' } });
    expect(refusedOrigin.headers['access-control-allow-origin']).toBeUndefined();
    expect((await call(port, '/v1/models', { method: 'OPTIONS', headers: { origin: page, 'access-control-request-method': 'POST' } })).status).toBe(403);

    value(await t.hearth.api['server.configure']({ corsOrigins: [page] }));
    const allowed = await call(port, '/v1/models', { headers: { ...auth, origin: page } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe(page);
    expect(allowed.headers.vary).toMatch(/Origin/);
    // A preflight carries no key: it is answered without one.
    const preflight = await call(port, '/v1/chat/completions', { method: 'OPTIONS', headers: { origin: page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(page);
    expect(preflight.headers['access-control-allow-methods']).toMatch(/POST/);
    expect(preflight.headers['access-control-allow-headers']).toMatch(/authorization/);
    expect(preflight.headers['access-control-allow-headers']).toMatch(/x-api-key/);
    // Listed origins still need the key; errors to them carry CORS headers so the page can read them.
    const noKey = await call(port, '/v1/models', { headers: { origin: page } });
    expect(noKey.status).toBe(401);
    expect(noKey.headers['access-control-allow-origin']).toBe(page);
    // Streams too.
    const stream = await call(port, '/v1/chat/completions', { headers: { ...auth, origin: page }, body: chatBody({ stream: true }) });
    expect(stream.status).toBe(200);
    expect(stream.headers['access-control-allow-origin']).toBe(page);
    // Another origin is still refused.
    expect((await call(port, '/v1/models', { headers: { ...auth, origin: 'http://localhost:3001' } })).status).toBe(403);
  });
});

describe('limits', () => {
  it('answers 413 to a body over 8 MiB, declared or chunked, and keeps serving', async () => {
    const { t, port } = await withApi();
    const big = JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'x'.repeat(maxApiBodyBytes) }] });
    const declared = await call(port, '/v1/chat/completions', { headers: auth, body: big });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toMatchObject({ error: { code: 'request_too_large' } });
    const chunked = await call(port, '/v1/messages', { headers: auth, body: big, chunked: true });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toEqual({ type: 'error', error: { type: 'request_too_large', message: expect.stringMatching(/8 MiB/) as string } });
    expect(t.engine.callsOf('generate')).toEqual([]);
    expect((await call(port, '/v1/chat/completions', { headers: auth, body: chatBody() })).status).toBe(200);
  });

  it(`answers 429 beyond ${maxActiveRequests} running and ${maxQueuedRequests} waiting requests, and serves the rest once the engine goes on`, async () => {
    const { t, port } = await withApi();
    t.engine.behaviour.pauseAfter = 0;
    const total = maxActiveRequests + maxQueuedRequests + 5;
    const replies = Array.from({ length: total }, (_, i) => call(port, '/v1/chat/completions', { headers: auth, body: chatBody({ messages: [{ role: 'user', content: `request ${i}` }] }) }));
    const settled: Reply[] = [];
    for (const r of replies) void r.then((reply) => settled.push(reply));
    await until(() => settled.length >= 5, 5000);
    expect(settled.map((r) => r.status)).toEqual([429, 429, 429, 429, 429]);
    expect(JSON.parse(settled[0]!.body)).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
    // Only the running ones reached the engine.
    expect(t.engine.callsOf('generate')).toHaveLength(maxActiveRequests);
    // Listing models does not queue behind generations.
    expect((await call(port, '/v1/models', { headers: auth })).status).toBe(200);

    t.engine.behaviour.pauseAfter = null;
    t.engine.release();
    const all = await Promise.all(replies);
    expect(all.filter((r) => r.status === 200)).toHaveLength(maxActiveRequests + maxQueuedRequests);
    expect(all.filter((r) => r.status === 429)).toHaveLength(5);
    expect(t.engine.callsOf('generate')).toHaveLength(maxActiveRequests + maxQueuedRequests);
    // And the gate is open again.
    expect((await call(port, '/v1/chat/completions', { headers: auth, body: chatBody() })).status).toBe(200);
  }, 20_000);

  it('stops the generation when the client goes away mid-stream', async () => {
    const { t, port } = await withApi();
    t.engine.behaviour.pauseAfter = 2;
    const received: string[] = [];
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => received.push(c));
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    req.end(chatBody({ stream: true }));
    // The fake engine pauses after its second token ("Hello", ","): wait until both are out.
    await until(() => received.join('').includes('"content":","'), 3000);
    const generate = t.engine.callsOf('generate')[0]!;
    expect(t.engine.callsOf('abort')).toEqual([]);
    req.destroy();
    await until(() => t.engine.callsOf('abort').some((a) => a.requestId === generate.requestId), 3000);
    t.engine.release();
    const logged = await t.waitFor((e) => e.type === 'server.request');
    expect(logged.type === 'server.request' && logged.payload).toMatchObject({ endpoint: 'POST /v1/chat/completions', status: 499 });
    // A stopped turn is not recorded as one of the cache's turns.
    expect(t.events.some((e) => e.type === 'cache.turn')).toBe(false);
    // The next request runs normally.
    t.engine.behaviour.pauseAfter = null;
    expect((await call(port, '/v1/chat/completions', { headers: auth, body: chatBody() })).status).toBe(200);
  });
  it('stops the generation when the client of a non-streamed request goes away', async () => {
    const { t, port } = await withApi();
    t.engine.behaviour.pauseAfter = 1;
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, agent: false });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ model: 'fake', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }] }));
    await until(() => t.engine.callsOf('generate').length === 1, 3000);
    const generate = t.engine.callsOf('generate')[0]!;
    req.destroy();
    await until(() => t.engine.callsOf('abort').some((a) => a.requestId === generate.requestId), 3000);
    const logged = await t.waitFor((e) => e.type === 'server.request');
    expect(logged.type === 'server.request' && logged.payload).toMatchObject({ endpoint: 'POST /v1/messages', status: 499 });
  });
});

describe('the request log', () => {
  it('records each request with its client, status, tokens and cache, and the turn in the cache view as an API one', async () => {
    const { t, port } = await withApi();
    t.engine.behaviour.stats = { tokensReused: 6, tokensRestored: 4 };
    const state = value(await t.hearth.api['server.state']({}));
    const client = new OpenAI({ apiKey: key, baseURL: state.url!, maxRetries: 0 });
    await client.chat.completions.create({ model: 'fake', messages: [{ role: 'user', content: 'Hello' }] });
    const entry = requestEvents(t).at(-1)!;
    expect(entry.client).toMatch(/^OpenAI\/JS \d+\.\d+\.\d+$/);
    expect(entry).toMatchObject({ endpoint: 'POST /v1/chat/completions', model: 'fake', status: 200, promptTokens: 10 + 5, cachedTokens: 10, ttftMs: 40 });
    expect(entry.error).toBeUndefined();
    const generate = t.engine.callsOf('generate').at(-1)!;
    const turn = await t.waitFor((e) => e.type === 'cache.turn');
    expect(turn.type === 'cache.turn' && turn.payload).toMatchObject({ source: 'api', chatId: generate.chatId, messageId: generate.requestId, stats: { tokensReused: 6, tokensRestored: 4 } });
    expect(t.log.lines.some((l) => /^info API POST \/v1\/chat\/completions 200 from OpenAI\/JS [\d.]+, 15 prompt tokens, 10 cached$/.test(l))).toBe(true);

    // Failures are logged with their reason; ids count up; server.state returns them in order.
    await call(port, '/v1/models');
    await call(port, '/v1/chat/completions', { headers: { ...auth, 'user-agent': 'curl/8.5.0' }, body: chatBody({ n: 3 }) });
    const entries = value(await t.hearth.api['server.state']({})).requests;
    expect(entries.map((e) => [e.endpoint, e.status])).toEqual([
      ['POST /v1/chat/completions', 200],
      ['GET /v1/models', 401],
      ['POST /v1/chat/completions', 400],
    ]);
    expect(entries.map((e) => e.id)).toEqual([entries[0]!.id, entries[0]!.id + 1, entries[0]!.id + 2]);
    expect(entries[1]!.client).toBe('unknown');
    expect(entries[1]!.error).toMatch(/API key/);
    expect(entries[2]).toMatchObject({ client: 'curl/8.5.0', model: 'fake', promptTokens: null });
    expect(entries[2]!.error).toMatch(/^n: /);
    // The key itself never reaches the log.
    expect(JSON.stringify(entries)).not.toContain(key);
    expect(t.log.lines.join('\n')).not.toContain(key);
  });
});
