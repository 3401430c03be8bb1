/**
 * Small helpers shared by the benchmarks: timing, medians, file-system facts about where bytes
 * land, memory floors and peaks, and the machine description that goes into every JSON report.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { cpus, platform, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Writes a benchmark's JSON report to `jsonPath` (its folder made if needed) and its markdown beside it (`FILE.json` → `FILE.md`). */
export async function writeReport(jsonPath: string, report: unknown, markdown: string): Promise<void> {
  const path = resolve(jsonPath);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.replace(/(\.json)?$/, '.md'), `${markdown}\n`);
}

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
 * A shell that evicts files from the page cache on request, started once, while this process is
 * still small. Why not spawn one per eviction: Linux spawns a child by fork(), which write-protects
 * every page of the parent for copy-on-write, so after each spawn the benchmark's next write to
 * each of its pages faults once — gigabytes of KV and state buffers at kv-shape-8b's size, ~23 µs
 * a page on this project's VM. A restore timed right after an eviction then measured those faults
 * (~4 s for 1 GB, native restores alike), not the cold read.
 */
interface Evictor {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly lines: AsyncIterator<string>;
}

// sync writes back the files' dirty pages (those cannot be dropped), then GNU dd's iflag=nocache
// asks the kernel to drop each file's cached pages (posix_fadvise DONTNEED). A file gone since it
// was listed (SQLite removes its WAL at a checkpoint) is not an error. Requests are paths, one per
// line, ended by an empty line; the answer is one line, ok or fail.
const evictorScript = `
evict() {
  for f in "$@"; do [ -e "$f" ] || continue; sync -- "$f" && dd if="$f" iflag=nocache count=0 status=none || return 1; done
}
while IFS= read -r p; do
  set --
  while [ -n "$p" ]; do set -- "$@" "$p"; IFS= read -r p || break; done
  if evict "$@"; then echo ok; else echo fail; fi
done`;

let evictor: Evictor | null = null;
if (process.platform === 'linux') {
  const child = spawn('sh', ['-c', evictorScript], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.unref();
  for (const stream of [child.stdin, child.stdout]) (stream as unknown as { unref?: () => void }).unref?.();
  evictor = { stdin: child.stdin, stdout: child.stdout, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() };
}

/** The last eviction requested: the next one waits for it (the evictor answers one at a time). */
let evictions: Promise<unknown> = Promise.resolve();

/**
 * Evicts these files from the kernel's page cache, so that their next read comes from the device.
 * Unlike writing /proc/sys/vm/drop_caches it needs no root and touches nothing else: a
 * machine-wide drop also evicts the code pages of node and llama.cpp, which a running app has
 * resident, and charged their page-ins to the measured restore. Resolves false where this is not
 * available (not Linux). Requests go one at a time to the evictor above.
 */
export function evictFromPageCache(paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return Promise.resolve(true);
  const current = evictor;
  if (current === null || paths.some((path) => path.includes('\n'))) return Promise.resolve(false);
  const done = evictions.then(async () => {
    // Idle, the evictor never keeps the process alive; waiting for its answer must.
    const pipe = current.stdout as Readable & { ref?: () => void; unref?: () => void };
    pipe.ref?.();
    try {
      current.stdin.write(`${paths.join('\n')}\n\n`);
      const answer = await current.lines.next();
      return !answer.done && answer.value === 'ok';
    } finally {
      pipe.unref?.();
    }
  });
  evictions = done.catch(() => undefined);
  return done;
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

/**
 * Reads a whole file into one buffer of its own (readFile stops at 2 GiB, and a kv-shape-8b
 * state at 16,000 tokens is larger).
 */
export function readWholeFile(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const out = Buffer.allocUnsafeSlow(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, out, done, size - done, done);
      if (n === 0) throw new Error(`${path} ended after ${done} of ${size} bytes`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * The floor of handling a whole state in memory: copying `bytes` bytes once from one buffer to
 * another, both allocated and touched beforehand (a first touch of fresh pages costs more than
 * the copy on some machines, and a save reuses nothing it could avoid touching). One discarded
 * warm-up copy, then `reps` timed ones (ms).
 */
export function copyFloorSamples(bytes: number, reps: number): number[] {
  const from = Buffer.allocUnsafeSlow(bytes).fill(1);
  const to = Buffer.allocUnsafeSlow(bytes).fill(0);
  const samples: number[] = [];
  for (let rep = -1; rep < reps; rep++) {
    const start = performance.now();
    from.copy(to);
    const ms = performance.now() - start;
    if (rep >= 0) samples.push(ms);
  }
  return samples;
}

/**
 * A field of a process's /proc status in bytes (`VmRSS`: resident now, `VmHWM`: its peak), this
 * process's by default; null where it cannot be read (not Linux, the process is gone).
 */
export function procStatusBytes(field: 'VmRSS' | 'VmHWM', pid: number | 'self' = 'self'): number | null {
  try {
    const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    return null;
  }
}

/** Bytes a process caused to be written to storage so far (`write_bytes` of /proc/PID/io), or null. */
export function procWriteBytes(pid: number): number | null {
  try {
    const bytes = /^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1];
    return bytes === undefined ? null : Number(bytes);
  } catch {
    return null;
  }
}

/** Resets this process's peak resident size (VmHWM) to its current size (Linux ≥ 4.0); false where that is not possible. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

let gcFunction: (() => void) | null | undefined;

/**
 * A full garbage collection, so that buffers a measured step no longer reaches are freed before
 * it rather than during it: a gigabyte freed mid-step and allocated again would hide the step's
 * own peak. `--expose-gc` set at run time gives the function to a new context.
 */
function collectGarbage(): void {
  if (gcFunction === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    } catch {
      gcFunction = null;
    }
  }
  gcFunction?.();
}

/**
 * Waits (at most ~1 s) until resident memory stops falling: V8 hands large buffers that a
 * collection freed back to the system on a background thread, so right after `gc()` the resident
 * size can still drop by a gigabyte, and a drop during the measured step would hide its peak.
 */
async function rssSettled(): Promise<void> {
  let last = procStatusBytes('VmRSS');
  for (let i = 0; i < 50 && last !== null; i++) {
    await new Promise((done) => setTimeout(done, 20));
    const now = procStatusBytes('VmRSS');
    if (now === null || Math.abs(now - last) < 2 ** 20) return;
    last = now;
  }
}

/**
 * Runs `fn` and says how far resident memory rose above where it started, at its peak during
 * `fn` (garbage is collected first and its memory returned, so the start is the steady state). On Linux: "5" written to
 * /proc/self/clear_refs resets the peak (VmHWM) to the current resident size, VmRSS is read
 * before and VmHWM after; `peakDeltaBytes` is null where /proc is not available.
 */
export async function withPeakRssDelta<T>(fn: () => Promise<T>): Promise<{ value: T; peakDeltaBytes: number | null }> {
  collectGarbage();
  await rssSettled();
  const reset = resetPeakRss();
  const before = reset ? procStatusBytes('VmRSS') : null;
  const value = await fn();
  const peak = before === null ? null : procStatusBytes('VmHWM');
  return { value, peakDeltaBytes: before === null || peak === null ? null : Math.max(0, peak - before) };
}
