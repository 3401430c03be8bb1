import { describe, expect, it } from 'vitest';
import { denseDistribution, klDivergence, QualityTally, qualityVerdict, topAgrees, topToken, verdictThresholds } from './quality-math.ts';

const dist = (...p: number[]) => Float32Array.from(p);

describe('klDivergence', () => {
  it('is 0 for identical distributions', () => {
    const p = dist(0.5, 0.25, 0.125, 0.125);
    expect(klDivergence(p, p)).toBe(0);
  });

  it('matches the closed form KL(P‖Q) = Σ p·ln(p/q), in nats, P the reference', () => {
    const p = dist(0.5, 0.5);
    const q = dist(0.9, 0.1);
    const expected = 0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1);
    expect(klDivergence(p, q)).toBeCloseTo(expected, 6);
    // Not symmetric: the reference's mass is what counts.
    expect(klDivergence(q, p)).toBeCloseTo(0.9 * Math.log(0.9 / 0.5) + 0.1 * Math.log(0.1 / 0.5), 6);
  });

  it('skips tokens the reference gives no mass and stays finite where Q rounds to 0', () => {
    expect(klDivergence(dist(1, 0), dist(0.5, 0.5))).toBeCloseTo(Math.log(2), 6);
    const capped = klDivergence(dist(0.5, 0.5), dist(1, 0));
    expect(Number.isFinite(capped)).toBe(true);
    expect(capped).toBeGreaterThan(10);
  });

  it('lumps tokens a top-k list leaves out into one rest outcome (a lower bound of the full KL)', () => {
    // Full: P = (0.6, 0.2, 0.1, 0.1), Q = (0.5, 0.3, 0.15, 0.05). Top-2 lists: the last two are lumped.
    const full = klDivergence(dist(0.6, 0.2, 0.1, 0.1), dist(0.5, 0.3, 0.15, 0.05));
    const lumped = klDivergence(dist(0.6, 0.2, Number.NaN, Number.NaN), dist(0.5, 0.3, Number.NaN, Number.NaN));
    const expected = 0.6 * Math.log(0.6 / 0.5) + 0.2 * Math.log(0.2 / 0.3) + 0.2 * Math.log(0.2 / 0.2);
    expect(lumped).toBeCloseTo(expected, 6);
    expect(lumped).toBeLessThanOrEqual(full);
    // A token only one side lists goes to the rest too.
    expect(klDivergence(dist(0.6, 0.4), dist(0.6, Number.NaN))).toBeCloseTo(0, 6);
  });

  it('never goes negative from float32 rounding', () => {
    const p = dist(1 / 3, 1 / 3, 1 / 3);
    const q = dist(1 / 3 + 1e-8, 1 / 3, 1 / 3 - 1e-8);
    expect(klDivergence(p, q)).toBeGreaterThanOrEqual(0);
  });
});

describe('denseDistribution', () => {
  it('places each probability at its token id and marks unlisted tokens NaN', () => {
    const dense = denseDistribution(new Map([[3, 0.7], [0, 0.3]]));
    expect(dense.length).toBe(4);
    expect(dense[0]).toBeCloseTo(0.3);
    expect(dense[3]).toBeCloseTo(0.7);
    expect(Number.isNaN(dense[1])).toBe(true);
  });
});

describe('top-1 agreement', () => {
  it('compares the most likely tokens', () => {
    expect(topToken(dist(0.1, 0.6, 0.3))).toBe(1);
    expect(topToken(dist(0.1, Number.NaN, 0.3))).toBe(2);
    expect(topToken(new Float32Array(0))).toBe(-1);
    expect(topAgrees(dist(0.1, 0.6, 0.3), dist(0.2, 0.5, 0.3))).toBe(true);
    expect(topAgrees(dist(0.1, 0.6, 0.3), dist(0.2, 0.3, 0.5))).toBe(false);
  });

  it('counts a pick among the reference exact ties as agreeing', () => {
    expect(topAgrees(dist(0.4, 0.4, 0.2), dist(0.3, 0.5, 0.2))).toBe(true);
  });
});

describe('QualityTally', () => {
  it('averages KL and agreement over positions', () => {
    const tally = new QualityTally();
    expect(tally.positions).toBe(0);
    expect(tally.meanKl).toBe(0);
    expect(tally.top1Agreement).toBe(1);
    tally.add(dist(0.5, 0.5), dist(0.5, 0.5));
    tally.add(dist(0.5, 0.5), dist(0.9, 0.1));
    tally.add(dist(0.8, 0.2), dist(0.3, 0.7));
    expect(tally.positions).toBe(3);
    const expected = (0 + klDivergence(dist(0.5, 0.5), dist(0.9, 0.1)) + klDivergence(dist(0.8, 0.2), dist(0.3, 0.7))) / 3;
    expect(tally.meanKl).toBeCloseTo(expected, 9);
    // Position 2: P's tie (0.5, 0.5) takes Q's 0 as agreeing; position 3 disagrees.
    expect(tally.top1Agreement).toBeCloseTo(2 / 3, 9);
  });
});

describe('qualityVerdict', () => {
  const { nearLossless, small } = verdictThresholds;

  it('puts the published anchors where the thresholds say (docs/decisions/kv-quality.md)', () => {
    expect(qualityVerdict(0.00098, 0.99)).toBe('near-lossless'); // q8_0/q8_0, PR 7412
    expect(qualityVerdict(0.0018, 0.99)).toBe('near-lossless'); // f16/q5_1, PR 7412
    expect(qualityVerdict(0.0038, 0.969)).toBe('small'); // byte model q4_0/q4_0 on Austen
    expect(qualityVerdict(0.02, 0.93)).toBe('noticeable'); // byte model q4_0/q4_0 on the calibration text
  });

  it('includes the boundaries and needs both numbers to pass', () => {
    expect(qualityVerdict(nearLossless.maxKl, nearLossless.minTop1)).toBe('near-lossless');
    expect(qualityVerdict(0, nearLossless.minTop1 - 0.01)).toBe('small');
    expect(qualityVerdict(small.maxKl, small.minTop1)).toBe('small');
    expect(qualityVerdict(0, small.minTop1 - 0.01)).toBe('noticeable');
    expect(qualityVerdict(small.maxKl * 1.01, 1)).toBe('noticeable');
  });
});
