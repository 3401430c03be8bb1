import { describe, expect, it } from 'vitest';
import type { ChatCache, ContextView, Message, ModelInfo } from '../contract.ts';
import { cpuPlan, mapOf, messageStats, msg, planRow } from '../../../test/support/renderer/fixtures.ts';
import { statsRows } from './cache.ts';
import {
  chatPolicyChoices,
  contextMeter,
  continueOffer,
  dividerAbove,
  isContextOverflow,
  latestView,
  raiseContextTarget,
  raiseFits,
  stopReasonText,
} from './context-view.ts';
import { droppedText, formatStats } from './format.ts';
import { activePathIds } from './tree.ts';

const view = (extra: Partial<ContextView> = {}): ContextView => ({ policy: 'drop-oldest', contextSize: 1024, tokens: 812, droppedMessages: 0, droppedNow: 0, ...extra });
const reply = (id: string, parentId: string, v?: Partial<ContextView>, extra: Partial<Message> = {}) =>
  msg(id, parentId, 'assistant', { stats: messageStats(v ? { view: view(v) } : {}), ...extra });

const model = (extra: Partial<ModelInfo> = {}): ModelInfo => ({
  path: '/m/model.gguf',
  name: 'model',
  sizeBytes: 1,
  architecture: 'llama',
  trainedContextLength: 32_768,
  contextSize: 4096,
  layerCount: 16,
  kvType: { k: 'f16', v: 'f16' },
  ...extra,
});

/**
 * u1 → a1 → u2 → a2 → u3 → a3 (a3 dropped u1 and a1: its view starts at u2), and a branch
 * u2 → a2 → u3b → a3b whose reply saw everything.
 */
function longChat() {
  const u1 = msg('u1', null);
  const a1 = reply('a1', 'u1', {});
  const u2 = msg('u2', 'a1');
  const a2 = reply('a2', 'u2', {});
  const u3 = msg('u3', 'a2');
  const a3 = reply('a3', 'u3', { droppedMessages: 2, droppedNow: 2, firstMessageId: 'u2' });
  const u3b = msg('u3b', 'a2');
  const a3b = reply('a3b', 'u3b', {});
  return mapOf(u1, a1, u2, a2, u3, a3, u3b, a3b);
}

describe('the divider above the first message in the view', () => {
  it('goes above the message the newest view starts at', () => {
    const messages = longChat();
    const path = activePathIds(messages, 'a3');
    expect(path).toEqual(['u1', 'a1', 'u2', 'a2', 'u3', 'a3']);
    expect(latestView(messages, path)?.messageId).toBe('a3');
    expect(dividerAbove(messages, path)).toBe('u2');
  });

  it('stays where the newest view put it while a reply without a view streams', () => {
    const messages = { ...longChat(), u4: msg('u4', 'a3'), a4: msg('a4', 'u4', 'assistant', { status: 'streaming', content: '' }) };
    expect(dividerAbove(messages, activePathIds(messages, 'a4'))).toBe('u2');
  });

  it('follows the newest view: a later reply that dropped more moves it down', () => {
    const messages = { ...longChat(), u4: msg('u4', 'a3'), a4: reply('a4', 'u4', { droppedMessages: 4, droppedNow: 2, firstMessageId: 'u3' }) };
    expect(dividerAbove(messages, activePathIds(messages, 'a4'))).toBe('u3');
  });

  it('is absent when the model sees the whole branch', () => {
    const messages = longChat();
    expect(dividerAbove(messages, activePathIds(messages, 'a3b'))).toBeNull();
    // A first message named without anything dropped says nothing is outside.
    const none = mapOf(msg('u1', null), msg('a1', 'u1'), msg('u2', 'a1'), reply('a2', 'u2', { droppedMessages: 0, firstMessageId: 'u1' }));
    expect(dividerAbove(none, activePathIds(none, 'a2'))).toBeNull();
  });

  it('is absent when the view names a message that is not on the branch on screen', () => {
    // An edit of u2 made a branch whose reply still carries the old branch's id in its view.
    const messages = { ...longChat(), u2x: msg('u2x', 'a1'), a2x: reply('a2x', 'u2x', { droppedMessages: 2, droppedNow: 0, firstMessageId: 'u2' }) };
    const path = activePathIds(messages, 'a2x');
    expect(path).toEqual(['u1', 'a1', 'u2x', 'a2x']);
    expect(dividerAbove(messages, path)).toBeNull();
  });

  it('is absent for replies written before views were reported', () => {
    const old = mapOf(msg('u1', null), reply('a1', 'u1'));
    expect(latestView(old, activePathIds(old, 'a1'))).toBeNull();
    expect(dividerAbove(old, activePathIds(old, 'a1'))).toBeNull();
  });
});

