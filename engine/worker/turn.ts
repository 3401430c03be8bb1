/**
 * One turn: queued under the engine lock, it fits the prompt to the context (the overflow policy),
 * takes the chat's slot, restores from the store (turn-kv.ts), generates, and saves once the
 * reply is answered. Decoding is serial, one slot at a time.
 *
 * Prompt reuse: one LlamaChat per slot compares the new prompt's tokens with those already in
 * the sequence and evaluates only the rest, across turns, and across chats that share a prefix
 * (a system prompt); `measureReuse` counts it the same way. Overflow: `drop-oldest`
 * (context-view.ts) leaves the oldest messages out of the view in one large step, `stop` answers
 * CONTEXT_OVERFLOW instead, and both stop a reply at the end of the context (`context`: it can be
 * continued); `streaming` (streaming.ts) lets a reply roll on. node-llama-cpp's silent shift never
 * runs (docs/decisions/quantized-k-shift-crash.md).
 *
 * API requests (source `api`) queue behind every waiting chat turn, and may add stop texts, a
 * seed, a JSON grammar or functions (api-options.ts), ask for a raw completion (raw-turn.ts), or
 * for where their prompt left the cache (cache-miss.ts). Functions are rendered into the prompt
 * the view fits, so the overflow policy counts what LlamaChat evaluates.
 */
import type { ChatHistoryItem, LLamaChatGenerateResponseOptions, LlamaContextSequence, LlamaGrammar, Token } from 'node-llama-cpp';
import { err, ok, type CacheMiss, type ContextView, type MessageStats, type OverflowPolicy, type Result } from '../contract/index.ts';
import type { GenerateInput, GenerateOutput, WorkerMethods } from '../protocol.ts';
import { checkApiOptions, samplerOptions, stopReasonOf, type ApiOptions } from './api-options.ts';
import { diagnoseCacheMiss, slotDivergence } from './cache-miss.ts';
import { MIN_REPLY_TOKENS } from './constants.ts';
import { DROP_TARGET, dropOldestView, replyTokens, toChatHistory, type ViewRenderer } from './context-view.ts';
import { viewRenderer } from './model-load.ts';
import { isQuantized, KvEditRefused, replyReserve, type StreamWindow } from './overflow.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import { rawPromptTokens, runRawTurn } from './raw-turn.ts';
import type { Slot } from './slots.ts';
import { runStreamTurn } from './streaming.ts';
import { tokenStream } from './token-stream.ts';
import { joinReasons, restoreForTurn, saveTurn, type StoreRestore } from './turn-kv.ts';

/**
 * How much of `promptTokens` is already in the sequence. LlamaChat always evaluates the last
 * prompt token again (it needs that token's logits to sample), so at most length − 1 is reused.
 */
export function measureReuse(sequence: LlamaContextSequence, promptTokens: readonly Token[]): { reused: number; prefilled: number } {
  const { firstDifferentIndex } = sequence.compareContextTokens(promptTokens as Token[]);
  const reused = Math.max(0, Math.min(firstDifferentIndex, promptTokens.length - 1));
  return { reused, prefilled: promptTokens.length - reused };
}

/** Thrown by the context-shift strategy: the prompt is never shifted (see the module comment). */
class ContextShiftRefused extends Error {}

/** The slot a turn ran in (null when it took none), and whether what it holds now must not be saved. */
interface Taken {
  slot: Slot<Resident> | null;
  unsaved: boolean;
}

/** An API request's options for the turn, checked, with its format's grammar. */
export interface TurnOptions extends ApiOptions {
  readonly grammar: LlamaGrammar | undefined;
}

/**
 * The engine lock's priority of a turn: an API request's turn waits behind every other task that
 * is still waiting (a chat's turn, a model change), which all keep their FIFO order at 0.
 */
export const API_TURN_PRIORITY = -1;

/** The prompt as the overflow policy lets it into the context. */
interface FittedPrompt {
  readonly policy: OverflowPolicy;
  readonly history: ChatHistoryItem[];
  readonly tokens: Token[];
  readonly contextSize: number;
  /** The reply's max tokens (`sampling.maxTokens`, automatic resolved). */
  readonly maxTokens: number;
  /** What the overflow policies keep free for the reply (overflow.ts `replyReserve`). */
  readonly roomy: number;
  /** Messages after the system prompt left out of the view, and how many of them this turn left out. */
  readonly dropped: number;
  readonly droppedNow: number;
  /** At most `maxTokens`: what fits before the end of the context. */
  readonly effectiveMaxTokens: number;
}

