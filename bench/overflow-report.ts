/**
 * The overflow benchmark's report: what one turn recorded, the figures a chat's turns add up to
 * (pure, so they are unit-tested), the acceptance lines computed from the rows, and the markdown
 * it prints. bench/overflow.ts drives the engine processes.
 */
import type { KvCodecInfo, KvCompressionChoice } from '../engine/contract/index.ts';
import { markdownTable, type Column } from './table.ts';
import type { MachineInfo } from './util.ts';

/**
 * The policies measured: the engine's three, and `naive`, which is `drop-oldest` told to drop
 * just enough every time (`dropTarget: 1`), the baseline the large step is measured against.
 */
export type BenchPolicy = 'drop-oldest' | 'streaming' | 'stop' | 'naive';

/** The fraction of the context a turn must stay under, after the first overflow, for the default policy. */
export const PREFILL_LIMIT = 0.25;

/** What one `generate` call answered. */
export interface TurnRecord {
  /** 1-based. */
  readonly turn: number;
  /** This turn is the first one sent to the engine process started after the restart. */
  readonly firstAfterRestart: boolean;
  /** `refused`: CONTEXT_OVERFLOW (the `stop` policy's answer); `error`: anything else. */
  readonly outcome: 'answered' | 'refused' | 'error';
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  /** Messages sent (system prompt included): the whole branch, as the host sends it. */
  readonly messagesSent: number;
  readonly tokensReused: number;
  readonly tokensRestored: number;
  readonly tokensPrefilled: number;
  readonly tokensGenerated: number;
  readonly ttftMs: number;
  /** `stats.view`; null where the engine did not report one. */
  readonly viewTokens: number | null;
  readonly droppedMessages: number | null;
  readonly droppedNow: number | null;
  readonly stopReason: string | null;
  readonly cacheSource: string | null;
  readonly fallbackReason: string | null;
}

/** What a chat's turns add up to (summarizeTurns). */
export interface TurnSummary {
  readonly turns: number;
  readonly answeredTurns: number;
  readonly refusedTurns: number;
  readonly errorTurns: number;
  /** 1-based; null when the chat never overflowed. */
  readonly firstOverflowTurn: number | null;
  /** Answered turns from the first overflow on (that turn included): what the means below are over. */
  readonly turnsAfterOverflow: number;
  /** Mean tokens prefilled per answered turn from the first overflow on, as a fraction of the context. */
  readonly prefilledPerTurnAfterOverflow: number | null;
  /** The same mean in tokens. */
  readonly prefilledTokensPerTurnAfterOverflow: number | null;
  /** The largest single turn's prefill from the first overflow on, as a fraction of the context. */
  readonly maxPrefilledAfterOverflow: number | null;
  /** Mean `stats.view.tokens` of answered turns from the first overflow on, as a fraction of the context: how much of the chat the model sees. */
  readonly meanViewTokens: number | null;
  /** Turns from the first overflow on whose view moved (droppedNow > 0; for streaming, that rolled): each is a re-read of the kept history, or a cut. */
  readonly viewMoves: number;
  readonly meanTtftMs: number | null;
  readonly reusedTokens: number;
  readonly restoredTokens: number;
  readonly prefilledTokens: number;
  readonly generatedTokens: number;
  /** The first turn after the restart: its restored tokens, and whether it restored (null when it did not run). */
  readonly restartTurn: number | null;
  readonly restartTurnRestoredTokens: number | null;
  /** What that turn read again (prefilled) beside what it restored. */
  readonly restartTurnPrefilledTokens: number | null;
  /**
   * That turn moved the view (droppedNow > 0): its prompt no longer starts as the stored one did,
   * so little or nothing of it can come from the store, restart or not.
   */
  readonly restartTurnMoved: boolean | null;
  readonly restoredAfterRestart: boolean | null;
}

