/**
 * `npm run bench -- models`: what Hearth's own model handling costs, on loopback against the
 * Hugging Face emulator (test/support/hf-emulator.ts, in a process of its own: bench/models-hub.ts).
 *
 * 1. A large download through `DownloadQueue` (SHA-256 while receiving, a `.part` file, fsync and
 *    rename) against a plain streamed `fetch` of the same address into a file, alternating: time,
 *    CPU, peak RSS growth and bytes written.
 * 2. Pause at about half, resume: what the resumed request asks for (its Range), what is received
 *    in all, the prefix re-hashed on resume (the `verifying` spell, and the bytes this process read
 *    after the stop beyond those it received), and the time against an uninterrupted download.
 * 3. The same with a restart: `dispose()` (a quit), then a new queue on the same database and folder.
 * 4. `hub.fit` through the real browser host (`HEARTH_HF_ENDPOINT` at the emulator) for a
 *    repository of Llama-3.1-8B's shape in eight quantizations: file bytes fetched (from the
 *    emulator's Range log) against the files' sizes, time, and a repeat (the engine's cache).
 * 5. `scanLibrary` over Hearth's folder with many generated GGUFs plus the fake home's other apps'
 *    folders: the first scan with the files evicted from the page cache, then repeats.
 *
 * bench/models-report.ts holds the figures and the markdown.
 */
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DatabaseSync } from 'node:sqlite';
import { GgmlType } from 'node-llama-cpp';
import { errorText, type DownloadItem, type HearthEvent } from '../engine/contract/index.ts';
import { openDatabase } from '../engine/host/db.ts';
import { DownloadQueue } from '../engine/host/downloads/queue.ts';
import { HubClient } from '../engine/host/hub/client.ts';
import { scanLibrary } from '../engine/host/library/scan.ts';
import { inspectGguf } from '../engine/gguf/reader.ts';
import { referenceModels } from '../engine/worker/fit-reference.ts';
import { makeFakeHome } from '../test/support/fake-homes.ts';
import { encodeGguf, tinyLlamaModel } from '../test/support/gguf-writer.ts';
import { startHost } from '../test/support/host.ts';
import { HostClient } from '../test/support/host-client.ts';
import { referenceHeader, syntheticVocabulary, writeSparseModel } from '../test/support/reference-gguf.ts';
import { startHubProcess, type HubProcess } from './models-hub.ts';
import { bodyBytes, formatReport, rangeStart, rehashSpell, type DownloadRun, type FitCall, type FitRun, type InterruptedRun, type IoCounters, type ModelsPart, type ModelsReport, type ScanFigures, type ScanRun } from './models-report.ts';
import { evictFromPageCache, filesUnder, fsTypeOf, machineInfo, procStatusBytes, withPeakRssDelta, writeReport } from './util.ts';

export { formatReport, type ModelsReport } from './models-report.ts';

export interface ModelsBenchOptions {
  readonly jsonPath: string;
  /** Where the generated files, downloads and data directories go (removed after). */
  readonly dir: string;
  /** The download's size in bytes. */
  readonly fileBytes: number;
  /** Where the pause and the restart stop, as a fraction of the file. */
  readonly pauseAt: number;
  /** Downloads per method in part 1 (alternating plain fetch, queue). */
  readonly reps: number;
  /** The fit repository's quantizations (names of `fitQuants`). */
  readonly fitQuants: readonly string[];
  /** The fit headers carry a vocabulary of Llama 3's size. */
  readonly vocabulary: boolean;
  /**
   * The fit files' sizes: `published` (sparse beyond the header, but the emulator hashes every
   * byte before it answers: minutes for 53 GB), or `small`: the header and 64 MiB (sparse), the
   * sizes the listing and the verdicts then see.
   */
  readonly fitSize: 'published' | 'small';
  /** Repeat hub.fit calls after the first. */
  readonly fitRepeats: number;
  readonly scanModels: number;
  readonly scanLargeModels: number;
  /** Scans after the first. */
  readonly scanRepeats: number;
  readonly parts: readonly ModelsPart[];
  readonly log: (line: string) => void;
}

