/**
 * What is on disk under `<dataDir>/engines/`: finished builds, each a folder
 * `<release>-<config hash>/` holding the libraries and a `manifest.json` written last (a folder
 * without one, or whose manifest does not match the installed node-llama-cpp, is never used),
 * and `choice.json`, which engine the next start runs, with the comparison that decided it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { EngineBuildKind, SpeedTrial } from '../../contract/index.ts';

/** The manifest's format; a manifest of another format is not read. */
export const MANIFEST_FORMAT = 1;
export const MANIFEST_FILE = 'manifest.json';
export const CHOICE_FILE = 'choice.json';

/** A finished build, as its manifest describes it. */
export interface EngineManifest {
  readonly format: number;
  /** The llama.cpp release and the commit of the source it was built from. */
  readonly release: string;
  readonly commit: string;
  /** The node-llama-cpp whose addon it is: its JavaScript side must be this version. */
  readonly nodeLlamaCpp: string;
  /** The build folder's name, `<release>-<config hash>`. */
  readonly name: string;
  readonly configHash: string;
  readonly builtAt: number;
  readonly durationMs: number;
  /** Bytes of the libraries on disk. */
  readonly sizeBytes: number;
  /** The CMake options it was configured with (paths left out). */
  readonly cmakeOptions: readonly string[];
  /** The GPU backend compiled in; false: CPU only. */
  readonly gpu: false | 'metal';
  /** The addon file in the folder. */
  readonly binding: string;
  /** The tools' version lines. */
  readonly tools: Readonly<Record<string, string>>;
}

/** The comparison that decided the choice: the same trial on both engines. */
export interface EngineComparison {
  readonly model: string;
  readonly prebuilt: SpeedTrial;
  readonly local: SpeedTrial;
  readonly faster: boolean;
  readonly measuredAt: number;
}

/** Which engine the next start runs. */
export interface EngineChoice {
  readonly use: EngineBuildKind;
  /** The build folder's name (with `use: 'local'`, and after a comparison). */
  readonly build?: string;
  readonly comparison?: EngineComparison;
  /** Why the local build is not used although it was chosen once (it failed to load). */
  readonly disabled?: string;
}

/** What the running app must match for a build to be usable. */
export interface BuildTarget {
  readonly nodeLlamaCpp: string;
  readonly release: string;
  readonly commit: string;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return null;
  }
}

/** Writes JSON through a temporary file and a rename, so a reader never sees half of it. */
export function writeJsonAtomic(file: string, value: unknown): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temp, file);
}

function isManifest(value: unknown): value is EngineManifest {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    m.format === MANIFEST_FORMAT &&
    typeof m.release === 'string' &&
    typeof m.commit === 'string' &&
    typeof m.nodeLlamaCpp === 'string' &&
    typeof m.name === 'string' &&
    typeof m.builtAt === 'number' &&
    typeof m.sizeBytes === 'number' &&
    typeof m.binding === 'string' &&
    Array.isArray(m.cmakeOptions)
  );
}

/** The manifest of the finished build in `dir`, or null (none, unreadable, another format). */
export function readManifest(dir: string): EngineManifest | null {
  const manifest = readJson(path.join(dir, MANIFEST_FILE));
  if (!isManifest(manifest)) return null;
  return existsSync(path.join(dir, manifest.binding)) ? manifest : null;
}

/** Why a finished build cannot run with the installed node-llama-cpp, or null when it can. */
export function mismatch(manifest: EngineManifest, target: BuildTarget): string | null {
  if (manifest.nodeLlamaCpp !== target.nodeLlamaCpp) return `it was built for node-llama-cpp ${manifest.nodeLlamaCpp}, and ${target.nodeLlamaCpp} is installed`;
  if (manifest.release !== target.release || manifest.commit !== target.commit) return `it was built from llama.cpp ${manifest.release} (${manifest.commit.slice(0, 7)}), and ${target.release} (${target.commit.slice(0, 7)}) is installed`;
  return null;
}

/** Finished builds under `root` that match `target`, newest first. */
export function finishedBuilds(root: string, target: BuildTarget): EngineManifest[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter((name) => !name.startsWith('.'))
    .map((name) => readManifest(path.join(root, name)))
    .filter((m): m is EngineManifest => m !== null && mismatch(m, target) === null && m.name === path.basename(m.name))
    .sort((a, b) => b.builtAt - a.builtAt);
}

export function readChoice(root: string): EngineChoice {
  const value = readJson(path.join(root, CHOICE_FILE));
  if (typeof value !== 'object' || value === null) return { use: 'prebuilt' };
  const c = value as Record<string, unknown>;
  const use = c.use === 'local' ? 'local' : 'prebuilt';
  return {
    use,
    ...(typeof c.build === 'string' ? { build: c.build } : {}),
    ...(typeof c.comparison === 'object' && c.comparison !== null ? { comparison: c.comparison as EngineComparison } : {}),
    ...(typeof c.disabled === 'string' ? { disabled: c.disabled } : {}),
  };
}

export function writeChoice(root: string, choice: EngineChoice): void {
  mkdirSync(root, { recursive: true });
  writeJsonAtomic(path.join(root, CHOICE_FILE), choice);
}

/** Bytes of the files directly in `dir` (a build folder is flat). */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const stat = statSync(path.join(dir, name));
    if (stat.isFile()) total += stat.size;
  }
  return total;
}

/** Removes every build folder and leftover under `root` except those named in `keep` and the choice file. */
export function pruneBuilds(root: string, keep: readonly string[]): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    if (name === CHOICE_FILE || keep.includes(name) || name.endsWith('.lock') || name === 'build.log') continue;
    rmSync(path.join(root, name), { recursive: true, force: true });
  }
}
