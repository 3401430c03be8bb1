import { describe, expect, it } from 'vitest';
import { kvCacheTypes, SPEED_TURN, type SpeedSettings } from '../contract/index.ts';
import { BATCH_SIZES, chooseSpeed, fastest, PREFILL_BUDGET_MS, SPEED_MAX_DEPTH, SPEED_MIN_DEPTH, speedDepth, speedSpace, trialCount, trialOf, turnSeconds, type Measured } from './speed-choice.ts';

/** A fake measurement: speeds from a table keyed by the settings; unlisted settings fail. */
function fakeMeasure(table: Record<string, Measured>): { measure: (s: SpeedSettings) => Promise<Measured>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    measure: async (settings) => {
      const key = `${settings.flashAttention ? 'fa' : 'nofa'}/${settings.threads}/${settings.batchSize}`;
      asked.push(key);
      return table[key] ?? { error: `no figure for ${key}` };
    },
  };
}

const space = speedSpace({ setting: 'auto', supported: true, vType: 'f16', threads: [2, 1] });

describe('speedSpace', () => {
  it('tries flash attention on and off for auto with an F16 V, on first', () => {
    expect(space).toEqual({ flashAttention: [true, false], threads: [2, 1], batchSizes: BATCH_SIZES });
    // Flash attention twice, the other thread count, flash attention again at it, the other batch size.
    expect(trialCount(space)).toBe(2 + 1 + 1 + (BATCH_SIZES.length - 1));
    expect(trialCount(speedSpace({ setting: 'auto', supported: true, vType: 'f16', threads: [2] }))).toBe(2 + (BATCH_SIZES.length - 1));
    expect(trialCount(speedSpace({ setting: 'auto', supported: true, vType: 'q8_0', threads: [2, 1] }))).toBe(1 + 1 + (BATCH_SIZES.length - 1));
  });

  it('keeps an explicit setting, and off where the architecture cannot run it', () => {
    expect(speedSpace({ setting: 'on', supported: true, vType: 'f16', threads: [2] }).flashAttention).toEqual([true]);
    expect(speedSpace({ setting: 'off', supported: true, vType: 'f16', threads: [2] }).flashAttention).toEqual([false]);
    expect(speedSpace({ setting: 'auto', supported: false, vType: 'f16', threads: [2] }).flashAttention).toEqual([false]);
  });

  it('never turns flash attention off for a quantized V, whatever the setting', () => {
    for (const vType of kvCacheTypes.filter((type) => type !== 'f16')) {
      for (const setting of ['auto', 'on', 'off'] as const) {
        for (const supported of [true, false]) {
          expect(speedSpace({ setting, supported, vType, threads: [4, 2] }).flashAttention, `${vType} ${setting} ${supported}`).toEqual([true]);
        }
      }
    }
  });

  it('drops duplicate and invalid thread counts, keeping one', () => {
    expect(speedSpace({ setting: 'auto', supported: true, vType: 'f16', threads: [4, 4, 0, -1, 2.5, 2] }).threads).toEqual([4, 2]);
    expect(speedSpace({ setting: 'auto', supported: true, vType: 'f16', threads: [] }).threads).toEqual([1]);
  });
});

describe('speedDepth', () => {
  it('reads as deep as the prefill budget allows at the probed speed, in steps of 64, within its bounds', () => {
    // 200 tok/s for 5 s is 1,000 tokens: 960 in steps of 64.
    expect(PREFILL_BUDGET_MS).toBe(5000);
    expect(speedDepth(200)).toBe(960);
    expect(speedDepth(150)).toBe(704);
    expect(speedDepth(10)).toBe(SPEED_MIN_DEPTH);
    expect(speedDepth(1e6)).toBe(SPEED_MAX_DEPTH);
    expect(speedDepth(null)).toBe(SPEED_MIN_DEPTH);
    expect(speedDepth(Number.NaN)).toBe(SPEED_MIN_DEPTH);
  });
});

describe('turnSeconds', () => {
  it('is the reference turn: its prompt read at the prefill speed plus its reply at the decode speed', () => {
    expect(turnSeconds(128, 256)).toBeCloseTo(SPEED_TURN.promptTokens / 128 + SPEED_TURN.replyTokens / 256, 12);
    // Decode weighs more: 10% faster decode beats 10% faster prefill at equal speeds.
    expect(turnSeconds(100, 110)).toBeLessThan(turnSeconds(110, 100));
  });
});

