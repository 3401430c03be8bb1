import { describe, expect, it } from 'vitest';
import type { HearthEvent, Message } from '../../engine/contract/index.ts';
import { fallbackClass, landing, openFindings, textKept } from './kill-checks.ts';

const delta = (messageId: string, text: string): HearthEvent => ({ type: 'message.delta', payload: { chatId: 'c', messageId, delta: text } });
const reply = (status: Message['status'], content: string): Message => ({ id: 'r', chatId: 'c', parentId: 'u', role: 'assistant', content, status, createdAt: 1 });
const updated = (message: Message): HearthEvent => ({ type: 'message.updated', payload: { message } });
const saved = (chatId: string): HearthEvent => ({ type: 'cache.event', payload: { id: 1, at: 1, kind: 'save', chatId, text: 'saved' } });

describe('fallbackClass', () => {
  it.each([
    ['the model file is still being hashed, so its stored KV cannot be checked yet', 'model not hashed yet'],
    ['KV persistence was paused (another Hearth process is using the KV cache at /x)', 'KV store in use'],
    ["this chat's slot went to another chat and KV persistence was paused (disk full), so 9 tokens of its history were read again", 'persistence paused'],
    ['chunk 3 is damaged; re-read from token 768', 'damaged chunk'],
    ['llama.cpp refused the stored KV (boom); re-read from the start', 'llama.cpp refused the KV'],
    ['the restored tokens did not match the chat; re-read from the start', 'tokens did not match'],
    ["this chat's slot went to another chat and the store did not hold all of it, so 9 tokens of its history were read again", 'store held less'],
    ['something new', 'other'],
  ])('%s → %s', (reason, expected) => {
    expect(fallbackClass(reason)).toBe(expected);
  });
});

describe('landing', () => {
  it('save: cut unless the chat saved after the reply ended', () => {
    const done = updated(reply('complete', 'hi'));
    expect(landing('save', [delta('r', 'hi'), done], 'r', 'c')).toBe('save cut');
    expect(landing('save', [delta('r', 'hi'), saved('c'), done], 'r', 'c')).toBe('save cut');
    expect(landing('save', [delta('r', 'hi'), done, saved('other')], 'r', 'c')).toBe('save cut');
    expect(landing('save', [delta('r', 'hi'), done, saved('c')], 'r', 'c')).toBe('landed after the save');
  });

  it('restore and generation: counted by the tokens streamed', () => {
    expect(landing('restore', [], 'r', 'c')).toBe('cut before the first token');
    expect(landing('restore', [delta('r', 'a'), delta('x', 'b'), delta('r', 'c')], 'r', 'c')).toBe('landed in generation (2 deltas)');
    expect(landing('generation', [delta('r', 'a'), updated(reply('incomplete', 'a'))], 'r', 'c')).toBe('reply cut after 1 deltas');
    expect(landing('generation', [delta('r', 'a'), updated(reply('complete', 'a'))], 'r', 'c')).toBe('landed after the reply');
  });
});

describe('textKept', () => {
  const streamed = [delta('r', 'Hel'), delta('other', 'zzz'), delta('r', 'lo')];

  it('an engine kill keeps exactly what streamed', () => {
    expect(textKept(reply('incomplete', 'Hello'), streamed, 'engine')).toBeNull();
    expect(textKept(reply('incomplete', 'Hel'), streamed, 'engine')).toMatch(/holds "Hel", but "Hello" streamed/);
    expect(textKept(reply('incomplete', ''), [], 'engine')).toBeNull();
    expect(textKept(reply('error', ''), [], 'engine')).toBeNull();
  });

  it('a host kill keeps a prefix of the stream, or more than the socket carried', () => {
    expect(textKept(reply('incomplete', 'Hel'), streamed, 'host')).toBeNull();
    expect(textKept(reply('incomplete', 'Hello, wor'), streamed, 'host')).toBeNull();
    expect(textKept(reply('incomplete', 'Help'), streamed, 'host')).toMatch(/not a prefix/);
  });

  it('a reply left streaming, stopped, or an error with text is wrong', () => {
    expect(textKept(reply('streaming', 'Hel'), streamed, 'host')).toMatch(/still streaming/);
    expect(textKept(reply('stopped', 'Hel'), streamed, 'engine')).toMatch(/stopped/);
    expect(textKept(reply('error', 'Hel'), streamed, 'engine')).toMatch(/error but has text/);
    expect(textKept(reply('complete', 'anything'), streamed, 'engine')).toBeNull();
  });
});

describe('openFindings', () => {
  const line = (parts: string) => `2026-11-28T09:00:00.000Z info  engine: The KV store repaired what an interrupted run left: ${parts}; chats re-read what was lost.\n`;

  it('tells debris of an interrupted write from damage', () => {
    expect(openFindings('')).toEqual({ debris: [], damage: [], checkFailed: false, lockedOut: false });
    expect(openFindings(line('2 temp file(s), 1 unindexed chunk file(s), 1 unindexed tail file(s)'))).toMatchObject({
      debris: ['2 temp file(s)', '1 unindexed chunk file(s)', '1 unindexed tail file(s)'],
      damage: [],
    });
    expect(openFindings(line('1 temp file(s), 3 missing chunk file(s), 1 index inconsistencies'))).toMatchObject({
      debris: ['1 temp file(s)'],
      damage: ['3 missing chunk file(s)', '1 index inconsistencies'],
    });
  });

  it('notices a failed check at open and a KV root held by another process', () => {
    expect(openFindings('x warn  engine: The KV store could not check itself at open: EIO.').checkFailed).toBe(true);
    expect(openFindings('x info  engine: The other process using the KV store at /d/kv has exited: this one saves chats\' KV again.').lockedOut).toBe(true);
  });
});
