import type { Message } from '../contract.ts';

/**
 * Merges a message from the server into the one we hold. Two races make a naive replace wrong:
 * a call's answer (a `streaming` snapshot) can arrive after the `message.updated` that finished
 * the message, and after deltas that already extended its text. A message never goes back to
 * streaming here (a continued reply is marked streaming by its own action first: the
 * messages slice's `resumeMessage`), and streamed text we hold is never replaced by a shorter
 * prefix of itself.
 */
export function mergeMessage(existing: Message | undefined, incoming: Message): Message {
  if (!existing) return incoming;
  if (incoming.status === 'streaming' && existing.status !== 'streaming') return existing;
  if (
    incoming.status === 'streaming' &&
    existing.content.length > incoming.content.length &&
    existing.content.startsWith(incoming.content)
  ) {
    return { ...incoming, content: existing.content };
  }
  return incoming;
}
