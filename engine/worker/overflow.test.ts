import type { LlamaContextSequence } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { kvCacheTypes, type KvCacheType } from '../contract/index.ts';
import type { PromptMessage } from '../protocol.ts';
import { checkKvEdit, KvEditRefused, KvGuard, normalizeRanges, planStream, rebuildWindow, replyReserve, SINK_TOKENS, windowCells, type KvEditTarget } from './overflow.ts';
import { checkResolvedProfile, ggmlKvTypeName, kvTypeFromGgml } from './kv-types.ts';

const quantized = kvCacheTypes.filter((t) => t !== 'f16');

/** A sequence that records the erases it is asked for. */
function fakeSequence(length: number): KvEditTarget & { erased: { start: number; end: number }[][] } {
  const erased: { start: number; end: number }[][] = [];
  return {
    erased,
    nextTokenIndex: length,
    async eraseContextTokenRanges(ranges) {
      erased.push(ranges);
    },
  };
}

describe('the guard (checkKvEdit)', () => {
  it('allows tail erases and full clears for every K type', () => {
    for (const k of kvCacheTypes) {
      expect(checkKvEdit(k, { length: 100, ranges: [{ start: 40, end: 100 }] })).toEqual({ ok: true, value: { tail: true, from: 40, ranges: [{ start: 40, end: 100 }] } });
      expect(checkKvEdit(k, { length: 100, ranges: [{ start: 0, end: 100 }] }).ok).toBe(true);
      // Past the end is clamped to a tail erase; touching ranges merge into one.
      expect(checkKvEdit(k, { length: 100, ranges: [{ start: 90, end: 500 }, { start: 60, end: 90 }] })).toMatchObject({ ok: true, value: { tail: true, from: 60 } });
      // Nothing to erase is nothing to refuse.
      expect(checkKvEdit(k, { length: 100, ranges: [{ start: 100, end: 120 }, { start: 5, end: 5 }] })).toMatchObject({ ok: true, value: { ranges: [] } });
    }
  });

  it('refuses every middle erase (a shift of later cells) with a quantized K, and allows it with F16', () => {
    const middles = [
      [{ start: 4, end: 50 }],
      [{ start: 0, end: 10 }],
      [{ start: 99, end: 100 }, { start: 10, end: 20 }],
      [{ start: 1, end: 99 }],
    ];
    for (const ranges of middles) {
      for (const k of quantized) {
        const result = checkKvEdit(k, { length: 100, ranges });
        expect(result.ok, `${k} ${JSON.stringify(ranges)}`).toBe(false);
        if (!result.ok) expect(result.error).toMatchObject({ code: 'CONTEXT_OVERFLOW', message: expect.stringContaining(k.toUpperCase()), hint: expect.stringContaining('drop oldest') });
      }
      expect(checkKvEdit('f16', { length: 100, ranges })).toMatchObject({ ok: true, value: { tail: false } });
    }
  });

  it('never throws on odd input', () => {
    expect(checkKvEdit('q8_0', { length: -1, ranges: [] }).ok).toBe(false);
    expect(checkKvEdit('q8_0', { length: 10, ranges: [{ start: 8, end: 3 }] })).toMatchObject({ ok: false });
    expect(normalizeRanges(10, [{ start: 8, end: 3 }])).toEqual([{ start: 3, end: 8 }]);
  });
});

