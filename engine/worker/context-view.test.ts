import { describe, expect, it } from 'vitest';
import type { Token } from 'node-llama-cpp';
import type { PromptMessage } from '../protocol.ts';
import { AUTO_REPLY_MAX, AUTO_REPLY_MIN, DROP_TARGET, dropOldestView, replayView, replyTokens, toChatHistory, ViewCosts, type DropOldestView, type ViewRenderer } from './context-view.ts';

/**
 * A chat template in miniature: one token per word, 3 tokens around a user message, 2 around an
 * assistant's, 4 around the system prompt, and 2 for the reply's opening.
 */
const words = (text: string) => (text.trim() === '' ? 0 : text.trim().split(/\s+/).length);
const overhead = { user: 3, assistant: 2, system: 4 } as const;
function renderer(calls?: { render: number; tokenize: number }): ViewRenderer {
  return {
    render: (messages) => {
      if (calls) calls.render++;
      const n = 2 + messages.reduce((sum, m) => sum + words(m.text) + overhead[m.role], 0);
      return Array.from({ length: n }, (_, i) => i as Token);
    },
    tokenize: (text) => {
      if (calls) calls.tokenize++;
      return words(text);
    },
  };
}

const text = (n: number, seed = 0) => Array.from({ length: n }, (_, i) => `w${seed}-${i}`).join(' ');
const user = (n: number, seed = 0): PromptMessage => ({ role: 'user', text: text(n, seed) });
const reply = (n: number, seed = 0): PromptMessage => ({ role: 'assistant', text: text(n, seed) });

/** A chat of `turns` turns: each user message `u` words, each reply `r` words; ends with a user message. */
function chat(turns: number, u: number, r: number, system = true): PromptMessage[] {
  const messages: PromptMessage[] = system ? [{ role: 'system', text: text(10, 999) }] : [];
  for (let i = 0; i < turns; i++) {
    messages.push(user(u, i));
    if (i < turns - 1) messages.push(reply(r, i));
  }
  return messages;
}

describe('replyTokens', () => {
  it('keeps a number the user set, and makes automatic an eighth of the context within bounds', () => {
    expect(replyTokens(300, 1024)).toBe(300);
    expect(replyTokens(0, 1024)).toBe(128);
    expect(replyTokens(0, 8192)).toBe(1024);
    expect(replyTokens(0, 131_072)).toBe(AUTO_REPLY_MAX);
    expect(replyTokens(0, 256)).toBe(AUTO_REPLY_MIN);
    // Never more than half of a tiny context.
    expect(replyTokens(0, 64)).toBe(32);
  });
});

describe('toChatHistory', () => {
  it('opens an empty model turn after a user message, and continues a last assistant message', () => {
    expect(toChatHistory([{ role: 'user', text: 'Hi' }]).at(-1)).toEqual({ type: 'model', response: [] });
    const continued = toChatHistory([{ role: 'user', text: 'Hi' }, { role: 'assistant', text: 'Hello, th' }]);
    expect(continued).toHaveLength(2);
    expect(continued.at(-1)).toEqual({ type: 'model', response: ['Hello, th'] });
  });

  it("writes an assistant message's function calls after its text, an unanswered one with result undefined", () => {
    const calls = [
      { name: 'get_weather', params: { city: 'Paris' }, result: 'sunny' },
      { name: 'get_time', params: {} },
    ];
    const history = toChatHistory([{ role: 'user', text: 'Hi' }, { role: 'assistant', text: 'Let me look.', calls }, { role: 'user', text: 'And?' }]);
    expect(history[1]).toEqual({
      type: 'model',
      response: [
        'Let me look.',
        { type: 'functionCall', name: 'get_weather', params: { city: 'Paris' }, result: 'sunny' },
        { type: 'functionCall', name: 'get_time', params: {}, result: undefined },
      ],
    });
    // No empty text before calls.
    const bare = toChatHistory([{ role: 'user', text: 'Hi' }, { role: 'assistant', text: '', calls: calls.slice(0, 1) }]);
    expect(bare.at(-1)).toEqual({ type: 'model', response: [{ type: 'functionCall', name: 'get_weather', params: { city: 'Paris' }, result: 'sunny' }] });
  });
});

