import { describe, expect, it } from 'vitest';
import { tinyLlamaModel } from '../test/support/gguf-writer.ts';
import { KV_SHAPE_8B, kvShape8bF16BytesPerToken, kvShape8bOptions } from './kv-shape-8b.ts';
import { acceptanceLines, formatReport, type ResumeReport, type ResumeRow } from './resume-report.ts';

const row = (over: Partial<ResumeRow>): ResumeRow => ({
  model: 'test model',
  tokens: 16_000,
  pageCache: 'warm',
  kvType: 'f16/f16',
  flashAttention: true,
  threads: 1,
  compression: 'off',
  scratchDir: '/dev/shm/x',
  scratchFs: 'tmpfs',
  stateTransfer: 'memory',
  stateTransferReason: null,
  prefillMs: 7000,
  nativeRestoreMs: 10,
  storeRestoreMs: 20,
  readFloorMs: 5,
  setDataMs: 10,
  ttftMs: 300,
  liveTtftMs: 300,
  storeReadMs: 6,
  storeBytes: 16_000_000,
  nativeBytes: 16_000_000,
  turnWriteBytes: 200_000,
  fullStateBytes: 16_000_000,
  turnStoreBytes: 200_000,
  turnScratchBytes: 0,
  turnDeviceWriteBytes: 300_000,
  turnLimitBytes: 400_000,
  saveMs: 40,
  copyFloorMs: 5,
  scratchBytes: 0,
  savePeakRssDeltaBytes: 16_500_000,
  restorePeakRssDeltaBytes: 16_500_000,
  restoredStateBytes: 16_000_000,
  tokensRestored: 16_000,
  tailTokens: 128,
  tailBytes: 100_000,
  tailRereadMs: 100,
  firstTokenMatches: true,
  samples: { nativeRestoreMs: [], storeRestoreMs: [], readFloorMs: [], setDataMs: [], storeReadMs: [], ttftMs: [], tailRereadMs: [], copyFloorMs: [] },
  notes: [],
  ...over,
});

const GB = 1_060_000_000;
const shapeRow = (over: Partial<ResumeRow>): ResumeRow =>
  row({ model: KV_SHAPE_8B, tokens: 8000, threads: 2, scratchFs: 'ext4', fullStateBytes: GB, restoredStateBytes: GB, savePeakRssDeltaBytes: GB, restorePeakRssDeltaBytes: GB, ...over });

const checks = (lines: ReturnType<typeof acceptanceLines>, model: string) => lines.filter((l) => l.model === model).map((l) => `${l.pageCache ?? '-'} ${l.check}`);

