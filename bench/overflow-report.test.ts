import { describe, expect, it } from 'vitest';
import { acceptanceLines, firstOverflowIndex, formatReport, rolled, summarizeTurns, sweepTable, type BenchPolicy, type OverflowReport, type OverflowRow, type TurnRecord } from './overflow-report.ts';

const turn = (n: number, over: Partial<TurnRecord> = {}): TurnRecord => ({
  turn: n,
  firstAfterRestart: false,
  outcome: 'answered',
  errorCode: null,
  errorMessage: null,
  messagesSent: 2 * n,
  tokensReused: 100,
  tokensRestored: 0,
  tokensPrefilled: 50,
  tokensGenerated: 10,
  ttftMs: 20,
  viewTokens: 400,
  droppedMessages: 0,
  droppedNow: 0,
  stopReason: 'maxTokens',
  cacheSource: 'memory',
  fallbackReason: null,
  ...over,
});

const refused = (n: number): TurnRecord => turn(n, { outcome: 'refused', errorCode: 'CONTEXT_OVERFLOW', tokensReused: 0, tokensPrefilled: 0, tokensGenerated: 0, ttftMs: 0, viewTokens: null, droppedMessages: null, droppedNow: null });

const row = (policy: BenchPolicy, turns: readonly TurnRecord[], over: Partial<OverflowRow> = {}): OverflowRow => ({
  model: 'test model',
  contextSize: 1000,
  kvType: 'f16/f16',
  policy,
  dropTarget: null,
  allowed: true,
  notAllowedReason: null,
  flashAttention: true,
  crashed: false,
  failure: null,
  peakRssBytes: 200 * 2 ** 20,
  stoppedGracefully: true,
  wallMs: 1000,
  perTurn: turns,
  engineLog: [],
  ...summarizeTurns(policy, 1000, turns),
  ...over,
});

// A chat of 6 turns on a 1,000-token context: it outgrows the context at turn 3 (a large step:
// 300 read again), then extends the kept prefix (100 per turn); the restart comes before turn 5,
// which restores 500 tokens from disk.
const dropOldest = [
  turn(1, { tokensPrefilled: 200, viewTokens: 300 }),
  turn(2, { tokensPrefilled: 150, viewTokens: 500 }),
  turn(3, { tokensPrefilled: 300, viewTokens: 450, droppedMessages: 4, droppedNow: 4 }),
  turn(4, { tokensPrefilled: 100, viewTokens: 550, droppedMessages: 4 }),
  turn(5, { tokensPrefilled: 100, tokensRestored: 500, tokensReused: 0, viewTokens: 650, droppedMessages: 4, firstAfterRestart: true, cacheSource: 'disk' }),
  turn(6, { tokensPrefilled: 100, viewTokens: 750, droppedMessages: 4 }),
];
// Dropping just enough: every turn after the overflow reads most of the context again.
const naive = [turn(1), turn(2), turn(3, { tokensPrefilled: 800, droppedMessages: 2, droppedNow: 2, viewTokens: 900 }), turn(4, { tokensPrefilled: 850, droppedMessages: 4, droppedNow: 2, viewTokens: 900 }), turn(5, { firstAfterRestart: true, tokensPrefilled: 900, viewTokens: 900, droppedMessages: 6, droppedNow: 2 }), turn(6, { tokensPrefilled: 850, droppedMessages: 8, droppedNow: 2, viewTokens: 900 })];