/** What a LlamaChat turn runs with. */
interface ChatTurn {
  readonly input: GenerateInput;
  readonly controller: AbortController;
  readonly requestedAt: number;
  readonly slot: Slot<Resident>;
  readonly prompt: FittedPrompt;
  readonly options: TurnOptions;
  /** Tokens of this chat that left memory when its slot went to another chat. */
  readonly lost: number;
  readonly wasForgotten: boolean;
}

/** `stop`: the conversation no longer fits with room for the reply; the chat asks what to do. */
export function outgrown(length: number, contextSize: number): Result<never> {
  return err(
    'CONTEXT_OVERFLOW',
    `This conversation has outgrown the context: it is ${length} tokens long, and the context holds ${contextSize} tokens with room for the reply.`,
    'Continue without the oldest messages, raise the context size, or start a new chat.',
  );
}

/** `drop-oldest` with nothing left to drop: the last message alone does not fit. */
function messageTooLong(contextSize: number): Result<never> {
  return err(
    'CONTEXT_OVERFLOW',
    `The last message alone is too long for the context (${contextSize} tokens, with room for the reply).`,
    'Shorten the message, or raise the context size in Settings.',
  );
}

/** Queues a turn under the engine lock and saves its slot afterwards, still under the lock. */
export async function generate(state: RuntimeState, input: GenerateInput): Promise<Result<GenerateOutput>> {
  const requestedAt = performance.now();
  const { requestId, messages } = input;
  if (typeof requestId !== 'string' || !Array.isArray(messages) || messages.length === 0) {
    return err('INVALID_INPUT', 'generate needs a requestId and at least one message.');
  }
  if (state.generations.has(requestId)) return err('BUSY', `A generation with id ${requestId} is already running.`);
  // Refused before it waits for anything: a bad stop list, schema or function, or both a format and functions.
  const checked = await turnOptions(state, input);
  if (!checked.ok) return checked;
  const options = checked.value;
  const controller = new AbortController();
  state.generations.set(requestId, controller);
  try {
    return await new Promise<Result<GenerateOutput>>((resolve, reject) => {
      void state.lock.run(async () => {
        const taken: Taken = { slot: null, unsaved: false };
        let result: Result<GenerateOutput>;
        try {
          result = await runTurn(state, input, options, controller, requestedAt, taken);
        } catch (error) {
          // The slot holds part of a turn that never finished: nothing to save under a name.
          if (taken.slot) await saveTurn(state, input, taken.slot, false);
          reject(error);
          return;
        }
        resolve(result);
        // Still under the lock: the slot holds exactly this turn's tokens.
        if (taken.slot) await saveTurn(state, input, taken.slot, result.ok && !taken.unsaved);
      }, { priority: input.source === 'api' ? API_TURN_PRIORITY : 0 });
    });
  } finally {
    state.generations.delete(requestId);
  }
}

/** The request's API options, checked, and its format's grammar (from the cache when the schema was seen). */
async function turnOptions(state: RuntimeState, input: GenerateInput): Promise<Result<TurnOptions>> {
  const checked = checkApiOptions(input);
  if (!checked.ok) return checked;
  const format = checked.value.format;
  if (format === undefined) return ok({ ...checked.value, grammar: undefined });
  if (!state.llama) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Open or download a model first.');
  const grammar = await state.grammars.grammarFor(state.llama, format);
  if (!grammar.ok) return grammar;
  return ok({ ...checked.value, grammar: grammar.value });
}

