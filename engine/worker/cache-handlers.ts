/**
 * The Cache view's engine side: `metrics` (sampled 4 times a second, also while a reply streams,
 * so it never takes the engine lock and reads only counters, except the device's memory and the
 * store's totals, read at most once a second, and how the loaded model's state moves, which
 * Settings → Cache shows), the largest chats, one chat's cache, "Forget cache" and "Check the
 * cache", and a model's stored KV: how much, and forgetting it when the model is deleted.
 */
import { basename, resolve } from 'node:path';
import { within } from '../base/timeout.ts';
import { err, formatBytes, ok, type DeviceMemory, type KvStateTransfer, type ModelKvUsage, type Result } from '../contract/index.ts';
import type { KvStoreStats } from '../kv/store.ts';
import type { EngineMetrics } from '../protocol.ts';
import { cachedFor, forgetActivity, summarizeIntegrity, uncheckedReport } from './kv-activity.ts';
import { readDevice } from './planner.ts';
import { METRICS_CACHE_MS, type Loaded, type RuntimeState } from './runtime-state.ts';
import type { WorkerHandlers } from './serve.ts';

type CacheHandlers = Pick<WorkerHandlers, 'forgetChat' | 'kvVerify' | 'kvChats' | 'chatCache' | 'metrics' | 'modelKv' | 'forgetModel'>;

const noModelKv: ModelKvUsage = { conversations: 0, bytes: 0 };

/** How long a metrics sample waits for a model's KV profile (a model file hashed at its first load). */
const PROFILE_WAIT_MS = 50;

export function createCacheHandlers(state: RuntimeState): CacheHandlers {
  const device = cachedFor<DeviceMemory | null>(METRICS_CACHE_MS, async () => (state.llama ? (await readDevice(state.llama)).device : null));
  return {
    async forgetChat({ chatId, reread }) {
      if (typeof chatId !== 'string' || chatId === '') return err('INVALID_INPUT', 'forgetChat needs a chatId.');
      // Not under the lock: a queued swap or quit must not save the forgotten chat back.
      state.loaded?.slots.release(chatId);
      // The slot may still hold the chat's tokens (release only unbinds it): with `reread`, the
      // next turn clears them instead of reusing them (turn.ts).
      if (reread === true) state.forgotten.remember(chatId);
      else state.forgotten.drop(chatId);
      const cache = state.kvCache;
      if (!cache) return ok({ bytesFreed: 0 });
      const result = await cache.forget(`${chatId}/`);
      // A save of it already running or queued (its last turn's) would write it back: forget
      // again once that is done.
      void state.lock.run(() => cache.forget(`${chatId}/`)).catch(() => undefined);
      if (!result.ok) return result;
      if (result.value.manifests > 0 || reread === true) state.kvActivity(forgetActivity(chatId, result.value));
      return ok({ bytesFreed: result.value.bytesFreed });
    },

    // Under the engine lock, so the check never sees a save halfway (the store's own lock would
    // also serialise it, but a turn's save spans several store calls).
    async kvVerify({ repair }) {
      if (typeof repair !== 'boolean') return err('INVALID_INPUT', 'kvVerify needs repair: boolean.');
      const cache = state.kvCache;
      if (!cache) return ok(uncheckedReport);
      return state.lock.run(async () => {
        const started = performance.now();
        const report = await cache.store.checkIntegrity({ verify: true, repair });
        return report.ok ? ok(summarizeIntegrity(report.value, performance.now() - started)) : report;
      });
    },

    async kvChats({ limit }) {
      if (!Number.isInteger(limit) || limit < 0) return err('INVALID_INPUT', 'kvChats needs a whole-number limit ≥ 0.');
      if (!state.kvCache) return ok({ chats: [] });
      const usage = state.kvCache.store.chatUsage({ limit });
      return usage.ok ? ok({ chats: usage.value }) : usage;
    },

    async chatCache({ chatId }) {
      if (typeof chatId !== 'string' || chatId === '') return err('INVALID_INPUT', 'chatCache needs a chatId.');
      const slot = state.loaded?.slots.slots.find((s) => s.chatId === chatId) ?? null;
      let tokensOnDisk = 0;
      let bytesOnDisk = 0;
      if (state.kvCache) {
        const usage = state.kvCache.store.chatUsage({ chatId });
        if (!usage.ok) return usage;
        tokensOnDisk = usage.value[0]?.tokens ?? 0;
        bytesOnDisk = usage.value[0]?.bytes ?? 0;
      }
      return ok({ slot: slot?.index ?? null, tokensInMemory: slot?.resident.sequence.nextTokenIndex ?? 0, tokensOnDisk, bytesOnDisk });
    },

    async metrics() {
      const current = state.loaded;
      const [deviceNow, stats, transfer] = await Promise.all([
        current ? device.get().catch(() => null) : null,
        state.storeStats.get().catch(() => null),
        current ? stateTransfer(state, current) : null,
      ]);
      // The model may have changed while the device was read: describe the one loaded now.
      const now = state.loaded === current ? current : null;
      const slots = slotMetrics(now);
      const kvStore = storeMetrics(stats);
      const memory = now && deviceNow ? memoryMetrics(now, deviceNow) : undefined;
      return ok({
        kvCellsUsed: slots.reduce((sum, slot) => sum + slot.cellsUsed, 0),
        kvCellsCapacity: now ? now.context.getAllocatedContextSize() : 0,
        slots,
        ...(kvStore ? { kvStore } : {}),
        ...(memory ? { memory } : {}),
        ...(now && transfer ? { stateTransfer: transfer } : {}),
      });
    },
    ...modelKvHandlers(state),
  };
}