describe('the resume benchmark acceptance lines', () => {
  it('are computed at each model’s own largest size: the turn and scale checks once per configuration, scale checks for kv-shape-8b only', () => {
    const rows = [
      row({ tokens: 1000 }),
      row({ pageCache: 'warm' }),
      row({ pageCache: 'cold' }),
      shapeRow({ tokens: 600 }),
      shapeRow({ pageCache: 'warm' }),
      shapeRow({ pageCache: 'cold' }),
    ];
    const lines = acceptanceLines(rows);
    expect(lines.every((l) => l.tokens === (l.model === KV_SHAPE_8B ? 8000 : 16_000))).toBe(true);
    const restore = ['storeRestoreMs ≤ 2 × readFloorMs + 10 ms', 'storeRestoreMs ≤ prefillMs / 10', 'storeRestoreMs ≤ 1.2 × (readFloorMs + setDataMs) + 5 ms'];
    const turn = '- turnWriteBytes ≤ 1.2 × (100 tokens’ KV + one chunk)';
    expect(checks(lines, 'test model')).toEqual([...restore.map((c) => `warm ${c}`), turn, ...restore.map((c) => `cold ${c}`)]);
    expect(checks(lines, KV_SHAPE_8B)).toEqual([
      ...restore.map((c) => `warm ${c}`),
      turn,
      '- scratchBytes = 0',
      '- saveMs ≤ 2 × copyFloorMs + 50 ms',
      '- savePeakRssDeltaBytes ≤ 1.1 × fullStateBytes',
      '- restorePeakRssDeltaBytes ≤ 1.1 × restored state',
      ...restore.map((c) => `cold ${c}`),
    ]);
    expect(lines.every((l) => l.pass === true)).toBe(true);
  });

  it('compare against their limits', () => {
    const line = (r: ResumeRow, check: string) => acceptanceLines([r]).find((l) => l.check.startsWith(check))!;
    // 1.2 × (5 + 10) + 5 = 23 ms.
    expect(line(row({ storeRestoreMs: 23 }), 'storeRestoreMs ≤ 1.2').pass).toBe(true);
    expect(line(row({ storeRestoreMs: 23.01 }), 'storeRestoreMs ≤ 1.2').pass).toBe(false);
    expect(line(shapeRow({ scratchBytes: 1 }), 'scratchBytes').pass).toBe(false);
    // 2 × 5 + 50 = 60 ms.
    expect(line(shapeRow({ saveMs: 60 }), 'saveMs').pass).toBe(true);
    expect(line(shapeRow({ saveMs: 61 }), 'saveMs').pass).toBe(false);
    expect(line(shapeRow({ savePeakRssDeltaBytes: 1.1 * GB + 1 }), 'savePeak').pass).toBe(false);
    expect(line(shapeRow({ restorePeakRssDeltaBytes: 1.1 * GB }), 'restorePeak').pass).toBe(true);
    expect(line(shapeRow({ restorePeakRssDeltaBytes: 1.1 * GB, restoredStateBytes: GB / 2 }), 'restorePeak').pass).toBe(false);
  });

  it('say "not measured" (never PASS) when a figure is missing, with the file transfer’s reason for set data', () => {
    const lines = acceptanceLines([shapeRow({ stateTransfer: 'file', stateTransferReason: 'HEARTH_STATE_TRANSFER=file is set', setDataMs: null, savePeakRssDeltaBytes: null })]);
    const setData = lines.find((l) => l.check.includes('setDataMs'))!;
    expect(setData.pass).toBeNull();
    expect(setData.detail).toBe('not measured: the state transfer is file (HEARTH_STATE_TRANSFER=file is set)');
    expect(lines.find((l) => l.check.startsWith('savePeak'))!.pass).toBeNull();
    const report = {
      rows: [shapeRow({ stateTransfer: 'file', stateTransferReason: 'HEARTH_STATE_TRANSFER=file is set', setDataMs: null })],
      machine: { cpu: 'cpu', cores: 2, threads: 1, threads8b: 2, threads8bSource: 'os.availableParallelism()', scratchDir8b: '/d/scratch', scratchFs8b: 'ext4', nodeLlamaCpp: '3.21.1', llamaCppRelease: 'v0.4.0', pageCache: ['warm'], reps: 5, compressionSetting: 'auto', compression: 'off', compressionReason: 'decoding is slower than reading', codec: { kernels: 'native' }, storeFs: 'ext4', storeDir: '/d', scratchFs: 'tmpfs', scratchDir: '/dev/shm/x' },
      date: '2026-01-01T00:00:00.000Z',
      acceptance: lines,
    } as unknown as ResumeReport;
    const text = formatReport(report);
    expect(text).toMatch(/^N\/A {3}kv-shape-8b f16\/f16 @ 8,000 \(warm\): storeRestoreMs ≤ 1\.2 × \(readFloorMs \+ setDataMs\) \+ 5 ms: not measured: the state transfer is file/m);
    expect(text).toContain('state transfer file for kv-shape-8b f16/f16: HEARTH_STATE_TRANSFER=file is set');
    expect(text).toContain('kv-shape-8b: 2 thread(s) (os.availableParallelism())');
    expect(text).toContain('store compression auto → off (decoding is slower than reading)');
    expect(text.split('\n')[0]).toContain('| state transfer |');
  });
});

describe('kv-shape-8b', () => {
  it('has Llama-3-8B’s KV shape: head dim 128, 8 KV heads (n_embd_k_gqa 1024), 128 KiB of f16 KV per token over 32 layers', () => {
    // One layer is enough to see the shapes the generator writes (all 32 are alike).
    const model = tinyLlamaModel({ ...kvShape8bOptions, layers: 1 });
    const meta = new Map(model.metadata.map(([key, value]) => [key, value.value]));
    expect(meta.get('llama.embedding_length')).toBe(1024);
    expect(meta.get('llama.attention.head_count')).toBe(8);
    expect(meta.get('llama.attention.head_count_kv')).toBe(8);
    expect(meta.get('llama.rope.dimension_count')).toBe(128);
    expect(meta.get('llama.feed_forward_length')).toBe(256);
    const k = model.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!;
    expect(k.dims).toEqual([1024, 1024]);
    expect(kvShape8bOptions.layers).toBe(32);
    expect(kvShape8bF16BytesPerToken).toBe(128 * 1024);
  });
});