/** Runs one turn under the lock; `taken` says which slot it ran in and whether that may be saved. */
async function runTurn(state: RuntimeState, input: GenerateInput, options: TurnOptions, controller: AbortController, requestedAt: number, taken: Taken): Promise<Result<GenerateOutput>> {
  if (controller.signal.aborted) return ok({ text: '', stopReason: 'aborted', stats: { tokensReused: 0, tokensRestored: 0, tokensPrefilled: 0, tokensGenerated: 0, ttftMs: 0, cacheSource: 'none' } });
  const current = state.loaded;
  if (!current) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Open or download a model first.');
  state.runningRequestId = input.requestId;
  try {
    if (input.raw === true) return await runRawTurn(state, current, { input, options, controller, requestedAt, taken });
    const fitted = fitPrompt(current, input, options);
    if (!fitted.ok) return fitted;
    const prompt = fitted.value;
    // Only a prompt that fits (or that a policy makes fit) takes a slot: a refused one must not
    // swap another chat out.
    const { slot, took, lost } = await current.slots.acquire(input.chatId);
    taken.slot = slot;
    if (took !== null) state.log('debug', `slot ${slot.index}: ${input.chatId} takes it from ${took}`);
    const wasForgotten = await forgetSequence(state, current, slot.resident.sequence, input.chatId);
    const rolled = current.streams.get(slot.resident.sequence);
    // `streaming` rolls the window whenever the prompt or the reply may reach the end of the context.
    const outgrows = prompt.tokens.length + Math.max(prompt.roomy, prompt.maxTokens + 1) > prompt.contextSize;
    if (prompt.policy === 'streaming' && (outgrows || rolled?.chatId === input.chatId)) {
      const { history, tokens: promptTokens, roomy, maxTokens } = prompt;
      return await runStreamTurn(state, { input, controller, requestedAt, taken, slot, promptTokens, history, roomy, maxTokens, wasForgotten });
    }
    await startFromPrefix(state, current, slot.resident.sequence, rolled, prompt.tokens);
    return await chatTurn(state, current, { input, controller, requestedAt, slot, prompt, options, lost, wasForgotten });
  } finally {
    state.runningRequestId = null;
  }
}

/**
 * The renderer for a turn's prompt: the model's, or one that also documents the turn's functions
 * (LlamaChat renders them into the prompt, so the view must count them).
 */
function turnView(current: Loaded, options: Pick<ApiOptions, 'functions'>): ViewRenderer {
  if (!options.functions) return current.view;
  const chat = current.slots.slots[0]!.resident.chat;
  return viewRenderer(current.model, chat, options.functions);
}

/**
 * The overflow policy of a turn: the chat's, else the model's. `streaming` evaluates the sequence
 * itself (streaming.ts) and has no grammar, function calls or stop texts, so a turn that needs
 * them drops the oldest messages instead (its readout says `drop-oldest`).
 */
function turnPolicy(current: Loaded, input: GenerateInput, options: ApiOptions): OverflowPolicy {
  const policy = input.overflowPolicy ?? current.profile.overflowPolicy;
  const needsChat = options.functions !== undefined || options.format !== undefined || options.stop.length > 0;
  return policy === 'streaming' && needsChat ? 'drop-oldest' : policy;
}

/**
 * The prompt under the chat's overflow policy (else the model's): `drop-oldest` leaves the oldest
 * messages out of the view (context-view.ts); `stop` answers CONTEXT_OVERFLOW where drop-oldest
 * would drop; `streaming` takes the whole prompt and rolls it through (streaming.ts). Nothing
 * is shifted.
 */
function fitPrompt(current: Loaded, input: GenerateInput, options: ApiOptions): Result<FittedPrompt> {
  const policy = turnPolicy(current, input, options);
  const renderer = turnView(current, options);
  if (policy === 'streaming' && isQuantized(current.guard.kType)) {
    return err('INVALID_INPUT', `StreamingLLM erases the middle of the KV cache, which crashes llama.cpp with this model's ${current.guard.kType.toUpperCase()} K cache.`, 'Choose another overflow policy for this chat, or an F16 K cache for the model.');
  }
  const contextSize = current.context.contextSize;
  const maxTokens = replyTokens(input.sampling.maxTokens, contextSize);
  const roomy = replyReserve(contextSize, maxTokens, MIN_REPLY_TOKENS);
  let messages = input.messages;
  let tokens: Token[];
  let dropped = 0;
  let droppedNow = 0;
  if (policy === 'drop-oldest') {
    // Renders only the view: a long chat's whole history is not tokenized again every turn.
    const budget = { contextSize, reserve: roomy, target: current.profile.dropTarget ?? DROP_TARGET };
    // The functions' documentation rides with the head (the system prompt) in every view.
    const headExtra = renderer === current.view ? 0 : Math.max(0, renderer.render([]).length - current.view.render([]).length);
    const view = dropOldestView(messages, current.viewCosts, renderer, budget, Math.min(MIN_REPLY_TOKENS, maxTokens), headExtra);
    if (!view) return messageTooLong(contextSize);
    ({ messages, tokens, dropped, droppedNow } = view);
  } else {
    tokens = renderer.render(messages);
    if (policy === 'stop' && tokens.length + roomy > contextSize) return outgrown(tokens.length, contextSize);
  }
  // LlamaChat shifts the context once the sequence reaches contextSize − 1 tokens; the reply
  // stops just before that instead (`streaming` rolls on).
  const roomLeft = contextSize - tokens.length - 2;
  const effectiveMaxTokens = Math.max(1, Math.min(maxTokens, roomLeft));
  return ok({ policy, history: toChatHistory(messages), tokens, contextSize, maxTokens, roomy, dropped, droppedNow, effectiveMaxTokens });
}

