import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { err, ok, type KvStatus } from '../contract/index.ts';
import type { EngineMetrics, StoreMetrics } from '../protocol.ts';
import { freeDiskBytes } from './disk.ts';
import { appliedCompression, readKvStats, type KvStatsDeps } from './kv-stats.ts';
import { defaultSettings } from './settings.ts';

const store: StoreMetrics = {
  bytesOnDisk: 1_200_000,
  storedBytes: 1_150_000,
  rawBytes: 1_100_000,
  chunkCount: 7,
  manifests: 3,
  logicalBytes: 2_000_000,
  budgetBytes: 5 * 1024 ** 3,
  freeBytes: 123,
};

function deps(extra: Partial<KvStatsDeps> & { kv?: KvStatus; metrics?: KvStatsDeps['metrics'] } = {}): KvStatsDeps {
  return {
    metrics: async () => ok<EngineMetrics>({ kvCellsUsed: 0, kvCellsCapacity: 0, slots: [], kvStore: store }),
    settings: () => ({ ...defaultSettings, kvBudgetBytes: 5 * 1024 ** 3, kvChunkTokens: 128 }),
    kvStatus: () => extra.kv ?? { persistence: 'on' },
    diskPaths: ['/store/kv', '/store'],
    statfs: async () => ({ bavail: 1000n, bsize: 4096n }),
    ...extra,
  };
}

