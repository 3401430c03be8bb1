/**
 * Reconnect delay for attempt n (0-based): exponential from `baseMs`, capped at `maxMs`, with
 * jitter so that several tabs do not hammer a restarting host in lockstep.
 */
export function backoffDelay(attempt: number, options: { baseMs?: number; maxMs?: number; random?: () => number } = {}): number {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 10_000;
  const random = options.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.max(0, Math.min(attempt, 20)));
  // Between 50% and 100% of the exponential step.
  return Math.round(exp * (0.5 + 0.5 * random()));
}
