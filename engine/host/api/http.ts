/**
 * The API server's HTTP side: routing, the key, the Host and Origin checks, body and concurrency
 * limits, and Server-Sent Events. Handlers (openai.ts, anthropic.ts) see an `Exchange` and throw
 * `ApiFailure`s; every failure is answered in the dialect of the route that was asked.
 *
 * Checks, in order, before a body is read: a Host that is not this machine (DNS rebinding: a web
 * page that resolves its own name to 127.0.0.1) unless LAN is on; an Origin header that is not
 * listed (a web page calling from the user's browser); the key (`Authorization: Bearer` or
 * `x-api-key`, compared in constant time). The browser host's UI token is never accepted here.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ApiRequestLog } from '../../contract/index.ts';
import { anthropicError, countTokens, messages } from './anthropic.ts';
import { chatCompletions, completions, listModels, openAiError } from './openai.ts';
import { ApiFailure, maxApiBodyDepth, tooDeep, type ApiBackend, type EventStream, type Exchange, type ExchangeReport } from './wire.ts';

/** Largest request body, in bytes: a 128k-token prompt is well under it. */
export const maxApiBodyBytes = 8 * 1024 * 1024;
/** Requests handed to the engine at once (they queue there, one generation at a time). */
export const maxActiveRequests = 8;
/** Requests waiting for one of those places; beyond it the server answers 429 at once. */
export const maxQueuedRequests = 32;

export const apiEndpoints = ['GET /v1/models', 'POST /v1/chat/completions', 'POST /v1/completions', 'POST /v1/messages', 'POST /v1/messages/count_tokens'] as const;

type Dialect = 'openai' | 'anthropic';
type Handler = (exchange: Exchange, backend: ApiBackend) => Promise<void>;

const routes: Readonly<Record<string, { readonly handler: Handler; readonly dialect: Dialect; readonly generates: boolean }>> = {
  'GET /v1/models': { handler: listModels, dialect: 'openai', generates: false },
  'POST /v1/chat/completions': { handler: chatCompletions, dialect: 'openai', generates: true },
  'POST /v1/completions': { handler: completions, dialect: 'openai', generates: true },
  'POST /v1/messages': { handler: messages, dialect: 'anthropic', generates: true },
  'POST /v1/messages/count_tokens': { handler: countTokens, dialect: 'anthropic', generates: false },
};

export interface ApiHttpOptions {
  readonly backend: ApiBackend;
  /** 127.0.0.1, or 0.0.0.0 with LAN on. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly key: () => string;
  readonly corsOrigins: () => readonly string[];
  /** Each finished request, for the Server screen's log. */
  readonly onRequest: (entry: Omit<ApiRequestLog, 'id'>) => void;
  readonly log: (level: 'warn' | 'info', message: string) => void;
  /** Tests use less. */
  readonly requestTimeoutMs?: number;
}

export interface RunningApi {
  readonly port: number;
  close(): Promise<void>;
}

function keyMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  // Same length first: timingSafeEqual throws otherwise, and the length of a key is no secret.
  return a.length === b.length && timingSafeEqual(a, b);
}

function presentedKey(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (match) return match[1];
  }
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : undefined;
}

/** "OpenAI/JS 7.60.0" from the User-Agent: the client's first product token(s), printable only. */
export function clientName(userAgent: string | undefined): string {
  if (!userAgent) return 'unknown';
  const clean = userAgent.replace(/[^\x20-\x7e]/g, '').trim();
  const name = /^[^\s/]+\/[^\s]+(?:\s+[\d.]+)?/.exec(clean)?.[0] ?? clean;
  return name.slice(0, 64) || 'unknown';
}

function isLoopbackHost(hostHeader: string | undefined, port: number): boolean {
  if (!hostHeader) return false;
  return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(hostHeader.toLowerCase());
}

/** A counting gate: `maxActive` at once, `maxQueued` waiting, the rest refused. */
class Gate {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  enter(): Promise<void> | null {
    if (this.#active < maxActiveRequests) {
      this.#active++;
      return Promise.resolve();
    }
    if (this.#waiting.length >= maxQueuedRequests) return null;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  leave(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxApiBodyBytes) {
      reject(new ApiFailure(413, `The request body is larger than ${maxApiBodyBytes / 1024 / 1024} MiB.`, 'request_too_large'));
      return;
    }
    let chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > maxApiBodyBytes) {
        // Not req.destroy(): that drops the connection before the 413 is written (the client
        // sees a reset). The rest is read and discarded (the request timeout bounds it) and the
        // 413 closes the connection.
        tooLarge = true;
        chunks = [];
        reject(new ApiFailure(413, `The request body is larger than ${maxApiBodyBytes / 1024 / 1024} MiB.`, 'request_too_large'));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (tooLarge) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        reject(new ApiFailure(400, 'The request has no body; send a JSON object.', 'invalid_request'));
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (error) {
        reject(new ApiFailure(400, `The request body is not valid JSON (${error instanceof Error ? error.message : 'parse error'}).`, 'invalid_json'));
        return;
      }
      if (tooDeep(body)) reject(new ApiFailure(400, `The request body is nested more than ${maxApiBodyDepth} levels deep.`, 'invalid_request'));
      else resolve(body);
    });
  });
}