describe('readKvStats', () => {
  it('takes the store from the engine, the budget and chunk size from the settings, and the free disk from statfs', async () => {
    expect(await readKvStats(deps())).toEqual({
      persistence: 'on',
      bytesOnDisk: 1_200_000,
      chunkCount: 7,
      logicalBytes: 2_000_000,
      budgetBytes: 5 * 1024 ** 3,
      freeDiskBytes: 4_096_000,
      chunkTokens: 128,
      // `auto` (the default) is only known once an engine resolved it.
      compression: null,
      compressionChoice: null,
      codec: null,
      stateTransfer: null,
    });
  });

  it("shows the running engine's compression and codec once one answered init, the setting's compression before", async () => {
    const settings = () => ({ ...defaultSettings, kvCompression: 'off' as const });
    expect(await readKvStats(deps({ settings }))).toMatchObject({ compression: 'off', compressionChoice: null, codec: null });
    expect(await readKvStats(deps({ settings, applied: () => null }))).toMatchObject({ compression: 'off', codec: null });
    const applied = () => ({ compression: { setting: 'lossy' as const, applied: 'lossy' as const }, codec: { kernels: 'fallback' as const, reason: 'not built' } });
    expect(await readKvStats(deps({ settings, applied }))).toMatchObject({
      compression: 'lossy',
      compressionChoice: { setting: 'lossy', applied: 'lossy' },
      codec: { kernels: 'fallback', reason: 'not built' },
    });
    // An engine that is down still shows the codec it last named.
    const down = await readKvStats(deps({ applied, metrics: async () => err('ENGINE_UNAVAILABLE', 'down') }));
    expect(down).toMatchObject({ persistence: 'paused', compression: 'lossy', codec: { kernels: 'fallback' } });
  });

  it("shows what `auto` chose and why, as the engine answered it", async () => {
    const choice = { setting: 'auto' as const, applied: 'off' as const, reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s' };
    const stats = await readKvStats(deps({ applied: () => ({ compression: choice, codec: { kernels: 'native' } }) }));
    expect(stats).toMatchObject({ compression: 'off', compressionChoice: choice });
  });

  it("passes on the loaded model's state transfer, and drops one that is not well formed", async () => {
    const sample = (stateTransfer: unknown) => async () => ok({ kvCellsUsed: 0, kvCellsCapacity: 0, slots: [], kvStore: store, stateTransfer } as EngineMetrics);
    expect((await readKvStats(deps({ metrics: sample({ mode: 'memory' }) }))).stateTransfer).toEqual({ mode: 'memory' });
    expect((await readKvStats(deps({ metrics: sample({ mode: 'file', reason: 'forced' }) }))).stateTransfer).toEqual({ mode: 'file', reason: 'forced' });
    expect((await readKvStats(deps({ metrics: sample({ mode: 'pipe' }) }))).stateTransfer).toBeNull();
    expect((await readKvStats(deps({ metrics: sample({ mode: 'file', reason: 'x'.repeat(501) }) }))).stateTransfer).toBeNull();
    expect((await readKvStats(deps({ metrics: sample(undefined) }))).stateTransfer).toBeNull();
    expect((await readKvStats(deps({ metrics: async () => err('ENGINE_UNAVAILABLE', 'down') }))).stateTransfer).toBeNull();
  });

  it('an engine that is down shows zeros, and says it is not persisting now', async () => {
    const down = await readKvStats(deps({ metrics: async () => err('ENGINE_UNAVAILABLE', 'The engine is restarting.') }));
    expect(down).toMatchObject({ persistence: 'paused', bytesOnDisk: 0, chunkCount: 0, logicalBytes: 0, budgetBytes: 5 * 1024 ** 3 });
    const threw = await readKvStats(deps({ metrics: () => Promise.reject(new Error('boom')) }));
    expect(threw).toMatchObject({ persistence: 'paused', bytesOnDisk: 0 });
  });

  it('persistence off or paused is passed on as it is, with zeros when the engine has no store', async () => {
    const noStore = async () => ok<EngineMetrics>({ kvCellsUsed: 1, kvCellsCapacity: 2, slots: [] });
    expect(await readKvStats(deps({ kv: { persistence: 'off' }, metrics: noStore }))).toMatchObject({ persistence: 'off', bytesOnDisk: 0, chunkCount: 0 });
    const paused: KvStatus = { persistence: 'paused', reason: { code: 'DISK_FULL', message: 'full' } };
    // A paused store still has its files: their size is shown.
    expect(await readKvStats(deps({ kv: paused }))).toMatchObject({ persistence: 'paused', bytesOnDisk: 1_200_000 });
  });
});

describe('appliedCompression', () => {
  it("takes the engine's answer for the setting it was sent", () => {
    const measured = { decodeBytesPerSec: 7e8, readBytesPerSec: 9.8e9 };
    const choice = { setting: 'auto', applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s', measured } as const;
    expect(appliedCompression('auto', choice)).toEqual(choice);
    expect(appliedCompression('lossless', { setting: 'lossless', applied: 'lossless' })).toEqual({ setting: 'lossless', applied: 'lossless' });
  });

  it('falls back to what the host knows when the answer is missing, malformed or for another setting', () => {
    expect(appliedCompression('lossless', undefined)).toEqual({ setting: 'lossless', applied: 'lossless' });
    expect(appliedCompression('off', { setting: 'auto', applied: 'lossless' })).toEqual({ setting: 'off', applied: 'off' });
    expect(appliedCompression('lossy', { setting: 'lossy', applied: 'zip' } as never)).toEqual({ setting: 'lossy', applied: 'lossy' });
    // For `auto` only the engine knows.
    expect(appliedCompression('auto', undefined)).toBeNull();
    expect(appliedCompression('auto', { setting: 'auto', applied: 'off', measured: { decodeBytesPerSec: -1, readBytesPerSec: 1 } })).toBeNull();
  });
});

describe('readKvStats free disk', () => {
  it("falls back to the engine's figure when statfs fails here", async () => {
    const stats = await readKvStats(deps({ statfs: async () => Promise.reject(new Error('ENOSYS')) }));
    expect(stats.freeDiskBytes).toBe(123);
    const none = await readKvStats(deps({ statfs: async () => Promise.reject(new Error('ENOSYS')), metrics: async () => err('ENGINE_UNAVAILABLE', 'down') }));
    expect(none.freeDiskBytes).toBeNull();
  });
});

describe('freeDiskBytes', () => {
  it('falls back to the next path, then to null', async () => {
    const seen: string[] = [];
    const stat = async (dir: string) => {
      seen.push(dir);
      if (dir === '/store/kv') throw Object.assign(new Error('no such dir'), { code: 'ENOENT' });
      return { bavail: 10, bsize: 512 };
    };
    expect(await freeDiskBytes(['/store/kv', '/store'], stat)).toBe(5120);
    expect(seen).toEqual(['/store/kv', '/store']);
    expect(await freeDiskBytes(['/a', '/b'], async () => Promise.reject(new Error('ENOSYS')))).toBeNull();
  });

  it('reads a real disk', async () => {
    const free = await freeDiskBytes([path.join(os.tmpdir(), 'no-such-folder-for-hearth'), os.tmpdir()]);
    expect(free).toBeTypeOf('number');
    expect(free).toBeGreaterThan(0);
  });
});
