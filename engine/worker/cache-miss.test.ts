import type { Token } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { clipEnd, clipStart, commonPrefix, describeMiss, MIN_LOST_TOKENS, realigns, worstMiss, type Divergence } from './cache-miss.ts';

describe('commonPrefix', () => {
  it('counts the leading items two lists share, for tokens and chunk keys alike', () => {
    expect(commonPrefix([1, 2, 3], [1, 2, 4])).toBe(2);
    expect(commonPrefix([1, 2], [1, 2, 3])).toBe(2);
    expect(commonPrefix([], [1])).toBe(0);
    expect(commonPrefix(new Int32Array([5, 6, 7]), [5, 6, 7])).toBe(3);
    expect(commonPrefix(['k1', 'k2', 'x'], ['k1', 'k2', 'k3'])).toBe(2);
  });
});

describe('worstMiss', () => {
  /** A stored conversation: `shared` tokens of the prompt, then 9 (a changed digit), then the prompt's own text again. */
  const stored = (prompt: readonly number[], shared: number, storedTokens: number): Divergence => ({
    at: shared,
    storedTokens,
    after: [9, ...prompt.slice(shared + 1, shared + 32)],
  });
  const prompt = Array.from({ length: 120 }, (_, i) => 100 + i);

  it('reports the conversation sharing the longest start when it lost enough and the texts meet again', () => {
    expect(worstMiss([stored(prompt, 10, 200), stored(prompt, 50, 100)], prompt)).toEqual(stored(prompt, 50, 100));
    expect(worstMiss([stored(prompt, 50, 50 + MIN_LOST_TOKENS)], prompt)).toEqual(stored(prompt, 50, 50 + MIN_LOST_TOKENS));
  });

  it('says nothing for an extension, a prefix, a small loss, or nothing cached', () => {
    // The prompt extends the stored conversation: it ends where the prompt goes on.
    expect(worstMiss([{ at: 100, storedTokens: 100, after: [] }], prompt)).toBeNull();
    // The prompt stops inside the stored conversation: nothing of the prompt differs.
    expect(worstMiss([stored(prompt, 80, 200)], prompt.slice(0, 80))).toBeNull();
    expect(worstMiss([stored(prompt, 50, 50 + MIN_LOST_TOKENS - 1)], prompt)).toBeNull();
    expect(worstMiss([], prompt)).toBeNull();
  });

  it('says nothing when the two only start alike: after the difference they never meet again', () => {
    const other: Divergence = { at: 20, storedTokens: 300, after: Array.from({ length: 32 }, (_, i) => 900 + i) };
    expect(worstMiss([other], prompt)).toBeNull();
    // A longer replacement (an edited word) that meets the prompt again further on is a miss.
    const edited: Divergence = { at: 20, storedTokens: 300, after: [7, 8, 9, 7, 8, ...prompt.slice(24, 50)] };
    expect(realigns(edited, prompt)).toBe(true);
    expect(worstMiss([edited], prompt)).toEqual(edited);
  });

  it('on a tie prefers the conversation that lost least: extending one cached conversation missed nothing', () => {
    expect(worstMiss([stored(prompt, 60, 200), { at: 60, storedTokens: 60, after: [] }], prompt)).toBeNull();
  });
});

describe('describeMiss', () => {
  // One character per token.
  const model = { detokenize: (tokens: readonly Token[]) => String.fromCharCode(...tokens) };
  const tokens = (text: string) => Array.from(text, (c) => c.charCodeAt(0) as Token);

  it('gives the shared text before the difference and both sides after it, clipped', () => {
    const prompt = tokens(`${'x'.repeat(100)}The melon tree stands ${'y'.repeat(100)}`);
    const stored = tokens(`${'x'.repeat(100)}The apple tree stands ${'z'.repeat(100)}`);
    const at = commonPrefix(prompt, stored);
    const miss = describeMiss(model, prompt, { at, storedTokens: stored.length, after: stored.slice(at, at + 32) });
    expect(miss).toMatchObject({ atToken: 104, promptTokens: prompt.length, storedTokens: stored.length });
    expect(miss.before).toMatch(/x+The $/);
    expect(miss.sent.startsWith('melon tree')).toBe(true);
    expect(miss.stored.startsWith('apple tree')).toBe(true);
    expect(miss.before.length).toBeLessThanOrEqual(60);
  });

  it('clips by code points, never splitting a character', () => {
    expect(clipEnd('ab😀c', 2)).toBe('😀c');
    expect(clipStart('😀😀x', 2)).toBe('😀😀');
    expect(clipStart('short')).toBe('short');
  });
});