export interface OverflowRow extends TurnSummary {
  readonly model: string;
  readonly contextSize: number;
  readonly kvType: string;
  readonly policy: BenchPolicy;
  /** The step given to the engine (ResolvedProfile.dropTarget); null: the engine's default. */
  readonly dropTarget: number | null;
  /** False when checkProfile refused the profile (then nothing ran). */
  readonly allowed: boolean;
  readonly notAllowedReason: string | null;
  /** Flash attention as checkProfile resolved it; null when not allowed. */
  readonly flashAttention: boolean | null;
  /** An engine process exited while a call was pending (ENGINE_CRASHED): the chat stopped there. */
  readonly crashed: boolean;
  /** What ended the chat early (the crash, or a failed start or load), in words. */
  readonly failure: string | null;
  /** Highest resident memory of the engine processes of this chat (VmHWM, Linux); null elsewhere. */
  readonly peakRssBytes: number | null;
  /** The old process left within the host's SIGTERM grace by itself (false: it had to be killed). */
  readonly stoppedGracefully: boolean | null;
  readonly wallMs: number;
  readonly perTurn: readonly TurnRecord[];
  /** What the engine processes logged during the chat (at the run's --engine-log level), in order. */
  readonly engineLog: readonly string[];
}

export interface OverflowReport {
  readonly rows: readonly OverflowRow[];
  /**
   * drop-oldest at each dropTarget on the generated model with f16/f16. The naive rows of the main
   * table are its 1, and its default rows (dropTarget null) its DROP_TARGET, run once.
   */
  readonly sweep: readonly OverflowRow[];
  readonly machine: MachineInfo & {
    readonly threads: number;
    readonly nodeLlamaCpp: string;
    readonly turns: number;
    readonly restartAfterTurn: number;
    readonly userTokens: number;
    readonly maxTokens: number;
    readonly stopPolicyUser: string;
    readonly compression: KvCompressionChoice | null;
    readonly codec: KvCodecInfo | null;
    readonly storeDir: string;
    /** The engine's DROP_TARGET: the step of the default rows, which stand for it in the sweep. */
    readonly defaultDropTarget: number;
    readonly wallMs: number;
  };
  readonly date: string;
  readonly acceptance: readonly AcceptanceLine[];
}

export interface AcceptanceLine {
  readonly model: string;
  readonly contextSize: number;
  readonly kvType: string;
  readonly check: string;
  readonly pass: boolean | null;
  readonly detail: string;
}

const mean = (values: readonly number[]): number | null => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);
const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/**
 * A streaming turn rolled its window: the model saw fewer tokens than the turn's prompt and reply
 * hold (the engine's view names no dropped message for a cut inside messages). Without a roll
 * the view holds them all, give or take the last sampled token, which is never evaluated.
 */
export function rolled(t: TurnRecord, contextSize: number): boolean {
  const held = t.tokensReused + t.tokensRestored + t.tokensPrefilled + t.tokensGenerated;
  return t.viewTokens === null ? held > contextSize : held > t.viewTokens + 1;
}

/**
 * The turn where the chat first outgrew the context: for `stop` the first refused turn; for
 * `streaming` the first that rolled; for the others the first whose view left messages out
 * (droppedMessages > 0). Null when none did.
 */
export function firstOverflowIndex(policy: BenchPolicy, contextSize: number, turns: readonly TurnRecord[]): number | null {
  const index =
    policy === 'stop'
      ? turns.findIndex((t) => t.outcome === 'refused')
      : policy === 'streaming'
        ? turns.findIndex((t) => t.outcome === 'answered' && ((t.droppedNow ?? 0) > 0 || rolled(t, contextSize)))
        : turns.findIndex((t) => t.outcome === 'answered' && ((t.droppedMessages ?? 0) > 0 || (t.droppedNow ?? 0) > 0));
  return index < 0 ? null : index;
}