// ---- generated files -------------------------------------------------------------------------

const llama8b = referenceModels.find((m) => m.name === 'Llama-3.1-8B')!;

/**
 * The quantizations of the fit repository: the tensor type of its matrices, llama_ftype, and the
 * file's size as bartowski's Meta-Llama-3.1-8B-Instruct-GGUF lists it (GB = 10^9 B; Q4_K_M,
 * Q5_K_M, Q8_0 and F16 are fit-reference.ts's, the others rounded from the same listing). Every
 * matrix has the main type (the K-quant mixes' Q6_K tensors are left out): only the header's
 * size and the files' sizes matter here, not the exact weights.
 */
export const fitQuants: Readonly<Record<string, { readonly type: number; readonly ftype: number; readonly bytes: number }>> = {
  Q2_K: { type: GgmlType.Q2_K, ftype: 10, bytes: 3.18e9 },
  Q3_K_M: { type: GgmlType.Q3_K, ftype: 12, bytes: 4.02e9 },
  Q4_0: { type: GgmlType.Q4_0, ftype: 2, bytes: 4.68e9 },
  Q4_K_M: { type: GgmlType.Q4_K, ftype: 15, bytes: llama8b.files.find((f) => f.quant === 'Q4_K_M')!.bytes },
  Q5_K_M: { type: GgmlType.Q5_K, ftype: 17, bytes: llama8b.files.find((f) => f.quant === 'Q5_K_M')!.bytes },
  Q6_K: { type: GgmlType.Q6_K, ftype: 18, bytes: 6.6e9 },
  Q8_0: { type: GgmlType.Q8_0, ftype: 7, bytes: llama8b.files.find((f) => f.quant === 'Q8_0')!.bytes },
  F16: { type: GgmlType.F16, ftype: 1, bytes: llama8b.files.find((f) => f.quant === 'F16')!.bytes },
};

/** The header of a Llama-3.1-8B GGUF whose matrices are all of `quant`'s type (norms F32), with or without a vocabulary of Llama 3's size. */
export function llama8bHeader(quant: { readonly type: number; readonly ftype: number }, vocabulary: boolean): Buffer {
  return referenceHeader(llama8b, { uniform: quant.type, fileType: quant.ftype }, { extraMetadata: vocabulary ? syntheticVocabulary() : [] });
}

/**
 * The download's source: a real GGUF header (Llama-3.1-8B's Q4_K_M, no vocabulary), then
 * pseudo-random bytes to `size`, written 8 MiB at a time (never held whole). Random rather than
 * sparse or zeros: the hash and the disk see what a model's bytes would cost them.
 */
