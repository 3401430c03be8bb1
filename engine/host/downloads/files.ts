/**
 * The queue's small file-system questions: how many bytes a download has on disk (the truth a
 * resume trusts, not the count saved with its row), and making renames durable.
 */
import { statSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { partPath } from './names.ts';
import type { PartRecord } from './store.ts';

/** A file's bytes, or null when it does not exist (or cannot be read). */
export async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

function sizeOfSync(file: string): number | null {
  try {
    return statSync(file).size;
  } catch {
    return null;
  }
}

/**
 * Bytes of a download on disk: each part's `.part` as far as it got, or its final file once a
 * finish renamed it. Synchronous: a few stat calls, and the queue's restore at startup is synchronous.
 */
export function bytesOnDisk(parts: readonly PartRecord[]): number {
  let total = 0;
  for (const part of parts) total += sizeOfSync(partPath(part.file)) ?? (part.verified ? (sizeOfSync(part.file) ?? 0) : 0);
  return total;
}

/** Makes renames in `dir` durable by syncing the folder itself (Windows cannot open a folder; NTFS journals the rename). */
export async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not possible on this platform or file system: the rename still happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
