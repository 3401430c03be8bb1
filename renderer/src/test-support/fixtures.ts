/** Test data builders shared by the renderer's unit tests. */
import type { AppState, Chat, Message } from '../contract.ts';

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

/** An app state as the host reports it at start, with a ready model. */
export const appState = (extra: Partial<AppState> = {}): AppState => ({
  version: '0.1.0',
  host: 'browser',
  dataDir: '/d',
  modelsDir: '/d/models',
  engine: { state: 'running', restarts: 0 },
  model: { status: 'ready' },
  settings: {
    threads: 0,
    contextSize: 0,
    theme: 'system',
    defaultSystemPrompt: '',
    defaultSampling: { temperature: 0.7, topP: 0.95, maxTokens: 512 },
    lastModelPath: null,
    kvPersistence: true,
    kvBudgetBytes: 10 * 1024 ** 3,
    kvChunkTokens: 256,
    kvSlots: 1,
  },
  ...extra,
});
