/**
 * OpenAI's wire format: `GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/completions`,
 * streamed (Server-Sent Events) and not. Fields Hearth cannot honour get a 400 that names them
 * rather than being ignored: a client that asked for `n: 3` must not silently get one choice.
 *
 * Usage reports the cache: `prompt_tokens_details.cached_tokens` (reused from memory or restored
 * from disk) and a `hearth` object (reused, restored, prefilled, restoreMs).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { maxMessageChars } from '../../contract/index.ts';
import type { GenerateOutput, OutputFormat, PromptMessage } from '../../protocol.ts';
import type { ApiTurn } from './runs.ts';
import { ApiFailure, callId, hearthUsage, jsonObjectSchema, lazyStream, maxApiBodyDepth, parseBody, PromptBuilder, reportTurn, tooDeep, usageOf, type ApiBackend, type Exchange } from './wire.ts';

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string().max(maxMessageChars * 5), z.array(z.union([textPart, z.looseObject({ type: z.string() })])).max(256)]);
const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  function: z.strictObject({ name: z.string().min(1).max(256), arguments: z.string().max(maxMessageChars) }),
});
const message = z.discriminatedUnion('role', [
  z.strictObject({ role: z.enum(['system', 'developer']), content, name: z.string().max(256).optional() }),
  z.strictObject({ role: z.literal('user'), content, name: z.string().max(256).optional() }),
  z.strictObject({
    role: z.literal('assistant'),
    content: content.nullable().optional(),
    tool_calls: z.array(toolCall).max(64).optional(),
    name: z.string().max(256).optional(),
    refusal: z.null().optional(),
  }),
  z.strictObject({ role: z.literal('tool'), content, tool_call_id: z.string().min(1).max(256) }),
]);
const stop = z.union([z.string().min(1).max(200), z.array(z.string().min(1).max(200)).max(8)]).nullable().optional();
const common = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).max(32_768).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  stop,
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  logit_bias: z.record(z.string(), z.number()).nullable().optional(),
  user: z.string().max(256).optional(),
  /** Hearth's own: `auto` drops the oldest messages when the prompt does not fit (else a 400). */
  truncation: z.enum(['auto', 'disabled']).optional(),
};
const chatRequest = z.strictObject({
  ...common,
  messages: z.array(message).min(1).max(10_000),
  max_completion_tokens: z.number().int().min(1).max(32_768).nullable().optional(),
  response_format: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json_object') }),
      z.strictObject({
        type: z.literal('json_schema'),
        json_schema: z.strictObject({ name: z.string().min(1).max(64), description: z.string().optional(), schema: jsonObjectSchema.optional(), strict: z.boolean().nullable().optional() }),
      }),
    ])
    .nullable()
    .optional(),
  tools: z
    .array(
      z.strictObject({
        type: z.literal('function'),
        function: z.strictObject({ name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a function name is 1 to 64 letters, digits, _ or -'), description: z.string().max(10_000).optional(), parameters: jsonObjectSchema.optional(), strict: z.boolean().nullable().optional() }),
      }),
    )
    .max(128)
    .optional(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })]).optional(),
  parallel_tool_calls: z.boolean().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  store: z.boolean().nullable().optional(),
});
const completionRequest = z.strictObject({
  ...common,
  prompt: z.union([z.string().max(maxMessageChars * 5), z.array(z.string().max(maxMessageChars * 5)).min(1).max(1)]),
  echo: z.boolean().nullable().optional(),
  best_of: z.number().int().min(1).max(20).nullable().optional(),
  logprobs: z.number().int().nullable().optional(),
  suffix: z.string().nullable().optional(),
});

type Common = { [K in keyof typeof common]?: z.infer<(typeof common)[K]> };