describe('the overflow benchmark’s turn figures', () => {
  it('start at the first turn whose view left messages out, that turn included, over answered turns', () => {
    const s = summarizeTurns('drop-oldest', 1000, dropOldest);
    expect(s.firstOverflowTurn).toBe(3);
    expect(s.turnsAfterOverflow).toBe(4);
    // (300 + 100 + 100 + 100) / 4 = 150 tokens = 0.15 of the context.
    expect(s.prefilledTokensPerTurnAfterOverflow).toBe(150);
    expect(s.prefilledPerTurnAfterOverflow).toBeCloseTo(0.15);
    expect(s.maxPrefilledAfterOverflow).toBeCloseTo(0.3);
    // (450 + 550 + 650 + 750) / 4 / 1000.
    expect(s.meanViewTokens).toBeCloseTo(0.6);
    expect(s.viewMoves).toBe(1);
    expect(s.restartTurn).toBe(5);
    expect(s.restartTurnRestoredTokens).toBe(500);
    expect(s.restartTurnPrefilledTokens).toBe(100);
    expect(s.restoredAfterRestart).toBe(true);
    expect(s.restartTurnMoved).toBe(false);
    expect(s.restoredTokens).toBe(500);
    expect(s.reusedTokens).toBe(500);
    expect(s.prefilledTokens).toBe(950);
    expect(s.meanTtftMs).toBe(20);
    expect(s.refusedTurns).toBe(0);
  });

  it('say nothing about the overflow when the chat never outgrew the context', () => {
    const s = summarizeTurns('drop-oldest', 1000, [turn(1), turn(2, { firstAfterRestart: true, tokensRestored: 0 })]);
    expect(s.firstOverflowTurn).toBeNull();
    expect(s.prefilledPerTurnAfterOverflow).toBeNull();
    expect(s.meanViewTokens).toBeNull();
    expect(s.restoredAfterRestart).toBe(false);
  });

  it('count a streaming roll as the overflow: the view held fewer tokens than the prompt and the reply', () => {
    // 100 reused + 50 prefilled + 10 generated = 160: a view of 159 (the last token never evaluated) or 160 holds them all.
    const whole = [turn(1, { viewTokens: 159 }), turn(2, { viewTokens: 160 })];
    expect(firstOverflowIndex('streaming', 1000, whole)).toBeNull();
    expect(rolled(turn(3, { viewTokens: 158 }), 1000)).toBe(true);
    const turns = [...whole, turn(3, { tokensReused: 900, tokensPrefilled: 180, tokensGenerated: 100, viewTokens: 1000 }), turn(4, { viewTokens: 160 }), turn(5, { tokensReused: 950, tokensPrefilled: 150, viewTokens: 1000 })];
    expect(firstOverflowIndex('streaming', 1000, turns)).toBe(2);
    const s = summarizeTurns('streaming', 1000, turns);
    expect(s.firstOverflowTurn).toBe(3);
    expect(s.viewMoves).toBe(2);
    // (1000 + 160 + 1000) / 3 / 1000.
    expect(s.meanViewTokens).toBeCloseTo(0.72);
    // Without a view, only a turn that held more than the context must have rolled.
    expect(rolled(turn(6, { viewTokens: null, tokensReused: 900, tokensPrefilled: 100 }), 1000)).toBe(true);
    expect(rolled(turn(6, { viewTokens: null }), 1000)).toBe(false);
    // drop-oldest counts dropped messages, not tokens.
    expect(firstOverflowIndex('drop-oldest', 1000, turns)).toBeNull();
  });

  it('leave the view mean out when a turn after the overflow lacks its view', () => {
    const turns = [turn(1), turn(2, { droppedMessages: 2, droppedNow: 2 }), turn(3, { viewTokens: null, droppedMessages: 2 })];
    expect(summarizeTurns('drop-oldest', 1000, turns).meanViewTokens).toBeNull();
  });

  it('for stop: the first refused turn is the overflow; refused turns count, prefill nothing, and a refused restart turn is not a restore', () => {
    const turns = [turn(1), turn(2), refused(3), refused(4), { ...refused(5), firstAfterRestart: true }];
    const s = summarizeTurns('stop', 1000, turns);
    expect(s.firstOverflowTurn).toBe(3);
    expect(s.refusedTurns).toBe(3);
    expect(s.answeredTurns).toBe(2);
    expect(s.turnsAfterOverflow).toBe(0);
    expect(s.prefilledPerTurnAfterOverflow).toBeNull();
    expect(s.restoredAfterRestart).toBeNull();
    expect(s.prefilledTokens).toBe(100);
  });
});

