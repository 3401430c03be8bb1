/**
 * The resume benchmark's report: its rows, the acceptance lines computed from them (pure, so
 * they are unit-tested), and the markdown table and lines it prints. bench/resume.ts measures.
 */
import type { KvCodecInfo, KvCompression, KvCompressionSetting } from '../engine/contract/index.ts';
import { KV_SHAPE_8B } from './kv-shape-8b.ts';
import { markdownTable, type Column } from './table.ts';
import type { MachineInfo } from './util.ts';

/**
 * `warm`: every file read was just written, so it comes from the page cache (a chat reopened
 * minutes later). `cold`: the measured files are evicted from the page cache before each timed
 * read (`evictFromPageCache`), so they come from the device (a chat reopened after a reboot, or
 * days later).
 */
export type PageCache = 'warm' | 'cold';

export interface ResumeRow {
  readonly model: string;
  readonly tokens: number;
  readonly pageCache: PageCache;
  readonly kvType: string;
  readonly flashAttention: boolean;
  /** llama.cpp threads of this row's contexts (kv-shape-8b rows have their own). */
  readonly threads: number;
  /** The store's disk encoding the row was measured with (after `auto` was resolved). */
  readonly compression: KvCompression;
  /** Where the store's scratch state files go, and the file system there. */
  readonly scratchDir: string;
  readonly scratchFs: string | null;
  /** How this model's contexts move sequence state (KvCache.transferOf): through memory, or scratch files (with why). */
  readonly stateTransfer: 'memory' | 'file';
  readonly stateTransferReason: string | null;
  readonly prefillMs: number | null;
  readonly nativeRestoreMs: number | null;
  readonly storeRestoreMs: number | null;
  readonly readFloorMs: number | null;
  /**
   * llama.cpp loading node-llama-cpp's whole state file from a buffer already in memory
   * (StateTransfer.write into a fresh sequence): the load's own cost, beside `readFloorMs`. Null
   * unless the state transfer is `memory`.
   */
  readonly setDataMs: number | null;
  readonly ttftMs: number | null;
  /**
   * The same next message's first token in the uninterrupted context A (nothing restored): the
   * part of ttftMs that is decoding, not restoring. One sample (context A lives once).
   */
  readonly liveTtftMs: number | null;
  /** The store's verified read of the chunk files alone (readChunks: read + crc + key check), no assembly or load. */
  readonly storeReadMs: number | null;
  readonly storeBytes: number | null;
  readonly nativeBytes: number | null;
  readonly turnWriteBytes: number | null;
  readonly fullStateBytes: number | null;
  /** Parts of turnWriteBytes: the store's report, and the scratch files the save wrote (counted only when on a disk). */
  readonly turnStoreBytes: number | null;
  readonly turnScratchBytes: number | null;
  /**
   * What the turn's save sent to storage devices by Linux's account (/proc/self/io: written minus
   * cancelled bytes), scratch included: with the scratch on a disk file system (as on macOS and
   * Windows, which have no /dev/shm) it shows whether a short-lived state file reached the disk.
   */
  readonly turnDeviceWriteBytes: number | null;
  /** 1.2 × (100 tokens' KV + one chunk file): the acceptance limit for turnWriteBytes. */
  readonly turnLimitBytes: number | null;
  /** KvCache.save of the 100-token turn (the same save turnWriteBytes measures). One sample. */
  readonly saveMs: number | null;
  /** Copying fullStateBytes once between two touched buffers in memory (median): the floor beside saveMs. */
  readonly copyFloorMs: number | null;
  /** Bytes written to scratch state files during the turn's save and one restore (KvCache.scratchBytesWritten). */
  readonly scratchBytes: number | null;
  /** Peak resident memory above the steady state during the turn's save, and during one (warm) restore. */
  readonly savePeakRssDeltaBytes: number | null;
  readonly restorePeakRssDeltaBytes: number | null;
  /** The state file size of what that restore loaded (engine/kv/codec.ts stateFileSize of its tokens). */
  readonly restoredStateBytes: number | null;
  readonly tokensRestored: number | null;
  /**
   * The tail: the tokens after the last full chunk, which could be kept as a prefix of the next
   * chunk or as a small partial chunk; the choice is measured here. Hearth stores it as a partial chunk (its KV in the manifest row, `tailBytes`), and
   * storeRestoreMs includes loading it. `tailRereadMs` measures the alternative: restore only the
   * full chunks and re-read (prefill) the `tailTokens` after them.
   */
  readonly tailTokens: number | null;
  readonly tailBytes: number | null;
  readonly tailRereadMs: number | null;
  /** The first greedy reply token after the store restore equals the uninterrupted context's. */
  readonly firstTokenMatches: boolean | null;
  /** Every kept sample (ms) behind the medians: reading 16 MB into fresh buffers is bimodal here (~10 vs ~40 ms), so look at the spread. */
  readonly samples: {
    readonly nativeRestoreMs: readonly number[];
    readonly storeRestoreMs: readonly number[];
    readonly readFloorMs: readonly number[];
    readonly setDataMs: readonly number[];
    readonly storeReadMs: readonly number[];
    readonly ttftMs: readonly number[];
    readonly tailRereadMs: readonly number[];
    readonly copyFloorMs: readonly number[];
  };
  readonly notes: readonly string[];
}

