/**
 * The host's part in chats that outgrow the context: the chat's own overflow policy reaches the
 * engine, the view's first message is named by id for the divider, and `chats.continue` writes
 * more of a reply into the same message.
 */
import { describe, expect, it } from 'vitest';
import { callInputs, hearthError, type HearthEvent, type MessageStats } from '../contract/index.ts';
import { finished, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';
import { buildPrompt, replyStats } from './generations.ts';

const start = useTestHearths();

async function exchange(t: TestHearth, chatId: string, text: string) {
  const sent = value(await t.hearth.api['chats.send']({ chatId, text }));
  return (await t.waitFor(finished(sent.assistantMessage.id))).payload.message;
}

/** The end of `messageId`'s reply after the first `after` events (a continued reply ends twice). */
function finishedAfter(t: TestHearth, messageId: string, after: number) {
  const isEnd = finished(messageId);
  return (event: HearthEvent): event is Extract<HearthEvent, { type: 'message.updated' }> => isEnd(event) && t.events.indexOf(event) >= after;
}

const baseStats: MessageStats = { tokensReused: 0, tokensRestored: 0, tokensPrefilled: 10, tokensGenerated: 5, ttftMs: 1, cacheSource: 'none' };

describe('the view in the readout', () => {
  it('names the first message in the view by id, counted after the system prompt and without failed messages', () => {
    const path = [
      { id: 'u1', chatId: 'c', parentId: null, role: 'user' as const, content: 'one', status: 'complete' as const, createdAt: 1 },
      { id: 'a1', chatId: 'c', parentId: 'u1', role: 'assistant' as const, content: '', status: 'error' as const, createdAt: 2 },
      { id: 'u2', chatId: 'c', parentId: 'a1', role: 'user' as const, content: 'two', status: 'complete' as const, createdAt: 3 },
      { id: 'a2', chatId: 'c', parentId: 'u2', role: 'assistant' as const, content: 'reply', status: 'complete' as const, createdAt: 4 },
      { id: 'u3', chatId: 'c', parentId: 'a2', role: 'user' as const, content: 'three', status: 'complete' as const, createdAt: 5 },
    ];
    const prompt = buildPrompt('Be brief.', path);
    expect(prompt.messages.map((m) => m.role)).toEqual(['system', 'user', 'user', 'assistant', 'user']);
    expect(prompt.ids).toEqual(['u1', 'u2', 'a2', 'u3']);
    const view = { policy: 'drop-oldest' as const, contextSize: 512, tokens: 300, droppedMessages: 3, droppedNow: 3 };
    expect(replyStats({ ...baseStats, view }, prompt.ids, undefined).view).toEqual({ ...view, firstMessageId: 'u3' });
    // Nothing dropped: no divider.
    expect(replyStats({ ...baseStats, view: { ...view, droppedMessages: 0, droppedNow: 0 } }, prompt.ids, undefined).view?.firstMessageId).toBeUndefined();
    // A continued reply counts what it wrote before.
    expect(replyStats(baseStats, prompt.ids, { ...baseStats, tokensGenerated: 40 }).tokensGenerated).toBe(45);
  });

  it('saves the view with the reply, its first message named', async () => {
    const t = await start();
    const chat = value(await t.hearth.api['chats.create']({ systemPrompt: 'Be brief.' }));
    await exchange(t, chat.id, 'first');
    const second = await exchange(t, chat.id, 'second');
    t.engine.behaviour.stats = { view: { policy: 'drop-oldest', contextSize: 512, tokens: 200, droppedMessages: 2, droppedNow: 2 } };
    const third = await exchange(t, chat.id, 'third');
    const secondUser = value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.find((m) => m.content === 'second')!;
    expect(second.stats?.view).toBeUndefined();
    expect(third.stats?.view).toMatchObject({ droppedMessages: 2, firstMessageId: secondUser.id });
  });
});

describe("a chat's own overflow policy", () => {
  it('is stored with the chat, reaches the engine, and null follows the model again', async () => {
    const t = await start();
    const chat = value(await t.hearth.api['chats.create']({}));
    expect(chat.overflowPolicy).toBeNull();
    await exchange(t, chat.id, 'one');
    expect(t.engine.callsOf('generate').at(-1)).not.toHaveProperty('overflowPolicy');
    const stop = value(await t.hearth.api['chats.configure']({ chatId: chat.id, overflowPolicy: 'stop' }));
    expect(stop.overflowPolicy).toBe('stop');
    // A later configure that does not name it keeps it.
    value(await t.hearth.api['chats.configure']({ chatId: chat.id, systemPrompt: 'Shorter.' }));
    await exchange(t, chat.id, 'two');
    expect(t.engine.callsOf('generate').at(-1)).toMatchObject({ overflowPolicy: 'stop' });
    expect(value(await t.hearth.api['chats.configure']({ chatId: chat.id, overflowPolicy: null })).overflowPolicy).toBeNull();
    await exchange(t, chat.id, 'three');
    expect(t.engine.callsOf('generate').at(-1)).not.toHaveProperty('overflowPolicy');
    // The contract knows only the three policies (an earlier version's names are refused).
    expect(callInputs['chats.configure'].safeParse({ chatId: chat.id, overflowPolicy: 'shift' }).success).toBe(false);
  });
});

describe('chats.continue', () => {
  it('writes more of the last reply into the same message, from its text so far', async () => {
    const t = await start();
    const chat = value(await t.hearth.api['chats.create']({ systemPrompt: 'Be brief.' }));
    t.engine.behaviour.stopReason = 'context';
    const first = await exchange(t, chat.id, 'Tell me everything.');
    expect(first).toMatchObject({ status: 'complete', content: 'Hello, world!', stats: { stopReason: 'context' } });
    t.engine.behaviour.stopReason = 'eos';
    const after = t.events.length;
    const continued = value(await t.hearth.api['chats.continue']({ chatId: chat.id, messageId: first.id }));
    expect(continued.assistantMessage).toMatchObject({ id: first.id, status: 'streaming', content: 'Hello, world!' });
    const done = (await t.waitFor(finishedAfter(t, first.id, after))).payload.message;
    expect(done).toMatchObject({ id: first.id, status: 'complete', content: 'Hello, world!Hello, world!', stats: { stopReason: 'eos', tokensGenerated: 8 } });
    // The prompt ended with the reply so far: the engine continues it.
    expect(t.engine.callsOf('generate').at(-1)?.messages.at(-1)).toEqual({ role: 'assistant', text: 'Hello, world!' });
    const detail = value(await t.hearth.api['chats.get']({ chatId: chat.id }));
    expect(detail.messages).toHaveLength(2);
  });

  it('refuses what cannot be continued, and a failed continuation keeps the text and readout from before', async () => {
    const t = await start();
    const chat = value(await t.hearth.api['chats.create']({}));
    const first = await exchange(t, chat.id, 'one');
    const user = value(await t.hearth.api['chats.get']({ chatId: chat.id })).messages.find((m) => m.role === 'user')!;
    expect((await t.hearth.api['chats.continue']({ chatId: chat.id, messageId: user.id })).ok).toBe(false);
    const second = await exchange(t, chat.id, 'two');
    // Not the active branch's last message.
    const notLast = await t.hearth.api['chats.continue']({ chatId: chat.id, messageId: first.id });
    expect(!notLast.ok && notLast.error.message).toMatch(/Only the last reply/);
    t.engine.behaviour.generateError = hearthError('CONTEXT_OVERFLOW', 'This conversation has outgrown the context.');
    t.engine.behaviour.tokens = [];
    const after = t.events.length;
    value(await t.hearth.api['chats.continue']({ chatId: chat.id, messageId: second.id }));
    const failed = (await t.waitFor(finishedAfter(t, second.id, after))).payload.message;
    expect(failed).toMatchObject({ status: 'incomplete', content: second.content, error: { code: 'CONTEXT_OVERFLOW' }, stats: second.stats });
  });
});