describe('the overflow benchmark’s acceptance lines', () => {
  const f16 = [row('drop-oldest', dropOldest), row('naive', naive), row('stop', [turn(1), turn(2), refused(3)])];
  const q8 = (rows: OverflowRow[]) => rows.map((r) => ({ ...r, kvType: 'q8_0/q8_0' }));

  it('pass for a default policy that refuses nothing, re-reads ≤ 0.25 of the context per turn and restores after the restart; the naive baseline beside it', () => {
    const lines = acceptanceLines(f16);
    expect(lines.map((l) => l.check)).toEqual([
      'default policy (drop-oldest): no turn refused',
      'default policy: mean prefilled per turn after the first overflow ≤ 0.25 × context',
      'after the restart the next turn restored from disk (default policy)',
    ]);
    expect(lines.every((l) => l.pass === true)).toBe(true);
    expect(lines[1]!.detail).toContain('0.150 × context (150 tokens/turn over 4 turns from turn 3; largest 0.300 × context)');
    // Naive: (800 + 850 + 900 + 850) / 4 = 850.
    expect(lines[1]!.detail).toContain('naive (dropTarget 1) 0.850 × context');
  });

  it('compare with the limit, and are N/A (never PASS) when the chat never overflowed', () => {
    const over = dropOldest.map((t) => (t.turn >= 4 ? { ...t, tokensPrefilled: 234 } : t));
    // (300 + 3 × 234) / 4 = 250.5 tokens > 250.
    expect(acceptanceLines([row('drop-oldest', over)])[1]!.pass).toBe(false);
    const exact = dropOldest.map((t) => (t.turn >= 4 ? { ...t, tokensPrefilled: 233 + (t.turn === 4 ? 1 : 0) } : t));
    // (300 + 234 + 233 + 233) / 4 = 250 tokens: on the limit.
    expect(acceptanceLines([row('drop-oldest', exact)])[1]!.pass).toBe(true);
    const never = acceptanceLines([row('drop-oldest', [turn(1), turn(2, { firstAfterRestart: true, tokensRestored: 90 })])]);
    expect(never[1]!.pass).toBeNull();
    expect(never[1]!.detail).toBe('not measured: the chat never outgrew the context');
    expect(never[2]!.pass).toBe(true);
  });

  it('fail the default policy when it refused a turn, did not restore, or crashed', () => {
    expect(acceptanceLines([row('drop-oldest', [...dropOldest.slice(0, 5), refused(6)])])[0]!.pass).toBe(false);
    const noRestore = dropOldest.map((t) => (t.firstAfterRestart ? { ...t, tokensRestored: 0, tokensPrefilled: 600 } : t));
    expect(acceptanceLines([row('drop-oldest', noRestore)])[2]!.pass).toBe(false);
    const moved = summarizeTurns('drop-oldest', 1000, dropOldest.map((t) => (t.firstAfterRestart ? { ...t, droppedNow: 2 } : t)));
    expect(moved.restartTurnMoved).toBe(true);
    const crashed = acceptanceLines([row('drop-oldest', dropOldest.slice(0, 2), { crashed: true, failure: 'The engine exited (SIGSEGV)' })]);
    expect(crashed.map((l) => l.pass)).toEqual([false, false, false]);
    expect(crashed[0]!.detail).toBe('the chat ended early: The engine exited (SIGSEGV)');
  });

  it('for q8_0: pass when every policy but streaming ran cleanly and streaming was refused; fail on a crash or another refusal', () => {
    const streamingRefused = row('streaming', [], { allowed: false, notAllowedReason: 'needs an F16 K' });
    const ok = acceptanceLines(q8([...f16, streamingRefused])).find((l) => l.check.startsWith('q8_0'))!;
    expect(ok.pass).toBe(true);
    expect(ok.detail).toBe('ran: drop-oldest, naive, stop; streaming not allowed (as expected): needs an F16 K');
    const crash = acceptanceLines(q8([...f16.slice(0, 2), row('stop', [turn(1)], { crashed: true, failure: 'gone' }), streamingRefused])).find((l) => l.check.startsWith('q8_0'))!;
    expect(crash.pass).toBe(false);
    const wrong = acceptanceLines(q8([f16[0]!, row('naive', [], { allowed: false, notAllowedReason: 'no' })])).find((l) => l.check.startsWith('q8_0'))!;
    expect(wrong.pass).toBe(false);
    expect(acceptanceLines(f16).some((l) => l.check.startsWith('q8_0'))).toBe(false);
  });

  it('are computed per model × context × KV type', () => {
    const other = f16.map((r) => ({ ...r, contextSize: 4000 }));
    const lines = acceptanceLines([...f16, ...other]);
    expect(lines.filter((l) => l.contextSize === 1000)).toHaveLength(3);
    expect(lines.filter((l) => l.contextSize === 4000)).toHaveLength(3);
  });
});

describe('the overflow report', () => {
  it('prints the sweep with the default row as its DROP_TARGET and the naive row as its 1, the not-allowed rows and the lines', () => {
    const def = row('drop-oldest', dropOldest);
    const sweep = [row('drop-oldest', dropOldest, { dropTarget: 0.75 }), row('drop-oldest', dropOldest, { dropTarget: 0.25 }), def];
    const streamingRefused = row('streaming', [], { kvType: 'q8_0/q8_0', allowed: false, notAllowedReason: 'needs an F16 K' });
    const rows = [def, row('naive', naive), streamingRefused];
    expect(sweepTable({ rows, sweep, machine: { defaultDropTarget: 0.5 } }).map((r) => (r.policy === 'naive' ? 1 : r.dropTarget))).toEqual([0.25, null, 0.75, 1]);
    const report = {
      rows,
      sweep,
      machine: { cpu: 'cpu', cores: 2, threads: 1, nodeLlamaCpp: '3.21.1', turns: 6, restartAfterTurn: 4, userTokens: 60, maxTokens: 100, stopPolicyUser: 'keeps typing', compression: { setting: 'auto', applied: 'off', reason: 'slow' }, codec: { kernels: 'native' }, storeDir: '/d', defaultDropTarget: 0.5, wallMs: 5000 },
      date: '2026-01-01T00:00:00.000Z',
      acceptance: acceptanceLines(rows),
    } as unknown as OverflowReport;
    const text = formatReport(report);
    expect(text.split('\n')[0]).toContain('| prefilled/turn after overflow (× ctx) |');
    expect(text).toContain('| test model | 1,000 | q8_0/q8_0 | streaming | not allowed |');
    expect(text).toContain('not allowed: test model q8_0/q8_0 @ 1000 streaming: needs an F16 K');
    expect(text).toContain('| test model | 1,000 | 1 (naive) |');
    expect(text).toContain('| test model | 1,000 | 0.5 (default) |');
    expect(text).toMatch(/^PASS {2}test model f16\/f16 @ 1,000: default policy \(drop-oldest\): no turn refused/m);
    expect(text).toContain('yes (500 restored, 100 read)');
  });
});
