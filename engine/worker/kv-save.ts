/**
 * A save: the sequence's state is copied out of llama.cpp (into memory through the state bridge,
 * else through a scratch file), checked against the computed shape, and only the chunks of its
 * clean prefix that the store lacks (plus the small tail) are copied out of it, encoded and
 * written. A shape mismatch turns persistence off for the profile, so wrong bytes are never
 * stored (docs/decisions/state-file-layout.md).
 */
import { rm } from 'node:fs/promises';
import type { LlamaContextSequence } from 'node-llama-cpp';
import { err, ok, type KvCompression, type Result, errorText } from '../contract/index.ts';
import { parseStateFile, planChunks, readStateFile, sameShape, type ParsedState } from '../kv/codec.ts';
import { encodeChunk } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import type { LargeBufferPool } from '../kv/large-buffer.ts';
import type { EvictionReport, KvStore } from '../kv/store.ts';
import type { ScratchFiles } from './kv-scratch.ts';
import type { ProfileState } from './kv-shape.ts';

export interface SaveReport {
  readonly tokens: number;
  readonly chunksWritten: number;
  readonly bytesWritten: number;
  readonly stateBytes: number;
  /** The raw (decoded) KV payload bytes of what was written: bytesWritten / rawBytes is this save's ratio. */
  readonly rawBytes: number;
  readonly ms: number;
  /** What the budget evicted after this save (absent when nothing was). */
  readonly evicted?: EvictionReport;
}

/** What a save uses of its KvCache. */
export interface SaveParts {
  readonly store: KvStore;
  /** Where the in-memory copy of the state comes from and goes back to. */
  readonly images: LargeBufferPool;
  readonly compression: KvCompression;
  readonly kernels: CodecKernels;
  readonly scratch: ScratchFiles;
}

export interface SaveRequest {
  readonly fp: string;
  readonly state: ProfileState;
  readonly sequence: LlamaContextSequence;
  readonly manifestId: string;
  /** Tokens from this index on are not a clean prefix (KvCache.markFragmented). */
  readonly cleanLimit: number | undefined;
  /** Manifests to delete when the new one extends them. */
  readonly replaces: readonly string[];
}

/**
 * The sequence's state, parsed: through memory when the context's transfer allows (`image` is
 * then the pool's buffer, to give back), else a scratch file.
 */
async function copyOut(parts: SaveParts, request: SaveRequest): Promise<Result<{ parsed: ParsedState; image: Buffer | null }>> {
  const { sequence, state } = request;
  if (state.transfer.info.mode === 'memory') {
    const image = await state.transfer.read(sequence, (size) => parts.images.take(size));
    if (!image.ok) return image;
    const parsed = parseStateFile(image.value);
    if (!parsed.ok) parts.images.give(image.value);
    return parsed.ok ? ok({ parsed: parsed.value, image: image.value }) : parsed;
  }
  const scratch = parts.scratch.next();
  try {
    try {
      parts.scratch.counted((await sequence.saveStateToFile(scratch)).fileSize);
    } catch (error) {
      return err('INTERNAL', `The sequence state could not be saved: ${errorText(error)}`);
    }
    const parsed = await readStateFile(scratch);
    return parsed.ok ? ok({ parsed: parsed.value, image: null }) : parsed;
  } finally {
    await rm(scratch, { force: true }).catch(() => undefined);
  }
}

/** See the module comment; `started` is when the caller began (performance.now()). */
export async function saveState(parts: SaveParts, request: SaveRequest, started: number): Promise<Result<SaveReport>> {
  const copied = await copyOut(parts, request);
  if (!copied.ok) return copied;
  try {
    return await storeState(parts, request, copied.value.parsed, started);
  } finally {
    // Every chunk stored was copied out of it: the state copy can serve the next save or restore.
    if (copied.value.image !== null) parts.images.give(copied.value.image);
  }
}

async function storeState(parts: SaveParts, request: SaveRequest, parsed: ParsedState, started: number): Promise<Result<SaveReport>> {
  const { fp, state, manifestId } = request;
  const stateBytes = parsed.bytes.byteLength;
  if (!sameShape(parsed.shape, state.shape)) {
    state.disabled = 'KV persistence is off: this model\'s memory layout differs from what the KV store expects.';
    return err('NOT_SUPPORTED', state.disabled);
  }
  const size = parts.store.chunkTokens;
  const limit = request.cleanLimit;
  const plan = planChunks(parsed, size, limit === undefined ? {} : { limit });
  if (!plan.ok) return plan;
  const cleanLength = plan.value.cleanLength;
  const tokens = parsed.tokens.subarray(0, cleanLength);
  const fullChunks = plan.value.fullChunks;
  // Only what the store lacks is encoded: the callback runs for those chunks alone.
  let rawBytes = 0;
  const encode = (payload: Uint8Array): Uint8Array => {
    rawBytes += payload.byteLength;
    const stored = encodeChunk(state.shape, payload, parts.compression, parts.kernels);
    // Cannot happen for a payload planChunks made; the raw payload is a valid stored form anyway.
    return stored.ok ? stored.value : payload;
  };
  const put = await parts.store.putManifest(manifestId, {
    fingerprint: fp,
    tokens,
    chunks: (index) => (index < fullChunks ? encode(plan.value.chunk(index).payload) : undefined),
    ...(cleanLength > fullChunks * size ? { tailPayload: encode(plan.value.tail()!.payload) } : {}),
  });
  if (!put.ok) return put;
  if (request.replaces.length > 0) {
    const mine = parts.store.getManifest(manifestId);
    if (mine.ok) for (const id of request.replaces) if (id !== manifestId) await dropIfPrefix(parts.store, id, mine.value.chunks, tokens);
  }
  const budget = await parts.store.enforceBudget();
  const evicted = budget.ok && (budget.value.chunksRemoved > 0 || budget.value.bytesFreed > 0 || budget.value.deleted.length > 0 || budget.value.truncated.length > 0) ? budget.value : null;
  return ok({
    tokens: cleanLength,
    chunksWritten: put.value.chunksWritten,
    bytesWritten: put.value.bytesWritten + put.value.tailBytes,
    stateBytes,
    rawBytes,
    ms: Math.round((performance.now() - started) * 10) / 10,
    ...(evicted ? { evicted } : {}),
  });
}

/**
 * Deletes manifest `id` when it is a prefix of the manifest just saved (`keys`, `tokens`): it
 * adds nothing. Chunk keys are a hash chain, so equal keys mean equal tokens before them.
 */
async function dropIfPrefix(store: KvStore, id: string, keys: readonly string[], tokens: Int32Array): Promise<void> {
  const old = store.getManifest(id);
  if (!old.ok) return;
  const m = old.value;
  if (m.totalTokens > tokens.length || m.chunkTokens !== store.chunkTokens || m.chunks.length > keys.length) return;
  if (m.chunks.some((key, i) => key !== keys[i])) return;
  const start = m.chunks.length * m.chunkTokens;
  for (let i = 0; i < m.tail.tokens.length; i++) if (m.tail.tokens[i] !== tokens[start + i]) return;
  await store.deleteManifest(id);
}
