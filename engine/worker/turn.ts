/**
 * One turn: queued under the engine lock, it fits the prompt to the context (the overflow policy),
 * takes the chat's slot, restores from the store (turn-kv.ts), generates, and saves once the
 * reply is answered. Decoding is serial, one slot at a time.
 *
 * Prompt reuse: one LlamaChat per slot compares the new prompt's tokens with those already in
 * the sequence and evaluates only the rest, across turns, and across chats that share a prefix
 * (a system prompt); `measureReuse` counts it the same way. Overflow (overflow.ts): `refuse`
 * answers CONTEXT_OVERFLOW, `rebuild` leaves out the oldest messages, and both stop a reply
 * before it fills the context; `streaming` (streaming.ts) and `shift` may let a reply run on.
 * node-llama-cpp's silent shift never runs unasked (docs/decisions/quantized-k-shift-crash.md).
 */
import { randomInt } from 'node:crypto';
import type { ChatHistoryItem, LlamaContextSequence, Token } from 'node-llama-cpp';
import { err, ok, type MessageStats, type Result } from '../contract/index.ts';
import type { GenerateInput, GenerateOutput, PromptMessage } from '../protocol.ts';
import { MIN_REPLY_TOKENS } from './constants.ts';
import { KvEditRefused, rebuildWindow, replyReserve, type StreamWindow } from './overflow.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import type { Slot } from './slots.ts';
import { runStreamTurn } from './streaming.ts';
import { tokenStream } from './token-stream.ts';
import { joinReasons, restoreForTurn, saveTurn, type StoreRestore } from './turn-kv.ts';

/** The chat history node-llama-cpp renders, ending with the empty model turn to generate. */
export function toChatHistory(messages: readonly PromptMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
    switch (message.role) {
      case 'system': return { type: 'system', text: message.text };
      case 'user': return { type: 'user', text: message.text };
      case 'assistant': return { type: 'model', response: [message.text] };
    }
  });
  history.push({ type: 'model', response: [] });
  return history;
}

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

/** The prompt as the overflow policy lets it into the context. */
interface FittedPrompt {
  readonly history: ChatHistoryItem[];
  readonly tokens: Token[];
  readonly contextSize: number;
  readonly maxTokens: number;
  /** What the overflow policies keep free for the reply (overflow.ts `replyReserve`). */
  readonly roomy: number;
  /** Why older messages are not in this turn's prompt (the readout). */
  readonly overflowNote: string | undefined;
  readonly fitsContext: boolean;
  readonly effectiveMaxTokens: number;
}

/** What a LlamaChat turn runs with. */
interface ChatTurn {
  readonly input: GenerateInput;
  readonly controller: AbortController;
  readonly requestedAt: number;
  readonly slot: Slot<Resident>;
  readonly prompt: FittedPrompt;
  /** Tokens of this chat that left memory when its slot went to another chat. */
  readonly lost: number;
  readonly wasForgotten: boolean;
}

