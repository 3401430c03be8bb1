/**
 * Buffers for whole sequence states (up to gigabytes): allocated with huge pages where possible
 * (kernels-load.ts `allocateLarge`), and one kept for a short while after use.
 *
 * Why keep one: a fresh buffer is not free. The kernel zeroes every page on first touch, a full
 * pass over the memory before any byte is copied in; on this project's build machine (a virtual
 * machine) first-touching 300 MB took 50–560 ms even with huge pages, against ~40 ms to read the
 * same bytes from the page cache (docs/decisions/state-through-memory.md). Saves and restores come
 * in bursts (a turn's save, switching chats, the next turn), so the last buffer is kept for
 * `retainMs` after its last use and handed to the next one that fits. The cost is memory: up to
 * one state's size for that long, released early by `clear()` (a model unload, closing the cache).
 */
import { allocateLarge } from './kernels-load.ts';

/** How long an unused buffer is kept. */
export const RETAIN_MS = 20_000;
/** New buffers are this much larger than asked for. */
const GROWTH = 1.125;

/**
 * A new large buffer (huge pages where possible) of at least `size` bytes, whole: a chat's state
 * grows every turn, and room for some growth spares a new buffer (and its page faults) on the
 * next turns. Pages of the room are only backed once written.
 */
export function allocateWithRoom(size: number): Buffer {
  return allocateLarge(Math.ceil(size * GROWTH));
}

export class LargeBufferPool {
  readonly #retainMs: number;
  #held: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(retainMs = RETAIN_MS) {
    this.#retainMs = retainMs;
  }

  /** Bytes held for reuse (0 when none). */
  get heldBytes(): number {
    return this.#held?.byteLength ?? 0;
  }

  /**
   * A buffer of exactly `size` bytes at offset 0 of its memory: the kept one when it is large
   * enough (then it is no longer kept), else a new one. Throws RangeError when memory runs out.
   */
  take(size: number): Buffer {
    const held = this.#held;
    if (held !== null && held.byteLength >= size) {
      this.#held = null;
      this.#stopTimer();
      return held.subarray(0, size);
    }
    // Too small to be worth keeping against the new one: let it go before allocating.
    this.clear();
    return allocateWithRoom(size).subarray(0, size);
  }

  /** Hands a buffer from `take` back; the larger of it and the kept one is kept for `retainMs`. */
  give(buffer: Uint8Array): void {
    const whole = Buffer.from(buffer.buffer, 0, buffer.buffer.byteLength);
    if (this.#held === null || whole.byteLength > this.#held.byteLength) this.#held = whole;
    this.#stopTimer();
    this.#timer = setTimeout(() => this.clear(), this.#retainMs);
    // A kept buffer never keeps the process alive.
    this.#timer.unref();
  }

  /** Lets the kept buffer go now. */
  clear(): void {
    this.#held = null;
    this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