describe('ViewCosts', () => {
  it('counts and remembers function calls with the text: the same text with other calls costs otherwise', () => {
    const counted = { render: 0, tokenize: 0 };
    const r: ViewRenderer = { ...renderer(counted), calls: (calls) => 10 * calls.length + calls.reduce((sum, c) => sum + (c.result?.length ?? 0), 0) };
    const costs = new ViewCosts(r);
    const call = { name: 'f', params: { a: 1 }, result: 'abc' };
    const plain: PromptMessage = { role: 'assistant', text: 'one two' };
    const one = costs.of(undefined, [plain, { ...plain, calls: [call] }, { ...plain, calls: [call, { ...call, result: 'abcdef' }] }]).costs;
    expect(one[1]! - one[0]!).toBe(13);
    expect(one[2]! - one[0]!).toBe(29);
    // Asked again, nothing is tokenized again.
    const before = counted.tokenize;
    expect(costs.of(undefined, [plain, { ...plain, calls: [call] }]).costs).toEqual(one.slice(0, 2));
    expect(counted.tokenize).toBe(before);
    // The head carries what the caller says it does (a turn's function documentation).
    expect(costs.of(undefined, [], 40).headCost - costs.of(undefined, []).headCost).toBe(40);
  });
});

describe('replayView', () => {
  const budget = { contextSize: 100, reserve: 10, target: 0.5 };
  // Turns of 10 (user) + 20 (reply) tokens: a turn ends at every user message.
  const roles = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 'user' : 'assistant') as PromptMessage['role']);
  const costs = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 10 : 20));

  it('starts at the first message while everything fits', () => {
    expect(replayView(roles(5), costs(5), 5, budget)).toEqual({ start: 0, before: 0 });
  });

  it('moves the start only at a turn that no longer fits, to the first user message that brings the window to the target', () => {
    // Windows (head 5): messages 0..4 = 5+10+20+10+20+10 = 75 ≤ 90; 0..6 = 105 > 90: the turn ending
    // at message 6 moves the start. From 2: 5+10+20+10+20+10 = 75 > 50; from 4: 45 ≤ 50.
    expect(replayView(roles(7), costs(7), 5, budget)).toEqual({ start: 4, before: 0 });
    // The next turns extend the same view until it no longer fits again.
    expect(replayView(roles(9), costs(9), 5, budget)).toEqual({ start: 4, before: 4 });
    expect(replayView(roles(11), costs(11), 5, budget)).toEqual({ start: 8, before: 4 });
  });

  it('is the same for a branch whatever came after it (a regenerated or edited turn replays its own branch)', () => {
    const long = replayView(roles(21), costs(21), 5, budget);
    for (let n = 1; n <= 21; n += 2) {
      const short = replayView(roles(n), costs(n), 5, budget);
      expect(short.start).toBeLessThanOrEqual(long.start);
      // Each turn's "before" is the previous turn's start.
      if (n > 1) expect(short.before).toBe(replayView(roles(n - 2), costs(n - 2), 5, budget).start);
    }
  });

  it('with target 1 drops just enough at every turn (the naive baseline)', () => {
    const naive = { ...budget, target: 1 };
    let moves = 0;
    for (let n = 7; n <= 21; n += 2) if (replayView(roles(n), costs(n), 5, naive).start > replayView(roles(n - 2), costs(n - 2), 5, naive).start) moves++;
    expect(moves).toBe(8);
    let stepMoves = 0;
    for (let n = 7; n <= 21; n += 2) if (replayView(roles(n), costs(n), 5, budget).start > replayView(roles(n - 2), costs(n - 2), 5, budget).start) stepMoves++;
    // A move leaves room for one more 30-token turn before the next (90 − 45 > 30 < 90 − 75).
    expect(stepMoves).toBe(4);
  });

  it('keeps the last message alone when nothing earlier brings the window to the target or fits', () => {
    const r: PromptMessage['role'][] = ['user', 'assistant', 'user'];
    expect(replayView(r, [10, 20, 80], 5, budget).start).toBe(2);
  });

  it('treats a continued reply (the last message an assistant one) as the end of its turn', () => {
    // user 10, reply 20, user 10, reply 70 (being continued): 5+110 > 90. From its own user
    // message the window is 85: over the target, but it fits, so that message stays in view.
    const r: PromptMessage['role'][] = ['user', 'assistant', 'user', 'assistant'];
    expect(replayView(r, [10, 20, 10, 70], 5, budget)).toEqual({ start: 2, before: 0 });
    // A reply too long to keep its message: the reply alone.
    expect(replayView(r, [10, 20, 10, 80], 5, budget)).toEqual({ start: 3, before: 0 });
  });
});

