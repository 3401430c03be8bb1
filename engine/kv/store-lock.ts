/**
 * The KV store's named FIFO lock (style.md §6: "changes run under a named lock"). Every mutation
 * of the store (writing chunks, committing manifests, eviction, GC) runs under it, so a save and
 * an eviction can never interleave between a chunk's rename and its manifest's commit. A task that
 * throws releases the lock and rethrows to its own caller only.
 */
export class StoreLock {
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
