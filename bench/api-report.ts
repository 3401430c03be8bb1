/**
 * The API benchmark's report: what one HTTP request recorded, what each run of requests adds up
 * to, the acceptance lines computed from the measured numbers (pure, so they are unit-tested on
 * synthetic data), and the markdown it prints. bench/api.ts drives the hosts and the clients.
 */
import type { KvCodecInfo, KvCompressionChoice } from '../engine/contract/index.ts';
import { markdownTable, type Column } from './table.ts';
import type { MachineInfo } from './util.ts';

/**
 * - `persist`: KV persistence on, one host for the whole loop;
 * - `off`: KV persistence off, one host (the slot's memory only);
 * - `off-restart`: KV persistence off, the host restarted after `restartAfter` requests (nothing cached for the next one);
 * - `restart`: KV persistence on, the host restarted after `restartAfter` requests (the next one should restore from disk).
 */
export type ApiMode = 'persist' | 'off' | 'off-restart' | 'restart';

export const apiModes: readonly ApiMode[] = ['persist', 'off', 'off-restart', 'restart'];

/** The `hearth` object of a response's last chunk. */
export interface HearthUsage {
  readonly reused: number;
  readonly restored: number;
  readonly prefilled: number;
  readonly restoreMs: number;
}

/** One streamed `chat.completions.create`, as the client saw it. */
export interface RequestRecord {
  /** 1-based. */
  readonly index: number;
  /** The first request sent to a host started after the restart. */
  readonly afterRestart: boolean;
  /** Messages sent (system prompt included). */
  readonly messages: number;
  /** usage.prompt_tokens; null when the stream ended without usage. */
  readonly promptTokens: number | null;
  /** usage.prompt_tokens_details.cached_tokens. */
  readonly cachedTokens: number | null;
  readonly completionTokens: number | null;
  /** From the call to the first chunk whose delta has text (client side); null when no text came. */
  readonly ttftMs: number | null;
  /** From the call to the end of the stream. */
  readonly totalMs: number;
  readonly hearth: HearthUsage | null;
  readonly finishReason: string | null;
  /** What failed (the client's error), or null. */
  readonly error: string | null;
}

export interface ModeRun {
  readonly model: string;
  readonly mode: ApiMode;
  /** The context the loaded model had (app.state), the first host's. */
  readonly contextSize: number | null;
  /** The request after which the host was restarted; null for the modes without a restart. */
  readonly restartAfter: number | null;
  /** kv.stats' persistence as the loop ran (each host's, in order). */
  readonly persistence: readonly string[];
  /** Host starts, each until it printed its address and the model was ready, ms. */
  readonly hostStartMs: readonly number[];
  /** Each host's engine process, in order (Linux /proc figures; null elsewhere). */
  readonly engines: readonly EngineFigures[];
  readonly requests: readonly RequestRecord[];
  /** What ended the run early, or null. */
  readonly failure: string | null;
  readonly wallMs: number;
}

/** An engine process's peak resident memory (VmHWM) and the bytes it wrote to storage (/proc/PID/io). */
export interface EngineFigures {
  readonly peakRssBytes: number | null;
  readonly writeBytes: number | null;
}

/** One client's first request in the shared-prefix measurement, and what the KV store gained by it. */
export interface SharedClient {
  readonly request: RequestRecord;
  /** Chunk files and tails on disk (`<dataDir>/kv/chunks` and `tails`), before and after (settled). */
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** kv.stats chunkCount before and after. */
  readonly chunksBefore: number;
  readonly chunksAfter: number;
}

export interface SharedPrefixRun {
  readonly model: string;
  /** Tokens of the shared system prompt by the model's tokenizer (the text alone, no template). */
  readonly systemTokens: number;
  /** Tokens of each client's first user message (text alone). */
  readonly userTokens: number;
  /** kv.stats chunkTokens. */
  readonly chunkTokens: number | null;
  readonly a: SharedClient | null;
  readonly b: SharedClient | null;
  readonly failure: string | null;
}

