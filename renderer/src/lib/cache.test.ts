import { describe, expect, it } from 'vitest';
import type { CacheMemory } from '../contract.ts';
import { cacheSnapshot, cacheTurn, messageStats } from '../../../test/support/renderer/fixtures.ts';
import {
  cellsText,
  chatCacheText,
  codecText,
  compressionChoiceText,
  compressionLabels,
  compressionText,
  kvCompressionList,
  hitRatio,
  hitRatioText,
  memoryDeviceText,
  memoryLabel,
  memoryParts,
  memoryShares,
  memorySeries,
  msText,
  ratioText,
  stateTransferText,
  statsRows,
  turnSeries,
} from './cache.ts';
import { createRing } from './ring.ts';

const ram: CacheMemory = cacheSnapshot().memory!;

describe('hit ratio', () => {
  it('counts reused and restored tokens over all prompt tokens of the last 20 turns', () => {
    const turns = [
      cacheTurn('a', { tokensReused: 0, tokensPrefilled: 100 }),
      cacheTurn('b', { tokensReused: 100, tokensPrefilled: 50 }),
      cacheTurn('c', { tokensRestored: 100, tokensPrefilled: 50 }),
    ];
    expect(hitRatio(turns)).toEqual({ turns: 3, ratio: 200 / 400 });
    expect(hitRatioText(turns)).toBe('Hit ratio (last 3 turns): 50%');
    expect(hitRatioText(turns.slice(1))).toBe('Hit ratio (last 2 turns): 67%');
    expect(hitRatioText(turns.slice(2))).toBe('Hit ratio (last 1 turn): 67%');
    // The oldest turns drop out of the window.
    const many = [cacheTurn('old', { tokensPrefilled: 1000 }), ...Array.from({ length: 20 }, (_, i) => cacheTurn(`t${i}`, { tokensReused: 9, tokensPrefilled: 1 }))];
    expect(hitRatio(many)).toEqual({ turns: 20, ratio: 0.9 });
    expect(hitRatioText(many)).toBe('Hit ratio (last 20 turns): 90%');
  });

  it('says so without turns or without prompt tokens', () => {
    expect(hitRatioText([])).toBe('Hit ratio: no turns yet.');
    expect(hitRatio([cacheTurn('a', { tokensPrefilled: 0 })]).ratio).toBeNull();
    expect(hitRatioText([cacheTurn('a', { tokensPrefilled: 0 })])).toBe('Hit ratio (last 1 turn): no prompt tokens');
  });
});

