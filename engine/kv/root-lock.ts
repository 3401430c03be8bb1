/**
 * One engine process per KV root. Two engines on one store would corrupt it: each store's GC
 * treats every temp file and unindexed chunk file as crash debris, so it would delete the other's
 * half-written and not yet committed chunks. It happens when a host is killed: its orphaned engine
 * flushes its last save for up to 2 s while the relaunched host's engine opens the same store.
 *
 * A kernel lock, not a pid file: the kernel drops an advisory lock when its process dies, however
 * it dies, so it never goes stale and no pid is reused. SQLite implements that lock portably
 * (fcntl, LockFileEx; it also excludes a second connection in the same process), so the lock is an
 * EXCLUSIVE transaction held on `<root>/lock`, an empty database never written. `lock.owner` (pid
 * and start time) only lets the process locked out say who holds the store.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { errorText } from '../contract/index.ts';

/** The file the lock is held on, in the KV root. */
export const lockFileName = 'lock';
/** Who holds the lock (JSON `RootOwner`), written by the holder. */
export const ownerFileName = 'lock.owner';

/** What the lock's holder wrote about itself. */
export interface RootOwner {
  readonly pid: number;
  /** When the holding process started (epoch ms). */
  readonly startedAt: number;
  /** When it took the lock (epoch ms). */
  readonly since: number;
}

/** A held lock. `release` is idempotent and never throws. */
export interface RootLock {
  readonly root: string;
  release(): void;
}

export type LockAttempt =
  | { readonly status: 'held'; readonly lock: RootLock }
  /** Another live process (or another store in this one) holds the root. */
  | { readonly status: 'busy'; readonly owner: RootOwner | null }
  /** The file system cannot lock (some network or FUSE file systems): `error` says why. */
  | { readonly status: 'unsupported'; readonly error: string };

/** SQLite's primary result codes for "someone else holds the lock" (SQLITE_BUSY, SQLITE_LOCKED). */
function isBusy(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('errcode' in error)) return false;
  const code = (error as { errcode: unknown }).errcode;
  return typeof code === 'number' && ((code & 0xff) === 5 || (code & 0xff) === 6);
}

/** The holder's `lock.owner`, or null when it is absent or unreadable. Never throws. */
export function readOwner(root: string): RootOwner | null {
  try {
    const parsed = JSON.parse(readFileSync(join(root, ownerFileName), 'utf8')) as Partial<RootOwner>;
    if (typeof parsed.pid === 'number' && typeof parsed.startedAt === 'number' && typeof parsed.since === 'number') {
      return { pid: parsed.pid, startedAt: parsed.startedAt, since: parsed.since };
    }
  } catch {
    // absent, or being written
  }
  return null;
}

/** Takes the root's lock if nobody holds it; never waits, never throws. `root` must exist. */
export function tryLockRoot(root: string): LockAttempt {
  let db: DatabaseSync | null = null;
  try {
    // timeout 0: never sleep in SQLite's busy handler, which would block this thread.
    db = new DatabaseSync(join(root, lockFileName), { timeout: 0 });
    // No journal file: nothing is ever written, and a rollback journal would be left beside the
    // lock by a killed holder.
    db.exec('PRAGMA journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    try {
      db?.close();
    } catch {
      // not open
    }
    if (isBusy(error)) return { status: 'busy', owner: readOwner(root) };
    return { status: 'unsupported', error: errorText(error) };
  }
  const held = db;
  const owner: RootOwner = { pid: process.pid, startedAt: Math.round(Date.now() - process.uptime() * 1000), since: Date.now() };
  try {
    writeFileSync(join(root, ownerFileName), JSON.stringify(owner));
  } catch {
    // Only a message depends on it (a full disk, for one): the lock itself holds.
  }
  let released = false;
  return {
    status: 'held',
    lock: {
      root,
      release(): void {
        if (released) return;
        released = true;
        // The owner file goes first, while the lock still keeps the next holder from writing its own.
        if (readOwner(root)?.pid === process.pid) {
          try {
            unlinkSync(join(root, ownerFileName));
          } catch {
            // gone already
          }
        }
        try {
          held.exec('ROLLBACK');
        } catch {
          // closing releases it too
        }
        try {
          held.close();
        } catch {
          // already closed
        }
      },
    },
  };
}

/**
 * Takes the root's lock, waiting up to `waitMs` (polling every `pollMs`) while another process
 * holds it. Never throws.
 */
export async function lockRoot(root: string, options: { readonly waitMs: number; readonly pollMs?: number }): Promise<LockAttempt> {
  const deadline = performance.now() + options.waitMs;
  const poll = Math.max(10, options.pollMs ?? 100);
  for (;;) {
    const attempt = tryLockRoot(root);
    if (attempt.status !== 'busy' || performance.now() >= deadline) return attempt;
    await new Promise((resolve) => setTimeout(resolve, Math.min(poll, Math.max(0, deadline - performance.now()))));
  }
}

/** "another Hearth process (pid 123, started 10:42:07) is using the KV cache at /x/kv". */
export function describeBusy(root: string, owner: RootOwner | null): string {
  const who =
    owner === null || owner.pid === process.pid
      ? 'another Hearth process'
      : `another Hearth process (pid ${owner.pid}, started ${new Date(owner.startedAt).toLocaleTimeString('en-GB')})`;
  return `${who} is using the KV cache at ${root}`;
}
