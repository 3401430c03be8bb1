import { describe, expect, it } from 'vitest';
import { acceptance, formatKvReport, GENERATED, NOT_A_CHECK_WITHOUT_GPU, type KvReport, type KvRow } from './kv.ts';

const row = (over: Partial<KvRow>): KvRow => ({
  model: GENERATED,
  kvType: 'q8_0/q8_0',
  flashAttention: true,
  bytesPerToken: 1024,
  prefillTokPerS: 100,
  decodeTokPerS: 50,
  klVsF16: 0.001,
  top1VsF16: 0.99,
  qualityReference: false,
  plannedBytes: 1_000_000,
  measuredBytes: 1_000_000,
  notes: [],
  ...over,
});

const report = (rows: KvRow[], backend: string): KvReport => ({
  rows,
  fit: { contextTokens: 8192, devices: [], models: [], rows: [] },
  machine: { cpu: 'cpu', cores: 2, memoryBytes: 0, os: 'linux', node: 'v24', threads: 1, nodeLlamaCpp: '3.21.1', llamaCppRelease: 'b1', backend } as unknown as KvReport['machine'],
  settings: { contextTokens: 4096, prefillTokens: 512, decodeTokens: 64, qualityTokens: 256 },
  date: '2026-01-01T00:00:00.000Z',
  acceptance: acceptance(rows, backend),
});

describe('the kv benchmark report', () => {
  it('on the CPU, planned against measured memory is not a check: never a PASS, even when the figures agree', () => {
    const lines = acceptance([row({})], 'cpu');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.pass).toBeNull();
    expect(lines[0]!.detail).toContain(NOT_A_CHECK_WITHOUT_GPU);
    const text = formatKvReport(report([row({})], 'cpu'));
    expect(text).not.toMatch(/^PASS/m);
    expect(text).toMatch(/^N\/A {3}test model q8_0\/q8_0: plannedBytes within 10% of measuredBytes: not a check without a GPU/m);
    expect(text).toContain(`Planned and measured bytes: ${NOT_A_CHECK_WITHOUT_GPU}`);
  });

  it('on a GPU it is a check that passes or fails', () => {
    expect(acceptance([row({})], 'cuda')[0]!.pass).toBe(true);
    expect(acceptance([row({ plannedBytes: 800_000 })], 'cuda')[0]!.pass).toBe(false);
    expect(formatKvReport(report([row({ plannedBytes: 800_000 })], 'cuda'))).toMatch(/^FAIL {2}test model q8_0\/q8_0: plannedBytes within 10%/m);
    expect(formatKvReport(report([row({})], 'cuda'))).not.toContain(NOT_A_CHECK_WITHOUT_GPU);
  });

  it('f16/f16 is printed as the reference, with no KL 0 or top-1 1', () => {
    const text = formatKvReport(report([row({ kvType: 'f16/f16', klVsF16: null, top1VsF16: null, qualityReference: true })], 'cpu'));
    const line = text.split('\n').find((l) => l.startsWith('| test model | f16/f16 |'));
    expect(line).toBeDefined();
    expect(line!.split('|').map((c) => c.trim())).toEqual(expect.arrayContaining(['reference']));
    expect(line).not.toMatch(/\| 0 \|/);
    expect(line).not.toMatch(/1\.000/);
  });
});