describe('dropOldestView', () => {
  const contextSize = 400;
  const budget = { contextSize, reserve: 40, target: DROP_TARGET };

  it('sends the whole chat while it fits, and nothing is dropped', () => {
    const r = renderer();
    const messages = chat(3, 20, 30);
    const view = dropOldestView(messages, new ViewCosts(r), r, budget, 16)!;
    expect(view).toMatchObject({ messages, dropped: 0, droppedNow: 0 });
    expect(view.tokens).toHaveLength(r.render(messages).length);
  });

  it('drops whole turns in one large step, keeps the system prompt, and starts the view with a user message', () => {
    const r = renderer();
    const costs = new ViewCosts(r);
    const views: DropOldestView[] = [];
    for (let turns = 1; turns <= 30; turns++) views.push(dropOldestView(chat(turns, 20, 30), costs, r, budget, 16)!);
    const moves = views.map((v, i) => (i > 0 && v.dropped > views[i - 1]!.dropped ? i : -1)).filter((i) => i >= 0);
    expect(moves.length).toBeGreaterThan(2);
    for (const i of moves) {
      const view = views[i]!;
      expect(view.droppedNow).toBe(view.dropped - views[i - 1]!.dropped);
      expect(view.messages[0]!.role).toBe('system');
      expect(view.messages[1]!.role).toBe('user');
      // The step: down to about half the context, not just enough to fit.
      expect(view.tokens.length).toBeLessThanOrEqual(contextSize * DROP_TARGET);
      // It moved because the turn (a 30-word reply and a 20-word message: 55 tokens) no longer fit.
      expect(views[i - 1]!.tokens.length + 55).toBeGreaterThan(contextSize - budget.reserve);
    }
    // Between moves each turn's prompt extends the previous one: the same first message.
    for (let i = 1; i < views.length; i++) {
      if (moves.includes(i)) continue;
      expect(views[i]!.dropped).toBe(views[i - 1]!.dropped);
      expect(views[i]!.droppedNow).toBe(0);
    }
    for (const view of views) expect(view.tokens.length + budget.reserve).toBeLessThanOrEqual(contextSize);
  });

  it('tokenizes each message once across turns: a long chat does not re-read its history', () => {
    const calls = { render: 0, tokenize: 0 };
    const r = renderer(calls);
    const costs = new ViewCosts(r);
    dropOldestView(chat(40, 20, 30), costs, r, budget, 16);
    const first = calls.tokenize;
    dropOldestView(chat(41, 20, 30), costs, r, budget, 16);
    // Only the new reply and user message are tokenized (plus nothing for the template, measured once).
    expect(calls.tokenize - first).toBe(2);
  });

  it('drops more when the estimate was short, and answers null when the last message alone does not fit', () => {
    const r = renderer();
    // A renderer that counts 3 more tokens per message than the costs say: the estimate is short.
    const heavier: ViewRenderer = { render: (m) => [...r.render(m), ...Array.from({ length: 3 * m.length }, () => 0 as Token)], tokenize: r.tokenize };
    for (let turns = 1; turns <= 30; turns++) {
      const view = dropOldestView(chat(turns, 20, 30), new ViewCosts(r), heavier, budget, 16)!;
      expect(view.tokens.length + budget.reserve).toBeLessThanOrEqual(contextSize);
    }
    expect(dropOldestView([user(5), reply(5), user(390)], new ViewCosts(r), r, budget, 16)).toBeNull();
    // Without a system prompt too.
    const plain = dropOldestView(chat(30, 20, 30, false), new ViewCosts(r), r, budget, 16)!;
    expect(plain.messages[0]!.role).toBe('user');
    expect(plain.dropped).toBeGreaterThan(0);
  });
});
