import { describe, expect, it } from 'vitest';
import { kvCacheTypes } from '../engine/contract/api.ts';
import type { SpeedProfile, SpeedSettings } from '../engine/contract/index.ts';
import { turnSeconds, type Measured } from '../engine/worker/speed-choice.ts';
import { KV_SHAPE_8B } from './kv-shape-8b.ts';
import {
  acceptanceLines,
  alternatives,
  bestOf,
  compareEngines,
  formatReport,
  parsePair,
  roundOrder,
  rowOf,
  type Alternative,
  type SpeedReport,
  type SpeedRow,
} from './speed-report.ts';

const f16 = { kType: 'f16', vType: 'f16' } as const;
const q8f16 = { kType: 'q8_0', vType: 'f16' } as const;
const q8q8 = { kType: 'q8_0', vType: 'q8_0' } as const;

const alt = (over: Partial<Alternative> = {}): Alternative => ({ ...f16, kvType: 'f16/f16', flashAttention: true, threads: 2, batchSize: 512, ...over });
const speeds = (prefillTokPerS: number, decodeTokPerS: number): Measured => ({ prefillTokPerS, decodeTokPerS });

/** A row of kv-shape-8b, prebuilt, f16/f16, with one round at these speeds. */
const row = (settings: Partial<SpeedSettings>, prefill: number, decode: number, chosen: SpeedSettings | null, over: { model?: string; engine?: 'prebuilt' | 'local'; kvType?: string } = {}): SpeedRow => {
  const alternative = alt({ ...settings, ...(over.kvType ? { kvType: over.kvType } : {}) });
  return rowOf(over.model ?? KV_SHAPE_8B, over.engine ?? 'prebuilt', alternative, [speeds(prefill, decode)], chosen);
};

const choice: SpeedSettings = { flashAttention: true, threads: 2, batchSize: 512 };