export interface SkippedModel {
  readonly model: string;
  readonly path: string;
  readonly reason: string;
}

export interface AcceptanceLine {
  readonly model: string;
  readonly check: string;
  /** null: could not be computed (a run failed or a figure is missing). */
  readonly pass: boolean | null;
  readonly detail: string;
}

export interface ApiReport {
  readonly runs: readonly ModeRun[];
  readonly shared: readonly SharedPrefixRun[];
  readonly skipped: readonly SkippedModel[];
  readonly machine: MachineInfo & {
    readonly threads: number;
    readonly nodeLlamaCpp: string;
    readonly openai: string;
    readonly requests: number;
    readonly restartAfter: number;
    readonly maxTokens: number;
    /** The prompt size aimed at for the first request after the restart. */
    readonly targetTokens: number;
    readonly systemTokens: number;
    readonly earlyUserTokens: number;
    readonly lateUserTokens: number;
    readonly sharedSystemTokens: number;
    readonly minContext: number;
    readonly compression: KvCompressionChoice | null;
    readonly codec: KvCodecInfo | null;
    readonly wallMs: number;
  };
  readonly date: string;
  readonly acceptance: readonly AcceptanceLine[];
}

/** Acceptance thresholds. */
export const TTFT_RATIO_LIMIT = 0.1;
export const CACHED_FRACTION_LIMIT = 0.9;

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')} ms`;

/** The request right after the restart, or null (no restart, or it did not run). */
export function requestAfterRestart(run: ModeRun): RequestRecord | null {
  return run.requests.find((r) => r.afterRestart) ?? null;
}

/** A run's request by its 1-based index. */
export function requestAt(run: ModeRun | undefined, index: number): RequestRecord | null {
  return run?.requests.find((r) => r.index === index) ?? null;
}

/** cached / prompt of a request; null without usage. */
export function cachedFraction(r: RequestRecord | null): number | null {
  if (r === null || r.promptTokens === null || r.cachedTokens === null || r.promptTokens === 0) return null;
  return r.cachedTokens / r.promptTokens;
}

/**
 * What the second client's first request added to the store, against what it would add if it
 * wrote only its own tokens: bytes per token come from the first client's (its added bytes over
 * the tokens it stored: prompt + reply). B's own tokens are its prompt and reply less the shared
 * system prompt; one chunk of slack is allowed, since the chunk the prompts diverge in is B's own.
 */
export interface SharedFigures {
  readonly bytesPerToken: number;
  readonly aAddedBytes: number;
  readonly bAddedBytes: number;
  /** B's added bytes in tokens' worth. */
  readonly bAddedTokens: number;
  readonly bOwnTokens: number;
  /** The shared system prompt's worth in bytes: what B would have added had it written it again. */
  readonly sharedBytes: number;
  readonly aChunks: number;
  readonly bChunks: number;
  /** The pass condition's bound, in tokens: B's own tokens plus one chunk. */
  readonly limitTokens: number;
}

export function sharedFigures(run: SharedPrefixRun): SharedFigures | null {
  const { a, b } = run;
  if (a === null || b === null || a.request.promptTokens === null || b.request.promptTokens === null) return null;
  const aAddedBytes = a.bytesAfter - a.bytesBefore;
  const aTokens = a.request.promptTokens + (a.request.completionTokens ?? 0);
  if (aTokens <= 0 || aAddedBytes <= 0) return null;
  const bytesPerToken = aAddedBytes / aTokens;
  const bAddedBytes = b.bytesAfter - b.bytesBefore;
  const bOwnTokens = Math.max(0, b.request.promptTokens + (b.request.completionTokens ?? 0) - run.systemTokens);
  return {
    bytesPerToken,
    aAddedBytes,
    bAddedBytes,
    bAddedTokens: bAddedBytes / bytesPerToken,
    bOwnTokens,
    sharedBytes: run.systemTokens * bytesPerToken,
    aChunks: a.chunksAfter - a.chunksBefore,
    bChunks: b.chunksAfter - b.chunksBefore,
    limitTokens: bOwnTokens + (run.chunkTokens ?? 0),
  };
}

