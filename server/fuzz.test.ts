// The browser host fails closed (README.md, Security checklist): malformed requests of every
// kind get a 4xx (never a 5xx, never a hang, never a crash), and the server keeps answering
// afterwards.
// Raw sockets, not an HTTP client: a client library would refuse to send most of these. Seeded.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { callNames, maxBodyBytes, ok, validateCall, type HearthEvent, type Result } from '../engine/contract/index.ts';
import { malformedBodies, malformedCases, mulberry32, randomCases, unknownNames, validInputs } from '../test/support/fuzz.ts';
import { createServer, repeatedHeader, type HearthHost, type RunningServer } from './app.ts';

const seed = 0x7e57;
/** The request timeout the fuzzed server runs with: short, so slow-client cases end quickly. */
const requestTimeoutMs = 600;

/** The engine host as the host sees it: the real validator in front, every valid call answered ok. */
class ValidatingHearth implements HearthHost {
  calls = 0;
  async call(name: unknown, payload: unknown): Promise<Result<unknown>> {
    const v = validateCall(name, payload);
    if (!v.ok) return { ok: false, error: v.error };
    this.calls += 1;
    return ok({ name: v.name });
  }
  onEvent(_listener: (event: HearthEvent) => void): () => void {
    return () => undefined;
  }
  async metricsText(): Promise<string> {
    return 'hearth_up 1\n';
  }
}

interface RawReply {
  /** The status line's code, or null when the server closed (or we gave up) without one. */
  readonly status: number | null;
  readonly head: string;
  readonly body: string;
  /** True when the server closed the connection (false when we gave up waiting). */
  readonly closed: boolean;
}

/**
 * Writes `data` (chunks with a pause between them) to a fresh connection and reads until the
 * server closes it or `waitMs` passes. `end` half-closes after writing (a truncated request).
 */
function raw(port: number, data: string | Buffer | Array<string | Buffer>, options: { end?: boolean; waitMs?: number; pauseMs?: number } = {}): Promise<RawReply> {
  const chunks = Array.isArray(data) ? data : [data];
  const isHead = String(chunks[0] ?? '').startsWith('HEAD ');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = received.toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : text;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : null, head, body: split >= 0 ? text.slice(split + 4) : '', closed });
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? 3000);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      // One response is all we need; keep-alive would otherwise hold the socket open.
      if (/\r\n\r\n/.test(received.toString('latin1')) && /content-length: 0\r\n|^HTTP\/1\.1 101/im.test(received.toString('latin1'))) finish(true);
      const text = received.toString('latin1');
      const cl = /\r\ncontent-length: (\d+)\r\n/i.exec(text);
      const bodyStart = text.indexOf('\r\n\r\n');
      // A HEAD response announces a length but sends no body.
      if (bodyStart >= 0 && isHead) finish(true);
      if (cl && bodyStart >= 0 && received.length >= bodyStart + 4 + Number(cl[1])) finish(true);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    void (async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0 && options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
        if (socket.destroyed) return;
        socket.write(chunk);
      }
      if (options.end) socket.end();
    })();
  });
}

let staticDir: string;
let hearth: ValidatingHearth;
let server: RunningServer;
let logged: string[];

beforeAll(async () => {
  staticDir = await mkdtemp(join(tmpdir(), 'hearth-fuzz-static-'));
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hearth</title>');
});

afterAll(async () => {
  await rm(staticDir, { recursive: true, force: true });
});

beforeEach(async () => {
  hearth = new ValidatingHearth();
  logged = [];
  server = await createServer({ hearth, port: 0, staticDir, requestTimeoutMs, log: (line) => logged.push(line) });
});

afterEach(async () => {
  await server.close();
});

const host = (): string => `Host: 127.0.0.1:${server.port}\r\n`;
const auth = (): string => `Authorization: Bearer ${server.token}\r\n`;

