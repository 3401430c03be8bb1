import type { HearthError, LocalEngineState, RemoteCacheSample, RemoteEngine } from '../contract.ts';
import { createRing, remoteRingCapacity, type Ring } from '../lib/ring.ts';
import type { SliceCreator } from './types.ts';

/**
 * The remote engines as the host last listed them (`engines.list` at start and after each
 * reconnect, then every `engines.changed`), and what the Cache view read of their `/metrics`
 * (`cache.remote`): the latest sample per engine, and a ring per engine that its chart reads.
 * Beside them, the engine built for this computer (`engine.local`, then its events).
 */
export interface EnginesSlice {
  /** null until the first `engines.list` answered. */
  readonly engines: readonly RemoteEngine[] | null;
  /** The last `engines.list` failed; `engines` (if any) is older. */
  readonly enginesError: HearthError | null;
  /** The latest `cache.remote` of each engine, by engine id. */
  readonly remoteSamples: Readonly<Record<string, RemoteCacheSample>>;
  /**
   * The recent samples of each engine, by engine id. One mutable map for the store's life, as
   * the local ring: a chart subscribes to its engine's ring, so a sample re-renders no component
   * through it.
   */
  readonly remoteRings: ReadonlyMap<string, Ring<RemoteCacheSample>>;
  /** The host's whole list: engines it no longer has lose their samples. */
  setEngines(engines: readonly RemoteEngine[]): void;
  setEnginesError(error: HearthError | null): void;
  /** One engine from a call's answer (add, update, check), before its `engines.changed` arrives. */
  upsertEngine(engine: RemoteEngine): void;
  /** A call said it is gone. */
  dropEngine(engineId: string): void;
  applyRemoteSample(sample: RemoteCacheSample): void;
  /** The engine's ring, made on first use (a chart mounts before the first sample). */
  remoteRing(engineId: string): Ring<RemoteCacheSample>;

  /** The local engine's build and comparison; null until `engine.local` first answered. */
  readonly localEngine: LocalEngineState | null;
  /** The last `engine.local` failed; `localEngine` (if any) is older. */
  readonly localEngineError: HearthError | null;
  /**
   * `engine.local` events seen so far: a call's answer is applied only when no event came while
   * it ran, since an event that overtook it is newer.
   */
  readonly localEngineEvents: number;
  /** `fromEvent` counts it as an event (see `localEngineEvents`). */
  setLocalEngine(state: LocalEngineState, fromEvent?: boolean): void;
  setLocalEngineError(error: HearthError | null): void;
}

export const createEnginesSlice: SliceCreator<EnginesSlice> = (set) => {
  const rings = new Map<string, Ring<RemoteCacheSample>>();
  const ringOf = (engineId: string) => {
    let ring = rings.get(engineId);
    if (!ring) {
      ring = createRing<RemoteCacheSample>(remoteRingCapacity);
      rings.set(engineId, ring);
    }
    return ring;
  };
  const keepOnly = (ids: ReadonlySet<string>, samples: Readonly<Record<string, RemoteCacheSample>>) => {
    for (const id of [...rings.keys()]) if (!ids.has(id)) rings.delete(id);
    return Object.fromEntries(Object.entries(samples).filter(([id]) => ids.has(id)));
  };
  return {
    engines: null,
    enginesError: null,
    remoteSamples: {},
    remoteRings: rings,
    setEngines: (engines) => set((s) => ({ engines, enginesError: null, remoteSamples: keepOnly(new Set(engines.map((e) => e.id)), s.remoteSamples) })),
    setEnginesError: (error) => set({ enginesError: error }),
    upsertEngine: (engine) =>
      set((s) => {
        const list = s.engines ?? [];
        const at = list.findIndex((e) => e.id === engine.id);
        return { engines: at < 0 ? [...list, engine] : list.map((e, i) => (i === at ? engine : e)) };
      }),
    dropEngine: (engineId) =>
      set((s) => {
        if (!s.engines) return {};
        const engines = s.engines.filter((e) => e.id !== engineId);
        return { engines, remoteSamples: keepOnly(new Set(engines.map((e) => e.id)), s.remoteSamples) };
      }),
    applyRemoteSample: (sample) => {
      // Ring first: a chart scheduled by it reads the sample the figures show.
      ringOf(sample.engineId).push(sample);
      set((s) => ({ remoteSamples: { ...s.remoteSamples, [sample.engineId]: sample } }));
    },
    remoteRing: ringOf,
    localEngine: null,
    localEngineError: null,
    localEngineEvents: 0,
    setLocalEngine: (localEngine, fromEvent = false) =>
      set((s) => ({ localEngine, localEngineError: null, localEngineEvents: fromEvent ? s.localEngineEvents + 1 : s.localEngineEvents })),
    setLocalEngineError: (error) => set({ localEngineError: error }),
  };
};