export interface ResumeReport {
  readonly rows: ResumeRow[];
  readonly machine: MachineInfo & {
    /** Threads of the test model's (and --model) rows; kv-shape-8b rows say theirs in `threads8b` and per row. */
    readonly threads: number;
    readonly threads8b: number | null;
    /** How threads8b was chosen (e.g. os.availableParallelism()). */
    readonly threads8bSource: string | null;
    readonly nodeLlamaCpp: string;
    readonly llamaCppRelease: string;
    readonly storeDir: string;
    readonly storeFs: string | null;
    readonly scratchDir: string;
    readonly scratchFs: string | null;
    readonly scratchDir8b: string | null;
    readonly scratchFs8b: string | null;
    readonly pageCache: readonly PageCache[];
    readonly reps: number;
    readonly chunkTokens: number;
    /** The store's encoding: the setting asked for, and what it resolved to (`auto` is measured, as the engine does). */
    readonly compressionSetting: KvCompressionSetting;
    readonly compression: KvCompression;
    readonly compressionReason: string | null;
    /** The codec kernels the store ran with. */
    readonly codec: KvCodecInfo;
  };
  readonly date: string;
  readonly acceptance: AcceptanceLine[];
}

export interface AcceptanceLine {
  readonly model: string;
  /** The page-cache state the restore was measured in; null for checks that do not depend on it. */
  readonly pageCache: PageCache | null;
  readonly kvType: string;
  readonly flashAttention: boolean;
  readonly tokens: number;
  readonly check: string;
  readonly pass: boolean | null;
  readonly detail: string;
}

const ms = (v: number): string => `${v.toFixed(2)} ms`;
const bytes = (v: number): string => `${v.toLocaleString('en-US')} B`;

type Base = Omit<AcceptanceLine, 'check' | 'pass' | 'detail'>;

/** One check: `not measured` (pass null) when an input is missing, else the comparison and its detail. */
function line(base: Base, check: string, measured: { pass: boolean; detail: string } | null, missing = 'not measured'): AcceptanceLine {
  return measured === null ? { ...base, check, pass: null, detail: missing } : { ...base, check, ...measured };
}

/** The restore checks of one row (one page-cache state). */
function restoreChecks(row: ResumeRow): AcceptanceLine[] {
  const base: Base = { model: row.model, pageCache: row.pageCache, kvType: row.kvType, flashAttention: row.flashAttention, tokens: row.tokens };
  const { storeRestoreMs: s, readFloorMs: f, prefillMs: p, nativeRestoreMs: n, setDataMs: d } = row;
  const floor = s === null || f === null ? null : 2 * f + 10;
  const withLoad = s === null || f === null || d === null ? null : 1.2 * (f + d) + 5;
  return [
    line(base, 'storeRestoreMs ≤ 2 × readFloorMs + 10 ms', s === null || floor === null ? null : {
      pass: s <= floor,
      // Reading the bytes once, then llama.cpp's own load from a file: what a store that hands
      // llama.cpp a file cannot go below.
      detail: `${ms(s)} vs limit ${ms(floor)} (floor ${ms(f!)}${n === null ? '' : `; reading once plus llama.cpp's own file load, floor + native restore, is ${ms(f! + n)}`})`,
    }),
    line(base, 'storeRestoreMs ≤ prefillMs / 10', s === null || p === null ? null : { pass: s <= p / 10, detail: `${ms(s)} vs limit ${ms(p / 10)} (prefill ${ms(p)}; ${(p / s).toFixed(1)}× faster)` }),
    line(
      base,
      'storeRestoreMs ≤ 1.2 × (readFloorMs + setDataMs) + 5 ms',
      s === null || withLoad === null ? null : { pass: s <= withLoad, detail: `${ms(s)} vs limit ${ms(withLoad)} (floor ${ms(f!)}, llama.cpp's load from memory ${ms(d!)}; ${row.compression} chunks)` },
      d === null && row.stateTransfer === 'file' ? `not measured: the state transfer is file (${row.stateTransferReason ?? 'no reason given'})` : 'not measured',
    ),
  ];
}

