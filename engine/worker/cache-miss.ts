/**
 * Why a prompt missed the cache (GenerateInput.diagnose, MessageStats.cacheMiss): of the
 * conversations the cache holds (the store's manifests for this model, and what each slot's
 * sequence holds), the one that shares the longest start with the prompt, and where the two part.
 * Reported only when that conversation went on past the difference, with at least MIN_LOST_TOKENS
 * of it lost, and when the two texts meet again just after the difference (REALIGN_RUN tokens in a
 * row, within the MISS_TEXT_TOKENS after it): a prompt that simply extends (or stops inside) a
 * cached conversation missed nothing, and one that merely starts like another ("You are a …")
 * is another conversation, not a miss.
 * API clients that put a timestamp or a request id early in the system prompt show up here.
 *
 * The store's chunk keys are a hash chain, so comparing the prompt's keys with a manifest's finds
 * the first differing chunk without reading anything; only that chunk's tokens are read (its
 * file's header and token list, not its KV payload), or the manifest's tail, which the index holds.
 * The pure core (prefixes over keys and tokens, the decision, the clipping) is unit-tested.
 */
import { open } from 'node:fs/promises';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { within } from '../base/timeout.ts';
import type { CacheMiss } from '../contract/index.ts';
import { chunkMagic, chunkPath } from '../kv/chunk-file.ts';
import { chainKey, chunkKeys } from '../kv/fingerprint.ts';
import type { KvStore } from '../kv/store.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import type { Slot } from './slots.ts';

/** The least of a cached conversation that must be lost for its miss to be worth reporting. */
export const MIN_LOST_TOKENS = 16;
/**
 * Tokens in a row the prompt and the cached conversation must share again after the difference:
 * with a byte-level vocabulary 4 matched by chance (" the", "ful "), 8 did not in a real session.
 */
export const REALIGN_RUN = 8;
/** The most characters of text on each side of the difference. */
export const MISS_TEXT_CHARS = 60;
/** Tokens detokenized on each side: enough for MISS_TEXT_CHARS of nearly any text. */
const MISS_TEXT_TOKENS = 32;
/** Stored chunks read at most per diagnosis (each a header and a token list). */
const MAX_CHUNK_READS = 4;
/** How long a diagnosis waits for the model's KV profile (its hash) before leaving the store out. */
const PROFILE_WAIT_MS = 200;

/** How many leading items two lists share. */
export function commonPrefix<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A cached conversation compared with the prompt. */
export interface Divergence {
  /** The first index where they differ (or where the shorter one ends). */
  readonly at: number;
  /** The cached conversation's length in tokens. */
  readonly storedTokens: number;
  /** Its tokens from `at` on (at most MISS_TEXT_TOKENS); empty when it ends there. */
  readonly after: readonly number[];
}

/**
 * The divergence to report of the candidates, or null: the one sharing the longest start (on a
 * tie, the one that lost least: a prompt that extends one cached conversation missed nothing,
 * whatever another one held), and only when it lost at least MIN_LOST_TOKENS that the prompt
 * replaced with something else.
 */
export function worstMiss(candidates: readonly Divergence[], prompt: ArrayLike<number>): Divergence | null {
  let best: Divergence | null = null;
  for (const c of candidates) {
    if (!best || c.at > best.at || (c.at === best.at && c.storedTokens < best.storedTokens)) best = c;
  }
  if (!best) return null;
  const lost = best.storedTokens - best.at;
  const differs = prompt.length > best.at;
  return differs && lost >= MIN_LOST_TOKENS && realigns(best, prompt) ? best : null;
}

/**
 * Whether the prompt and the cached conversation run together again soon after `miss.at`: a
 * changed timestamp, id or word, then the same text. Both sides are searched within the stored
 * tokens the divergence carries (`after`, MISS_TEXT_TOKENS).
 */
