/**
 * A build lock shared between processes: a file created with O_EXCL that names its owner (pid,
 * host, start, and the build command running now, which may outlive a killed owner). A lock
 * whose processes are all dead is taken over. Hearth's engine builds take it without waiting
 * (two windows, or the desktop app and the browser host on one data folder, never build at
 * once); scripts/build-llama-server.ts waits for another process's build of the test server.
 */
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isProcessAlive } from '../../base/process.ts';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly started: number;
  /** The build command running now: it may outlive a killed owner. */
  readonly child?: number;
}

export interface BuildLock {
  /** Records the build command now running (undefined: none). */
  setChild(pid: number | undefined): void;
  release(): void;
}

export interface LockOptions {
  /** How long to wait for another live owner; 0 fails at once. */
  readonly waitMs: number;
  /** Says what it waits for or takes over ("llama-server: …"). */
  readonly log?: (line: string) => void;
  /** Prefix of the log lines. */
  readonly label: string;
}

/** Another live process holds the lock (after `waitMs`). */
export class BuildLockBusy extends Error {
  readonly owner: LockOwner | undefined;

  constructor(message: string, owner: LockOwner | undefined) {
    super(message);
    this.name = 'BuildLockBusy';
    this.owner = owner;
  }
}

/** A lock older than this whose owner cannot be checked (another host) is taken as abandoned. */
const foreignLockMaxAgeMs = 2 * 60 * 60 * 1000;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a lock file's owner is gone: its processes are dead, or it was never finished being written long ago. */
function abandoned(lockPath: string): { stale: boolean; owner?: LockOwner; text?: string } {
  const text = readText(lockPath);
  let modified: number;
  try {
    modified = statSync(lockPath).mtimeMs;
  } catch {
    return { stale: false }; // released meanwhile: the next attempt takes it
  }
  if (text === undefined) return { stale: false };
  let owner: LockOwner;
  try {
    owner = JSON.parse(text) as LockOwner;
  } catch {
    // The owner writes the file as soon as it creates it; an unreadable one that stays is a crash.
    return { stale: Date.now() - modified > 60_000, text };
  }
  if (owner.host !== hostname()) return { stale: Date.now() - owner.started > foreignLockMaxAgeMs, owner, text };
  return { stale: !isProcessAlive(owner.pid) && (owner.child === undefined || !isProcessAlive(owner.child)), owner, text };
}

function describeOwner(owner: LockOwner | undefined): string {
  if (!owner) return 'another process';
  return `process ${owner.pid}${owner.host !== hostname() ? ` on ${owner.host}` : ''}`;
}

/**
 * Takes the lock file, waiting up to `waitMs` while another live process holds it; throws
 * `BuildLockBusy` after that. Two waiters that find the same abandoned lock could both remove it,
 * and the later removal would drop the earlier one's new lock; the re-read just before removing
 * narrows that to a moment after a crash.
 */
export async function acquireBuildLock(lockPath: string, options: LockOptions): Promise<BuildLock> {
  const deadline = Date.now() + options.waitMs;
  let lastNotice = 0;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      const owner: LockOwner = { pid: process.pid, host: hostname(), started: Date.now() };
      await handle.writeFile(JSON.stringify(owner));
      await handle.close();
      const releaseOnExit = (): void => {
        try {
          unlinkSync(lockPath);
        } catch {
          // already gone
        }
      };
      process.once('exit', releaseOnExit);
      return {
        setChild(pid) {
          writeFileSync(lockPath, JSON.stringify(pid === undefined ? owner : { ...owner, child: pid }));
        },
        release() {
          process.removeListener('exit', releaseOnExit);
          releaseOnExit();
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const { stale, owner, text } = abandoned(lockPath);
    if (stale) {
      options.log?.(`${options.label}: removing an abandoned build lock${owner ? ` (${describeOwner(owner)})` : ''}`);
      if (readText(lockPath) === text) await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() >= deadline) {
      const waited = options.waitMs > 0 ? ` for over ${Math.round(options.waitMs / 60_000)} minutes` : '';
      throw new BuildLockBusy(`${options.label}: ${describeOwner(owner)} has been building${waited} (lock ${lockPath})`, owner);
    }
    if (Date.now() - lastNotice > 60_000) {
      options.log?.(`${options.label}: waiting for the build in ${describeOwner(owner)}`);
      lastNotice = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
