/**
 * Anthropic's Messages API: `POST /v1/messages` (streamed and not) and
 * `POST /v1/messages/count_tokens`. `cache_control` markers are accepted and ignored: Hearth
 * caches every prefix on its own. Usage reports what the cache supplied as
 * `cache_read_input_tokens`; `input_tokens` counts only what was evaluated anew, as Anthropic's
 * own usage does (the three add up to the prompt).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { maxMessageChars } from '../../contract/index.ts';
import type { GenerateOutput, PromptMessage } from '../../protocol.ts';
import type { ApiTurn } from './runs.ts';
import { ApiFailure, callId, hearthUsage, jsonObjectSchema, parseBody, PromptBuilder, lazyStream, reportTurn, usageOf, type ApiBackend, type Exchange } from './wire.ts';

const cacheControl = z.looseObject({ type: z.string() }).nullable().optional();
const textBlock = z.strictObject({ type: z.literal('text'), text: z.string().max(maxMessageChars * 5), cache_control: cacheControl, citations: z.array(z.unknown()).nullable().optional() });
const toolUse = z.strictObject({ type: z.literal('tool_use'), id: z.string().min(1).max(256), name: z.string().min(1).max(256), input: z.unknown(), cache_control: cacheControl });
const toolResult = z.strictObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1).max(256),
  content: z.union([z.string().max(maxMessageChars * 5), z.array(textBlock).max(256)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});
const block = z.union([textBlock, toolUse, toolResult, z.looseObject({ type: z.string() })]);
/** The blocks Hearth reads: one that matched only the loose fallback above is malformed. */
const knownBlocks: Readonly<Record<string, z.ZodType>> = { text: textBlock, tool_use: toolUse, tool_result: toolResult };

/** Refuses a text, tool_use or tool_result block that is not well formed (a text block without text, say). */
function checkBlock(value: { type: string }, where: string): void {
  const schema = knownBlocks[value.type];
  if (!schema) return;
  const parsed = schema.safeParse(value);
  if (parsed.success) return;
  const issue = parsed.error.issues[0];
  const at = [where, ...(issue?.path.map(String) ?? []), ...(issue?.code === 'unrecognized_keys' ? [issue.keys[0] ?? ''] : [])].join('.');
  throw new ApiFailure(400, `Invalid value for ${at}: ${issue?.message ?? 'not a valid block'}.`, 'invalid_request', at);
}
const message = z.strictObject({ role: z.enum(['user', 'assistant']), content: z.union([z.string().max(maxMessageChars * 5), z.array(block).max(1024)]) });
const system = z.union([z.string().max(maxMessageChars * 5), z.array(textBlock).max(256)]).optional();
const tools = z
  .array(
    z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a tool name is 1 to 64 letters, digits, _ or -'),
      description: z.string().max(10_000).optional(),
      input_schema: jsonObjectSchema,
      type: z.literal('custom').optional(),
      cache_control: cacheControl,
    }),
  )
  .max(128)
  .optional();
const toolChoice = z
  .strictObject({ type: z.enum(['auto', 'any', 'tool', 'none']), name: z.string().optional(), disable_parallel_tool_use: z.boolean().optional() })
  .optional();
const thinking = z.union([z.strictObject({ type: z.literal('disabled') }), z.strictObject({ type: z.literal('enabled'), budget_tokens: z.number().int() })]).optional();
const messagesRequest = z.strictObject({
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).max(32_768),
  messages: z.array(message).min(1).max(10_000),
  system,
  stop_sequences: z.array(z.string().min(1).max(200)).max(8).optional(),
  stream: z.boolean().optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  metadata: z.strictObject({ user_id: z.string().max(256).nullable().optional() }).optional(),
  tools,
  tool_choice: toolChoice,
  thinking,
  service_tier: z.string().max(64).optional(),
  /** Hearth's own: `auto` drops the oldest messages when the prompt does not fit (else a 400). */
  truncation: z.enum(['auto', 'disabled']).optional(),
});
const countRequest = z.strictObject({ model: z.string().min(1).max(256), messages: messagesRequest.shape.messages, system, tools, tool_choice: toolChoice, thinking });

type Request = z.infer<typeof messagesRequest>;

