import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { err, maxBodyBytes, ok, validateCall, type HearthEvent, type Result } from '../engine/contract/index.ts';
import { createServer, type HearthHost, type RunningServer } from './app.ts';

/** A stand-in for the engine host: validates like the real one, records calls, emits events on demand. */
class FakeHearth implements HearthHost {
  calls: { name: unknown; payload: unknown }[] = [];
  listeners = new Set<(event: HearthEvent) => void>();
  throwOnCall = false;

  async call(name: unknown, payload: unknown): Promise<Result<unknown>> {
    this.calls.push({ name, payload });
    if (this.throwOnCall) throw new Error('boom: secret stack detail');
    const v = validateCall(name, payload);
    if (!v.ok) return { ok: false, error: v.error };
    if (v.name === 'chats.get') return err('NOT_FOUND', 'There is no such chat.');
    if (v.name === 'chats.list') return ok({ chats: [] });
    return ok({ echo: v.input });
  }

  onEvent(listener: (event: HearthEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: HearthEvent): void {
    for (const l of this.listeners) l(event);
  }

  async metricsText(): Promise<string> {
    return '# TYPE hearth_generated_tokens_total counter\nhearth_generated_tokens_total 7\n';
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Raw HTTP (not fetch): tests must set Host and Origin freely and send unnormalized paths. */
function request(
  server: RunningServer,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: server.port, path, method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function post(server: RunningServer, name: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return request(server, `/api/call/${name}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}`, ...headers },
    body,
  });
}

let staticDir: string;
let hearth: FakeHearth;
let server: RunningServer;

beforeAll(async () => {
  staticDir = await mkdtemp(join(tmpdir(), 'hearth-static-'));
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hearth</title><script type="module" src="/assets/app.js"></script>');
  await mkdir(join(staticDir, 'assets'));
  await writeFile(join(staticDir, 'assets', 'app.js'), 'console.log("hi");');
  await writeFile(join(staticDir, 'assets', 'app.css'), 'body{}');
  await writeFile(join(staticDir, '.secret'), 'nope');
});

afterAll(async () => {
  await rm(staticDir, { recursive: true, force: true });
});

beforeEach(async () => {
  hearth = new FakeHearth();
  server = await createServer({ hearth, port: 0, staticDir, log: () => undefined });
});

afterEach(async () => {
  await server.close();
});

describe('startup', () => {
  it('binds 127.0.0.1 with a random base64url token', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const other = await createServer({ hearth, port: 0, staticDir, log: () => undefined });
    expect(other.token).not.toBe(server.token);
    await other.close();
  });
});

describe('token', () => {
  it('answers 401 without a token: JSON for the API, a short page for /', async () => {
    const api = await request(server, '/api/call/chats.list', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    const page = await request(server, '/');
    expect(page.status).toBe(401);
    expect(page.headers['content-type']).toMatch(/^text\/plain/);
    expect(page.body).toMatch(/token/);
    expect(page.headers['set-cookie']).toBeUndefined();
    const asset = await request(server, '/assets/app.js');
    expect(asset.status).toBe(401);
    expect(hearth.calls).toHaveLength(0);
  });

  it('answers 401 for a wrong token, a token of another length, an empty token and a prefix', async () => {
    for (const t of ['x'.repeat(server.token.length), 'short', '', server.token.slice(0, -1), server.token + 'A']) {
      const r = await post(server, 'chats.list', '{}', { Authorization: `Bearer ${t}` });
      expect(r.status, `token ${JSON.stringify(t)}`).toBe(401);
      const q = await request(server, `/?token=${encodeURIComponent(t)}`);
      expect(q.status).toBe(401);
    }
    expect(hearth.calls).toHaveLength(0);
  });

  it('accepts the token as ?token=, as a Bearer header and as the cookie', async () => {
    const q = await request(server, `/api/call/chats.list?token=${server.token}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(q.status).toBe(200);
    const b = await post(server, 'chats.list', '{}');
    expect(b.status).toBe(200);
    const c = await request(server, '/api/call/chats.list', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: `other=1; hearth_token_${server.port}=${server.token}` },
      body: '{}',
    });
    expect(c.status).toBe(200);
    // A cookie for another port's instance is not ours.
    const wrongPort = await request(server, '/api/call/chats.list', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: `hearth_token_${server.port + 1}=${server.token}` },
      body: '{}',
    });
    expect(wrongPort.status).toBe(401);
  });

  it('sets an HttpOnly, SameSite=Strict cookie on GET /?token= and the page then loads its assets with it', async () => {
    const page = await request(server, `/?token=${server.token}`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const setCookie = page.headers['set-cookie'];
    expect(setCookie).toHaveLength(1);
    const cookie = setCookie?.[0] ?? '';
    expect(cookie).toBe(`hearth_token_${server.port}=${server.token}; HttpOnly; SameSite=Strict; Path=/`);
    const pair = cookie.split(';')[0] ?? '';
    const asset = await request(server, '/assets/app.js', { headers: { Cookie: pair } });
    expect(asset.status).toBe(200);
    expect(asset.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(asset.body).toBe('console.log("hi");');
  });

  it('never sets the cookie from a wrong ?token=, even when the request is authorized another way', async () => {
    const page = await request(server, '/?token=wrong', { headers: { Authorization: `Bearer ${server.token}` } });
    expect(page.status).toBe(200);
    expect(page.headers['set-cookie']).toBeUndefined();
  });
});

describe('Host and Origin (DNS rebinding)', () => {
  it('answers 403 for a foreign Origin, even with the token', async () => {
    for (const origin of ['http://evil.example', `http://127.0.0.1:${server.port + 1}`, 'null', `https://127.0.0.1:${server.port}`]) {
      const r = await post(server, 'chats.list', '{}', { Origin: origin });
      expect(r.status, origin).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    }
    expect(hearth.calls).toHaveLength(0);
  });

  it('accepts our own origins', async () => {
    for (const origin of [`http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`]) {
      expect((await post(server, 'chats.list', '{}', { Origin: origin })).status).toBe(200);
    }
    expect((await post(server, 'chats.list', '{}', { Host: `localhost:${server.port}` })).status).toBe(200);
  });

  it('answers 403 for a foreign Host header', async () => {
    for (const host of ['evil.example', `evil.example:${server.port}`, '127.0.0.1', `127.0.0.1:${server.port + 1}`]) {
      const r = await post(server, 'chats.list', '{}', { Host: host });
      expect(r.status, host).toBe(403);
    }
    const page = await request(server, `/?token=${server.token}`, { headers: { Host: 'rebound.example' } });
    expect(page.status).toBe(403);
    expect(page.headers['set-cookie']).toBeUndefined();
  });
});

describe('POST /api/call/<name>', () => {
  it('passes the JSON body to hearth.call and answers with the Result', async () => {
    const r = await post(server, 'chats.create', JSON.stringify({ title: 'Hi' }));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(r.body)).toEqual({ ok: true, value: { echo: { title: 'Hi' } } });
    expect(hearth.calls).toEqual([{ name: 'chats.create', payload: { title: 'Hi' } }]);
  });

  it('treats an empty body as {}', async () => {
    const r = await post(server, 'chats.list', '');
    expect(r.status).toBe(200);
    expect(hearth.calls[0]?.payload).toEqual({});
  });

  it('answers 413 PAYLOAD_TOO_LARGE over the body limit, whether declared or streamed', async () => {
    const big = JSON.stringify({ title: 'x'.repeat(maxBodyBytes) });
    const declared = await post(server, 'chats.create', big);
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toMatchObject({ ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    // Chunked: no Content-Length, so the limit must be enforced while reading.
    const streamed = await new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/api/call/chats.create',
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}`, 'Transfer-Encoding': 'chunked' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        },
      );
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = (): void => {
        while (sent <= maxBodyBytes + chunk.length) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body)).toMatchObject({ ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(hearth.calls).toHaveLength(0);
  });

  it('answers 400 INVALID_INPUT for bad JSON and invalid UTF-8', async () => {
    for (const body of ['{not json', '[1,', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
      const r = await post(server, 'chats.create', body);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    }
    expect(hearth.calls).toHaveLength(0);
  });

  it('answers 400 for input the contract rejects', async () => {
    const r = await post(server, 'chats.send', JSON.stringify({ chatId: 'a', text: '   ' }));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('requires Content-Type application/json', async () => {
    const r = await post(server, 'chats.list', '{}', { 'Content-Type': 'text/plain' });
    expect(r.status).toBe(415);
    expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect((await post(server, 'chats.list', '{}', { 'Content-Type': 'application/json; charset=utf-8' })).status).toBe(200);
  });

  it('answers 404 for an unknown call, and for a NOT_FOUND result', async () => {
    for (const name of ['no.such', '__proto__', 'toString', 'chats.list%2F..', '']) {
      const r = await post(server, name, '{}');
      expect(r.status, name).toBe(404);
      expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    }
    const r = await post(server, 'chats.get', JSON.stringify({ chatId: 'missing' }));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'There is no such chat.' } });
  });

  it('answers 405 for GET on a call', async () => {
    const r = await request(server, `/api/call/chats.list?token=${server.token}`);
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST');
  });

  it('answers 500 INTERNAL without a stack when Hearth throws', async () => {
    hearth.throwOnCall = true;
    const r = await post(server, 'chats.list', '{}');
    expect(r.status).toBe(500);
    expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(r.body).not.toMatch(/boom|secret|at /);
  });

  it('answers 404 NOT_FOUND for other API paths', async () => {
    const r = await request(server, `/api/nothing?token=${server.token}`);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });
});

describe('security headers', () => {
  it('sends a strict CSP, nosniff and no-referrer on every response, and no CORS', async () => {
    const replies = [
      await request(server, '/'),
      await request(server, `/?token=${server.token}`),
      await post(server, 'chats.list', '{}'),
      await post(server, 'chats.list', '{}', { Origin: 'http://evil.example' }),
      await request(server, `/assets/missing.js?token=${server.token}`),
      await request(server, `/metrics?token=${server.token}`),
    ];
    for (const r of replies) {
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${server.port} ws://localhost:${server.port}`);
      expect(csp).not.toContain('unsafe');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
  });
});

describe('static files', () => {
  const auth = (): Record<string, string> => ({ Authorization: `Bearer ${server.token}` });

  it('serves assets with their content type and falls back to index.html for routes', async () => {
    const css = await request(server, '/assets/app.css', { headers: auth() });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    const route = await request(server, '/chats/abc', { headers: auth() });
    expect(route.status).toBe(200);
    expect(route.body).toContain('<title>Hearth</title>');
    const missing = await request(server, '/assets/missing.js', { headers: auth() });
    expect(missing.status).toBe(404);
  });

  it('blocks path traversal, encoded or not, and dotfiles', async () => {
    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/%2E%2E/%2E%2E/package.json',
      '/assets/..%2f..%2fpackage.json',
      '/..%2f..%2f..%2fetc%2fpasswd',
      '/..%5c..%5cpackage.json',
      '/%00index.html',
      '/.secret',
      '/%2esecret',
      '/%zz',
    ]) {
      const r = await request(server, path, { headers: auth() });
      expect([400, 404], path).toContain(r.status);
      expect(r.body, path).not.toContain('"name"');
      expect(r.body, path).not.toContain('nope');
      expect(r.body, path).not.toContain('root:');
    }
  });

