/**
 * Free space on a folder's disk, for the download queue's check before it starts and the
 * library's total. A folder that does not exist yet is measured at its nearest existing parent,
 * since that is the disk it would be created on.
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';

/** Bytes an unprivileged process may still write on `dir`'s file system; null when it cannot be measured. */
export async function freeBytes(dir: string): Promise<number | null> {
  let current = path.resolve(dir);
  for (;;) {
    try {
      const stats = await statfs(current);
      return stats.bavail * stats.bsize;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = path.dirname(current);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) return null;
      current = parent;
    }
  }
}
