/**
 * The HTTP side of a remote engine: its model list (`/v1/models`), its Prometheus text
 * (`/metrics`) and streamed chat completions (`/v1/chat/completions`), with every answer size-
 * capped and checked before use, and every failure turned into a HearthError (errors.ts).
 *
 * A stream is read as server-sent events; the reply's text arrives as deltas. Stopping aborts
 * the request: the connection closes, which is how llama-server, vLLM and SGLang learn to stop
 * generating. A stream that ends without the server saying it finished (no `finish_reason`, no
 * `[DONE]`) was cut, and says so.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import { err, errorText, ok, type HearthError, type RemoteModel, type Result } from '../../contract/index.ts';
import { codeOf, readCapped } from '../http-read.ts';
import { remoteCutError, remoteHttpError, remoteMalformedError, remoteNetworkError, type RemoteFailureContext } from './errors.ts';

/** An engine as a request needs it. */
export interface RemoteTarget {
  readonly name: string;
  /** Normalized (`normalizeBaseUrl`). */
  readonly baseUrl: string;
  readonly apiKey: string | null;
}

/** The root URL as stored: no trailing `/`, no trailing `/v1` (users paste either). */
export function normalizeBaseUrl(text: string): string {
  const url = new URL(text.trim());
  const pathname = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.protocol}//${url.host}${pathname}`;
}

/** Model lists and error bodies are small; metrics can hold a few thousand lines. */
const MAX_MODELS_BYTES = 4 * 1024 * 1024;
const MAX_METRICS_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BYTES = 64 * 1024;
/** One event of a stream; a token's JSON is a few hundred bytes. */
const MAX_EVENT_BYTES = 1024 * 1024;
/** The longest reply text kept: far beyond any max_tokens, short of filling the host's memory. */
const MAX_REPLY_CHARS = 8 * 1024 * 1024;

const modelsSchema = z.object({
  data: z
    .array(
      z.looseObject({
        id: z.string().min(1).max(500),
        max_model_len: z.number().int().positive().optional(),
        meta: z.looseObject({ n_ctx_train: z.number().int().positive().optional() }).nullish(),
      }),
    )
    .max(10_000),
});

const usageSchema = z.looseObject({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z.looseObject({ cached_tokens: z.number().int().nonnegative().nullish() }).nullish(),
});