/** The figures a chat's turns add up to; `contextSize` turns token counts into fractions. */
export function summarizeTurns(policy: BenchPolicy, contextSize: number, turns: readonly TurnRecord[]): TurnSummary {
  const answered = turns.filter((t) => t.outcome === 'answered');
  const first = firstOverflowIndex(policy, contextSize, turns);
  const after = first === null ? [] : turns.slice(first).filter((t) => t.outcome === 'answered');
  const prefilled = mean(after.map((t) => t.tokensPrefilled));
  const views = after.flatMap((t) => (t.viewTokens === null ? [] : [t.viewTokens]));
  const viewMean = mean(views);
  const restart = turns.find((t) => t.firstAfterRestart) ?? null;
  const restartRan = restart !== null && restart.outcome === 'answered';
  return {
    turns: turns.length,
    answeredTurns: answered.length,
    refusedTurns: turns.filter((t) => t.outcome === 'refused').length,
    errorTurns: turns.filter((t) => t.outcome === 'error').length,
    firstOverflowTurn: first === null ? null : turns[first]!.turn,
    turnsAfterOverflow: after.length,
    prefilledPerTurnAfterOverflow: prefilled === null ? null : prefilled / contextSize,
    prefilledTokensPerTurnAfterOverflow: prefilled,
    maxPrefilledAfterOverflow: after.length === 0 ? null : Math.max(...after.map((t) => t.tokensPrefilled)) / contextSize,
    // Only when every turn reported its view: a mean over some of them would say nothing.
    meanViewTokens: viewMean === null || views.length !== after.length ? null : viewMean / contextSize,
    viewMoves: after.filter((t) => (t.droppedNow ?? 0) > 0 || (policy === 'streaming' && rolled(t, contextSize))).length,
    meanTtftMs: mean(answered.map((t) => t.ttftMs)),
    reusedTokens: sum(answered.map((t) => t.tokensReused)),
    restoredTokens: sum(answered.map((t) => t.tokensRestored)),
    prefilledTokens: sum(answered.map((t) => t.tokensPrefilled)),
    generatedTokens: sum(answered.map((t) => t.tokensGenerated)),
    restartTurn: restart?.turn ?? null,
    restartTurnRestoredTokens: restartRan ? restart.tokensRestored : null,
    restartTurnPrefilledTokens: restartRan ? restart.tokensPrefilled : null,
    restartTurnMoved: restartRan ? (restart.droppedNow ?? 0) > 0 : null,
    restoredAfterRestart: restartRan ? restart.tokensRestored > 0 : null,
  };
}

const frac = (v: number): string => `${v.toFixed(3)} × context`;
const groupKey = (r: Pick<OverflowRow, 'model' | 'contextSize' | 'kvType'>): string => `${r.model}\u0000${r.contextSize}\u0000${r.kvType}`;

/** Why a row did not run cleanly, in words; null when it did. */
function trouble(row: OverflowRow): string | null {
  if (!row.allowed) return `not allowed (${row.notAllowedReason ?? 'no reason given'})`;
  if (row.crashed) return `the chat ended early: ${row.failure ?? 'the engine process crashed'}`;
  if (row.errorTurns > 0) return `${row.errorTurns} turn(s) failed: ${row.perTurn.find((t) => t.outcome === 'error')?.errorMessage ?? ''}`;
  return null;
}

/**
 * The acceptance lines, per model × context × KV type (each from that group's own rows):
 * the default policy refuses no turn; from its first overflow on, it prefills at most
 * PREFILL_LIMIT of the context per turn (the naive baseline beside it); with q8_0/q8_0 every
 * policy the engine allows runs without a crash; after the restart the default policy's next
 * turn restores from disk. A figure that could not be measured is N/A, never a PASS.
 */