  it('answers 503 with a hint when the renderer is not built', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'hearth-empty-'));
    const s = await createServer({ hearth, port: 0, staticDir: empty, log: () => undefined });
    const r = await request(s, `/?token=${s.token}`);
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/npm run build/);
    await s.close();
    await rm(empty, { recursive: true });
  });
});

describe('GET /metrics', () => {
  it('needs the token: 401 without, 200 with ?token= or Bearer', async () => {
    expect((await request(server, '/metrics')).status).toBe(401);
    expect((await request(server, '/metrics?token=wrong')).status).toBe(401);
    const q = await request(server, `/metrics?token=${server.token}`);
    expect(q.status).toBe(200);
    expect(q.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(q.body).toContain('hearth_generated_tokens_total 7');
    const b = await request(server, '/metrics', { headers: { Authorization: `Bearer ${server.token}` } });
    expect(b.status).toBe(200);
  });
});

describe('GET /api/events (WebSocket)', () => {
  const connect = (
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ ws: WebSocket; status: 101 } | { status: number }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { headers });
      ws.once('open', () => resolve({ ws, status: 101 }));
      ws.once('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0 });
        ws.terminate();
      });
      ws.once('error', (e) => reject(e));
    });

  it('rejects an upgrade without the token, with a wrong one, from a foreign origin or host', async () => {
    expect((await connect('/api/events')).status).toBe(401);
    expect((await connect('/api/events?token=nope')).status).toBe(401);
    expect((await connect(`/api/events?token=${server.token}`, { Origin: 'http://evil.example' })).status).toBe(403);
    expect((await connect(`/api/events?token=${server.token}`, { Host: 'evil.example' })).status).toBe(403);
    expect((await connect(`/api/other?token=${server.token}`)).status).toBe(404);
    expect(hearth.listeners.size).toBe(0);
  });

  it('forwards every event as JSON, and unsubscribes when the socket closes', async () => {
    const c = await connect('/api/events', {
      Origin: `http://127.0.0.1:${server.port}`,
      Cookie: `hearth_token_${server.port}=${server.token}`,
    });
    if (!('ws' in c)) throw new Error(`upgrade failed: ${c.status}`);
    const received: unknown[] = [];
    const two = new Promise<void>((resolve) =>
      c.ws.on('message', (data) => {
        received.push(JSON.parse(String(data)));
        if (received.length === 2) resolve();
      }),
    );
    expect(hearth.listeners.size).toBe(1);
    const delta: HearthEvent = { type: 'message.delta', payload: { chatId: 'c', messageId: 'm', delta: 'Hel' } };
    const status: HearthEvent = { type: 'engine.status', payload: { state: 'running', restarts: 0 } };
    hearth.emit(delta);
    hearth.emit(status);
    await two;
    expect(received).toEqual([delta, status]);
    const closed = new Promise((resolve) => c.ws.once('close', resolve));
    c.ws.close();
    await closed;
    await expect.poll(() => hearth.listeners.size).toBe(0);
  });

  it('drops a client that sends an oversized message', async () => {
    const c = await connect(`/api/events?token=${server.token}`);
    if (!('ws' in c)) throw new Error('upgrade failed');
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    c.ws.on('error', () => undefined);
    c.ws.send('x'.repeat(64 * 1024));
    expect(await closed).toBe(1009);
    await expect.poll(() => hearth.listeners.size).toBe(0);
  });

  it('closes every socket on server close', async () => {
    const c = await connect(`/api/events?token=${server.token}`);
    if (!('ws' in c)) throw new Error('upgrade failed');
    const closed = new Promise((resolve) => c.ws.once('close', resolve));
    await server.close();
    await closed;
    await expect.poll(() => hearth.listeners.size).toBe(0);
  });

  it('drops a client that stops answering pings', async () => {
    await server.close();
    server = await createServer({ hearth, port: 0, staticDir, keepaliveMs: 50, log: () => undefined });
    const c = await connect(`/api/events?token=${server.token}`);
    if (!('ws' in c)) throw new Error('upgrade failed');
    // `ws` answers pings automatically; pausing the socket stops it reading them.
    c.ws.pause();
    await expect.poll(() => hearth.listeners.size, { timeout: 2000 }).toBe(0);
    c.ws.terminate();
  });
});
