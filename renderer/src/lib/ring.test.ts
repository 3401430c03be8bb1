import { describe, expect, it } from 'vitest';
import { createRing } from './ring.ts';

describe('ring buffer', () => {
  it('keeps the newest items up to its capacity, oldest first', () => {
    const ring = createRing<number>(3);
    expect(ring.size).toBe(0);
    expect(ring.latest()).toBeUndefined();
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    for (const n of [3, 4, 5]) ring.push(n);
    expect(ring.size).toBe(3);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.latest()).toBe(5);
    const seen: [number, number][] = [];
    ring.forEach((item, i) => seen.push([item, i]));
    expect(seen).toEqual([[3, 0], [4, 1], [5, 2]]);
  });

  it('stays bounded over many pushes', () => {
    const ring = createRing<number>(240);
    for (let i = 0; i < 10_000; i++) ring.push(i);
    expect(ring.size).toBe(240);
    expect(ring.toArray()[0]).toBe(9760);
    expect(ring.latest()).toBe(9999);
  });

  it('tells subscribers after each push and clear, until they unsubscribe', () => {
    const ring = createRing<string>(2);
    let calls = 0;
    const off = ring.subscribe(() => calls++);
    ring.push('a');
    ring.push('b');
    ring.clear();
    expect(calls).toBe(3);
    expect(ring.size).toBe(0);
    off();
    ring.push('c');
    expect(calls).toBe(3);
    expect(ring.toArray()).toEqual(['c']);
  });

  it('refuses a capacity below 1', () => {
    expect(() => createRing(0)).toThrow(RangeError);
  });
});
