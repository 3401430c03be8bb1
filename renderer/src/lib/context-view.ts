/**
 * What the model sees of a long chat: the divider above the first message in its view, the
 * context meter, the reply's readout of a moved view, when a reply can be continued, and what a
 * chat that stopped at the end of its context can do next. Pure, so the chat view and its tests
 * share one reading of `MessageStats.view`.
 */
import type { ChatCache, ContextView, KvPlan, Message, MessageStats, ModelInfo, OverflowPolicy } from '../contract.ts';
import { stopReasonRowText } from './cache.ts';
import { formatCount as count } from './format.ts';
import { findRow, maxContext, needsF16K, overflowPolicyList, overflowPolicyText } from './kv.ts';
import type { MessageMap } from './tree.ts';

export const dividerText = "Earlier messages are outside the model's view";

/**
 * The view of the newest reply on the path that has one: the model's view as it stands now. A
 * reply in progress (or an older one, written before views were reported) has none, and the
 * one before it still speaks for the chat.
 */
export function latestView(messages: MessageMap, pathIds: readonly string[]): { readonly messageId: string; readonly view: ContextView } | null {
  for (let i = pathIds.length - 1; i >= 0; i--) {
    const id = pathIds[i];
    const message = id === undefined ? undefined : messages[id];
    const view = message?.role === 'assistant' ? message.stats?.view : undefined;
    if (message && view) return { messageId: message.id, view };
  }
  return null;
}

/**
 * The message the divider goes above, or null. The view names its first message; on another
 * branch (an edit above it, a switch) that id is not on the path, and a divider there would
 * point at the wrong history, so there is none.
 */
export function dividerAbove(messages: MessageMap, pathIds: readonly string[]): string | null {
  const latest = latestView(messages, pathIds);
  if (!latest || latest.view.droppedMessages <= 0) return null;
  const first = latest.view.firstMessageId;
  if (first === undefined) return null;
  const index = pathIds.indexOf(first);
  return index > 0 ? first : null;
}

/** Why a reply ended, when the model did not end it itself. */
export function stopReasonText(stats: MessageStats | undefined): string | null {
  const reason = stats?.stopReason;
  return reason && reason !== 'eos' ? `Stopped ${stopReasonRowText[reason]}` : null;
}

/**
 * The line beside a Continue button ('' for none), or null when the reply cannot be continued from here:
 * only the active branch's last reply (`chats.continue` writes on from the end of the branch),
 * only while the chat is idle, and only one that was cut short (the context, its max tokens, or
 * the user's Stop).
 */
export function continueOffer(message: Message, where: { readonly last: boolean; readonly busy: boolean }): string | null {
  if (message.role !== 'assistant' || !where.last || where.busy) return null;
  // Its status badge already says "Stopped".
  if (message.status === 'stopped') return '';
  if (message.status !== 'complete') return null;
  return stopReasonText(message.stats);
}

/** A failed turn under the `stop` policy: the chat asks what to do. */
export function isContextOverflow(message: Message): boolean {
  return message.role === 'assistant' && message.status === 'error' && message.error?.code === 'CONTEXT_OVERFLOW';
}

export interface ContextMeter {
  /** Tokens in the model's view. */
  readonly tokens: number;
  /** The context the view fits in. */
  readonly contextSize: number;
  /** The chat's stored tokens; null until the chat's cache was asked for. */
  readonly onDisk: number | null;
  /** "812 / 1,024 tokens in view · 768 on disk" */
  readonly text: string;
}

/**
 * The chat header's meter: the newest view's tokens against its context, and what the store
 * holds of the chat. A new chat shows the loaded model's context with nothing in it; a chat
 * whose replies predate views shows none, since any figure would be a guess.
 */
export function contextMeter(input: {
  readonly view: ContextView | null;
  readonly cache: ChatCache | undefined;
  readonly model: ModelInfo | null;
  readonly hasReplies: boolean;
}): ContextMeter | null {
  const { view, cache } = input;
  let tokens: number;
  let contextSize: number;
  if (view) {
    tokens = view.tokens;
    contextSize = view.contextSize;
  } else if (!input.hasReplies && input.model && input.model.contextSize > 0) {
    tokens = 0;
    contextSize = input.model.contextSize;
  } else {
    return null;
  }
  const onDisk = cache ? cache.tokensOnDisk : null;
  const head = `${count(tokens)} / ${count(contextSize)} tokens in view`;
  return { tokens, contextSize, onDisk, text: onDisk === null ? head : `${head} · ${count(onDisk)} on disk` };
}

/**
 * The context to offer after a turn stopped at the end of it: twice the loaded one, if the model
 * was trained for that much (past it, the model's answers degrade) and the contract allows it.
 */
export function raiseContextTarget(model: ModelInfo | null): number | null {
  if (!model || model.contextSize <= 0) return null;
  const target = model.contextSize * 2;
  if (target > maxContext) return null;
  if (model.trainedContextLength > 0 && target > model.trainedContextLength) return null;
  return target;
}

/**
 * Whether the planner says the loaded model fits at the plan's context with the K/V pair it runs
 * (the planner's own pick when the host did not say which).
 */
export function raiseFits(plan: KvPlan, model: ModelInfo): boolean {
  const pair = model.kvType ? { kType: model.kvType.k, vType: model.kvType.v } : plan.auto;
  const row = findRow(plan, pair);
  return row !== undefined && row.fits && !row.refused;
}

/** One choice of a chat's overflow policy; `value` null follows the model. */
export interface PolicyChoice {
  readonly value: OverflowPolicy | null;
  readonly label: string;
  readonly description: string;
  /** Why it cannot be chosen now, when it cannot. */
  readonly disabledReason?: string;
}

/**
 * The Chat settings' overflow choices. StreamingLLM erases the middle of the KV in place, which
 * crashes llama.cpp with a quantized K: it is offered only when the loaded model's K is F16
 * (with no model loaded, the engine checks at the turn).
 */
export function chatPolicyChoices(modelPolicy: OverflowPolicy | null, model: ModelInfo | null): PolicyChoice[] {
  const kType = model?.kvType?.k;
  const choices: PolicyChoice[] = [
    {
      value: null,
      label: modelPolicy ? `Model default (${overflowPolicyText[modelPolicy].label})` : 'Model default',
      description: "Whatever the loaded model's profile says (Settings → Model).",
    },
  ];
  for (const policy of overflowPolicyList) {
    const quantizedK = needsF16K(policy) && kType !== undefined && kType !== 'f16';
    choices.push({
      value: policy,
      label: overflowPolicyText[policy].label,
      description: overflowPolicyText[policy].description,
      ...(quantizedK ? { disabledReason: `Not with this model's quantized K (${kType}): it needs an F16 K.` } : {}),
    });
  }
  return choices;
}
