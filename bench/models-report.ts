/**
 * The models benchmark's report: what each measured step recorded, the figures derived from it
 * (ratios, rates, bytes fetched from the emulator's request log), and the markdown it prints.
 * Pure, so the arithmetic is unit-tested on synthetic data (models-report.test.ts); bench/models.ts
 * runs the downloads, the host and the scans.
 */
import type { DownloadItem } from '../engine/contract/index.ts';
import { markdownTable, type Column } from './table.ts';
import type { MachineInfo } from './util.ts';

/** The benchmark's parts, in the order they run. */
export type ModelsPart = 'download' | 'pause' | 'restart' | 'fit' | 'scan';

export const modelsParts: readonly ModelsPart[] = ['download', 'pause', 'restart', 'fit', 'scan'];

/** This process's /proc/self/io counters at one moment (null fields where /proc is not available). */
export interface IoCounters {
  /** Bytes passed back by read()-like system calls: files (page cache or disk), sockets and pipes alike. */
  readonly rchar: number | null;
  /** Bytes handed to write()-like system calls: files, sockets and pipes alike. */
  readonly wchar: number | null;
  /** Bytes of page cache this process dirtied (what the device will be sent). */
  readonly writeBytes: number | null;
  /** Of those, bytes that never reached the device (their file was truncated or deleted first). */
  readonly cancelledWriteBytes: number | null;
}

/** One timed download of the whole file. */
export interface DownloadRun {
  readonly method: 'plain fetch' | 'DownloadQueue';
  /** The file's size. */
  readonly fileBytes: number;
  /** Body bytes the client received over HTTP (a counter on every response body). */
  readonly networkBytes: number;
  readonly ms: number;
  /** This process's user + system CPU time during the download. */
  readonly cpuMs: number;
  /** Peak resident memory above its start (VmHWM after a reset); null where /proc is not available. */
  readonly peakRssDeltaBytes: number | null;
  /** /proc/self/io before and after. */
  readonly ioBefore: IoCounters;
  readonly ioAfter: IoCounters;
  /** The final file has the source's size (and, for the queue, its SHA-256 matched: status done). */
  readonly complete: boolean;
  readonly failure: string | null;
}

/** A download stopped part way and finished after a resume (pause) or a new queue on the same database and folder (restart). */
export interface InterruptedRun {
  readonly kind: 'pause' | 'restart';
  readonly fileBytes: number;
  /** Bytes in the `.part` file once it stopped. */
  readonly stoppedAtBytes: number;
  /** From the start to the stop (the pause or dispose answered), ms. */
  readonly beforeMs: number;
  /** From resume() / the new queue to done, ms. */
  readonly afterMs: number;
  /** The first byte the resumed request asked for (its Range), or null when it sent none (a download from 0). */
  readonly resumeRangeStart: number | null;
  /** Body bytes received before and after the stop (every response, a counter on each body). */
  readonly networkBytesBefore: number;
  readonly networkBytesAfter: number;
  /**
   * The prefix re-hashed on resume (the `verifying` spell before the transfer goes on, see
   * `rehashSpell`), bytes and ms; null when there was no such spell (the queue kept the hash).
   */
  readonly rehashBytes: number | null;
  readonly rehashMs: number | null;
  /** Peak resident memory above its start, over the resumed half. */
  readonly peakRssDeltaBytes: number | null;
  /** /proc/self/io at the start, at the resume (or the new queue) and at the end. */
  readonly ioBefore: IoCounters;
  readonly ioResumed: IoCounters;
  readonly ioAfter: IoCounters;
  readonly complete: boolean;
  readonly failure: string | null;
}

