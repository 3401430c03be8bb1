/**
 * The models library (`models.list`): every local model, in Hearth's folder and in the folders
 * other apps download to (folders.ts), with what its header says (size, quantization,
 * architecture, parameters, trained context). Other apps' models are used where they are.
 *
 * Listing never fails: a folder that is missing or unreadable lists nothing, and a file whose
 * header cannot be read is listed with the reason in `problem`. A file reached twice (a Jan
 * model imported from LM Studio's folder, a symlink, a hard link) is listed once, under the
 * first folder that has it, and its bytes count once in the total.
 */
import { stat } from 'node:fs/promises';
import type { LocalModel, ModelFolder, ModelLibrary, ModelSource } from '../../contract/index.ts';
import { metaNumber, metaString } from '../../gguf/reader.ts';
import { freeBytes as diskFreeBytes } from '../disk.ts';
import { baseName, groupParts, isModelFileName } from './files.ts';
import { configuredFolders, modelFolders, uniqueFolders, type FolderCandidate, type FolderInput } from './folders.ts';
import { modelHeader, partHeader } from './headers.ts';
import { scanJan } from './jan.ts';
import { scanOllama } from './ollama.ts';
import { walkFiles, type WalkedFile } from './walk.ts';

export interface ScanInput extends FolderInput {
  /** Free bytes on a folder's disk; null when unknown (then 0 is shown). Default: disk.ts. */
  readonly freeBytes?: (dir: string) => Promise<number | null>;
}

/** A model found on disk, before its header is read. */
interface Found {
  readonly source: ModelSource;
  /** Its parts in order (one for a single file). */
  readonly parts: readonly WalkedFile[];
  /** A name that replaces the header's (Ollama's `name:tag`). */
  readonly name?: string;
  /** The name when the header has no `general.name`. */
  readonly fallbackName: string;
}

/** LM Studio keeps `<publisher>/<repo>/<file>`; one more level leaves room for folders people make. */
const LMSTUDIO_DEPTH = 3;
/** Header reads at once: enough to overlap disk waits, few enough not to flood a slow disk. */
const HEADER_CONCURRENCY = 4;

