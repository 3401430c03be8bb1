import type { Token } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { clipEnd, clipStart, commonPrefix, describeMiss, MIN_LOST_TOKENS, worstMiss, type Divergence } from './cache-miss.ts';

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
  const at = (position: number, storedTokens: number): Divergence => ({ at: position, storedTokens, after: [] });

  it('reports the conversation sharing the longest start when it lost enough', () => {
    expect(worstMiss([at(10, 200), at(50, 100)], 120)).toEqual(at(50, 100));
    expect(worstMiss([at(50, 50 + MIN_LOST_TOKENS)], 60)).toEqual(at(50, 50 + MIN_LOST_TOKENS));
  });

  it('says nothing for an extension, a prefix, a small loss, or nothing cached', () => {
    // The prompt extends the stored conversation: it ends where the prompt goes on.
    expect(worstMiss([at(100, 100)], 150)).toBeNull();
    // The prompt stops inside the stored conversation: nothing of the prompt differs.
    expect(worstMiss([at(80, 200)], 80)).toBeNull();
    expect(worstMiss([at(50, 50 + MIN_LOST_TOKENS - 1)], 120)).toBeNull();
    expect(worstMiss([], 10)).toBeNull();
  });

  it('on a tie prefers the conversation that lost least: extending one cached conversation missed nothing', () => {
    expect(worstMiss([at(60, 200), at(60, 60)], 100)).toBeNull();
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
