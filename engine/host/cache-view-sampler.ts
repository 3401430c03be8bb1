/**
 * The Cache view's sampler: while a view holds a lease (`cache.watch`),
 * asks the engine for one metrics sample per tick and broadcasts it as one `cache.tick`. A view
 * that is hidden or closed stops renewing, and the sampling stops with its lease, so nothing
 * samples for a view nobody sees.
 *
 * The turning of a sample into a `CacheSnapshot` is pure (`toCacheSnapshot` and the functions
 * under it) so that the memory mapping for each kind of device is tested without an engine.
 */
import type { CacheMemory, CacheSnapshot, CacheStoreStats, HearthEvent, KvStateTransfer, KvStatus, Result, Settings } from '../contract/index.ts';
import type { EngineMetrics, MemoryMetrics, SlotMetrics, StoreMetrics } from '../protocol.ts';
import { stateTransferOf, storeInfo, type AppliedKvCodec } from './kv-stats.ts';
import { errorText } from '../contract/index.ts';

/** 4 Hz: smooth enough for cells rising while a reply streams, cheap for the engine. */
export const cacheTickMs = 250;
/** A visible view renews at half this, so one late renewal does not stop its ticks. */
export const cacheLeaseMs = 5000;
/** A sample that takes longer than this is dropped; the next tick asks again. */
const sampleTimeoutMs = 1000;

function sumParts(part: { readonly ramBytes: number; readonly vramBytes: number }, kind: CacheMemory['kind']): number {
  // On a discrete GPU only what lives in VRAM competes for its capacity; RAM and unified memory
  // hold both parts (a CPU-only load reports no VRAM part, a partial offload on Apple both).
  return kind === 'vram' ? part.vramBytes : part.ramBytes + part.vramBytes;
}

function deviceKind(memory: MemoryMetrics): CacheMemory['kind'] {
  const { device, gpuLayers } = memory;
  // No layer on the GPU: the model and its context live in RAM whatever the GPU is.
  if (device.backend === 'cpu' || gpuLayers === 0) return 'ram';
  if (device.backend === 'metal' && device.unifiedMemory) return 'unified';
  return 'vram';
}

const backendNames: Record<MemoryMetrics['device']['backend'], string> = { cuda: 'CUDA GPU', vulkan: 'Vulkan GPU', metal: 'Apple GPU', cpu: 'RAM' };

/**
 * The device memory the view draws, from the engine's buffer breakdown. KV allocated is the
 * per-cell size times every slot's cells, capped at what the context holds on this device (with
 * a partial offload, the CPU layers' KV is in RAM); the context's remainder is compute buffers.
 * null without a loaded model.
 */
export function cacheMemory(memory: MemoryMetrics | undefined, slots: readonly SlotMetrics[]): CacheMemory | null {
  if (!memory) return null;
  const kind = deviceKind(memory);
  const { device } = memory;
  const contextBytes = sumParts(memory.context, kind);
  const cells = slots.reduce((sum, slot) => sum + nonNegative(slot.cellsCapacity), 0);
  const kvAllocatedBytes = Math.min(nonNegative(memory.kvBytesPerCell) * cells, contextBytes);
  // "KV in use" is drawn as a part of "KV allocated": it cannot exceed it on the bar.
  const kvUsedBytes = Math.min(
    slots.reduce((sum, slot) => sum + nonNegative(slot.bytes), 0),
    kvAllocatedBytes,
  );
  const base = {
    kind,
    deviceName: kind === 'ram' ? 'RAM' : (device.gpuName ?? backendNames[device.backend]),
    weightsBytes: sumParts(memory.weights, kind),
    kvAllocatedBytes,
    kvUsedBytes,
    computeBytes: Math.max(0, contextBytes - kvAllocatedBytes),
  };
  switch (kind) {
    case 'vram':
      return { ...base, capacityBytes: device.vramTotalBytes ?? 0, freeBytes: device.vramFreeBytes };
    case 'unified':
      return {
        ...base,
        capacityBytes: device.ramTotalBytes,
        freeBytes: device.ramFreeBytes,
        ...(device.vramTotalBytes !== null ? { workingSetLimitBytes: device.vramTotalBytes } : {}),
      };
    case 'ram':
      return { ...base, capacityBytes: device.ramTotalBytes, freeBytes: device.ramFreeBytes };
  }
}

/** `a / b`, 1 when there is nothing to compare (an empty store). */
function ratio(a: number, b: number): number {
  return b > 0 && Number.isFinite(a / b) ? a / b : 1;
}

/**
 * The disk store's figures beside the settings in force. null when the engine has no store
 * (persistence off, a store that could not be opened) or did not answer.
 */
