/**
 * LargeBufferPool: one buffer kept for reuse, handed out at the exact size asked for, replaced by
 * a larger one when too small, and let go after its time or on clear().
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LargeBufferPool } from './large-buffer.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('LargeBufferPool', () => {
  it('hands the kept buffer to the next request that fits, at the size asked for', () => {
    const pool = new LargeBufferPool();
    const first = pool.take(1000);
    expect(first.byteLength).toBe(1000);
    expect(first.byteOffset).toBe(0);
    first[0] = 42;
    pool.give(first);
    expect(pool.heldBytes).toBeGreaterThanOrEqual(1000);
    const second = pool.take(1050);
    // The room allocated for growth served it: the same memory.
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteLength).toBe(1050);
    expect(second[0]).toBe(42);
    expect(pool.heldBytes).toBe(0);
    const bigger = pool.take(4000);
    expect(bigger.buffer).not.toBe(first.buffer);
  });

  it('keeps the larger of two buffers given back, and lets it go after its time or on clear()', () => {
    vi.useFakeTimers();
    const pool = new LargeBufferPool(1000);
    const small = pool.take(100);
    const large = pool.take(10_000);
    pool.give(large);
    pool.give(small);
    expect(pool.take(5000).buffer).toBe(large.buffer);
    pool.give(large);
    vi.advanceTimersByTime(999);
    expect(pool.heldBytes).toBeGreaterThan(0);
    vi.advanceTimersByTime(2);
    expect(pool.heldBytes).toBe(0);
    pool.give(small);
    pool.clear();
    expect(pool.heldBytes).toBe(0);
  });
});