describe('chooseSpeed', () => {
  it('picks the faster decode over the faster prefill when the turn is shorter (flash attention off on a CPU)', async () => {
    // The figures measured with llama-bench on a Llama-3-8B KV shape at depth 2,048 (docs/decisions/speed-defaults.md).
    const { measure, asked } = fakeMeasure({
      'fa/2/512': { prefillTokPerS: 145, decodeTokPerS: 21 },
      'nofa/2/512': { prefillTokPerS: 101, decodeTokPerS: 33.6 },
      'nofa/1/512': { prefillTokPerS: 60, decodeTokPerS: 30 },
      'nofa/2/256': { prefillTokPerS: 99, decodeTokPerS: 33.6 },
    });
    const done: number[] = [];
    const result = await chooseSpeed(space, measure, (_trial, count, total) => done.push(count * 100 + total));
    expect(result.chosen).toEqual({ flashAttention: false, threads: 2, batchSize: 512 });
    // Staged: flash attention at the defaults, then threads with it off, then batch with 2 threads.
    // The thread count stayed, so flash attention needs no second look: the total drops by one.
    expect(asked).toEqual(['fa/2/512', 'nofa/2/512', 'nofa/1/512', 'nofa/2/256']);
    expect(done).toEqual([105, 205, 305, 404]);
    expect(result.trials.map((trial) => trial.turnSeconds)).toEqual([
      turnSeconds(145, 21),
      turnSeconds(101, 33.6),
      turnSeconds(60, 30),
      turnSeconds(99, 33.6),
    ]);
  });

  it('keeps flash attention on when prefill gains more than decode loses, and takes a faster thread count and batch', async () => {
    const { measure, asked } = fakeMeasure({
      'fa/2/512': { prefillTokPerS: 1000, decodeTokPerS: 50 },
      'nofa/2/512': { prefillTokPerS: 100, decodeTokPerS: 51 },
      'fa/1/512': { prefillTokPerS: 1000, decodeTokPerS: 60 },
      'nofa/1/512': { prefillTokPerS: 100, decodeTokPerS: 62 },
      'fa/1/256': { prefillTokPerS: 2000, decodeTokPerS: 60 },
    });
    const result = await chooseSpeed(space, measure);
    expect(asked).toEqual(['fa/2/512', 'nofa/2/512', 'fa/1/512', 'nofa/1/512', 'fa/1/256']);
    expect(result.chosen).toEqual({ flashAttention: true, threads: 1, batchSize: 256 });
  });

  it('looks at flash attention again when another thread count wins, and turns it off where that is faster there', async () => {
    // A small model on a 2-core machine: at 2 threads both settings crawl alike; at 1 thread flash attention costs decode 3×.
    const { measure, asked } = fakeMeasure({
      'fa/2/512': { prefillTokPerS: 9700, decodeTokPerS: 66 },
      'nofa/2/512': { prefillTokPerS: 5500, decodeTokPerS: 61 },
      'fa/1/512': { prefillTokPerS: 5500, decodeTokPerS: 130 },
      'nofa/1/512': { prefillTokPerS: 2300, decodeTokPerS: 420 },
      'nofa/1/256': { prefillTokPerS: 3200, decodeTokPerS: 390 },
    });
    const totals: number[] = [];
    const result = await chooseSpeed(space, measure, (_trial, _done, total) => totals.push(total));
    expect(asked).toEqual(['fa/2/512', 'nofa/2/512', 'fa/1/512', 'nofa/1/512', 'nofa/1/256']);
    expect(totals).toEqual([5, 5, 5, 5, 5]);
    expect(result.chosen).toEqual({ flashAttention: false, threads: 1, batchSize: 512 });
  });

  it('skips a candidate that fails and says why', async () => {
    const { measure } = fakeMeasure({
      'fa/2/512': { prefillTokPerS: 100, decodeTokPerS: 10 },
      'fa/2/256': { prefillTokPerS: 100, decodeTokPerS: 10 },
      'fa/1/512': { prefillTokPerS: 100, decodeTokPerS: 9 },
    });
    const result = await chooseSpeed(space, measure);
    expect(result.chosen).toEqual({ flashAttention: true, threads: 2, batchSize: 512 });
    const failed = result.trials.find((trial) => !trial.flashAttention);
    expect(failed).toMatchObject({ prefillTokPerS: null, decodeTokPerS: null, turnSeconds: null, error: 'no figure for nofa/2/512' });
  });

  it('chooses the defaults when nothing runs', async () => {
    const { measure } = fakeMeasure({});
    const result = await chooseSpeed(space, measure);
    expect(result.chosen).toEqual({ flashAttention: true, threads: 2, batchSize: BATCH_SIZES[0] });
    // The thread count stays the default, so flash attention gets no second look.
    expect(result.trials).toHaveLength(trialCount(space) - 1);
    expect(result.trials.every((trial) => trial.error !== undefined)).toBe(true);
  });

  it('never measures or chooses flash attention off for a quantized V, however fast it would be', async () => {
    const quantized = speedSpace({ setting: 'auto', supported: true, vType: 'q8_0', threads: [2, 1] });
    const { measure, asked } = fakeMeasure({
      'fa/2/512': { prefillTokPerS: 100, decodeTokPerS: 10 },
      'nofa/2/512': { prefillTokPerS: 1e6, decodeTokPerS: 1e6 },
      'fa/1/512': { prefillTokPerS: 100, decodeTokPerS: 11 },
      'fa/1/256': { prefillTokPerS: 90, decodeTokPerS: 11 },
    });
    const result = await chooseSpeed(quantized, measure);
    expect(asked.some((key) => key.startsWith('nofa'))).toBe(false);
    expect(result.chosen).toEqual({ flashAttention: true, threads: 1, batchSize: 512 });
  });
});

describe('fastest', () => {
  it('takes the lowest turn time, the earliest of equals, and ignores failures', () => {
    const a = trialOf({ flashAttention: true, threads: 1, batchSize: 512 }, { prefillTokPerS: 100, decodeTokPerS: 10 });
    const b = trialOf({ flashAttention: false, threads: 1, batchSize: 512 }, { prefillTokPerS: 100, decodeTokPerS: 10 });
    const failed = trialOf({ flashAttention: false, threads: 2, batchSize: 512 }, { error: 'refused' });
    expect(fastest([failed, a, b])).toBe(a);
    expect(fastest([failed])).toBeNull();
  });
});
