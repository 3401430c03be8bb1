/**
 * Waiting with a deadline. The promise is never cancelled, only no longer waited for: callers
 * use this where running on in the background is harmless (a save that finishes later, a hash
 * that will be cached for the next turn), and the timer is always cleared so it cannot keep a
 * process alive.
 */

/** The promise's value, or `onTimeout` if it has not settled within `ms`. A rejection rejects. */
export async function within<T, F>(promise: Promise<T>, ms: number, onTimeout: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the promise settled (resolved or rejected) within `ms`. Never rejects. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = promise.then(
    () => true,
    () => true,
  );
  return within(settled, ms, false);
}
