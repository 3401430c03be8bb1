/**
 * Small helpers shared by the benchmarks: timing, medians, file-system facts about where bytes
 * land, and the machine description that goes into every JSON report.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
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
 * Bytes this process has sent (or will send) to storage devices, from Linux's /proc/self/io:
 * `write_bytes` counts pages as they are dirtied, `cancelled_write_bytes` those dirtied pages that
 * never reached a device because their file was truncated or deleted first. Null elsewhere.
 */
export function deviceWriteBytes(): number | null {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    const net = field('write_bytes') - field('cancelled_write_bytes');
    return Number.isFinite(net) ? net : null;
  } catch {
    return null;
  }
}

/**
 * The KV index's files under a store root that exist: a store restore reads the manifest and
 * chunk rows from them, so a cold restore must not find them in the page cache either. Pages of
 * index.db-shm that SQLite keeps mapped cannot be dropped, and SQLite's own page cache in the
 * process stays (the benchmarks keep their store open, as the app does).
 */
export function kvIndexFiles(root: string): string[] {
  return ['index.db', 'index.db-wal', 'index.db-shm'].map((name) => join(root, name)).filter((path) => existsSync(path));
}

/**
 * Evicts these files from the kernel's page cache, so that their next read comes from the device:
 * `sync` writes back their dirty pages (those cannot be dropped), then GNU dd's `iflag=nocache`
 * asks the kernel to drop each file's cached pages (posix_fadvise DONTNEED). Unlike writing
 * /proc/sys/vm/drop_caches it needs no root and touches nothing else: a machine-wide drop also
 * evicts the code pages of node and llama.cpp, which a running app has resident, and charged their
 * page-ins to the measured restore. Returns false where this is not available (not Linux).
 */
export function evictFromPageCache(paths: readonly string[]): boolean {
  if (process.platform !== 'linux' || paths.length === 0) return paths.length === 0;
  try {
    // One shell for every file: a process spawned from node per file cost ~10 ms each here
    // (683 ms for a 16k-token chat's 63 chunk files, against 236 ms this way).
    execFileSync('sh', ['-c', 'sync -- "$@" && for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none || exit 1; done', 'evict', ...paths]);
    return true;
  } catch {
    return false;
  }
}

/**
 * The floor of reading `paths` (a chat's chunk files): each file read whole, one after another,
 * with synchronous positioned reads into one reused buffer (`scratch`, at least as large as the
 * largest file; sized outside the timed part, as the store knows each chunk's size from its
 * index). This is the cheapest plain read found here: `readFileSync` took 3.6× as long on
 * evicted (cold) files (136 vs 37 ms for 63 files of 400 KB on this project's VM) and also
 * allocates a buffer per file. Returns the bytes read.
 */
export function readFilesFloor(paths: readonly string[], scratch: Uint8Array): number {
  let total = 0;
  for (const path of paths) {
    const fd = openSync(path, 'r');
    try {
      let done = 0;
      for (;;) {
        if (done === scratch.byteLength) throw new Error(`${path} is larger than the ${scratch.byteLength}-byte read buffer`);
        const n = readSync(fd, scratch, done, scratch.byteLength - done, done);
        if (n === 0) break;
        done += n;
      }
      total += done;
    } finally {
      closeSync(fd);
    }
  }
  return total;
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
