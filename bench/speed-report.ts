/**
 * The speed benchmark's report: which rows it measures, the order each round runs them in, the
 * rows made from the samples, the acceptance lines and the markdown (pure, so they are
 * unit-tested). bench/speed.ts measures, bench/speed-engine.ts runs llama.cpp.
 */
import type { EngineBuildKind, KvCacheType, SpeedProfile, SpeedSettings } from '../engine/contract/index.ts';
import { speedSpace, turnSeconds, type Measured } from '../engine/worker/speed-choice.ts';
import { mulberry32 } from '../test/support/gguf-writer.ts';
import { KV_SHAPE_8B } from './kv-shape-8b.ts';
import { markdownTable, type Column } from './table.ts';
import type { MachineInfo } from './util.ts';

/** The K/V pair of Hearth's default profile: the one its first load measures, and the acceptance's. */
export const DEFAULT_PAIR = 'f16/f16';

/** The acceptance's target: the chosen row's decode against the fastest row's, same pair and engine. */
export const DECODE_TARGET = 0.95;

export interface KvPairTypes {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
}

/** "k/v" → its types; null when either is not a KV cache type. */
export function parsePair(name: string, types: readonly string[]): KvPairTypes | null {
  const [kType, vType, ...rest] = name.split('/');
  if (rest.length > 0 || kType === undefined || vType === undefined || !types.includes(kType) || !types.includes(vType)) return null;
  return { kType: kType as KvCacheType, vType: vType as KvCacheType };
}

/** One measured combination: a K/V pair with context settings. */
export interface Alternative extends SpeedSettings, KvPairTypes {
  /** "k/v". */
  readonly kvType: string;
}

/**
 * Every combination the bench measures for a model: each pair, each flash attention value the
 * pair allows under the profile setting `auto` (as Hearth's own candidates), each thread count
 * and each batch size of Hearth's space.
 */
export function alternatives(pairs: readonly KvPairTypes[], flashAttentionSupported: boolean, threads: readonly number[]): Alternative[] {
  const out: Alternative[] = [];
  for (const pair of pairs) {
    const space = speedSpace({ setting: 'auto', supported: flashAttentionSupported, vType: pair.vType, threads });
    for (const flashAttention of space.flashAttention) {
      for (const threadCount of space.threads) {
        for (const batchSize of space.batchSizes) out.push({ ...pair, kvType: `${pair.kType}/${pair.vType}`, flashAttention, threads: threadCount, batchSize });
      }
    }
  }
  return out;
}

/**
 * The order of round `round` over `count` rows: a Fisher–Yates shuffle seeded by `seed` and the
 * round, so each round runs the rows in another order (drift on a shared machine spreads over
 * all rows) and a rerun with the same seed runs them in the same orders.
 */
