/**
 * A Hugging Face repository's file list as models: GGUF files only, split files joined into one
 * entry per model, vision projectors and importance matrices left out, and the quantization read
 * from the file (or folder) name. Pure functions of the tree the Hub lists; nothing is fetched.
 */
import type { HubFile } from '../../contract/index.ts';
import { GGUF_SPLIT_NAME } from '../../gguf/format.ts';

/**
 * Quantization names as GGUF repositories write them, longest alternatives first (the regex
 * takes the first alternative that matches at a position, so `Q4_0_4_4` must come before `Q4_0`,
 * and `Q4_K_M` before `Q4_K`). Matched on the upper-cased name, not inside a word (`Q8_0` in
 * `model-Q8_0.gguf`, not the `F16` in `xF16y`); `FP16`/`FP32` read as `F16`/`F32`.
 */
const quantPattern = new RegExp(
  '(?<![A-Z0-9])(' +
    [
      'Q\\d_0_\\d_\\d', // Q4_0_4_4, Q4_0_4_8, Q4_0_8_8 (ARM repacks)
      'Q\\d_K_(?:XXL|XL|XS|S|M|L)', // Q4_K_M, Q3_K_L, Q2_K_S, unsloth's Q4_K_XL
      'Q\\d_K',
      'Q\\d_[01]', // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q1_0
      'IQ\\d_(?:XXS|XS|NL|S|M)', // IQ2_XXS, IQ3_XS, IQ4_NL, IQ1_M
      'TQ\\d_0', // TQ1_0, TQ2_0
      'MXFP4(?:_MOE)?',
      'NVFP4',
      'BF16',
      'FP?(?:16|32|64)',
    ].join('|') +
    ')(?![A-Z0-9])',
  'g',
);


/** Vision projectors: not models on their own (the projector of a model is a separate load). */
const projectorPattern = /(^|[^a-z])mmproj([^a-z]|$)/i;

/**
 * Importance matrices (`imatrix.gguf`, `Model.imatrix.gguf`) are quantization inputs, not models.
 * A name that also names a quantization (`Model-imatrix-Q4_K_M.gguf`) is a model quantized with
 * one, and stays.
 */
function isAuxiliary(base: string): boolean {
  return projectorPattern.test(base) || (/imatrix/i.test(base) && quantizationOf(base) === null);
}

/**
 * The quantization a file name names (`Q4_K_M`, `IQ3_XXS`, `F16`…), upper-case; the last one
 * when the name holds several (`Q8_0-from-F16` names none better than its end). Null when none.
 */
export function quantizationOf(fileName: string): string | null {
  const found = [...fileName.toUpperCase().matchAll(quantPattern)].at(-1)?.[1];
  if (found === undefined) return null;
  return found.startsWith('FP') ? `F${found.slice(2)}` : found;
}

/** A path's last segment and the folder before it. */
function splitPath(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? { dir: '', base: path } : { dir: path.slice(0, slash), base: path.slice(slash + 1) };
}

/** The LFS hash when it looks like one (64 hex digits), lower-case. */
function sha256Of(entry: { lfs?: { oid: string } }): string | null {
  const oid = entry.lfs?.oid;
  return oid !== undefined && /^[0-9a-f]{64}$/i.test(oid) ? oid.toLowerCase() : null;
}

interface Part {
  readonly path: string;
  readonly size: number;
  readonly sha256: string | null;
  readonly index: number;
}

/**
 * The model files of a repository tree: one HubFile per single GGUF and per complete set of split
 * parts (paths in part order; a set missing a part is left out, since it cannot be loaded), without
 * projectors and imatrix files, smallest first. The quantization comes from the file name, else
 * from its folder (`Q4_K_M/model-00001-of-00002.gguf`).
 */
export function groupGgufFiles(entries: readonly { path: string; size: number; lfs?: { oid: string } }[]): HubFile[] {
  const files: HubFile[] = [];
  const sets = new Map<string, { total: number; stem: string; dir: string; parts: Part[] }>();
  for (const entry of entries) {
    const { dir, base } = splitPath(entry.path);
    if (!base.toLowerCase().endsWith('.gguf') || isAuxiliary(base)) continue;
    const split = GGUF_SPLIT_NAME.exec(base);
    if (split === null) {
      files.push(makeFile(dir, base, [{ path: entry.path, size: entry.size, sha256: sha256Of(entry), index: 1 }]));
      continue;
    }
    const stem = split[1]!;
    const index = Number(split[2]);
    const total = Number(split[3]);
    const key = `${dir}/${stem}/${total}`;
    const set = sets.get(key) ?? { total, stem, dir, parts: [] };
    sets.set(key, set);
    set.parts.push({ path: entry.path, size: entry.size, sha256: sha256Of(entry), index });
  }
  for (const set of sets.values()) {
    const parts = [...set.parts].sort((a, b) => a.index - b.index);
    // Complete means exactly parts 1..total, each once.
    if (parts.length !== set.total || parts.some((part, i) => part.index !== i + 1)) continue;
    files.push(makeFile(set.dir, `${set.stem}.gguf`, parts));
  }
  return files.sort((a, b) => a.sizeBytes - b.sizeBytes || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function makeFile(dir: string, name: string, parts: readonly Part[]): HubFile {
  const folder = dir.split('/').at(-1) ?? '';
  return {
    id: parts[0]!.path,
    paths: parts.map((part) => part.path),
    name,
    quantization: quantizationOf(name) ?? (folder === '' ? null : quantizationOf(folder)),
    sizeBytes: parts.reduce((sum, part) => sum + part.size, 0),
    sha256: parts.map((part) => part.sha256),
  };
}
