/**
 * What a chat does when it outgrows its context (the overflow policies, types.ts OverflowPolicy),
 * and the guard that keeps llama.cpp 0.4.0 from crashing on the way: with a quantized K cache, a
 * middle erase or node-llama-cpp's sequence-level context shift segfaults the process on the
 * next decode; a tail erase or clearing a whole sequence is safe
 * (docs/decisions/quantized-k-shift-crash.md). `checkKvEdit` is the one decision, and `KvGuard`
 * the only way Hearth erases cells or lets node-llama-cpp shift. node-llama-cpp's own erases
 * outside it (LlamaChat aligning a sequence with a new prompt, `clearHistory`) are tail erases
 * by construction. `drop-oldest` and `stop` never move cells; `streaming` does, so validation
 * refuses it with a quantized K, and the guard refuses again here.
 */
import type { ContextTokensDeleteRange, LlamaContextSequence } from 'node-llama-cpp';
import { err, ok, type KvCacheType, type Result } from '../contract/index.ts';
import type { PromptMessage } from '../protocol.ts';

/** StreamingLLM's attention sinks: the first tokens of the sequence always stay. */
export const SINK_TOKENS = 4;

export function isQuantized(type: KvCacheType): boolean {
  return type !== 'f16';
}

/** A requested erase: ranges of cell indices [start, end) of a sequence now `length` tokens long. */
export interface KvEdit {
  readonly length: number;
  readonly ranges: readonly ContextTokensDeleteRange[];
}

/** What an allowed edit does: `tail` when it only cuts the end; `from` is its first erased index. */
export interface KvEditPlan {
  readonly tail: boolean;
  readonly from: number;
  /** The ranges clamped to the sequence, sorted and merged (empty: nothing to do). */
  readonly ranges: readonly ContextTokensDeleteRange[];
}

