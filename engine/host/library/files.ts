/**
 * Which files are models, and how the parts of a split GGUF make one model. Split files are
 * named as llama.cpp's gguf-split names them, `<name>-00001-of-00003.gguf`; only a complete set
 * is a model (a set still downloading, or with a part deleted, cannot be loaded).
 */
import { open, readFile, stat } from 'node:fs/promises';
import { GGUF_MAGIC, GGUF_SPLIT_NAME } from '../../gguf/format.ts';
import type { WalkedFile } from './walk.ts';


/**
 * A model file by its name: `.gguf`, not a dot-file, not an unfinished download (GPT4All's
 * `incomplete-` prefix; `.part` and `.ipull` files do not end in `.gguf`), and not a vision
 * projector (`mmproj…`), which goes with a model and is not one.
 */
export function isModelFileName(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.endsWith('.gguf') && !lower.startsWith('.') && !lower.startsWith('incomplete-') && !lower.includes('mmproj');
}

/** The part number and count of a split file's name; undefined for a single file. */
export function splitPart(name: string): { readonly base: string; readonly part: number; readonly count: number } | undefined {
  const match = GGUF_SPLIT_NAME.exec(name);
  if (!match) return undefined;
  const part = Number(match[2]);
  const count = Number(match[3]);
  if (count < 2 || part < 1 || part > count) return undefined;
  return { base: match[1]!, part, count };
}

/** The file name gguf-split gives part `part` (from 1) of `count`: `<base>-00002-of-00003.gguf`. */
export function splitPartName(base: string, part: number, count: number): string {
  return `${base}-${String(part).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`;
}

/** A name for people from a file name: without `.gguf` and without a split part suffix. */
export function baseName(name: string): string {
  return splitPart(name)?.base ?? name.replace(/\.gguf$/i, '');
}

/**
 * Files of one folder as models: a single file alone, a split set as its parts in order.
 * Incomplete sets are left out. Files from different folders never form one set.
 */
export function groupParts(files: readonly WalkedFile[]): WalkedFile[][] {
  const models: WalkedFile[][] = [];
  const sets = new Map<string, { count: number; parts: Map<number, WalkedFile> }>();
  for (const file of files) {
    const split = splitPart(file.name);
    if (!split) {
      models.push([file]);
      continue;
    }
    // The folder, the base name and the count identify a set (case-insensitively, as on the
    // file systems where names differ only in case cannot coexist).
    const key = `${file.dirs.join('/')}\u0000${split.base.toLowerCase()}\u0000${split.count}`;
    let set = sets.get(key);
    if (!set) {
      set = { count: split.count, parts: new Map() };
      sets.set(key, set);
    }
    set.parts.set(split.part, file);
  }
  for (const set of sets.values()) {
    if (set.parts.size !== set.count) continue;
    const parts: WalkedFile[] = [];
    for (let i = 1; i <= set.count; i++) parts.push(set.parts.get(i)!);
    models.push(parts);
  }
  return models;
}

/** Whether a file starts with "GGUF": for files whose name says nothing (Ollama blobs, a path a Jan model.yml names). */
export async function startsWithGgufMagic(file: string): Promise<boolean> {
  try {
    const handle = await open(file, 'r');
    try {
      const magic = Buffer.alloc(4);
      const { bytesRead } = await handle.read(magic, 0, 4, 0);
      return bytesRead === 4 && magic.readUInt32LE(0) === GGUF_MAGIC;
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

/**
 * A small text file another app wrote (settings, a model.yml, an Ollama manifest), or undefined
 * when it cannot be read or is larger than `maxBytes`: checked before reading, so a huge file
 * in its place is never loaded.
 */
export async function readSmallText(file: string, maxBytes: number): Promise<string | undefined> {
  try {
    if ((await stat(file)).size > maxBytes) return undefined;
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}
