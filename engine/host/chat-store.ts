/**
 * Chats and their message trees in SQLite. Synchronous (node:sqlite's DatabaseSync): every
 * statement is short, and a synchronous store cannot interleave two writers of one chat.
 */
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { overflowPolicies, type CacheTurn, type Chat, type ChatEngineRef, type ChatSummary, type HearthError, type Message, type MessageStats, type MessageStatus, type OverflowPolicy, type Role, type Sampling } from '../contract/index.ts';
import { durably, isDatabaseLocked, transaction, withoutWaiting } from './db.ts';

/** The title of a chat until its first user message names it. */
export const placeholderTitle = 'New chat';
const autoTitleChars = 40;

interface ChatRow {
  id: string;
  title: string;
  title_pending: number;
  system_prompt: string;
  sampling: string;
  active_leaf_id: string | null;
  overflow_policy: string | null;
  engine_id: string | null;
  engine_model: string | null;
  created_at: number;
  updated_at: number;
}

interface MessageRow {
  id: string;
  chat_id: string;
  parent_id: string | null;
  role: Role;
  content: string;
  status: MessageStatus;
  error: string | null;
  stats: string | null;
  created_at: number;
}

/** A new id, valid for the contract's idSchema. */
export function newId(): string {
  return randomUUID();
}

/** "Hello there, how do…" from the first user message: one line, at most ~40 characters. */
export function titleFrom(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  if (line.length <= autoTitleChars) return line || placeholderTitle;
  const cut = line.slice(0, autoTitleChars);
  const atWord = cut.lastIndexOf(' ');
  return `${(atWord > autoTitleChars / 2 ? cut.slice(0, atWord) : cut).trimEnd()}…`;
}

function toChat(row: ChatRow): Chat {
  return {
    id: row.id,
    title: row.title,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    systemPrompt: row.system_prompt,
    sampling: JSON.parse(row.sampling) as Sampling,
    activeLeafId: row.active_leaf_id,
    // A value this build does not know (written by another version) follows the model's.
    overflowPolicy: (overflowPolicies as readonly string[]).includes(row.overflow_policy ?? '') ? (row.overflow_policy as OverflowPolicy) : null,
    engine: row.engine_id !== null && row.engine_model !== null ? { engineId: row.engine_id, model: row.engine_model } : null,
  };
}

function toMessage(row: MessageRow): Message {
  const message: Message = {
    id: row.id,
    chatId: row.chat_id,
    parentId: row.parent_id,
    role: row.role,
    content: row.content,
    status: row.status,
    createdAt: row.created_at,
  };
  const extra: { error?: HearthError; stats?: MessageStats } = {};
  if (row.error !== null) extra.error = JSON.parse(row.error) as HearthError;
  if (row.stats !== null) extra.stats = JSON.parse(row.stats) as MessageStats;
  return { ...message, ...extra };
}

/** What a turn inserts: an optional user message, then the assistant placeholder under it. */
export interface TurnInput {
  readonly chatId: string;
  /** The new user message (send, edit); absent for regenerate. */
  readonly user?: { readonly parentId: string | null; readonly text: string };
  /** The assistant's parent when there is no new user message (regenerate). */
  readonly assistantParentId?: string | null;
}

export interface Turn {
  readonly chat: Chat;
  readonly userMessage?: Message;
  readonly assistantMessage: Message;
}

/** How a streaming message ended. */
export interface Finish {
  readonly status: Exclude<MessageStatus, 'streaming'>;
  readonly content: string;
  readonly error?: HearthError;
  readonly stats?: MessageStats;
}

/** How often a reply's end that a locked database deferred is tried again. */
const pendingRetryMs = 1000;

export class ChatStore {
  readonly #db: DatabaseSync;
  /**
   * Replies' ends another process's lock kept from being written: every read shows
   * them, and they are written as soon as the lock is gone (`flushPending`).
   */
  readonly #pending = new Map<string, Finish>();
  #retry: NodeJS.Timeout | null = null;
  readonly #onError: (error: unknown) => void;

  /** `onError`: where a deferred write that fails for another reason than a lock is reported. */
  constructor(db: DatabaseSync, options: { onError?: (error: unknown) => void } = {}) {
    this.#db = db;
    this.#onError = options.onError ?? ((error) => console.error('Hearth: a deferred reply could not be saved:', error));
  }