/** One streamed chunk: only the fields Hearth reads, each optional (servers differ). */
const chunkSchema = z.looseObject({
  choices: z
    .array(
      z.looseObject({
        delta: z.looseObject({ content: z.string().nullish() }).nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .optional(),
  usage: usageSchema.nullish(),
  /** llama-server's own account: `cache_n` prompt tokens came from its cache, `prompt_ms` evaluated the rest. */
  timings: z.looseObject({ cache_n: z.number().int().nonnegative().optional(), prompt_ms: z.number().nonnegative().optional() }).nullish(),
  error: z.unknown().optional(),
});

/** What a chat request asks for. */
export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly { readonly role: 'system' | 'user' | 'assistant'; readonly content: string }[];
  readonly temperature: number;
  readonly topP: number;
  /** Omitted (the server's default) when null. */
  readonly maxTokens: number | null;
}

/** How a streamed reply ended. `error` is set when it failed or was cut; the text so far stays in `text`. */
export interface ChatOutcome {
  readonly text: string;
  /** The server's `finish_reason` (`stop`, `length`…), null when it never said. */
  readonly finishReason: string | null;
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number; readonly cachedTokens: number | null } | null;
  /** llama-server's prompt evaluation time, when it reports it. */
  readonly promptMs: number | null;
  /** From sending the request to the first text, ms; null when no text came. */
  readonly ttftMs: number | null;
  readonly aborted: boolean;
  readonly error?: HearthError;
}

export interface RemoteClientOptions {
  readonly fetch?: typeof fetch;
  /** How long a model list or metrics request may take. */
  readonly timeoutMs?: number;
  /** How long a stream may go without a byte (a long prompt's prefill sends nothing until its first token). */
  readonly idleMs?: number;
}

function headersFor(target: RemoteTarget, accept: string): Record<string, string> {
  return { accept, ...(target.apiKey !== null ? { authorization: `Bearer ${target.apiKey}` } : {}) };
}

function contextOf(target: RemoteTarget, model?: string): RemoteFailureContext {
  return { name: target.name, baseUrl: target.baseUrl, hadKey: target.apiKey !== null, ...(model !== undefined ? { model } : {}) };
}

export class RemoteClient {
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #idleMs: number;

  constructor(options: RemoteClientOptions = {}) {
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#idleMs = options.idleMs ?? 10 * 60_000;
  }

  /** The models the engine serves. */
  async models(target: RemoteTarget): Promise<Result<RemoteModel[]>> {
    const text = await this.#get(target, '/v1/models', 'application/json', MAX_MODELS_BYTES);
    if (!text.ok) return text;
    let json: unknown;
    try {
      json = JSON.parse(text.value);
    } catch {
      return { ok: false, error: remoteMalformedError(target.name, 'a model list') };
    }
    const parsed = modelsSchema.safeParse(json);
    if (!parsed.success) return { ok: false, error: remoteMalformedError(target.name, 'a model list') };
    return ok(
      parsed.data.data.map((entry): RemoteModel => {
        const contextLength = entry.max_model_len ?? entry.meta?.n_ctx_train ?? undefined;
        return contextLength !== undefined ? { id: entry.id, contextLength } : { id: entry.id };
      }),
    );
  }

  /** The engine's Prometheus text. */
  async metrics(target: RemoteTarget): Promise<Result<string>> {
    const text = await this.#get(target, '/metrics', 'text/plain', MAX_METRICS_BYTES);
    if (!text.ok && text.error.code === 'NOT_FOUND') {
      return err('NOT_FOUND', `${target.name} publishes no /metrics.`, 'Start llama-server with --metrics, or SGLang with --enable-metrics (vLLM publishes them by default).');
    }
    return text;
  }

  async #get(target: RemoteTarget, path: string, accept: string, maxBytes: number): Promise<Result<string>> {
    const context = contextOf(target);
    try {
      const response = await this.#fetch(`${target.baseUrl}${path}`, { headers: headersFor(target, accept), signal: AbortSignal.timeout(this.#timeoutMs), redirect: 'error' });
      if (!response.ok) {
        const body = (await readCapped(response, MAX_ERROR_BYTES)) ?? '';
        return { ok: false, error: remoteHttpError(response.status, body, context) };
      }
      const text = await readCapped(response, maxBytes);
      return text === null ? { ok: false, error: remoteMalformedError(target.name, 'an answer far larger than expected') } : ok(text);
    } catch (error) {
      return { ok: false, error: remoteNetworkError(error, context, this.#timeoutMs) };
    }
  }

  /**
   * Streams a chat completion; `onDelta` gets each piece of text as it arrives. Never throws:
   * a failure before any text, a cut stream and an abort all end in the outcome.
   */
  async chat(target: RemoteTarget, request: ChatRequest, signal: AbortSignal, onDelta: (delta: string) => void): Promise<ChatOutcome> {
    const context = contextOf(target, request.model);
    const reply = new ReplyStream(target.name, context, onDelta);
    // The idle timer aborts this controller; the caller's signal aborts it too.
    const controller = new AbortController();
    let idle: NodeJS.Timeout | null = null;
    let idledOut = false;
    const touch = (): void => {
      if (idle !== null) clearTimeout(idle);
      idle = setTimeout(() => {
        idledOut = true;
        controller.abort();
      }, this.#idleMs);
    };
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) controller.abort();
    try {
      touch();
      let response: Response;
      try {
        response = await this.#fetch(`${target.baseUrl}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...headersFor(target, 'text/event-stream'), 'content-type': 'application/json' },
          body: JSON.stringify(requestBody(request)),
          signal: controller.signal,
          redirect: 'error',
        });
      } catch (error) {
        if (signal.aborted) return reply.outcome({ aborted: true });
        const timeout = Object.assign(new Error('idle'), { name: 'TimeoutError' });
        return reply.outcome({ aborted: false, error: remoteNetworkError(idledOut ? timeout : error, context, idledOut ? this.#idleMs : this.#timeoutMs) });
      }
      if (!response.ok) {
        const errorBody = (await readCapped(response, MAX_ERROR_BYTES).catch(() => null)) ?? '';
        return reply.outcome({ aborted: false, error: remoteHttpError(response.status, errorBody, context) });
      }
      if (response.body === null) return reply.outcome({ aborted: false, error: remoteMalformedError(target.name, 'an empty answer') });
      const parser = createParser({ onEvent: (message) => reply.onEvent(message) });
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          touch();
          parser.feed(decoder.decode(value, { stream: true }));
          if (reply.ended) break;
        }
      } catch (error) {
        if (signal.aborted) return reply.outcome({ aborted: true });
        const why = idledOut ? `nothing arrived for ${Math.round(this.#idleMs / 1000)} s` : (codeOf(error) ?? errorText(error));
        return reply.outcome({ aborted: false, error: remoteCutError(target.name, why) });
      } finally {
        // A failure or [DONE] leaves the stream open: close it, so the server stops too.
        await reader.cancel().catch(() => undefined);
      }
      return reply.finished();
    } finally {
      if (idle !== null) clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** The JSON body of a streamed chat completion. */
function requestBody(request: ChatRequest): Record<string, unknown> {
  return {
    model: request.model,
    messages: request.messages,
    stream: true,
    // Without it OpenAI-compatible servers send no usage in a stream (vLLM, SGLang, llama-server honour it).
    stream_options: { include_usage: true },
    temperature: request.temperature,
    top_p: request.topP,
    ...(request.maxTokens !== null ? { max_tokens: request.maxTokens } : {}),
  };
}

/** One streamed reply as its events arrive: the text, how it ended, and what the server counted. */
class ReplyStream {
  readonly #name: string;
  readonly #context: RemoteFailureContext;
  readonly #onDelta: (delta: string) => void;
  readonly #started = performance.now();
  #text = '';
  #finishReason: string | null = null;
  #usage: { promptTokens: number; completionTokens: number; cachedTokens: number | null } | null = null;
  #cacheN: number | null = null;
  #promptMs: number | null = null;
  #ttftMs: number | null = null;
  #done = false;
  #failure: HearthError | undefined;

  constructor(name: string, context: RemoteFailureContext, onDelta: (delta: string) => void) {
    this.#name = name;
    this.#context = context;
    this.#onDelta = onDelta;
  }

  /** `[DONE]` arrived, or an event failed: nothing more is read. */
  get ended(): boolean {
    return this.#done || this.#failure !== undefined;
  }

  onEvent(message: EventSourceMessage): void {
    if (this.ended) return;
    if (message.data.length > MAX_EVENT_BYTES) {
      this.#failure = remoteMalformedError(this.#name, 'an oversized event');
      return;
    }
    if (message.data.trim() === '[DONE]') {
      this.#done = true;
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(message.data);
    } catch {
      this.#failure = remoteMalformedError(this.#name, 'a stream event');
      return;
    }
    const parsed = chunkSchema.safeParse(json);
    if (!parsed.success) {
      this.#failure = remoteMalformedError(this.#name, 'a stream event');
      return;
    }
    this.#take(parsed.data);
  }

  #take(chunk: z.infer<typeof chunkSchema>): void {
    if (chunk.error !== undefined) {
      // vLLM and SGLang report a failure mid-stream as an event carrying `error`.
      this.#failure = remoteHttpError(500, JSON.stringify({ error: chunk.error }), this.#context);
      return;
    }
    for (const choice of chunk.choices ?? []) {
      const delta = choice.delta?.content ?? '';
      if (delta !== '') {
        if (this.#text.length + delta.length > MAX_REPLY_CHARS) {
          this.#failure = remoteMalformedError(this.#name, 'a reply far longer than asked for');
          return;
        }
        this.#ttftMs ??= performance.now() - this.#started;
        this.#text += delta;
        this.#onDelta(delta);
      }
      if (choice.finish_reason) this.#finishReason = choice.finish_reason;
    }
    if (chunk.usage) {
      const cached = chunk.usage.prompt_tokens_details?.cached_tokens;
      this.#usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens, cachedTokens: cached ?? null };
    }
    if (chunk.timings) {
      this.#cacheN = chunk.timings.cache_n ?? this.#cacheN;
      this.#promptMs = chunk.timings.prompt_ms ?? this.#promptMs;
    }
  }

  /** How the stream ended once the body was read whole. */
  finished(): ChatOutcome {
    if (this.#failure) return this.outcome({ aborted: false, error: this.#failure });
    if (!this.#done && this.#finishReason === null) return this.outcome({ aborted: false, error: remoteCutError(this.#name, null) });
    return this.outcome({ aborted: false });
  }

  outcome(extra: { aborted: boolean; error?: HearthError }): ChatOutcome {
    const usage = this.#usage === null ? null : { ...this.#usage, cachedTokens: this.#usage.cachedTokens ?? this.#cacheN };
    return { text: this.#text, finishReason: this.#finishReason, usage, promptMs: this.#promptMs, ttftMs: this.#ttftMs, ...extra };
  }
}
