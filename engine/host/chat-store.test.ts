import { rmSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { idSchema } from '../contract/index.ts';
import { migrate, openDatabase, schemaVersion, userVersion } from './db.ts';
import { defaultSettings, readSettings, updateSettings } from './settings.ts';
import { ChatStore, placeholderTitle, titleFrom } from './chat-store.ts';
import { tempDir } from '../../test/support/host-fixture.ts';

const sampling = { temperature: 0.7, topP: 0.9, maxTokens: 64 };

let dir: string;
let db: DatabaseSync;
let store: ChatStore;

beforeEach(() => {
  dir = tempDir();
  db = openDatabase(path.join(dir, 'hearth.db'));
  store = new ChatStore(db);
});

afterEach(() => {
  if (db.isOpen) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('migrations', () => {
  it('creates the schema in WAL mode and records its version', () => {
    expect(userVersion(db)).toBe(schemaVersion);
    expect((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode).toBe('wal');
    expect((db.prepare('PRAGMA foreign_keys').get() as { foreign_keys: number }).foreign_keys).toBe(1);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(['chats', 'messages', 'settings']));
  });

  it('reopening applies nothing twice and keeps the data', () => {
    store.createChat({ title: 'kept', systemPrompt: '', sampling });
    db.close();
    db = openDatabase(path.join(dir, 'hearth.db'));
    expect(userVersion(db)).toBe(schemaVersion);
    expect(new ChatStore(db).listChats().map((c) => c.title)).toEqual(['kept']);
  });

  it('applies only new migrations, each atomically', () => {
    const list = ['CREATE TABLE a (x)', 'CREATE TABLE b (x)'];
    const mem = new DatabaseSync(':memory:');
    migrate(mem, list.slice(0, 1));
    expect(userVersion(mem)).toBe(1);
    migrate(mem, list);
    expect(userVersion(mem)).toBe(2);
    // A failing migration leaves neither its half-done changes nor a bumped version.
    expect(() => migrate(mem, [...list, 'CREATE TABLE c (x); CREATE TABLE a (x)'])).toThrow();
    expect(userVersion(mem)).toBe(2);
    expect(mem.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'c'").get()).toEqual({ n: 0 });
  });

  it('refuses a database from a newer build', () => {
    db.exec(`PRAGMA user_version = ${schemaVersion + 1}`);
    db.close();
    expect(() => openDatabase(path.join(dir, 'hearth.db'))).toThrow(/newer Hearth/);
  });
});

describe('chats and the message tree', () => {
  it('makes contract-valid ids and titles a chat from its first user message', () => {
    const chat = store.createChat({ systemPrompt: 'sys', sampling });
    expect(idSchema.safeParse(chat.id).success).toBe(true);
    expect(chat.title).toBe(placeholderTitle);
    const turn = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'How do I bake bread at home with a cast iron pot?' } });
    expect(turn.chat.title).toBe(titleFrom('How do I bake bread at home with a cast iron pot?'));
    expect(turn.chat.title.length).toBeLessThanOrEqual(41);
    store.insertTurn({ chatId: chat.id, user: { parentId: turn.assistantMessage.id, text: 'Second' } });
    expect(store.getChat(chat.id)?.title).toBe(turn.chat.title);
  });

  it('keeps an explicit title, and rename sticks', () => {
    const chat = store.createChat({ title: 'Mine', systemPrompt: '', sampling });
    store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'hello' } });
    expect(store.getChat(chat.id)?.title).toBe('Mine');
    expect(store.renameChat(chat.id, 'Renamed')?.title).toBe('Renamed');
    expect(store.renameChat('nope', 'x')).toBeUndefined();
  });

  it('send, regenerate and edit build branches; the active path and switchBranch follow them', () => {
    const chat = store.createChat({ systemPrompt: '', sampling });
    const t1 = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q1' } });
    const a1 = t1.assistantMessage;
    expect(a1).toMatchObject({ role: 'assistant', status: 'streaming', content: '', parentId: t1.userMessage?.id });
    store.finishMessage(a1.id, { status: 'complete', content: 'a1' });
    const t2 = store.insertTurn({ chatId: chat.id, user: { parentId: a1.id, text: 'q2' } });
    store.finishMessage(t2.assistantMessage.id, { status: 'complete', content: 'a2' });
    expect(store.activePath(chat.id).map((m) => m.content)).toEqual(['q1', 'a1', 'q2', 'a2']);

    // regenerate a1: a sibling reply under q1
    const regen = store.insertTurn({ chatId: chat.id, assistantParentId: t1.userMessage?.id ?? null });
    store.finishMessage(regen.assistantMessage.id, { status: 'complete', content: 'a1b' });
    expect(regen.assistantMessage.parentId).toBe(t1.userMessage?.id);
    expect(store.activePath(chat.id).map((m) => m.content)).toEqual(['q1', 'a1b']);

    // edit q1: a sibling user message at the root
    const edit = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q1 edited' } });
    store.finishMessage(edit.assistantMessage.id, { status: 'complete', content: 'a1c' });
    expect(store.activePath(chat.id).map((m) => m.content)).toEqual(['q1 edited', 'a1c']);
    expect(store.getMessages(chat.id)).toHaveLength(7);

    // Back to the first q1: its most recent leaf is the regenerated reply a1b.
    expect(store.switchBranch(chat.id, t1.userMessage?.id ?? '')?.activeLeafId).toBe(regen.assistantMessage.id);
    // The first reply's subtree ends at a2.
    expect(store.switchBranch(chat.id, a1.id)?.activeLeafId).toBe(t2.assistantMessage.id);
    expect(store.activePath(chat.id).map((m) => m.content)).toEqual(['q1', 'a1', 'q2', 'a2']);
    expect(store.switchBranch(chat.id, 'missing')).toBeUndefined();
  });

  it('saves streamed text, finishes durably with error and stats, and marks leftovers incomplete', () => {
    const chat = store.createChat({ systemPrompt: '', sampling });
    const t = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q' } });
    store.saveContent(t.assistantMessage.id, 'partial');
    expect(store.getMessage(t.assistantMessage.id)?.content).toBe('partial');
    expect(store.markInterrupted()).toBe(1);
    expect(store.getMessage(t.assistantMessage.id)).toMatchObject({ status: 'incomplete', content: 'partial' });
    // Once finished, a late flush does not overwrite.
    store.saveContent(t.assistantMessage.id, 'late');
    expect(store.getMessage(t.assistantMessage.id)?.content).toBe('partial');

    const t2 = store.insertTurn({ chatId: chat.id, user: { parentId: t.assistantMessage.id, text: 'q2' } });
    const stats = { tokensReused: 1, tokensRestored: 0, tokensPrefilled: 2, tokensGenerated: 3, ttftMs: 4, cacheSource: 'none' as const };
    const done = store.finishMessage(t2.assistantMessage.id, { status: 'error', content: '', error: { code: 'CONTEXT_OVERFLOW', message: 'too long' }, stats });
    expect(done).toMatchObject({ status: 'error', error: { code: 'CONTEXT_OVERFLOW' }, stats });
    expect(store.finishMessage('missing', { status: 'complete', content: '' })).toBeUndefined();
  });

  it('lists recently updated first and deletes with all messages', async () => {
    const a = store.createChat({ title: 'a', systemPrompt: '', sampling });
    await new Promise((r) => setTimeout(r, 5));
    const b = store.createChat({ title: 'b', systemPrompt: '', sampling });
    expect(store.listChats().map((c) => c.id)).toEqual([b.id, a.id]);
    await new Promise((r) => setTimeout(r, 5));
    store.insertTurn({ chatId: a.id, user: { parentId: null, text: 'bump' } });
    expect(store.listChats().map((c) => c.id)).toEqual([a.id, b.id]);
    expect(store.deleteChat(a.id)).toBe(true);
    expect(store.deleteChat(a.id)).toBe(false);
    expect(db.prepare('SELECT count(*) AS n FROM messages').get()).toEqual({ n: 0 });
  });

  it('configures system prompt and sampling partially', () => {
    const chat = store.createChat({ systemPrompt: 'old', sampling });
    const changed = store.configureChat(chat.id, { sampling: { temperature: 0, maxTokens: undefined } });
    expect(changed).toMatchObject({ systemPrompt: 'old', sampling: { ...sampling, temperature: 0 } });
    expect(store.configureChat(chat.id, { systemPrompt: 'new' })?.systemPrompt).toBe('new');
    expect(store.configureChat('missing', {})).toBeUndefined();
  });
});

