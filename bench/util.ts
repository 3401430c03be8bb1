/**
 * Small helpers shared by the benchmarks: timing, medians, file-system facts about where bytes
 * land, and the machine description that goes into every JSON report.
 */
import { execFileSync } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { cpus, platform, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

/** Runs `fn` and returns its value and the wall time in milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

/** The median of a non-empty list; null for an empty one (a field we could not measure). */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Rounds to 0.01 ms: the JSON should not pretend to sub-10-µs precision on a shared machine. */
export function round2(value: number | null): number | null {
  return value === null ? null : Math.round(value * 100) / 100;
}

/**
 * The file-system type holding `path` (Linux: the longest mount point in /proc/mounts that is a
 * prefix of it), or null where that cannot be read. Used to say whether scratch files reach a disk.
 */
export async function fsTypeOf(path: string): Promise<string | null> {
  let mounts: string;
  try {
    mounts = await readFile('/proc/mounts', 'utf8');
  } catch {
    return null;
  }
  const target = resolve(path);
  let best: { point: string; type: string } | null = null;
  for (const line of mounts.split('\n')) {
    const [, point, type] = line.split(' ');
    if (point === undefined || type === undefined) continue;
    const decoded = point.replace(/\\040/g, ' ');
    const inside = decoded === '/' || target === decoded || target.startsWith(`${decoded}/`);
    if (inside && (best === null || decoded.length >= best.point.length)) best = { point: decoded, type };
  }
  return best?.type ?? null;
}

/** File systems whose files live in memory: writing a scratch file there writes nothing to disk. */
export function isMemoryFs(type: string | null): boolean {
  return type === 'tmpfs' || type === 'ramfs';
}

/** Every file under `dir` whose name ends with `suffix`, sorted by path (for a deterministic read order). */
export async function filesUnder(dir: string, suffix: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry.isFile() && entry.name.endsWith(suffix)) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

/** The total size of the given files. */
export async function totalSize(paths: readonly string[]): Promise<number> {
  let total = 0;
  for (const path of paths) total += (await stat(path)).size;
  return total;
}

/**
 * Drops the kernel's clean page cache (Linux, root only) so the next read comes from the device.
 * Returns false where that is not allowed; it is machine-wide, so only `--cold` asks for it.
 */
export async function dropPageCache(): Promise<boolean> {
  try {
    // Dirty pages are not dropped: write them back first, or just-written files stay warm.
    execFileSync('sync');
    await writeFile('/proc/sys/vm/drop_caches', '1');
    return true;
  } catch {
    return false;
  }
}

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly platform: string;
  readonly osRelease: string;
  readonly node: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryBytes: totalmem(),
    platform: `${platform()}-${process.arch}`,
    osRelease: release(),
    node: process.version,
  };
}
