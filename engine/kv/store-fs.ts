/**
 * The file-system calls the KV store makes, behind one small interface so that tests can inject
 * failures (ENOSPC in the middle of a chunk write, EIO on fsync) without filling a real disk.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { err, errorText } from '../contract/index.ts';
import type { HearthError, Result } from '../contract/index.ts';
import { hearthError } from '../contract/index.ts';

/** The subset of `FileHandle` the store uses. */
export interface StoreFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The subset of `node:fs/promises` the store uses. */
export interface StoreFs {
  open(path: string, flags: string, mode?: number): Promise<StoreFileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<{ size: number; mtimeMs: number; isFile(): boolean; isDirectory(): boolean }>;
  statfs(path: string): Promise<{ bavail: number; bsize: number }>;
  /**
   * Reads the file's first bytes into `buffer` without leaving the thread, until the buffer is
   * full or the file ends; returns the count. Optional: without it, reads go through `open`.
   */
  readIntoSync?(path: string, buffer: Uint8Array): number;
}

/**
 * `readIntoSync` on the real file system. Why synchronous: on the restore path a cached chunk file
 * reads in well under a millisecond, while each thread-pool round trip of an async read (open,
 * read, close) costs more than that on a loaded machine — measured here, 62 chunk files (16 MB)
 * read in ~3 ms synchronously against 17–60 ms through the pool. The caller time-slices.
 */
export function readIntoSync(path: string, buffer: Uint8Array): number {
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < buffer.byteLength) {
      const n = readSync(fd, buffer, done, buffer.byteLength - done, done);
      if (n === 0) break;
      done += n;
    }
    return done;
  } finally {
    closeSync(fd);
  }
}

/**
 * A buffer kept between uses (restores) and let go after `idleMs` without one. Why keep it: a
 * fresh buffer's pages are faulted in on first touch, and on the restore path that cost more than
 * the reads themselves: on this project's VM a fresh 20 MB costs ~80 ms to touch against ~1 ms to
 * refill (a page fault per 4 KiB, each a host fault too under virtualization); a buffer per
 * 400 KB chunk file made a warm 16k-token restore's reads 10× the plain read time. Why let it
 * go: a chunk of a large model is tens of MB, not worth holding while the chat is idle.
 */
export class ReusableBuffer {
  readonly #idleMs: number;
  readonly #allocate: (size: number) => Buffer;
  #buffer: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;

  /** `allocate` makes a new buffer of at least `size` bytes at offset 0 of its own memory. */
  constructor(idleMs = 30_000, allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafeSlow(size)) {
    this.#idleMs = idleMs;
    this.#allocate = allocate;
  }

  /**
   * A buffer of at least `size` bytes at offset 0 of its own ArrayBuffer (aligned for typed
   * arrays, not the shared pool), whose contents are unspecified. Valid until the next `get`.
   */
  get(size: number): Buffer {
    if (this.#buffer === null || this.#buffer.byteLength < size) {
      // The old one goes first: both alive at once would need the memory of both.
      this.#buffer = null;
      this.#buffer = this.#allocate(size);
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#buffer = null;
        this.#timer = null;
      }, this.#idleMs);
      this.#timer.unref();
    } else {
      this.#timer.refresh();
    }
    return this.#buffer;
  }

  /** Lets the buffer go now. */
  clear(): void {
    this.#buffer = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** The real file system. */
export const nodeFs: StoreFs = {
  open: (path, flags, mode) => fsp.open(path, flags, mode),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  mkdir: async (path) => {
    await fsp.mkdir(path, { recursive: true });
  },
  readdir: (path) => fsp.readdir(path),
  stat: (path) => fsp.stat(path),
  statfs: (path) => fsp.statfs(path),
  readIntoSync,
};

/**
 * A file system whose writes fail with ENOSPC while the file `flag` exists, as on a full disk. The
 * fault suite's fallback (test/faults/disk.faults.test.ts) where it cannot mount a small tmpfs
 * (not root): test-only, the engine uses it only when HEARTH_TEST_KV_FULL_FLAG names the flag
 * (engine/worker/kv-cache.ts). Chunk and tail files go through it; index.db (SQLite) does not.
 */
export function fullWhileFlag(flag: string, base: StoreFs = nodeFs): StoreFs {
  const full = (): boolean => existsSync(flag);
  const enospc = (): NodeJS.ErrnoException => Object.assign(new Error('ENOSPC: no space left on device (injected), write'), { code: 'ENOSPC', syscall: 'write' });
  return {
    ...base,
    async open(path, flags, mode) {
      const handle = await base.open(path, flags, mode);
      if (flags === 'r') return handle;
      return {
        write: (buffer, offset, length, position) => (full() ? Promise.reject(enospc()) : handle.write(buffer, offset, length, position)),
        read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
        stat: () => handle.stat(),
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    },
  };
}

/** The errno code of a thrown fs error (`ENOSPC`), or undefined. */
export function errnoOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** SQLite's "database or disk is full" (SQLITE_FULL) as thrown by node:sqlite. */
function isSqliteFull(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('errcode' in error)) return false;
  const code = (error as { errcode: unknown }).errcode;
  // Extended result codes keep the primary code in the low byte.
  return typeof code === 'number' && (code & 0xff) === 13;
}

/** True when the failure means "no space" (a full disk or an exhausted quota). */
export function isDiskFull(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ENOSPC' || code === 'EDQUOT' || isSqliteFull(error);
}

/** A thrown fs/SQLite error as a HearthError: DISK_FULL for no space, NOT_FOUND for ENOENT, else INTERNAL. */
export function toHearthError(error: unknown, context: string): HearthError {
  if (isDiskFull(error)) {
    return hearthError('DISK_FULL', `${context}: the disk is full (${errorText(error)}).`, 'Free some disk space, or lower the KV store budget in Settings.');
  }
  const code = errnoOf(error);
  if (code === 'ENOENT') return hearthError('NOT_FOUND', `${context}: ${errorText(error)}.`);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return hearthError('INTERNAL', `${context}: permission denied (${errorText(error)}).`, 'Check that Hearth may write to its data directory.');
  }
  return hearthError('INTERNAL', `${context}: ${errorText(error)}.`);
}

/** `toHearthError` as a failed Result. */
export function fsError<T = never>(error: unknown, context: string): Result<T> {
  const e = toHearthError(error, context);
  return e.hint === undefined ? err(e.code, e.message) : err(e.code, e.message, e.hint);
}