/** One `hub.*` call through the host, and what it made the engine fetch from the Hub. */
export interface FitCall {
  readonly label: string;
  readonly call: 'hub.repo' | 'hub.fit';
  readonly ms: number;
  /** File-body bytes the emulator sent (its Range headers against the files' sizes) for this call. */
  readonly bytesFetched: number;
  /** GET requests for file bodies (the CDN), and requests in all (the Hub API, redirects, HEADs). */
  readonly bodyRequests: number;
  readonly requests: number;
  /** Files with a verdict in the answer (hub.fit). */
  readonly verdicts: number;
  readonly failure: string | null;
}

export interface FitRun {
  readonly repo: string;
  /** Each file's published size (what the repository's real file weighs) and the size the emulator served (the listing's). */
  readonly files: readonly { readonly name: string; readonly sizeBytes: number; readonly servedBytes: number }[];
  /** Bytes of each file's header (its metadata and tensor infos), the largest. */
  readonly headerBytes: number;
  /** The header carries a vocabulary of Llama 3's size (tokens, types, merges). */
  readonly vocabulary: boolean;
  /** The emulator hashing the (sparse) files before it answers: setup, not measured. */
  readonly emulatorSetupMs: number;
  /** The host's start until it printed its address. */
  readonly hostStartMs: number;
  readonly calls: readonly FitCall[];
  /** The engine process's peak resident memory (VmHWM) after the calls. */
  readonly enginePeakRssBytes: number | null;
  readonly failure: string | null;
}

export interface ScanRun {
  readonly label: string;
  /** Whether the files' pages were evicted from the page cache before it. */
  readonly pageCache: 'evicted' | 'warm';
  readonly ms: number;
  /** Models listed under the benchmark's folders. */
  readonly models: number;
  readonly peakRssDeltaBytes: number | null;
}

export interface ScanFigures {
  /** Small generated GGUFs added to Hearth's folder, and large-header ones (a Llama 3 vocabulary, sparse beyond it). */
  readonly smallModels: number;
  readonly largeHeaderModels: number;
  readonly largeHeaderBytes: number;
  /** Models the fake home lays out in Hearth's and the other apps' folders. */
  readonly fakeHomeModels: number;
  /** Whether page-cache eviction worked (Linux, GNU dd). */
  readonly evicted: boolean;
  readonly runs: readonly ScanRun[];
  /** `inspectGguf` of one small and one large-header file alone, past the library's cache (pages cached). */
  readonly smallHeaderMs: number | null;
  readonly largeHeaderMs: number | null;
  readonly failure: string | null;
}

export interface ModelsReport {
  readonly downloads: readonly DownloadRun[];
  readonly interrupted: readonly InterruptedRun[];
  readonly fit: FitRun | null;
  readonly scan: ScanFigures | null;
  readonly machine: MachineInfo & {
    readonly fileBytes: number;
    readonly pauseAt: number;
    readonly reps: number;
    /** Where the downloads were written, and its file system. */
    readonly dir: string;
    readonly fsType: string | null;
    /** The 1-minute load average at the start and the end: the machine is shared. */
    readonly loadAverage: readonly [number, number];
    readonly wallMs: number;
  };
  readonly date: string;
}

const MiB = 2 ** 20;

/** The difference of one counter, or null when either side is unknown. */
function delta(after: number | null, before: number | null): number | null {
  return after === null || before === null ? null : after - before;
}

/** Bytes sent to the device in a span: dirtied pages less those cancelled (write_bytes − cancelled_write_bytes). */
export function deviceBytes(before: IoCounters, after: IoCounters): number | null {
  const written = delta(after.writeBytes, before.writeBytes);
  const cancelled = delta(after.cancelledWriteBytes, before.cancelledWriteBytes);
  return written === null || cancelled === null ? null : written - cancelled;
}

/** Bytes passed to write() calls in a span (wchar). */
export function syscallBytes(before: IoCounters, after: IoCounters): number | null {
  return delta(after.wchar, before.wchar);
}

/** Decimal megabytes per second (10^6 B/s, as download speeds are quoted); null without time. */
export function mbPerSecond(bytes: number, ms: number | null): number | null {
  return ms === null || ms <= 0 ? null : bytes / 1e6 / (ms / 1000);
}

