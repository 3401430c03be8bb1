/**
 * What the two wire formats (openai.ts, anthropic.ts) share: the failure type every handler
 * answers with, how Hearth's errors map onto HTTP, the exchange a handler writes to, and the
 * parts of a prompt both formats build (tool calls folded into their assistant message).
 */
import { z } from 'zod';
import type { CacheMiss, HearthError, MessageStats } from '../../contract/index.ts';
import type { FunctionCallRecord, GenerateOutput, PromptMessage } from '../../protocol.ts';
import type { ApiTurn } from './runs.ts';

/** A request the server refuses or could not serve: rendered in the caller's dialect. */
export class ApiFailure extends Error {
  readonly status: number;
  /** OpenAI's `error.code` (e.g. `context_length_exceeded`, `model_not_found`), when it has one. */
  readonly code: string | null;
  readonly param: string | null;

  constructor(status: number, message: string, code: string | null = null, param: string | null = null) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

/** How an engine error reaches an API client: bad input is a 4xx, the engine's trouble a 5xx. */
export function failureOf(error: HearthError): ApiFailure {
  const text = error.hint ? `${error.message} ${error.hint}` : error.message;
  switch (error.code) {
    case 'INVALID_INPUT':
    case 'NOT_SUPPORTED':
      return new ApiFailure(400, text, 'invalid_request');
    case 'CONTEXT_OVERFLOW':
      return new ApiFailure(400, `${error.message} Send a shorter prompt or fewer max tokens, or set "truncation": "auto" to drop the oldest messages.`, 'context_length_exceeded', 'messages');
    case 'NOT_FOUND':
      return new ApiFailure(404, text, 'not_found');
    case 'BUSY':
      return new ApiFailure(429, text, 'busy');
    case 'CANCELLED':
      return new ApiFailure(499, text, 'cancelled');
    case 'MODEL_NOT_LOADED':
    case 'MODEL_INVALID':
    case 'MODEL_UNSUPPORTED':
      return new ApiFailure(503, text, 'model_unavailable');
    case 'ENGINE_CRASHED':
    case 'ENGINE_UNAVAILABLE':
    case 'OUT_OF_MEMORY':
    case 'DISK_FULL':
      return new ApiFailure(503, text, 'engine_unavailable');
    default:
      return new ApiFailure(500, text, 'internal_error');
  }
}

/**
 * Deepest nesting a request body may have. Real ones (tool schemas, tool arguments) are a dozen
 * levels deep at most; a body nested thousands deep overflows the stack of whatever walks it
 * recursively later (JSON.stringify of the prompt's digest, the engine's serialization).
 */
export const maxApiBodyDepth = 64;
/** Whether `value` nests more than `maxApiBodyDepth` levels (walked without recursion). */
export function tooDeep(value: unknown): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (next.value === null || typeof next.value !== 'object') continue;
    if (next.depth >= maxApiBodyDepth) return true;
    for (const child of Object.values(next.value)) stack.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

/** What a finished request reports to the Server screen's log (filled in by the handler). */
export interface ExchangeReport {
  model: string | null;
  promptTokens: number | null;
  cachedTokens: number | null;
  ttftMs: number | null;
  tokensPerSecond: number | null;
  cacheMiss?: CacheMiss;
}

/** One Server-Sent Events response. */
export interface EventStream {
  /** Writes one event (`event:` line only when `name` is given). */
  send(data: unknown, name?: string): void;
  /** Writes a raw `data:` line (OpenAI's `[DONE]`). */
  sendRaw(data: string): void;
  end(): void;
}

/** One HTTP exchange as a handler sees it: the parsed body, the way back, and the report. */
export interface Exchange {
  readonly body: unknown;
  /** Aborted when the client goes away (its generation is then stopped). */
  readonly signal: AbortSignal;
  readonly report: ExchangeReport;
  json(status: number, body: unknown): void;
  /** Starts a 200 event stream; after this, failures must be sent as events. */
  stream(): EventStream;
}

/** A streamed reply's event stream, opened at its first use. */
export interface LazyStream {
  /** The stream, opened now (its 200 status and `opening`'s events) unless it already is. */
  open(): EventStream;
  readonly isOpen: boolean;
}

/**
 * The stream opens with the first token: a request refused before it (a prompt too long for the
 * context, a bad schema) still gets its 4xx status, as it would without streaming. After it, a
 * failure must travel as an event (the status line is gone).
 */
export function lazyStream(exchange: Pick<Exchange, 'stream'>, opening: (events: EventStream) => void): LazyStream {
  let events: EventStream | null = null;
  return {
    open() {
      if (events) return events;
      events = exchange.stream();
      opening(events);
      return events;
    },
    get isOpen() {
      return events !== null;
    },
  };
}

/** What the handlers need of the host: the models and the engine. */
export interface ApiBackend {
  /** The local models' ids (file names without `.gguf`), the loaded one first. */
  models(): Promise<readonly { readonly id: string; readonly created: number; readonly loaded: boolean }[]>;
  /**
   * Makes `id` the loaded model, loading it (after running work) when another is loaded. An
   * unknown id fails with 404 `model_not_found`.
   */
  useModel(id: string): Promise<void>;
  run(model: string, turn: ApiTurn, onDelta: (text: string) => void, signal: AbortSignal): Promise<GenerateOutput>;
  countTokens(messages: readonly PromptMessage[], options: { readonly raw?: boolean; readonly functions?: ApiTurn['functions'] }): Promise<{ tokens: number; contextSize: number }>;
}

/** A zod failure as one line: the first issue, with where it is. */
export function invalidBody(error: z.ZodError): ApiFailure {
  const issue = error.issues[0];
  if (!issue) return new ApiFailure(400, 'The request body is not valid.', 'invalid_request');
  const where = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.join(', ');
    return new ApiFailure(400, `Unrecognized request argument supplied${where ? ` in ${where}` : ''}: ${keys}.`, 'invalid_request', where ? `${where}.${issue.keys[0]}` : (issue.keys[0] ?? null));
  }
  return new ApiFailure(400, `Invalid value for ${where || 'the body'}: ${issue.message}.`, 'invalid_request', where || null);
}

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiFailure(400, 'The request body must be a JSON object.', 'invalid_request');
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw invalidBody(parsed.error);
  return parsed.data;
}