/**
 * The user forgot this chat's cache (forgetChat with reread): nothing the sequence still holds is
 * reused, and nothing is restored, so the turn reads its whole history again.
 */
export async function forgetSequence(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, chatId: string): Promise<boolean> {
  const wasForgotten = state.forgotten.take(chatId);
  if (wasForgotten) {
    current.streams.delete(sequence);
    if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
    state.kvCache?.markClean(sequence);
  }
  return wasForgotten;
}

/** Empties a sequence that holds nothing LlamaChat can reuse of this prompt; a cleared one is a clean prefix again for the store. */
export async function startFromPrefix(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, rolled: StreamWindow | undefined, promptTokens: Token[]): Promise<void> {
  if (rolled) {
    // A sequence rolled by `streaming` is no prefix of any prompt LlamaChat renders: start empty.
    current.streams.delete(sequence);
    await sequence.clearHistory();
    state.kvCache?.markClean(sequence);
  }
  if (sequence.nextTokenIndex > 0 && sequence.compareContextTokens(promptTokens).firstDifferentIndex === 0) {
    // Nothing in it is this prompt's (another chat's tokens, an edited first message). A shared
    // prefix (a system prompt) is kept instead, and LlamaChat erases only the tail after it.
    await sequence.clearHistory();
    state.kvCache?.markClean(sequence);
  }
}

/** A turn through the slot's LlamaChat: restore, reuse, generate, and the readout. */
async function chatTurn(state: RuntimeState, current: Loaded, turn: ChatTurn): Promise<Result<GenerateOutput>> {
  const { slot, prompt } = turn;
  const sequence = slot.resident.sequence;
  const fromStore = await restoreForTurn(state, current, slot, turn.input.chatId, prompt.tokens, { restore: true, wasForgotten: turn.wasForgotten });
  const restored = fromStore.restored;
  const { reused: inMemory, prefilled } = measureReuse(sequence, prompt.tokens);
  const reused = restored > 0 ? 0 : inMemory;
  // What the store holds of the sequence from now on: a restore replaced it; else LlamaChat
  // keeps the first `inMemory` tokens and evaluates the rest anew.
  if (restored > 0) current.slots.restored(slot, restored);
  else current.slots.kept(slot, inMemory);
  // Before the reply, which overwrites what the slot held beyond the shared prefix.
  const held = turn.input.diagnose === true ? slotDivergence(slot, prompt.tokens) : null;
  // A moved view is no cache failure: the readout says it from `view` ("dropped N older messages").
  const fallbackReason = rereadReason(state, fromStore.fallbackReason, Math.min(turn.lost, prompt.tokens.length - 1) - reused - restored);
  const reply = await chatReply(state, current, turn);
  if (!reply.ok) return reply;
  const { text, tokensGenerated, functionCalls, stopSequence } = reply.value;
  const cacheMiss = held ? await diagnoseCacheMiss(state, current, prompt.tokens, { slot, held }) : undefined;
  // A reply that ran into the end of the context before its own limit was cut there.
  const stopReason = reply.value.stopReason === 'maxTokens' && prompt.effectiveMaxTokens < prompt.maxTokens ? 'context' : reply.value.stopReason;
  const stats = turnReadout(state, 'prompt', {
    ...reply.value,
    reused,
    restored,
    prefilled,
    requestedAt: turn.requestedAt,
    restoreMs: fromStore.restoreMs,
    fallbackReason,
    cacheMiss,
    view: {
      policy: prompt.policy,
      contextSize: prompt.contextSize,
      tokens: Math.min(prompt.contextSize, prompt.tokens.length + tokensGenerated),
      droppedMessages: prompt.dropped,
      droppedNow: prompt.droppedNow,
    },
  });
  return ok({ text, stopReason, stats, ...(stopSequence !== undefined ? { stopSequence } : {}), ...(functionCalls ? { functionCalls } : {}) });
}

