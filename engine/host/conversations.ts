/**
 * The `chats.*` calls. Sending checks everything first, commits the user message and the
 * assistant placeholder in one durable transaction, and only then asks the engine: a message
 * the user sent is never lost to a crash, and a refused send saves nothing.
 */
import { err, ok, type CallInput, type CallOutputs, type Chat, type HearthEvent, type Message, type Result } from '../contract/index.ts';
import { buildPrompt, type Generations } from './generations.ts';
import type { ModelManager } from './model-manager.ts';
import type { ChatStore, Turn } from './chat-store.ts';
import { engineRemovedError } from './remote/engines.ts';
import type { ChatEngineRef, RemoteEngine, Settings } from '../contract/index.ts';

export interface ConversationsDeps {
  readonly store: ChatStore;
  readonly generations: Generations;
  readonly model: Pick<ModelManager, 'ready' | 'notReadyError'>;
  readonly settings: () => Settings;
  readonly emit: (event: HearthEvent) => void;
  /** The remote engines a chat may run on (remote/engines.ts). */
  readonly engines: { get(engineId: string): RemoteEngine | undefined; has(engineId: string): boolean };
}

type Out<N extends keyof CallOutputs> = Promise<Result<CallOutputs[N]>>;

function notFound(what: string, id: string): Result<never> {
  return err('NOT_FOUND', `There is no ${what} with id ${id}.`);
}

export class Conversations {
  readonly #deps: ConversationsDeps;

  constructor(deps: ConversationsDeps) {
    this.#deps = deps;
  }

  async list(): Out<'chats.list'> {
    return ok({ chats: this.#deps.store.listChats() });
  }

  async create(input: CallInput<'chats.create'>): Out<'chats.create'> {
    const settings = this.#deps.settings();
    if (input.engine) {
      const usable = this.#checkEngine(input.engine);
      if (!usable.ok) return usable;
    }
    const chat = this.#deps.store.createChat({
      title: input.title,
      systemPrompt: input.systemPrompt ?? settings.defaultSystemPrompt,
      sampling: settings.defaultSampling,
      engine: input.engine ?? null,
    });
    this.#changed(chat);
    return ok(chat);
  }

