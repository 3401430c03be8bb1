import type { Message } from '../contract.ts';
import type { DeltaBatch } from '../lib/delta-batcher.ts';
import { mergeMessage, type MessageSource } from '../lib/messages.ts';
import type { SliceCreator } from './types.ts';

export interface MessagesSlice {
  /** chatId → messageId → message, for chats whose detail was fetched (every branch). */
  readonly messages: Readonly<Record<string, Readonly<Record<string, Message>>>>;
  /**
   * Deltas for messages we do not know yet: events can overtake the answer of the call that
   * created the message (chats.send), and those first tokens must not be lost.
   */
  readonly orphanDeltas: Readonly<Record<string, string>>;

  setChatMessages(chatId: string, list: readonly Message[]): void;
  upsertMessages(list: readonly Message[], source?: MessageSource): void;
  applyDeltas(batch: readonly DeltaBatch[]): void;
}

/** A snapshot's text and the deltas seen before it, without counting any text twice. */
export function joinOrphan(snapshot: string, orphan: string): string {
  if (orphan.startsWith(snapshot)) return orphan;
  if (snapshot.endsWith(orphan)) return snapshot;
  return snapshot + orphan;
}

export const createMessagesSlice: SliceCreator<MessagesSlice> = (set) => ({
  messages: {},
  orphanDeltas: {},

  setChatMessages: (chatId, list) =>
    set((s) => {
      const held = s.messages[chatId] ?? {};
      const next: Record<string, Message> = {};
      for (const message of list) next[message.id] = mergeMessage(held[message.id], message);
      return { messages: { ...s.messages, [chatId]: next } };
    }),

  upsertMessages: (list, source = 'answer') =>
    set((s) => {
      let messages = s.messages;
      let chats = s.chats;
      let orphanDeltas = s.orphanDeltas;
      for (const incoming of list) {
        const held = messages[incoming.chatId];
        const orphan = orphanDeltas[incoming.id];
        if (orphan !== undefined) {
          const { [incoming.id]: _dropped, ...rest } = orphanDeltas;
          orphanDeltas = rest;
        }
        // A chat we have not fetched is fetched whole when opened; nothing to keep up to date.
        if (!held) continue;
        const existing = held[incoming.id];
        let merged = mergeMessage(existing, incoming, source);
        if (!existing && orphan !== undefined && merged.status === 'streaming') {
          merged = { ...merged, content: joinOrphan(merged.content, orphan) };
        }
        messages = { ...messages, [incoming.chatId]: { ...held, [incoming.id]: merged } };
        // A new message that continues the branch on screen (e.g. sent from another window)
        // becomes the new leaf; branches created elsewhere leave the view alone.
        const chat = chats[incoming.chatId];
        if (!existing && chat && chat.activeLeafId === incoming.parentId) {
          chats = { ...chats, [chat.id]: { ...chat, activeLeafId: incoming.id } };
        }
      }
      return { messages, chats, orphanDeltas };
    }),

  applyDeltas: (batch) =>
    set((s) => {
      const touched = new Map<string, Record<string, Message>>();
      let orphanDeltas = s.orphanDeltas;
      for (const { chatId, messageId, text } of batch) {
        const held = touched.get(chatId) ?? s.messages[chatId];
        if (!held) continue;
        const message = held[messageId];
        if (!message) {
          orphanDeltas = { ...orphanDeltas, [messageId]: (orphanDeltas[messageId] ?? '') + text };
          continue;
        }
        // Deltas after the final message.updated are already in its text.
        if (message.status !== 'streaming') continue;
        const copy = touched.get(chatId) ?? { ...held };
        copy[messageId] = { ...message, content: message.content + text };
        touched.set(chatId, copy);
      }
      if (touched.size === 0 && orphanDeltas === s.orphanDeltas) return {};
      return { messages: { ...s.messages, ...Object.fromEntries(touched) }, orphanDeltas };
    }),
});
