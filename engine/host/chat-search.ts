/**
 * Search across chats (`chats.search`): the chats whose title or any message of any branch
 * contains the query, newest chat first, one hit per chat, at most `maxSearchHits`.
 *
 * Matching is a substring match with simple case mapping: each character of the query matches
 * itself and the characters its JS `toLowerCase`/`toUpperCase` map it to one for one (so `a`
 * matches `A`, `ä` matches `Ä`, `д` matches `Д`; accents are not folded, `e` does not match `é`).
 * `%`, `_` and `\` are ordinary characters. Replies that ended in an error are not searched.
 *
 * No index: SQLite's LIKE scans the messages. LIKE folds ASCII letters only and finds an ASCII
 * character with `strcspn`, so the scan is fastest from a rare ASCII character: the statement
 * first looks for the query's rest from its rarest ASCII character, then for the whole query. A
 * non-ASCII letter that has a case becomes `_` (any one character) in the LIKE patterns, and
 * the rows LIKE lets through are checked in JS against the exact pattern.
 *
 * Chats are read newest first and each chat's messages newest first, so a query that many chats
 * match stops after the first 50 (a few ms). The slowest is a query that matches nothing: every
 * message is read. On 2,000 chats of 50 messages (100 MB of text) that took 0.14 to 0.23 s on a
 * busy 2-core machine. A trigram FTS5 index answered it in under 1 ms, but took 26 s to build over
 * that history and 245 MB of disk beside it (2.5 times the text), and would be rewritten with
 * every streamed flush: not worth it at these sizes.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { ChatSearchHit, Role } from '../contract/index.ts';

/** The most hits one search returns. */
export const maxSearchHits = 50;
/** The longest snippet, ellipses included. */
export const snippetChars = 160;
/** Of the snippet, how many characters come before the match at most. */
const contextBefore = 50;

const matchFunction = 'hearth_search_match';
const registered = new WeakSet<DatabaseSync>();

/**
 * English letters, most frequent first; other ASCII characters count as fairly rare. The
 * scan's cost grows with how often the character it looks for occurs.
 */
const letterFrequency = ' etaoinshrdlcumwfgypbvkjxqz';

/** One character of the query, as each matcher needs it. */
interface QueryChar {
  readonly ch: string;
  /** Its LIKE pattern (escaped, or `_` for a non-ASCII letter with case). */
  readonly like: string;
  /** Its RegExp source: itself escaped, or a class of its case forms. */
  readonly regex: string;
  /** Whether LIKE alone matches it exactly (ASCII, or a character without case). */
  readonly exactInLike: boolean;
  readonly ascii: boolean;
}