export function acceptanceLines(rows: readonly OverflowRow[]): AcceptanceLine[] {
  const groups = new Map<string, OverflowRow[]>();
  for (const row of rows) {
    const key = groupKey(row);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const lines: AcceptanceLine[] = [];
  for (const group of groups.values()) {
    const { model, contextSize, kvType } = group[0]!;
    const base = { model, contextSize, kvType };
    const def = group.find((r) => r.policy === 'drop-oldest' && r.dropTarget === null);
    const naive = group.find((r) => r.policy === 'naive');
    if (def !== undefined) {
      const broken = trouble(def);
      lines.push({
        ...base,
        check: 'default policy (drop-oldest): no turn refused',
        pass: broken === null ? def.refusedTurns === 0 : false,
        detail: broken ?? `${def.refusedTurns} of ${def.turns} turns refused${def.firstOverflowTurn === null ? ' (the chat never outgrew the context)' : `; first overflow at turn ${def.firstOverflowTurn}`}`,
      });
      const p = def.prefilledPerTurnAfterOverflow;
      const naiveText = naive === undefined ? 'naive not run' : naive.prefilledPerTurnAfterOverflow === null ? `naive: ${trouble(naive) ?? 'never overflowed'}` : `naive (dropTarget 1) ${frac(naive.prefilledPerTurnAfterOverflow)}`;
      lines.push({
        ...base,
        check: `default policy: mean prefilled per turn after the first overflow ≤ ${PREFILL_LIMIT} × context`,
        pass: broken !== null ? false : p === null ? null : p <= PREFILL_LIMIT,
        detail:
          broken ??
          (p === null
            ? 'not measured: the chat never outgrew the context'
            : `${frac(p)} (${Math.round(def.prefilledTokensPerTurnAfterOverflow!)} tokens/turn over ${def.turnsAfterOverflow} turns from turn ${def.firstOverflowTurn}; largest ${frac(def.maxPrefilledAfterOverflow!)}) vs limit ${PREFILL_LIMIT}; ${naiveText}`),
      });
      lines.push({
        ...base,
        check: 'after the restart the next turn restored from disk (default policy)',
        pass: broken !== null ? false : def.restoredAfterRestart,
        detail:
          broken ??
          (def.restoredAfterRestart === null
            ? `not measured: turn ${def.restartTurn ?? '?'} did not run`
            : `turn ${def.restartTurn}: ${def.restartTurnRestoredTokens} tokens restored, ${def.restartTurnPrefilledTokens} read again${def.stoppedGracefully === false ? ' (the old process had to be killed)' : ''}`),
      });
    }
    if (kvType.startsWith('q8_0')) {
      const ran = group.filter((r) => r.allowed);
      const refused = group.filter((r) => !r.allowed);
      const failed = ran.filter((r) => trouble(r) !== null);
      // The engine refuses streaming with a quantized K (a middle erase crashes llama.cpp); any
      // other refusal means a policy that should run did not.
      const wrongRefusals = refused.filter((r) => r.policy !== 'streaming');
      lines.push({
        ...base,
        check: 'q8_0: every policy the engine allows ran without a crash',
        pass: ran.length > 0 && failed.length === 0 && wrongRefusals.length === 0,
        detail: [
          `ran: ${ran.map((r) => r.policy).join(', ') || 'none'}`,
          ...failed.map((r) => `${r.policy}: ${trouble(r)!}`),
          ...refused.map((r) => `${r.policy} not allowed${r.policy === 'streaming' ? ' (as expected)' : ''}: ${r.notAllowedReason ?? 'no reason given'}`),
        ].join('; '),
      });
    }
  }
  return lines;
}

const fracCell = (v: number | null): string | null => (v === null ? null : v.toFixed(3));
const mb = (v: number | null): number | null => (v === null ? null : Math.round(v / 2 ** 20));
const yesNo = (v: boolean | null): string | null => (v === null ? null : v ? 'yes' : 'no');

export function policyLabel(row: Pick<OverflowRow, 'policy' | 'dropTarget'>): string {
  if (row.policy === 'naive') return 'naive (dropTarget 1)';
  if (row.policy === 'drop-oldest' && row.dropTarget !== null) return `drop-oldest (dropTarget ${row.dropTarget})`;
  return row.policy;
}

/** Whether the turn after the restart restored, with what it restored and read (and whether the view moved at that very turn). */
function restartCell(r: OverflowRow): string | null {
  if (r.restartTurnRestoredTokens === null) return yesNo(r.restoredAfterRestart);
  return `${yesNo(r.restoredAfterRestart)!} (${r.restartTurnRestoredTokens} restored, ${r.restartTurnPrefilledTokens ?? '?'} read${r.restartTurnMoved ? '; the view moved at that turn' : ''})`;
}

const rowColumns: Column<OverflowRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'context', value: (r) => r.contextSize, numeric: true },
  { title: 'KV', value: (r) => r.kvType },
  { title: 'policy', value: (r) => policyLabel(r) },
  { title: 'turns', value: (r) => (r.allowed ? r.turns : 'not allowed') },
  { title: 'refused', value: (r) => (r.allowed ? r.refusedTurns : null), numeric: true },
  { title: 'errors', value: (r) => (r.allowed ? r.errorTurns + (r.crashed ? ' (crash)' : '') : null), numeric: true },
  { title: 'first overflow', value: (r) => r.firstOverflowTurn, numeric: true },
  { title: 'prefilled/turn after overflow (× ctx)', value: (r) => fracCell(r.prefilledPerTurnAfterOverflow), numeric: true },
  { title: 'largest turn (× ctx)', value: (r) => fracCell(r.maxPrefilledAfterOverflow), numeric: true },
  { title: 'view after overflow (× ctx)', value: (r) => fracCell(r.meanViewTokens), numeric: true },
  { title: 'view moves', value: (r) => (r.firstOverflowTurn === null ? null : r.viewMoves), numeric: true },
  { title: 'mean TTFT ms', value: (r) => (r.meanTtftMs === null ? null : Math.round(r.meanTtftMs * 10) / 10), numeric: true },
  { title: 'reused', value: (r) => (r.allowed ? r.reusedTokens : null), numeric: true },
  { title: 'restored', value: (r) => (r.allowed ? r.restoredTokens : null), numeric: true },
  { title: 'prefilled', value: (r) => (r.allowed ? r.prefilledTokens : null), numeric: true },
  { title: 'restored after restart', value: (r) => restartCell(r) },
  { title: 'peak RSS MiB', value: (r) => mb(r.peakRssBytes), numeric: true },
  { title: 'wall s', value: (r) => (r.allowed ? Math.round(r.wallMs / 100) / 10 : null), numeric: true },
];

