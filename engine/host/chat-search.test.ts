import { rmSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from './db.ts';
import { ChatStore } from './chat-store.ts';
import { maxSearchHits, searchChats, searchPattern, snippetAround, snippetChars } from './chat-search.ts';
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

/** A chat titled `title` with one exchange per pair, each reply complete; its updated time set to `updatedAt`. */
function chatWith(title: string, exchanges: readonly (readonly [string, string])[], updatedAt: number): { chatId: string; messageIds: string[] } {
  const chat = store.createChat({ title, systemPrompt: '', sampling });
  let parentId: string | null = null;
  const messageIds: string[] = [];
  for (const [user, reply] of exchanges) {
    const turn = store.insertTurn({ chatId: chat.id, user: { parentId, text: user } });
    store.finishMessage(turn.assistantMessage.id, { status: 'complete', content: reply });
    messageIds.push(turn.userMessage?.id ?? '', turn.assistantMessage.id);
    parentId = turn.assistantMessage.id;
  }
  setUpdated(chat.id, updatedAt);
  return { chatId: chat.id, messageIds };
}

function setUpdated(chatId: string, updatedAt: number): void {
  db.prepare('UPDATE chats SET updated_at = ? WHERE id = ?').run(updatedAt, chatId);
}

describe('searchChats', () => {
  it('finds a chat by its title, with the title as the snippet', () => {
    const { chatId } = chatWith('Sourdough starter', [['hello', 'hi there']], 1000);
    chatWith('Tax forms', [['hello', 'hi']], 2000);
    expect(searchChats(db, 'dough')).toEqual([{ chatId, title: 'Sourdough starter', messageId: null, role: null, snippet: 'Sourdough starter', updatedAt: 1000 }]);
  });

  it('finds a message on a branch that is not the active one', () => {
    const chat = store.createChat({ title: 'Branches', systemPrompt: '', sampling });
    const first = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'Tell me about otters' } });
    store.finishMessage(first.assistantMessage.id, { status: 'complete', content: 'Otters hold hands while sleeping.' });
    // An edit of the first message starts a second branch, which becomes the active one.
    const edit = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'Tell me about badgers' } });
    store.finishMessage(edit.assistantMessage.id, { status: 'complete', content: 'Badgers dig setts.' });
    expect(store.activePath(chat.id).map((m) => m.content)).not.toContain('Otters hold hands while sleeping.');

    const hits = searchChats(db, 'hold hands');
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ chatId: chat.id, messageId: first.assistantMessage.id, role: 'assistant', snippet: 'Otters hold hands while sleeping.' });
  });

  it('ignores case, for ASCII and for other letters that have a case', () => {
    const { chatId, messageIds } = chatWith('Notes', [['The QUICK brown fox', 'ok'], ['Äpfel und Birnen', 'ja'], ['ДОМ у реки', 'да'], ['later words', 'fine']], 1000);
    // Letters that LIKE cannot fold: the JS check must turn these away.
    chatWith('Decoy', [['дым над рекой', 'Öpfel'], ['xpfel', 'ok']], 2000);
    expect(searchChats(db, 'quick Brown').map((h) => h.messageId)).toEqual([messageIds[0]]);
    expect(searchChats(db, 'äPFEL').map((h) => h.messageId)).toEqual([messageIds[2]]);
    expect(searchChats(db, 'дом').map((h) => h.messageId)).toEqual([messageIds[4]]);
    expect(searchChats(db, 'реКИ').map((h) => h.chatId)).toEqual([chatId]);
    // Accents are not folded: é is another letter than e.
    chatWith('Café', [['un café noir', 'oui']], 500);
    expect(searchChats(db, 'cafe')).toEqual([]);
    expect(searchChats(db, 'CAFÉ').map((h) => h.title)).toEqual(['Café']);
  });

  it("matches `%`, `_` and `\\` as themselves, not as LIKE's wildcards", () => {
    const percent = chatWith('One', [['it went up 100% today', 'ok']], 3000);
    const underscore = chatWith('Two', [['call my_func here', 'ok']], 2000);
    const backslash = chatWith('Three', [['the path C:\\temp\\x', 'ok']], 1000);
    chatWith('Decoys', [['it went up 1000 today, call myXfunc, path C:/temp', 'ok']], 4000);
    expect(searchChats(db, '100%').map((h) => h.chatId)).toEqual([percent.chatId]);
    expect(searchChats(db, '0% t').map((h) => h.chatId)).toEqual([percent.chatId]);
    expect(searchChats(db, 'my_func').map((h) => h.chatId)).toEqual([underscore.chatId]);
    expect(searchChats(db, '_').map((h) => h.chatId)).toEqual([underscore.chatId]);
    expect(searchChats(db, 'C:\\temp').map((h) => h.chatId)).toEqual([backslash.chatId]);
    expect(searchChats(db, '%')).toHaveLength(1);
  });

  it('cuts the snippet around the first match of the most recent matching message, on one line', () => {
    const filler = 'lorem ipsum dolor sit amet '.repeat(20);
    const long = `${filler}\n\nthe  needle\tis here\n${filler}`;
    const { messageIds } = chatWith('Long', [['an early needle', 'ok'], [long, 'ok']], 1000);
    const [hit] = searchChats(db, 'needle');
    expect(hit?.messageId).toBe(messageIds[2]);
    const snippet = hit?.snippet ?? '';
    expect(snippet.length).toBeLessThanOrEqual(snippetChars);
    expect(snippet.length).toBeGreaterThan(snippetChars - 20);
    expect(snippet.startsWith('…')).toBe(true);
    expect(snippet.endsWith('…')).toBe(true);
    expect(snippet).not.toMatch(/[\n\t]|\s{2}/);
    expect(snippet).toContain('the needle is here');
    // The match sits near the start, so the text after it shows.
    expect(snippet.indexOf('needle')).toBeLessThan(70);
  });

  it('matches a query with a line break or a double space in the text it was typed from', () => {
    const { messageIds } = chatWith('Lines', [['first line\nsecond  line', 'ok']], 1000);
    const [hit] = searchChats(db, 'line\nsecond  line');
    expect(hit?.messageId).toBe(messageIds[0]);
    expect(hit?.snippet).toBe('first line second line');
  });

  it('prefers a matching message over the title, and the most recent one', () => {
    const { messageIds } = chatWith('Garden plans', [['plans for the garden', 'Plant beans'], ['more garden ideas', 'Plant peas']], 1000);
    const [hit] = searchChats(db, 'garden');
    expect(hit?.messageId).toBe(messageIds[2]);
    expect(hit?.role).toBe('user');
    expect(searchChats(db, 'plant')[0]?.messageId).toBe(messageIds[3]);
  });

  it('lists the newest chat first and returns at most 50', () => {
    const ids: string[] = [];
    for (let i = 0; i < maxSearchHits + 5; i++) ids.push(chatWith(`Chat ${i}`, [[`common word ${i}`, 'reply']], 10_000 + i * 7 - (i % 2) * 1000).chatId);
    chatWith('Other', [['nothing in common', 'nope']], 99_999);
    const hits = searchChats(db, 'COMMON WORD');
    expect(hits).toHaveLength(maxSearchHits);
    const updated = hits.map((h) => h.updatedAt);
    expect(updated).toEqual([...updated].sort((a, b) => b - a));
    const byTime = ids.map((id, i) => ({ id, at: 10_000 + i * 7 - (i % 2) * 1000 })).sort((a, b) => b.at - a.at);
    expect(hits.map((h) => h.chatId)).toEqual(byTime.slice(0, maxSearchHits).map((c) => c.id));
  });

  it('skips replies that ended in an error, and empty ones', () => {
    const chat = store.createChat({ title: 'Errors', systemPrompt: '', sampling });
    const turn = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'hello' } });
    store.finishMessage(turn.assistantMessage.id, { status: 'error', content: 'partial zebra text', error: { code: 'ENGINE_CRASHED', message: 'crashed' } });
    expect(searchChats(db, 'zebra')).toEqual([]);
    const again = store.insertTurn({ chatId: chat.id, assistantParentId: turn.userMessage?.id ?? null });
    expect(again.assistantMessage.content).toBe('');
    store.finishMessage(again.assistantMessage.id, { status: 'complete', content: 'a zebra' });
    expect(searchChats(db, 'zebra').map((h) => h.messageId)).toEqual([again.assistantMessage.id]);
  });

  it('forgets deleted chats', () => {
    const { chatId } = chatWith('Gone soon', [['find me', 'ok']], 1000);
    expect(searchChats(db, 'find me')).toHaveLength(1);
    store.deleteChat(chatId);
    expect(searchChats(db, 'find me')).toEqual([]);
    expect(searchChats(db, 'gone')).toEqual([]);
  });

  it('returns nothing for a blank query', () => {
    chatWith('Any', [['text', 'ok']], 1000);
    expect(searchChats(db, '   ')).toEqual([]);
  });
});

