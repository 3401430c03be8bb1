import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../contract.ts';
import { cpuPlan, planRow as row } from '../../../test/support/renderer/fixtures.ts';
import {
  agreementText,
  chosenLine,
  chosenPair,
  deviceLine,
  findRow,
  fitText,
  isQuantized,
  klText,
  loadedKvText,
  longestText,
  maxContextText,
  memoryText,
  planContextText,
} from './kv.ts';

describe('KV words and figures', () => {
  it('knows which types are quantized', () => {
    expect(isQuantized('f16')).toBe(false);
    expect(isQuantized('auto')).toBe(false);
    expect(isQuantized('q8_0')).toBe(true);
    expect(isQuantized('iq4_nl')).toBe(true);
  });

  it('the device line: CPU with RAM, a GPU with VRAM, Apple with what Metal may use', () => {
    expect(deviceLine(cpuPlan().device)).toBe('CPU · RAM 8.00 GB free of 16.0 GB');
    expect(
      deviceLine({ backend: 'cuda', gpuName: 'RTX 4070', vramTotalBytes: 8e9, vramFreeBytes: 7.1e9, unifiedMemory: false, ramTotalBytes: 32e9, ramFreeBytes: 20e9 }),
    ).toBe('CUDA (RTX 4070) · VRAM 7.10 GB free of 8.00 GB · RAM 20.0 GB free of 32.0 GB');
    expect(deviceLine({ backend: 'metal', vramTotalBytes: 10.7e9, vramFreeBytes: null, unifiedMemory: true, ramTotalBytes: 16e9, ramFreeBytes: 6e9 })).toBe(
      'Metal · unified memory, Metal may use 10.7 GB · RAM 6.00 GB free of 16.0 GB',
    );
  });

  it('longest contexts and fits', () => {
    expect(maxContextText(null)).toBe('—');
    expect(maxContextText(0)).toBe('weights do not fit');
    expect(maxContextText(131072)).toBe('131,072');
    expect(fitText(row('f16', 'f16'))).toBe('fits');
    expect(fitText(row('f16', 'f16', { fits: false }))).toBe('does not fit');
    expect(fitText(row('q4_0', 'q4_0', { refused: 'no' }))).toBe('refused: no');
    expect(planContextText({ contextSize: 4096, slots: 1 })).toBe('4,096 tokens');
    expect(planContextText({ contextSize: 8192, slots: 2 })).toBe('8,192 tokens × 2 slots');
  });

  it('the chosen pair: fixed, both auto (the planner pick), or one side auto (the best type that fits)', () => {
    const plan = cpuPlan();
    expect(chosenPair(plan, 'q8_0', 'q8_0')).toEqual({ kType: 'q8_0', vType: 'q8_0' });
    expect(chosenPair(plan, 'auto', 'auto')).toEqual({ kType: 'f16', vType: 'f16' });
    expect(chosenPair(cpuPlan({ auto: null }), 'auto', 'auto')).toBeNull();
    expect(chosenPair(plan, 'f16', 'auto')).toEqual({ kType: 'f16', vType: 'f16' });
    expect(chosenPair(plan, 'auto', 'q8_0')).toEqual({ kType: 'f16', vType: 'q8_0' });
    const tight = cpuPlan({ rows: plan.rows.map((r) => (r.kType === 'f16' ? { ...r, fits: false } : r)) });
    expect(chosenPair(tight, 'auto', 'q8_0')).toEqual({ kType: 'q8_0', vType: 'q8_0' });
    // A refused pair is never auto's answer.
    expect(chosenPair(tight, 'auto', 'q4_0')).toBeNull();
  });

  it("the planner's figure for the chosen pair", () => {
    const plan = cpuPlan();
    expect(chosenLine(plan, findRow(plan, { kType: 'q8_0', vType: 'q8_0' }), false)).toBe('q8_0 / q8_0 at 4,096 tokens: KV 2.23 MB, total 4.00 MB. Fits.');
    expect(chosenLine(plan, findRow(plan, plan.auto), true)).toBe('Auto picks f16 / f16 at 4,096 tokens: KV 4.19 MB, total 6.00 MB. Fits.');
    expect(chosenLine(plan, findRow(plan, { kType: 'q4_0', vType: 'q4_0' }), false)).toMatch(/Refused: the head size 48/);
    const tight = row('f16', 'f16', { fits: false, maxContextPartial: 2048 });
    expect(chosenLine(plan, tight, false)).toMatch(/Does not fit: the longest context that fits is 2,048 tokens\.$/);
    expect(chosenLine(plan, undefined, true)).toBe('Auto finds no K/V pair that fits this context.');
    expect(chosenLine(plan, findRow(plan, { kType: 'q5_0', vType: 'q5_1' }), false)).toBe('The planner has no row for this pair.');
  });

  it('what the loaded context uses, and planned against measured memory', () => {
    const info: ModelInfo = { path: '/m.gguf', name: 'm', sizeBytes: 1, architecture: 'llama', trainedContextLength: 4096, contextSize: 4096, layerCount: 4 };
    expect(loadedKvText(info)).toBeNull();
    expect(loadedKvText({ ...info, kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true, gpuLayers: 0 })).toBe('q8_0 / q8_0, flash attention on, 0 GPU layers');
    expect(loadedKvText({ ...info, kvType: { k: 'f16', v: 'f16' }, gpuLayers: 1 })).toBe('f16 / f16, 1 GPU layer');
    expect(memoryText({ plannedBytes: 2_000_000, measuredBytes: 2_080_000 })).toBe('planned 2.00 MB · measured 2.08 MB (+4%)');
    expect(memoryText({ plannedBytes: 2_000_000, measuredBytes: 1_900_000 })).toBe('planned 2.00 MB · measured 1.90 MB (-5%)');
    expect(memoryText({ plannedBytes: 0, measuredBytes: 5 })).toBe('planned 0 B · measured 5 B');
    // On the CPU both figures are llama.cpp's own sizes: no agreement is claimed.
    expect(memoryText({ plannedBytes: 2_000_000, measuredBytes: 2_000_000 }, 0)).toBe('planned 2.00 MB · measured 2.00 MB (not a check without a GPU)');
    expect(memoryText({ plannedBytes: 2_000_000, measuredBytes: 2_080_000 }, 33)).toBe('planned 2.00 MB · measured 2.08 MB (+4%)');
  });

  it('quality figures: KL with two significant digits, never exponent form; agreement with one decimal', () => {
    expect(klText(0.00019)).toBe('0.00019');
    expect(klText(0.00098)).toBe('0.00098');
    expect(klText(0.0018)).toBe('0.0018');
    expect(klText(0.5)).toBe('0.50');
    expect(klText(1.234)).toBe('1.2');
    expect(klText(12.3)).toBe('12');
    expect(klText(0)).toBe('0');
    expect(klText(Number.NaN)).toBe('?');
    expect(agreementText(1)).toBe('100%');
    expect(agreementText(0.9871)).toBe('98.7%');
    expect(agreementText(0)).toBe('0.0%');
  });

  it('says the longest context in one cell: in RAM without a GPU, full and partial with one, or why refused', () => {
    const cpu = cpuPlan().device;
    const gpu = { ...cpu, backend: 'cuda' as const, vramTotalBytes: 8e9, vramFreeBytes: 7e9 };
    expect(longestText(row('f16', 'f16', { maxContextPartial: 131_072 }), cpu)).toBe('in RAM 131,072');
    expect(longestText(row('f16', 'f16', { maxContextFullGpu: 32_768, maxContextPartial: 65_536 }), gpu)).toBe('full GPU 32,768 · partial 65,536');
    expect(longestText(row('f16', 'f16', { maxContextFullGpu: 0, maxContextPartial: 4096 }), gpu)).toBe('full GPU weights do not fit · partial 4,096');
    expect(longestText(row('q4_0', 'q4_0', { refused: 'the head size 48 is not a multiple of 32' }), cpu)).toBe('refused: the head size 48 is not a multiple of 32');
  });
});
