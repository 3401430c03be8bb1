/**
 * Tail files: `<root>/tails/<name>.kvt`, one per manifest that keeps a tail payload (the KV of
 * the tokens after its last full chunk). The file holds the payload's bytes and nothing else;
 * its length and checksum live in the manifest's `tails` row (store-db.ts), which names the file.
 *
 * Why files and not BLOBs in index.db: a tail is up to a chunk less one token of KV (tens of MB
 * for a large model) and is rewritten on every turn's save and read on every restore. As a BLOB
 * each save wrote thousands of overflow pages, each a WAL frame, and then checkpointed them
 * again: measured here, ~150–190 ms to save a 20 MB tail (most of a save's budget) against
 * ~11 ms as a file, and ~18–25 ms to read an 8 MB one back against ~2–3 ms (~13–20 ms into a
 * new buffer, store-context.ts `tailBuffer`).
 *
 * Each write gets a new, unique name, so the file a committed row names is never written to
 * again: a save writes the new file, commits the row that names it, and only then removes the
 * old one. A crash in between leaves an unreferenced file (or a temp file), which the sweep at
 * open and `gc()` remove, as they remove orphan chunk files.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errorText } from '../contract/index.ts';
import { tempSuffix, writeAll } from './chunk-file.ts';
import type { StoreFs } from './store-fs.ts';
import { errnoOf, readIntoSync } from './store-fs.ts';

/** Tail file name suffix. */
export const tailSuffix = '.kvt';

/** What a tail file's name looks like: 24 random hex digits and the suffix. */
const tailName = /^[0-9a-f]{24}\.kvt$/;

/**
 * True for a name this store could have given a tail file. A name read from the index is
 * checked before it becomes a path: an index edited behind the store's back must never make it
 * read or remove a file outside `tails/`.
 */
export function isTailName(name: unknown): name is string {
  return typeof name === 'string' && tailName.test(name);
}

/** `<root>/tails`. */
export function tailsDir(root: string): string {
  return join(root, 'tails');
}

export function tailPath(root: string, name: string): string {
  return join(tailsDir(root), name);
}

/**
 * Writes `payload` to a new tail file and returns its name: a temp file, then a rename, so no
 * partial file is ever visible under a tail's name. On any failure the temp file is removed
 * (best effort: the sweep removes what is left) and the error is rethrown.
 *
 * Not fsynced, unlike chunk files: a tail is rewritten every turn, so an fsync would cost every
 * save for a file that is replaced at the next one, and losing it costs little. A power cut
 * that loses the file's contents after its row was committed leaves a missing, short or torn
 * file; its size or checksum (checked on every read) says so, the tail is dropped as damaged,
 * and the chat re-reads at most a chunk's worth of tokens.
 */
export async function writeTailFile(fs: StoreFs, root: string, payload: Uint8Array): Promise<string> {
  const dir = tailsDir(root);
  const name = `${randomBytes(12).toString('hex')}${tailSuffix}`;
  const temp = join(dir, `.${name}.${process.pid}${tempSuffix}`);
  await fs.mkdir(dir);
  const handle = await fs.open(temp, 'wx', 0o644);
  try {
    await writeAll(handle, payload, 0);
    await handle.close();
    await fs.rename(temp, join(dir, name));
    return name;
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}

/** A tail file read: its first bytes in `buffer`, or why it could not be read. */
export type TailFileRead = { readonly ok: true; readonly bytes: number } | { readonly ok: false; readonly missing: boolean; readonly detail: string };

/**
 * Reads tail file `name` into `buffer` (from its start, until the buffer is full or the file
 * ends) without leaving the thread: `readTail` is synchronous. Pass a buffer one byte longer
 * than the expected size, so that a file which grew shows as such. `missing`: the file does not
 * exist (damage, or a tail replaced meanwhile); otherwise an I/O error, which says nothing about
 * the bytes. Never throws.
 */
export function readTailFileSync(fs: StoreFs, root: string, name: string, buffer: Uint8Array): TailFileRead {
  // A file system without a synchronous reader (a test's) still stores its files on disk.
  const read = fs.readIntoSync ?? readIntoSync;
  try {
    return { ok: true, bytes: read(tailPath(root, name), buffer) };
  } catch (error) {
    const missing = errnoOf(error) === 'ENOENT';
    return { ok: false, missing, detail: missing ? 'the file does not exist' : errorText(error) };
  }
}

/** Tail files and temp files under `<root>/tails`, as names (empty when the directory does not exist). Throws on other errors. */
export async function scanTailFiles(fs: StoreFs, root: string): Promise<{ files: string[]; temps: string[] }> {
  let names: string[];
  try {
    names = await fs.readdir(tailsDir(root));
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { files: [], temps: [] };
    throw error;
  }
  return { files: names.filter(isTailName), temps: names.filter((n) => n.endsWith(tempSuffix)) };
}
