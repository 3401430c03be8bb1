/**
 * A named FIFO lock: `run` calls wait their turn in arrival order. Every change to a long-lived
 * resource (a loaded model, the KV store, the model manager) runs under one, so two changes never
 * interleave between their awaits. A task that throws releases the lock and rethrows to its own
 * caller only; the next task still runs.
 */
export class Lock {
  readonly name: string;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }

  run<T>(task: () => Promise<T> | T): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(task);
    this.#tail = result
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.#pending--;
      });
    return result;
  }
}
