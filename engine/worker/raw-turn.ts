/**
 * A raw completion (GenerateInput.raw): the one user message's text is the whole prompt, with no
 * chat template. It runs in the chat's slot like any turn: restore from the store, reuse what the
 * sequence already holds, generate, and the caller saves the slot's tokens after.
 *
 * Generation is node-llama-cpp's LlamaCompletion on the slot's sequence (autoDisposeSequence
 * false): before it evaluates, it keeps the sequence's tokens that equal the prompt's start
 * (`adaptStateToTokens`, a tail erase) and evaluates only the rest, always the last prompt token
 * again for its logits, exactly as LlamaChat does, so `measureReuse` counts it the same way.
 *
 * Tokenizing: the model's BOS when llama.cpp would prepend one for a completion, then the text
 * tokenized as LlamaCompletion tokenizes a text prompt (no leading space inserted after the BOS).
 * Special tokens are NOT parsed: "<|im_start|>" or "</s>" in the text stay text. A raw prompt
 * then can do nothing a chat message cannot (node-llama-cpp tokenizes message texts the same
 * way), and a client that needs the model's own template uses the chat endpoints, which apply it.
 */
import { LlamaCompletion, LlamaVocabularyType, type LlamaModel, type Token } from 'node-llama-cpp';
import { ok, type Result } from '../contract/index.ts';
import type { GenerateInput, GenerateOutput } from '../protocol.ts';
import { stopReasonOf, samplerOptions } from './api-options.ts';
import { diagnoseCacheMiss, slotDivergence } from './cache-miss.ts';
import { MIN_REPLY_TOKENS } from './constants.ts';
import { replyTokens } from './context-view.ts';
import { replyReserve } from './overflow.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import type { Slot } from './slots.ts';
import { tokenStream } from './token-stream.ts';
import { forgetSequence, measureReuse, outgrown, startFromPrefix, turnReadout, type TurnOptions } from './turn.ts';
import { restoreForTurn } from './turn-kv.ts';

/** The token LlamaCompletion puts before a prompt (llama.cpp's rule for the vocabulary), or null. */
function beginningToken(model: LlamaModel): Token | null {
  const type = model.vocabularyType;
  if (type === LlamaVocabularyType.rwkv || type === LlamaVocabularyType.ugm) return null;
  if (type === LlamaVocabularyType.wpm) return model.tokens.bos;
  return model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
}

/** A raw prompt's tokens as the sequence will hold them: the beginning token (if any), then the text. */
export function rawPromptTokens(model: LlamaModel, text: string): Token[] {
  const first = beginningToken(model);
  if (first === null) return model.tokenize(text, false);
  return [first, ...model.tokenize(text, false, 'trimLeadingSpace')];
}

/** What a raw turn runs with. */
export interface RawTurn {
  readonly input: GenerateInput;
  readonly options: TurnOptions;
  readonly controller: AbortController;
  readonly requestedAt: number;
  /** Which slot it ran in, and whether what it holds now must not be saved (turn.ts `Taken`). */
  readonly taken: { slot: Slot<Resident> | null; unsaved: boolean };
}

/** The prompt under the overflow policy: `stop` refuses one that does not fit; the others keep its end. */
function fitRaw(current: Loaded, input: GenerateInput, tokens: Token[]): Result<{ tokens: Token[]; dropped: number; maxTokens: number; effectiveMaxTokens: number }> {
  const policy = input.overflowPolicy ?? current.profile.overflowPolicy;
  const contextSize = current.context.contextSize;
  const maxTokens = replyTokens(input.sampling.maxTokens, contextSize);
  const roomy = replyReserve(contextSize, maxTokens, MIN_REPLY_TOKENS);
  let kept = tokens;
  if (tokens.length + roomy > contextSize) {
    if (policy === 'stop') return outgrown(tokens.length, contextSize);
    // `drop-oldest` (and `streaming`, which has no messages to roll here) keeps the beginning
    // token and the prompt's last tokens that fit with room for the reply.
    const head = tokens[0] === beginningToken(current.model) ? 1 : 0;
    const room = Math.max(1, contextSize - roomy - head);
    kept = [...tokens.slice(0, head), ...tokens.slice(-room)];
  }
  // LlamaCompletion would shift the context at contextSize − 1 tokens; stop just before (as chats do).
  const effectiveMaxTokens = Math.max(1, Math.min(maxTokens, contextSize - kept.length - 2));
  return ok({ tokens: kept, dropped: tokens.length - kept.length, maxTokens, effectiveMaxTokens });
}

