/**
 * Ownership of subscriptions and resources. Whatever starts something that must be stopped
 * (a listener, a timer, a child resource) gets back a `Disposable`, and its owner keeps it in a
 * `DisposableStore` that it disposes when it is itself disposed, so nothing is left subscribed
 * to a dead object. Disposing twice is harmless.
 */
export interface Disposable {
  dispose(): void;
}

/** Wraps a cleanup function; it runs at most once. */
export function toDisposable(cleanup: () => void): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      cleanup();
    },
  };
}

/** Owns many disposables and disposes them together, newest first. */
export class DisposableStore implements Disposable {
  readonly #items: Disposable[] = [];
  #disposed = false;

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Takes ownership; an item added after `dispose` is disposed at once. */
  add<T extends Disposable>(item: T): T {
    if (this.#disposed) item.dispose();
    else this.#items.push(item);
    return item;
  }

  /** Disposes every item even if one throws, then rethrows the first error. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    let first: unknown;
    let failed = false;
    for (const item of this.#items.splice(0).reverse()) {
      try {
        item.dispose();
      } catch (error) {
        if (!failed) first = error;
        failed = true;
      }
    }
    if (failed) throw first;
  }
}
