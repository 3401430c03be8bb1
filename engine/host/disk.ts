/**
 * Free space on a folder's disk, for the download queue's check before it starts and the
 * library's total. A folder that does not exist yet is measured at its nearest existing parent,
 * since that is the disk it would be created on.
 */
import path from 'node:path';
import { freeDiskBytes } from './kv-stats.ts';

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
