/**
 * A bounded walk of a folder the library does not own: a depth limit, a cap on the entries read,
 * no dot-files, unreadable folders skipped, and directory symlinks followed at most once each
 * (by their real path), so a link back to a parent cannot loop.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** Entries read at most per folder searched: a home folder the size of a disk is not walked whole. */
const MAX_ENTRIES_PER_FOLDER = 5000;

/** A file the walk found (symlinks resolved: size and identity are the target's). */
export interface WalkedFile {
  /** As found under the root (a symlink keeps its own path). */
  readonly path: string;
  readonly name: string;
  /** The directories between the root and the file. */
  readonly dirs: readonly string[];
  /** Where the path really leads. */
  readonly realPath: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** Device and inode: a file reached twice (hard links, links) is counted once. */
  readonly identity: string;
  /** Found through a symlink (the file itself is listed in preference to a link to it). */
  readonly isLink: boolean;
}

export interface WalkOptions {
  /** How many directory levels below the root to enter (0: the root's files only). */
  readonly maxDepth: number;
  /** Which file names to keep. */
  readonly accept: (name: string) => boolean;
  /** Keep a symlinked file only when it resolves inside the root (Hearth's own folder). */
  readonly linksInsideOnly?: boolean;
  readonly maxEntries?: number;
}

/** The files under `root` that `accept` keeps; an unreadable or missing root gives none. */
export async function walkFiles(root: string, options: WalkOptions): Promise<WalkedFile[]> {
  const rootReal = await realpath(root).catch(() => undefined);
  if (rootReal === undefined) return [];
  const visited = new Set<string>([rootReal]);
  const files: WalkedFile[] = [];
  let budget = options.maxEntries ?? MAX_ENTRIES_PER_FOLDER;
  const pending: { dir: string; dirs: readonly string[] }[] = [{ dir: root, dirs: [] }];
  while (pending.length > 0 && budget > 0) {
    const { dir, dirs } = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (--budget < 0) break;
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        // A dangling link, or one that cannot be followed, is not listed.
        const target = await stat(full).catch(() => undefined);
        if (!target) continue;
        isDir = target.isDirectory();
        isFile = target.isFile();
      }
      if (isDir) {
        if (dirs.length >= options.maxDepth) continue;
        const real = await realpath(full).catch(() => undefined);
        if (real === undefined || visited.has(real)) continue;
        visited.add(real);
        pending.push({ dir: full, dirs: [...dirs, entry.name] });
        continue;
      }
      if (!isFile || !options.accept(entry.name)) continue;
      const found = await describe(full, entry.name, dirs, rootReal, options.linksInsideOnly === true, entry.isSymbolicLink());
      if (found) files.push(found);
    }
  }
  return files;
}

async function describe(full: string, name: string, dirs: readonly string[], rootReal: string, insideOnly: boolean, isLink: boolean): Promise<WalkedFile | undefined> {
  try {
    const realPath = await realpath(full);
    if (insideOnly && !isInside(rootReal, realPath)) return undefined;
    const info = await stat(realPath);
    if (!info.isFile()) return undefined;
    return { path: full, name, dirs, realPath, size: info.size, mtimeMs: info.mtimeMs, identity: `${info.dev}:${info.ino}`, isLink };
  } catch {
    // Vanished or unreadable between the listing and the stat: not listable.
    return undefined;
  }
}

/** Whether `target` lies strictly inside `root` (both real, absolute paths). */
export function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** Describes one file outside any walk (an Ollama blob, a file a Jan model.yml names). */
export async function describeFile(file: string): Promise<WalkedFile | undefined> {
  const link = await lstat(file).catch(() => undefined);
  return describe(file, path.basename(file), [], '', false, link?.isSymbolicLink() === true);
}