/** The turn-write check, once per configuration (it does not depend on the page cache). */
function turnCheck(row: ResumeRow): AcceptanceLine {
  const base: Base = { model: row.model, pageCache: null, kvType: row.kvType, flashAttention: row.flashAttention, tokens: row.tokens };
  const { turnWriteBytes: w, turnLimitBytes: l } = row;
  return line(base, 'turnWriteBytes ≤ 1.2 × (100 tokens’ KV + one chunk)', w === null || l === null ? null : { pass: w <= l, detail: `${bytes(w)} vs limit ${bytes(l)} (full state ${row.fullStateBytes === null ? '—' : bytes(row.fullStateBytes)}; scratch on ${row.scratchFs ?? '?'})` });
}

/** The checks at real scale (kv-shape-8b): no scratch writes, a save near a memory copy, memory peaks near one state. */
function scaleChecks(row: ResumeRow): AcceptanceLine[] {
  const base: Base = { model: row.model, pageCache: null, kvType: row.kvType, flashAttention: row.flashAttention, tokens: row.tokens };
  const { scratchBytes: sb, saveMs: sv, copyFloorMs: c, savePeakRssDeltaBytes: sp, restorePeakRssDeltaBytes: rp, fullStateBytes: full, restoredStateBytes: restored } = row;
  return [
    line(base, 'scratchBytes = 0', sb === null ? null : { pass: sb === 0, detail: `${bytes(sb)} written to scratch files by the turn's save and one restore (state transfer ${row.stateTransfer}; scratch on ${row.scratchFs ?? '?'})` }),
    line(base, 'saveMs ≤ 2 × copyFloorMs + 50 ms', sv === null || c === null ? null : { pass: sv <= 2 * c + 50, detail: `${ms(sv)} vs limit ${ms(2 * c + 50)} (one in-memory copy of the full state ${ms(c)})` }),
    line(base, 'savePeakRssDeltaBytes ≤ 1.1 × fullStateBytes', sp === null || full === null ? null : { pass: sp <= 1.1 * full, detail: `${bytes(sp)} vs limit ${bytes(Math.floor(1.1 * full))} (full state ${bytes(full)})` }),
    line(base, 'restorePeakRssDeltaBytes ≤ 1.1 × restored state', rp === null || restored === null ? null : { pass: rp <= 1.1 * restored, detail: `${bytes(rp)} vs limit ${bytes(Math.floor(1.1 * restored))} (restored state ${bytes(restored)})` }),
  ];
}

/**
 * Every acceptance line, at each model's largest size: the restore checks per page-cache row,
 * then once per configuration the turn-write check and, for kv-shape-8b, the checks at scale.
 */
export function acceptanceLines(rows: readonly ResumeRow[]): AcceptanceLine[] {
  const largest = new Map<string, number>();
  for (const r of rows) largest.set(r.model, Math.max(largest.get(r.model) ?? 0, r.tokens));
  const seen = new Set<string>();
  const lines: AcceptanceLine[] = [];
  for (const row of rows) {
    if (row.tokens !== largest.get(row.model)) continue;
    lines.push(...restoreChecks(row));
    const config = `${row.model}\u0000${row.kvType}\u0000${row.flashAttention}`;
    if (seen.has(config)) continue;
    seen.add(config);
    lines.push(turnCheck(row));
    if (row.model === KV_SHAPE_8B) lines.push(...scaleChecks(row));
  }
  return lines;
}