/** A complete, valid call: the server must still answer it with 200. */
async function stillAnswers(): Promise<void> {
  const body = '{}';
  const reply = await raw(server.port, `POST /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  expect(reply.status, 'the server still answers a valid call').toBe(200);
}

/** Sends every request and checks each answer is a 4xx (or, where allowed, a close without one). */
async function expectAll4xx(requests: ReadonlyArray<{ label: string; data: string | Buffer | Array<string | Buffer>; end?: boolean; pauseMs?: number; mayClose?: boolean }>): Promise<void> {
  for (const r of requests) {
    const reply = await raw(server.port, r.data, { end: r.end ?? false, ...(r.pauseMs === undefined ? {} : { pauseMs: r.pauseMs }) });
    expect(reply.closed || reply.status !== null, `${r.label}: the server neither answered nor closed (a hang)`).toBe(true);
    if (reply.status === null) {
      expect(r.mayClose, `${r.label}: closed without an answer`).toBe(true);
      continue;
    }
    expect(reply.status, `${r.label}: ${reply.head.split('\r\n')[0]}`).toBeGreaterThanOrEqual(400);
    expect(reply.status, `${r.label}: ${reply.head.split('\r\n')[0]}`).toBeLessThan(500);
    expect(reply.head.toLowerCase(), `${r.label}: no CORS ever`).not.toContain('access-control-allow-origin');
  }
}

describe('browser host fuzz: malformed HTTP', () => {
  it('answers 4xx to garbage request lines, bad methods and bad protocol versions', { timeout: 60_000 }, async () => {
    const random = mulberry32(seed);
    const requests: Array<{ label: string; data: string | Buffer; end: boolean }> = [
      'hello world',
      'hello world\r\n\r\n',
      'GET\r\n\r\n',
      'GET /\r\n\r\n',
      `GET / HTTP/1.1 extra\r\n${host()}\r\n`,
      `GET / HTTP/3.0\r\n${host()}\r\n`,
      `GET / HTTP/1.2\r\n${host()}\r\n`,
      `GET / FTP/1.1\r\n${host()}\r\n`,
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      `OPTIONS * HTTP/1.1\r\n${host()}\r\n`,
      `GET http://evil.example/ HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `GET evil HTTP/1.1\r\n${host()}\r\n`,
      `FOO / HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `get / HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `PUT / HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `DELETE /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `PATCH /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `OPTIONS /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n`,
      `OPTIONS /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `TRACE / HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `CONNECT 127.0.0.1:22 HTTP/1.1\r\n${host()}${auth()}\r\n`,
      `POST /metrics HTTP/1.1\r\n${host()}${auth()}Content-Length: 0\r\n\r\n`,
      `GET /a\0b HTTP/1.1\r\n${host()}\r\n`,
      `GET /a b HTTP/1.1\r\n${host()}\r\n`,
      `GET / HTTP/1.1\n${host().trim()}\n\n`,
      `GET / HTTP/1.0\r\n\r\n`,
      `GET / HTTP/1.1\r\n\r\n`,
    ].map((data, i) => ({ label: `fixed #${i} ${JSON.stringify(data.slice(0, 40))}`, data, end: false }));
    for (let i = 0; i < 150; i++) {
      const length = 1 + Math.floor(random() * 200);
      const bytes = Buffer.alloc(length);
      for (let b = 0; b < length; b++) bytes[b] = Math.floor(random() * 256);
      // Half of them end in a blank line, so the parser sees a "complete" head of garbage.
      const data = random() < 0.5 ? Buffer.concat([bytes, Buffer.from('\r\n\r\n')]) : bytes;
      requests.push({ label: `random bytes #${i}`, data, end: true });
    }
    for (let i = 0; i < 50; i++) {
      const methods = ['GET', 'POST', 'HEAD', 'X', 'G\u00c9T', '', 'GET GET'];
      const paths = ['/', '/api/call/chats.list', '/api/events', '/%', '/%zz', '/\u00ff', '', '*', '/..'];
      const line = `${methods[Math.floor(random() * methods.length)]} ${paths[Math.floor(random() * paths.length)]} HTTP/1.${Math.floor(random() * 3)}`;
      requests.push({ label: `random line ${JSON.stringify(line)}`, data: `${line}\r\n${host()}\r\n`, end: false });
    }
    await expectAll4xx(requests.map((r) => ({ ...r, mayClose: false })));
    await stillAnswers();
    expect(hearth.calls).toBe(1);
  });

  it('answers 4xx to huge, repeated and malformed headers', { timeout: 60_000 }, async () => {
    const base = (extra: string, path = '/'): string => `GET ${path} HTTP/1.1\r\n${extra}\r\n`;
    const post = (extra: string, body = '{}'): string => `POST /api/call/chats.list HTTP/1.1\r\n${extra}\r\n${body}`;
    const json = 'Content-Type: application/json\r\n';
    await expectAll4xx(
      [
        ['one 20 KB header', base(`${host()}${auth()}X-Big: ${'a'.repeat(20_000)}\r\n`)],
        ['4,000 small headers', base(`${host()}${auth()}${'a:b\r\n'.repeat(4000)}`)],
        ['a 70 KB cookie', base(`${host()}Cookie: ${'c=1; '.repeat(14_000)}\r\n`)],
        ['two Host headers, ours first', base(`${host()}Host: evil.example\r\n${auth()}`)],
        ['two Host headers, ours second', base(`Host: evil.example\r\n${host()}${auth()}`)],
        ['two Origin headers', base(`${host()}${auth()}Origin: http://127.0.0.1:${server.port}\r\nOrigin: http://evil.example\r\n`)],
        ['two Authorization headers', base(`${host()}${auth()}${auth()}`)],
        ['two Content-Type headers', post(`${host()}${auth()}${json}${json}Content-Length: 2\r\n`)],
        ['two different Content-Lengths', post(`${host()}${auth()}${json}Content-Length: 2\r\nContent-Length: 3\r\n`)],
        ['Content-Length and chunked', post(`${host()}${auth()}${json}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n`)],
        ['a negative Content-Length', post(`${host()}${auth()}${json}Content-Length: -1\r\n`)],
        ['a non-numeric Content-Length', post(`${host()}${auth()}${json}Content-Length: 1e3\r\n`)],
        ['a 2^64 Content-Length', post(`${host()}${auth()}${json}Content-Length: 18446744073709551616\r\n`)],
        ['an unknown Transfer-Encoding', post(`${host()}${auth()}${json}Transfer-Encoding: gzip\r\n`)],
        ['a bad chunk size', post(`${host()}${auth()}${json}Transfer-Encoding: chunked\r\n`, 'zz\r\n{}\r\n0\r\n\r\n')],
        ['a header without a colon', base(`${host()}${auth()}nocolon\r\n`)],
        ['a space before the colon', base(`${host()}${auth()}X-A : b\r\n`)],
        ['an obsolete folded header', base(`${host()}${auth()}X-A: b\r\n c\r\n`)],
        ['a header with NUL and 0xFF bytes', Buffer.concat([Buffer.from(`GET / HTTP/1.1\r\n${host()}${auth()}X-A: `), Buffer.from([0xff, 0x00, 0x7f]), Buffer.from('\r\n\r\n')])],
        ['no Host at all', base(auth())],
        ['an empty Host', base(`Host: \r\n${auth()}`)],
        ['a Host with our port and a path', base(`Host: 127.0.0.1:${server.port}/x\r\n${auth()}`)],
        ['a Host with userinfo', base(`Host: evil@127.0.0.1:${server.port}\r\n${auth()}`)],
        ['a foreign Host (DNS rebinding)', base(`Host: rebound.example:${server.port}\r\n${auth()}`)],
        ['a foreign Origin', base(`${host()}${auth()}Origin: http://evil.example\r\n`, '/api/call/chats.list')],
        ['Origin null', base(`${host()}${auth()}Origin: null\r\n`, '/api/call/chats.list')],
        ['a Bearer token with garbage', base(`${host()}Authorization: Bearer ${server.token}\u0000\r\n`)],
        ['a Basic authorization', base(`${host()}Authorization: Basic ${Buffer.from(`x:${server.token}`).toString('base64')}\r\n`)],
        ['no token', base(host())],
      ].map(([label, data]) => ({ label: String(label), data: data as string | Buffer })),
    );
    await stillAnswers();
  });

  it('answers 4xx to bad paths and bad percent-encoding', { timeout: 60_000 }, async () => {
    const paths = [
      '/%',
      '/%zz',
      '/%E0%A4%A',
      '/%C0%AF',
      '/%00',
      '/..%2f..%2fetc%2fpasswd',
      '/..%5c..%5cwindows',
      '/assets/%2e%2e%2f%2e%2e%2fpackage.json',
      '/.git/config',
      '/%2egit/config',
      '/missing.js',
      '/api/call/%',
      '/api/call/%E0%A4%A',
      '/api/call/chats.list%00',
      '/api/call/chats.list%2F..%2Fapp.state',
      '/api/call/..%2Fchats.list',
      '/api/call/',
      '/api/call',
      '/api/',
      '/api/nothing',
      `/api/call/${'x'.repeat(8000)}`,
    ];
    await expectAll4xx(
      paths.flatMap((path) => [
        { label: `GET ${path.slice(0, 60)}`, data: `GET ${path} HTTP/1.1\r\n${host()}${auth()}\r\n` },
        { label: `POST ${path.slice(0, 60)}`, data: `POST ${path} HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}` },
      ]),
    );
    await stillAnswers();
    expect(hearth.calls).toBe(1);
  });

  it('never serves anything but the build from a traversal path (a route without a file gets the page)', async () => {
    // URL parsing folds `..` and `%2e%2e` away, so these name paths inside the root: files that
    // do not exist there. A name without an extension is an app route (the page); with one, a 404.
    for (const path of ['/%2e%2e/%2e%2e/etc/passwd', '/../../etc/passwd', '//evil.example/x', '/./../.%2e/etc/shadow', '/%2e%2e/%2e%2e/etc/hosts.txt', '/../package.json']) {
      const reply = await raw(server.port, `GET ${path} HTTP/1.1\r\n${host()}${auth()}Connection: close\r\n\r\n`);
      expect([200, 400, 404], path).toContain(reply.status);
      if (reply.status === 200) expect(reply.body, path).toBe('<!doctype html><title>Hearth</title>');
      expect(reply.head.toLowerCase(), path).not.toContain('location:');
      expect(reply.body, path).not.toMatch(/root:|localhost|"name"/);
    }
  });

  it('answers 4xx to bad bodies: bad JSON, wrong content types, oversized, truncated and slow', { timeout: 60_000 }, async () => {
    const random = mulberry32(seed + 1);
    const call = (body: string | Buffer, headers: string): Buffer =>
      Buffer.concat([Buffer.from(`POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`), Buffer.from(body)]);
    const json = 'Content-Type: application/json\r\n';
    const requests: Array<{ label: string; data: string | Buffer | Array<string | Buffer>; end?: boolean; pauseMs?: number; mayClose?: boolean }> = [];
    for (const [i, body] of malformedBodies(random, 150).entries()) requests.push({ label: `body #${i} ${JSON.stringify(String(body).slice(0, 30))}`, data: call(body, json) });
    for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json-patch+json', 'application/jsonx', 'application/json, text/html', 'text/json', '', ' ', 'application/javascript']) {
      requests.push({ label: `Content-Type ${JSON.stringify(type)}`, data: call('{"chatId":"abc"}', `Content-Type: ${type}\r\n`) });
    }
    requests.push({ label: 'no Content-Type', data: call('{"chatId":"abc"}', '') });
    requests.push({ label: 'a declared body over the limit', data: `POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Content-Length: ${maxBodyBytes + 1}\r\n\r\n{` });
    requests.push({ label: 'a streamed (chunked) body over the limit', data: [`POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Transfer-Encoding: chunked\r\n\r\n`, ...Array.from({ length: 20 }, () => `10000\r\n${'x'.repeat(0x10000)}\r\n`)] });
    requests.push({ label: 'a truncated body, then the client ends', data: `POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Content-Length: 100\r\n\r\n{"chatId"`, end: true });
    requests.push({ label: 'a truncated chunked body, then the client ends', data: `POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Transfer-Encoding: chunked\r\n\r\n10\r\n{"chatId"`, end: true });
    requests.push({ label: 'a slow body that never finishes (408)', data: `POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Content-Length: 100\r\n\r\n{"chatId"` });
    requests.push({ label: 'headers that never finish (408)', data: `GET / HTTP/1.1\r\n${host()}X-A: b\r\n` });
    requests.push({ label: 'a request line that never finishes (408)', data: 'GET / HT' });
    requests.push({ label: 'a body trickled a byte at a time past the timeout', data: [`POST /api/call/chats.get HTTP/1.1\r\n${host()}${auth()}${json}Content-Length: 20\r\n\r\n`, ...'{"chatId":"abcdefg"}'.split('')], pauseMs: 100 });
    await expectAll4xx(requests);
    await stillAnswers();
    expect(hearth.calls).toBe(1);
  });

  it('keeps answering while many slow clients hold connections, and drops them with 408', { timeout: 60_000 }, async () => {
    const json = 'Content-Type: application/json\r\n';
    const slow = Array.from({ length: 40 }, () =>
      raw(server.port, `POST /api/call/chats.list HTTP/1.1\r\n${host()}${auth()}${json}Content-Length: 1000\r\n\r\n{`, { waitMs: 10_000 }).then((reply) => ({ reply, at: Date.now() })),
    );
    await stillAnswers();
    const answeredAt = Date.now();
    const dropped = await Promise.all(slow);
    for (const { reply } of dropped) expect(reply.status).toBe(408);
    // The valid call did not wait for the slow clients to be dropped.
    expect(answeredAt).toBeLessThan(Math.min(...dropped.map((d) => d.at)));
    await stillAnswers();
  });

  it('answers 4xx to malformed WebSocket upgrades and survives garbage frames', { timeout: 60_000 }, async () => {
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const v13 = 'Sec-WebSocket-Version: 13\r\n';
    const up = (path: string, headers: string, method = 'GET'): string => `${method} ${path} HTTP/1.1\r\n${headers}Connection: Upgrade\r\n\r\n`;
    await expectAll4xx(
      [
        ['no token', up('/api/events', `${host()}Upgrade: websocket\r\n${key}${v13}`)],
        ['a wrong token', up('/api/events?token=nope', `${host()}Upgrade: websocket\r\n${key}${v13}`)],
        ['a foreign Origin', up('/api/events', `${host()}${auth()}Origin: http://evil.example\r\nUpgrade: websocket\r\n${key}${v13}`)],
        ['a foreign Host', up('/api/events', `Host: evil.example\r\n${auth()}Upgrade: websocket\r\n${key}${v13}`)],
        ['two Host headers', up('/api/events', `${host()}Host: evil.example\r\n${auth()}Upgrade: websocket\r\n${key}${v13}`)],
        ['another path', up('/api/other', `${host()}${auth()}Upgrade: websocket\r\n${key}${v13}`)],
        ['a bad percent-encoded path', up('/api/%zz', `${host()}${auth()}Upgrade: websocket\r\n${key}${v13}`)],
        ['no key', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\n${v13}`)],
        ['a short key', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\nSec-WebSocket-Key: short\r\n${v13}`)],
        ['version 12', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\n${key}Sec-WebSocket-Version: 12\r\n`)],
        ['no version', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\n${key}`)],
        ['Upgrade: h2c', up('/api/events', `${host()}${auth()}Upgrade: h2c\r\n`)],
        ['Upgrade: garbage', up('/api/events', `${host()}${auth()}Upgrade: \u00ff\u00fe\r\n${key}${v13}`)],
        ['a POST upgrade', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\n${key}${v13}`, 'POST')],
        ['an upgrade on a call', up('/api/call/chats.list', `${host()}${auth()}Upgrade: websocket\r\n${key}${v13}`)],
        ['a bad subprotocol list', up('/api/events', `${host()}${auth()}Upgrade: websocket\r\n${key}${v13}Sec-WebSocket-Protocol: ,,,\u00ff\r\n`)],
        ['events without an upgrade', `GET /api/events HTTP/1.1\r\n${host()}${auth()}\r\n`],
      ].map(([label, data]) => ({ label: String(label), data: String(data) })),
    );

    // A good handshake, then frames no client may send: each connection is closed by the server.
    const handshake = `GET /api/events HTTP/1.1\r\n${host()}${auth()}Upgrade: websocket\r\nConnection: Upgrade\r\n${key}${v13}\r\n`;
    const frames: Array<[string, Buffer]> = [
      ['an unmasked frame', Buffer.from([0x81, 0x02, 0x68, 0x69])],
      ['a reserved opcode', Buffer.from([0x83, 0x80, 1, 2, 3, 4])],
      ['RSV bits set', Buffer.from([0xf1, 0x80, 1, 2, 3, 4])],
      ['a 64-bit length over the limit', Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4])],
      ['invalid UTF-8 text', Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28])],
      ['a fragmented control frame', Buffer.from([0x09, 0x80, 1, 2, 3, 4])],
      ['random bytes', Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 73 + 11) % 256))],
    ];
    for (const [label, frame] of frames) {
      const reply = await raw(server.port, [handshake, frame], { pauseMs: 50, waitMs: 3000 });
      expect(reply.head.split('\r\n')[0], label).toBe('HTTP/1.1 101 Switching Protocols');
      expect(reply.closed, `${label}: the server closes the connection`).toBe(true);
    }
    await stillAnswers();
  });

  it('answers 4xx to malformed payloads of every call, over HTTP', { timeout: 60_000 }, async () => {
    const random = mulberry32(seed + 2);
    let sent = 0;
    for (const name of callNames) {
      const cases = [...malformedCases(name), ...randomCases(name, random, 20)].filter((c) => c.json !== null && Buffer.byteLength(c.json ?? '') <= maxBodyBytes);
      expect(cases.length, name).toBeGreaterThan(20);
      for (const c of cases) {
        const body = c.json ?? '';
        const reply = await raw(server.port, Buffer.concat([Buffer.from(`POST /api/call/${name} HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`), Buffer.from(body)]));
        expect(reply.status, `${name}: ${c.label}`).toBe(400);
        sent += 1;
      }
    }
    for (const name of unknownNames(random, 100)) {
      if (typeof name !== 'string') continue;
      const reply = await raw(server.port, `POST /api/call/${encodeURIComponent(name)} HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
      expect([404, 414, 431], name.slice(0, 40)).toContain(reply.status);
    }
    expect(sent).toBeGreaterThan(1000);
    expect(hearth.calls, 'no malformed call reached Hearth').toBe(0);
    // Every call still works with its valid input afterwards.
    for (const name of callNames) {
      const body = JSON.stringify(validInputs[name]);
      const reply = await raw(server.port, `POST /api/call/${name} HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      expect(reply.status, name).toBe(200);
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(logged.filter((line) => /failed|threw|malformed/i.test(line))).toEqual([]);
  });
});

describe('browser host: loopback only', () => {
  it('cannot be reached through any address but 127.0.0.1: not the LAN, not ::1, not 127.0.0.2', async () => {
    const external = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal)
      .map((a) => a!.address);
    // Bound to 127.0.0.1 exactly (not 0.0.0.0 or ::, not every loopback address).
    for (const address of [...external, '::1', '127.0.0.2']) {
      const reached = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: address, port: server.port });
        socket.setTimeout(2000, () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
      expect(reached, address).toBe(false);
    }
    expect(server.url.startsWith('http://127.0.0.1:')).toBe(true);
    await stillAnswers();
  });

  it('refuses a request that names a header twice (one value checked, another used)', () => {
    expect(repeatedHeader(['Host', 'a', 'X', 'b', 'host', 'c'])).toBe('host');
    expect(repeatedHeader(['Origin', 'a', 'ORIGIN', 'b'])).toBe('origin');
    expect(repeatedHeader(['Host', 'a', 'Accept', 'b', 'Accept', 'c'])).toBeNull();
  });
});
