/**
 * The Cache view's figures for a remote engine: while a view holds a lease on it (`cache.watch`
 * with `engineId`), its `/metrics` is read once a second and sent as `cache.remote`. Once a
 * second, not the local engine's 4 Hz: each reading is an HTTP request to another machine, and
 * the servers' own gauges move no faster. One engine at a time (the one the view shows); a
 * reading still in flight skips the next tick rather than piling up requests on a slow server.
 */
import { errorText, hearthError, type HearthError, type HearthEvent, type RemoteCacheSample } from '../../contract/index.ts';
import type { RemoteClient } from './client.ts';
import type { EngineConnection } from './engines.ts';
import { interpretMetrics, parsePrometheusText, remoteCacheSample, type RemoteFigures } from './metrics.ts';

export const remoteTickMs = 1000;

export interface RemoteCacheWatchDeps {
  readonly client: Pick<RemoteClient, 'metrics'>;
  /** The engine's address, key and kind; undefined when it was removed. */
  readonly engine: (engineId: string) => EngineConnection | undefined;
  readonly emit: (event: HearthEvent) => void;
  readonly log?: (level: 'warn', message: string) => void;
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export class RemoteCacheWatch {
  readonly #deps: RemoteCacheWatchDeps;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** The figures each engine last reported, for the recent hit rate. */
  readonly #previous = new Map<string, RemoteFigures>();
  #engineId: string | null = null;
  #leaseEnd = 0;
  #timer: NodeJS.Timeout | null = null;
  #inFlight = false;
  #disposed = false;

  constructor(deps: RemoteCacheWatchDeps) {
    this.#deps = deps;
    this.#intervalMs = deps.intervalMs ?? remoteTickMs;
    this.#now = deps.now ?? Date.now;
  }

  /** Starts or renews the lease on `engineId` for `leaseMs`; a new engine is read at once. */
  watch(engineId: string, leaseMs: number): void {
    if (this.#disposed) return;
    const fresh = this.#engineId !== engineId || this.#timer === null;
    this.#engineId = engineId;
    this.#leaseEnd = this.#now() + leaseMs;
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
      this.#timer.unref?.();
    }
    if (fresh) this.#tick();
  }

  dispose(): void {
    this.#disposed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    if (this.#disposed || this.#engineId === null) return;
    if (this.#now() >= this.#leaseEnd) {
      if (this.#timer !== null) clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    if (this.#inFlight) return;
    this.#inFlight = true;
    const engineId = this.#engineId;
    void this.#sample(engineId)
      .catch((error: unknown) => this.#deps.log?.('warn', `reading a remote engine's metrics failed: ${errorText(error)}`))
      .finally(() => {
        this.#inFlight = false;
      });
  }

  async #sample(engineId: string): Promise<void> {
    const engine = this.#deps.engine(engineId);
    if (!engine) return;
    const read = await this.#deps.client.metrics(engine);
    if (this.#disposed) return;
    const at = this.#now();
    const failed = (error: HearthError): RemoteCacheSample => ({ engineId, at, error, kvUsage: null, kvTokens: null, prefixHitRate: null, recentPrefixHitRate: null, requestsRunning: null, requestsWaiting: null, offload: null });
    let sample: RemoteCacheSample;
    if (!read.ok) {
      sample = failed(read.error);
    } else {
      const parsed = parsePrometheusText(read.value);
      const figures = interpretMetrics(engine.kind, parsed);
      if (parsed.error) {
        sample = failed(hearthError('NETWORK_ERROR', `${engine.name}'s /metrics is too large to read (${parsed.error.kind}).`));
      } else if (figures.source === null) {
        sample = failed(hearthError('NOT_SUPPORTED', `${engine.name}'s /metrics has none of the figures Hearth reads (llama-server's, vLLM's, LMCache's or SGLang's).`));
      } else {
        sample = remoteCacheSample(engineId, figures, this.#previous.get(engineId) ?? null, at);
        this.#previous.set(engineId, figures);
      }
    }
    this.#deps.emit({ type: 'cache.remote', payload: sample });
  }
}