export function realigns(miss: Divergence, prompt: ArrayLike<number>): boolean {
  const window = miss.after.length;
  for (let j = 1; j + REALIGN_RUN <= window; j++) {
    for (let k = 1; k <= window && miss.at + k + REALIGN_RUN <= prompt.length; k++) {
      let run = 0;
      while (run < REALIGN_RUN && prompt[miss.at + k + run] === miss.after[j + run]) run++;
      if (run === REALIGN_RUN) return true;
    }
  }
  return false;
}

/** The last `chars` characters of a text (whole code points). */
export function clipEnd(text: string, chars = MISS_TEXT_CHARS): string {
  const points = Array.from(text);
  return points.length <= chars ? text : points.slice(-chars).join('');
}

/** The first `chars` characters of a text (whole code points). */
export function clipStart(text: string, chars = MISS_TEXT_CHARS): string {
  const points = Array.from(text);
  return points.length <= chars ? text : points.slice(0, chars).join('');
}

/** The report for `miss` of `prompt`, its texts detokenized around the difference. */
export function describeMiss(model: Pick<LlamaModel, 'detokenize'>, prompt: readonly Token[], miss: Divergence): CacheMiss {
  const before = prompt.slice(Math.max(0, miss.at - MISS_TEXT_TOKENS), miss.at);
  const text = (tokens: readonly number[]) => model.detokenize(tokens as Token[], false, before);
  return {
    atToken: miss.at,
    promptTokens: prompt.length,
    storedTokens: miss.storedTokens,
    before: clipEnd(model.detokenize(before, false)),
    sent: clipStart(text(prompt.slice(miss.at, miss.at + MISS_TEXT_TOKENS))),
    stored: clipStart(text(miss.after)),
  };
}

/** What a slot's sequence holds, compared with the prompt. */
export function slotDivergence(slot: Slot<Resident>, prompt: readonly Token[]): Divergence {
  const held = slot.resident.sequence.contextTokens;
  const at = commonPrefix(held, prompt);
  return { at, storedTokens: held.length, after: held.slice(at, at + MISS_TEXT_TOKENS) };
}

/**
 * Where the prompt diverges from the longest cached conversation sharing its start (what the
 * slots hold, then the store's manifests), or undefined when nothing worth reporting was lost.
 * Runs after the reply, so none of it delays the first token (the turn's own save comes later
 * still): only the turn's own slot is compared before the reply (`own.held`, by `slotDivergence`),
 * which overwrites what it held beyond the shared prefix; the other slots are untouched by the
 * turn (decoding is serial, under the engine lock). Never fails the turn: a store it cannot read
 * is left out.
 */
export async function diagnoseCacheMiss(state: RuntimeState, current: Loaded, prompt: readonly Token[], own: { readonly slot: Slot<Resident>; readonly held: Divergence }): Promise<CacheMiss | undefined> {
  const candidates = current.slots.slots.map((slot) => (slot === own.slot ? own.held : slotDivergence(slot, prompt)));
  try {
    candidates.push(...(await storedDivergences(state, current, prompt, Math.max(0, ...candidates.map((c) => c.at)))));
  } catch (error) {
    state.log('debug', `cache-miss diagnosis left the store out: ${String(error)}`);
  }
  const miss = worstMiss(candidates, prompt);
  return miss ? describeMiss(current.model, prompt, miss) : undefined;
}

/** A manifest whose divergence lies inside its stored chunk `index` (the chunk must be read). */
interface ChunkCandidate {
  readonly storedTokens: number;
  readonly chunkTokens: number;
  readonly index: number;
  readonly key: string;
  readonly parent: string;
  /** The chunk after it, if any (read when the difference is near the chunk's end). */
  readonly nextKey: string | undefined;
}