export function startApiHttp(options: ApiHttpOptions): Promise<RunningApi> {
  const gate = new Gate();
  let boundPort = 0;
  const server: Server = createServer({ requestTimeout: options.requestTimeoutMs ?? 30_000, headersTimeout: Math.min(options.requestTimeoutMs ?? 30_000, 20_000) }, (req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const pathname = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const endpoint = `${req.method ?? 'GET'} ${pathname}`.slice(0, 200);
    const route = routes[endpoint];
    const dialect: Dialect = route?.dialect ?? (pathname.startsWith('/v1/messages') ? 'anthropic' : 'openai');
    const report: ExchangeReport = { model: null, promptTokens: null, cachedTokens: null, ttftMs: null, tokensPerSecond: null };
    const origin = req.headers.origin;
    const allowedOrigin = typeof origin === 'string' && options.corsOrigins().includes(origin) ? origin : null;
    const corsHeaders: Record<string, string> = allowedOrigin
      ? { 'Access-Control-Allow-Origin': allowedOrigin, Vary: 'Origin', 'Access-Control-Allow-Headers': 'authorization, content-type, x-api-key, anthropic-version, anthropic-beta', 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS' }
      : {};
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    let status = 200;
    let failure: ApiFailure | null = null;
    const send = (code: number, body: unknown): void => {
      status = code;
      if (res.headersSent) return;
      const text = JSON.stringify(body);
      // A refused body may still be arriving: the connection ends with this answer.
      res.writeHead(code, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...(code === 413 ? { Connection: 'close' } : {}), ...corsHeaders });
      res.end(text);
    };
    try {
      if (options.host === '127.0.0.1' && !isLoopbackHost(req.headers.host, boundPort)) {
        throw new ApiFailure(403, 'This server answers requests addressed to 127.0.0.1 or localhost only.', 'forbidden_host');
      }
      if (typeof origin === 'string' && allowedOrigin === null) {
        throw new ApiFailure(403, `Requests from web pages (Origin ${origin.slice(0, 100)}) are refused; add the origin on Hearth's Server screen to allow it.`, 'forbidden_origin');
      }
      if (req.method === 'OPTIONS') {
        status = 204;
        res.writeHead(204, corsHeaders);
        res.end();
        return;
      }
      if (!keyMatches(options.key(), presentedKey(req))) {
        throw new ApiFailure(401, 'Missing or wrong API key: send it as "Authorization: Bearer KEY" or "x-api-key: KEY" (Hearth\'s Server screen shows it).', 'invalid_api_key');
      }
      if (!route) {
        const known = Object.keys(routes).some((r) => r.endsWith(` ${pathname}`));
        throw known ? new ApiFailure(405, `${req.method ?? ''} is not allowed on ${pathname}.`, 'method_not_allowed') : new ApiFailure(404, `No such endpoint: ${endpoint}. Hearth serves ${apiEndpoints.join(', ')}.`, 'not_found');
      }
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      const entered = route.generates ? gate.enter() : Promise.resolve();
      if (entered === null) throw new ApiFailure(429, `Too many requests are waiting (${maxActiveRequests} running, ${maxQueuedRequests} queued); retry shortly.`, 'rate_limit_exceeded');
      await entered;
      try {
        const exchange: Exchange = {
          body,
          signal: controller.signal,
          report,
          json: send,
          stream: (): EventStream => {
            status = 200;
            res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no', ...corsHeaders });
            res.flushHeaders();
            return {
              send: (data, name) => void res.write(`${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(data)}\n\n`),
              sendRaw: (data) => void res.write(`data: ${data}\n\n`),
              end: () => void res.end(),
            };
          },
        };
        await route.handler(exchange, options.backend);
      } finally {
        if (route.generates) gate.leave();
      }
    } catch (error) {
      failure = error instanceof ApiFailure ? error : new ApiFailure(500, 'The server failed to answer this request.', 'internal_error');
      if (!(error instanceof ApiFailure)) options.log('warn', `API ${endpoint} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (res.headersSent) status = failure.status;
      else send(failure.status, dialect === 'anthropic' ? anthropicError(failure) : openAiError(failure));
    } finally {
      options.onRequest({
        at,
        client: clientName(req.headers['user-agent']),
        endpoint,
        model: report.model,
        status,
        promptTokens: report.promptTokens,
        cachedTokens: report.cachedTokens,
        ttftMs: report.ttftMs,
        tokensPerSecond: report.tokensPerSecond,
        ...(failure ? { error: failure.message.slice(0, 500) } : {}),
        ...(report.cacheMiss ? { cacheMiss: report.cacheMiss } : {}),
      });
    }
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      const address = server.address();
      boundPort = address && typeof address === 'object' ? address.port : options.port;
      resolve({
        port: boundPort,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
