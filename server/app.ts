/**
 * The browser host's HTTP + WebSocket app: the contract over `POST /api/call/<name>` and
 * `GET /api/events`, Prometheus text at `/metrics`, and the built renderer as static files.
 * It binds 127.0.0.1 only, and every request needs the token and a loopback Host/Origin
 * (README.md, Security checklist). It can be created in-process (tests) with any object that has
 * the engine host's `call`/`onEvent`/`metricsText`.
 */
import { createReadStream } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { join, resolve } from 'node:path';
import { WebSocketServer, WebSocket } from 'ws';
import { err, httpStatusOf, isCallName, maxBodyBytes, type ErrorCode, type HearthEvent, type Result, errorText } from '../engine/contract/index.ts';
import { cookieName, generateToken, isAllowedOrigin, isAuthorized, tokenMatches } from './auth.ts';
import { contentTypeOf, regularFile, resolveStaticPath } from './static.ts';

/** The part of the engine host (`Hearth` from engine/index.ts) the browser host uses. */
export interface HearthHost {
  call(name: unknown, payload: unknown): Promise<Result<unknown>>;
  onEvent(listener: (event: HearthEvent) => void): () => void;
  metricsText(): Promise<string>;
}

export interface ServerOptions {
  readonly hearth: HearthHost;
  /** 0 picks a free port. */
  readonly port: number;
  /** The built renderer, normally `out/renderer/`. */
  readonly staticDir: string;
  /** Defaults to a fresh random token. */
  readonly token?: string;
  /** WebSocket ping interval; a client that misses one pong is dropped. */
  readonly keepaliveMs?: number;
  /** Where diagnostics go (never stdout: its one line belongs to main). */
  readonly log?: (line: string) => void;
  /**
   * How long a client may take to send a whole request (headers and body); past it the host
   * answers 408 and closes the connection, so a slow or stalled client cannot hold a socket
   * forever. Default 30 s (a 1 MiB body needs far less on loopback). Tests use less.
   */
  readonly requestTimeoutMs?: number;
}

export interface RunningServer {
  /** `http://127.0.0.1:PORT/?token=TOKEN`: the address to open. */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  readonly token: string;
  /** Stops listening, drops every connection and WebSocket. */
  close(): Promise<void>;
}

/** Largest WebSocket message accepted from a client: clients have nothing meaningful to send. */
const maxIncomingWsBytes = 1024;
/** A client that falls this far behind on events is dropped rather than buffered without end. */
const maxWsBufferedBytes = 16 * 1024 * 1024;