/** The store's manifests for this model, compared with the prompt; `known` is the best divergence found so far. */
async function storedDivergences(state: RuntimeState, current: Loaded, prompt: readonly Token[], known: number): Promise<Divergence[]> {
  const cache = state.kvCache;
  if (!cache || !current.kvProfile) return [];
  const profile = await within(current.kvProfile, PROFILE_WAIT_MS, null);
  const fingerprint = profile?.fingerprint;
  if (!fingerprint) return [];
  const store = cache.store;
  const ids = store.manifestIds('');
  if (!ids.ok) return [];
  const keysBySize = new Map<number, string[]>();
  const promptKeys = (size: number): string[] => {
    let keys = keysBySize.get(size);
    if (!keys) keysBySize.set(size, (keys = chunkKeys(fingerprint, prompt, size)));
    return keys;
  };
  const found: Divergence[] = [];
  const pending: ChunkCandidate[] = [];
  for (const id of ids.value) {
    const manifest = store.getManifest(id);
    if (!manifest.ok || manifest.value.fingerprint !== fingerprint) continue;
    const { chunks, chunkTokens, tail, totalTokens } = manifest.value;
    const shared = commonPrefix(promptKeys(chunkTokens), chunks);
    const start = shared * chunkTokens;
    if (shared === chunks.length) {
      // Every stored chunk matched: the difference is in the tail, which the index holds.
      const at = start + commonPrefix(tail.tokens, prompt.slice(start));
      found.push({ at, storedTokens: totalTokens, after: Array.from(tail.tokens.subarray(at - start, at - start + MISS_TEXT_TOKENS)) });
    } else {
      pending.push({ storedTokens: totalTokens, chunkTokens, index: shared, key: chunks[shared]!, parent: shared === 0 ? fingerprint : chunks[shared - 1]!, nextKey: chunks[shared + 1] });
    }
  }
  // Only chunks that can beat what is known are read, the most promising first.
  let best = Math.max(known, ...found.map((d) => d.at));
  const read = new Map<string, Int32Array | null>();
  pending.sort((a, b) => b.index * b.chunkTokens - a.index * a.chunkTokens);
  for (const c of pending) {
    const start = c.index * c.chunkTokens;
    if (start + c.chunkTokens < best) break;
    if (!read.has(c.key) && read.size >= MAX_CHUNK_READS) break;
    if (!read.has(c.key)) read.set(c.key, await chunkTokensOf(store, c.key, c.parent));
    const tokens = read.get(c.key);
    if (!tokens) continue;
    const at = start + commonPrefix(tokens, prompt.slice(start));
    let after = Array.from(tokens.subarray(at - start, at - start + MISS_TEXT_TOKENS));
    if (after.length < MISS_TEXT_TOKENS && c.nextKey !== undefined && read.size < MAX_CHUNK_READS) {
      // The difference is near the chunk's end: the stored text goes on in the next chunk.
      const next = read.get(c.nextKey) ?? (await chunkTokensOf(store, c.nextKey, c.key));
      read.set(c.nextKey, next);
      if (next) after = [...after, ...Array.from(next.subarray(0, MISS_TEXT_TOKENS - after.length))];
    }
    found.push({ at, storedTokens: c.storedTokens, after });
    best = Math.max(best, at);
  }
  return found;
}

/**
 * A stored chunk's tokens from its file's header and token list (the KV payload after them is
 * not read), checked against the hash chain: `key` must be sha256(parent ‖ tokens). null when
 * the file is missing, short or does not match.
 */
async function chunkTokensOf(store: KvStore, key: string, parent: string): Promise<Int32Array | null> {
  let handle;
  try {
    handle = await open(chunkPath(store.root, key), 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(16);
    if ((await handle.read(head, 0, head.length, 0)).bytesRead < head.length || !head.subarray(0, 4).equals(chunkMagic)) return null;
    const headerLength = head.readUInt16LE(6);
    const count = head.readUInt32LE(8);
    if (count === 0 || count > 1 << 20) return null;
    const body = Buffer.alloc(count * 4);
    if ((await handle.read(body, 0, body.length, headerLength)).bytesRead < body.length) return null;
    const tokens = new Int32Array(count);
    for (let i = 0; i < count; i++) tokens[i] = body.readInt32LE(i * 4);
    return chainKey(parent, tokens) === key ? tokens : null;
  } finally {
    await handle.close();
  }
}
