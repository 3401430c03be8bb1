/** Test data builders shared by the renderer's unit tests. */
import type { Chat, Message } from '../contract.ts';

let clock = 1_000;

export function msg(id: string, parentId: string | null, role: Message['role'] = 'user', extra: Partial<Message> = {}): Message {
  clock += 1;
  return { id, chatId: 'c1', parentId, role, content: `text of ${id}`, status: 'complete', createdAt: clock, ...extra };
}

export function mapOf(...messages: Message[]): Record<string, Message> {
  return Object.fromEntries(messages.map((m) => [m.id, m]));
}

export function chat(id = 'c1', extra: Partial<Chat> = {}): Chat {
  return {
    id,
    title: 'New chat',
    createdAt: 1,
    updatedAt: 1,
    systemPrompt: '',
    sampling: { temperature: 0.7, topP: 0.95, maxTokens: 512 },
    activeLeafId: null,
    ...extra,
  };
}
