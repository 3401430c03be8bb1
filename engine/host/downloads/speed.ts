/**
 * A download's speed, averaged over the last few seconds: long enough that the figure does not
 * jump with every chunk, short enough that it follows a real change (another app taking the
 * bandwidth) within seconds. Times are milliseconds from any monotonic clock.
 */

/** How far back the average reaches. */
export const speedWindowMs = 5000;
/** Samples closer together than this are merged: chunks arrive far more often. */
const sampleSpacingMs = 100;

export class SpeedMeter {
  /** (time, bytes so far) samples, oldest first; the first may be older than the window (the baseline). */
  readonly #samples: { t: number; bytes: number }[] = [];

  /** Records that `bytes` have arrived in total at `t`. Fewer bytes than before (a restart from zero) starts over. */
  add(t: number, bytes: number): void {
    const last = this.#samples.at(-1);
    if (last && bytes < last.bytes) this.#samples.length = 0;
    const latest = this.#samples.at(-1);
    if (latest && this.#samples.length > 1 && t - (this.#samples.at(-2)?.t ?? t) < sampleSpacingMs) {
      latest.t = t;
      latest.bytes = bytes;
    } else {
      this.#samples.push({ t, bytes });
    }
    // Keep one sample at or before the window's start as the baseline.
    while (this.#samples.length > 2 && (this.#samples[1] as { t: number }).t <= t - speedWindowMs) this.#samples.shift();
  }

  /** Bytes per second over the window ending at `t`; 0 until two samples are apart in time. */
  rate(t: number): number {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last === first) return 0;
    // Nothing for a whole window: the speed is nil, not the average of long ago.
    if (last.t <= t - speedWindowMs) return 0;
    // A stall lowers the figure: the span runs to now, not to the last chunk.
    const span = Math.max(t, last.t) - first.t;
    if (span <= 0) return 0;
    return ((last.bytes - first.bytes) * 1000) / span;
  }

  /** Forgets every sample (a pause: the next run measures afresh). */
  reset(): void {
    this.#samples.length = 0;
  }
}

/** Seconds left at `bytesPerSecond`; null when the speed or the size is unknown. */
export function etaSeconds(remainingBytes: number, bytesPerSecond: number): number | null {
  if (bytesPerSecond <= 0 || remainingBytes < 0) return null;
  return Math.ceil(remainingBytes / bytesPerSecond);
}
