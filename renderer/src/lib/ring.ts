/**
 * A bounded ring buffer that charts read without React, so a tick costs no render and the
 * page's memory stays flat however long it is open. Pushing never allocates once full, and
 * listeners are told after each push so a chart can schedule one redraw per animation frame.
 */
export interface Ring<T> {
  readonly capacity: number;
  readonly size: number;
  push(item: T): void;
  /** Oldest first. */
  forEach(visit: (item: T, index: number) => void): void;
  toArray(): T[];
  latest(): T | undefined;
  clear(): void;
  /** Called after every push and clear; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

/** 60 s of Cache view ticks at 4 Hz. */
export const cacheRingCapacity = 240;

/** 5 minutes of a remote engine's `/metrics` readings at about 1 Hz. */
export const remoteRingCapacity = 300;

export function createRing<T>(capacity: number): Ring<T> {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('a ring needs a capacity of at least 1');
  const items: (T | undefined)[] = new Array<T | undefined>(capacity);
  const listeners = new Set<() => void>();
  // `start` is the oldest item's index; `size` how many are held.
  let start = 0;
  let size = 0;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const at = (i: number) => items[(start + i) % capacity] as T;
  return {
    capacity,
    get size() {
      return size;
    },
    push(item) {
      if (size < capacity) {
        items[(start + size) % capacity] = item;
        size += 1;
      } else {
        items[start] = item;
        start = (start + 1) % capacity;
      }
      notify();
    },
    forEach(visit) {
      for (let i = 0; i < size; i++) visit(at(i), i);
    },
    toArray() {
      const out: T[] = [];
      for (let i = 0; i < size; i++) out.push(at(i));
      return out;
    },
    latest() {
      return size === 0 ? undefined : at(size - 1);
    },
    clear() {
      items.fill(undefined);
      start = 0;
      size = 0;
      notify();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