export function roundOrder(count: number, seed: number, round: number): number[] {
  const random = mulberry32((seed * 1_000_003 + round) >>> 0);
  const order = Array.from({ length: count }, (_, index) => index);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** The best (highest) of the samples, and how far the lowest fell below it, as a fraction of it. */
export function bestOf(samples: readonly number[]): { readonly best: number | null; readonly spread: number | null } {
  if (samples.length === 0) return { best: null, spread: null };
  const best = Math.max(...samples);
  const worst = Math.min(...samples);
  return { best, spread: best > 0 ? (best - worst) / best : null };
}

export interface SpeedRow {
  readonly model: string;
  readonly threads: number;
  readonly flashAttention: boolean;
  /** "k/v", e.g. "q8_0/f16". */
  readonly kvType: string;
  readonly batchSize: number;
  readonly engine: EngineBuildKind;
  /** The best of the rounds; null when no round ran. */
  readonly prefillTokPerS: number | null;
  readonly decodeTokPerS: number | null;
  /** Whether these are the settings Hearth's own measurement chose (its pair, this engine). */
  readonly chosen: boolean;
  /** The reference turn's seconds (speed-choice.ts turnSeconds) at the best speeds. */
  readonly turnSeconds: number | null;
  /** (best − worst) / best over the rounds. */
  readonly prefillSpread: number | null;
  readonly decodeSpread: number | null;
  /** Every round's figures, in round order (a failed round has none). */
  readonly samples: { readonly prefillTokPerS: readonly number[]; readonly decodeTokPerS: readonly number[] };
  /** Why rounds failed, when some did. */
  readonly errors: readonly string[];
}

/** Hearth's own brief measurement of one model, as the app makes it on first load. */
export interface HearthChoice {
  readonly model: string;
  readonly engine: EngineBuildKind;
  /** The thread counts it was given (the host's speedThreadCandidates(null)). */
  readonly threadCandidates: readonly number[];
  readonly flashAttentionSupported: boolean;
  /** Its trials, choice and duration. */
  readonly profile: SpeedProfile;
}

/** A row from its combination and the rounds' measurements. */
export function rowOf(model: string, engine: EngineBuildKind, alternative: Alternative, measured: readonly Measured[], chosen: SpeedSettings | null): SpeedRow {
  const prefill: number[] = [];
  const decode: number[] = [];
  const errors: string[] = [];
  for (const one of measured) {
    if ('error' in one) {
      errors.push(one.error);
    } else {
      prefill.push(one.prefillTokPerS);
      decode.push(one.decodeTokPerS);
    }
  }
  const p = bestOf(prefill);
  const d = bestOf(decode);
  const isChosen =
    chosen !== null && alternative.kvType === DEFAULT_PAIR && chosen.flashAttention === alternative.flashAttention && chosen.threads === alternative.threads && chosen.batchSize === alternative.batchSize;
  return {
    model,
    threads: alternative.threads,
    flashAttention: alternative.flashAttention,
    kvType: alternative.kvType,
    batchSize: alternative.batchSize,
    engine,
    prefillTokPerS: p.best,
    decodeTokPerS: d.best,
    chosen: isChosen,
    turnSeconds: p.best !== null && d.best !== null ? turnSeconds(p.best, d.best) : null,
    prefillSpread: p.spread,
    decodeSpread: d.spread,
    samples: { prefillTokPerS: prefill, decodeTokPerS: decode },
    errors: [...new Set(errors)],
  };
}

export interface AcceptanceLine {
  readonly model: string;
  readonly engine: EngineBuildKind;
  readonly check: string;
  /** null: reported, not a check (another model or engine than the acceptance's). */
  readonly pass: boolean | null;
  readonly detail: string;
}

const fmt = (value: number, digits = 1): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Per model and engine: the chosen row's decode against the fastest decode among the rows of its
 * pair and engine (the check, ≥ DECODE_TARGET, for kv-shape-8b on the prebuilt engine; the same
 * ratio reported for the others), and its turn time against the best turn time.
 */
export function acceptanceLines(rows: readonly SpeedRow[]): AcceptanceLine[] {
  const lines: AcceptanceLine[] = [];
  const groups = new Map<string, SpeedRow[]>();
  for (const row of rows) {
    if (row.kvType !== DEFAULT_PAIR) continue;
    const key = `${row.model}\u0000${row.engine}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  if (!rows.some((row) => row.model === KV_SHAPE_8B && row.engine === 'prebuilt')) {
    lines.push({ model: KV_SHAPE_8B, engine: 'prebuilt', check: decodeCheck, pass: null, detail: 'not measured in this run' });
  }
  for (const group of groups.values()) {
    const { model, engine } = group[0]!;
    const checked = model === KV_SHAPE_8B && engine === 'prebuilt';
    const chosen = group.find((row) => row.chosen);
    const ran = group.filter((row) => row.decodeTokPerS !== null && row.turnSeconds !== null);
    if (chosen === undefined || chosen.decodeTokPerS === null || chosen.turnSeconds === null || ran.length === 0) {
      const why = chosen === undefined ? "Hearth's choice is not among the rows" : 'the chosen row did not run';
      lines.push({ model, engine, check: decodeCheck, pass: checked ? false : null, detail: why });
      continue;
    }
    const fastestDecode = ran.reduce((a, b) => (b.decodeTokPerS! > a.decodeTokPerS! ? b : a));
    const fastestTurn = ran.reduce((a, b) => (b.turnSeconds! < a.turnSeconds! ? b : a));
    const ratio = chosen.decodeTokPerS / fastestDecode.decodeTokPerS!;
    lines.push({
      model,
      engine,
      check: decodeCheck,
      pass: checked ? ratio >= DECODE_TARGET : null,
      detail: `${ratio.toFixed(3)}: chosen ${settingsText(chosen)} ${fmt(chosen.decodeTokPerS)} tok/s, fastest ${settingsText(fastestDecode)} ${fmt(fastestDecode.decodeTokPerS!)} tok/s`,
    });
    lines.push({
      model,
      engine,
      check: 'chosen turn time vs best',
      pass: null,
      detail: `${(chosen.turnSeconds / fastestTurn.turnSeconds!).toFixed(3)}× the best: chosen ${fmt(chosen.turnSeconds, 2)} s, best ${settingsText(fastestTurn)} ${fmt(fastestTurn.turnSeconds!, 2)} s`,
    });
  }
  return lines;
}

const decodeCheck = `chosen decode / fastest decode (${DEFAULT_PAIR}) ≥ ${DECODE_TARGET}`;

/** "FA on, 2 threads, batch 512". */
export function settingsText(settings: SpeedSettings): string {
  return `FA ${settings.flashAttention ? 'on' : 'off'}, ${settings.threads} thread${settings.threads === 1 ? '' : 's'}, batch ${settings.batchSize}`;
}

/** A row of the local engine beside the prebuilt one's with the same settings. */
export interface EngineComparison {
  readonly model: string;
  readonly kvType: string;
  readonly flashAttention: boolean;
  readonly threads: number;
  readonly batchSize: number;
  /** local / prebuilt; null when either did not run. */
  readonly prefillRatio: number | null;
  readonly decodeRatio: number | null;
  /** prebuilt turn seconds / local turn seconds: above 1, the local engine is faster. */
  readonly turnSpeedup: number | null;
}

const settingsKey = (row: SpeedRow): string => `${row.model}\u0000${row.kvType}\u0000${row.flashAttention}\u0000${row.threads}\u0000${row.batchSize}`;

/** Each prebuilt row that has a local twin, with the ratios. */
export function compareEngines(rows: readonly SpeedRow[]): EngineComparison[] {
  const local = new Map(rows.filter((row) => row.engine === 'local').map((row) => [settingsKey(row), row]));
  const out: EngineComparison[] = [];
  for (const prebuilt of rows) {
    if (prebuilt.engine !== 'prebuilt') continue;
    const twin = local.get(settingsKey(prebuilt));
    if (twin === undefined) continue;
    const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);
    out.push({
      model: prebuilt.model,
      kvType: prebuilt.kvType,
      flashAttention: prebuilt.flashAttention,
      threads: prebuilt.threads,
      batchSize: prebuilt.batchSize,
      prefillRatio: ratio(twin.prefillTokPerS, prebuilt.prefillTokPerS),
      decodeRatio: ratio(twin.decodeTokPerS, prebuilt.decodeTokPerS),
      turnSpeedup: ratio(prebuilt.turnSeconds, twin.turnSeconds),
    });
  }
  return out;
}

export interface EngineInfo {
  readonly engine: EngineBuildKind;
  /** The build directory of a local engine. */
  readonly buildDir?: string;
  readonly llamaCppRelease: string;
  /** llama.cpp's backend: cpu, cuda, metal, vulkan. */
  readonly backend: string;
  /** speed.ts describeDevice: what Hearth keeps the measurement under. */
  readonly device: string;
}

export interface SpeedReport {
  readonly rows: readonly SpeedRow[];
  readonly hearth: readonly HearthChoice[];
  readonly engines: readonly EngineInfo[];
  readonly comparison: readonly EngineComparison[];
  readonly acceptance: readonly AcceptanceLine[];
  readonly machine: MachineInfo & { readonly physicalCores: number; readonly nodeLlamaCpp: string };
  readonly settings: {
    readonly depth: number;
    readonly decodeTokens: number;
    readonly reps: number;
    readonly seed: number;
    readonly pairs: readonly string[];
    readonly threadCandidates: readonly number[];
  };
  /** Wall time of the whole run. */
  readonly durationMs: number;
  readonly date: string;
}

const tokPerS = (value: number | null): number | null => (value === null ? null : Math.round(value * 10) / 10);
const percent = (value: number | null): string | null => (value === null ? null : `${Math.round(value * 100)}%`);
const times = (value: number | null): string | null => (value === null ? null : `${value.toFixed(2)}×`);

const rowColumns: Column<SpeedRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'engine', value: (r) => r.engine },
  { title: 'K/V', value: (r) => r.kvType },
  { title: 'FA', value: (r) => (r.flashAttention ? 'on' : 'off') },
  { title: 'threads', value: (r) => r.threads, numeric: true },
  { title: 'batch', value: (r) => r.batchSize, numeric: true },
  { title: 'prefill tok/s', value: (r) => tokPerS(r.prefillTokPerS), numeric: true },
  { title: 'spread', value: (r) => percent(r.prefillSpread), numeric: true },
  { title: 'decode tok/s', value: (r) => tokPerS(r.decodeTokPerS), numeric: true },
  { title: 'spread', value: (r) => percent(r.decodeSpread), numeric: true },
  { title: 'turn s', value: (r) => (r.turnSeconds === null ? null : Math.round(r.turnSeconds * 100) / 100), numeric: true },
  { title: 'chosen', value: (r) => (r.chosen ? 'yes' : '') },
];

interface TrialLine {
  readonly model: string;
  readonly engine: EngineBuildKind;
  readonly settings: string;
  readonly prefill: number | null;
  readonly decode: number | null;
  readonly turn: number | null;
  readonly chosen: boolean;
  readonly error: string | null;
}

const trialColumns: Column<TrialLine>[] = [
  { title: 'model', value: (t) => t.model },
  { title: 'engine', value: (t) => t.engine },
  { title: 'trial', value: (t) => t.settings },
  { title: 'prefill tok/s', value: (t) => tokPerS(t.prefill), numeric: true },
  { title: 'decode tok/s', value: (t) => tokPerS(t.decode), numeric: true },
  { title: 'turn s', value: (t) => (t.turn === null ? null : Math.round(t.turn * 100) / 100), numeric: true },
  { title: 'chosen', value: (t) => (t.chosen ? 'yes' : '') },
  { title: 'error', value: (t) => t.error },
];

const comparisonColumns: Column<EngineComparison>[] = [
  { title: 'model', value: (c) => c.model },
  { title: 'K/V', value: (c) => c.kvType },
  { title: 'FA', value: (c) => (c.flashAttention ? 'on' : 'off') },
  { title: 'threads', value: (c) => c.threads, numeric: true },
  { title: 'batch', value: (c) => c.batchSize, numeric: true },
  { title: 'prefill local/prebuilt', value: (c) => times(c.prefillRatio), numeric: true },
  { title: 'decode local/prebuilt', value: (c) => times(c.decodeRatio), numeric: true },
  { title: 'turn speed-up', value: (c) => times(c.turnSpeedup), numeric: true },
];

const sameSettings = (a: SpeedSettings, b: SpeedSettings): boolean => a.flashAttention === b.flashAttention && a.threads === b.threads && a.batchSize === b.batchSize;

/** The markdown report: Hearth's measurements, the rows, the acceptance lines, and the engines side by side. */
export function formatReport(report: SpeedReport): string {
  const m = report.machine;
  const s = report.settings;
  const trials: TrialLine[] = report.hearth.flatMap((h) =>
    h.profile.trials.map((t) => ({
      model: h.model,
      engine: h.engine,
      settings: settingsText(t),
      prefill: t.prefillTokPerS,
      decode: t.decodeTokPerS,
      turn: t.turnSeconds,
      chosen: sameSettings(t, h.profile.chosen),
      error: t.error ?? null,
    })),
  );
  const lines = [
    `## Speed: Hearth's choice of context settings against every alternative`,
    '',
    `${m.cpu}, ${m.cores} CPUs (${m.physicalCores} physical cores), ${m.platform}; node-llama-cpp ${m.nodeLlamaCpp}; ${report.engines.map((e) => `${e.engine}: llama.cpp ${e.llamaCppRelease} (${e.backend})${e.buildDir ? ` from ${e.buildDir}` : ''}`).join('; ')}. ${report.date}, ${fmt(report.durationMs / 60_000)} min in all.`,
    '',
    `### Hearth's own measurement (first load: ${DEFAULT_PAIR}, its default depth and decode, threads ${s.threadCandidates.join(', ')})`,
    '',
    ...report.hearth.map(
      (h) =>
        `- ${h.model} (${h.engine}): ${h.profile.trials.length} trials at depth ${h.profile.depth}, ${h.profile.decodeTokens} decoded, in ${fmt(h.profile.durationMs / 1000)} s; chose ${settingsText(h.profile.chosen)}${h.flashAttentionSupported ? '' : ' (flash attention not supported)'}.`,
    ),
    '',
    markdownTable(trials, trialColumns),
    '',
    `### Every alternative (depth ${s.depth.toLocaleString('en-US')}, ${s.decodeTokens} decoded; best of ${s.reps} interleaved rounds, seed ${s.seed})`,
    '',
    'Spread: (best − worst) / best over the rounds. Turn: the reference turn (speed-types.ts SPEED_TURN) at the best speeds.',
    '',
    markdownTable(report.rows, rowColumns),
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'INFO' : a.pass ? 'PASS' : 'FAIL'}  ${a.model} (${a.engine}): ${a.check}: ${a.detail}`),
    ...report.rows.filter((r) => r.errors.length > 0).map((r) => `note: ${r.model} ${r.engine} ${r.kvType} ${settingsText(r)}: ${r.errors.join('; ')}`),
  ];
  if (report.comparison.length > 0) {
    lines.push('', '### Local engine against prebuilt (same settings; above 1, local is faster)', '', markdownTable(report.comparison, comparisonColumns));
  }
  return lines.join('\n');
}
