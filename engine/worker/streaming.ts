/**
 * The `streaming` overflow policy's turn (StreamingLLM): a chat that outgrows its context keeps
 * 4 sink tokens plus a recent window in the sequence, and older cells are evicted from the
 * middle instead of the history being read again. F16 K only: every eviction goes through the
 * guard (overflow.ts). LlamaChat cannot drive such a sequence (it would erase from right after
 * the sinks), so `streamTurn` evaluates it directly, with node-llama-cpp's sequence-level shift
 * set to the guard's eviction, so the prompt and the reply both roll through the window and a
 * reply may run past the end of the context. `runStreamTurn` is that turn in the runtime.
 */
import type { ChatHistoryItem, LlamaContextSequence, LlamaModel, LlamaText, Token } from 'node-llama-cpp';
import { err, ok, type MessageStats, type Result } from '../contract/index.ts';
import type { GenerateInput, GenerateOutput } from '../protocol.ts';
import { samplerOptions } from './api-options.ts';
import { MIN_REPLY_TOKENS } from './constants.ts';
import { KvEditRefused, planStream, SINK_TOKENS, streamShiftSize, type KvGuard, type StreamWindow } from './overflow.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import type { Slot } from './slots.ts';
import { tokenStream } from './token-stream.ts';
import { joinReasons, restoreForTurn, type StoreRestore } from './turn-kv.ts';

export interface StreamTurnInput {
  readonly chatId: string;
  readonly sequence: LlamaContextSequence;
  readonly model: LlamaModel;
  readonly guard: KvGuard;
  /** The sequence's window from this chat's last streaming turn, if it still holds it. */
  readonly window: StreamWindow | null;
  readonly prompt: readonly Token[];
  /** Context size minus the reply's reserve: what the prompt may fill (see planStream). */
  readonly budget: number;
  /** Cells evicted per context shift. */
  readonly shiftSize: number;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP?: number;
  readonly seed?: number;
  readonly signal: AbortSignal;
  /** The chat template's stop triggers for this prompt (`generateContextState().stopGenerationTriggers`). */
  readonly stopTriggers: readonly LlamaText[];
  /** Called before the sequence is cleared for a fresh window (KvCache.markClean). */
  readonly onClear: () => void;
  readonly onToken: () => void;
  /** Reply text as it becomes final; the chunks add up to `text`. */
  readonly onText: (delta: string) => void;
}

export interface StreamTurnOutput {
  readonly text: string;
  readonly stopReason: 'eos' | 'maxTokens' | 'aborted';
  readonly tokensGenerated: number;
  /** Prompt tokens kept in the sequence from before. */
  readonly reused: number;
  /** Prompt tokens evaluated. */
  readonly prefilled: number;
  /** Prompt tokens never read this turn because a fresh window starts after them. */
  readonly skipped: number;
  /** Cells evicted by context shifts during the turn. */
  readonly evicted: number;
  /** Tokens of the chat's stream before the window (no longer seen by the model). */
  readonly outside: number;
  /** The window the sequence holds now; null when it cannot be trusted (the next turn starts fresh). */
  readonly window: StreamWindow | null;
}

/** Token-sequence and plain-text stop triggers. */
function splitTriggers(triggers: readonly LlamaText[], model: LlamaModel): { tokens: Token[][]; texts: string[] } {
  const tokens: Token[][] = [];
  const texts: string[] = [];
  for (const trigger of triggers) {
    if (trigger.values.every((value) => typeof value === 'string')) {
      const text = trigger.values.join('');
      if (text !== '') texts.push(text);
    } else {
      const seq = trigger.tokenize(model.tokenizer);
      if (seq.length > 0) tokens.push(seq);
    }
  }
  return { tokens, texts };
}

function endsWith(tokens: readonly Token[], tail: readonly Token[]): boolean {
  if (tail.length > tokens.length) return false;
  for (let i = 1; i <= tail.length; i++) if (tokens[tokens.length - i] !== tail[tail.length - i]) return false;
  return true;
}