function securityHeaders(port: number): Record<string, string> {
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join('; ');
  return {
    'Content-Security-Policy': csp,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}

/**
 * Headers that must appear at most once. Two Host or Origin headers are how a request could
 * pass our check with one value while something else reads the other; browsers never send two.
 */
const singleHeaders = new Set(['host', 'origin', 'authorization', 'content-type', 'content-length', 'cookie']);

/** The first header (lower-case) that the request carries more than once, if any. */
export function repeatedHeader(rawHeaders: readonly string[]): string | null {
  const seen = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    if (!singleHeaders.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return null;
}

/** The status for a request Node's parser refused (`clientError`): all of them the client's fault. */
function clientErrorStatus(code: string | undefined): { status: number; reason: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'Request Header Fields Too Large' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, reason: 'Request Timeout' };
  return { status: 400, reason: 'Bad Request' };
}

function isApiPath(pathname: string): boolean {
  return pathname === '/api' || pathname.startsWith('/api/') || pathname === '/metrics';
}

/** Starts the browser host's HTTP server on 127.0.0.1. Rejects if the port cannot be bound. */
export async function createServer(options: ServerOptions): Promise<RunningServer> {
  const { hearth, staticDir } = options;
  const token = options.token ?? generateToken();
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const keepaliveMs = options.keepaliveMs ?? 30_000;
  const indexPath = join(staticDir, 'index.html');
  // Known after listen (port 0 picks one); every check uses the bound port.
  let port = options.port;

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void => {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, {
      ...securityHeaders(port),
      'Content-Type': type,
      'Content-Length': String(Buffer.byteLength(body)),
      ...extra,
    });
    res.end(body);
  };

  const sendResult = (res: ServerResponse, result: Result<unknown>, extra: Record<string, string> = {}): void => {
    const status = result.ok ? 200 : (httpStatusOf[result.error.code] ?? 500);
    let body: string;
    try {
      body = JSON.stringify(result);
    } catch {
      log('hearth: a call result could not be serialized');
      body = JSON.stringify(err('INTERNAL', 'The result could not be serialized.'));
    }
    send(res, status, 'application/json; charset=utf-8', body, { 'Cache-Control': 'no-store', ...extra });
  };

  const sendError = (res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}, status?: number): void => {
    const result = err(code, message);
    if (status === undefined) {
      sendResult(res, result, extra);
    } else {
      send(res, status, 'application/json; charset=utf-8', JSON.stringify(result), { 'Cache-Control': 'no-store', ...extra });
    }
  };

  const sendText = (res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void => {
    send(res, status, 'text/plain; charset=utf-8', text + '\n', { 'Cache-Control': 'no-store', ...extra });
  };

  /**
   * Reads a body of at most `maxBodyBytes`. Over the limit it stops reading at once (the
   * caller answers 413 and closes the connection), so a huge body is never buffered.
   */
  const readBody = (req: IncomingMessage): Promise<{ ok: true; body: Buffer } | { ok: false; reason: 'tooLarge' | 'aborted' }> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (value: { ok: true; body: Buffer } | { ok: false; reason: 'tooLarge' | 'aborted' }): void => {
        if (done) return;
        done = true;
        req.off('data', onData);
        resolve(value);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > maxBodyBytes) {
          req.pause();
          finish({ ok: false, reason: 'tooLarge' });
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.on('end', () => finish({ ok: true, body: Buffer.concat(chunks) }));
      req.on('error', () => finish({ ok: false, reason: 'aborted' }));
      req.on('close', () => finish({ ok: false, reason: 'aborted' }));
    });

  const handleCall = async (req: IncomingMessage, res: ServerResponse, rawName: string): Promise<void> => {
    // Early answers leave the body unread: close the connection instead of draining it.
    const close = { Connection: 'close' };
    let name: string;
    try {
      name = decodeURIComponent(rawName);
    } catch {
      name = '';
    }
    if (!isCallName(name)) {
      sendError(res, 'NOT_FOUND', `There is no call named ${JSON.stringify(name.slice(0, 80))}.`, close);
      return;
    }
    if (req.method !== 'POST') {
      sendError(res, 'INVALID_INPUT', 'Calls are made with POST.', { ...close, Allow: 'POST' }, 405);
      return;
    }
    // Requiring JSON also keeps plain HTML forms (which cannot send it) out.
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json') {
      sendError(res, 'INVALID_INPUT', 'The request body must be JSON (Content-Type: application/json).', close, 415);
      return;
    }
    const declared = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      sendError(res, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${maxBodyBytes} bytes.`, close);
      return;
    }
    const body = await readBody(req);
    if (!body.ok) {
      if (body.reason === 'tooLarge') {
        sendError(res, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${maxBodyBytes} bytes.`, close);
      }
      return;
    }
    let payload: unknown = {};
    if (body.body.length > 0) {
      try {
        payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.body));
      } catch {
        sendError(res, 'INVALID_INPUT', 'The request body is not valid JSON.');
        return;
      }
    }
    let result: Result<unknown>;
    try {
      result = await hearth.call(name, payload);
    } catch (e) {
      // `call` never throws by contract; if it does, that is a bug: log it, never leak a stack.
      log(`hearth: call ${name} threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      sendError(res, 'INTERNAL', 'Something went wrong inside Hearth.');
      return;
    }
    if (typeof result !== 'object' || result === null || typeof result.ok !== 'boolean') {
      log(`hearth: call ${name} returned a malformed result`);
      sendError(res, 'INTERNAL', 'Something went wrong inside Hearth.');
      return;
    }
    sendResult(res, result);
  };

  const handleMetrics = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed.', { Allow: 'GET, HEAD' });
      return;
    }
    let text: string;
    try {
      text = await hearth.metricsText();
    } catch (e) {
      log(`hearth: metrics failed: ${errorText(e)}`);
      sendText(res, 500, 'Metrics are unavailable.');
      return;
    }
    send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', req.method === 'HEAD' ? '' : text, { 'Cache-Control': 'no-store' });
  };

  const serveFile = async (req: IncomingMessage, res: ServerResponse, filePath: string, size: number, extra: Record<string, string>): Promise<void> => {
    res.writeHead(200, {
      ...securityHeaders(port),
      'Content-Type': contentTypeOf(filePath),
      'Content-Length': String(size),
      // The page itself changes with each build and carries the cookie flow: never cache it.
      'Cache-Control': filePath.endsWith('.html') ? 'no-store' : 'no-cache',
      ...extra,
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(filePath);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };

  const handleStatic = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed.', { Allow: 'GET, HEAD' });
      return;
    }
    const target = resolveStaticPath(staticDir, url.pathname);
    if (target === null) {
      sendText(res, 404, 'Not found.');
      return;
    }
    let file = url.pathname.endsWith('/') ? null : await regularFile(target, staticDir);
    const lastSegment = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
    let isIndex = file !== null && target === resolve(indexPath);
    if (file === null) {
      // SPA fallback: routes without a file extension get the page; a missing asset is a 404.
      if (lastSegment.includes('.')) {
        sendText(res, 404, 'Not found.');
        return;
      }
      file = await regularFile(indexPath, staticDir);
      if (file === null) {
        sendText(res, 503, 'The renderer is not built yet: run `npm run build`, then start the host again.');
        return;
      }
      isIndex = true;
    }
    const extra: Record<string, string> = {};
    const queryToken = url.searchParams.get('token');
    if (isIndex && queryToken !== null && tokenMatches(queryToken, token)) {
      // Hand the token over as a cookie so the page's own asset, API and WebSocket requests
      // carry it: the renderer does no token handling at all.
      extra['Set-Cookie'] = `${cookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
    }
    // The resolved path, checked inside the root: a link swapped after the check is not followed again.
    await serveFile(req, res, file.path, file.size, extra);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawUrl = req.url ?? '/';
    if (!rawUrl.startsWith('/')) {
      sendText(res, 400, 'Bad request.');
      return;
    }
    let url: URL;
    try {
      url = new URL(`http://127.0.0.1${rawUrl}`);
    } catch {
      sendText(res, 400, 'Bad request.');
      return;
    }
    const api = isApiPath(url.pathname);
    const repeated = repeatedHeader(req.rawHeaders);
    if (repeated !== null) {
      if (api) sendError(res, 'INVALID_INPUT', `The request has more than one ${repeated} header.`, { Connection: 'close' }, 400);
      else sendText(res, 400, 'Bad request.', { Connection: 'close' });
      return;
    }
    if (!isAllowedOrigin(req, port)) {
      if (api) sendError(res, 'FORBIDDEN', 'This request came from a foreign origin.');
      else sendText(res, 403, 'Forbidden: Hearth only answers its own pages on 127.0.0.1 and localhost.');
      return;
    }
    if (!isAuthorized(req, url, port, token)) {
      if (api) sendError(res, 'UNAUTHORIZED', 'The Hearth token is missing or wrong.');
      else sendText(res, 401, 'Unauthorized: open the full address Hearth printed when it started (it ends in ?token=...).');
      return;
    }
    if (url.pathname.startsWith('/api/call/')) {
      await handleCall(req, res, url.pathname.slice('/api/call/'.length));
    } else if (url.pathname === '/api/events') {
      sendError(res, 'INVALID_INPUT', 'Events are a WebSocket: connect with an Upgrade request.', {}, 426);
    } else if (url.pathname === '/metrics') {
      await handleMetrics(req, res);
    } else if (api) {
      sendError(res, 'NOT_FOUND', 'There is no such API path.');
    } else {
      await handleStatic(req, res, url);
    }
  };

  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const httpServer = createHttpServer(
    {
      requestTimeout,
      headersTimeout: Math.min(requestTimeout, 10_000),
      // Node checks the two timeouts on this interval (30 s by default, longer than the timeouts).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        log(`hearth: request failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        if (!res.headersSent) sendText(res, 500, 'Internal error.');
        else res.destroy();
      });
    },
  );

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxIncomingWsBytes, perMessageDeflate: false });
  const alive = new WeakMap<WebSocket, boolean>();

  wss.on('connection', (ws: WebSocket) => {
    alive.set(ws, true);
    const unsubscribe = hearth.onEvent((event) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (ws.bufferedAmount > maxWsBufferedBytes) {
        log('hearth: dropping an events client that stopped reading');
        ws.terminate();
        return;
      }
      ws.send(JSON.stringify(event));
    });
    ws.on('pong', () => alive.set(ws, true));
    // Clients have nothing to say; messages are read (within maxPayload) and ignored.
    ws.on('message', () => undefined);
    ws.on('error', () => ws.terminate());
    ws.once('close', unsubscribe);
  });

  const keepalive = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, keepaliveMs);
  keepalive.unref();

  const rejectUpgrade = (socket: Duplex, status: number, reason: string): void => {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n${Object.entries(securityHeaders(port)).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  };

  httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (repeatedHeader(req.rawHeaders) !== null) {
      rejectUpgrade(socket, 400, 'Bad Request');
      return;
    }
    let url: URL;
    try {
      url = new URL(`http://127.0.0.1${req.url ?? '/'}`);
    } catch {
      rejectUpgrade(socket, 400, 'Bad Request');
      return;
    }
    if (!isAllowedOrigin(req, port)) {
      rejectUpgrade(socket, 403, 'Forbidden');
      return;
    }
    if (!isAuthorized(req, url, port, token)) {
      rejectUpgrade(socket, 401, 'Unauthorized');
      return;
    }
    if (url.pathname !== '/api/events') {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  // Requests Node's parser refuses (garbage, bad methods, oversized headers, timeouts) get a 4xx.
  httpServer.on('clientError', (e: NodeJS.ErrnoException, socket) => {
    const { status, reason } = clientErrorStatus(e.code);
    if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });

  // CONNECT (a proxy tunnel) is nothing Hearth offers; without a listener Node would drop the socket unanswered.
  httpServer.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, '127.0.0.1', () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const address = httpServer.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  port = address.port;
  httpServer.on('error', (e) => log(`hearth: server error: ${e.message}`));

  const origin = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(keepalive);
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };
}
