/**
 * The `streaming` overflow policy's turn (StreamingLLM, facts.md): a chat that outgrows its
 * context keeps 4 sink tokens plus a recent window in the sequence, and older cells are evicted
 * from the middle instead of the history being read again. F16 K only: every eviction goes
 * through the guard (overflow.ts), which refuses it for a quantized K.
 *
 * LlamaChat cannot drive such a sequence: it renders the whole history and erases from the first
 * token that differs, which is right after the sinks. So this turn evaluates the sequence
 * directly: the prompt's new tokens, then one sampled token at a time, with node-llama-cpp's
 * sequence-level context shift set to the guard's StreamingLLM eviction, so the prompt and the
 * reply both roll through the window. A reply may therefore run past the end of the context.
 * Stops: an end-of-generation token (node-llama-cpp ends the evaluation), the chat template's
 * stop triggers (token sequences, or plain text held back until it cannot be one), maxTokens,
 * or the abort signal.
 */
import type { LlamaContextSequence, LlamaModel, LlamaText, Token } from 'node-llama-cpp';
import { planStream, SINK_TOKENS, type KvGuard, type StreamWindow } from './overflow.ts';

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