describe('KvGuard', () => {
  it('never issues a refused erase, and issues allowed ones clamped', async () => {
    for (const k of quantized) {
      const seq = fakeSequence(300);
      const marks: number[] = [];
      const guard = new KvGuard({ kType: k, onFragmented: (_s, from) => marks.push(from) });
      const refused = await guard.erase(seq, [{ start: 4, end: 100 }]);
      expect(refused.ok).toBe(false);
      expect(seq.erased).toEqual([]);
      expect((await guard.truncate(seq, 120)).ok).toBe(true);
      expect((await guard.truncate(seq, 0)).ok).toBe(true);
      expect(seq.erased).toEqual([[{ start: 120, end: 300 }], [{ start: 0, end: 300 }]]);
      // Tail erases leave the cache a clean prefix.
      expect(marks).toEqual([]);
    }
  });

  it('marks the sequence fragmented from an allowed middle erase (F16)', async () => {
    const seq = fakeSequence(300);
    const marks: number[] = [];
    const guard = new KvGuard({ kType: 'f16', onFragmented: (_s, from) => marks.push(from) });
    expect((await guard.erase(seq, [{ start: 4, end: 100 }])).ok).toBe(true);
    expect(seq.erased).toEqual([[{ start: 4, end: 100 }]]);
    expect(marks).toEqual([4]);
  });

  it("refuses node-llama-cpp's context shift with a quantized K or a policy that never shifts, before anything is erased", () => {
    const sequence = { nextTokenIndex: 256 } as LlamaContextSequence;
    for (const k of quantized) {
      const strategy = new KvGuard({ kType: k, onFragmented: () => expect.unreachable() }).shiftStrategy({ keep: SINK_TOKENS, allowed: true });
      expect(() => strategy({ sequence, size: 32 })).toThrow(KvEditRefused);
    }
    const never = new KvGuard({ kType: 'f16' }).shiftStrategy({ keep: SINK_TOKENS, allowed: false });
    expect(() => never({ sequence, size: 32 })).toThrow(/end of the context/);
    const shifted: number[] = [];
    const marks: number[] = [];
    const f16 = new KvGuard({ kType: 'f16', onFragmented: (_s, from) => marks.push(from) }).shiftStrategy({ keep: SINK_TOKENS, allowed: true, onShift: (_s, n) => shifted.push(n) });
    expect(f16({ sequence, size: 32 })).toEqual([{ start: 4, end: 36 }]);
    expect(shifted).toEqual([32]);
    expect(marks).toEqual([4]);
  });
});

const m = (role: PromptMessage['role'], text: string): PromptMessage => ({ role, text });

describe('rebuildWindow', () => {
  const chat = [m('system', 'S'), m('user', 'u1'), m('assistant', 'a1'), m('user', 'u2'), m('assistant', 'a2'), m('user', 'u3')];
  const size = (list: readonly PromptMessage[]) => list.reduce((n, x) => n + x.text.length + 1, 0);

  it('keeps everything that fits', () => {
    expect(rebuildWindow(chat, () => true)).toEqual({ messages: chat, dropped: 0 });
  });

  it('drops the oldest messages, keeps the system prompt, and starts with a user message', () => {
    const w = rebuildWindow(chat, (list) => size(list) <= 11);
    expect(w).toEqual({ messages: [m('system', 'S'), m('user', 'u2'), m('assistant', 'a2'), m('user', 'u3')], dropped: 2 });
    const tight = rebuildWindow(chat, (list) => size(list) <= 5);
    expect(tight).toEqual({ messages: [m('system', 'S'), m('user', 'u3')], dropped: 4 });
  });

  it('is null when even the system prompt and the last message do not fit', () => {
    expect(rebuildWindow(chat, (list) => size(list) <= 4)).toBeNull();
    expect(rebuildWindow([m('user', 'hello')], () => false)).toBeNull();
  });

  it('works without a system prompt and asks few times', () => {
    let calls = 0;
    const long = Array.from({ length: 200 }, (_, i) => m(i % 2 === 0 ? 'user' : 'assistant', `message ${i}`));
    const w = rebuildWindow(long, (list) => (calls++, list.length <= 11));
    expect(w?.messages[0]?.role).toBe('user');
    expect(w?.messages.length).toBeLessThanOrEqual(11);
    expect(w?.messages.at(-1)).toEqual(long.at(-1));
    expect(calls).toBeLessThan(12);
  });

  it('reserves a quarter of the context at most for the reply', () => {
    expect(replyReserve(256, 1024, 16)).toBe(64);
    expect(replyReserve(8192, 100, 16)).toBe(100);
    expect(replyReserve(32, 1024, 16)).toBe(16);
  });
});