function contextOverflow(length: number, contextSize: number): Result<never> {
  return err(
    'CONTEXT_OVERFLOW',
    `The conversation is ${length} tokens long, but the context holds ${contextSize} tokens (and the reply needs room too).`,
    'Start a new chat, shorten the message, or raise the context size in Settings.',
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
  const controller = new AbortController();
  state.generations.set(requestId, controller);
  try {
    return await new Promise<Result<GenerateOutput>>((resolve, reject) => {
      void state.lock.run(async () => {
        const taken: Taken = { slot: null, unsaved: false };
        let result: Result<GenerateOutput>;
        try {
          result = await runTurn(state, input, controller, requestedAt, taken);
        } catch (error) {
          // The slot holds part of a turn that never finished: nothing to save under a name.
          if (taken.slot) await saveTurn(state, input, taken.slot, false);
          reject(error);
          return;
        }
        resolve(result);
        // Still under the lock: the slot holds exactly this turn's tokens.
        if (taken.slot) await saveTurn(state, input, taken.slot, result.ok && !taken.unsaved);
      });
    });
  } finally {
    state.generations.delete(requestId);
  }
}

/** Runs one turn under the lock; `taken` says which slot it ran in and whether that may be saved. */
async function runTurn(state: RuntimeState, input: GenerateInput, controller: AbortController, requestedAt: number, taken: Taken): Promise<Result<GenerateOutput>> {
  if (controller.signal.aborted) return ok({ text: '', stopReason: 'aborted', stats: { tokensReused: 0, tokensRestored: 0, tokensPrefilled: 0, tokensGenerated: 0, ttftMs: 0, cacheSource: 'none' } });
  const current = state.loaded;
  if (!current) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Open or download a model first.');
  state.runningRequestId = input.requestId;
  try {
    const fitted = fitPrompt(current, input);
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
    if (current.profile.overflowPolicy === 'streaming' && (outgrows || rolled?.chatId === input.chatId)) {
      const { history, tokens: promptTokens, roomy } = prompt;
      return await runStreamTurn(state, { input, controller, requestedAt, taken, slot, promptTokens, history, roomy, wasForgotten });
    }
    await startFromPrefix(state, current, slot.resident.sequence, rolled, prompt.tokens);
    return await chatTurn(state, current, { input, controller, requestedAt, slot, prompt, lost, wasForgotten });
  } finally {
    state.runningRequestId = null;
  }
}

/**
 * The prompt under the profile's overflow policy: `refuse` answers CONTEXT_OVERFLOW when the
 * prompt (plus a few reply tokens) does not fit; `rebuild` drops the oldest messages until the
 * rest plus the reply's room fits. Nothing is shifted.
 */
function fitPrompt(current: Loaded, input: GenerateInput): Result<FittedPrompt> {
  const policy = current.profile.overflowPolicy;
  // Every slot's LlamaChat resolved the same wrapper for this model: any renders the prompt.
  const wrapper = current.slots.slots[0]!.resident.chat.chatWrapper;
  const render = (list: readonly PromptMessage[]): Token[] =>
    wrapper.generateContextState({ chatHistory: toChatHistory(list) }).contextText.tokenize(current.model.tokenizer);
  let messages = input.messages;
  let history = toChatHistory(messages);
  let tokens = render(messages);
  const contextSize = current.context.contextSize;
  const maxTokens = Math.max(1, Math.floor(input.sampling.maxTokens));
  const reserve = Math.min(MIN_REPLY_TOKENS, maxTokens);
  const roomy = replyReserve(contextSize, maxTokens, MIN_REPLY_TOKENS);
  let overflowNote: string | undefined;
  if (policy === 'refuse' && tokens.length + reserve > contextSize) return contextOverflow(tokens.length, contextSize);
  if (policy === 'rebuild' && tokens.length + roomy > contextSize) {
    // The kept window is then read from a clean point (LlamaChat erases only the tail after what
    // the sequence shares with it), or restored from the store when it holds it.
    const fits = (room: number) => (list: readonly PromptMessage[]) => render(list).length + room <= contextSize;
    const window = rebuildWindow(messages, fits(roomy)) ?? rebuildWindow(messages, fits(reserve));
    if (!window) return contextOverflow(tokens.length, contextSize);
    if (window.dropped > 0) {
      overflowNote = `the conversation (${tokens.length} tokens) outgrew the context (${contextSize} tokens), so its oldest ${window.dropped} messages were left out (the system prompt kept)`;
      messages = window.messages;
      history = toChatHistory(messages);
      tokens = render(messages);
    }
  }
  const fitsContext = tokens.length + reserve <= contextSize;
  // LlamaChat shifts the context once the sequence reaches contextSize − 1 tokens; stop the
  // reply just before that instead. `shift` lets it shift.
  const roomLeft = contextSize - tokens.length - 2;
  const effectiveMaxTokens = policy === 'shift' ? maxTokens : Math.max(1, Math.min(maxTokens, roomLeft));
  return ok({ history, tokens, contextSize, maxTokens, roomy, overflowNote, fitsContext, effectiveMaxTokens });
}

/**
 * The user forgot this chat's cache (forgetChat with reread): nothing the sequence still holds is
 * reused, and nothing is restored, so the turn reads its whole history again.
 */
async function forgetSequence(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, chatId: string): Promise<boolean> {
  const wasForgotten = state.forgotten.take(chatId);
  if (wasForgotten) {
    current.streams.delete(sequence);
    if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
    state.kvCache?.markClean(sequence);
  }
  return wasForgotten;
}

/** Empties a sequence that holds nothing LlamaChat can reuse of this prompt; a cleared one is a clean prefix again for the store. */
async function startFromPrefix(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, rolled: StreamWindow | undefined, promptTokens: Token[]): Promise<void> {
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
  // A prompt longer than the context (`shift` compresses it inside LlamaChat) cannot be restored.
  const fromStore = await restoreForTurn(state, current, slot, turn.input.chatId, prompt.tokens, { restore: prompt.fitsContext, wasForgotten: turn.wasForgotten });
  const restored = fromStore.restored;
  const { reused: inMemory, prefilled } = measureReuse(sequence, prompt.tokens);
  const reused = restored > 0 ? 0 : inMemory;
  // What the store holds of the sequence from now on: a restore replaced it; else LlamaChat
  // keeps the first `inMemory` tokens and evaluates the rest anew.
  if (restored > 0) current.slots.restored(slot, restored);
  else current.slots.kept(slot, inMemory);
  let fallbackReason = rereadReason(state, fromStore.fallbackReason, Math.min(turn.lost, prompt.tokens.length - 1) - reused - restored);
  if (prompt.overflowNote !== undefined) {
    const how = restored > 0 ? `; the kept ${restored} tokens were restored from disk` : prefilled > 1 ? `; ${prefilled} tokens of the kept messages were read` : '';
    fallbackReason = joinReasons(`${prompt.overflowNote}${how}`, fallbackReason);
  }
  const reply = await chatReply(state, current, turn);
  if (!reply.ok) return reply;
  const { text, stopReason, shifted, tokensGenerated, evaluated } = reply.value;
  // Each generated token but the last is fed back as input: anything beyond that and the
  // prefill means LlamaChat did not reuse what was in the sequence (the stats would lie).
  let statsReused = reused;
  let statsPrefilled = prefilled;
  if (shifted || !prompt.fitsContext) {
    // node-llama-cpp's shift rendered a shorter history than the prompt: count what it evaluated.
    statsReused = 0;
    statsPrefilled = Math.max(0, evaluated - Math.max(0, tokensGenerated - 1));
    const note = 'the conversation outgrew the context, so node-llama-cpp\'s context shift left out its oldest messages (the system prompt kept) and read the rest again';
    fallbackReason = joinReasons(note, fallbackReason);
  } else if (evaluated > prefilled + tokensGenerated) {
    state.log('warn', `The prompt needed ${evaluated - tokensGenerated} evaluated tokens where ${prefilled} were expected (${restored} restored, ${reused} reused).`);
  }
  const { firstTokenAt, evaluationStart } = reply.value;
  const ttftMs = firstTokenAt === null ? performance.now() - turn.requestedAt : firstTokenAt - turn.requestedAt;
  const stats: MessageStats = {
    tokensReused: statsReused,
    tokensRestored: restored,
    tokensPrefilled: statsPrefilled,
    tokensGenerated,
    ttftMs: Math.round(ttftMs * 10) / 10,
    prefillMs: Math.round(((firstTokenAt ?? performance.now()) - evaluationStart) * 10) / 10,
    cacheSource: restored > 0 ? 'disk' : statsReused > 0 ? 'memory' : 'none',
    ...(fromStore.restoreMs !== undefined ? { restoreMs: fromStore.restoreMs } : {}),
    ...(fallbackReason !== undefined ? { fallbackReason } : {}),
  };
  return ok({ text, stopReason, stats });
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
  /** node-llama-cpp's chat-level shift ran (`shift`). */
  readonly shifted: boolean;
  readonly tokensGenerated: number;
  /** Input tokens the sequence evaluated during the reply. */
  readonly evaluated: number;
  readonly evaluationStart: number;
  readonly firstTokenAt: number | null;
}

/** LlamaChat's reply, streamed as `token` events; a refused shift or erase answers CONTEXT_OVERFLOW. */
async function chatReply(state: RuntimeState, current: Loaded, turn: ChatTurn): Promise<Result<ChatReply>> {
  const { slot, prompt, controller } = turn;
  const { sequence, chat } = slot.resident;
  const { sampling } = turn.input;
  const policy = current.profile.overflowPolicy;
  const inputTokensBefore = sequence.tokenMeter.usedInputTokens;
  const evaluationStart = performance.now();
  let firstTokenAt: number | null = null;
  let tokensGenerated = 0;
  const stream = tokenStream(state, turn.input.requestId);
  let stopReason: GenerateOutput['stopReason'];
  let text: string;
  let shifted = false;
  try {
    const response = await current.slots.during(slot, 'generating', () => chat.generateResponse(prompt.history, {
      signal: controller.signal,
      stopOnAbortSignal: true,
      maxTokens: prompt.effectiveMaxTokens,
      temperature: sampling.temperature > 0 ? sampling.temperature : 0,
      ...(sampling.temperature > 0 && sampling.topP > 0 && sampling.topP < 1 ? { topP: sampling.topP } : {}),
      // node-llama-cpp's default seed is the time in whole seconds, so replies sampled
      // within one second would repeat each other.
      ...(sampling.temperature > 0 ? { seed: randomInt(2 ** 31) } : {}),
      // `shift`: node-llama-cpp's chat-level shift (drop the first messages, keep the system
      // prompt, re-read the rest: tail erases only). The others never get there.
      ...(policy === 'shift'
        ? {}
        : {
            contextShift: {
              strategy: () => {
                throw new ContextShiftRefused('The reply reached the end of the context.');
              },
            },
          }),
      onToken: (tokens) => {
        if (firstTokenAt === null) firstTokenAt = performance.now();
        tokensGenerated += tokens.length;
      },
      onTextChunk: (chunk) => stream.push(chunk),
    }));
    stream.flush();
    shifted = response.lastEvaluation.contextShiftMetadata != null;
    text = stream.settle(response.response);
    const reason = response.metadata.stopReason;
    stopReason = reason === 'abort' ? 'aborted' : reason === 'maxTokens' ? 'maxTokens' : 'eos';
  } catch (error) {
    stream.flush();
    if (!controller.signal.aborted) return refusedReply(error, policy === 'shift', prompt);
    // Aborted before any text: LlamaChat throws the signal's reason instead of returning.
    text = stream.text;
    stopReason = 'aborted';
  }
  if (controller.signal.aborted) stopReason = 'aborted';
  const evaluated = sequence.tokenMeter.usedInputTokens - inputTokensBefore;
  return ok({ text, stopReason, shifted, tokensGenerated, evaluated, evaluationStart, firstTokenAt });
}

/** A failed reply that ran out of context, as CONTEXT_OVERFLOW; anything else is rethrown. */
function refusedReply(error: unknown, shift: boolean, prompt: FittedPrompt): Result<never> {
  if (error instanceof ContextShiftRefused) {
    return err('CONTEXT_OVERFLOW', `The reply reached the end of the context (${prompt.contextSize} tokens).`, 'Start a new chat, or raise the context size in Settings.');
  }
  if (error instanceof KvEditRefused) return err('CONTEXT_OVERFLOW', error.message, error.hint);
  if (shift && error instanceof Error && /context shift strategy|context size is too small/i.test(error.message)) {
    return contextOverflow(prompt.tokens.length, prompt.contextSize);
  }
  throw error;
}