/** What a turn measured, for its readout. */
export interface TurnFigures {
  readonly reused: number;
  readonly restored: number;
  readonly prefilled: number;
  readonly tokensGenerated: number;
  /** Input tokens the sequence evaluated during the reply. */
  readonly evaluated: number;
  readonly requestedAt: number;
  readonly evaluationStart: number;
  readonly firstTokenAt: number | null;
  readonly restoreMs: number | undefined;
  readonly fallbackReason: string | undefined;
  readonly cacheMiss: CacheMiss | undefined;
  readonly view: ContextView;
}

/** A turn's readout (chat and raw turns alike), and a warning when the reuse it reports did not happen. */
export function turnReadout(state: RuntimeState, what: string, f: TurnFigures): MessageStats {
  // Each generated token but the last is fed back as input: anything beyond that and the
  // prefill means the sequence's tokens were not reused (the stats would lie).
  if (f.evaluated > f.prefilled + f.tokensGenerated) {
    state.log('warn', `The ${what} needed ${f.evaluated - f.tokensGenerated} evaluated tokens where ${f.prefilled} were expected (${f.restored} restored, ${f.reused} reused).`);
  }
  const ttftMs = f.firstTokenAt === null ? performance.now() - f.requestedAt : f.firstTokenAt - f.requestedAt;
  return {
    tokensReused: f.reused,
    tokensRestored: f.restored,
    tokensPrefilled: f.prefilled,
    tokensGenerated: f.tokensGenerated,
    ttftMs: Math.round(ttftMs * 10) / 10,
    prefillMs: Math.round(((f.firstTokenAt ?? performance.now()) - f.evaluationStart) * 10) / 10,
    cacheSource: f.restored > 0 ? 'disk' : f.reused > 0 ? 'memory' : 'none',
    ...(f.restoreMs !== undefined ? { restoreMs: f.restoreMs } : {}),
    ...(f.fallbackReason !== undefined ? { fallbackReason: f.fallbackReason } : {}),
    view: f.view,
    ...(f.cacheMiss ? { cacheMiss: f.cacheMiss } : {}),
  };
}

/**
 * A chat that lost its slot and got back less than it had (and this prompt still shares)
 * re-read `reread` tokens: say why, unless the store already said.
 */
function rereadReason(state: RuntimeState, fallbackReason: StoreRestore['fallbackReason'], reread: number): string | undefined {
  const cache = state.kvCache;
  if (reread <= 0 || (fallbackReason !== undefined && cache)) return fallbackReason;
  const paused = cache?.store.persistencePaused;
  const why = !cache ? 'KV persistence is off' : paused ? `KV persistence was paused (${paused.reason.message})` : 'the store did not hold all of it';
  const swap = `this chat's slot went to another chat and ${why}, so ${reread} tokens of its history were read again`;
  return joinReasons(fallbackReason, swap);
}

interface ChatReply {
  readonly text: string;
  readonly stopReason: GenerateOutput['stopReason'];
  readonly stopSequence?: string;
  readonly functionCalls?: GenerateOutput['functionCalls'];
  readonly tokensGenerated: number;
  /** Input tokens the sequence evaluated during the reply. */
  readonly evaluated: number;
  readonly evaluationStart: number;
  readonly firstTokenAt: number | null;
}