/** Fields accepted by the schema that Hearth cannot honour: a 400 naming the field. */
function refuseUnsupported(request: Common & { logprobs?: unknown; top_logprobs?: unknown; echo?: unknown; best_of?: unknown; suffix?: unknown }): void {
  const refuse = (param: string, why: string): never => {
    throw new ApiFailure(400, `${param}: ${why}`, 'unsupported_parameter', param);
  };
  if ((request.n ?? 1) !== 1) refuse('n', 'Hearth returns one choice per request; send n = 1 (or leave it out).');
  if ((request.frequency_penalty ?? 0) !== 0) refuse('frequency_penalty', 'not supported; leave it out or send 0.');
  if ((request.presence_penalty ?? 0) !== 0) refuse('presence_penalty', 'not supported; leave it out or send 0.');
  if (request.logit_bias && Object.keys(request.logit_bias).length > 0) refuse('logit_bias', 'not supported.');
  if (request.logprobs !== undefined && request.logprobs !== null && request.logprobs !== false) refuse('logprobs', 'not supported.');
  if (request.top_logprobs !== undefined && request.top_logprobs !== null) refuse('top_logprobs', 'not supported.');
  if (request.echo === true) refuse('echo', 'not supported.');
  if ((request.best_of ?? 1) !== 1) refuse('best_of', 'not supported; send 1 (or leave it out).');
  if (request.suffix !== undefined && request.suffix !== null && request.suffix !== '') refuse('suffix', 'not supported (no fill-in-the-middle).');
}

/** Text of a message's content: strings as they are, text parts joined; anything else is refused. */
function textOf(value: z.infer<typeof content> | null | undefined, where: string): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return value
    .map((part, i) => {
      if (part.type !== 'text' || typeof part.text !== 'string') throw new ApiFailure(400, `${where}.content[${i}]: only text parts are supported (got ${JSON.stringify(part.type)}).`, 'unsupported_content', `${where}.content`);
      return part.text;
    })
    .join('');
}

function parseArguments(raw: string, where: string): unknown {
  let value: unknown;
  try {
    value = raw.trim() === '' ? {} : JSON.parse(raw);
  } catch {
    throw new ApiFailure(400, `${where}: the tool call's arguments are not valid JSON.`, 'invalid_request', where);
  }
  // A JSON string inside the body: the body's own depth check did not see into it.
  if (tooDeep(value)) throw new ApiFailure(400, `${where}: the tool call's arguments are nested more than ${maxApiBodyDepth} levels deep.`, 'invalid_request', where);
  return value;
}

function promptOf(messages: z.infer<typeof chatRequest>['messages']): PromptMessage[] {
  const prompt = new PromptBuilder();
  messages.forEach((m, i) => {
    const where = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer':
        prompt.add('system', textOf(m.content, where));
        break;
      case 'user':
        prompt.add('user', textOf(m.content, where));
        break;
      case 'assistant': {
        const text = textOf(m.content, where);
        if (m.tool_calls && m.tool_calls.length > 0) {
          prompt.addCalls(text, m.tool_calls.map((call, j) => ({ id: call.id, name: call.function.name, params: parseArguments(call.function.arguments, `${where}.tool_calls[${j}].function.arguments`) })));
        } else {
          prompt.add('assistant', text);
        }
        break;
      }
      case 'tool':
        prompt.addResult(m.tool_call_id, textOf(m.content, where));
        break;
    }
  });
  return prompt.build();
}

function formatOf(request: z.infer<typeof chatRequest>): OutputFormat | undefined {
  const format = request.response_format;
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json' };
  const schema = format.json_schema.schema;
  return schema ? { type: 'json_schema', schema } : { type: 'json' };
}

