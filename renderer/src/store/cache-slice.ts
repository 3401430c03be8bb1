import type { HearthError, KvStoreInfo } from '../contract.ts';
import type { SliceCreator } from './types.ts';

/**
 * The disk KV store as the host last measured it (`kv.stats`). Fetched on demand (the Settings
 * screen opens, a save, the engine back after a restart), not streamed: issue 5's live Cache
 * view adds its own sampled series beside it.
 */
export interface CacheSlice {
  readonly kvStats: KvStoreInfo | null;
  /** The last `kv.stats` failed; the figures above (if any) are older. */
  readonly kvStatsError: HearthError | null;
  setKvStats(stats: KvStoreInfo | null, error?: HearthError | null): void;
}

export const createCacheSlice: SliceCreator<CacheSlice> = (set) => ({
  kvStats: null,
  kvStatsError: null,
  setKvStats: (stats, error = null) => set((s) => ({ kvStats: stats ?? s.kvStats, kvStatsError: error })),
});
