/**
 * A scripted OpenAI-compatible server on loopback, for the remote engine client's edge cases
 * that a real server cannot be made to show on demand: a stream cut midway, a malformed event,
 * an error event, a silent server, an HTML error page. (The real thing, llama-server, is in
 * llama-server.ts.) Each route answers what the test set; every request is recorded.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: unknown;
}

/** How `/v1/chat/completions` answers. */
export type ChatScript =
  /** Streams `pieces` as deltas, then a finish and usage, then [DONE]. */
  | { readonly kind: 'stream'; readonly pieces: readonly string[]; readonly usage?: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens: number } }; readonly finishReason?: string; readonly delayMs?: number }
  /** Streams `pieces`, then closes the socket without a finish. */
  | { readonly kind: 'cut'; readonly pieces: readonly string[] }
  /** Streams `pieces`, then holds the connection open until the client goes (its close is recorded). */
  | { readonly kind: 'hang'; readonly pieces: readonly string[] }
  /** Sends raw SSE text as is. */
  | { readonly kind: 'raw'; readonly text: string }
  /** Answers an HTTP error with `body`. */
  | { readonly kind: 'status'; readonly status: number; readonly body: string; readonly contentType?: string; readonly headers?: Readonly<Record<string, string>> };

export interface OpenAiEmulator {
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** Connections to /v1/chat/completions the client closed before the server ended them. */
  readonly clientClosed: number;
  models: { id: string; max_model_len?: number }[];
  metricsText: string | null;
  chat: ChatScript;
  /** When set, every request without `Authorization: Bearer <key>` answers 401. */
  apiKey: string | null;
  close(): Promise<void>;
}

function chunk(content: string | null, finish: string | null): string {
  return `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }] })}\n\n`;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    return text;
  }
}

/** Starts the emulator; with `tls` (a key and certificate in PEM) it speaks https. */
export async function startOpenAiEmulator(options: { tls?: { key: string; cert: string } } = {}): Promise<OpenAiEmulator> {
  let clientClosed = 0;
  const state: Omit<OpenAiEmulator, 'baseUrl' | 'close' | 'clientClosed'> = {
    requests: [],
    models: [{ id: 'test-model', max_model_len: 4096 }],
    metricsText: null,
    chat: { kind: 'stream', pieces: ['Hello', ' there'] },
    apiKey: null,
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const body = await readBody(req);
      state.requests.push({ method: req.method ?? 'GET', path, headers: req.headers, body });
      if (state.apiKey !== null && req.headers.authorization !== `Bearer ${state.apiKey}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Invalid API Key', type: 'authentication_error', code: 401 } }));
        return;
      }
      if (path === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: state.models.map((m) => ({ object: 'model', owned_by: 'test', ...m })) }));
        return;
      }
      if (path === '/metrics') {
        if (state.metricsText === null) res.writeHead(404).end('not found');
        else res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(state.metricsText);
        return;
      }
      if (path !== '/v1/chat/completions') {
        res.writeHead(404).end();
        return;
      }
      const script = state.chat;
      if (script.kind === 'status') {
        res.writeHead(script.status, { 'content-type': script.contentType ?? 'application/json', ...script.headers }).end(script.body);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.on('close', () => {
        if (!res.writableFinished) clientClosed += 1;
      });
      if (script.kind === 'raw') {
        res.end(script.text);
        return;
      }
      for (const piece of script.pieces) {
        res.write(chunk(piece, null));
        if (script.kind === 'stream' && script.delayMs) await new Promise((r) => setTimeout(r, script.delayMs));
      }
      if (script.kind === 'cut') {
        // Let the pieces leave first: destroying drops what is still buffered.
        await new Promise((r) => setTimeout(r, 50));
        res.socket?.destroy();
        return;
      }
      if (script.kind === 'hang') return;
      res.write(chunk(null, script.finishReason ?? 'stop'));
      if (script.usage) res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [], usage: script.usage })}\n\n`);
      res.end('data: [DONE]\n\n');
    })();
  };
  const server: Server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler) : createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.defineProperties(state, {
    baseUrl: { value: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}` },
    clientClosed: { get: () => clientClosed },
    close: {
      value: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    },
  });
  return state as OpenAiEmulator;
}