const columns: Column<ResumeRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'tokens', value: (r) => r.tokens, numeric: true },
  { title: 'page cache', value: (r) => r.pageCache },
  { title: 'KV', value: (r) => `${r.kvType}${r.flashAttention ? '' : ' (FA off)'}` },
  { title: 'compression', value: (r) => r.compression },
  { title: 'state transfer', value: (r) => r.stateTransfer },
  { title: 'prefill ms', value: (r) => r.prefillMs, numeric: true },
  { title: 'native restore ms', value: (r) => r.nativeRestoreMs, numeric: true },
  { title: 'store restore ms', value: (r) => r.storeRestoreMs, numeric: true },
  { title: 'read floor ms', value: (r) => r.readFloorMs, numeric: true },
  { title: 'set data ms', value: (r) => r.setDataMs, numeric: true },
  { title: 'tail re-read ms', value: (r) => r.tailRereadMs, numeric: true },
  { title: 'store read ms', value: (r) => r.storeReadMs, numeric: true },
  { title: 'TTFT ms', value: (r) => r.ttftMs, numeric: true },
  { title: 'live TTFT ms', value: (r) => r.liveTtftMs, numeric: true },
  { title: 'save ms', value: (r) => r.saveMs, numeric: true },
  { title: 'copy floor ms', value: (r) => r.copyFloorMs, numeric: true },
  { title: 'store bytes', value: (r) => r.storeBytes, numeric: true },
  { title: 'native bytes', value: (r) => r.nativeBytes, numeric: true },
  { title: 'turn write bytes', value: (r) => r.turnWriteBytes, numeric: true },
  { title: 'turn device bytes', value: (r) => r.turnDeviceWriteBytes, numeric: true },
  { title: 'scratch bytes', value: (r) => r.scratchBytes, numeric: true },
  { title: 'save peak RSS Δ', value: (r) => r.savePeakRssDeltaBytes, numeric: true },
  { title: 'restore peak RSS Δ', value: (r) => r.restorePeakRssDeltaBytes, numeric: true },
  { title: 'full state bytes', value: (r) => r.fullStateBytes, numeric: true },
];

/** The markdown table and the acceptance lines, as printed. */
export function formatReport(report: ResumeReport): string {
  const m = report.machine;
  const scratch8b = m.scratchDir8b === null ? '' : `; kv-shape-8b: ${m.threads8b} thread(s) (${m.threads8bSource}), scratch on ${m.scratchFs8b ?? '?'} (${m.scratchDir8b})`;
  const compression = m.compressionSetting === m.compression ? m.compression : `${m.compressionSetting} → ${m.compression}${m.compressionReason ? ` (${m.compressionReason})` : ''}`;
  const transfers = [...new Set(report.rows.filter((r) => r.stateTransfer === 'file').map((r) => `state transfer file for ${r.model} ${r.kvType}${r.flashAttention ? '' : ' FA off'}: ${r.stateTransferReason ?? 'no reason given'}`))];
  const lines = [
    markdownTable(report.rows, columns),
    '',
    `${m.cpu}, ${m.cores} cores, ${m.threads} thread(s)${scratch8b}; node-llama-cpp ${m.nodeLlamaCpp} (llama.cpp ${m.llamaCppRelease}); page cache ${m.pageCache.join(' and ')} (cold: the measured chunk files and the KV index evicted before each timed read); median of ${m.reps}; store compression ${compression}, ${m.codec.kernels} kernels${m.codec.reason ? ` (${m.codec.reason})` : ''}; store on ${m.storeFs ?? '?'} (${m.storeDir}), scratch on ${m.scratchFs ?? '?'} (${m.scratchDir}).`,
    ...transfers,
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.model} ${a.kvType}${a.flashAttention ? '' : ' FA off'} @ ${a.tokens.toLocaleString('en-US')}${a.pageCache ? ` (${a.pageCache})` : ''}: ${a.check}: ${a.detail}`),
  ];
  const notes = report.rows.flatMap((r) => r.notes.map((n) => `note: ${r.model} ${r.kvType} @ ${r.tokens} (${r.pageCache}): ${n}`));
  const mismatches = report.rows.filter((r) => r.firstTokenMatches === false).map((r) => `WARNING: ${r.model} ${r.kvType} @ ${r.tokens} (${r.pageCache}): the first reply token after the store restore differs from the uninterrupted one`);
  return [...lines, ...notes, ...mismatches].join('\n');
}