/** The median of a non-empty list, else null. */
function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The median time of the complete runs of one method. */
export function medianMs(runs: readonly DownloadRun[], method: DownloadRun['method']): number | null {
  return median(runs.filter((r) => r.method === method && r.complete).map((r) => r.ms));
}

/**
 * `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size`: the bytes that range asks for
 * (what the emulator sends for it); the whole file when there is no range or one it ignores.
 */
export function rangeBytes(range: string | undefined, size: number): number {
  const match = /^bytes=(\d*)-(\d*)$/.exec(range?.trim() ?? '');
  if (!match || (match[1] === '' && match[2] === '')) return size;
  if (match[1] === '') return Math.min(size, Number(match[2]));
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  return start >= size || end < start ? 0 : end - start + 1;
}

/** The first byte a `bytes=a-…` range asks for; null for none (or a suffix range). */
export function rangeStart(range: string | undefined): number | null {
  const match = /^bytes=(\d+)-/.exec(range?.trim() ?? '');
  return match ? Number(match[1]) : null;
}

/** One emulator request, as far as counting bytes goes (the fields of hf-emulator.ts's EmulatorRequest). */
export interface RequestSeen {
  readonly method: string;
  readonly path: string;
  readonly server: 'hub' | 'cdn';
  readonly range?: string;
}

/**
 * What a span of emulator requests fetched of file bodies: the CDN's GETs (the Hub answers a
 * file's `resolve` with a redirect, no body), each by its Range against the size of the file its
 * `file=` parameter names (`sizes` by repository path). A file the map lacks counts nothing
 * (and shows as `unknown`).
 */
export function bodyBytes(requests: readonly RequestSeen[], sizes: ReadonlyMap<string, number>): { bytes: number; bodyRequests: number; unknown: number } {
  let bytes = 0;
  let bodyRequests = 0;
  let unknown = 0;
  for (const request of requests) {
    if (request.server !== 'cdn' || request.method !== 'GET') continue;
    const file = new URL(request.path, 'http://cdn').searchParams.get('file') ?? '';
    const size = sizes.get(file);
    if (size === undefined) {
      unknown++;
      continue;
    }
    bodyRequests++;
    bytes += rangeBytes(request.range, size);
  }
  return { bytes, bodyRequests, unknown };
}

/** A download's progress event and when it came (performance.now()). */
export interface ProgressSeen {
  readonly at: number;
  readonly item: Pick<DownloadItem, 'status' | 'downloadedBytes'>;
}

/**
 * The `verifying` spell that re-read a prefix after `from`, or null when there was none (the
 * queue went on from the hash it kept). Its events count the bytes read back so far, from 0, so
 * the bytes re-read are those of the `downloading` event that ends it (the prefix), and its time
 * runs from its first event to that one. A `verifying` that runs into anything else (`done`: the
 * final check of the complete file) re-read no prefix.
 */
export function rehashSpell(seen: readonly ProgressSeen[], from: number): { bytes: number; ms: number } | null {
  const after = seen.filter((e) => e.at >= from);
  const start = after.findIndex((e) => e.item.status === 'verifying');
  if (start < 0) return null;
  const end = after.slice(start + 1).find((e) => e.item.status !== 'verifying');
  return end?.item.status === 'downloading' ? { bytes: end.item.downloadedBytes, ms: end.at - after[start]!.at } : null;
}