describe('device memory', () => {
  it('splits RAM into weights, KV in use, unused KV, compute, other processes and free', () => {
    expect(memoryParts(ram).map((p) => [p.key, p.bytes])).toEqual([
      ['weights', 1e9],
      ['kvUsed', 100e6],
      ['kvUnused', 300e6],
      ['compute', 100e6],
      ['other', 16e9 - 8e9 - 1.5e9],
      ['free', 8e9],
    ]);
    expect(memoryLabel(ram)).toBe(
      'Weights 1.00 GB, KV in use 100 MB, KV allocated (unused) 300 MB, Compute 100 MB, Other processes 6.50 GB, Free 8.00 GB, of 16.0 GB RAM',
    );
    expect(memoryDeviceText(ram)).toBe('RAM · 16.0 GB');
  });

  it('leaves out what cannot be known: other processes without free, or when ours exceeds the rest', () => {
    expect(memoryParts({ ...ram, freeBytes: null }).map((p) => p.key)).toEqual(['weights', 'kvUsed', 'kvUnused', 'compute']);
    expect(memoryParts({ ...ram, freeBytes: 15.5e9 }).map((p) => p.key)).toEqual(['weights', 'kvUsed', 'kvUnused', 'compute', 'free']);
    // KV in use never exceeds what is allocated.
    expect(memoryParts({ ...ram, kvUsedBytes: 500e6 }).slice(1, 3).map((p) => p.bytes)).toEqual([400e6, 0]);
  });

  it('names VRAM and unified memory with the device and the Metal limit', () => {
    const vram: CacheMemory = { ...ram, kind: 'vram', deviceName: 'RTX 4070', capacityBytes: 12e9, freeBytes: 4e9 };
    expect(memoryDeviceText(vram)).toBe('VRAM · RTX 4070 · 12.0 GB');
    expect(memoryLabel(vram)).toMatch(/, of 12.0 GB VRAM$/);
    const unified: CacheMemory = { ...ram, kind: 'unified', deviceName: 'Apple M2', workingSetLimitBytes: 11.5e9 };
    expect(memoryDeviceText(unified)).toBe('Unified memory · Apple M2 · 16.0 GB · Metal limit 11.5 GB');
    expect(memoryLabel(unified)).toMatch(/, of 16.0 GB Unified memory$/);
  });

  it('places the parts on the bar, never past its end', () => {
    const shares = memoryShares(ram);
    expect(shares[0]).toEqual({ key: 'weights', start: 0, share: 1e9 / 16e9 });
    expect(shares[1]?.start).toBeCloseTo(1e9 / 16e9);
    const last = shares.at(-1);
    expect((last?.start ?? 0) + (last?.share ?? 0)).toBeCloseTo(1);
    // Free unknown and ours larger than the capacity: the parts fill the bar exactly.
    const over = memoryShares({ ...ram, capacityBytes: 1e9, freeBytes: null });
    expect(over.reduce((sum, p) => sum + p.share, 0)).toBeCloseTo(1);
  });
});

