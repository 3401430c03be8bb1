/**
 * Deleting a model from Hearth's models folder (`models.delete`). Only Hearth's own files go:
 * a path outside the folder, in a folder below it, or reaching out of it through a symlink is
 * refused, and so other apps' models are never touched (the library uses them in place). A
 * split model goes with every part.
 */
import { lstat, readdir, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { err, errorText, ok, type Result } from '../../contract/index.ts';
import { splitPart, splitPartName } from './files.ts';
import { isInside } from './walk.ts';

const OTHERS_HINT = 'Hearth deletes only models in its own models folder; delete other apps’ models from those apps.';

/** Deletes a model of Hearth's folder, every part; FORBIDDEN for other apps' models or anything outside the folder (symlinks resolved), NOT_FOUND when gone. */
export async function deleteModel(modelPath: string, modelsDir: string): Promise<Result<{ modelBytes: number; paths: string[] }>> {
  if (!path.isAbsolute(modelPath)) return err('INVALID_INPUT', `${modelPath} is not an absolute path.`);
  const root = await realpath(modelsDir).catch(() => undefined);
  if (root === undefined) return err('NOT_FOUND', `The models folder ${modelsDir} does not exist.`);
  const resolved = path.resolve(modelPath);
  const name = path.basename(resolved);
  // The file must sit directly in the folder (its parent, links resolved, is the folder) and be a model.
  const parent = await realpath(path.dirname(resolved)).catch(() => undefined);
  if (parent === undefined) return err('NOT_FOUND', `There is no model at ${modelPath}.`);
  if (parent !== root) return err('FORBIDDEN', `${modelPath} is not in Hearth's models folder.`, OTHERS_HINT);
  if (!name.toLowerCase().endsWith('.gguf') || name.startsWith('.')) return err('FORBIDDEN', `${name} is not a model file.`);

  const split = splitPart(name);
  const names = split ? await partNames(root, split) : [name];
  if (names.length === 0) return err('NOT_FOUND', `There is no model at ${modelPath}.`);
  const targets: { file: string; bytes: number }[] = [];
  for (const partName of names) {
    const file = path.join(root, partName);
    const checked = await checkTarget(file, root);
    if (!checked.ok) {
      // A part already gone is not an error for the others; the one asked for must exist.
      if (checked.error.code === 'NOT_FOUND' && partName !== name) continue;
      return checked;
    }
    targets.push({ file: path.join(path.dirname(resolved), partName), bytes: checked.value });
  }

  const deleted: string[] = [];
  let modelBytes = 0;
  for (const target of targets) {
    try {
      await rm(target.file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      return err('INTERNAL', `${target.file} could not be deleted: ${errorText(error)}`, deleted.length > 0 ? `Deleted before the failure: ${deleted.join(', ')}.` : undefined);
    }
    deleted.push(target.file);
    modelBytes += target.bytes;
  }
  if (deleted.length === 0) return err('NOT_FOUND', `There is no model at ${modelPath}.`);
  return ok({ modelBytes, paths: deleted });
}

/**
 * A file that may be deleted, and the bytes deleting it frees: a regular file, or a symlink
 * whose target stays inside the folder (the link goes; its target is a model of its own, and
 * no bytes are freed).
 */
async function checkTarget(file: string, root: string): Promise<Result<number>> {
  let link;
  try {
    link = await lstat(file);
  } catch {
    return err('NOT_FOUND', `There is no model at ${file}.`);
  }
  if (link.isSymbolicLink()) {
    const target = await realpath(file).catch(() => undefined);
    if (target === undefined || !isInside(root, target)) return err('FORBIDDEN', `${file} leads outside Hearth's models folder.`, OTHERS_HINT);
    const info = await stat(target).catch(() => undefined);
    if (!info?.isFile()) return err('FORBIDDEN', `${file} is not a model file.`);
    return ok(0);
  }
  if (!link.isFile()) return err('FORBIDDEN', `${file} is not a model file.`);
  return ok(link.size);
}

/** Every part of a split set present in the folder, in order, by the names gguf-split gives them. */
async function partNames(root: string, split: { base: string; count: number }): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return [];
  }
  const wanted = new Map<string, string>();
  for (let i = 1; i <= split.count; i++) {
    const partName = splitPartName(split.base, i, split.count);
    wanted.set(partName.toLowerCase(), partName);
  }
  // The names as they are on disk (a file system that ignores case may spell them otherwise).
  const found = entries.filter((entry) => wanted.has(entry.toLowerCase()));
  return found.sort((a, b) => a.localeCompare(b));
}
