/** The speed shown for a download: an average over the last seconds, on a clock the test drives. */
import { describe, expect, it } from 'vitest';
import { SpeedMeter, etaSeconds, speedWindowMs } from './speed.ts';

describe('SpeedMeter', () => {
  it('averages over the window, following a change of speed within it', () => {
    const meter = new SpeedMeter();
    expect(meter.rate(0)).toBe(0);
    // 1 MB/s for 10 s, sampled every 50 ms.
    for (let t = 0; t <= 10_000; t += 50) meter.add(t, t * 1000);
    expect(meter.rate(10_000)).toBeCloseTo(1_000_000, -3);
    // Then 2 MB/s: after a whole window, the average is the new speed.
    for (let t = 10_050; t <= 10_000 + speedWindowMs; t += 50) meter.add(t, 10_000_000 + (t - 10_000) * 2000);
    expect(meter.rate(10_000 + speedWindowMs)).toBeCloseTo(2_000_000, -4);
  });

  it('falls during a stall, to 0 once a whole window passed without bytes', () => {
    const meter = new SpeedMeter();
    for (let t = 0; t <= 5000; t += 100) meter.add(t, t * 100);
    const flowing = meter.rate(5000);
    expect(meter.rate(7000)).toBeLessThan(flowing);
    expect(meter.rate(5000 + speedWindowMs)).toBe(0);
  });

  it('starts over when the bytes go back (a download restarted from zero) or on reset', () => {
    const meter = new SpeedMeter();
    meter.add(0, 0);
    meter.add(1000, 5_000_000);
    meter.add(1100, 0);
    expect(meter.rate(1100)).toBe(0);
    meter.add(2100, 1000);
    expect(meter.rate(2100)).toBeCloseTo(1000, 0);
    meter.reset();
    expect(meter.rate(2200)).toBe(0);
  });
});

describe('etaSeconds', () => {
  it('is the rest at the current speed, rounded up, and unknown without a speed', () => {
    expect(etaSeconds(1500, 1000)).toBe(2);
    expect(etaSeconds(0, 1000)).toBe(0);
    expect(etaSeconds(1500, 0)).toBeNull();
  });
});
