/**
 * A FIFO lock: `run` calls wait their turn in arrival order (style.md §6, "changes run under a
 * named lock"). A task that throws releases the lock and rethrows to its own caller only.
 */
export class FifoLock {
  readonly name: string;
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.waiting;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      this.waiting--;
    });
    return result;
  }
}