describe('the readout of a reply that moved the view', () => {
  it('says how many messages it dropped and how many tokens it read again', () => {
    const stats = messageStats({ tokensPrefilled: 1840, tokensGenerated: 20, ttftMs: 412, view: view({ droppedMessages: 12, droppedNow: 12, firstMessageId: 'u7' }) });
    expect(droppedText(stats)).toBe('dropped 12 older messages · re-read 1,840 tokens');
    expect(formatStats(stats)).toBe('dropped 12 older messages · re-read 1,840 tokens · first token 412 ms · 20 generated');
    expect(droppedText(messageStats({ tokensPrefilled: 300, view: view({ droppedMessages: 1, droppedNow: 1 }) }))).toBe('dropped 1 older message · re-read 300 tokens');
    // What a restore from the store brought back is still said.
    expect(formatStats(messageStats({ tokensPrefilled: 40, tokensRestored: 2048, tokensGenerated: 0, ttftMs: 9, view: view({ droppedMessages: 3, droppedNow: 3 }) }))).toBe(
      'dropped 3 older messages · re-read 40 tokens · restored 2,048 from disk · first token 9 ms',
    );
  });

  it('reads as before when the view did not move at this reply', () => {
    const stats = messageStats({ tokensReused: 700, tokensPrefilled: 14, tokensGenerated: 0, ttftMs: 35, view: view({ droppedMessages: 12, droppedNow: 0 }) });
    expect(droppedText(stats)).toBeNull();
    expect(formatStats(stats)).toBe('reused 700 · prefilled 14 tokens · first token 35 ms');
  });

  it('lists the view, how the reply ended and the policy among every figure', () => {
    const rows = Object.fromEntries(statsRows(messageStats({ stopReason: 'context', view: view({ droppedMessages: 12, droppedNow: 2, policy: 'streaming' }) })));
    expect(rows).toMatchObject({
      Ended: 'at the end of the context',
      'In view': '812 / 1,024 tokens',
      'Outside the view': '12 messages',
      'Dropped by this reply': '2 messages',
      'Overflow policy': 'StreamingLLM window',
    });
    expect(Object.keys(Object.fromEntries(statsRows(messageStats())))).not.toContain('In view');
  });
});

describe('Continue', () => {
  const last = { last: true, busy: false };

  it('is offered for the last reply when it stopped at the end of the context or at its max tokens', () => {
    expect(stopReasonText(messageStats({ stopReason: 'context' }))).toBe('Stopped at the end of the context');
    expect(stopReasonText(messageStats({ stopReason: 'maxTokens' }))).toBe("Stopped at the reply's max tokens");
    expect(continueOffer(reply('a', 'u', undefined, { stats: messageStats({ stopReason: 'context' }) }), last)).toBe('Stopped at the end of the context');
    expect(continueOffer(reply('a', 'u', undefined, { stats: messageStats({ stopReason: 'maxTokens' }) }), last)).toBe("Stopped at the reply's max tokens");
    // Stopped by the user: the badge says so; the button alone is offered.
    expect(continueOffer(msg('a', 'u', 'assistant', { status: 'stopped' }), last)).toBe('');
  });

  it('is not offered for a finished reply, elsewhere on the branch, or while the chat streams', () => {
    const cut = reply('a', 'u', undefined, { stats: messageStats({ stopReason: 'context' }) });
    expect(continueOffer(reply('a', 'u', undefined, { stats: messageStats({ stopReason: 'eos' }) }), last)).toBeNull();
    expect(continueOffer(reply('a', 'u'), last)).toBeNull();
    expect(continueOffer(cut, { last: false, busy: false })).toBeNull();
    expect(continueOffer(cut, { last: true, busy: true })).toBeNull();
    expect(continueOffer({ ...cut, status: 'streaming' }, last)).toBeNull();
    expect(continueOffer(msg('a', 'u', 'assistant', { status: 'incomplete' }), last)).toBeNull();
    expect(continueOffer(msg('u', null), last)).toBeNull();
  });
});

