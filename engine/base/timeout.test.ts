import { afterEach, describe, expect, it, vi } from 'vitest';
import { settlesWithin, within } from './timeout.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('within', () => {
  it('answers the value when the promise settles in time, and clears its timer', async () => {
    vi.useFakeTimers();
    const answer = within(Promise.resolve(7), 1000, 'late');
    await expect(answer).resolves.toBe(7);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('answers onTimeout when the promise is slower, and clears its timer', async () => {
    vi.useFakeTimers();
    const never = new Promise<number>(() => undefined);
    const answer = within(never, 1000, 'late' as const);
    await vi.advanceTimersByTimeAsync(1000);
    await expect(answer).resolves.toBe('late');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with the promise\'s rejection, and clears its timer', async () => {
    vi.useFakeTimers();
    const answer = within(Promise.reject(new Error('failed')), 1000, 'late');
    await expect(answer).rejects.toThrow('failed');
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('settlesWithin', () => {
  it('is true for a promise that resolves or rejects in time', async () => {
    await expect(settlesWithin(Promise.resolve('x'), 1000)).resolves.toBe(true);
    await expect(settlesWithin(Promise.reject(new Error('no')), 1000)).resolves.toBe(true);
  });

  it('is false, never a rejection, for one that does not settle in time', async () => {
    vi.useFakeTimers();
    const answer = settlesWithin(new Promise(() => undefined), 50);
    await vi.advanceTimersByTimeAsync(50);
    await expect(answer).resolves.toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });
});