function functionsOf(request: z.infer<typeof chatRequest>): ApiTurn['functions'] {
  const tools = request.tools ?? [];
  const choice = request.tool_choice ?? 'auto';
  if (tools.length === 0 || choice === 'none') return undefined;
  if (choice !== 'auto') {
    throw new ApiFailure(400, 'tool_choice: Hearth lets the model decide whether to call a tool ("auto") or offers none ("none"); forcing a call ("required" or a named function) is not supported.', 'unsupported_parameter', 'tool_choice');
  }
  const functions: Record<string, { description?: string; params?: Record<string, unknown> }> = {};
  for (const tool of tools) {
    const { name, description, parameters } = tool.function;
    if (Object.hasOwn(functions, name)) throw new ApiFailure(400, `tools: the function ${name} is listed twice.`, 'invalid_request', 'tools');
    functions[name] = { ...(description !== undefined ? { description } : {}), ...(parameters !== undefined ? { params: parameters } : {}) };
  }
  return functions;
}

function samplingOf(request: Common & { max_completion_tokens?: number | null | undefined }): ApiTurn['sampling'] {
  return {
    // OpenAI's defaults: temperature 1, top_p 1. No max tokens: Hearth's automatic reply length.
    temperature: request.temperature ?? 1,
    topP: request.top_p ?? 1,
    maxTokens: request.max_completion_tokens ?? request.max_tokens ?? 0,
  };
}

function stopOf(value: Common['stop']): string[] | undefined {
  if (value === null || value === undefined) return undefined;
  return typeof value === 'string' ? [value] : value;
}

function finishReason(output: GenerateOutput): string {
  switch (output.stopReason) {
    case 'maxTokens':
    case 'context':
      return 'length';
    case 'functionCalls':
      return 'tool_calls';
    default:
      return 'stop';
  }
}