export function cacheStore(
  store: StoreMetrics | undefined,
  settings: Settings,
  kv: KvStatus,
  applied: AppliedKvCodec | null = null,
  stateTransfer: KvStateTransfer | null = null,
): CacheStoreStats | null {
  if (!store) return null;
  return {
    ...storeInfo(store, settings, kv.persistence, store.freeBytes, applied, stateTransfer),
    storedBytes: store.storedBytes,
    rawBytes: store.rawBytes,
    manifests: store.manifests,
    dedupRatio: ratio(store.logicalBytes, store.storedBytes),
    compressionRatio: ratio(store.rawBytes, store.storedBytes),
  };
}

export interface SnapshotInput {
  /** The engine's sample; null when it could not be taken (engine down, timeout). */
  readonly metrics: EngineMetrics | null;
  readonly settings: Settings;
  readonly kv: KvStatus;
  /** The running engine's disk encoding (kv-stats.ts); null or absent before an engine answered `init`. */
  readonly applied?: AppliedKvCodec | null;
  readonly seq: number;
  readonly at: number;
}

/** One `cache.tick`. An engine that did not answer shows no memory, no slots and no store. */
export function toCacheSnapshot(input: SnapshotInput): CacheSnapshot {
  const metrics = input.metrics;
  return {
    at: input.at,
    seq: input.seq,
    memory: metrics ? cacheMemory(metrics.memory, metrics.slots) : null,
    // The engine lists no slot without a model.
    slots: metrics ? metrics.slots : [],
    store: metrics ? cacheStore(metrics.kvStore, input.settings, input.kv, input.applied ?? null, stateTransferOf(metrics)) : null,
  };
}

export interface CacheViewSamplerDeps {
  /**
   * The engine's `metrics` request with the given timeout; an engine that is not running answers
   * an error at once (Supervisor.request). Must not throw, but a rejection is tolerated.
   */
  readonly metrics: (timeoutMs: number) => Promise<Result<EngineMetrics>>;
  readonly settings: () => Settings;
  readonly kvStatus: () => KvStatus;
  /** The running engine's disk encoding (kv-stats.ts). */
  readonly applied?: () => AppliedKvCodec | null;
  readonly emit: (event: HearthEvent) => void;
  readonly log?: (level: 'warn', message: string) => void;
  /** Test seams. */
  readonly intervalMs?: number;
  readonly leaseMs?: number;
  readonly now?: () => number;
}

export class CacheViewSampler {
  readonly #deps: CacheViewSamplerDeps;
  readonly #intervalMs: number;
  readonly #leaseMs: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #leaseEnd = 0;
  #inFlight = false;
  #seq = 0;
  #disposed = false;

  constructor(deps: CacheViewSamplerDeps) {
    this.#deps = deps;
    this.#intervalMs = deps.intervalMs ?? cacheTickMs;
    this.#leaseMs = deps.leaseMs ?? cacheLeaseMs;
    this.#now = deps.now ?? Date.now;
  }

  /** Whether ticks are being sampled now. */
  get watching(): boolean {
    return this.#timer !== null;
  }

  /**
   * Starts or renews the lease: ticks for `leaseMs` from now. A fresh lease samples at once, so an
   * opening view does not wait a tick for its first figures. Never throws.
   */
  watch(): { intervalMs: number; leaseMs: number } {
    const answer = { intervalMs: this.#intervalMs, leaseMs: this.#leaseMs };
    if (this.#disposed) return answer;
    this.#leaseEnd = this.#now() + this.#leaseMs;
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
      // Sampling must never keep a closing process alive.
      this.#timer.unref?.();
      this.#tick();
    }
    return answer;
  }

  dispose(): void {
    this.#disposed = true;
    this.#stop();
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    if (this.#disposed) return;
    if (this.#now() >= this.#leaseEnd) {
      this.#stop();
      return;
    }
    // A slow engine (a long prefill holding the event loop, a swap storm) must not pile up
    // requests: this tick is skipped, and the view sees a gap rather than a backlog.
    if (this.#inFlight) return;
    this.#inFlight = true;
    void this.#sample().finally(() => {
      this.#inFlight = false;
    });
  }

  async #sample(): Promise<void> {
    let metrics: EngineMetrics | null = null;
    try {
      const sampled = await this.#deps.metrics(sampleTimeoutMs);
      if (sampled.ok) metrics = sampled.value;
    } catch (error) {
      this.#deps.log?.('warn', `a cache sample failed: ${errorText(error)}`);
    }
    if (this.#disposed) return;
    const snapshot = toCacheSnapshot({ metrics, settings: this.#deps.settings(), kv: this.#deps.kvStatus(), applied: this.#deps.applied?.() ?? null, seq: ++this.#seq, at: this.#now() });
    this.#deps.emit({ type: 'cache.tick', payload: snapshot });
  }
}

function nonNegative(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}