function escapeRegExp(text: string): string {
  // Only the escapes a `u` RegExp accepts outside a class.
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** The character and the characters it maps to one for one by lower- and upper-casing. */
function caseForms(ch: string): string[] {
  const forms = new Set([ch]);
  for (const form of [ch.toLowerCase(), ch.toUpperCase(), ch.toLowerCase().toUpperCase(), ch.toUpperCase().toLowerCase()]) {
    if ([...form].length === 1) forms.add(form);
  }
  return [...forms];
}

function queryChars(query: string): QueryChar[] {
  return [...query].map((ch) => {
    const ascii = ch.charCodeAt(0) < 0x80;
    const forms = caseForms(ch);
    const like = ch === '%' || ch === '_' || ch === '\\' ? `\\${ch}` : ch;
    const regex = forms.length === 1 ? escapeRegExp(ch) : `[${forms.map(escapeRegExp).join('')}]`;
    if (ascii || forms.length === 1) return { ch, like, regex, exactInLike: true, ascii };
    return { ch, like: '_', regex, exactInLike: false, ascii };
  });
}

function rarity(ch: string): number {
  const rank = letterFrequency.indexOf(ch.toLowerCase());
  return rank === -1 ? letterFrequency.length / 2 : rank;
}

/** How a query is matched: the LIKE patterns for SQLite and the exact pattern for JS. */
export interface SearchPattern {
  /** `%query%`, wildcards escaped with `\`. */
  readonly like: string;
  /** `%rest%` from the query's rarest ASCII character; null when that is the whole query. */
  readonly prefilter: string | null;
  /** The exact matcher's source, for `new RegExp(source, 'u')`; null when LIKE is exact. */
  readonly check: string | null;
  /** Finds the query in one-line text (whitespace runs collapsed to one space). */
  readonly matcher: RegExp;
}

/** The patterns of a trimmed, non-empty query. */
export function searchPattern(query: string): SearchPattern {
  const chars = queryChars(query);
  let start = -1;
  chars.forEach((c, i) => {
    if (c.ascii && (start === -1 || rarity(c.ch) > rarity((chars[start] as QueryChar).ch))) start = i;
  });
  const like = `%${chars.map((c) => c.like).join('')}%`;
  const prefilter = start > 0 ? `%${chars.slice(start).map((c) => c.like).join('')}%` : null;
  const source = chars.map((c) => c.regex).join('');
  const check = chars.every((c) => c.exactInLike) ? null : source;
  // The snippet's text has its whitespace collapsed; so has the query's, for the match to be found there.
  const oneLine = queryChars(query.replace(/\s+/g, ' '))
    .map((c) => c.regex)
    .join('');
  return { like, prefilter, check, matcher: new RegExp(oneLine, 'u') };
}

/** Registers the exact matcher for SQL, once per connection; it keeps the last pattern compiled. */
function registerMatch(db: DatabaseSync): void {
  if (registered.has(db)) return;
  let last: { source: string; regex: RegExp } | null = null;
  db.function(matchFunction, { deterministic: true }, (text, source) => {
    if (typeof text !== 'string' || typeof source !== 'string') return 0;
    if (last?.source !== source) last = { source, regex: new RegExp(source, 'u') };
    return last.regex.test(text) ? 1 : 0;
  });
  registered.add(db);
}

/**
 * Up to `snippetChars` characters of `text` on one line around the first match of `matcher`,
 * with `…` where it was cut. The match starts at most `contextBefore` characters in, so that
 * it shows even in a long message.
 */
export function snippetAround(text: string, matcher: RegExp): string {
  const line = text.replace(/\s+/g, ' ').trim();
  if (line.length <= snippetChars) return line;
  const found = matcher.exec(line);
  const at = found?.index ?? 0;
  const room = snippetChars - 2;
  let start = Math.max(0, at - contextBefore);
  let end = Math.min(line.length, start + room);
  start = Math.max(0, end - room);
  // Start and end at a word where one is near, and never inside a surrogate pair.
  if (start > 0) {
    const space = line.indexOf(' ', start);
    if (space !== -1 && space < Math.min(at, start + 15)) start = space + 1;
  }
  if (end < line.length) {
    const space = line.lastIndexOf(' ', end);
    if (space > Math.max(at + (found?.[0].length ?? 0), end - 15)) end = space;
  }
  if (start > 0 && isLowSurrogate(line.charCodeAt(start))) start++;
  if (end < line.length && isLowSurrogate(line.charCodeAt(end))) end--;
  return `${start > 0 ? '…' : ''}${line.slice(start, end).trim()}${end < line.length ? '…' : ''}`;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

interface ChatHitRow {
  id: string;
  title: string;
  updated_at: number;
  message_id: string | null;
}

/**
 * The chats whose title or messages contain `query`, newest first (`updated_at`), at most
 * `maxSearchHits`. A chat with a matching message is found by its most recent one (the hit's
 * `messageId`, snippet around its first match); a chat that only its title matched has
 * `messageId` null and the title as its snippet.
 */
export function searchChats(db: DatabaseSync, query: string): ChatSearchHit[] {
  const text = query.trim();
  if (text === '') return [];
  const pattern = searchPattern(text);
  if (pattern.check !== null) registerMatch(db);
  const messageTerms = [
    pattern.prefilter !== null ? "AND m.content LIKE :prefilter ESCAPE '\\'" : '',
    "AND m.content LIKE :like ESCAPE '\\'",
    pattern.check !== null ? `AND ${matchFunction}(m.content, :check)` : '',
  ].join(' ');
  const chats = db.prepare(
    `SELECT c.id, c.title, c.updated_at,
       (SELECT m.id FROM messages m
        WHERE m.chat_id = c.id AND m.status <> 'error' ${messageTerms}
        ORDER BY m.created_at DESC, m.rowid DESC LIMIT 1) AS message_id
     FROM chats c ORDER BY c.updated_at DESC, c.rowid DESC`,
  );
  const params: Record<string, string> = { like: pattern.like };
  if (pattern.prefilter !== null) params.prefilter = pattern.prefilter;
  if (pattern.check !== null) params.check = pattern.check;
  const message = db.prepare('SELECT role, content FROM messages WHERE id = ?');
  const hits: ChatSearchHit[] = [];
  for (const row of chats.iterate(params) as Iterable<ChatHitRow>) {
    if (row.message_id !== null) {
      const found = message.get(row.message_id) as { role: Role; content: string } | undefined;
      if (found) {
        hits.push({ chatId: row.id, title: row.title, messageId: row.message_id, role: found.role, snippet: snippetAround(found.content, pattern.matcher), updatedAt: row.updated_at });
      }
    } else if (pattern.matcher.test(row.title.replace(/\s+/g, ' '))) {
      hits.push({ chatId: row.id, title: row.title, messageId: null, role: null, snippet: snippetAround(row.title, pattern.matcher), updatedAt: row.updated_at });
    }
    if (hits.length >= maxSearchHits) break;
  }
  return hits;
}