/** The acceptance lines of one model: (a) restart TTFT vs no-cache restart, (b) cached share after the restart, (c) shared prefix stored once. */
export function acceptanceLines(runs: readonly ModeRun[], shared: readonly SharedPrefixRun[]): AcceptanceLine[] {
  const lines: AcceptanceLine[] = [];
  const models = [...new Set([...runs.map((r) => r.model), ...shared.map((s) => s.model)])];
  for (const model of models) {
    const restart = runs.find((r) => r.model === model && r.mode === 'restart');
    const offRestart = runs.find((r) => r.model === model && r.mode === 'off-restart');
    if (restart !== undefined || offRestart !== undefined) {
      const index = (restart?.restartAfter ?? offRestart?.restartAfter ?? 0) + 1;
      const on = restart ? requestAfterRestart(restart) : null;
      const off = offRestart ? requestAfterRestart(offRestart) : null;
      const check = `(a) request ${index} after a restart: TTFT with the disk store ≤ ${TTFT_RATIO_LIMIT} × without it`;
      if (on?.ttftMs == null || off?.ttftMs == null) {
        lines.push({ model, check, pass: null, detail: `not measured (${on === null || off === null ? 'a run did not reach that request' : 'no text came back'}${[restart?.failure, offRestart?.failure].filter((f) => f).map((f) => `: ${f}`).join('')})` });
      } else {
        const ratio = on.ttftMs / off.ttftMs;
        lines.push({
          model,
          check,
          pass: ratio <= TTFT_RATIO_LIMIT,
          detail: `${ms(on.ttftMs)} (persistence on, ${fmt(on.promptTokens ?? 0)} prompt tokens, ${fmt(on.cachedTokens ?? 0)} cached) vs ${ms(off.ttftMs)} (persistence off, ${fmt(off.promptTokens ?? 0)} prompt tokens, ${fmt(off.cachedTokens ?? 0)} cached): ratio ${ratio.toFixed(3)}`,
        });
      }
      const frac = cachedFraction(on);
      const checkB = `(b) request ${index} after a restart: cached_tokens ≥ ${CACHED_FRACTION_LIMIT * 100}% of its prompt`;
      lines.push(
        frac === null
          ? { model, check: checkB, pass: null, detail: `not measured${restart?.failure ? ` (${restart.failure})` : ''}` }
          : {
              model,
              check: checkB,
              pass: frac >= CACHED_FRACTION_LIMIT,
              detail: `${fmt(on!.cachedTokens!)} of ${fmt(on!.promptTokens!)} prompt tokens (${(frac * 100).toFixed(1)}%)${on!.hearth ? `; hearth: reused ${fmt(on!.hearth.reused)}, restored ${fmt(on!.hearth.restored)}, prefilled ${fmt(on!.hearth.prefilled)}, restoreMs ${on!.hearth.restoreMs.toFixed(1)}` : '; no hearth object'}`,
            },
      );
    }
    const s = shared.find((x) => x.model === model);
    if (s !== undefined) {
      const check = `(c) two clients with one ${fmt(s.systemTokens)}-token system prompt: the second adds only its own tokens (≤ its own + one ${s.chunkTokens ?? '?'}-token chunk)`;
      const f = sharedFigures(s);
      if (f === null) {
        lines.push({ model, check, pass: null, detail: `not measured${s.failure ? ` (${s.failure})` : ''}` });
      } else {
        lines.push({
          model,
          check,
          pass: f.bAddedTokens <= f.limitTokens,
          detail:
            `A added ${fmt(f.aAddedBytes)} B in ${f.aChunks} chunks (${f.bytesPerToken.toFixed(0)} B/token); ` +
            `B added ${fmt(f.bAddedBytes)} B in ${f.bChunks} chunks = ${fmt(f.bAddedTokens)} tokens' worth, for ${fmt(f.bOwnTokens)} tokens of its own ` +
            `(the shared prompt would be ${fmt(f.sharedBytes)} B); shared-prefix chunks written once: ${f.bAddedBytes < f.sharedBytes ? 'yes' : 'no'}`,
        });
      }
    }
  }
  return lines;
}

