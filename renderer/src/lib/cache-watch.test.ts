import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Result } from '../contract.ts';
import { watchRetryMs, watchWhileVisible, type VisibilitySource } from './cache-watch.ts';

function fakeDocument(initial: DocumentVisibilityState = 'visible') {
  const listeners = new Set<() => void>();
  const doc = {
    visibilityState: initial,
    addEventListener: (_type: 'visibilitychange', listener: () => void) => listeners.add(listener),
    removeEventListener: (_type: 'visibilitychange', listener: () => void) => listeners.delete(listener),
    set(state: DocumentVisibilityState) {
      doc.visibilityState = state;
      for (const listener of listeners) listener();
    },
    listeners,
  };
  return doc satisfies VisibilitySource;
}

describe('watchWhileVisible', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const lease = (leaseMs = 5000): Result<{ leaseMs: number }> => ({ ok: true, value: { leaseMs } });

  it('watches at once, renews at half the lease, and stops when told', async () => {
    const doc = fakeDocument();
    const watch = vi.fn(async () => lease());
    const stop = watchWhileVisible(watch, doc);
    expect(watch).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(2499);
    expect(watch).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(watch).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(2500 * 4);
    expect(watch).toHaveBeenCalledTimes(6);
    stop();
    expect(doc.listeners.size).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(watch).toHaveBeenCalledTimes(6);
  });

  it('pauses while the page is hidden and watches again at once when it shows', async () => {
    const doc = fakeDocument();
    const watch = vi.fn(async () => lease());
    const stop = watchWhileVisible(watch, doc);
    await vi.advanceTimersByTimeAsync(0);
    doc.set('hidden');
    await vi.advanceTimersByTimeAsync(30_000);
    expect(watch).toHaveBeenCalledTimes(1);
    doc.set('visible');
    expect(watch).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(2500);
    expect(watch).toHaveBeenCalledTimes(3);
    stop();
  });

  it('starts nothing while hidden', async () => {
    const doc = fakeDocument('hidden');
    const watch = vi.fn(async () => lease());
    const stop = watchWhileVisible(watch, doc);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(watch).not.toHaveBeenCalled();
    stop();
  });

  it('an answer that arrives after the page was hidden schedules nothing', async () => {
    const doc = fakeDocument();
    let answer: (r: Result<{ leaseMs: number }>) => void = () => undefined;
    const watch = vi.fn(() => new Promise<Result<{ leaseMs: number }>>((resolve) => (answer = resolve)));
    const stop = watchWhileVisible(watch, doc);
    doc.set('hidden');
    answer(lease());
    await vi.advanceTimersByTimeAsync(30_000);
    expect(watch).toHaveBeenCalledTimes(1);
    stop();
  });

  it('retries a failed watch after a pause', async () => {
    const doc = fakeDocument();
    const watch = vi.fn(async (): Promise<Result<{ leaseMs: number }>> => ({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'restarting' } }));
    const stop = watchWhileVisible(watch, doc);
    await vi.advanceTimersByTimeAsync(watchRetryMs - 1);
    expect(watch).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(watch).toHaveBeenCalledTimes(2);
    stop();
  });
});