describe('recentTurns', () => {
  it('the last N replies with stats, oldest first, from every chat', () => {
    const stats = (n: number) => ({ tokensReused: n, tokensRestored: 0, tokensPrefilled: 1, tokensGenerated: 2, ttftMs: 3, cacheSource: 'memory' as const });
    const a = store.createChat({ systemPrompt: '', sampling });
    const b = store.createChat({ systemPrompt: '', sampling });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const chat = i % 2 === 0 ? a : b;
      const turn = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: `q${i}` } });
      store.finishMessage(turn.assistantMessage.id, { status: i === 3 ? 'stopped' : 'complete', content: `a${i}`, stats: stats(i) });
      ids.push(turn.assistantMessage.id);
    }
    // Without stats (a failed reply, one still streaming) a reply is no turn.
    const failed = store.insertTurn({ chatId: a.id, user: { parentId: null, text: 'fails' } });
    store.finishMessage(failed.assistantMessage.id, { status: 'error', content: '', error: { code: 'INTERNAL', message: 'x' } });
    store.insertTurn({ chatId: b.id, user: { parentId: null, text: 'streams' } });

    const turns = store.recentTurns(3);
    expect(turns.map((t) => t.messageId)).toEqual(ids.slice(1));
    expect(turns.map((t) => t.stats.tokensReused)).toEqual([1, 2, 3]);
    expect(turns[0]).toMatchObject({ chatId: b.id, at: expect.any(Number) });
    expect(store.recentTurns(100)).toHaveLength(4);
  });
});