/** Every local model, newest first, with the folders searched and the disk they use. */
export async function scanLibrary(input: ScanInput): Promise<ModelLibrary> {
  const candidates = uniqueFolders([...modelFolders(input), ...(await configuredFolders(input))], input.platform);
  const seenFiles = new Set<string>();
  const perFolder: { folder: FolderCandidate; exists: boolean; found: Found[] }[] = [];
  for (const folder of candidates) {
    const exists = await isDirectory(folder.dir);
    const found: Found[] = [];
    // Within a folder, a file itself is listed in preference to a link to it.
    const inFolder = exists ? await findIn(folder) : [];
    inFolder.sort((a, b) => Number(a.parts[0]!.isLink) - Number(b.parts[0]!.isLink));
    for (const model of inFolder) {
      // The first folder that reaches a file lists it (Hearth's own folder comes first).
      const key = model.parts[0]!.realPath;
      if (seenFiles.has(key)) continue;
      seenFiles.add(key);
      found.push(model);
    }
    perFolder.push({ folder, exists, found });
  }

  const all = perFolder.flatMap((entry) => entry.found);
  const described = await mapLimit(all, HEADER_CONCURRENCY, describeModel);
  const listed = new Map<Found, LocalModel>();
  all.forEach((model, i) => {
    const local = described[i];
    if (local) listed.set(model, local);
  });

  const identities = new Set<string>();
  let totalBytes = 0;
  for (const [model] of listed) {
    for (const part of model.parts) {
      if (identities.has(part.identity)) continue;
      identities.add(part.identity);
      totalBytes += part.size;
    }
  }
  const folders: ModelFolder[] = perFolder.map(({ folder, exists, found }) => ({
    source: folder.source,
    dir: folder.dir,
    exists,
    models: found.filter((model) => listed.has(model)).length,
  }));
  const models = [...listed.values()].sort((a, b) => b.modifiedAt - a.modifiedAt || a.displayName.localeCompare(b.displayName) || a.path.localeCompare(b.path));
  const free = await (input.freeBytes ?? diskFreeBytes)(input.modelsDir).catch(() => null);
  return { models, modelsDir: input.modelsDir, totalBytes, freeBytes: free ?? 0, folders };
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/** The models of one folder, by its app's layout. */
async function findIn(folder: FolderCandidate): Promise<Found[]> {
  const { source, dir } = folder;
  const asFound = (parts: readonly WalkedFile[]): Found => ({ source, parts, fallbackName: baseName(parts[0]!.name) });
  switch (source) {
    case 'hearth':
      // Flat, and a symlink only when it stays inside the folder: the list never reaches out of it.
      return groupParts(await walkFiles(dir, { maxDepth: 0, accept: isModelFileName, linksInsideOnly: true })).map(asFound);
    case 'gpt4all':
      return groupParts(await walkFiles(dir, { maxDepth: 0, accept: isModelFileName })).map(asFound);
    case 'lmstudio':
      return groupParts(await walkFiles(dir, { maxDepth: LMSTUDIO_DEPTH, accept: isModelFileName })).map(asFound);
    case 'ollama':
      return (await scanOllama(dir)).map(({ blob, names }) => ({ source, parts: [blob], name: names.join(', '), fallbackName: blob.name }));
    case 'jan':
      return (await scanJan(dir)).map(({ files, name }) => ({ source, parts: files, fallbackName: name }));
  }
}

/** A found model with what its headers say; undefined for a file that is not a chat model (a vision projector). */
async function describeModel(model: Found): Promise<LocalModel | undefined> {
  const first = model.parts[0]!;
  const base = {
    path: first.path,
    fileName: first.name,
    sizeBytes: model.parts.reduce((sum, part) => sum + part.size, 0),
    modifiedAt: Math.round(Math.max(...model.parts.map((part) => part.mtimeMs))),
    source: model.source,
    parts: model.parts.length,
  };
  const header = await modelHeader(first.path, first.size, first.mtimeMs);
  if (!header.ok) {
    return {
      ...base,
      displayName: model.name ?? model.fallbackName,
      quantization: null,
      architecture: null,
      parameterCount: null,
      trainedContextLength: null,
      problem: header.error.message,
    };
  }
  const summary = header.value;
  if (summary.architecture === 'clip') return undefined;
  const generalName = metaString(summary, 'general.name')?.trim();
  const described: LocalModel = {
    ...base,
    displayName: model.name ?? (generalName !== undefined && generalName !== '' ? generalName : model.fallbackName),
    quantization: summary.fileType,
    architecture: summary.architecture,
    parameterCount: summary.parameterCount,
    trainedContextLength: summary.contextLength,
  };
  if (model.parts.length === 1) return described;
  const parts = await splitParameters(model.parts, metaNumber(summary, 'split.count'));
  return typeof parts === 'string' ? { ...described, parameterCount: null, problem: parts } : { ...described, parameterCount: summary.parameterCount + parts };
}

/** The parameters of a split model's later parts, or why the set cannot be loaded. */
async function splitParameters(parts: readonly WalkedFile[], declared: number | undefined): Promise<number | string> {
  if (declared !== parts.length) {
    return `The first part says the model has ${declared ?? 1} part${declared === 1 || declared === undefined ? '' : 's'}, but its file name says ${parts.length}.`;
  }
  let total = 0;
  for (const [i, part] of parts.entries()) {
    if (i === 0) continue;
    const header = await partHeader(part.path, part.size, part.mtimeMs);
    if (!header.ok) return header.error.message;
    if (header.value.splitNo !== null && header.value.splitNo !== i) return `${part.name} says it is part ${header.value.splitNo + 1}, not part ${i + 1}.`;
    total += header.value.parameterCount;
  }
  return total;
}

/** `map` with at most `limit` calls in flight, results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