/** Length of the longest suffix of `text` that starts one of `stops` (it may still become one). */
function pendingStop(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

/**
 * Evaluates the turn (see the module comment). Stops: an end-of-generation token (node-llama-cpp
 * ends the evaluation), the chat template's stop triggers (token sequences, or plain text held
 * back until it cannot be one), maxTokens, or the abort signal.
 */
export async function streamTurn(input: StreamTurnInput): Promise<StreamTurnOutput> {
  const { sequence, model, guard, prompt } = input;
  const plan = planStream(prompt, sequence.contextTokens, input.window, input.budget);
  if (plan.kind === 'fresh') {
    input.onClear();
    const cleared = await guard.truncate(sequence, 0);
    if (!cleared.ok) throw new Error(cleared.error.message);
  } else {
    const cut = await guard.truncate(sequence, plan.keep);
    if (!cut.ok) throw new Error(cut.error.message);
  }
  let cut = plan.cut;
  let evicted = 0;
  const triggers = splitTriggers(input.stopTriggers, model);
  const generated: Token[] = [];
  let decoded = 0;
  let text = '';
  let sent = '';
  let stopReason: StreamTurnOutput['stopReason'] = 'eos';
  let stopAt: number | null = null;
  const iterator = sequence.evaluate([...plan.evaluate] as Token[], {
    temperature: input.temperature,
    ...(input.topP !== undefined ? { topP: input.topP } : {}),
    ...(input.seed !== undefined ? { seed: input.seed } : {}),
    contextShift: {
      size: input.shiftSize,
      strategy: guard.shiftStrategy({
        keep: SINK_TOKENS,
        allowed: true,
        onShift: (_sequence, erased) => {
          cut += erased;
          evicted += erased;
        },
      }),
    },
  });
  try {
    for await (const token of iterator) {
      // Every token yielded before this one has been fed back (decoded) by now.
      decoded = generated.length;
      generated.push(token);
      input.onToken();
      if (triggers.tokens.some((tail) => endsWith(generated, tail))) {
        stopAt = generated.length - (triggers.tokens.find((tail) => endsWith(generated, tail))?.length ?? 0);
        break;
      }
      text = model.detokenize(generated);
      const stop = triggers.texts.map((s) => ({ s, at: text.indexOf(s) })).find((m) => m.at >= 0);
      if (stop) {
        text = text.slice(0, stop.at);
        stopAt = -1;
      }
      // Hold back a partial character and what may still become a stop trigger.
      const hold = stopAt !== null ? 0 : text.endsWith('\uFFFD') ? 1 : pendingStop(text, triggers.texts);
      const ready = text.slice(0, text.length - hold);
      if (ready.startsWith(sent) && ready.length > sent.length) {
        input.onText(ready.slice(sent.length));
        sent = ready;
      }
      if (stopAt !== null) break;
      if (input.signal.aborted) {
        stopReason = 'aborted';
        break;
      }
      if (generated.length >= input.maxTokens) {
        stopReason = 'maxTokens';
        break;
      }
    }
    // The evaluation ended by itself (an end-of-generation token): every yielded token was decoded.
    if (stopAt === null && stopReason === 'eos') decoded = generated.length;
  } catch (error) {
    if (!input.signal.aborted) throw error;
    stopReason = 'aborted';
  }
  if (stopAt !== null && stopAt >= 0) text = model.detokenize(generated.slice(0, stopAt));
  else if (stopAt === null) text = model.detokenize(generated);
  if (!text.startsWith(sent)) text = sent;
  if (text.length > sent.length) input.onText(text.slice(sent.length));

  const stream = [...prompt, ...generated.slice(0, decoded)];
  const window: StreamWindow = { chatId: input.chatId, tokens: stream, cut };
  const cells = sequence.contextTokens;
  const expected = [...stream.slice(0, Math.min(SINK_TOKENS, cut)), ...stream.slice(cut)];
  const holds = cells.length === expected.length && cells.every((t, i) => t === expected[i]);
  return {
    text,
    stopReason,
    tokensGenerated: generated.length,
    reused: plan.kind === 'continue' ? plan.keep : 0,
    prefilled: plan.evaluate.length,
    skipped: plan.kind === 'fresh' ? plan.cut - SINK_TOKENS : 0,
    evicted,
    outside: Math.max(0, cut - SINK_TOKENS),
    window: holds ? window : null,
  };
}

/** A `streaming` turn as the runtime runs it (turn.ts decides when a turn streams). */
export interface StreamTurnRun {
  readonly input: GenerateInput;
  readonly controller: AbortController;
  readonly requestedAt: number;
  /** Set `unsaved` when what the slot holds afterwards is no prefix of the chat. */
  readonly taken: { unsaved: boolean };
  readonly slot: Slot<Resident>;
  readonly promptTokens: Token[];
  readonly history: ChatHistoryItem[];
  /** What the overflow policies keep free for the reply (overflow.ts `replyReserve`). */
  readonly roomy: number;
  /** The reply's max tokens (`sampling.maxTokens`, automatic resolved: context-view.ts `replyTokens`). */
  readonly maxTokens: number;
  readonly wasForgotten: boolean;
}

/**
 * One `streaming` turn in the loaded model's slot: the sequence keeps 4 sink tokens plus a recent
 * window, evicting older cells through the guard instead of reading the history again. What a
 * rolled sequence holds is not a prefix of the chat, so it is never saved as one. Call under the
 * engine lock with a model loaded.
 */
export async function runStreamTurn(state: RuntimeState, run: StreamTurnRun): Promise<Result<GenerateOutput>> {
  const current = state.loaded!;
  const { input, slot, promptTokens } = run;
  const { sequence, chat } = slot.resident;
  const { sampling } = input;
  const contextSize = current.context.contextSize;
  const window = await chatWindow(state, current, sequence, input.chatId);
  // A sequence that is not rolled is a plain prefix: the store may hold more of the prompt.
  const restore = window === null && promptTokens.length + MIN_REPLY_TOKENS <= contextSize;
  const fromStore = await restoreForTurn(state, current, slot, input.chatId, promptTokens, { restore, wasForgotten: run.wasForgotten });
  const stream = tokenStream(state, input.requestId);
  const evaluationStart = performance.now();
  let firstTokenAt: number | null = null;
  let out: StreamTurnOutput;
  try {
    out = await current.slots.during(slot, 'generating', () =>
      streamTurn({
        chatId: input.chatId,
        sequence,
        model: current.model,
        guard: current.guard,
        window,
        prompt: promptTokens,
        budget: contextSize - run.roomy,
        shiftSize: streamShiftSize(contextSize),
        maxTokens: run.maxTokens,
        ...samplerOptions(sampling, input.seed),
        signal: run.controller.signal,
        stopTriggers: chat.chatWrapper.generateContextState({ chatHistory: run.history }).stopGenerationTriggers,
        onClear: () => state.kvCache?.markClean(sequence),
        onToken: () => {
          firstTokenAt ??= performance.now();
        },
        onText: (delta) => stream.push(delta),
      }),
    );
  } catch (error) {
    stream.flush();
    current.streams.delete(sequence);
    if (error instanceof KvEditRefused) return err('CONTEXT_OVERFLOW', error.message, error.hint);
    throw error;
  }
  const text = stream.settle(out.text);
  await keepWindow(state, current, sequence, out, run.taken);
  const stats = streamStats(current, slot, out, fromStore, { requestedAt: run.requestedAt, evaluationStart, firstTokenAt }, sequence.nextTokenIndex);
  return ok({ text, stopReason: run.controller.signal.aborted ? 'aborted' : out.stopReason, stats });
}

/** The sequence's window when it is this chat's; another chat's is cleared (nothing of it is this chat's, its sinks included). */
async function chatWindow(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, chatId: string): Promise<StreamWindow | null> {
  const rolled = current.streams.get(sequence);
  const window = rolled?.chatId === chatId ? rolled : null;
  if (rolled && window === null) {
    current.streams.delete(sequence);
    await current.guard.truncate(sequence, 0);
    state.kvCache?.markClean(sequence);
  }
  return window;
}

/** Remembers the window the sequence holds after the turn, or empties it when that is not known. */
async function keepWindow(state: RuntimeState, current: Loaded, sequence: LlamaContextSequence, out: StreamTurnOutput, taken: { unsaved: boolean }): Promise<void> {
  if (out.outside > 0 && out.window) {
    current.streams.set(sequence, out.window);
    taken.unsaved = true;
    return;
  }
  current.streams.delete(sequence);
  if (out.outside > 0) {
    // What the sequence holds is not known exactly: start the next turn from empty.
    await current.guard.truncate(sequence, 0);
    state.kvCache?.markClean(sequence);
    taken.unsaved = true;
  }
}

/** The readout of a streaming turn; also tells the slot table what the store holds of the sequence. */
function streamStats(
  current: Loaded,
  slot: Slot<Resident>,
  out: StreamTurnOutput,
  fromStore: StoreRestore,
  times: { requestedAt: number; evaluationStart: number; firstTokenAt: number | null },
  cellsAfter: number,
): MessageStats {
  const contextSize = current.context.contextSize;
  // Restored cells are the store's; kept ones (from a restore or an earlier turn) are in memory.
  const restored = Math.min(fromStore.restored, out.reused);
  if (restored > 0) current.slots.restored(slot, restored);
  else current.slots.kept(slot, out.reused);
  let fallbackReason = fromStore.fallbackReason;
  if (out.outside > 0) {
    const how = out.skipped > 0 ? `; ${out.skipped} of them were not read this turn` : out.evicted > 0 ? `; ${out.evicted} were evicted this turn without reading anything again` : '';
    const note = `the conversation outgrew the context (${contextSize} tokens): StreamingLLM keeps its first ${SINK_TOKENS} tokens and the most recent ones, so ${out.outside} older tokens are no longer seen${how}`;
    fallbackReason = joinReasons(note, fallbackReason);
  }
  const { requestedAt, evaluationStart, firstTokenAt } = times;
  const ttftMs = firstTokenAt === null ? performance.now() - requestedAt : firstTokenAt - requestedAt;
  return {
    tokensReused: out.reused - restored,
    tokensRestored: restored,
    tokensPrefilled: out.prefilled,
    tokensGenerated: out.tokensGenerated,
    ttftMs: Math.round(ttftMs * 10) / 10,
    prefillMs: Math.round(((firstTokenAt ?? performance.now()) - evaluationStart) * 10) / 10,
    cacheSource: restored > 0 ? 'disk' : out.reused > 0 ? 'memory' : 'none',
    ...(fromStore.restoreMs !== undefined && restored > 0 ? { restoreMs: fromStore.restoreMs } : {}),
    ...(fallbackReason !== undefined ? { fallbackReason } : {}),
    // The window is cut inside messages, not between them: it names no first message.
    view: { policy: 'streaming', contextSize, tokens: Math.min(contextSize, cellsAfter), droppedMessages: 0, droppedNow: 0 },
  };
}