function refuse(param: string, why: string): never {
  throw new ApiFailure(400, `${param}: ${why}`, 'unsupported_parameter', param);
}

function systemText(value: z.infer<typeof system>): string {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : value.map((b) => b.text).join('\n');
}

function resultText(content: z.infer<typeof toolResult>['content'], isError: boolean | undefined): string {
  const text = content === undefined ? '' : typeof content === 'string' ? content : content.map((b) => b.text).join('');
  return isError ? `Error: ${text}` : text;
}

function promptOf(request: Pick<Request, 'messages' | 'system'>): PromptMessage[] {
  const prompt = new PromptBuilder();
  const sys = systemText(request.system);
  if (sys.trim() !== '') prompt.add('system', sys);
  request.messages.forEach((m, i) => {
    const where = `messages.${i}.content`;
    if (typeof m.content === 'string') {
      prompt.add(m.role, m.content);
      return;
    }
    let text = '';
    const calls: { id: string; name: string; params: unknown }[] = [];
    m.content.forEach((b, j) => {
      checkBlock(b, `${where}.${j}`);
      if (b.type === 'text') text += (b as z.infer<typeof textBlock>).text;
      else if (b.type === 'tool_use') {
        if (m.role !== 'assistant') refuse(`${where}.${j}`, 'tool_use blocks belong to assistant messages.');
        const use = b as z.infer<typeof toolUse>;
        calls.push({ id: use.id, name: use.name, params: use.input ?? {} });
      } else if (b.type === 'tool_result') {
        if (m.role !== 'user') refuse(`${where}.${j}`, 'tool_result blocks belong to user messages.');
        const result = b as z.infer<typeof toolResult>;
        prompt.addResult(result.tool_use_id, resultText(result.content, result.is_error));
      } else {
        refuse(`${where}.${j}.type`, `only text, tool_use and tool_result blocks are supported (got ${JSON.stringify(b.type)}).`);
      }
    });
    if (calls.length > 0) prompt.addCalls(text, calls);
    else if (text !== '' || m.role === 'assistant') prompt.add(m.role, text);
  });
  return prompt.build();
}

function functionsOf(request: Pick<Request, 'tools' | 'tool_choice'>): ApiTurn['functions'] {
  const list = request.tools ?? [];
  const choice = request.tool_choice?.type ?? 'auto';
  if (list.length === 0 || choice === 'none') return undefined;
  if (choice !== 'auto') refuse('tool_choice', 'Hearth lets the model decide whether to use a tool ("auto") or offers none ("none"); forcing one ("any" or "tool") is not supported.');
  const functions: Record<string, { description?: string; params: Record<string, unknown> }> = {};
  for (const tool of list) {
    if (Object.hasOwn(functions, tool.name)) refuse('tools', `the tool ${tool.name} is listed twice.`);
    functions[tool.name] = { ...(tool.description !== undefined ? { description: tool.description } : {}), params: tool.input_schema };
  }
  return functions;
}

function refuseUnsupported(request: Pick<Request, 'thinking'> & { top_k?: number | undefined }): void {
  if (request.thinking?.type === 'enabled') refuse('thinking', 'extended thinking is not supported.');
  if (request.top_k !== undefined) refuse('top_k', 'not supported; use temperature and top_p.');
}

function stopReason(output: GenerateOutput): string {
  switch (output.stopReason) {
    case 'maxTokens':
    case 'context':
      return 'max_tokens';
    case 'stopSequence':
      return 'stop_sequence';
    case 'functionCalls':
      return 'tool_use';
    default:
      return 'end_turn';
  }
}

function usage(output: GenerateOutput): Record<string, number> {
  const { cached, completion } = usageOf(output.stats);
  return { input_tokens: output.stats.tokensPrefilled, output_tokens: completion, cache_read_input_tokens: cached, cache_creation_input_tokens: 0 };
}

function toolUses(output: GenerateOutput, seed: string): { type: 'tool_use'; id: string; name: string; input: unknown }[] {
  return (output.functionCalls ?? []).map((call, i) => ({ type: 'tool_use', id: callId('toolu_', i, seed), name: call.name, input: call.params ?? {} }));
}