  async get(input: CallInput<'chats.get'>): Out<'chats.get'> {
    const chat = this.#deps.store.getChat(input.chatId);
    if (!chat) return notFound('chat', input.chatId);
    return ok({ chat, messages: this.#deps.store.getMessages(chat.id) });
  }

  async rename(input: CallInput<'chats.rename'>): Out<'chats.rename'> {
    const chat = this.#deps.store.renameChat(input.chatId, input.title.trim());
    if (!chat) return notFound('chat', input.chatId);
    this.#changed(chat);
    return ok(chat);
  }

  /** Deletes a chat and all its messages; a reply in progress is stopped first. */
  async delete(input: CallInput<'chats.delete'>): Out<'chats.delete'> {
    this.#deps.generations.detach(input.chatId);
    const deleted = this.#deps.store.deleteChat(input.chatId);
    if (deleted) this.#deps.emit({ type: 'chats.changed', payload: { chatId: input.chatId, chat: null } });
    return ok({ deleted });
  }

  /** Changes the system prompt, sampling and overflow policy; a reply in progress keeps the old ones. */
  async configure(input: CallInput<'chats.configure'>): Out<'chats.configure'> {
    const chat = this.#deps.store.configureChat(input.chatId, { systemPrompt: input.systemPrompt, sampling: input.sampling, overflowPolicy: input.overflowPolicy });
    if (!chat) return notFound('chat', input.chatId);
    this.#changed(chat);
    return ok(chat);
  }

  async send(input: CallInput<'chats.send'>): Out<'chats.send'> {
    const chat = this.#checkReady(input.chatId);
    if (!chat.ok) return chat;
    const parentId = input.parentId === undefined ? chat.value.activeLeafId : input.parentId;
    if (parentId !== null && !this.#messageOf(chat.value.id, parentId)) return notFound('message', parentId);
    const turn = this.#deps.store.insertTurn({ chatId: chat.value.id, user: { parentId, text: input.text } });
    return ok(this.#begin(turn) as { userMessage: Message; assistantMessage: Message });
  }

  /** A new user message beside `messageId`, with the same parent, and its reply. */
  async edit(input: CallInput<'chats.edit'>): Out<'chats.edit'> {
    const chat = this.#checkReady(input.chatId);
    if (!chat.ok) return chat;
    const original = this.#messageOf(chat.value.id, input.messageId);
    if (!original) return notFound('message', input.messageId);
    if (original.role !== 'user') return err('INVALID_INPUT', 'Only your own messages can be edited.');
    const turn = this.#deps.store.insertTurn({ chatId: chat.value.id, user: { parentId: original.parentId, text: input.text } });
    return ok(this.#begin(turn) as { userMessage: Message; assistantMessage: Message });
  }

  /** A new reply beside the assistant message `messageId`. */
  async regenerate(input: CallInput<'chats.regenerate'>): Out<'chats.regenerate'> {
    const chat = this.#checkReady(input.chatId);
    if (!chat.ok) return chat;
    const original = this.#messageOf(chat.value.id, input.messageId);
    if (!original) return notFound('message', input.messageId);
    if (original.role !== 'assistant') return err('INVALID_INPUT', 'Only replies can be regenerated.');
    const turn = this.#deps.store.insertTurn({ chatId: chat.value.id, assistantParentId: original.parentId });
    return ok({ assistantMessage: this.#begin(turn).assistantMessage });
  }

  /** More of the reply `messageId`, the active branch's last message, in the same message. */
  async continue(input: CallInput<'chats.continue'>): Out<'chats.continue'> {
    const chat = this.#checkReady(input.chatId);
    if (!chat.ok) return chat;
    const original = this.#messageOf(chat.value.id, input.messageId);
    if (!original) return notFound('message', input.messageId);
    if (original.role !== 'assistant') return err('INVALID_INPUT', 'Only replies can be continued.');
    if (chat.value.activeLeafId !== original.id) return err('INVALID_INPUT', 'Only the last reply of the branch you are looking at can be continued.');
    if (original.content.trim() === '') return err('INVALID_INPUT', 'This reply has no text to continue.', 'Regenerate it instead.');
    if (chat.value.engine !== null) return err('NOT_SUPPORTED', "Continuing a reply works on this computer's engine only.", 'Regenerate the reply instead, or move the chat to this computer.');
    const reopened = this.#deps.store.reopenMessage(original.id);
    if (!reopened) return err('BUSY', 'This reply is still being written.', 'Wait for it to finish, or stop it.');
    this.#deps.emit({ type: 'message.updated', payload: { message: reopened } });
    const path = this.#deps.store.pathTo(original.parentId);
    const prompt = buildPrompt(chat.value.systemPrompt, [...path, reopened]);
    this.#deps.generations.start(chat.value, reopened, prompt, { text: original.content, stats: original.stats });
    return ok({ assistantMessage: reopened });
  }

  /** Runs the chat's next replies on another engine or model; the next reply reads the history there. */
  async move(input: CallInput<'chats.move'>): Out<'chats.move'> {
    const chat = this.#deps.store.getChat(input.chatId);
    if (!chat) return notFound('chat', input.chatId);
    if (this.#deps.generations.isStreaming(chat.id)) return err('BUSY', 'This chat is writing a reply.', 'Wait for it to finish, or stop it, then move the chat.');
    if (input.engine !== null) {
      const usable = this.#checkEngine(input.engine);
      if (!usable.ok) return usable;
    }
    const moved = this.#deps.store.moveChat(chat.id, input.engine);
    if (!moved) return notFound('chat', input.chatId);
    this.#changed(moved);
    return ok(moved);
  }

  /** An engine that exists and, when its last check listed models, serves this one. */
  #checkEngine(ref: ChatEngineRef): Result<RemoteEngine> {
    const engine = this.#deps.engines.get(ref.engineId);
    if (!engine) return err('NOT_FOUND', 'There is no such engine: it may have been removed.', 'Pick another in the chat\'s model picker.');
    const { models, state } = engine.status;
    if (state === 'online' && !models.some((m) => m.id === ref.model)) {
      return err('NOT_FOUND', `${engine.name} does not serve a model named ${ref.model}.`, 'Check the engine again in Settings → Engines, or pick one of its models.');
    }
    return ok(engine);
  }

  async switchBranch(input: CallInput<'chats.switchBranch'>): Out<'chats.switchBranch'> {
    const chat = this.#deps.store.getChat(input.chatId);
    if (!chat) return notFound('chat', input.chatId);
    if (!this.#messageOf(chat.id, input.messageId)) return notFound('message', input.messageId);
    const switched = this.#deps.store.switchBranch(chat.id, input.messageId);
    return switched ? ok(switched) : notFound('message', input.messageId);
  }

  /** Stops the chat's reply; resolves once the stopped message is saved. */
  async stop(input: CallInput<'chats.stop'>): Out<'chats.stop'> {
    if (!this.#deps.store.getChat(input.chatId)) return notFound('chat', input.chatId);
    return ok({ stopped: await this.#deps.generations.stop(input.chatId) });
  }

  #checkReady(chatId: string): Result<Chat> {
    const chat = this.#deps.store.getChat(chatId);
    if (!chat) return notFound('chat', chatId);
    if (chat.engine !== null) {
      // Nothing is saved for a send that cannot go anywhere.
      if (!this.#deps.engines.has(chat.engine.engineId)) return { ok: false, error: engineRemovedError() };
    } else if (!this.#deps.model.ready) return { ok: false, error: this.#deps.model.notReadyError() };
    if (this.#deps.generations.isStreaming(chatId)) {
      return err('BUSY', 'This chat is already writing a reply.', 'Wait for it to finish, or stop it.');
    }
    return ok(chat);
  }

  #messageOf(chatId: string, messageId: string): Message | undefined {
    const message = this.#deps.store.getMessage(messageId);
    return message?.chatId === chatId ? message : undefined;
  }

  /**
   * After the commit: announces the chat and the new messages (so that every window, and a
   * renderer whose call response is slower than the event socket, knows them before the first
   * delta), then starts the reply.
   */
  #begin(turn: Turn): { userMessage?: Message; assistantMessage: Message } {
    this.#changed(turn.chat);
    if (turn.userMessage) this.#deps.emit({ type: 'message.updated', payload: { message: turn.userMessage } });
    this.#deps.emit({ type: 'message.updated', payload: { message: turn.assistantMessage } });
    const prompt = buildPrompt(turn.chat.systemPrompt, this.#deps.store.pathTo(turn.assistantMessage.parentId));
    this.#deps.generations.start(turn.chat, turn.assistantMessage, prompt);
    return turn.userMessage ? { userMessage: turn.userMessage, assistantMessage: turn.assistantMessage } : { assistantMessage: turn.assistantMessage };
  }

  #changed(chat: Chat): void {
    const { id, title, createdAt, updatedAt, engine } = chat;
    this.#deps.emit({ type: 'chats.changed', payload: { chatId: id, chat: { id, title, createdAt, updatedAt, engine } } });
  }
}
