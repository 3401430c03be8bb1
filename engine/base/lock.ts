/**
 * A named lock: `run` calls wait their turn, higher `priority` first and in arrival order within
 * a priority. Every change to a long-lived resource (a loaded model, the KV store, the model
 * manager) runs under one, so two changes never interleave between their awaits. A task that
 * throws releases the lock and rethrows to its own caller only; the next task still runs.
 *
 * Priority only reorders tasks still waiting: the running task is never interrupted, and a task
 * already started keeps the lock until it settles.
 */
export interface RunOptions {
  /** Higher runs first among the waiting tasks; default 0. */
  readonly priority?: number;
}

interface Waiting {
  readonly priority: number;
  readonly start: () => void;
}

export class Lock {
  readonly name: string;
  /** Waiting tasks, highest priority first, FIFO within a priority. */
  readonly #queue: Waiting[] = [];
  #running = false;
  #pending = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }

  run<T>(task: () => Promise<T> | T, options: RunOptions = {}): Promise<T> {
    const priority = options.priority ?? 0;
    this.#pending++;
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        // Started from a microtask, as the promise chain this lock used to be did: a task queued
        // right after a release still sees the caller's synchronous code finished first.
        void Promise.resolve()
          .then(task)
          .then(resolve, reject)
          .finally(() => {
            this.#pending--;
            this.#running = false;
            this.#next();
          });
      };
      // After every waiting task of the same or a higher priority: FIFO within a priority.
      let at = this.#queue.findIndex((waiting) => waiting.priority < priority);
      if (at === -1) at = this.#queue.length;
      this.#queue.splice(at, 0, { priority, start });
      this.#next();
    });
  }

  #next(): void {
    if (this.#running) return;
    const waiting = this.#queue.shift();
    if (!waiting) return;
    this.#running = true;
    waiting.start();
  }
}