/** Figures of an interrupted download, against the uninterrupted queue's median time. */
export interface InterruptedFigures {
  /** (before + after) / the uninterrupted download's time. */
  readonly timeRatio: number | null;
  readonly stoppedFraction: number;
  /** Bytes already on disk that the resumed request asked for again (stopped at − its range start). */
  readonly refetchedBytes: number | null;
  /** Every body byte received / the file's size (1.00: nothing fetched twice, nothing thrown away). */
  readonly networkRatio: number;
  readonly rehashMBps: number | null;
  /**
   * Bytes this process read after the stop beyond the body bytes it received (rchar − received):
   * the prefix read back from the `.part`, plus small reads (SQLite, HTTP headers); null without /proc.
   */
  readonly readBackBytes: number | null;
  /** Bytes sent to the device over both halves / the file's size. */
  readonly diskRatio: number | null;
}

export function interruptedFigures(run: InterruptedRun, uninterruptedMs: number | null): InterruptedFigures {
  const disk = deviceBytes(run.ioBefore, run.ioAfter);
  const read = delta(run.ioAfter.rchar, run.ioResumed.rchar);
  return {
    timeRatio: uninterruptedMs === null || !run.complete ? null : (run.beforeMs + run.afterMs) / uninterruptedMs,
    stoppedFraction: run.stoppedAtBytes / run.fileBytes,
    refetchedBytes: run.resumeRangeStart === null ? (run.stoppedAtBytes > 0 ? run.stoppedAtBytes : null) : run.stoppedAtBytes - run.resumeRangeStart,
    networkRatio: (run.networkBytesBefore + run.networkBytesAfter) / run.fileBytes,
    rehashMBps: run.rehashBytes === null ? null : mbPerSecond(run.rehashBytes, run.rehashMs),
    readBackBytes: read === null ? null : read - run.networkBytesAfter,
    diskRatio: disk === null ? null : disk / run.fileBytes,
  };
}

