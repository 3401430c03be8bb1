/**
 * The running SHA-256 of parts whose transfer stopped in this process (a pause, a failure, a full
 * disk), so that a resume goes on from the state instead of re-reading the prefix on disk: at
 * ~0.4 GB/s that is a minute and more for a large model paused near its end.
 *
 * A state is trusted only while its `.part` is exactly the file it was taken for: the same size
 * (the bytes it covers), the same inode and the same modification time. A file that grew, shrank
 * or was replaced while stopped is hashed again from its first byte. Node cannot serialize a Hash,
 * so nothing survives a restart: the next run re-hashes the prefix, as before.
 *
 * Bounded by the queue: states live only for downloads still in it, and go with a cancel, a clear
 * or a finished part.
 */
import type { Hash } from 'node:crypto';
import { stat } from 'node:fs/promises';

/** A SHA-256 over the first `bytes` bytes of a part file (-1: it covers nothing known). */
export interface HashState {
  readonly hash: Hash;
  bytes: number;
}

/** What `take` found: the state to go on from, or null with why none could be used. */
export interface TakenHash {
  readonly state: HashState | null;
  readonly why: string | null;
}

/** Where one part's running hash waits between its transfers (the queue binds a slot to a part). */
export interface HashSlot {
  /** The kept state when the part file is still what it covered; removed from memory either way. */
  take(): Promise<TakenHash>;
  /** Keeps `state` for the part file as it is on disk now; call it only once no write is pending. */
  keep(state: HashState): Promise<void>;
}

/** What the part file was when its state was kept. */
interface Kept {
  readonly state: HashState;
  readonly ino: number;
  readonly dev: number;
  readonly mtimeMs: number;
}

export class HashMemory {
  /** Download id → part file → kept state. */
  readonly #kept = new Map<string, Map<string, Kept>>();

  /** A slot for one part of one download. */
  slot(owner: string, file: string): HashSlot {
    return { take: () => this.take(owner, file), keep: (state) => this.keep(owner, file, state) };
  }

  async keep(owner: string, file: string, state: HashState): Promise<void> {
    this.#drop(owner, file);
    if (state.bytes < 0) return;
    const info = await stat(file).catch(() => null);
    // Only a file that holds exactly the hashed bytes is worth remembering (a write torn by a
    // full disk that could not be cut back leaves more).
    if (!info || info.size !== state.bytes) return;
    let parts = this.#kept.get(owner);
    if (!parts) this.#kept.set(owner, (parts = new Map()));
    parts.set(file, { state, ino: info.ino, dev: info.dev, mtimeMs: info.mtimeMs });
  }

  async take(owner: string, file: string): Promise<TakenHash> {
    const kept = this.#kept.get(owner)?.get(file);
    if (!kept) return { state: null, why: null };
    this.#drop(owner, file);
    const info = await stat(file).catch(() => null);
    if (!info) return { state: null, why: 'the partial file is gone' };
    if (info.size !== kept.state.bytes) return { state: null, why: `the partial file holds ${info.size} bytes, not the ${kept.state.bytes} hashed before` };
    if (info.ino !== kept.ino || info.dev !== kept.dev) return { state: null, why: 'the partial file was replaced' };
    if (info.mtimeMs !== kept.mtimeMs) return { state: null, why: 'the partial file was written to' };
    return { state: kept.state, why: null };
  }

  /** Drops every state of a download (cancelled, cleared, finished). */
  forget(owner: string): void {
    this.#kept.delete(owner);
  }

  /** States kept now, over every download. */
  get size(): number {
    let count = 0;
    for (const parts of this.#kept.values()) count += parts.size;
    return count;
  }

  #drop(owner: string, file: string): void {
    const parts = this.#kept.get(owner);
    if (!parts) return;
    parts.delete(file);
    if (parts.size === 0) this.#kept.delete(owner);
  }
}
