import type { Message } from '../contract.ts';

/** Where a message came from: a call's answer (may be stale) or the host's ordered events. */
export type MessageSource = 'answer' | 'event';

/**
 * Merges a message from the server into the one we hold. Two races make a naive replace wrong:
 * a call's answer (a `streaming` snapshot) can arrive after the `message.updated` that finished
 * the message, and after deltas that already extended its text. So an answer never takes a
 * finished message back to streaming, and streamed text we hold is never replaced by a shorter
 * prefix of itself. Events arrive in the order the host sent them: a `message.updated` that
 * turns a finished reply back to streaming is the host reopening it (`chats.continue`), in every
 * window, before the continuation's first delta.
 */
export function mergeMessage(existing: Message | undefined, incoming: Message, source: MessageSource = 'answer'): Message {
  if (!existing) return incoming;
  if (incoming.status === 'streaming' && existing.status !== 'streaming' && source === 'answer') return existing;
  if (
    incoming.status === 'streaming' &&
    existing.content.length > incoming.content.length &&
    existing.content.startsWith(incoming.content)
  ) {
    return { ...incoming, content: existing.content };
  }
  return incoming;
}
