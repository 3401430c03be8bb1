import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { err, ok, type CacheSnapshot, type HearthEvent, type Result } from '../contract/index.ts';
import type { EngineMetrics, MemoryMetrics, SlotMetrics, StoreMetrics } from '../protocol.ts';
import { CacheViewSampler, cacheMemory, cacheStore, toCacheSnapshot } from './cache-view-sampler.ts';
import { defaultSettings } from './settings.ts';

const GB = 1024 ** 3;

function slot(index: number, cellsUsed: number, cellsCapacity: number, chatId: string | null = null): SlotMetrics {
  return { index, chatId, cellsUsed, cellsCapacity, state: 'idle', kType: 'q8_0', vType: 'q8_0', bytes: cellsUsed * 100 };
}

const twoSlots = [slot(0, 1000, 4096, 'a'), slot(1, 500, 4096)];

describe('cacheMemory', () => {
  it('a discrete GPU: VRAM is the capacity, and only the VRAM parts count', () => {
    const memory: MemoryMetrics = {
      device: { backend: 'cuda', gpuName: 'RTX 4090', vramTotalBytes: 24 * GB, vramFreeBytes: 10 * GB, unifiedMemory: false, ramTotalBytes: 64 * GB, ramFreeBytes: 30 * GB },
      gpuLayers: 33,
      weights: { ramBytes: 200_000_000, vramBytes: 4_000_000_000 },
      context: { ramBytes: 5_000_000, vramBytes: 1_000_000 },
      kvBytesPerCell: 100,
    };
    expect(cacheMemory(memory, twoSlots)).toEqual({
      kind: 'vram',
      deviceName: 'RTX 4090',
      capacityBytes: 24 * GB,
      freeBytes: 10 * GB,
      weightsBytes: 4_000_000_000,
      // 100 B × 8,192 cells = 819,200 of the context's 1,000,000 on the GPU; the rest is compute.
      kvAllocatedBytes: 819_200,
      kvUsedBytes: 150_000,
      computeBytes: 180_800,
    });
  });

  it("KV allocated is capped at the context's bytes on the device (a partial offload keeps some in RAM)", () => {
    const memory: MemoryMetrics = {
      device: { backend: 'vulkan', vramTotalBytes: 8 * GB, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * GB, ramFreeBytes: 4 * GB },
      gpuLayers: 10,
      weights: { ramBytes: 1000, vramBytes: 2000 },
      context: { ramBytes: 900_000, vramBytes: 300_000 },
      kvBytesPerCell: 100,
    };
    expect(cacheMemory(memory, twoSlots)).toMatchObject({
      kind: 'vram',
      deviceName: 'Vulkan GPU',
      freeBytes: null,
      kvAllocatedBytes: 300_000,
      kvUsedBytes: 150_000,
      computeBytes: 0,
    });
  });

  it("Apple silicon: unified memory is the capacity, Metal's limit is the working set, and both parts count", () => {
    const memory: MemoryMetrics = {
      device: { backend: 'metal', gpuName: 'Apple M3', vramTotalBytes: 12 * GB, vramFreeBytes: 11 * GB, unifiedMemory: true, ramTotalBytes: 16 * GB, ramFreeBytes: 6 * GB },
      gpuLayers: 33,
      weights: { ramBytes: 100, vramBytes: 4_000_000 },
      context: { ramBytes: 50_000, vramBytes: 1_000_000 },
      kvBytesPerCell: 100,
    };
    expect(cacheMemory(memory, twoSlots)).toEqual({
      kind: 'unified',
      deviceName: 'Apple M3',
      capacityBytes: 16 * GB,
      freeBytes: 6 * GB,
      workingSetLimitBytes: 12 * GB,
      weightsBytes: 4_000_100,
      kvAllocatedBytes: 819_200,
      kvUsedBytes: 150_000,
      computeBytes: 230_800,
    });
  });

  it('a CPU, or a GPU with no layer on it: RAM, with every part', () => {
    const cpu: MemoryMetrics = {
      device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * GB, ramFreeBytes: 8 * GB },
      gpuLayers: 0,
      weights: { ramBytes: 5_000_000, vramBytes: 0 },
      context: { ramBytes: 1_000_000, vramBytes: 0 },
      kvBytesPerCell: 100,
    };
    expect(cacheMemory(cpu, [slot(0, 10, 4096)])).toEqual({
      kind: 'ram',
      deviceName: 'RAM',
      capacityBytes: 16 * GB,
      freeBytes: 8 * GB,
      weightsBytes: 5_000_000,
      kvAllocatedBytes: 409_600,
      kvUsedBytes: 1000,
      computeBytes: 590_400,
    });
    const idleGpu: MemoryMetrics = {
      ...cpu,
      device: { backend: 'cuda', gpuName: 'RTX', vramTotalBytes: 8 * GB, vramFreeBytes: 7 * GB, unifiedMemory: false, ramTotalBytes: 16 * GB, ramFreeBytes: 8 * GB },
      weights: { ramBytes: 5_000_000, vramBytes: 1000 },
    };
    expect(cacheMemory(idleGpu, [slot(0, 10, 4096)])).toMatchObject({ kind: 'ram', deviceName: 'RAM', capacityBytes: 16 * GB, weightsBytes: 5_001_000 });
  });

  it('no model: null', () => {
    expect(cacheMemory(undefined, [])).toBeNull();
  });
});