async function writeSource(file: string, size: number): Promise<void> {
  const header = llama8bHeader(fitQuants.Q4_K_M!, false);
  const handle = await open(file, 'w');
  try {
    const chunk = Buffer.allocUnsafeSlow(8 * 2 ** 20);
    let written = 0;
    while (written < size) {
      const n = Math.min(chunk.length, size - written);
      randomFillSync(chunk, 0, n);
      if (written === 0) header.copy(chunk, 0, 0, Math.min(header.length, n));
      await handle.write(chunk, 0, n);
      written += n;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// ---- measuring -------------------------------------------------------------------------------

/** /proc/self/io now. */
function ioNow(): IoCounters {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    const field = (name: string): number | null => {
      const value = new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1];
      return value === undefined ? null : Number(value);
    };
    return { rchar: field('rchar'), wchar: field('wchar'), writeBytes: field('write_bytes'), cancelledWriteBytes: field('cancelled_write_bytes') };
  } catch {
    return { rchar: null, wchar: null, writeBytes: null, cancelledWriteBytes: null };
  }
}

const cpuMsSince = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

/** Every body byte a fetch receives, counted as it passes (a pass-through stream on each response body). */
class CountingFetch {
  bytes = 0;

  readonly fetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.body) return response;
    const counted = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          this.bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/** A download's events with their times, and promises for the next one that matches. */
class Events {
  readonly seen: { readonly at: number; readonly item: DownloadItem }[] = [];
  readonly #waiters: { match: (item: DownloadItem) => boolean; resolve: (item: DownloadItem) => void }[] = [];

  readonly emit = (event: HearthEvent): void => {
    if (event.type !== 'download.progress') return;
    this.seen.push({ at: performance.now(), item: event.payload });
    for (const waiter of [...this.#waiters]) {
      if (!waiter.match(event.payload)) continue;
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve(event.payload);
    }
  };

  next(match: (item: DownloadItem) => boolean): Promise<DownloadItem> {
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  ended(): Promise<DownloadItem> {
    return this.next((item) => ['done', 'error', 'paused', 'cancelled'].includes(item.status));
  }
}

const REPO = 'bench/Download-GGUF';
const FILE = 'bench-Q4_K_M.gguf';

/** A queue on a database and models folder, talking to the emulator through a counting fetch. */
function makeQueue(db: DatabaseSync, modelsDir: string, hub: HubProcess, events: Events, counter: CountingFetch, log: (line: string) => void): DownloadQueue {
  const client = new HubClient({ endpoint: hub.endpoint, token: async () => null, fetch: counter.fetch });
  return new DownloadQueue({
    db,
    modelsDir: () => modelsDir,
    hub: client,
    emit: events.emit,
    log: (level, message) => {
      if (level === 'error' || level === 'warn') log(`  queue ${level}: ${message}`);
    },
    fetch: counter.fetch,
  });
}

/** A plain streamed fetch into a file: no hash, no `.part`, no fsync (done after the clock stops). */
async function plainDownload(url: string, target: string, size: number): Promise<DownloadRun> {
  const counter = new CountingFetch();
  const ioBefore = ioNow();
  const cpu = process.cpuUsage();
  const began = performance.now();
  let failure: string | null = null;
  const { peakDeltaBytes } = await withPeakRssDelta(async () => {
    try {
      const response = await counter.fetch(url);
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      const handle = await open(target, 'w');
      try {
        for await (const chunk of response.body) {
          let offset = 0;
          while (offset < chunk.length) offset += (await handle.write(chunk, offset, chunk.length - offset, null)).bytesWritten;
        }
      } finally {
        await handle.close();
      }
    } catch (error) {
      failure = errorText(error);
    }
  });
  const ms = performance.now() - began;
  const cpuMs = cpuMsSince(cpu);
  const ioAfter = ioNow();
  const onDisk = await stat(target).then((s) => s.size, () => -1);
  // Its pages reach the disk now, so that their writeback does not slow the next download.
  await syncFile(target);
  return { method: 'plain fetch', fileBytes: size, networkBytes: counter.bytes, ms, cpuMs, peakRssDeltaBytes: peakDeltaBytes, ioBefore, ioAfter, complete: failure === null && onDisk === size, failure };
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+').catch(() => null);
  await handle?.sync().catch(() => undefined);
  await handle?.close();
}

/** One whole download through a fresh queue (its own database and folder). */
async function queueDownload(work: string, hub: HubProcess, size: number, log: (line: string) => void): Promise<DownloadRun> {
  await mkdir(work, { recursive: true });
  const db = openDatabase(join(work, 'hearth.db'));
  const events = new Events();
  const counter = new CountingFetch();
  const queue = makeQueue(db, join(work, 'models'), hub, events, counter, log);
  try {
    queue.restore();
    const ioBefore = ioNow();
    const cpu = process.cpuUsage();
    const began = performance.now();
    let end: DownloadItem | null = null;
    let failure: string | null = null;
    const { peakDeltaBytes } = await withPeakRssDelta(async () => {
      const ended = events.ended();
      const started = await queue.start({ repo: REPO, file: FILE });
      if (!started.ok) {
        failure = started.error.message;
        return;
      }
      end = await ended;
    });
    const ms = performance.now() - began;
    const cpuMs = cpuMsSince(cpu);
    const ioAfter = ioNow();
    const final = end as DownloadItem | null;
    if (final !== null && final.status !== 'done') failure = `${final.status}: ${final.error?.message ?? ''}`;
    const onDisk = await stat(join(work, 'models', FILE)).then((s) => s.size, () => -1);
    return { method: 'DownloadQueue', fileBytes: size, networkBytes: counter.bytes, ms, cpuMs, peakRssDeltaBytes: peakDeltaBytes, ioBefore, ioAfter, complete: failure === null && onDisk === size, failure };
  } finally {
    await queue.dispose();
    db.close();
  }
}

/** A download stopped at `pauseAt` (pause, or dispose as a quit) and finished after a resume (or a new queue). */
async function interruptedDownload(kind: 'pause' | 'restart', work: string, hub: HubProcess, size: number, pauseAt: number, log: (line: string) => void): Promise<InterruptedRun> {
  await mkdir(work, { recursive: true });
  const modelsDir = join(work, 'models');
  const db = openDatabase(join(work, 'hearth.db'));
  const counter = new CountingFetch();
  let events = new Events();
  let queue = makeQueue(db, modelsDir, hub, events, counter, log);
  const queues = [queue];
  try {
    queue.restore();
    const ioBefore = ioNow();
    const began = performance.now();
    const reached = events.next((item) => item.downloadedBytes >= pauseAt * size || (item.status !== 'downloading' && item.status !== 'queued'));
    const started = await queue.start({ repo: REPO, file: FILE });
    if (!started.ok) throw new Error(started.error.message);
    const at = await reached;
    if (at.status === 'done' || at.status === 'error') throw new Error(`the download ended (${at.status}) before it could be stopped at ${Math.round(pauseAt * 100)}%`);
    if (kind === 'pause') {
      const paused = await queue.pause(started.value.id);
      if (!paused.ok || paused.value.status !== 'paused') throw new Error(`pause: ${paused.ok ? paused.value.status : paused.error.message}`);
    } else {
      await queue.dispose();
    }
    const beforeMs = performance.now() - began;
    const stoppedAtBytes = await stat(join(modelsDir, `${FILE}.part`)).then((s) => s.size);
    const networkBytesBefore = counter.bytes;
    const mark = (await hub.requests()).length;

    const ioResumed = ioNow();
    const resumed = performance.now();
    let end: DownloadItem | null = null;
    const { peakDeltaBytes } = await withPeakRssDelta(async () => {
      if (kind === 'pause') {
        const ended = events.ended();
        const again = await queue.resume(started.value.id);
        if (!again.ok) throw new Error(`resume: ${again.error.message}`);
        end = await ended;
      } else {
        events = new Events();
        queue = makeQueue(db, modelsDir, hub, events, counter, log);
        queues.push(queue);
        const ended = events.ended();
        queue.restore();
        end = await ended;
      }
    });
    const afterMs = performance.now() - resumed;
    const ioAfter = ioNow();
    const after = (await hub.requests(mark)).filter((r) => r.server === 'cdn' && r.method === 'GET');
    const spell = rehashSpell(events.seen, resumed);
    const final = end as DownloadItem | null;
    const onDisk = await stat(join(modelsDir, FILE)).then((s) => s.size, () => -1);
    const complete = final?.status === 'done' && onDisk === size;
    return {
      kind,
      fileBytes: size,
      stoppedAtBytes,
      beforeMs,
      afterMs,
      resumeRangeStart: after.length === 0 ? null : rangeStart(after[0]!.range),
      networkBytesBefore,
      networkBytesAfter: counter.bytes - networkBytesBefore,
      rehashBytes: spell?.bytes ?? null,
      rehashMs: spell?.ms ?? null,
      peakRssDeltaBytes: peakDeltaBytes,
      ioBefore,
      ioResumed,
      ioAfter,
      complete,
      failure: complete ? null : `${final?.status ?? 'no end'}: ${final?.error?.message ?? `${onDisk} bytes on disk`}`,
    };
  } finally {
    for (const q of queues) await q.dispose();
    db.close();
  }
}

// ---- the parts -------------------------------------------------------------------------------

async function downloadParts(options: ModelsBenchOptions, root: string): Promise<{ downloads: DownloadRun[]; interrupted: InterruptedRun[] }> {
  const { log } = options;
  const downloads: DownloadRun[] = [];
  const interrupted: InterruptedRun[] = [];
  const source = join(root, 'source.gguf');
  log(`writing a ${(options.fileBytes / 2 ** 20).toFixed(0)} MiB source file…`);
  await writeSource(source, options.fileBytes);
  log('starting the Hub emulator (it hashes the file first)…');
  const hub = await startHubProcess([{ id: REPO, files: [{ path: FILE, source }] }]);
  try {
    const url = `${hub.endpoint}/${REPO}/resolve/main/${FILE}`;
    let run = 0;
    if (options.parts.includes('download')) {
      for (let rep = 0; rep < options.reps; rep++) {
        const target = join(root, `plain-${rep}.gguf`);
        const plain = await plainDownload(url, target, options.fileBytes);
        await rm(target, { force: true });
        log(`  plain fetch ${rep + 1}: ${(plain.ms / 1000).toFixed(1)} s${plain.failure ? ` FAILED ${plain.failure}` : ''}`);
        downloads.push(plain);
        const work = join(root, `run-${run++}`);
        const queued = await queueDownload(work, hub, options.fileBytes, log);
        await rm(work, { recursive: true, force: true });
        log(`  DownloadQueue ${rep + 1}: ${(queued.ms / 1000).toFixed(1)} s${queued.failure ? ` FAILED ${queued.failure}` : ''}`);
        downloads.push(queued);
      }
    }
    for (const kind of ['pause', 'restart'] as const) {
      if (!options.parts.includes(kind)) continue;
      const work = join(root, `run-${run++}`);
      try {
        const result = await interruptedDownload(kind, work, hub, options.fileBytes, options.pauseAt, log);
        log(`  ${kind}: stopped at ${(result.stoppedAtBytes / 2 ** 20).toFixed(0)} MiB, ${((result.beforeMs + result.afterMs) / 1000).toFixed(1)} s in all${result.failure ? ` FAILED ${result.failure}` : ''}`);
        interrupted.push(result);
      } catch (error) {
        log(`  ${kind} FAILED: ${errorText(error)}`);
        interrupted.push(failedInterrupted(kind, options.fileBytes, errorText(error)));
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    }
  } finally {
    await hub.close();
    await rm(source, { force: true });
  }
  return { downloads, interrupted };
}

function failedInterrupted(kind: 'pause' | 'restart', size: number, failure: string): InterruptedRun {
  const none: IoCounters = { rchar: null, wchar: null, writeBytes: null, cancelledWriteBytes: null };
  return { kind, fileBytes: size, stoppedAtBytes: 0, beforeMs: 0, afterMs: 0, resumeRangeStart: null, networkBytesBefore: 0, networkBytesAfter: 0, rehashBytes: null, rehashMs: null, peakRssDeltaBytes: null, ioBefore: none, ioResumed: none, ioAfter: none, complete: false, failure };
}

const FIT_REPO = 'bench/Meta-Llama-3.1-8B-Instruct-GGUF';
/** What a `small` fit file holds after its header (sparse): more than any header read asks for. */
const SMALL_FIT_TAIL = 64 * 2 ** 20;

async function fitPart(options: ModelsBenchOptions, root: string): Promise<FitRun> {
  const { log } = options;
  const dir = join(root, 'fit');
  await mkdir(dir, { recursive: true });
  const files: { name: string; sizeBytes: number; servedBytes: number; source: string }[] = [];
  let headerBytes = 0;
  for (const quant of options.fitQuants) {
    const q = fitQuants[quant]!;
    const header = llama8bHeader(q, options.vocabulary);
    headerBytes = Math.max(headerBytes, header.length);
    const name = `Meta-Llama-3.1-8B-Instruct-${quant}.gguf`;
    const source = join(dir, name);
    const servedBytes = options.fitSize === 'published' ? q.bytes : header.length + SMALL_FIT_TAIL;
    await writeSparseModel(source, header, servedBytes);
    files.push({ name, sizeBytes: q.bytes, servedBytes, source });
  }
  const sizes = new Map(files.map((f) => [f.name, f.servedBytes]));
  const served = files.reduce((sum, f) => sum + f.servedBytes, 0);
  log(`starting the Hub emulator with ${files.length} sparse files (${(served / 1e9).toFixed(2)} GB): it hashes them first…`);
  const hub = await startHubProcess([]);
  const home = join(root, 'fit-home');
  await mkdir(home, { recursive: true });
  let host: Awaited<ReturnType<typeof startHost>> | null = null;
  const calls: FitCall[] = [];
  let emulatorSetupMs = 0;
  let hostStartMs = 0;
  let enginePeakRssBytes: number | null = null;
  let failure: string | null = null;
  try {
    emulatorSetupMs = await hub.addRepo({ id: FIT_REPO, files: files.map((f) => ({ path: f.name, source: f.source })) });
    log(`  hashed in ${(emulatorSetupMs / 1000).toFixed(1)} s; starting the host…`);
    const hostBegan = performance.now();
    // An empty home: the host's library looks in no real app folders.
    host = await startHost({ dataDir: join(root, 'fit-data'), env: { HEARTH_HF_ENDPOINT: hub.endpoint, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') } });
    hostStartMs = performance.now() - hostBegan;
    const hc = new HostClient(host.origin, host.token);
    const measure = async (label: string, call: 'hub.repo' | 'hub.fit'): Promise<void> => {
      const mark = (await hub.requests()).length;
      const began = performance.now();
      const result = call === 'hub.fit' ? await hc.call('hub.fit', { repo: FIT_REPO }) : await hc.call('hub.repo', { repo: FIT_REPO });
      const ms = performance.now() - began;
      const seen = await hub.requests(mark);
      const body = bodyBytes(seen, sizes);
      const verdicts = result.ok && call === 'hub.fit' ? Object.values((result.value as { files: Record<string, { fit?: unknown }> }).files).filter((f) => 'fit' in f).length : 0;
      calls.push({ label, call, ms, bytesFetched: body.bytes, bodyRequests: body.bodyRequests, requests: seen.length, verdicts, failure: result.ok ? null : `${result.error.code}: ${result.error.message}` });
      log(`  ${call} (${label}): ${ms.toFixed(0)} ms, ${body.bytes} file bytes in ${body.bodyRequests} requests${result.ok ? '' : ` FAILED ${result.error.message}`}`);
    };
    await measure('as the repository page opens', 'hub.repo');
    await measure('first', 'hub.fit');
    for (let i = 0; i < options.fitRepeats; i++) await measure(`repeat ${i + 1}`, 'hub.fit');
    const pid = await host.enginePid();
    enginePeakRssBytes = pid === null ? null : procStatusBytes('VmHWM', pid);
  } catch (error) {
    failure = errorText(error);
    log(`  fit FAILED: ${failure}`);
  } finally {
    await host?.stop();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
  return { repo: FIT_REPO, files: files.map(({ name, sizeBytes, servedBytes }) => ({ name, sizeBytes, servedBytes })), headerBytes, vocabulary: options.vocabulary, emulatorSetupMs, hostStartMs, calls, enginePeakRssBytes, failure };
}

/** Small shapes, as the fake home's: each file about 120 KiB, a llama model llama.cpp could load. */
const smallShape = { layers: 1, nEmbd: 64, nHead: 2, nHeadKv: 1, nFf: 64 } as const;

async function scanPart(options: ModelsBenchOptions, root: string): Promise<ScanFigures> {
  const { log } = options;
  const under = join(root, 'scan');
  await mkdir(under, { recursive: true });
  const fake = await makeFakeHome(under, 'linux');
  log(`writing ${options.scanModels} small and ${options.scanLargeModels} large-header GGUFs…`);
  for (let i = 0; i < options.scanModels; i++) {
    await writeFile(join(fake.modelsDir, `bench-small-${String(i).padStart(4, '0')}-F16.gguf`), encodeGguf(tinyLlamaModel({ ...smallShape, name: `Bench small model ${i}`, seed: 1000 + i })));
  }
  const largeHeader = llama8bHeader(fitQuants.Q4_K_M!, true);
  for (let i = 0; i < options.scanLargeModels; i++) {
    await writeSparseModel(join(fake.modelsDir, `bench-large-${String(i).padStart(3, '0')}-Q4_K_M.gguf`), largeHeader, fitQuants.Q4_K_M!.bytes);
  }
  const input = { modelsDir: fake.modelsDir, home: fake.home, platform: 'linux' as const, env: fake.env };
  const runs: ScanRun[] = [];
  let evicted = false;
  let failure: string | null = null;
  let smallHeaderMs: number | null = null;
  let largeHeaderMs: number | null = null;
  try {
    evicted = await evictFromPageCache(await filesUnder(under, ''));
    const scan = async (label: string, pageCache: ScanRun['pageCache']): Promise<void> => {
      const began = performance.now();
      const { value, peakDeltaBytes } = await withPeakRssDelta(() => scanLibrary(input));
      const ms = performance.now() - began;
      const models = value.models.filter((m) => m.path.startsWith(under)).length;
      runs.push({ label, pageCache, ms, models, peakRssDeltaBytes: peakDeltaBytes });
      log(`  scan (${label}): ${ms.toFixed(0)} ms, ${models} models`);
    };
    await scan('first (no header cached)', evicted ? 'evicted' : 'warm');
    for (let i = 0; i < options.scanRepeats; i++) await scan(`repeat ${i + 1} (headers cached)`, 'warm');
    // One header of each kind read alone, past the library's cache (its pages are cached by now).
    const one = async (file: string): Promise<number> => {
      const began = performance.now();
      const read = await inspectGguf(file);
      if (!read.ok) throw new Error(`${file}: ${read.error.message}`);
      return performance.now() - began;
    };
    smallHeaderMs = await one(join(fake.modelsDir, 'bench-small-0000-F16.gguf')).catch(() => null);
    largeHeaderMs = options.scanLargeModels > 0 ? await one(join(fake.modelsDir, 'bench-large-000-Q4_K_M.gguf')) : null;
  } catch (error) {
    failure = errorText(error);
  } finally {
    await rm(under, { recursive: true, force: true });
  }
  return { smallModels: options.scanModels, largeHeaderModels: options.scanLargeModels, largeHeaderBytes: largeHeader.length, fakeHomeModels: fake.expected.length, evicted, runs, smallHeaderMs, largeHeaderMs, failure };
}

export async function runModelsBench(options: ModelsBenchOptions): Promise<ModelsReport> {
  const began = performance.now();
  const loadAtStart = loadavg()[0]!;
  const root = join(resolve(options.dir), `models-${process.pid}`);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  let downloads: DownloadRun[] = [];
  let interrupted: InterruptedRun[] = [];
  let fit: FitRun | null = null;
  let scan: ScanFigures | null = null;
  try {
    if (options.parts.some((p) => p === 'download' || p === 'pause' || p === 'restart')) ({ downloads, interrupted } = await downloadParts(options, root));
    if (options.parts.includes('fit')) fit = await fitPart(options, root);
    if (options.parts.includes('scan')) scan = await scanPart(options, root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const report: ModelsReport = {
    downloads,
    interrupted,
    fit,
    scan,
    machine: { ...machineInfo(), loadAverage: [loadAtStart, loadavg()[0]!], fileBytes: options.fileBytes, pauseAt: options.pauseAt, reps: options.reps, dir: resolve(options.dir), fsType: await fsTypeOf(options.dir), wallMs: performance.now() - began },
    date: new Date().toISOString(),
  };
  await writeReport(options.jsonPath, report, formatReport(report));
  return report;
}
