/**
 * The quality meter's arithmetic, free of llama.cpp so it can be tested alone: KL
 * divergence and top-1 agreement between two next-token distributions, their means over the
 * calibration text's positions, and the verdict.
 *
 * A distribution is dense: `p[token]` is the token's probability, or NaN when the source did not
 * list the token. quality.ts lists each distribution's top 4096 tokens: every token of a small
 * vocabulary (the KL is then exact), the head of a large one (tokens only one side lists are
 * lumped, see `klDivergence`).
 */
import type { KvQuality } from '../contract/index.ts';

/**
 * The smallest probability a term divides by. llama.cpp's softmax runs in float32, where
 * exp(−104) is already 0: a token that F16 gives some mass and the candidate rounds to 0 would
 * make the KL infinite. Flooring at 1e-30 caps such a term at p·69 nats, which still counts.
 */
const PROBABILITY_FLOOR = 1e-30;

/** Mass below this left outside the listed tokens is float32 rounding, not a missing tail. */
const REST_EPSILON = 1e-5;

/**
 * Verdict lines (mean KL in nats, and share of positions whose top token agrees), chosen from
 * llama.cpp's published KL table (PR 7412, 7B-class models) and a small trained byte-level model
 * (docs/decisions/kv-quality.md records both):
 * - near-lossless: KL ≤ 0.002 and top-1 ≥ 0.98. PR 7412 measured q8_0/q8_0 at 0.00098 and
 *   f16/q5_1 at 0.0018 over a noise floor of 0.00019: 0.002 takes in every pair it measured
 *   (all indistinguishable in use), with 2× headroom for q8_0/q8_0. 0.98 is the bar the
 *   benchmark holds q8_0/q8_0 to on a trained model.
 * - small: KL ≤ 0.01 and top-1 ≥ 0.95, five times the near-lossless line: the byte model's
 *   q4_0/q4_0 on held-out Austen (KL 0.0038, top-1 0.969) is here; the top token changes about
 *   once in thirty positions, mostly between near-equals.
 * - noticeable: anything worse. The same byte model's q4_0/q4_0 over the calibration text
 *   (KL 0.020, top-1 0.93: a greedy reply diverges within a dozen or so tokens) lands here:
 *   small models suffer most from Q4 KV.
 * Both numbers must pass: the KL is a mean, so a few badly broken positions can hide in it,
 * while top-1 shows them; and a flat distribution flips its top token at a tiny KL, which does
 * change what a greedy reply says.
 */
export const verdictThresholds = {
  nearLossless: { maxKl: 0.002, minTop1: 0.98 },
  small: { maxKl: 0.01, minTop1: 0.95 },
} as const;

/** Dense form of a token → probability map (node-llama-cpp's `probabilities`); unlisted tokens are NaN. */
export function denseDistribution(probabilities: ReadonlyMap<number, number>): Float32Array {
  let size = 0;
  for (const token of probabilities.keys()) if (token >= size) size = token + 1;
  const dense = new Float32Array(size).fill(Number.NaN);
  for (const [token, probability] of probabilities) dense[token] = probability;
  return dense;
}

/**
 * KL(P‖Q) in nats, P the reference (F16). Exact over the tokens both distributions list; every
 * other token is lumped into one "rest" outcome on each side (P's rest = 1 − its listed mass).
 * Lumping outcomes never raises a KL (log-sum inequality), so with top-k inputs this is a lower
 * bound; with full distributions (what quality.ts gets) it is exact.
 */
export function klDivergence(p: Float32Array, q: Float32Array): number {
  const n = Math.max(p.length, q.length);
  let sum = 0;
  let pListed = 0;
  let qListed = 0;
  for (let i = 0; i < n; i++) {
    const pi = i < p.length ? (p[i] as number) : Number.NaN;
    const qi = i < q.length ? (q[i] as number) : Number.NaN;
    if (Number.isNaN(pi) || Number.isNaN(qi)) continue;
    pListed += pi;
    qListed += qi;
    if (pi > 0) sum += pi * Math.log(pi / Math.max(qi, PROBABILITY_FLOOR));
  }
  const pRest = 1 - pListed;
  if (pRest > REST_EPSILON) sum += pRest * Math.log(pRest / Math.max(1 - qListed, PROBABILITY_FLOOR));
  // Float32 rounding can leave an identical pair a hair below zero.
  return Math.max(0, sum);
}

/** The most likely token (the first on a tie), or -1 for an empty distribution. */
export function topToken(p: Float32Array): number {
  let best = -1;
  let bestP = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    if (pi > bestP) {
      best = i;
      bestP = pi;
    }
  }
  return best;
}

/**
 * Whether Q's most likely token is also P's. Tie-aware: when P has several tokens at its top
 * probability, Q picking any of them agrees (the order among exact ties is not meaningful).
 */
export function topAgrees(p: Float32Array, q: Float32Array): boolean {
  const top = topToken(p);
  const candidate = topToken(q);
  if (top < 0 || candidate < 0) return false;
  return candidate === top || (candidate < p.length && (p[candidate] as number) >= (p[top] as number));
}

export function qualityVerdict(klDivergence: number, top1Agreement: number): KvQuality['verdict'] {
  const { nearLossless, small } = verdictThresholds;
  if (klDivergence <= nearLossless.maxKl && top1Agreement >= nearLossless.minTop1) return 'near-lossless';
  if (klDivergence <= small.maxKl && top1Agreement >= small.minTop1) return 'small';
  return 'noticeable';
}

/** Sums KL and top-1 agreement over positions, one reference/candidate pair at a time. */
export class QualityTally {
  #kl = 0;
  #agreed = 0;
  #positions = 0;

  add(reference: Float32Array, candidate: Float32Array): void {
    this.#kl += klDivergence(reference, candidate);
    if (topAgrees(reference, candidate)) this.#agreed++;
    this.#positions++;
  }

  get positions(): number {
    return this.#positions;
  }

  /** Mean KL(P‖Q) per position, nats; 0 before any position. */
  get meanKl(): number {
    return this.#positions === 0 ? 0 : this.#kl / this.#positions;
  }

  /** Share of positions whose top token agrees; 1 before any position. */
  get top1Agreement(): number {
    return this.#positions === 0 ? 1 : this.#agreed / this.#positions;
  }
}