const storeMetrics: StoreMetrics = {
  bytesOnDisk: 5000,
  storedBytes: 4000,
  rawBytes: 3900,
  chunkCount: 3,
  manifests: 2,
  logicalBytes: 6000,
  budgetBytes: 1,
  freeBytes: 70_000,
};

describe('cacheStore', () => {
  it("derives the ratios, and takes the budget and chunk size from the settings and persistence from the host's view", () => {
    const settings = { ...defaultSettings, kvBudgetBytes: 2 * GB, kvChunkTokens: 128 };
    expect(cacheStore(storeMetrics, settings, { persistence: 'on' })).toEqual({
      persistence: 'on',
      bytesOnDisk: 5000,
      chunkCount: 3,
      logicalBytes: 6000,
      budgetBytes: 2 * GB,
      freeDiskBytes: 70_000,
      chunkTokens: 128,
      compression: null,
      compressionChoice: null,
      codec: null,
      stateTransfer: null,
      storedBytes: 4000,
      rawBytes: 3900,
      manifests: 2,
      dedupRatio: 1.5,
      compressionRatio: 0.975,
    });
  });

  it('an empty store has ratios of 1; no store is null', () => {
    const empty = { ...storeMetrics, storedBytes: 0, rawBytes: 0, logicalBytes: 0 };
    expect(cacheStore(empty, defaultSettings, { persistence: 'paused' })).toMatchObject({ persistence: 'paused', dedupRatio: 1, compressionRatio: 1 });
    expect(cacheStore(undefined, defaultSettings, { persistence: 'off' })).toBeNull();
    const applied = { compression: { setting: 'lossy' as const, applied: 'lossy' as const }, codec: { kernels: 'native' as const } };
    expect(cacheStore(storeMetrics, defaultSettings, { persistence: 'on' }, applied)).toMatchObject({ compression: 'lossy', codec: { kernels: 'native' } });
  });
});