describe('the context meter', () => {
  const cache = (tokensOnDisk: number): ChatCache => ({ chatId: 'c1', where: 'disk', slot: null, tokensInMemory: 0, tokensOnDisk, bytesOnDisk: 1 });

  it("shows the newest view's tokens against its context and the chat's stored tokens", () => {
    expect(contextMeter({ view: view(), cache: cache(768), model: model(), hasReplies: true })).toEqual({
      tokens: 812,
      contextSize: 1024,
      onDisk: 768,
      text: '812 / 1,024 tokens in view · 768 on disk',
    });
    expect(contextMeter({ view: view({ tokens: 15_000, contextSize: 16_384 }), cache: cache(0), model: model(), hasReplies: true })?.text).toBe('15,000 / 16,384 tokens in view · 0 on disk');
  });

  it('leaves the disk out until the cache is known', () => {
    expect(contextMeter({ view: view(), cache: undefined, model: null, hasReplies: true })).toEqual({ tokens: 812, contextSize: 1024, onDisk: null, text: '812 / 1,024 tokens in view' });
  });

  it("starts a new chat at 0 of the loaded model's context, and shows nothing it would have to guess", () => {
    expect(contextMeter({ view: null, cache: undefined, model: model({ contextSize: 4096 }), hasReplies: false })?.text).toBe('0 / 4,096 tokens in view');
    // Replies from before views were reported: the figure is unknown.
    expect(contextMeter({ view: null, cache: cache(500), model: model(), hasReplies: true })).toBeNull();
    expect(contextMeter({ view: null, cache: undefined, model: null, hasReplies: false })).toBeNull();
  });
});

describe('stop and ask', () => {
  it('is for a reply that failed with CONTEXT_OVERFLOW', () => {
    const error = { code: 'CONTEXT_OVERFLOW' as const, message: 'The chat no longer fits the context.' };
    expect(isContextOverflow(msg('a', 'u', 'assistant', { status: 'error', error }))).toBe(true);
    expect(isContextOverflow(msg('a', 'u', 'assistant', { status: 'error', error: { code: 'ENGINE_CRASHED', message: 'x' } }))).toBe(false);
    expect(isContextOverflow(msg('a', 'u', 'assistant', { status: 'complete' }))).toBe(false);
  });

  it('offers twice the context when the model was trained for it', () => {
    expect(raiseContextTarget(model({ contextSize: 4096 }))).toBe(8192);
    expect(raiseContextTarget(model({ contextSize: 4096, trainedContextLength: 0 }))).toBe(8192);
    expect(raiseContextTarget(model({ contextSize: 32_768, trainedContextLength: 32_768 }))).toBeNull();
    expect(raiseContextTarget(model({ contextSize: 0 }))).toBeNull();
    expect(raiseContextTarget(null)).toBeNull();
  });

  it("trusts the planner's row for the pair the model runs", () => {
    const plan = cpuPlan({ contextSize: 8192, rows: [planRow('f16', 'f16', { fits: false }), planRow('q8_0', 'q8_0'), planRow('q4_0', 'q4_0', { refused: 'head size' })] });
    expect(raiseFits(plan, model({ kvType: { k: 'f16', v: 'f16' } }))).toBe(false);
    expect(raiseFits(plan, model({ kvType: { k: 'q8_0', v: 'q8_0' } }))).toBe(true);
    expect(raiseFits(plan, model({ kvType: { k: 'q4_0', v: 'q4_0' } }))).toBe(false);
    // A host that does not say which pair runs: the planner's own pick.
    expect(raiseFits({ ...plan, auto: { kType: 'q8_0', vType: 'q8_0' } }, model({ kvType: undefined }))).toBe(true);
    expect(raiseFits({ ...plan, auto: null }, model({ kvType: undefined }))).toBe(false);
  });
});

describe("a chat's overflow choices", () => {
  it("name the model's policy, then the three policies", () => {
    const choices = chatPolicyChoices('stop', model());
    expect(choices.map((c) => [c.value, c.label])).toEqual([
      [null, 'Model default (Stop and ask)'],
      ['drop-oldest', 'Drop oldest messages'],
      ['streaming', 'StreamingLLM window'],
      ['stop', 'Stop and ask'],
    ]);
    expect(choices.every((c) => c.disabledReason === undefined)).toBe(true);
    expect(chatPolicyChoices(null, null)[0]?.label).toBe('Model default');
  });

  it("refuse StreamingLLM, with the reason, when the loaded model's K is quantized", () => {
    const choices = chatPolicyChoices('drop-oldest', model({ kvType: { k: 'q8_0', v: 'q8_0' } }));
    expect(choices.find((c) => c.value === 'streaming')?.disabledReason).toBe("Not with this model's quantized K (q8_0): it needs an F16 K.");
    expect(choices.filter((c) => c.disabledReason !== undefined).map((c) => c.value)).toEqual(['streaming']);
    // A quantized V alone erases nothing it cannot.
    expect(chatPolicyChoices('drop-oldest', model({ kvType: { k: 'f16', v: 'q4_0' } })).some((c) => c.disabledReason)).toBe(false);
  });
});