/** Clamps to [0, length), drops empty ranges, sorts and merges touching ones. */
export function normalizeRanges(length: number, ranges: readonly ContextTokensDeleteRange[]): ContextTokensDeleteRange[] {
  const clamped = ranges
    .map(({ start, end }) => ({ start: Math.max(0, Math.min(start, end)), end: Math.min(length, Math.max(start, end)) }))
    .filter((r) => r.start < r.end)
    .sort((a, b) => a.start - b.start);
  const merged: ContextTokensDeleteRange[] = [];
  for (const range of clamped) {
    const last = merged.at(-1);
    if (last && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}

/**
 * THE GUARD's decision. A tail erase (one range that ends at the sequence's end, a full clear
 * included) is always allowed; anything else shifts the cells after it, which crashes llama.cpp
 * 0.4.0 with a quantized K: refused for every quantized K type. Never throws.
 */
export function checkKvEdit(kType: KvCacheType, edit: KvEdit): Result<KvEditPlan> {
  if (!Number.isInteger(edit.length) || edit.length < 0) return err('INTERNAL', `A KV edit needs the sequence length, not ${String(edit.length)}.`);
  const ranges = normalizeRanges(edit.length, edit.ranges);
  if (ranges.length === 0) return ok({ tail: true, from: edit.length, ranges });
  const tail = ranges.length === 1 && ranges[0]!.end === edit.length;
  if (!tail && isQuantized(kType)) {
    return err(
      'CONTEXT_OVERFLOW',
      `Refused to erase tokens ${ranges.map((r) => `${r.start}–${r.end}`).join(', ')} from the middle of a ${kType.toUpperCase()} K cache: llama.cpp crashes on that (only F16 K can shift).`,
      'Use the overflow policy "drop oldest" with a quantized K cache, or an F16 K cache for StreamingLLM.',
    );
  }
  return ok({ tail, from: ranges[0]!.start, ranges });
}

/** Thrown inside node-llama-cpp's context shift when the guard refuses it: nothing was erased. */
export class KvEditRefused extends Error {
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'KvEditRefused';
    this.hint = hint;
  }
}

/** The part of a sequence the guard needs (a LlamaContextSequence, or a fake in tests). */
export interface KvEditTarget {
  readonly nextTokenIndex: number;
  eraseContextTokenRanges(ranges: ContextTokensDeleteRange[]): Promise<void>;
}

export interface KvGuardOptions {
  readonly kType: KvCacheType;
  /** Called before an allowed middle edit is issued (KvCache.markFragmented). */
  readonly onFragmented?: (sequence: KvEditTarget, from: number) => void;
}

/**
 * Every erase and shift Hearth issues on a context's sequences goes through one of these. Both
 * ask `checkKvEdit` first and never issue a refused edit: `erase` answers an error,
 * `shiftStrategy` (given to every sequence at creation, so even a shift Hearth did not ask for
 * goes through it) throws `KvEditRefused` before node-llama-cpp erases anything, so the
 * evaluation fails with that error instead of the process dying. An allowed middle edit marks
 * the sequence fragmented for the KV store from its first erased cell. LlamaChat's own erases
 * stay tail erases: it calls `adaptStateToTokens` with shifting off, so its chat-level shift
 * re-renders a shorter history and erases from the first differing token to the end.
 */
export class KvGuard {
  readonly kType: KvCacheType;
  readonly #onFragmented: ((sequence: KvEditTarget, from: number) => void) | undefined;

  constructor(options: KvGuardOptions) {
    this.kType = options.kType;
    this.#onFragmented = options.onFragmented;
  }

  /** Erases `ranges` when the guard allows it; a refused edit is never issued. */
  async erase(sequence: KvEditTarget, ranges: readonly ContextTokensDeleteRange[]): Promise<Result<KvEditPlan>> {
    const plan = checkKvEdit(this.kType, { length: sequence.nextTokenIndex, ranges });
    if (!plan.ok || plan.value.ranges.length === 0) return plan;
    if (!plan.value.tail) this.#onFragmented?.(sequence, plan.value.from);
    await sequence.eraseContextTokenRanges(plan.value.ranges.map((r) => ({ ...r })));
    return plan;
  }

  /** Cuts the sequence to its first `length` tokens (always allowed: a tail erase). */
  truncate(sequence: KvEditTarget, length: number): Promise<Result<KvEditPlan>> {
    return this.erase(sequence, [{ start: Math.max(0, length), end: sequence.nextTokenIndex }]);
  }

  /**
   * node-llama-cpp's sequence-level context shift (`contextShift.strategy`), evicting the `size`
   * cells after the first `keep` (StreamingLLM's sinks). `allowed` false (the policy never
   * shifts) refuses every shift; a quantized K refuses it too. Refusing throws KvEditRefused
   * before anything is erased. `onShift` hears how many cells went.
   */
  shiftStrategy(options: { keep: number; allowed: boolean; onShift?: (sequence: LlamaContextSequence, erased: number) => void }) {
    return ({ sequence, size }: { sequence: LlamaContextSequence; size: number }): ContextTokensDeleteRange[] => {
      if (!options.allowed) {
        throw new KvEditRefused('The reply reached the end of the context.', 'Start a new chat, or raise the context size in Settings.');
      }
      const length = sequence.nextTokenIndex;
      const keep = Math.min(options.keep, length);
      const ranges = [{ start: keep, end: Math.min(length, keep + Math.max(1, size)) }];
      const plan = checkKvEdit(this.kType, { length, ranges });
      if (!plan.ok) throw new KvEditRefused(plan.error.message, plan.error.hint);
      if (plan.value.ranges.length === 0) throw new KvEditRefused('The context is full and holds nothing the context shift may evict.');
      if (!plan.value.tail) this.#onFragmented?.(sequence, plan.value.from);
      const erased = plan.value.ranges.reduce((sum, r) => sum + r.end - r.start, 0);
      options.onShift?.(sequence, erased);
      return plan.value.ranges.map((r) => ({ ...r }));
    };
  }
}

/** Cells node-llama-cpp's context shift evicts at a time: an eighth of the context, at least 16. */
export function streamShiftSize(contextSize: number): number {
  return Math.max(16, Math.floor(contextSize / 8));
}

/**
 * Room a reply gets before a chat counts as outgrowing its context (every policy): the
 * reply's maxTokens, at least MIN_REPLY_TOKENS and at most a quarter of the context. Reserving
 * more than the minimum keeps replies from being cut short near the end of the context.
 */
export function replyReserve(contextSize: number, maxTokens: number, minReplyTokens: number): number {
  return Math.max(minReplyTokens, Math.min(maxTokens, Math.floor(contextSize / 4)));
}

/** A window of a chat: the messages kept and how many were dropped. */
export interface RebuildWindow {
  readonly messages: readonly PromptMessage[];
  readonly dropped: number;
}

/**
 * Drops the oldest messages (the leading system prompt stays) until `fits` says the rest fits.
 * The kept part starts with a user message (a chat template may require it) and always keeps
 * the last message. null when even the system prompt and the last message do not fit.
 * `fits` must be monotone (fewer messages never fit worse); it is called O(log n) times.
 */
export function rebuildWindow(messages: readonly PromptMessage[], fits: (messages: readonly PromptMessage[]) => boolean): RebuildWindow | null {
  const head = messages[0]?.role === 'system' ? [messages[0]] : [];
  const body = messages.slice(head.length);
  if (body.length === 0) return fits(messages) ? { messages, dropped: 0 } : null;
  // Window starts that begin with a user message (and the last message, whatever it is).
  const starts: number[] = [];
  for (let i = 0; i < body.length; i++) if (body[i]!.role === 'user' || i === body.length - 1) starts.push(i);
  const windowAt = (start: number): PromptMessage[] => [...head, ...body.slice(start)];
  if (fits(windowAt(0))) return { messages, dropped: 0 };
  // Binary search for the earliest start that fits: later starts keep fewer messages.
  let lo = 0;
  let hi = starts.length - 1;
  if (!fits(windowAt(starts[hi]!))) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(windowAt(starts[mid]!))) hi = mid;
    else lo = mid + 1;
  }
  return { messages: windowAt(starts[lo]!), dropped: starts[lo]! };
}

