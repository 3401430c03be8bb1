/**
 * `kv.stats`: the disk KV store's size next to its budget and the free disk (the budget is a
 * setting, shown beside the free disk). The store's figures come from the engine
 * process, which owns the store; the budget and chunk size from the settings; the free disk from
 * the file system the store lives on.
 */
import {
  kvCompressionChoiceSchema,
  kvStateTransferSchema,
  type KvCodecInfo,
  type KvCompressionChoice,
  type KvCompressionSetting,
  type KvStateTransfer,
  type KvStatus,
  type KvStoreInfo,
  type Result,
  type Settings,
} from '../contract/index.ts';
import type { EngineMetrics, InitOutput, StoreMetrics } from '../protocol.ts';
import { freeDiskBytes, type StatFs } from './disk.ts';

/**
 * The running engine's disk encoding: how it resolved the compression its `init` carried, and
 * the codec its answer named. A queued settings change does not show here until the engine
 * restarts with it.
 */
export interface AppliedKvCodec {
  readonly compression: KvCompressionChoice;
  readonly codec: KvCodecInfo;
}

/**
 * The engine's `init` answer about the compression, checked (it comes from another process): a
 * choice that does not parse, or answers another setting than the one sent, is replaced by what
 * the host knows. A fixed setting is what the engine applies; for `auto` the host cannot know
 * (null then).
 */
export function appliedCompression(sent: KvCompressionSetting, answered: InitOutput['compression'] | undefined): KvCompressionChoice | null {
  const parsed = kvCompressionChoiceSchema.safeParse(answered);
  if (parsed.success && parsed.data.setting === sent) {
    const { setting, applied, reason, measured } = parsed.data;
    return { setting, applied, ...(reason !== undefined ? { reason } : {}), ...(measured !== undefined ? { measured } : {}) };
  }
  return sent === 'auto' ? null : { setting: sent, applied: sent };
}

/** The engine's state transfer from a metrics sample, checked (another process's answer); null when absent or malformed. */
export function stateTransferOf(metrics: Pick<EngineMetrics, 'stateTransfer'> | null | undefined): KvStateTransfer | null {
  if (!metrics?.stateTransfer) return null;
  const parsed = kvStateTransferSchema.safeParse(metrics.stateTransfer);
  if (!parsed.success) return null;
  const { mode, reason } = parsed.data;
  return reason !== undefined ? { mode, reason } : { mode };
}

export interface KvStatsDeps {
  /** The engine's `metrics` request; an engine that is down answers an error. */
  readonly metrics: () => Promise<Result<EngineMetrics>>;
  readonly settings: () => Settings;
  /** The host's view of persistence (KvStatusTracker). */
  readonly kvStatus: () => KvStatus;
  /** `<dataDir>/kv`, then the data dir: the store's folder exists only once the engine made it. */
  readonly diskPaths: readonly string[];
  /** What the engine last answered `init` with; null before any engine did. */
  readonly applied?: () => AppliedKvCodec | null;
  /** Test seam: `fs.promises.statfs`. */
  readonly statfs?: StatFs;
}

/**
 * The store at a glance. The store's figures are zeros when the engine has no store (persistence
 * off, or a store that could not be opened) or cannot answer (it is restarting); `persistence`
 * then says why: it is 'on' only when the engine answered with its store's figures, so that
 * zeros are never shown as an empty store that is being written to. Never throws.
 */
export async function readKvStats(deps: KvStatsDeps): Promise<KvStoreInfo> {
  const settings = deps.settings();
  const [sampled, free] = await Promise.all([
    deps.metrics().catch(() => null),
    freeDiskBytes(deps.diskPaths, deps.statfs),
  ]);
  const store = sampled?.ok ? sampled.value.kvStore : undefined;
  const tracked = deps.kvStatus().persistence;
  const persistence: KvStoreInfo['persistence'] = tracked === 'on' && !store ? 'paused' : tracked;
  // The engine measures the same disk (StoreMetrics.freeBytes): its figure stands in where statfs fails here.
  return storeInfo(store, settings, persistence, free ?? store?.freeBytes ?? null, deps.applied?.() ?? null, stateTransferOf(sampled?.ok ? sampled.value : null));
}

/**
 * The store's figures as `kv.stats` and the Cache view's ticks show them: the engine's counts
 * (zeros without a store) beside the budget and chunk size in force, from the settings (a change
 * applies at the engine's restart, which a queued change waits for). The compression is the
 * running engine's (`applied`); until an engine answered `init`, the setting's when it is fixed
 * and null for `auto` (which only the engine resolves), with no choice and no codec. The state
 * transfer is the loaded model's, from the same metrics sample.
 */
export function storeInfo(
  store: StoreMetrics | undefined,
  settings: Settings,
  persistence: KvStoreInfo['persistence'],
  freeDiskBytes: number | null,
  applied: AppliedKvCodec | null = null,
  stateTransfer: KvStateTransfer | null = null,
): KvStoreInfo {
  const setting = settings.kvCompression;
  return {
    persistence,
    bytesOnDisk: store?.bytesOnDisk ?? 0,
    chunkCount: store?.chunkCount ?? 0,
    logicalBytes: store?.logicalBytes ?? 0,
    budgetBytes: settings.kvBudgetBytes,
    freeDiskBytes,
    chunkTokens: settings.kvChunkTokens,
    compression: applied?.compression.applied ?? (setting === 'auto' ? null : setting),
    compressionChoice: applied?.compression ?? null,
    codec: applied?.codec ?? null,
    stateTransfer,
  };
}