describe('planStream', () => {
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

  it('starts fresh with the sinks and the prompt\'s last tokens when nothing matches', () => {
    const prompt = range(1000, 1300);
    expect(planStream(prompt, [], null, 200)).toEqual({ kind: 'fresh', cut: 104, evaluate: [...range(1000, 1004), ...range(1104, 1300)] });
    // A prompt that fits is read whole.
    expect(planStream(range(0, 50), [], null, 200)).toEqual({ kind: 'fresh', cut: SINK_TOKENS, evaluate: range(0, 50) });
  });

  it('continues a plain prefix by evaluating only the rest (the shift then rolls it)', () => {
    const prompt = range(0, 300);
    expect(planStream(prompt, range(0, 250), null, 200)).toEqual({ kind: 'continue', keep: 250, cut: SINK_TOKENS, evaluate: range(250, 300) });
    // The sequence holds more than the prompt shares: the tail after it goes.
    expect(planStream(prompt, [...range(0, 280), 9, 9, 9], null, 200)).toMatchObject({ kind: 'continue', keep: 280 });
  });

  it('continues a rolled window when the prompt extends its stream', () => {
    const stream = range(0, 400);
    const window = { chatId: 'c', tokens: stream, cut: 250 };
    const cells = windowCells(window);
    expect(cells).toEqual([...range(0, 4), ...range(250, 400)]);
    const prompt = [...range(0, 400), ...range(5000, 5030)];
    expect(planStream(prompt, cells, window, 200)).toEqual({ kind: 'continue', keep: 154, cut: 250, evaluate: range(5000, 5030) });
    // The last reply was re-tokenized differently: keep what still matches.
    const edited = [...range(0, 390), 7, 7];
    expect(planStream(edited, cells, window, 200)).toEqual({ kind: 'continue', keep: 144, cut: 250, evaluate: [7, 7] });
  });

  it('starts fresh when the window is not this prompt\'s or the cells do not hold it', () => {
    const window = { chatId: 'c', tokens: range(0, 400), cut: 250 };
    const cells = windowCells(window);
    // An edit before the gap (in the evicted part).
    expect(planStream([...range(0, 100), 1, ...range(101, 420)], cells, window, 200).kind).toBe('fresh');
    // The sequence was changed behind the window's back.
    expect(planStream(range(0, 420), cells.slice(0, 50), window, 200).kind).toBe('fresh');
  });

  it('always leaves a token to evaluate', () => {
    const prompt = range(0, 100);
    const plan = planStream(prompt, range(0, 100), null, 200);
    expect(plan).toMatchObject({ kind: 'continue', keep: 99, evaluate: [99] });
  });
});

describe('KV type names', () => {
  it("map Hearth's names to node-llama-cpp's and back", () => {
    const numbers: Record<KvCacheType, number> = { f16: 1, q8_0: 8, q5_1: 7, q5_0: 6, q4_1: 3, q4_0: 2, iq4_nl: 20 };
    for (const t of kvCacheTypes) {
      expect(ggmlKvTypeName(t)).toBe(t.toUpperCase());
      expect(kvTypeFromGgml(numbers[t])).toBe(t);
    }
    expect(kvTypeFromGgml(0)).toBeNull();
    expect(kvTypeFromGgml(undefined)).toBeNull();
  });

  it('check a resolved profile from the host', () => {
    const good = { kType: 'q8_0', vType: 'q4_0', flashAttention: true, contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' } as const;
    expect(checkResolvedProfile(good)).toBeNull();
    expect(checkResolvedProfile({ ...good, kType: 'q3_k' as KvCacheType })).toMatch(/K type/);
    expect(checkResolvedProfile({ ...good, gpuLayers: -1 })).toMatch(/gpuLayers/);
    expect(checkResolvedProfile({ ...good, slots: 0 })).toMatch(/slots/);
  });
});
