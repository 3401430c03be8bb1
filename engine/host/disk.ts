/**
 * Free space on a disk: for the KV store's figures (Settings → Cache), the download queue's check
 * before it starts and the library's total. A folder that does not exist yet is measured at its
 * nearest existing parent, since that is the disk it would be created on.
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';

/** `fs.promises.statfs`, or a test's stand-in. */
export type StatFs = (path: string) => Promise<{ readonly bavail: number | bigint; readonly bsize: number | bigint }>;

/**
 * Free bytes for an unprivileged writer on the disk of the first path that can be read, or null
 * when none can (no statfs on this platform, or the paths are gone). Never throws.
 */
export async function freeDiskBytes(paths: readonly string[], stat: StatFs = statfs): Promise<number | null> {
  for (const dir of paths) {
    try {
      const info = await stat(dir);
      // bavail, not bfree: blocks reserved for root are not space a writer can use.
      const free = Number(info.bavail) * Number(info.bsize);
      if (Number.isFinite(free) && free >= 0) return free;
    } catch {
      // Try the next path.
    }
  }
  return null;
}

/** Bytes an unprivileged process may still write on `dir`'s file system; null when it cannot be measured. */
export function freeBytes(dir: string): Promise<number | null> {
  // The folder, then each parent up to the root: the first that can be measured answers.
  const chain: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    chain.push(current);
    if (path.dirname(current) === current) break;
  }
  return freeDiskBytes(chain);
}