/** The per-request table of one model: one row per request, cached and TTFT per mode. */
interface RequestRow {
  readonly index: number;
  readonly prompt: number | null;
  readonly byMode: ReadonlyMap<ApiMode, RequestRecord | null>;
  readonly restartAfter: number | null;
}

function requestRows(runs: readonly ModeRun[]): RequestRow[] {
  const count = Math.max(0, ...runs.map((r) => r.requests.length));
  const restartAfter = runs.find((r) => r.restartAfter !== null)?.restartAfter ?? null;
  const rows: RequestRow[] = [];
  for (let index = 1; index <= count; index++) {
    const byMode = new Map<ApiMode, RequestRecord | null>(runs.map((r) => [r.mode, requestAt(r, index)]));
    const prompt = runs.map((r) => requestAt(r, index)?.promptTokens ?? null).find((p) => p !== null) ?? null;
    rows.push({ index, prompt, byMode, restartAfter });
  }
  return rows;
}

function requestColumns(modes: readonly ApiMode[]): Column<RequestRow>[] {
  return [
    { title: 'request', value: (r) => (r.restartAfter !== null && r.index === r.restartAfter + 1 ? `${r.index} (after restart)` : String(r.index)) },
    { title: 'prompt tokens', value: (r) => r.prompt, numeric: true },
    ...modes.flatMap((mode): Column<RequestRow>[] => [
      { title: `${mode} cached`, value: (r) => r.byMode.get(mode)?.cachedTokens ?? null, numeric: true },
      { title: `${mode} TTFT ms`, value: (r) => r.byMode.get(mode)?.ttftMs ?? null, numeric: true },
    ]),
  ];
}

const summaryColumns: Column<ModeRun>[] = [
  { title: 'mode', value: (r) => r.mode },
  { title: 'context', value: (r) => r.contextSize, numeric: true },
  { title: 'requests', value: (r) => r.requests.filter((q) => q.error === null).length, numeric: true },
  { title: 'last prompt', value: (r) => r.requests.at(-1)?.promptTokens ?? null, numeric: true },
  { title: 'cached / prompt (2…)', value: (r) => fraction(r.requests.slice(1)), numeric: true },
  { title: 'prefilled (all)', value: (r) => sumOf(r.requests.map((q) => q.hearth?.prefilled ?? null)), numeric: true },
  { title: 'restored (all)', value: (r) => sumOf(r.requests.map((q) => q.hearth?.restored ?? null)), numeric: true },
  { title: 'mean TTFT ms (2…)', value: (r) => meanOf(r.requests.slice(1).map((q) => q.ttftMs)), numeric: true },
  { title: 'mean total ms', value: (r) => meanOf(r.requests.map((q) => q.totalMs)), numeric: true },
  { title: 'host starts s', value: (r) => r.hostStartMs.map((m) => (m / 1000).toFixed(1)).join(' + ') },
  { title: 'engine peak RSS MiB', value: (r) => mib(maxOf(r.engines.map((e) => e.peakRssBytes))), numeric: true },
  { title: 'engine wrote MiB', value: (r) => mib(sumOf(r.engines.map((e) => e.writeBytes))), numeric: true },
];

function mib(bytes: number | null): number | null {
  return bytes === null ? null : Math.round((bytes / 1024 / 1024) * 10) / 10;
}

function maxOf(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.max(...known);
}

function fraction(requests: readonly RequestRecord[]): number | null {
  const ok = requests.filter((r) => r.promptTokens !== null && r.cachedTokens !== null);
  const prompt = ok.reduce((a, r) => a + r.promptTokens!, 0);
  return prompt === 0 ? null : Math.round((ok.reduce((a, r) => a + r.cachedTokens!, 0) / prompt) * 1000) / 1000;
}

function sumOf(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : known.reduce((a, b) => a + b, 0);
}