function usage(output: GenerateOutput): Record<string, unknown> {
  const { prompt, cached, completion } = usageOf(output.stats);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

function toolCallsOf(output: GenerateOutput, seed: string): { id: string; type: 'function'; function: { name: string; arguments: string } }[] | undefined {
  if (!output.functionCalls || output.functionCalls.length === 0) return undefined;
  return output.functionCalls.map((call, i) => ({ id: callId('call_', i, seed), type: 'function', function: { name: call.name, arguments: JSON.stringify(call.params ?? {}) } }));
}

/** Runs a turn as a stream or as one response; `shape` builds the dialect's objects. */
async function serve(
  exchange: Exchange,
  backend: ApiBackend,
  model: string,
  turn: ApiTurn,
  options: { stream: boolean; includeUsage: boolean; object: 'chat.completion' | 'text_completion' },
): Promise<void> {
  const id = `${options.object === 'chat.completion' ? 'chatcmpl-' : 'cmpl-'}${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const startedAt = performance.now();
  const chat = options.object === 'chat.completion';
  if (!options.stream) {
    const output = await backend.run(model, turn, () => undefined, exchange.signal);
    reportTurn(exchange.report, output, startedAt);
    const toolCalls = toolCallsOf(output, id);
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: toolCalls && output.text === '' ? null : output.text, refusal: null, ...(toolCalls ? { tool_calls: toolCalls } : {}) }, logprobs: null, finish_reason: finishReason(output) }
      : { index: 0, text: output.text, logprobs: null, finish_reason: finishReason(output) };
    exchange.json(200, { id, object: options.object, created, model, choices: [choice], usage: usage(output), system_fingerprint: null, hearth: hearthUsage(output.stats) });
    return;
  }
  const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    id,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created,
    model,
    system_fingerprint: null,
    choices: choice ? [choice] : [],
    ...(options.includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const stream = lazyStream(exchange, (events) => {
    if (chat) events.send(chunk({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
  });
  let output: GenerateOutput;
  try {
    output = await backend.run(
      model,
      turn,
      (text) => stream.open().send(chunk(chat ? { index: 0, delta: { content: text }, logprobs: null, finish_reason: null } : { index: 0, text, logprobs: null, finish_reason: null })),
      exchange.signal,
    );
  } catch (error) {
    if (!stream.isOpen) throw error;
    // The status line is gone: the failure travels as an event, as OpenAI's own streams do.
    const failure = error instanceof ApiFailure ? error : new ApiFailure(500, 'The request failed.', 'internal_error');
    stream.open().send(openAiError(failure));
    stream.open().end();
    throw failure;
  }
  const events = stream.open();
  reportTurn(exchange.report, output, startedAt);
  const toolCalls = toolCallsOf(output, id);
  if (toolCalls && chat) events.send(chunk({ index: 0, delta: { tool_calls: toolCalls.map((call, index) => ({ index, ...call })) }, logprobs: null, finish_reason: null }));
  const last = chat ? { index: 0, delta: {}, logprobs: null, finish_reason: finishReason(output) } : { index: 0, text: '', logprobs: null, finish_reason: finishReason(output) };
  // The last event carries Hearth's cache account whether or not usage was asked for.
  if (options.includeUsage) {
    events.send(chunk(last));
    events.send(chunk(null, { usage: usage(output), hearth: hearthUsage(output.stats) }));
  } else {
    events.send(chunk(last, { hearth: hearthUsage(output.stats) }));
  }
  events.sendRaw('[DONE]');
  events.end();
}

export async function chatCompletions(exchange: Exchange, backend: ApiBackend): Promise<void> {
  const request = parseBody(chatRequest, exchange.body);
  exchange.report.model = request.model;
  refuseUnsupported(request);
  const format = formatOf(request);
  const functions = functionsOf(request);
  if (format && functions) throw new ApiFailure(400, 'response_format: a JSON response format cannot be combined with tools.', 'unsupported_parameter', 'response_format');
  const messages = promptOf(request.messages);
  await backend.useModel(request.model);
  const stopTexts = stopOf(request.stop);
  const turn: ApiTurn = {
    messages,
    sampling: samplingOf(request),
    overflowPolicy: request.truncation === 'auto' ? 'drop-oldest' : 'stop',
    ...(stopTexts ? { stop: stopTexts } : {}),
    ...(request.seed !== null && request.seed !== undefined ? { seed: request.seed } : {}),
    ...(format ? { format } : {}),
    ...(functions ? { functions } : {}),
  };
  await serve(exchange, backend, request.model, turn, { stream: request.stream === true, includeUsage: request.stream_options?.include_usage === true, object: 'chat.completion' });
}

export async function completions(exchange: Exchange, backend: ApiBackend): Promise<void> {
  const request = parseBody(completionRequest, exchange.body);
  exchange.report.model = request.model;
  refuseUnsupported(request);
  const prompt = typeof request.prompt === 'string' ? request.prompt : request.prompt[0]!;
  if (prompt === '') throw new ApiFailure(400, 'prompt: the prompt is empty.', 'invalid_request', 'prompt');
  await backend.useModel(request.model);
  const stopTexts = stopOf(request.stop);
  const turn: ApiTurn = {
    messages: [{ role: 'user', text: prompt }],
    raw: true,
    // OpenAI's default for completions is 16 tokens.
    sampling: { ...samplingOf(request), maxTokens: request.max_tokens ?? 16 },
    overflowPolicy: request.truncation === 'auto' ? 'drop-oldest' : 'stop',
    ...(stopTexts ? { stop: stopTexts } : {}),
    ...(request.seed !== null && request.seed !== undefined ? { seed: request.seed } : {}),
  };
  await serve(exchange, backend, request.model, turn, { stream: request.stream === true, includeUsage: request.stream_options?.include_usage === true, object: 'text_completion' });
}

export async function listModels(exchange: Exchange, backend: ApiBackend): Promise<void> {
  const models = await backend.models();
  exchange.json(200, { object: 'list', data: models.map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'local' })) });
}

/** OpenAI's error body. */
export function openAiError(failure: ApiFailure): Record<string, unknown> {
  const type =
    failure.status === 401 ? 'authentication_error' : failure.status === 403 ? 'permission_error' : failure.status === 404 ? 'not_found_error' : failure.status === 429 ? 'rate_limit_error' : failure.status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message: failure.message, type, param: failure.param, code: failure.code } };
}