const mib = (bytes: number | null): string | null => (bytes === null ? null : `${(bytes / MiB).toFixed(bytes >= 100 * MiB ? 0 : 1)} MiB`);
const x = (ratio: number | null): string | null => (ratio === null ? null : `${ratio.toFixed(2)}×`);
const s = (ms: number | null): string | null => (ms === null ? null : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms).toLocaleString('en-US')} ms`);
const bytesText = (bytes: number | null): string | null => {
  if (bytes === null) return null;
  if (Math.abs(bytes) < 10_000) return `${bytes.toLocaleString('en-US')} B`;
  if (Math.abs(bytes) < 10 * MiB) return `${(bytes / 1024).toFixed(0)} KiB`;
  return mib(bytes);
};

/** The median CPU time of the complete runs of one method. */
export function medianCpuMs(runs: readonly DownloadRun[], method: DownloadRun['method']): number | null {
  return median(runs.filter((r) => r.method === method && r.complete).map((r) => r.cpuMs));
}

function downloadColumns(baselineMs: number | null, baselineCpuMs: number | null): Column<DownloadRun>[] {
  return [
    { title: 'method', value: (r) => r.method },
    { title: 'time vs plain fetch (median)', value: (r) => (baselineMs === null || !r.complete ? null : x(r.ms / baselineMs)), numeric: true },
    // CPU time is what this process spent, whatever else the shared machine ran meanwhile.
    { title: 'CPU vs plain fetch (median)', value: (r) => (baselineCpuMs === null || !r.complete ? null : x(r.cpuMs / baselineCpuMs)), numeric: true },
    { title: 'disk writes / file (write_bytes)', value: (r) => x(ratioOrNull(deviceBytes(r.ioBefore, r.ioAfter), r.fileBytes)), numeric: true },
    { title: 'write() bytes / file (wchar)', value: (r) => x(ratioOrNull(syscallBytes(r.ioBefore, r.ioAfter), r.fileBytes)), numeric: true },
    { title: 'MB/s', value: (r) => mbPerSecond(r.fileBytes, r.ms), numeric: true },
    { title: 'time', value: (r) => s(r.ms), numeric: true },
    { title: 'CPU (this process)', value: (r) => s(r.cpuMs), numeric: true },
    { title: 'peak RSS growth', value: (r) => mib(r.peakRssDeltaBytes), numeric: true },
    { title: 'complete', value: (r) => (r.complete ? 'yes' : `NO: ${r.failure ?? 'incomplete'}`) },
  ];
}

const ratioOrNull = (value: number | null, of: number): number | null => (value === null || of <= 0 ? null : value / of);

function interruptedColumns(uninterruptedMs: number | null): Column<InterruptedRun>[] {
  const f = (r: InterruptedRun): InterruptedFigures => interruptedFigures(r, uninterruptedMs);
  return [
    { title: 'stopped by', value: (r) => (r.kind === 'pause' ? 'pause, resume' : 'dispose, new queue') },
    { title: 'time vs uninterrupted', value: (r) => x(f(r).timeRatio), numeric: true },
    { title: 'received / file', value: (r) => x(f(r).networkRatio), numeric: true },
    { title: 're-fetched after resume', value: (r) => bytesText(f(r).refetchedBytes), numeric: true },
    { title: 'disk writes / file', value: (r) => x(f(r).diskRatio), numeric: true },
    { title: 'stopped at', value: (r) => `${(f(r).stoppedFraction * 100).toFixed(0)}% (${mib(r.stoppedAtBytes)})`, numeric: true },
    // No spell on a complete run: the queue went on from the hash it kept (the read-back says how much it re-read).
    { title: 're-hash of the prefix', value: (r) => (r.rehashBytes !== null ? `${mib(r.rehashBytes)} in ${s(r.rehashMs)}` : r.complete ? 'none' : null), numeric: true },
    { title: 're-hash MB/s', value: (r) => f(r).rehashMBps, numeric: true },
    { title: 'read after the stop − received', value: (r) => bytesText(f(r).readBackBytes), numeric: true },
    { title: 'before + after the stop', value: (r) => `${s(r.beforeMs)} + ${s(r.afterMs)}`, numeric: true },
    { title: 'peak RSS growth (after)', value: (r) => mib(r.peakRssDeltaBytes), numeric: true },
    { title: 'complete', value: (r) => (r.complete ? 'yes' : `NO: ${r.failure ?? 'incomplete'}`) },
  ];
}

function fitColumns(run: FitRun): Column<FitCall>[] {
  const total = run.files.reduce((sum, file) => sum + file.sizeBytes, 0);
  return [
    { title: 'call', value: (c) => `${c.call} (${c.label})` },
    { title: 'fetched / repository (published sizes)', value: (c) => (total > 0 ? `${((c.bytesFetched / total) * 100).toFixed(4)}%` : null), numeric: true },
    { title: 'fetched / header', value: (c) => (c.call === 'hub.fit' && run.headerBytes > 0 ? x(c.bytesFetched / run.headerBytes) : null), numeric: true },
    { title: 'file bytes fetched', value: (c) => bytesText(c.bytesFetched), numeric: true },
    { title: 'file requests / all', value: (c) => `${c.bodyRequests} / ${c.requests}`, numeric: true },
    { title: 'time', value: (c) => s(c.ms), numeric: true },
    { title: 'verdicts', value: (c) => (c.call === 'hub.fit' ? c.verdicts : null), numeric: true },
    { title: 'failure', value: (c) => c.failure ?? '' },
  ];
}

function scanColumns(first: number | null): Column<ScanRun>[] {
  return [
    { title: 'scan', value: (r) => r.label },
    { title: 'time vs first', value: (r) => (first === null ? null : x(r.ms / first)), numeric: true },
    { title: 'time', value: (r) => s(r.ms), numeric: true },
    { title: 'per model', value: (r) => (r.models > 0 ? `${(r.ms / r.models).toFixed(2)} ms` : null), numeric: true },
    { title: 'models listed', value: (r) => r.models, numeric: true },
    { title: 'page cache', value: (r) => r.pageCache },
    { title: 'peak RSS growth', value: (r) => mib(r.peakRssDeltaBytes), numeric: true },
  ];
}

export function formatReport(report: ModelsReport): string {
  const m = report.machine;
  const out: string[] = [
    `Models benchmark: ${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform}, Node ${m.node}; ${report.date}. ` +
      `Files in ${m.dir} (${m.fsType ?? 'unknown file system'}); the Hub emulator runs in a process of its own on loopback, unthrottled; ` +
      `load average ${m.loadAverage[0].toFixed(1)} at the start, ${m.loadAverage[1].toFixed(1)} at the end; ${(m.wallMs / 1000).toFixed(0)} s in all.`,
  ];
  const baselineMs = medianMs(report.downloads, 'plain fetch');
  const queueMs = medianMs(report.downloads, 'DownloadQueue');
  if (report.downloads.length > 0) {
    out.push(
      '',
      `### Download of ${mib(m.fileBytes)} (a GGUF header, then pseudo-random bytes), ${m.reps} rep${m.reps === 1 ? '' : 's'} each, alternating`,
      '',
      markdownTable(report.downloads, downloadColumns(baselineMs, medianCpuMs(report.downloads, 'plain fetch'))),
    );
  }
  for (const kind of ['pause', 'restart'] as const) {
    const runs = report.interrupted.filter((r) => r.kind === kind);
    if (runs.length === 0) continue;
    out.push(
      '',
      kind === 'pause' ? `### Pause at ~${Math.round(m.pauseAt * 100)}%, then resume` : `### Restart at ~${Math.round(m.pauseAt * 100)}%: dispose() (a quit), a new DownloadQueue on the same database and folder`,
      '',
      markdownTable(runs, interruptedColumns(queueMs)),
    );
  }
  const fit = report.fit;
  if (fit) {
    const total = fit.files.reduce((sum, file) => sum + file.sizeBytes, 0);
    const served = fit.files.reduce((sum, file) => sum + file.servedBytes, 0);
    const cut = served < total;
    out.push(
      '',
      `### Fit verdicts: hub.fit through the host for ${fit.repo}, ${fit.files.length} files of ${(total / 1e9).toFixed(1)} GB in all as published`,
      '',
      `Header ${bytesText(fit.headerBytes)} per file (${fit.vocabulary ? "with a vocabulary of Llama 3's size" : 'no vocabulary'}); ` +
        (cut ? `the emulator served each file cut to its header and ${bytesText(fit.files[0]!.servedBytes - fit.headerBytes)} (sparse; ${(served / 1e9).toFixed(2)} GB in all), so the verdicts judge those sizes; ` : 'the files are sparse beyond the header; ') +
        `host start ${s(fit.hostStartMs)}; the emulator hashed the files for ${s(fit.emulatorSetupMs)} before answering (setup); engine peak RSS ${mib(fit.enginePeakRssBytes) ?? '—'}.`,
      '',
      markdownTable(fit.calls, fitColumns(fit)),
    );
    if (fit.failure) out.push('', `Fit FAILED: ${fit.failure}`);
  }
  const scan = report.scan;
  if (scan) {
    const first = scan.runs[0]?.ms ?? null;
    out.push(
      '',
      `### Library scan: ${scan.smallModels} small GGUFs and ${scan.largeHeaderModels} with a ${bytesText(scan.largeHeaderBytes)} header in Hearth's folder, plus the fake home's ${scan.fakeHomeModels} models in five apps' folders`,
      '',
      markdownTable(scan.runs, scanColumns(first)),
    );
    out.push('', `One header read alone (inspectGguf, pages cached): small ${s(scan.smallHeaderMs) ?? '—'}, large-header ${s(scan.largeHeaderMs) ?? '—'}.`);
    if (!scan.evicted) out.push('', 'Page-cache eviction was not available: the first scan read cached pages.');
    if (scan.failure) out.push('', `Scan FAILED: ${scan.failure}`);
  }
  return out.join('\n');
}