function meanOf(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.round((known.reduce((a, b) => a + b, 0) / known.length) * 10) / 10;
}

/**
 * The request after the restart point in every mode, one sentence: from the slot's memory
 * (persist, off), from the disk store (restart) and from nothing (off-restart). Null without a restart mode.
 */
export function restartLine(runs: readonly ModeRun[]): string | null {
  const restartAfter = runs.find((r) => r.restartAfter !== null)?.restartAfter ?? null;
  if (restartAfter === null) return null;
  const index = restartAfter + 1;
  const where: Record<ApiMode, string> = { persist: 'in memory, persistence on', off: 'in memory, persistence off', 'off-restart': 'after a restart, persistence off', restart: 'after a restart, from the disk store' };
  const parts = runs.flatMap((run) => {
    const r = requestAt(run, index);
    return r === null ? [] : [`${r.ttftMs === null ? '—' : ms(r.ttftMs)} ${where[run.mode]} (${fmt(r.cachedTokens ?? 0)} of ${fmt(r.promptTokens ?? 0)} cached)`];
  });
  return parts.length === 0 ? null : `Request ${index}, TTFT: ${parts.join('; ')}.`;
}

export function formatReport(report: ApiReport): string {
  const m = report.machine;
  const compression = m.compression ? `${m.compression.applied}${m.compression.setting === 'auto' ? ' (auto)' : ''}` : 'unknown';
  const out: string[] = [
    `API benchmark: ${m.cpu}, ${m.cores} cores, ${m.platform}, Node ${m.node}, node-llama-cpp ${m.nodeLlamaCpp}, openai ${m.openai}, ${m.threads} thread${m.threads === 1 ? '' : 's'}; ${report.date}.`,
    `${m.requests} streamed chat.completions requests through the browser host's API with the openai client, each re-sending the whole history (temperature 0, max_tokens ${m.maxTokens}). ` +
      `System prompt ${m.systemTokens} tokens; user messages 1–${m.restartAfter} of ${m.earlyUserTokens} tokens, so that request ${m.restartAfter + 1} is about ${fmt(m.targetTokens)} tokens, then ${m.lateUserTokens} tokens each. ` +
      `The restart modes stop the host after request ${m.restartAfter} and start a new one on the same data directory. Store compression ${compression}${m.codec ? `, ${m.codec.kernels} kernels` : ''}; ${(m.wallMs / 1000).toFixed(0)} s in all.`,
  ];
  for (const skip of report.skipped) out.push('', `Skipped ${skip.model}: ${skip.reason}`);
  const models = [...new Set(report.runs.map((r) => r.model))];
  for (const model of models) {
    const runs = report.runs.filter((r) => r.model === model);
    out.push('', `### ${model}`, '', markdownTable(runs, summaryColumns), '', markdownTable(requestRows(runs), requestColumns(runs.map((r) => r.mode))));
    const after = restartLine(runs);
    if (after !== null) out.push('', after);
    for (const run of runs) if (run.failure) out.push('', `${run.mode} FAILED: ${run.failure}`);
    for (const run of runs) for (const r of run.requests) if (r.error) out.push(`${run.mode} request ${r.index} failed: ${r.error}`);
    const s = report.shared.find((x) => x.model === model);
    const f = s ? sharedFigures(s) : null;
    if (s && f) {
      out.push(
        '',
        `Shared prefix (${fmt(s.systemTokens)}-token system prompt, first user messages of ${s.userTokens} tokens): A's first request stored ${fmt(f.aAddedBytes)} B (${f.aChunks} chunks), ` +
          `B's ${fmt(f.bAddedBytes)} B (${f.bChunks} chunks); B's cached_tokens ${s.b!.request.cachedTokens ?? '—'} of ${s.b!.request.promptTokens ?? '—'}.`,
      );
    } else if (s?.failure) out.push('', `Shared prefix FAILED: ${s.failure}`);
  }
  out.push('', ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.model}: ${a.check}: ${a.detail}`));
  return out.join('\n');
}
