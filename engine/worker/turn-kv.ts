/**
 * A turn's disk KV: before LlamaChat evaluates, the longest stored prefix of the prompt is loaded
 * when the store holds more than memory does (LlamaChat then finds those tokens in the sequence
 * and evaluates only the rest); after it, the slot's tokens are saved under the turn's manifest.
 * The save runs under the engine lock once the reply is answered: the next generation waits for
 * it, the user does not. A slot whose save failed stays dirty and is saved again before a swap,
 * a model change, or quit.
 */
import type { Token } from 'node-llama-cpp';
import { within } from '../base/timeout.ts';
import { errorText } from '../contract/index.ts';
import type { GenerateInput } from '../protocol.ts';
import { evictActivity, saveActivity } from './kv-activity.ts';
import type { KvProfile } from './kv-cache.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import type { Slot } from './slots.ts';

/** How long a generation waits for the model's KV profile (its file hash) before going without. */
const KV_PROFILE_WAIT_MS = 1000;

/** The readout's reason for a turn after "Forget cache" (the e2e test matches /cache was forgotten/). */
export const FORGOTTEN_REASON = 'its cache was forgotten, so its history was read again';

/** Reasons for the readout, in order, joined with "; " (absent ones left out; none: undefined). */
export function joinReasons(...reasons: readonly (string | undefined)[]): string | undefined {
  const present = reasons.filter((reason): reason is string => reason !== undefined);
  return present.length === 0 ? undefined : present.join('; ');
}

export interface StoreRestore {
  readonly restored: number;
  readonly restoreMs: number | undefined;
  readonly fallbackReason: string | undefined;
}

/**
 * The turn's restore when `restore` allows one and the chat was not forgotten (a forgotten chat
 * reads its whole history again, and says so); otherwise nothing, with the reason disk KV is off.
 */
export async function restoreForTurn(
  state: RuntimeState,
  current: Loaded,
  slot: Slot<Resident>,
  chatId: string,
  promptTokens: Token[],
  options: { restore: boolean; wasForgotten: boolean },
): Promise<StoreRestore> {
  const fromStore =
    options.restore && !options.wasForgotten
      ? await restoreFromStore(state, current, slot, chatId, promptTokens)
      : { restored: 0, restoreMs: undefined, fallbackReason: state.kvOffReason ?? undefined };
  return options.wasForgotten ? { ...fromStore, fallbackReason: joinReasons(FORGOTTEN_REASON, fromStore.fallbackReason) } : fromStore;
}

/**
 * Loads the longest prefix of `promptTokens` the KV store holds beyond what the slot's sequence
 * already has (KvCache.restore), and says why not when it cannot.
 */
async function restoreFromStore(state: RuntimeState, current: Loaded, slot: Slot<Resident>, chatId: string, promptTokens: Token[]): Promise<StoreRestore> {
  let restored = 0;
  let restoreMs: number | undefined;
  let fallbackReason: string | undefined = state.kvOffReason ?? undefined;
  const kvProfile = current.kvProfile;
  const cache = state.kvCache;
  if (cache && kvProfile) {
    // A model seen before has its hash cached (milliseconds). A first hash of a large file
    // takes seconds, and nothing can be stored for an unhashed model yet: do not wait.
    const profile = await within(kvProfile, KV_PROFILE_WAIT_MS, null);
    if (profile === null) {
      fallbackReason = 'the model file is still being hashed, so its stored KV cannot be checked yet';
    } else if (profile.fingerprint !== null) {
      const sequence = slot.resident.sequence;
      const report = await current.slots.during(slot, 'restoring', () => cache.restore(profile, sequence, promptTokens, { manifestPrefix: `${chatId}/` }));
      restored = report.tokensRestored;
      if (restored > 0) restoreMs = report.restoreMs;
      fallbackReason = report.fallbackReason;
    } else {
      fallbackReason = profile.fallbackReason;
    }
  }
  return { restored, restoreMs, fallbackReason };
}

/**
 * After a turn, under the lock: binds the slot's tokens to the turn's manifest and saves them.
 * A failed turn (or one without a branch) leaves nothing to save: its tokens are not a turn.
 */
export async function saveTurn(state: RuntimeState, input: GenerateInput, slot: Slot<Resident>, succeeded: boolean): Promise<void> {
  const current = state.loaded;
  // The model changed, or the chat was deleted while it generated: nothing to keep.
  if (!current || !current.slots.slots.includes(slot) || slot.chatId !== input.chatId) return;
  const named = succeeded && typeof input.branchId === 'string' && input.branchId !== '';
  current.slots.turnDone(slot, named ? `${input.chatId}/${input.branchId}` : null);
  if (named) await current.slots.save(slot);
}

/**
 * The slot table's save: the resident's clean prefix under `manifestId`, replacing the chat's
 * manifests that it extends (its previous turns, also those saved before a restart; other
 * branches stay). Resolves to the tokens stored, or null.
 */
export async function saveResident(state: RuntimeState, kvProfile: Promise<KvProfile> | null, resident: Resident, manifestId: string, chatId: string): Promise<number | null> {
  const cache = state.kvCache;
  if (!cache || !kvProfile) return null;
  try {
    const profile = await kvProfile;
    if (profile.fingerprint === null) return null;
    const siblings = cache.store.manifestIds(`${chatId}/`);
    const saved = await cache.save(profile, resident.sequence, manifestId, siblings.ok ? { replaces: siblings.value } : {});
    if (!saved.ok) {
      state.log('warn', `KV save of ${manifestId} failed: ${saved.error.message}`);
      return null;
    }
    const r = saved.value;
    state.log('debug', `KV saved ${manifestId}: ${r.tokens} tokens, ${r.chunksWritten} new chunks, ${r.bytesWritten} bytes written of a ${r.stateBytes}-byte state, ${r.ms} ms`);
    state.kvActivity(saveActivity(chatId, r));
    if (r.evicted) state.kvActivity(evictActivity(r.evicted));
    return r.tokens;
  } catch (error) {
    state.log('warn', `KV save of ${manifestId} failed: ${errorText(error)}`);
    return null;
  }
}