const sweepColumns = (defaultDropTarget: number): Column<OverflowRow>[] => [
  { title: 'model', value: (r) => r.model },
  { title: 'context', value: (r) => r.contextSize, numeric: true },
  { title: 'dropTarget', value: (r) => (r.policy === 'naive' ? '1 (naive)' : r.dropTarget === null ? `${defaultDropTarget} (default)` : String(r.dropTarget)) },
  { title: 'first overflow', value: (r) => r.firstOverflowTurn, numeric: true },
  { title: 'view moves', value: (r) => (r.firstOverflowTurn === null ? null : r.viewMoves), numeric: true },
  { title: 'prefilled/turn after overflow (× ctx)', value: (r) => fracCell(r.prefilledPerTurnAfterOverflow), numeric: true },
  { title: 'largest turn (× ctx)', value: (r) => fracCell(r.maxPrefilledAfterOverflow), numeric: true },
  { title: 'view after overflow (× ctx)', value: (r) => fracCell(r.meanViewTokens), numeric: true },
  { title: 'mean TTFT ms', value: (r) => (r.meanTtftMs === null ? null : Math.round(r.meanTtftMs * 10) / 10), numeric: true },
  { title: 'restored after restart', value: (r) => restartCell(r) },
];

/** The step sweep's rows in print order: each context's steps, then its naive row (dropTarget 1). */
export function sweepTable(report: Pick<OverflowReport, 'rows' | 'sweep'> & { machine: Pick<OverflowReport['machine'], 'defaultDropTarget'> }): OverflowRow[] {
  const step = (r: OverflowRow): number => r.dropTarget ?? report.machine.defaultDropTarget;
  const out: OverflowRow[] = [];
  const contexts = [...new Set(report.sweep.map((r) => `${r.model}\u0000${r.contextSize}`))];
  for (const key of contexts) {
    const steps = report.sweep.filter((r) => `${r.model}\u0000${r.contextSize}` === key).sort((a, b) => step(a) - step(b));
    const first = steps[0]!;
    const naive = report.rows.find((r) => r.policy === 'naive' && r.model === first.model && r.contextSize === first.contextSize && r.kvType === first.kvType);
    out.push(...steps, ...(naive ? [naive] : []));
  }
  return out;
}