/** LlamaChat's reply, streamed as `token` events; a refused shift or erase answers CONTEXT_OVERFLOW. */
async function chatReply(state: RuntimeState, current: Loaded, turn: ChatTurn): Promise<Result<ChatReply>> {
  const { slot, prompt, controller, options } = turn;
  const { sequence, chat } = slot.resident;
  const { sampling } = turn.input;
  const inputTokensBefore = sequence.tokenMeter.usedInputTokens;
  const evaluationStart = performance.now();
  let firstTokenAt: number | null = null;
  let tokensGenerated = 0;
  const stream = tokenStream(state, turn.input.requestId);
  let stopReason: GenerateOutput['stopReason'];
  let stopSequence: string | undefined;
  let functionCalls: GenerateOutput['functionCalls'];
  let text: string;
  // A grammar and functions exclude each other (checkApiOptions refuses both).
  const constraint = (options.functions ? { functions: options.functions } : options.grammar ? { grammar: options.grammar } : {}) as Pick<LLamaChatGenerateResponseOptions, 'grammar'>;
  try {
    const response = await current.slots.during(slot, 'generating', () => chat.generateResponse(prompt.history, {
      signal: controller.signal,
      stopOnAbortSignal: true,
      maxTokens: prompt.effectiveMaxTokens,
      ...samplerOptions(sampling, turn.input.seed),
      ...constraint,
      ...(options.stop.length > 0 ? { customStopTriggers: options.stop } : {}),
      // The reply stops before the context is full (effectiveMaxTokens), so this never runs;
      // if it did, the chat-level shift would rewrite the view behind the policy's back.
      contextShift: {
        strategy: () => {
          throw new ContextShiftRefused('The reply reached the end of the context.');
        },
      },
      onToken: (tokens) => {
        if (firstTokenAt === null) firstTokenAt = performance.now();
        tokensGenerated += tokens.length;
      },
      onTextChunk: (chunk) => stream.push(chunk),
    }));
    stream.flush();
    text = stream.settle(response.response);
    ({ stopReason, stopSequence } = stopReasonOf(response.metadata, options.stop));
    // Typed `never` without a literal functions type; the calls are there when functions were given.
    const calls = (response as { functionCalls?: readonly { functionName: string; params: unknown }[] }).functionCalls ?? [];
    if (calls.length > 0) {
      stopReason = 'functionCalls';
      functionCalls = calls.map((call) => ({ name: call.functionName, params: call.params }));
    }
  } catch (error) {
    stream.flush();
    if (!controller.signal.aborted) return refusedReply(error, prompt);
    // Aborted before any text: LlamaChat throws the signal's reason instead of returning.
    text = stream.text;
    stopReason = 'aborted';
  }
  if (controller.signal.aborted) {
    stopReason = 'aborted';
    stopSequence = undefined;
    functionCalls = undefined;
  }
  const evaluated = sequence.tokenMeter.usedInputTokens - inputTokensBefore;
  return ok({ text, stopReason, tokensGenerated, evaluated, evaluationStart, firstTokenAt, ...(stopSequence !== undefined ? { stopSequence } : {}), ...(functionCalls ? { functionCalls } : {}) });
}

/**
 * `countTokens`: the prompt as `generate` renders it before any overflow policy (the chat
 * template with the functions' documentation, or the raw prompt with its BOS), and the context
 * size of one slot. Synchronous, so it needs no lock: nothing can unload the model meanwhile.
 */
export function countTokens(state: RuntimeState, input: WorkerMethods['countTokens']['input']): Result<WorkerMethods['countTokens']['output']> {
  const current = state.loaded;
  if (!current) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Open or download a model first.');
  const { messages, raw, functions } = input;
  if (!Array.isArray(messages)) return err('INVALID_INPUT', 'countTokens needs the messages.');
  const contextSize = current.context.contextSize;
  const checked = checkApiOptions({ requestId: '', chatId: '', messages, sampling: { temperature: 0, topP: 1, maxTokens: 0 }, ...(raw !== undefined ? { raw } : {}), ...(functions !== undefined ? { functions } : {}) });
  if (!checked.ok) return checked;
  if (raw === true) return ok({ tokens: rawPromptTokens(current.model, messages[0]!.text).length, contextSize });
  return ok({ tokens: turnView(current, checked.value).render(messages).length, contextSize });
}

/** A failed reply that ran out of context, as CONTEXT_OVERFLOW; anything else is rethrown. */
export function refusedReply(error: unknown, prompt: { readonly contextSize: number }): Result<never> {
  if (error instanceof ContextShiftRefused) {
    return err('CONTEXT_OVERFLOW', `The reply reached the end of the context (${prompt.contextSize} tokens).`, 'Continue the reply, or raise the context size in Settings.');
  }
  if (error instanceof KvEditRefused) return err('CONTEXT_OVERFLOW', error.message, error.hint);
  throw error;
}