/** What both endpoints do first: parse, refuse what cannot be honoured, build the prompt, switch the model. */
async function prepare<T extends z.infer<typeof countRequest>>(schema: z.ZodType<T>, exchange: Exchange, backend: ApiBackend): Promise<{ request: T; prompt: PromptMessage[]; functions: ApiTurn['functions'] }> {
  const request = parseBody(schema, exchange.body);
  exchange.report.model = request.model;
  refuseUnsupported(request);
  const functions = functionsOf(request);
  const prompt = promptOf(request);
  await backend.useModel(request.model);
  return { request, prompt, functions };
}

export async function messages(exchange: Exchange, backend: ApiBackend): Promise<void> {
  const { request, prompt, functions } = await prepare(messagesRequest, exchange, backend);
  const turn: ApiTurn = {
    messages: prompt,
    // Anthropic's default temperature is 1.
    sampling: { temperature: request.temperature ?? 1, topP: request.top_p ?? 1, maxTokens: request.max_tokens },
    overflowPolicy: request.truncation === 'auto' ? 'drop-oldest' : 'stop',
    ...(request.stop_sequences && request.stop_sequences.length > 0 ? { stop: request.stop_sequences } : {}),
    ...(functions ? { functions } : {}),
  };
  const id = `msg_${randomUUID().replaceAll('-', '')}`;
  const model = request.model;
  const startedAt = performance.now();
  if (request.stream !== true) {
    const output = await backend.run(model, turn, () => undefined, exchange.signal);
    reportTurn(exchange.report, output, startedAt);
    const content = [...(output.text !== '' || !output.functionCalls?.length ? [{ type: 'text', text: output.text }] : []), ...toolUses(output, id)];
    exchange.json(200, { id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason(output), stop_sequence: output.stopSequence ?? null, usage: usage(output), hearth: hearthUsage(output.stats) });
    return;
  }
  const stream = lazyStream(exchange, (events) => {
    events.send({ type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } } }, 'message_start');
    events.send({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start');
    events.send({ type: 'ping' }, 'ping');
  });
  let output: GenerateOutput;
  try {
    output = await backend.run(model, turn, (text) => stream.open().send({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }, 'content_block_delta'), exchange.signal);
  } catch (error) {
    if (!stream.isOpen) throw error;
    const failure = error instanceof ApiFailure ? error : new ApiFailure(500, 'The request failed.', 'internal_error');
    stream.open().send(anthropicError(failure), 'error');
    stream.open().end();
    throw failure;
  }
  const events = stream.open();
  reportTurn(exchange.report, output, startedAt);
  events.send({ type: 'content_block_stop', index: 0 }, 'content_block_stop');
  toolUses(output, id).forEach((use, i) => {
    const index = i + 1;
    events.send({ type: 'content_block_start', index, content_block: { ...use, input: {} } }, 'content_block_start');
    events.send({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(use.input) } }, 'content_block_delta');
    events.send({ type: 'content_block_stop', index }, 'content_block_stop');
  });
  events.send({ type: 'message_delta', delta: { stop_reason: stopReason(output), stop_sequence: output.stopSequence ?? null }, usage: usage(output), hearth: hearthUsage(output.stats) }, 'message_delta');
  events.send({ type: 'message_stop' }, 'message_stop');
  events.end();
}

export async function countTokens(exchange: Exchange, backend: ApiBackend): Promise<void> {
  const { prompt, functions } = await prepare(countRequest, exchange, backend);
  const counted = await backend.countTokens(prompt, functions ? { functions } : {});
  exchange.report.promptTokens = counted.tokens;
  exchange.json(200, { input_tokens: counted.tokens });
}

/** Anthropic's error body. */
export function anthropicError(failure: ApiFailure): Record<string, unknown> {
  const type =
    failure.status === 401
      ? 'authentication_error'
      : failure.status === 403
        ? 'permission_error'
        : failure.status === 404
          ? 'not_found_error'
          : failure.status === 413
            ? 'request_too_large'
            : failure.status === 429
              ? 'rate_limit_error'
              : failure.status === 503
                ? 'overloaded_error'
                : failure.status >= 500
                  ? 'api_error'
                  : 'invalid_request_error';
  return { type: 'error', error: { type, message: failure.message } };
}