describe('settings', () => {
  it('reads defaults and merges updates', () => {
    expect(readSettings(db)).toEqual(defaultSettings);
    const updated = updateSettings(db, { threads: 2, defaultSampling: { temperature: 0.1 }, lastModelPath: '/m.gguf' });
    expect(updated).toEqual({ ...defaultSettings, threads: 2, defaultSampling: { ...defaultSettings.defaultSampling, temperature: 0.1 }, lastModelPath: '/m.gguf' });
    expect(updateSettings(db, { defaultSampling: { maxTokens: 5 } }).defaultSampling).toEqual({ temperature: 0.1, topP: 0.9, maxTokens: 5 });
  });

  it('ignores corrupt stored values', () => {
    db.prepare("INSERT INTO settings (key, value) VALUES ('threads', 'not json'), ('theme', '\"purple\"')").run();
    expect(readSettings(db)).toEqual(defaultSettings);
  });

  it('stores the KV compression, auto when none is stored, and reads an unknown one as the default', () => {
    expect(defaultSettings.kvCompression).toBe('auto');
    expect(readSettings(db).kvCompression).toBe('auto');
    expect(updateSettings(db, { kvCompression: 'lossy' }).kvCompression).toBe('lossy');
    expect(readSettings(db).kvCompression).toBe('lossy');
    db.prepare("UPDATE settings SET value = '\"zip\"' WHERE key = 'kvCompression'").run();
    expect(readSettings(db).kvCompression).toBe('auto');
  });

  it("keeps a stored 'lossless' (saved before auto existed) as it is, and stores auto like any other value", () => {
    db.prepare("INSERT INTO settings (key, value) VALUES ('kvCompression', '\"lossless\"')").run();
    expect(readSettings(db).kvCompression).toBe('lossless');
    expect(updateSettings(db, { kvCompression: 'auto' }).kvCompression).toBe('auto');
    expect(readSettings(db).kvCompression).toBe('auto');
    expect(updateSettings(db, { kvCompression: 'off' }).kvCompression).toBe('off');
  });
});

