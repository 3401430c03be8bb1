import type { Chat, ChatSummary, HearthError } from '../contract.ts';
import type { SliceCreator } from './types.ts';

export type ChatLoad = 'loading' | 'loaded' | { readonly error: HearthError };

export interface ChatsSlice {
  /** Newest activity first. */
  readonly chatList: readonly ChatSummary[];
  readonly chatListLoaded: boolean;
  /** Full chats, for those whose detail was fetched. */
  readonly chats: Readonly<Record<string, Chat>>;
  readonly chatLoad: Readonly<Record<string, ChatLoad>>;

  setChatList(list: readonly ChatSummary[]): void;
  upsertChatSummary(summary: ChatSummary): void;
  removeChat(chatId: string): void;
  /** Forgets a chat's detail (kept in the list), so that it is fetched again when opened. */
  removeChatDetail(chatId: string): void;
  setChat(chat: Chat): void;
  setChatLoad(chatId: string, load: ChatLoad): void;
  setActiveLeaf(chatId: string, leafId: string | null): void;
}

export function sortChats(list: readonly ChatSummary[]): ChatSummary[] {
  return [...list].sort((a, b) => b.updatedAt - a.updatedAt || b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
}

function summaryOf(chat: ChatSummary): ChatSummary {
  return { id: chat.id, title: chat.title, createdAt: chat.createdAt, updatedAt: chat.updatedAt };
}

function withSummary(list: readonly ChatSummary[], summary: ChatSummary): ChatSummary[] {
  return sortChats([...list.filter((c) => c.id !== summary.id), summaryOf(summary)]);
}

export const createChatsSlice: SliceCreator<ChatsSlice> = (set) => ({
  chatList: [],
  chatListLoaded: false,
  chats: {},
  chatLoad: {},

  setChatList: (list) => set({ chatList: sortChats(list.map(summaryOf)), chatListLoaded: true }),
  upsertChatSummary: (summary) =>
    set((s) => {
      const chat = s.chats[summary.id];
      // A summary that carries the engine (a whole Chat) moves the chat here too, as in the window that moved it.
      const engine = 'engine' in summary ? (summary as Partial<Chat>).engine : undefined;
      return {
        chatList: withSummary(s.chatList, summary),
        chats: chat ? { ...s.chats, [summary.id]: { ...chat, title: summary.title, updatedAt: summary.updatedAt, ...(engine !== undefined ? { engine } : {}) } } : s.chats,
      };
    }),
  removeChat: (chatId) =>
    set((s) => {
      const { [chatId]: _chat, ...chats } = s.chats;
      const { [chatId]: _load, ...chatLoad } = s.chatLoad;
      const { [chatId]: _messages, ...messages } = s.messages;
      return { chatList: s.chatList.filter((c) => c.id !== chatId), chats, chatLoad, messages };
    }),
  removeChatDetail: (chatId) =>
    set((s) => {
      const { [chatId]: _chat, ...chats } = s.chats;
      const { [chatId]: _load, ...chatLoad } = s.chatLoad;
      const { [chatId]: _messages, ...messages } = s.messages;
      return { chats, chatLoad, messages };
    }),
  setChat: (chat) => set((s) => ({ chats: { ...s.chats, [chat.id]: chat }, chatList: withSummary(s.chatList, chat) })),
  setChatLoad: (chatId, load) => set((s) => ({ chatLoad: { ...s.chatLoad, [chatId]: load } })),
  setActiveLeaf: (chatId, leafId) =>
    set((s) => {
      const chat = s.chats[chatId];
      if (!chat || chat.activeLeafId === leafId) return {};
      return { chats: { ...s.chats, [chatId]: { ...chat, activeLeafId: leafId } } };
    }),
});
