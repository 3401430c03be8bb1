import { describe, expect, it } from 'vitest';
import type { SpeedTrial } from '../contract.ts';
import {
  chosenTrialIndex,
  durationText,
  loadProgressBar,
  loadProgressText,
  measuringFraction,
  measuringText,
  sameSettings,
  secondsText,
  settingsText,
  speedScoreText,
  tokPerSText,
} from './speed.ts';

const trial = (flashAttention: boolean, threads: number, batchSize: number, turnSeconds: number | null): SpeedTrial => ({
  flashAttention,
  threads,
  batchSize,
  prefillTokPerS: turnSeconds === null ? null : 100,
  decodeTokPerS: turnSeconds === null ? null : 10,
  turnSeconds,
});

describe('speed words and figures', () => {
  it('tokens per second: one decimal below 100, whole and grouped above, a dash when not measured', () => {
    expect(tokPerSText(41.234)).toBe('41.2');
    expect(tokPerSText(0.46)).toBe('0.5');
    expect(tokPerSText(99.94)).toBe('99.9');
    expect(tokPerSText(1234.5)).toBe('1,235');
    expect(tokPerSText(null)).toBe('—');
    expect(tokPerSText(Number.NaN)).toBe('—');
  });

  it('turn seconds and how long a measurement took', () => {
    expect(secondsText(3.8449)).toBe('3.84 s');
    expect(secondsText(12.53)).toBe('12.5 s');
    expect(secondsText(1840.2)).toBe('1,840 s');
    expect(secondsText(null)).toBe('—');
    expect(durationText(850)).toBe('850 ms');
    expect(durationText(42_300)).toBe('42 s');
    expect(durationText(185_000)).toBe('3 min 5 s');
    expect(durationText(120_000)).toBe('2 min');
  });

  it('the settings in words', () => {
    expect(settingsText({ flashAttention: false, threads: 2, batchSize: 512 })).toBe('Flash attention off · 2 threads · batch 512');
    expect(settingsText({ flashAttention: true, threads: 1, batchSize: 2048 })).toBe('Flash attention on · 1 thread · batch 2,048');
  });

  it('says how the choice is scored, from the contract’s reference turn', () => {
    expect(speedScoreText).toBe('The settings chosen are those with the lowest time for a reference turn: reading a prompt of 128 tokens and writing a reply of 256 tokens.');
  });

  it('finds the chosen trial: the first that ran with the chosen settings, not a failed twin', () => {
    const trials = [trial(true, 2, 512, null), trial(false, 2, 512, 4.1), trial(true, 2, 512, 3.2), trial(false, 4, 512, 3.9)];
    expect(chosenTrialIndex(trials, { flashAttention: true, threads: 2, batchSize: 512 })).toBe(2);
    expect(chosenTrialIndex(trials, { flashAttention: false, threads: 4, batchSize: 512 })).toBe(3);
    expect(chosenTrialIndex(trials, { flashAttention: false, threads: 8, batchSize: 512 })).toBe(-1);
    expect(sameSettings(trials[0] ?? trial(false, 0, 0, null), { flashAttention: true, threads: 2, batchSize: 512 })).toBe(true);
  });

  it('a loading model: the measurement under way replaces the percent, and drives the bar', () => {
    expect(measuringText({ done: 3, total: 12 })).toBe('Measuring speed on this computer (3 of 12)…');
    expect(measuringFraction({ done: 3, total: 12 })).toBe(0.25);
    expect(measuringFraction({ done: 0, total: 0 })).toBe(0);
    expect(loadProgressText({ progress: 0.42 })).toBe('42%');
    expect(loadProgressText({ progress: 1, measuring: { done: 5, total: 8 } })).toBe('Measuring speed on this computer (5 of 8)…');
    expect(loadProgressBar({ progress: 0.42 })).toEqual({ label: 'Model loading progress', value: 0.42 });
    expect(loadProgressBar({ progress: 1, measuring: { done: 2, total: 8 } })).toEqual({ label: 'Speed measurement progress', value: 0.25 });
  });
});