describe('the disk encoding', () => {
  it('names each compression, in the order Settings offers them', () => {
    expect(kvCompressionList.map((c) => compressionLabels[c])).toEqual(['Auto (recommended)', 'Off', 'Lossless', 'Lossy (F16 K/V only)']);
  });

  it("says what the engine writes new chunks with, and for auto why, with the figures", () => {
    const measured = { decodeBytesPerSec: 0.7e9, readBytesPerSec: 9.8e9 };
    expect(compressionChoiceText({ setting: 'auto', applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s', measured })).toBe(
      'In use: Off (auto: decoding 0.70 GB/s is slower than reading 9.8 GB/s)',
    );
    expect(compressionChoiceText({ setting: 'auto', applied: 'lossless', reason: 'decoding 3.1 GB/s keeps up with reading 2.0 GB/s.' })).toBe(
      'In use: Lossless (auto: decoding 3.1 GB/s keeps up with reading 2.0 GB/s)',
    );
    expect(compressionChoiceText({ setting: 'auto', applied: 'off' })).toBe('In use: Off (auto)');
    expect(compressionChoiceText({ setting: 'lossy', applied: 'lossy' })).toBe('In use: Lossy (F16 K/V only)');
    expect(compressionChoiceText(null)).toBeNull();
  });

  it('says how the loaded model moves its state, and nothing without one', () => {
    expect(stateTransferText({ mode: 'memory' })).toBe('State transfer: memory');
    expect(stateTransferText({ mode: 'file', reason: 'the memory bridge is not built yet' })).toBe('State transfer: file (the memory bridge is not built yet)');
    expect(stateTransferText({ mode: 'file', reason: 'HEARTH_STATE_TRANSFER=file.' })).toBe('State transfer: file (HEARTH_STATE_TRANSFER=file)');
    expect(stateTransferText({ mode: 'file' })).toBe('State transfer: file');
    expect(stateTransferText(null)).toBeNull();
  });

  it('says which codec runs, and nothing before the engine named it', () => {
    expect(codecText({ kernels: 'native' })).toBe('Codec: native');
    expect(codecText({ kernels: 'fallback', reason: 'the native addon is not built (npm run build:native)' })).toBe(
      'Codec: TypeScript fallback (the native addon is not built (npm run build:native))',
    );
    expect(codecText({ kernels: 'fallback', reason: 'dlopen failed.' })).toBe('Codec: TypeScript fallback (dlopen failed)');
    expect(codecText({ kernels: 'fallback' })).toBe('Codec: TypeScript fallback');
    expect(codecText(null)).toBeNull();
  });
});

describe('figures', () => {
  it('formats cells, ratios and milliseconds', () => {
    expect(cellsText(123, 4096)).toBe('123 / 4,096');
    expect(ratioText(1)).toBe('1.00×');
    expect(ratioText(Number.NaN)).toBe('—');
    expect(compressionText({ compressionRatio: 0.98, compression: 'off' })).toBe('0.98× (compression off)');
    expect(compressionText({ compressionRatio: 1.25, compression: 'lossless' })).toBe('1.25× (lossless)');
    expect(compressionText({ compressionRatio: 1.9, compression: 'lossy' })).toBe('1.90× (lossy)');
    expect(compressionText({ compressionRatio: 1, compression: null })).toBe('1.00×');
    expect(msText(12.6)).toBe('13');
    expect(msText(undefined)).toBe('—');
  });

  it('says what a chat has cached, and where', () => {
    expect(chatCacheText(undefined)).toBe('Cache: checking…');
    expect(chatCacheText({ chatId: 'c1', where: 'none', slot: null, tokensInMemory: 0, tokensOnDisk: 0, bytesOnDisk: 0 })).toBe('No cache');
    expect(chatCacheText({ chatId: 'c1', where: 'memory', slot: 0, tokensInMemory: 412, tokensOnDisk: 256, bytesOnDisk: 1.2e6 })).toBe(
      '412 tokens cached · memory · 1.20 MB on disk',
    );
    expect(chatCacheText({ chatId: 'c1', where: 'disk', slot: null, tokensInMemory: 0, tokensOnDisk: 1, bytesOnDisk: 900 })).toBe('1 token cached · disk · 900 B on disk');
    expect(chatCacheText({ chatId: 'c1', where: 'memory', slot: 0, tokensInMemory: 12, tokensOnDisk: 0, bytesOnDisk: 0 })).toBe('12 tokens cached · memory · not on disk');
  });

  it('lists every figure of a readout, the fallback reason only when there is one', () => {
    const rows = statsRows(messageStats({ tokensReused: 1200, restoreMs: 41.2, cacheSource: 'memory' }));
    expect(rows).toEqual([
      ['Reused', '1,200 tokens'],
      ['Restored', '0 tokens'],
      ['Prefilled', '10 tokens'],
      ['Generated', '5 tokens'],
      ['Time to first token', '35 ms'],
      ['Prefill', '—'],
      ['Restore', '41 ms'],
      ['Cache source', 'memory'],
    ]);
    const reread = statsRows(messageStats({ fallbackReason: 'its cache was forgotten, so its history was read again' }));
    expect(reread.at(-1)).toEqual(['Fallback reason', 'its cache was forgotten, so its history was read again']);
  });
});

describe('chart series', () => {
  it('memory: seconds and bytes from the ring, a gap where no model was loaded', () => {
    const ring = createRing<ReturnType<typeof cacheSnapshot>>(3);
    ring.push(cacheSnapshot({ at: 1000 }));
    ring.push(cacheSnapshot({ at: 1250, memory: null }));
    ring.push(cacheSnapshot({ at: 1500 }));
    ring.push(cacheSnapshot({ at: 1750 }));
    expect(memorySeries(ring)).toEqual([
      [1.25, 1.5, 1.75],
      [null, 100e6, 100e6],
      [null, 400e6, 400e6],
      [null, 1e9, 1e9],
    ]);
  });

  it('turns: stacked tops (all, reused + restored, reused) and TTFT', () => {
    const turns = [cacheTurn('a', { tokensReused: 10, tokensRestored: 5, tokensPrefilled: 3, ttftMs: 12.4 }), cacheTurn('b', { tokensPrefilled: 7, ttftMs: 40 })];
    expect(turnSeries(turns)).toEqual([
      [1, 2],
      [18, 7],
      [15, 0],
      [10, 0],
      [12, 40],
    ]);
  });
});