/**
 * A sequence rolled by `streaming`: it holds `tokens[0, SINK_TOKENS)` then `tokens[cut, …)` of the
 * chat's token stream `tokens` (the prompt and reply as they were evaluated).
 */
export interface StreamWindow {
  readonly chatId: string;
  readonly tokens: readonly number[];
  readonly cut: number;
}

/** What the sequence must hold for `window` (to check it still does). */
export function windowCells(window: StreamWindow): number[] {
  return [...window.tokens.slice(0, Math.min(SINK_TOKENS, window.cut)), ...window.tokens.slice(window.cut)];
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** How a `streaming` turn starts (see `planStream`). */
export type StreamPlan =
  /** Keep the first `keep` cells, evaluate `evaluate`; the sequence then stands for `prompt` with `cut`. */
  | { readonly kind: 'continue'; readonly keep: number; readonly cut: number; readonly evaluate: readonly number[] }
  /** Clear the sequence and evaluate the sinks plus the prompt's last tokens: `prompt[0, 4) ++ prompt[cut, …)`. */
  | { readonly kind: 'fresh'; readonly cut: number; readonly evaluate: readonly number[] };

/**
 * Plans a `streaming` turn for `prompt` in a sequence holding `cells`, rolled as `window` (null:
 * not rolled, so the cells are a plain prefix). `budget` is the most the sequence may hold once
 * the prompt is in (the context minus the reply's reserve).
 *
 * - The sequence still stands for a prefix of the prompt (the last turn's window, or a plain
 *   prefix) that reaches past its gap: keep what matches, evaluate the rest; node-llama-cpp's
 *   shift (through the guard) evicts the oldest non-sink cells whenever the context fills, so the
 *   prompt streams through as StreamingLLM does, without reading the dropped part again.
 * - Else (another chat, an edit in the evicted part, a restart): start over with the sinks and the
 *   prompt's last `budget - SINK_TOKENS` tokens; reading only those is what StreamingLLM's window
 *   would hold anyway, and far cheaper than streaming the whole history through.
 * Always leaves at least one token to evaluate (its logits sample the reply).
 */
export function planStream(prompt: readonly number[], cells: readonly number[], window: StreamWindow | null, budget: number): StreamPlan {
  const fresh = (): StreamPlan => {
    const room = Math.max(1, budget - SINK_TOKENS);
    if (prompt.length <= SINK_TOKENS + room) return { kind: 'fresh', cut: SINK_TOKENS, evaluate: prompt };
    const cut = prompt.length - room;
    return { kind: 'fresh', cut, evaluate: [...prompt.slice(0, SINK_TOKENS), ...prompt.slice(cut)] };
  };
  // The token stream the sequence stands for, and where its gap is.
  const stream = window ? window.tokens : cells;
  const cut = window ? window.cut : Math.min(SINK_TOKENS, cells.length);
  const cellsOk = window ? commonPrefix(windowCells(window), cells) === cells.length && cells.length === windowCells(window).length : true;
  if (!cellsOk) return fresh();
  const shared = Math.min(commonPrefix(stream, prompt), prompt.length - 1);
  // Nothing after the gap still matches: the kept window is not this prompt's.
  if (shared <= cut && cut > SINK_TOKENS) return fresh();
  if (shared < Math.min(SINK_TOKENS, prompt.length - 1)) return fresh();
  const keep = cut > SINK_TOKENS ? SINK_TOKENS + (shared - cut) : shared;
  const evaluate = prompt.slice(shared);
  // Streaming the rest through would read more than starting over does.
  if (evaluate.length > budget) return fresh();
  return { kind: 'continue', keep, cut: Math.max(cut, SINK_TOKENS), evaluate };
}
