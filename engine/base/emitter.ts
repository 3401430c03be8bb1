import { toDisposable, type Disposable } from './disposable.ts';

/** A minimal typed event source. A throwing listener is reported, never breaks the emitter. */
export class Emitter<T> implements Disposable {
  readonly #listeners = new Set<(value: T) => void>();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = (error) => console.error('Hearth: an event listener threw:', error)) {
    this.#onListenerError = onListenerError;
  }

  /** Subscribes until the returned disposable is disposed. */
  on(listener: (value: T) => void): Disposable {
    this.#listeners.add(listener);
    return toDisposable(() => this.#listeners.delete(listener));
  }

  /** Listeners subscribed now. */
  get size(): number {
    return this.#listeners.size;
  }

  emit(value: T): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(value);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Drops every listener: for the emitter's owner, when the source itself goes away. */
  dispose(): void {
    this.#listeners.clear();
  }
}