describe('the speed benchmark’s rows', () => {
  it('parses K/V pairs of known types only', () => {
    expect(parsePair('q8_0/f16', kvCacheTypes)).toEqual(q8f16);
    expect(parsePair('q8_0', kvCacheTypes)).toBeNull();
    expect(parsePair('q8_0/q3_k', kvCacheTypes)).toBeNull();
    expect(parsePair('f16/f16/f16', kvCacheTypes)).toBeNull();
  });

  it('measures every flash attention value a pair allows × threads × batch sizes, as Hearth’s space has them', () => {
    const rows = alternatives([f16, q8f16, q8q8], true, [2, 1]);
    // f16 V: flash attention on and off; a quantized V: on only. 2 threads × 2 batch sizes each.
    expect(rows).toHaveLength((2 + 2 + 1) * 2 * 2);
    expect(rows.filter((r) => r.kvType === 'q8_0/q8_0').every((r) => r.flashAttention)).toBe(true);
    expect(new Set(rows.map((r) => `${r.kvType} ${r.flashAttention} ${r.threads} ${r.batchSize}`)).size).toBe(rows.length);
    expect(new Set(rows.map((r) => r.batchSize))).toEqual(new Set([512, 256]));
    // An architecture without flash attention: off for f16 V, and a quantized V still needs it on.
    const unsupported = alternatives([f16, q8q8], false, [1, 1]);
    expect(unsupported.map((r) => `${r.kvType} ${r.flashAttention} ${r.threads}`)).toEqual(['f16/f16 false 1', 'f16/f16 false 1', 'q8_0/q8_0 true 1', 'q8_0/q8_0 true 1']);
  });

  it('shuffles each round’s order reproducibly, differently per round and per seed', () => {
    const first = roundOrder(20, 1, 0);
    expect([...first].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(roundOrder(20, 1, 0)).toEqual(first);
    expect(roundOrder(20, 1, 1)).not.toEqual(first);
    expect(roundOrder(20, 2, 0)).not.toEqual(first);
    expect(roundOrder(1, 5, 3)).toEqual([0]);
  });

  it('keeps the best round and the spread below it', () => {
    expect(bestOf([80, 100, 90])).toEqual({ best: 100, spread: 0.2 });
    expect(bestOf([])).toEqual({ best: null, spread: null });
    const r = rowOf('m', 'prebuilt', alt(), [speeds(100, 10), { error: 'no context' }, speeds(50, 20)], choice);
    expect(r.prefillTokPerS).toBe(100);
    expect(r.decodeTokPerS).toBe(20);
    expect(r.prefillSpread).toBe(0.5);
    expect(r.turnSeconds).toBeCloseTo(turnSeconds(100, 20));
    expect(r.errors).toEqual(['no context']);
    expect(r.samples.decodeTokPerS).toEqual([10, 20]);
    const failed = rowOf('m', 'prebuilt', alt(), [{ error: 'no context' }, { error: 'no context' }], choice);
    expect([failed.prefillTokPerS, failed.decodeTokPerS, failed.turnSeconds]).toEqual([null, null, null]);
    expect(failed.errors).toEqual(['no context']);
  });

  it('marks as chosen only the default pair’s row with Hearth’s settings', () => {
    expect(rowOf('m', 'prebuilt', alt(), [speeds(1, 1)], choice).chosen).toBe(true);
    expect(rowOf('m', 'prebuilt', alt({ batchSize: 256 }), [speeds(1, 1)], choice).chosen).toBe(false);
    expect(rowOf('m', 'prebuilt', alt({ threads: 1 }), [speeds(1, 1)], choice).chosen).toBe(false);
    expect(rowOf('m', 'prebuilt', alt({ ...q8f16, kvType: 'q8_0/f16' }), [speeds(1, 1)], choice).chosen).toBe(false);
    expect(rowOf('m', 'prebuilt', alt(), [speeds(1, 1)], null).chosen).toBe(false);
  });
});

describe('the speed benchmark’s acceptance', () => {
  const line = (rows: SpeedRow[], model = KV_SHAPE_8B) => acceptanceLines(rows).filter((l) => l.model === model);

  it('passes kv-shape-8b when the chosen decode is within 5% of the fastest of its pair and engine', () => {
    const rows = [row(choice, 200, 96, choice), row({ threads: 1 }, 100, 100, choice), row({ flashAttention: false }, 300, 50, choice), row({}, 1, 500, choice, { kvType: 'q8_0/q8_0' })];
    const [decode, turn] = line(rows);
    expect(decode!.pass).toBe(true);
    // The q8_0/q8_0 row is faster but another pair: not compared.
    expect(decode!.detail).toMatch(/^0\.960: chosen FA on, 2 threads, batch 512 96\.0 tok\/s, fastest FA on, 1 thread, batch 512 100\.0 tok\/s/);
    expect(turn!.pass).toBeNull();
    const best = Math.min(turnSeconds(200, 96), turnSeconds(100, 100), turnSeconds(300, 50));
    expect(turn!.detail).toContain(`${(turnSeconds(200, 96) / best).toFixed(3)}× the best`);
  });

  it('fails it below 95%, and when the chosen row did not run', () => {
    expect(line([row(choice, 200, 94, choice), row({ threads: 1 }, 100, 100, choice)])[0]!.pass).toBe(false);
    const broken = [rowOf(KV_SHAPE_8B, 'prebuilt', alt(), [{ error: 'no context' }], choice), row({ threads: 1 }, 100, 100, choice)];
    expect(line(broken)[0]).toMatchObject({ pass: false, detail: 'the chosen row did not run' });
  });

  it('reports the same ratio for other models and the local engine without judging them', () => {
    const rows = [row(choice, 100, 50, choice, { model: 'test model' }), row({ threads: 1 }, 100, 100, choice, { model: 'test model' }), row(choice, 100, 100, choice, { engine: 'local' })];
    const lines = acceptanceLines(rows);
    expect(lines.find((l) => l.model === 'test model')).toMatchObject({ pass: null, detail: expect.stringMatching(/^0\.500/) as unknown });
    expect(lines.find((l) => l.engine === 'local')?.pass).toBeNull();
    expect(lines.find((l) => l.model === KV_SHAPE_8B && l.engine === 'prebuilt')).toMatchObject({ pass: null, detail: 'not measured in this run' });
  });

  it('compares the local engine with the prebuilt one row by row', () => {
    const rows = [row(choice, 100, 50, choice), row(choice, 150, 40, choice, { engine: 'local' }), row({ threads: 1 }, 100, 50, choice)];
    const [comparison, ...rest] = compareEngines(rows);
    expect(rest).toEqual([]);
    expect(comparison).toMatchObject({ model: KV_SHAPE_8B, threads: 2, prefillRatio: 1.5, decodeRatio: 0.8 });
    expect(comparison!.turnSpeedup).toBeCloseTo(turnSeconds(100, 50) / turnSeconds(150, 40));
  });

  it('prints the verdicts, the rows and how long Hearth’s measurement took', () => {
    const rows = [row(choice, 200, 90, choice), row({ threads: 1 }, 100, 100, choice), row(choice, 150, 40, choice, { engine: 'local' })];
    const profile: SpeedProfile = {
      kType: 'f16',
      vType: 'f16',
      engine: 'prebuilt',
      device: 'cpu',
      depth: 256,
      decodeTokens: 16,
      trials: [{ ...choice, prefillTokPerS: 210, decodeTokPerS: 95, turnSeconds: turnSeconds(210, 95) }, { ...choice, flashAttention: false, prefillTokPerS: null, decodeTokPerS: null, turnSeconds: null, error: 'refused' }],
      chosen: choice,
      measuredAt: 0,
      durationMs: 4321,
    };
    const report: SpeedReport = {
      rows,
      hearth: [{ model: KV_SHAPE_8B, engine: 'prebuilt', threadCandidates: [2, 1], flashAttentionSupported: true, profile }],
      engines: [{ engine: 'prebuilt', llamaCppRelease: 'b1', backend: 'cpu', device: 'cpu' }],
      comparison: compareEngines(rows),
      acceptance: acceptanceLines(rows),
      machine: { cpu: 'AMD EPYC', cores: 2, memoryBytes: 1, platform: 'linux-x64', osRelease: '6', node: 'v24', physicalCores: 2, nodeLlamaCpp: '3.21.1' },
      settings: { depth: 1024, decodeTokens: 64, reps: 3, seed: 1, pairs: ['f16/f16'], threadCandidates: [2, 1] },
      durationMs: 600_000,
      date: '2026-12-07T00:00:00.000Z',
    };
    const text = formatReport(report);
    expect(text).toContain('FAIL  kv-shape-8b (prebuilt): chosen decode / fastest decode (f16/f16) ≥ 0.95: 0.900');
    expect(text).toContain('- kv-shape-8b (prebuilt): 2 trials at depth 256, 16 decoded, in 4.3 s; chose FA on, 2 threads, batch 512.');
    expect(text).toContain('| refused |');
    expect(text).toContain('### Local engine against prebuilt');
    expect(text).toContain('| kv-shape-8b | f16/f16 | on | 2 | 512 | 0.75× | 0.44× |');
  });
});