describe('toCacheSnapshot', () => {
  it('an engine that did not answer: no memory, no slots, no store', () => {
    expect(toCacheSnapshot({ metrics: null, settings: defaultSettings, kv: { persistence: 'on' }, seq: 4, at: 99 })).toEqual({
      at: 99,
      seq: 4,
      memory: null,
      slots: [],
      store: null,
    });
  });

  it('copies the slots', () => {
    const metrics: EngineMetrics = { kvCellsUsed: 1500, kvCellsCapacity: 8192, slots: twoSlots, kvStore: storeMetrics };
    const snapshot = toCacheSnapshot({ metrics, settings: defaultSettings, kv: { persistence: 'on' }, seq: 1, at: 5 });
    expect(snapshot.memory).toBeNull();
    expect(snapshot.slots).toEqual([
      { index: 0, chatId: 'a', cellsUsed: 1000, cellsCapacity: 4096, kType: 'q8_0', vType: 'q8_0', bytes: 100_000, state: 'idle' },
      { index: 1, chatId: null, cellsUsed: 500, cellsCapacity: 4096, kType: 'q8_0', vType: 'q8_0', bytes: 50_000, state: 'idle' },
    ]);
    expect(snapshot.store?.chunkCount).toBe(3);
    expect(snapshot.store).toMatchObject({ compression: null, compressionChoice: null, codec: null, stateTransfer: null });
    const choice = { setting: 'auto' as const, applied: 'off' as const, reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s' };
    const applied = { compression: choice, codec: { kernels: 'fallback' as const, reason: 'why' } };
    const withCodec = toCacheSnapshot({ metrics: { ...metrics, stateTransfer: { mode: 'file', reason: 'forced' } }, settings: defaultSettings, kv: { persistence: 'on' }, applied, seq: 2, at: 6 });
    expect(withCodec.store).toMatchObject({ compression: 'off', compressionChoice: choice, codec: { kernels: 'fallback', reason: 'why' }, stateTransfer: { mode: 'file', reason: 'forced' } });
  });
});

describe('CacheViewSampler', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const sample: EngineMetrics = { kvCellsUsed: 1, kvCellsCapacity: 4096, slots: [slot(0, 1, 4096)] };

  function sampler(metrics: (timeoutMs: number) => Promise<Result<EngineMetrics>> = async () => ok(sample)) {
    const ticks: CacheSnapshot[] = [];
    const requests: number[] = [];
    const m = new CacheViewSampler({
      metrics: (timeoutMs) => {
        requests.push(timeoutMs);
        return metrics(timeoutMs);
      },
      settings: () => defaultSettings,
      kvStatus: () => ({ persistence: 'on' }),
      emit: (event: HearthEvent) => {
        if (event.type === 'cache.tick') ticks.push(event.payload);
      },
    });
    return { m, ticks, requests };
  }

  it('samples at once and every 250 ms while leased, then stops when the lease runs out', async () => {
    const { m, ticks, requests } = sampler();
    expect(m.watch()).toEqual({ intervalMs: 250, leaseMs: 5000 });
    expect(m.watching).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ticks.map((t) => t.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(ticks.map((t) => t.at)).toEqual([1_000_000, 1_000_250, 1_000_500, 1_000_750, 1_001_000]);
    expect(requests.every((ms) => ms === 1000)).toBe(true);
    expect(ticks[0]?.slots).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(4000);
    expect(ticks).toHaveLength(20); // 0, 250, …, 4750: the tick at 5000 finds the lease over
    expect(m.watching).toBe(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(ticks).toHaveLength(20);
    expect(requests).toHaveLength(20);
  });

  it('a renewal extends the lease without a second timer', async () => {
    const { m, ticks } = sampler();
    m.watch();
    await vi.advanceTimersByTimeAsync(2500);
    m.watch(); // lease now ends at 7500
    await vi.advanceTimersByTimeAsync(4000);
    expect(m.watching).toBe(true);
    const at6500 = ticks.length;
    expect(at6500).toBe(27); // one per 250 ms from 0 to 6500: no doubled ticks
    await vi.advanceTimersByTimeAsync(2000);
    expect(m.watching).toBe(false);
    expect(ticks.length).toBe(30);
    // A lapsed lease starts again with the next watch, and seq goes on.
    m.watch();
    await vi.advanceTimersByTimeAsync(0);
    expect(ticks.at(-1)?.seq).toBe(31);
    m.dispose();
  });

  it('never overlaps requests: ticks are skipped while one is in flight', async () => {
    const pending: ((result: Result<EngineMetrics>) => void)[] = [];
    const { m, ticks, requests } = sampler(() => new Promise((resolve) => pending.push(resolve)));
    m.watch();
    await vi.advanceTimersByTimeAsync(1000);
    expect(requests).toHaveLength(1);
    expect(ticks).toHaveLength(0);
    pending.shift()?.(ok(sample));
    await vi.advanceTimersByTimeAsync(0);
    expect(ticks.map((t) => t.seq)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(250);
    expect(requests).toHaveLength(2);
    pending.shift()?.(err('ENGINE_UNAVAILABLE', 'restarting'));
    await vi.advanceTimersByTimeAsync(0);
    // An engine that cannot answer still gives a tick: the view shows it as empty, not frozen.
    expect(ticks.at(-1)).toMatchObject({ seq: 2, memory: null, slots: [], store: null });
    m.dispose();
  });

  it('a rejected request is a tick without figures; dispose stops everything', async () => {
    const { m, ticks } = sampler(() => Promise.reject(new Error('boom')));
    m.watch();
    await vi.advanceTimersByTimeAsync(0);
    expect(ticks).toEqual([{ at: 1_000_000, seq: 1, memory: null, slots: [], store: null }]);
    m.dispose();
    expect(m.watching).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    m.watch();
    await vi.advanceTimersByTimeAsync(1000);
    expect(ticks).toHaveLength(1);
  });
});