/** A raw completion in the chat's slot; `turn.taken` is filled in as in a chat turn. */
export async function runRawTurn(state: RuntimeState, current: Loaded, turn: RawTurn): Promise<Result<GenerateOutput>> {
  const { input, options, controller } = turn;
  const model = current.model;
  const fitted = fitRaw(current, input, rawPromptTokens(model, input.messages[0]!.text));
  if (!fitted.ok) return fitted;
  const prompt = fitted.value.tokens;
  const { slot } = await current.slots.acquire(input.chatId);
  turn.taken.slot = slot;
  const sequence = slot.resident.sequence;
  const wasForgotten = await forgetSequence(state, current, sequence, input.chatId);
  await startFromPrefix(state, current, sequence, current.streams.get(sequence), prompt);
  const fromStore = await restoreForTurn(state, current, slot, input.chatId, prompt, { restore: true, wasForgotten });
  const restored = fromStore.restored;
  const { reused: inMemory, prefilled } = measureReuse(sequence, prompt);
  const reused = restored > 0 ? 0 : inMemory;
  if (restored > 0) current.slots.restored(slot, restored);
  else current.slots.kept(slot, inMemory);
  // Before the completion, which overwrites what the slot held beyond the shared prefix.
  const held = input.diagnose === true ? slotDivergence(slot, prompt) : null;

  const stream = tokenStream(state, input.requestId);
  const inputTokensBefore = sequence.tokenMeter.usedInputTokens;
  const evaluationStart = performance.now();
  let firstTokenAt: number | null = null;
  let tokensGenerated = 0;
  let text: string;
  let stopReason: GenerateOutput['stopReason'];
  let stopSequence: string | undefined;
  const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
  try {
    // LlamaCompletion puts the beginning token back itself.
    const body = prompt[0] === beginningToken(model) ? prompt.slice(1) : prompt;
    const response = await current.slots.during(slot, 'generating', () =>
      completion.generateCompletionWithMeta(body, {
        signal: controller.signal,
        stopOnAbortSignal: true,
        maxTokens: fitted.value.effectiveMaxTokens,
        ...samplerOptions(input.sampling, input.seed),
        ...(options.grammar ? { grammar: options.grammar } : {}),
        ...(options.stop.length > 0 ? { customStopTriggers: options.stop } : {}),
        // The prompt already fits (fitRaw), and the reply stops before the end of the context:
        // LlamaCompletion must neither cut the prompt nor shift the context on its own.
        contextShiftSize: 1,
        disableContextShift: true,
        onToken: (tokens) => {
          firstTokenAt ??= performance.now();
          tokensGenerated += tokens.length;
        },
        onTextChunk: (chunk) => stream.push(chunk),
      }),
    );
    stream.flush();
    text = stream.settle(response.response);
    ({ stopReason, stopSequence } = stopReasonOf(response.metadata, options.stop));
  } catch (error) {
    stream.flush();
    if (!controller.signal.aborted) throw error;
    text = stream.text;
    stopReason = 'aborted';
  } finally {
    completion.dispose({ disposeSequence: false });
  }
  if (controller.signal.aborted) {
    stopReason = 'aborted';
    stopSequence = undefined;
  }
  if (stopReason === 'maxTokens' && fitted.value.effectiveMaxTokens < fitted.value.maxTokens) stopReason = 'context';
  const cacheMiss = held ? await diagnoseCacheMiss(state, current, prompt, { slot, held }) : undefined;
  const contextSize = current.context.contextSize;
  const stats = turnReadout(state, 'raw prompt', {
    reused,
    restored,
    prefilled,
    tokensGenerated,
    evaluated: sequence.tokenMeter.usedInputTokens - inputTokensBefore,
    requestedAt: turn.requestedAt,
    evaluationStart,
    firstTokenAt,
    restoreMs: fromStore.restoreMs,
    fallbackReason: fromStore.fallbackReason,
    cacheMiss,
    // A raw prompt has no messages: what was cut is counted in the view's tokens only.
    view: { policy: input.overflowPolicy ?? current.profile.overflowPolicy, contextSize, tokens: Math.min(contextSize, prompt.length + tokensGenerated), droppedMessages: 0, droppedNow: 0 },
  });
  if (fitted.value.dropped > 0) state.log('debug', `raw prompt: the first ${fitted.value.dropped} tokens were left out to fit the context`);
  return ok({ text, stopReason, stats, ...(stopSequence !== undefined ? { stopSequence } : {}) });
}