  /** A message as stored, with its deferred end applied. */
  #current(message: Message): Message {
    const finish = this.#pending.get(message.id);
    if (!finish) return message;
    const { error: _error, stats: _stats, ...rest } = message;
    return { ...rest, status: finish.status, content: finish.content, ...(finish.error ? { error: finish.error } : {}), ...(finish.stats ? { stats: finish.stats } : {}) };
  }

  createChat(input: { title?: string | undefined; systemPrompt: string; sampling: Sampling; engine?: ChatEngineRef | null | undefined }): Chat {
    const now = Date.now();
    const title = input.title?.trim() ?? '';
    const row: ChatRow = {
      id: newId(),
      title: title || placeholderTitle,
      title_pending: title ? 0 : 1,
      system_prompt: input.systemPrompt,
      sampling: JSON.stringify(input.sampling),
      active_leaf_id: null,
      overflow_policy: null,
      engine_id: input.engine?.engineId ?? null,
      engine_model: input.engine?.model ?? null,
      created_at: now,
      updated_at: now,
    };
    this.#db
      .prepare(
        `INSERT INTO chats (id, title, title_pending, system_prompt, sampling, active_leaf_id, overflow_policy, engine_id, engine_model, created_at, updated_at)
         VALUES (:id, :title, :title_pending, :system_prompt, :sampling, :active_leaf_id, :overflow_policy, :engine_id, :engine_model, :created_at, :updated_at)`,
      )
      .run({ ...row });
    return toChat(row);
  }

  /** Most recently updated first. */
  listChats(): ChatSummary[] {
    const rows = this.#db
      .prepare('SELECT id, title, created_at, updated_at FROM chats ORDER BY updated_at DESC, rowid DESC')
      .all() as unknown as Pick<ChatRow, 'id' | 'title' | 'created_at' | 'updated_at'>[];
    return rows.map((r) => ({ id: r.id, title: r.title, createdAt: r.created_at, updatedAt: r.updated_at }));
  }

  getChat(chatId: string): Chat | undefined {
    const row = this.#db.prepare('SELECT * FROM chats WHERE id = ?').get(chatId) as ChatRow | undefined;
    return row && toChat(row);
  }

  renameChat(chatId: string, title: string): Chat | undefined {
    this.#db.prepare('UPDATE chats SET title = ?, title_pending = 0, updated_at = ? WHERE id = ?').run(title, Date.now(), chatId);
    return this.getChat(chatId);
  }

  /** `overflowPolicy`: undefined keeps it, null follows the model's again. */
  configureChat(chatId: string, patch: { systemPrompt?: string | undefined; sampling?: Partial<Sampling> | undefined; overflowPolicy?: OverflowPolicy | null | undefined }): Chat | undefined {
    return transaction(this.#db, () => {
      const chat = this.getChat(chatId);
      if (!chat) return undefined;
      const systemPrompt = patch.systemPrompt ?? chat.systemPrompt;
      const sampling: Sampling = { ...chat.sampling, ...definedOnly(patch.sampling ?? {}) };
      const overflowPolicy = patch.overflowPolicy === undefined ? chat.overflowPolicy : patch.overflowPolicy;
      this.#db
        .prepare('UPDATE chats SET system_prompt = ?, sampling = ?, overflow_policy = ?, updated_at = ? WHERE id = ?')
        .run(systemPrompt, JSON.stringify(sampling), overflowPolicy, Date.now(), chatId);
      return this.getChat(chatId);
    });
  }

  /** Where the chat's next replies run (null: this computer). */
  moveChat(chatId: string, engine: ChatEngineRef | null): Chat | undefined {
    this.#db.prepare('UPDATE chats SET engine_id = ?, engine_model = ?, updated_at = ? WHERE id = ?').run(engine?.engineId ?? null, engine?.model ?? null, Date.now(), chatId);
    return this.getChat(chatId);
  }

  /** How many chats run on the engine `engineId`. */
  chatsOnEngine(engineId: string): number {
    return Number((this.#db.prepare('SELECT count(*) AS n FROM chats WHERE engine_id = ?').get(engineId) as { n: number }).n);
  }

  /** Deletes the chat and, by cascade, all its messages. */
  deleteChat(chatId: string): boolean {
    return Number(this.#db.prepare('DELETE FROM chats WHERE id = ?').run(chatId).changes) > 0;
  }

  /** Every message of every branch, oldest first. */
  getMessages(chatId: string): Message[] {
    const rows = this.#db
      .prepare('SELECT * FROM messages WHERE chat_id = ? ORDER BY created_at, rowid')
      .all(chatId) as unknown as MessageRow[];
    return rows.map((row) => this.#current(toMessage(row)));
  }

  getMessage(messageId: string): Message | undefined {
    const row = this.#db.prepare('SELECT * FROM messages WHERE id = ?').get(messageId) as MessageRow | undefined;
    return row && this.#current(toMessage(row));
  }

  /**
   * Inserts a turn (user message if any, plus the streaming assistant placeholder), makes the
   * placeholder the active leaf and names a chat on its first user message, in one durable
   * transaction: when this returns, the user message survives a kill or a power cut.
   */
  insertTurn(input: TurnInput): Turn {
    return durably(this.#db, () => {
      const now = Date.now();
      const insert = this.#db.prepare(
        `INSERT INTO messages (id, chat_id, parent_id, role, content, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      );
      let userMessage: Message | undefined;
      let assistantParent = input.assistantParentId ?? null;
      if (input.user) {
        const id = newId();
        insert.run(id, input.chatId, input.user.parentId, 'user', input.user.text, 'complete', now);
        userMessage = this.getMessage(id);
        assistantParent = id;
        this.#db
          .prepare('UPDATE chats SET title = ?, title_pending = 0 WHERE id = ? AND title_pending = 1')
          .run(titleFrom(input.user.text), input.chatId);
      }
      const assistantId = newId();
      insert.run(assistantId, input.chatId, assistantParent, 'assistant', '', 'streaming', now);
      this.#db.prepare('UPDATE chats SET active_leaf_id = ?, updated_at = ? WHERE id = ?').run(assistantId, now, input.chatId);
      const assistantMessage = this.getMessage(assistantId) as Message;
      const chat = this.getChat(input.chatId) as Chat;
      return userMessage ? { chat, userMessage, assistantMessage } : { chat, assistantMessage };
    });
  }

  /**
   * Saves the text streamed so far (not fsynced: see db.ts). Best effort: while another process
   * holds the database's write lock it is skipped at once instead of blocking the host for the
   * busy timeout on every flush (the next flush or the finish writes the whole text). Returns
   * whether it was written.
   */
  saveContent(messageId: string, content: string): boolean {
    try {
      withoutWaiting(this.#db, () => this.#db.prepare("UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'").run(content, messageId));
      return true;
    } catch (error) {
      if (isDatabaseLocked(error)) return false;
      throw error;
    }
  }

  /**
   * Ends a streaming message, durably. Returns the message, or undefined if it is gone (chat
   * deleted). While another process holds the database's write lock, the end is kept in memory
   * at once (every read shows it; the host is not blocked for the busy timeout) and written as
   * soon as the lock is gone, so a reply is never left streaming nor its last words lost while
   * Hearth runs; a crash before then leaves its last flushed text, marked incomplete at the next start.
   */
  finishMessage(messageId: string, finish: Finish): Message | undefined {
    try {
      const message = withoutWaiting(this.#db, () => this.#writeFinish(messageId, finish));
      this.#pending.delete(messageId);
      return message;
    } catch (error) {
      if (!isDatabaseLocked(error)) throw error;
      this.#pending.set(messageId, finish);
      this.#scheduleRetry();
      return this.getMessage(messageId);
    }
  }

  /** Replies' ends waiting for a lock to go (see `finishMessage`). */
  get pendingFinishes(): number {
    return this.#pending.size;
  }

  /**
   * Writes the replies' ends a locked database deferred, without waiting for the lock; returns how
   * many are still waiting (a retry is scheduled for them). Call it before closing the database.
   */
  flushPending(): number {
    for (const [id, finish] of [...this.#pending]) {
      if (!this.#db.isOpen) return this.#pending.size;
      try {
        withoutWaiting(this.#db, () => this.#writeFinish(id, finish));
        this.#pending.delete(id);
      } catch (error) {
        if (isDatabaseLocked(error)) break;
        // Not a lock: retrying will not help. Its last flushed text stays, marked incomplete at the next start.
        this.#pending.delete(id);
        this.#onError(error);
      }
    }
    if (this.#pending.size > 0) this.#scheduleRetry();
    return this.#pending.size;
  }

  #scheduleRetry(): void {
    if (this.#retry !== null) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#db.isOpen) this.flushPending();
    }, pendingRetryMs);
    this.#retry.unref();
  }

  #writeFinish(messageId: string, finish: Finish): Message | undefined {
    return durably(this.#db, () => {
      const result = this.#db
        .prepare('UPDATE messages SET status = ?, content = ?, error = ?, stats = ? WHERE id = ?')
        .run(
          finish.status,
          finish.content,
          finish.error ? JSON.stringify(finish.error) : null,
          finish.stats ? JSON.stringify(finish.stats) : null,
          messageId,
        );
      if (Number(result.changes) === 0) return undefined;
      this.#db
        .prepare('UPDATE chats SET updated_at = ? WHERE id = (SELECT chat_id FROM messages WHERE id = ?)')
        .run(Date.now(), messageId);
      return this.getMessage(messageId);
    });
  }

  /**
   * Makes a finished reply `streaming` again to write more of it (`chats.continue`): its text
   * stays, its error goes. The chat's updated time moves. Returns the message, or undefined when
   * it is gone or already streaming.
   */
  reopenMessage(messageId: string): Message | undefined {
    // Its end is still waiting for the database: that text is not written yet.
    if (this.#pending.has(messageId)) return undefined;
    return durably(this.#db, () => {
      const result = this.#db
        .prepare("UPDATE messages SET status = 'streaming', error = NULL WHERE id = ? AND role = 'assistant' AND status <> 'streaming'")
        .run(messageId);
      if (Number(result.changes) === 0) return undefined;
      this.#db.prepare('UPDATE chats SET updated_at = ? WHERE id = (SELECT chat_id FROM messages WHERE id = ?)').run(Date.now(), messageId);
      return this.getMessage(messageId);
    });
  }

  /** Marks replies the previous host left streaming (it died mid-reply) as incomplete. */
  markInterrupted(): number {
    return Number(this.#db.prepare("UPDATE messages SET status = 'incomplete' WHERE status = 'streaming'").run().changes);
  }

  /**
   * The last `limit` replies that finished with stats, oldest first: the Cache view's timeline
   * at start, so it survives an app restart. A turn's `at` is its message's creation
   * time, the closest the database keeps to when it ran.
   */
  recentTurns(limit: number): CacheTurn[] {
    const rows = this.#db
      .prepare(
        `SELECT id, chat_id, stats, created_at FROM messages
         WHERE role = 'assistant' AND stats IS NOT NULL
         ORDER BY created_at DESC, rowid DESC LIMIT ?`,
      )
      .all(limit) as unknown as Pick<MessageRow, 'id' | 'chat_id' | 'stats' | 'created_at'>[];
    const turns: CacheTurn[] = [];
    for (const row of rows.reverse()) {
      try {
        turns.push({ at: row.created_at, chatId: row.chat_id, messageId: row.id, stats: JSON.parse(row.stats ?? 'null') as MessageStats });
      } catch {
        // A hand-edited row is left out of the timeline rather than breaking start.
      }
    }
    return turns.filter((turn) => turn.stats !== null && typeof turn.stats === 'object');
  }

  /** The messages from the root to `leafId`, oldest first; empty for a null leaf. */
  pathTo(leafId: string | null): Message[] {
    if (leafId === null) return [];
    const rows = this.#db
      .prepare(
        `WITH RECURSIVE up(id, depth) AS (
           SELECT id, 0 FROM messages WHERE id = ?
           UNION ALL
           SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL
         )
         SELECT messages.* FROM up JOIN messages ON messages.id = up.id ORDER BY up.depth DESC`,
      )
      .all(leafId) as unknown as MessageRow[];
    return rows.map((row) => this.#current(toMessage(row)));
  }

  /** The chat's active branch, root first. */
  activePath(chatId: string): Message[] {
    return this.pathTo(this.getChat(chatId)?.activeLeafId ?? null);
  }

  /** The most recently created leaf in the subtree of `messageId` (itself if it has no children). */
  latestLeafUnder(messageId: string): string | undefined {
    const row = this.#db
      .prepare(
        `WITH RECURSIVE down(id) AS (
           SELECT id FROM messages WHERE id = ?
           UNION ALL
           SELECT m.id FROM messages m JOIN down ON m.parent_id = down.id
         )
         SELECT m.id FROM down JOIN messages m ON m.id = down.id
         WHERE NOT EXISTS (SELECT 1 FROM messages c WHERE c.parent_id = m.id)
         ORDER BY m.created_at DESC, m.rowid DESC LIMIT 1`,
      )
      .get(messageId) as { id: string } | undefined;
    return row?.id;
  }

  /** Shows the branch through `messageId`: its most recent leaf becomes the active leaf. */
  switchBranch(chatId: string, messageId: string): Chat | undefined {
    const leaf = this.latestLeafUnder(messageId);
    if (leaf === undefined) return undefined;
    this.#db.prepare('UPDATE chats SET active_leaf_id = ? WHERE id = ?').run(leaf, chatId);
    return this.getChat(chatId);
  }
}

/** Drops keys whose value is undefined, so a partial patch never overwrites with undefined. */
export function definedOnly<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
}