/** The tables, the acceptance lines and the notes, as printed (and written to FILE.md). */
export function formatReport(report: OverflowReport): string {
  const m = report.machine;
  // The sweep holds the default rows too (its DROP_TARGET step): each row once.
  const every = [...new Set([...report.rows, ...report.sweep])];
  const compression = m.compression === null ? '?' : m.compression.setting === m.compression.applied ? m.compression.applied : `${m.compression.setting} → ${m.compression.applied}${m.compression.reason ? ` (${m.compression.reason})` : ''}`;
  const refusals = report.rows.filter((r) => !r.allowed).map((r) => `not allowed: ${r.model} ${r.kvType} @ ${r.contextSize} ${policyLabel(r)}: ${r.notAllowedReason ?? 'no reason given'}`);
  const troubles = every.filter((r) => r.allowed && (r.crashed || r.errorTurns > 0)).map((r) => `WARNING: ${r.model} ${r.kvType} @ ${r.contextSize} ${policyLabel(r)}: ${trouble(r)!}`);
  const forced = every.filter((r) => r.stoppedGracefully === false).map((r) => `note: ${r.model} ${r.kvType} @ ${r.contextSize} ${policyLabel(r)}: the engine did not exit within the host's SIGTERM grace at the restart and was killed`);
  const warned = every.flatMap((r) => {
    const bad = r.engineLog.filter((l) => l.startsWith('warn:') || l.startsWith('error:'));
    return bad.length === 0 ? [] : [`note: ${r.model} ${r.kvType} @ ${r.contextSize} ${policyLabel(r)}: the engine logged ${bad.length} warning(s) or error(s), the first: ${bad[0]!}`];
  });
  return [
    markdownTable(report.rows, rowColumns),
    '',
    `${m.cpu}, ${m.cores} cores, ${m.threads} thread(s); node-llama-cpp ${m.nodeLlamaCpp}; ${m.turns} turns per chat (user messages ~${m.userTokens} tokens, replies ≤ ${m.maxTokens} tokens, temperature 0), the engine restarted gracefully (SIGTERM) after turn ${m.restartAfterTurn}; store compression ${compression}${m.codec ? `, ${m.codec.kernels} kernels` : ''}; stores under ${m.storeDir}; ${(m.wallMs / 1000).toFixed(0)} s in all.`,
    `Fractions are of the context. Means after the overflow are over the answered turns from the first overflow on (that turn included). stop: ${m.stopPolicyUser}.`,
    ...refusals,
    '',
    `Step sweep (drop-oldest, f16/f16; the engine's default is ${m.defaultDropTarget}, its row is the main table's): a smaller step re-reads less per move but the model sees less of the chat.`,
    '',
    markdownTable(sweepTable(report), sweepColumns(m.defaultDropTarget)),
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.model} ${a.kvType} @ ${a.contextSize.toLocaleString('en-US')}: ${a.check}: ${a.detail}`),
    ...forced,
    ...warned,
    ...troubles,
  ].join('\n');
}