/** Prompt tokens of a finished turn: all of them, and those the cache supplied. */
export function usageOf(stats: MessageStats): { prompt: number; cached: number; completion: number } {
  const cached = stats.tokensReused + stats.tokensRestored;
  return { prompt: cached + stats.tokensPrefilled, cached, completion: stats.tokensGenerated };
}

/** Hearth's own account of the cache, in every response and final stream event. */
export function hearthUsage(stats: MessageStats): Record<string, number> {
  return {
    reused: stats.tokensReused,
    restored: stats.tokensRestored,
    prefilled: stats.tokensPrefilled,
    restoreMs: stats.restoreMs ?? 0,
  };
}

/** Fills the log row from a finished turn. */
export function reportTurn(report: ExchangeReport, output: GenerateOutput, startedAt: number): void {
  const { prompt, cached, completion } = usageOf(output.stats);
  report.promptTokens = prompt;
  report.cachedTokens = cached;
  report.ttftMs = output.stats.ttftMs;
  const generatingMs = performance.now() - startedAt - output.stats.ttftMs;
  report.tokensPerSecond = completion > 1 && generatingMs > 0 ? Math.round(((completion - 1) / generatingMs) * 10_000) / 10 : null;
  if (output.stats.cacheMiss) report.cacheMiss = output.stats.cacheMiss;
}

/** A call id for a tool call the model made (clients echo it back with the result). */
export function callId(prefix: string, index: number, requestSeed: string): string {
  return `${prefix}${requestSeed.slice(0, 12)}${index}`;
}

/** One message of a prompt being built: tool calls still waiting for their results by id. */
export interface PendingCall {
  readonly id: string;
  readonly name: string;
  readonly params: unknown;
}

/**
 * Builds the prompt's messages from a dialect's parts: an assistant's calls get their results
 * from later tool messages (matched by id) and stay in that assistant message.
 */
export class PromptBuilder {
  readonly #messages: { role: PromptMessage['role']; text: string; calls?: { id: string; record: FunctionCallRecord }[] }[] = [];
  readonly #open = new Map<string, { record: FunctionCallRecord }>();

  add(role: PromptMessage['role'], text: string): void {
    this.#messages.push({ role, text });
  }

  /** An assistant message with calls (its text may be empty). */
  addCalls(text: string, calls: readonly PendingCall[]): void {
    const entries = calls.map((call) => {
      const entry = { id: call.id, record: { name: call.name, params: call.params } as FunctionCallRecord };
      if (this.#open.has(call.id)) throw new ApiFailure(400, `The tool call id ${JSON.stringify(call.id)} is used twice.`, 'invalid_request');
      this.#open.set(call.id, entry);
      return entry;
    });
    this.#messages.push({ role: 'assistant', text, calls: entries });
  }

  /** A tool's result for the call `id`. */
  addResult(id: string, result: string): void {
    const entry = this.#open.get(id);
    if (!entry) throw new ApiFailure(400, `A tool result answers ${JSON.stringify(id)}, which no earlier assistant message called.`, 'invalid_request');
    if (entry.record.result !== undefined) throw new ApiFailure(400, `The tool call ${JSON.stringify(id)} has two results.`, 'invalid_request');
    entry.record = { ...entry.record, result };
    // The assistant message holds the entry object: update it there too.
    for (const message of this.#messages) {
      const call = message.calls?.find((c) => c.id === id);
      if (call) call.record = entry.record;
    }
  }

  build(): PromptMessage[] {
    if (this.#messages.length === 0) throw new ApiFailure(400, 'The request has no messages.', 'invalid_request', 'messages');
    return this.#messages.map((m) => (m.calls ? { role: m.role, text: m.text, calls: m.calls.map((c) => c.record) } : { role: m.role, text: m.text }));
  }
}

/** A JSON-schema object for function parameters, as a plain record (validated as JSON). */
export const jsonObjectSchema = z.record(z.string(), z.unknown());
