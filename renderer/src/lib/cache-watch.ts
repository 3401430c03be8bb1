/**
 * Keeps `cache.watch`'s lease alive while the Cache view is on screen and the page is visible,
 * so the host samples nothing for a hidden view. Nothing is sent to stop: the host's
 * lease runs out and its ticks stop by themselves, which also covers a closed or crashed page.
 */
import type { Result } from '../contract.ts';

export interface VisibilitySource {
  readonly visibilityState: DocumentVisibilityState;
  addEventListener(type: 'visibilitychange', listener: () => void): void;
  removeEventListener(type: 'visibilitychange', listener: () => void): void;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** After a failed call (engine restarting, connection lost) the next try comes this much later. */
export const watchRetryMs = 2000;

const defaultTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Calls `watch` at once when visible, again at half of each answer's lease (so one late renewal
 * leaves no gap), and at once on becoming visible again. Returns the stop function.
 */
export function watchWhileVisible(
  watch: () => Promise<Result<{ readonly leaseMs: number }>>,
  doc: VisibilitySource = document,
  timers: Timers = defaultTimers,
): () => void {
  let timer: unknown = null;
  let stopped = false;
  // Bumped whenever a pending answer must no longer schedule the next call.
  let generation = 0;

  const clear = () => {
    if (timer !== null) timers.clearTimeout(timer);
    timer = null;
  };

  const renew = async () => {
    clear();
    if (stopped || doc.visibilityState !== 'visible') return;
    generation += 1;
    const mine = generation;
    const result = await watch();
    if (stopped || mine !== generation || doc.visibilityState !== 'visible') return;
    const delay = result.ok ? Math.max(250, result.value.leaseMs / 2) : watchRetryMs;
    timer = timers.setTimeout(() => void renew(), delay);
  };

  const onVisibility = () => {
    generation += 1;
    clear();
    if (doc.visibilityState === 'visible') void renew();
  };

  doc.addEventListener('visibilitychange', onVisibility);
  void renew();
  return () => {
    stopped = true;
    clear();
    doc.removeEventListener('visibilitychange', onVisibility);
  };
}