/** A model's stored KV (the models library): how much, and forgetting it with the model. */
function modelKvHandlers(state: RuntimeState): Pick<CacheHandlers, 'modelKv' | 'forgetModel'> {
  return {
    // No lock: one read of the index. Without a store (persistence off, or it could not open)
    // nothing is stored; a file the store never hashed has nothing stored either (it is not
    // hashed now: seconds of reading gigabytes to answer "nothing").
    async modelKv({ path }) {
      if (typeof path !== 'string' || path === '') return err('INVALID_INPUT', 'modelKv needs a model file path.');
      const store = state.kvCache?.store;
      if (!store) return ok(noModelKv);
      const hash = await store.knownModelHash(path);
      if (!hash.ok) return hash;
      return hash.value === null ? ok(noModelKv) : store.modelUsage(hash.value);
    },

    /**
     * Deletes the KV stored for a model file (the library's "delete the model and its KV").
     * Refused with BUSY while that model is loaded (by its path, or a copy of the same file by
     * its content hash): its slots count what they saved as stored, and would neither save it
     * again nor notice it gone. The host unloads a model before deleting it. Under the engine
     * lock, so it never runs beside a load of the same model (which would then restore from
     * manifests being deleted); it waits for a running reply of another model.
     */
    async forgetModel({ path }) {
      if (typeof path !== 'string' || path === '') return err('INVALID_INPUT', 'forgetModel needs a model file path.');
      const cache = state.kvCache;
      if (!cache) return ok({ bytesFreed: 0 });
      return state.lock.run(async () => {
        const loaded = state.loaded;
        const busy = err('BUSY', 'This model is loaded: its stored KV cannot be deleted while it is in use.', 'Unload the model first.');
        if (loaded && resolve(loaded.info.path) === resolve(path)) return busy;
        const hash = await cache.store.knownModelHash(path);
        if (!hash.ok) return hash;
        if (hash.value === null) return ok({ bytesFreed: 0 });
        // A copy of the file under another path has the same content hash, so the same KV.
        if (loaded?.kvProfile && cache.modelHashOf(await loaded.kvProfile) === hash.value) return busy;
        const forgot = await cache.store.forgetModel(hash.value);
        if (!forgot.ok) return forgot;
        const { manifests, bytesFreed } = forgot.value;
        if (manifests > 0) {
          const branches = `${manifests.toLocaleString('en-US')} ${manifests === 1 ? 'branch' : 'branches'}`;
          state.kvActivity({ kind: 'forget', text: `forgot the cache of model ${basename(path)}: ${branches}, ${formatBytes(bytesFreed)} freed`, bytes: bytesFreed });
        }
        return ok({ bytesFreed });
      });
    },
  };
}

/**
 * How the loaded model's sequence state moves (KvCache.transferOf, decided at its load), once its
 * KV profile is ready: null without a store, or while the model file is still being hashed for
 * longer than a sample may wait (the Cache view samples 4 times a second).
 */
async function stateTransfer(state: RuntimeState, loaded: Loaded): Promise<KvStateTransfer | null> {
  const cache = state.kvCache;
  if (!cache || !loaded.kvProfile) return null;
  const profile = await within(loaded.kvProfile, PROFILE_WAIT_MS, null).catch(() => null);
  if (profile === null) return null;
  const info = cache.transferOf(profile);
  return info.reason !== undefined ? { mode: info.mode, reason: info.reason } : { mode: info.mode };
}

function slotMetrics(now: Loaded | null): EngineMetrics['slots'] {
  if (!now) return [];
  return now.slots.slots.map((slot) => {
    const cellsUsed = slot.resident.sequence.nextTokenIndex;
    return {
      index: slot.index,
      chatId: slot.chatId,
      cellsUsed,
      cellsCapacity: now.context.contextSize,
      state: slot.state,
      kType: now.profile.kType,
      vType: now.profile.vType,
      bytes: cellsUsed * now.kvBytesPerCell,
    };
  });
}

function storeMetrics(stats: Result<KvStoreStats> | null): EngineMetrics['kvStore'] {
  if (!stats?.ok) return undefined;
  const v = stats.value;
  return {
    bytesOnDisk: v.bytesOnDisk,
    storedBytes: v.storedBytes,
    rawBytes: v.rawBytes,
    chunkCount: v.chunkCount,
    manifests: v.manifests,
    logicalBytes: v.logicalBytes,
    budgetBytes: v.budget,
    freeBytes: v.freeBytes,
  };
}

function memoryMetrics(now: Loaded, device: DeviceMemory): EngineMetrics['memory'] {
  const usage = now.context.memoryUsage;
  return {
    device,
    gpuLayers: now.model.gpuLayers,
    weights: now.weights,
    context: { ramBytes: usage.ram, vramBytes: usage.vram },
    kvBytesPerCell: now.kvBytesPerCell,
  };
}