describe('another process holding the database locked', () => {
  /** The store on a connection that waits 100 ms for a lock, and a second connection that holds the write lock. */
  function lockedSetup(): { locked: ChatStore; conn: DatabaseSync; holder: DatabaseSync; raw: (id: string) => { status: string; content: string } } {
    const file = path.join(dir, 'hearth.db');
    const conn = new DatabaseSync(file, { timeout: 100, enableForeignKeyConstraints: true });
    const holder = new DatabaseSync(file, { timeout: 0 });
    const reader = new DatabaseSync(file, { readOnly: true });
    return {
      locked: new ChatStore(conn, { onError: (error) => { throw error; } }),
      conn,
      holder,
      raw: (id) => reader.prepare('SELECT status, content FROM messages WHERE id = ?').get(id) as { status: string; content: string },
    };
  }

  it('skips a streamed-text flush at once instead of waiting for the lock', () => {
    const { locked, conn, holder, raw } = lockedSetup();
    const chat = locked.createChat({ systemPrompt: '', sampling });
    const turn = locked.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q' } });
    holder.exec('BEGIN IMMEDIATE');
    const t0 = performance.now();
    expect(locked.saveContent(turn.assistantMessage.id, 'partial')).toBe(false);
    expect(performance.now() - t0).toBeLessThan(80);
    holder.exec('ROLLBACK');
    expect(locked.saveContent(turn.assistantMessage.id, 'partial')).toBe(true);
    expect(raw(turn.assistantMessage.id).content).toBe('partial');
    // The connection's own busy timeout is back for everything else.
    expect((conn.prepare('PRAGMA busy_timeout').get() as { timeout: number }).timeout).toBe(100);
    holder.close();
    conn.close();
  });

  it("keeps a reply's end in memory while the lock lasts (every read shows it) and writes it once the lock is gone", () => {
    vi.useFakeTimers();
    try {
      const { locked, conn, holder, raw } = lockedSetup();
      const chat = locked.createChat({ systemPrompt: '', sampling });
      const turn = locked.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q' } });
      const id = turn.assistantMessage.id;
      holder.exec('BEGIN IMMEDIATE');
      const finished = locked.finishMessage(id, { status: 'complete', content: 'the whole reply' });
      expect(finished).toMatchObject({ id, status: 'complete', content: 'the whole reply' });
      expect(locked.pendingFinishes).toBe(1);
      expect(locked.getMessages(chat.id).find((m) => m.id === id)).toMatchObject({ status: 'complete', content: 'the whole reply' });
      expect(locked.activePath(chat.id).at(-1)).toMatchObject({ status: 'complete', content: 'the whole reply' });
      expect(raw(id)).toEqual({ status: 'streaming', content: '' });

      // Still locked at the retry: it waits again, without blocking.
      vi.advanceTimersByTime(1000);
      expect(locked.pendingFinishes).toBe(1);
      holder.exec('ROLLBACK');
      vi.advanceTimersByTime(1000);
      expect(locked.pendingFinishes).toBe(0);
      expect(raw(id)).toEqual({ status: 'complete', content: 'the whole reply' });
      holder.close();
      conn.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('flushPending writes what waits once the lock is gone, and drops a reply whose chat was deleted', () => {
    const { locked, conn, holder, raw } = lockedSetup();
    const chat = locked.createChat({ systemPrompt: '', sampling });
    const a = locked.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'q' } }).assistantMessage.id;
    const other = locked.createChat({ systemPrompt: '', sampling });
    const b = locked.insertTurn({ chatId: other.id, user: { parentId: null, text: 'q' } }).assistantMessage.id;
    holder.exec('BEGIN IMMEDIATE');
    locked.finishMessage(a, { status: 'stopped', content: 'cut' });
    locked.finishMessage(b, { status: 'complete', content: 'gone soon' });
    expect(locked.flushPending()).toBe(2);
    holder.exec('ROLLBACK');
    locked.deleteChat(other.id);
    expect(locked.flushPending()).toBe(0);
    expect(raw(a)).toEqual({ status: 'stopped', content: 'cut' });
    holder.close();
    conn.close();
  });
});