describe('searchPattern', () => {
  it('escapes LIKE wildcards and starts the prefilter at the rarest ASCII character', () => {
    expect(searchPattern('50%_off').like).toBe('%50\\%\\_off%');
    expect(searchPattern('thezz').prefilter).toBe('%zz%');
    expect(searchPattern('zebra').prefilter).toBeNull();
    // Nothing to check in JS when LIKE is exact; a cased non-ASCII letter is `_` for LIKE.
    expect(searchPattern('日本語 ok').check).toBeNull();
    const accented = searchPattern('Äpfel');
    expect(accented.like).toBe('%_pfel%');
    expect(accented.prefilter).toBe('%pfel%');
    expect(new RegExp(accented.check ?? '', 'u').test('äpfel')).toBe(true);
    expect(new RegExp(accented.check ?? '', 'u').test('xpfel')).toBe(false);
  });
});

describe('snippetAround', () => {
  it('keeps short text whole and marks each cut with an ellipsis', () => {
    const matcher = searchPattern('target').matcher;
    expect(snippetAround('  short\ntext with target  ', matcher)).toBe('short text with target');
    const atEnd = `${'word '.repeat(80)}target`;
    const cut = snippetAround(atEnd, matcher);
    expect(cut.startsWith('…')).toBe(true);
    expect(cut.endsWith('target')).toBe(true);
    expect(cut.length).toBeLessThanOrEqual(snippetChars);
    const atStart = `target ${'word '.repeat(80)}`;
    expect(snippetAround(atStart, matcher)).toMatch(/^target word .*…$/);
  });

  it('never splits a surrogate pair', () => {
    const emoji = '😀'.repeat(200);
    const cut = snippetAround(`${emoji}target${emoji}`, searchPattern('target').matcher);
    expect(cut).toContain('target');
    expect(cut.replace(/^…|…$/g, '')).toMatch(/^(?:\p{Extended_Pictographic}|target)+$/u);
  });
});
