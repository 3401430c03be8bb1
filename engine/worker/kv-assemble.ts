/**
 * A restore's work before llama.cpp's load: the longest stored prefix of the prompt, its chunks
 * and tail read, verified and decoded, laid out as a state file: in memory (an image for the
 * state bridge, engine/worker/state-transfer.ts), or as the scratch file `loadStateFromFile` reads.
 * A damaged chunk or tail ends the restore at the chunks before it, with the reason for the
 * readout. With flash attention on, chunks are written one at a time into their place (one
 * decoded chunk in memory besides the state); with it off, V is transposed, so every chunk
 * interleaves in the state and all are decoded before it is laid out
 * (docs/decisions/state-file-layout.md).
 */
import type { Token } from 'node-llama-cpp';
import { ok, type Result } from '../contract/index.ts';
import { assembleStateFile, chunkPayloadSize, StateFileWriter, truncateChunk, writeStateFile, type StateShape } from '../kv/codec.ts';
import { decodeChunk } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import type { TailMatch } from '../kv/manifest.ts';
import type { LargeBufferPool } from '../kv/large-buffer.ts';
import { scatterIntoWriter } from '../kv/scatter-state.ts';
import type { KvStore } from '../kv/store.ts';
import type { ReusableBuffer } from '../kv/store-fs.ts';
import { removeScratchSync, type ScratchFiles } from './kv-scratch.ts';

/** Where an assembled state is: a scratch state file, or a state file image in memory. */
export type StateSource = { readonly file: string } | { readonly image: Buffer };

/**
 * A state assembled from the store: what llama.cpp's loader would read. Disposing it removes a
 * scratch file, or gives an image's memory back to the pool it came from.
 */
export interface AssembledState extends Disposable {
  readonly source: StateSource;
  /** The tokens it holds: a prefix of the request. */
  readonly tokens: number;
  /** Chunk file and tail bytes read. */
  readonly bytesRead: number;
  /** Why it holds less than the store first offered (a damaged chunk or tail), when it does. */
  readonly fallbackReason?: string;
  /** The manifest whose tail it includes (marked used after a load). */
  readonly tailManifestId?: string;
}

/** Nothing to load: the store holds no more than `have`, or cannot be used (`reason`). */
export interface NotAssembled {
  readonly source: null;
  readonly bytesRead: number;
  readonly reason?: string;
}

/** What assembling uses of its KvCache. */
export interface AssembleParts {
  readonly store: KvStore;
  readonly kernels: CodecKernels;
  readonly scratch: ScratchFiles;
  /** Assemble into memory (the state bridge is on) or into a scratch file. */
  readonly target: 'memory' | 'file';
  /** Where in-memory images come from (flash attention on) and go back to. */
  readonly images: LargeBufferPool;
  /** The decoded chunk on the flash-attention path, kept between restores. */
  readonly decodeBuffer: ReusableBuffer;
}

export interface AssembleRequest {
  readonly fp: string;
  readonly shape: StateShape;
  readonly tokens: readonly Token[];
  /** Tokens the sequence already holds: only more than that is worth a load. */
  readonly have: number;
  /** Why the chat's own KV is stored under another fingerprint, when it is (KvCache's `#otherSettings`). */
  readonly otherSettings?: () => string | undefined;
}

interface UsableTail {
  readonly payload: Uint8Array;
  readonly tokens: number;
  readonly bytes: number;
}

/** A decoded tail; `failed` says why it cannot be used; `{}` when there is none. */
type DecodedTail = UsableTail | { failed: string } | Record<string, never>;

const isUsable = (tail: DecodedTail): tail is UsableTail => 'payload' in tail;

/** See the module comment. Never throws. */
export async function assembleState(parts: AssembleParts, request: AssembleRequest): Promise<AssembledState | NotAssembled> {
  const { fp, shape, tokens, have } = request;
  if (tokens.length < 2) return { source: null, bytesRead: 0 };
  const wanted = tokens.slice(0, tokens.length - 1);
  const match = parts.store.findLongestPrefix(fp, wanted);
  if (!match.ok) return { source: null, bytesRead: 0, reason: `The KV store could not be searched: ${match.error.message}` };
  const size = parts.store.chunkTokens;
  const reasons: string[] = [];
  if (match.value.stop === 'corrupt') reasons.push(`chunk ${match.value.chunks.length} is damaged; re-read from token ${match.value.chunkedTokens}`);
  if (match.value.stop === 'dangling') {
    reasons.push(`chunk ${match.value.chunks.length} is listed by a manifest but missing from the KV index (dangling reference); re-read from token ${match.value.chunkedTokens}`);
  }
  const reason = (): string | undefined => (reasons.length > 0 ? reasons.join('; ') : undefined);
  if (match.value.tokens <= have) {
    // The chat's own KV may be stored under another fingerprint (its cache settings changed): say so.
    const other = request.otherSettings?.();
    if (other !== undefined) reasons.push(other);
    return { source: null, bytesRead: 0, ...(reason() !== undefined ? { reason: reason()! } : {}) };
  }
  const tail = decodedTail(parts, shape, match.value.tail);
  const tailManifestId = match.value.tail?.manifestId;
  let keys = match.value.chunks;
  /** Set when a chunk failed: the chunks before it still hold, and the general path restores them. */
  let fault: string | null = null;

  if (!shape.vTrans) {
    const usableTail = isUsable(tail) ? tail : null;
    const total = keys.length * size + (usableTail?.tokens ?? 0);
    if (total > have) {
      const streamed = (await scatterIntoImage(parts, shape, keys, usableTail, total)) ?? (await writeChunkByChunk(parts, shape, keys, usableTail, total));
      if ('source' in streamed) {
        if ('failed' in tail) reasons.push(`${tail.failed}; re-read from token ${keys.length * size}`);
        return assembled(parts, streamed.source, total, streamed.bytesRead, reason(), usableTail ? tailManifestId : undefined);
      }
      fault = streamed.fault;
      keys = streamed.keys;
    }
  }

  const read = await parts.store.readChunks(keys);
  let bytesRead = read.chunks.reduce((sum, c) => sum + c.bytes, 0);
  // read.error, when set, is the earliest fault (it stops before `fault`'s chunk).
  if (read.error !== null) fault = `chunk ${read.chunks.length} failed verification (${read.error.reason})`;
  const payloads: Uint8Array[] = [];
  for (const chunk of read.chunks) {
    const raw = decodeChunk(shape, chunk.payload, parts.kernels);
    if (!raw.ok) {
      await parts.store.recordDamage(chunk.key, raw.error.message);
      fault = `chunk ${payloads.length} could not be decoded (${raw.error.message})`;
      break;
    }
    payloads.push(raw.value);
  }
  let total = payloads.length * size;
  let tailPayload: Uint8Array | null = null;
  if (fault !== null) {
    reasons.push(`${fault}; re-read from token ${total}`);
  } else if (isUsable(tail)) {
    tailPayload = tail.payload;
    total += tail.tokens;
    bytesRead += tail.bytes;
  } else if ('failed' in tail) {
    reasons.push(`${tail.failed}; re-read from token ${total}`);
  }
  if (total <= have) return { source: null, bytesRead, ...(reason() !== undefined ? { reason: reason()! } : {}) };

  const source = await layOut(parts, shape, payloads, tailPayload);
  if (!source.ok) return { source: null, bytesRead, reason: `The stored KV could not be assembled: ${source.error.message}` };
  return assembled(parts, source.value, total, bytesRead, reason(), tailPayload ? tailManifestId : undefined);
}

/** The general path's state: one image in memory, or a scratch file. */
async function layOut(parts: AssembleParts, shape: StateShape, payloads: readonly Uint8Array[], tail: Uint8Array | null): Promise<Result<StateSource>> {
  if (parts.target === 'memory') {
    const image = assembleStateFile(shape, payloads, tail);
    return image.ok ? ok({ image: image.value }) : image;
  }
  const scratch = parts.scratch.next();
  const written = await writeStateFile(scratch, shape, payloads, tail);
  if (!written.ok) {
    removeScratchSync(scratch);
    return written;
  }
  parts.scratch.counted(written.value.bytes);
  return ok({ file: scratch });
}

/**
 * The fastest flash-attention path, into memory: raw chunks read straight into their places in the
 * image (the KV store's `scatterChunks`), then the tail. null when it does not apply or anything
 * is off; `writeChunkByChunk` then does the same work the usual way, and finds any fault.
 */
async function scatterIntoImage(parts: AssembleParts, shape: StateShape, keys: readonly string[], tail: UsableTail | null, total: number): Promise<{ source: StateSource; bytesRead: number } | null> {
  if (parts.target !== 'memory' || keys.length === 0) return null;
  const writer = StateFileWriter.inMemory(shape, total, {}, (size) => parts.images.take(size));
  if (!writer.ok) return null;
  const image = writer.value.image!;
  const scattered = await scatterIntoWriter(parts.store, writer.value, shape, keys);
  const finished = scattered.done && (tail === null || writer.value.put(tail.payload).ok) ? writer.value.finish() : null;
  if (!scattered.done || !finished?.ok) {
    writer.value.close();
    parts.images.give(image);
    return null;
  }
  return { source: { image }, bytesRead: scattered.bytes + (tail?.bytes ?? 0) };
}

/**
 * The flash-attention path: each chunk is decoded into one reused buffer and written to its place
 * in the file before the next is read. On a fault it says which chunk, and the keys before it
 * (the general path then restores those); `fault` null with every key means retry them all.
 */
async function writeChunkByChunk(
  parts: AssembleParts,
  shape: StateShape,
  keys: readonly string[],
  tail: UsableTail | null,
  total: number,
): Promise<{ source: StateSource; bytesRead: number } | { fault: string | null; keys: readonly string[] }> {
  const scratch = parts.target === 'file' ? parts.scratch.next() : null;
  let keep = false;
  try {
    const writer = scratch === null ? StateFileWriter.inMemory(shape, total, {}, (size) => parts.images.take(size)) : StateFileWriter.open(scratch, shape, total);
    if (!writer.ok) return { fault: null, keys };
    let placed = true;
    let undecodable: { index: number; key: string; message: string } | null = null;
    const buffer = parts.decodeBuffer.get(chunkPayloadSize(shape, parts.store.chunkTokens));
    const read = await parts.store.forEachChunk(keys, (chunk, index) => {
      const raw = decodeChunk(shape, chunk.payload, parts.kernels, buffer);
      if (!raw.ok) {
        undecodable = { index, key: chunk.key, message: raw.error.message };
        return false;
      }
      return (placed = writer.value.put(raw.value).ok);
    });
    const failed = undecodable as { index: number; key: string; message: string } | null;
    if (read.error === null && failed === null && placed && read.count === keys.length) {
      const finished = tail === null ? writer.value.finish() : writer.value.put(tail.payload).ok ? writer.value.finish() : null;
      if (finished?.ok) {
        keep = true;
        const bytesRead = read.bytes + (tail?.bytes ?? 0);
        if (scratch === null) return { source: { image: writer.value.image! }, bytesRead };
        parts.scratch.counted(finished.value.bytes);
        return { source: { file: scratch }, bytesRead };
      }
    }
    writer.value.close();
    if (writer.value.image !== null) parts.images.give(writer.value.image);
    if (read.error !== null) return { fault: `chunk ${read.count} failed verification (${read.error.reason})`, keys: keys.slice(0, read.count) };
    if (failed !== null) {
      await parts.store.recordDamage(failed.key, failed.message);
      return { fault: `chunk ${failed.index} could not be decoded (${failed.message})`, keys: keys.slice(0, failed.index) };
    }
    return { fault: null, keys };
  } finally {
    if (!keep && scratch !== null) removeScratchSync(scratch);
  }
}

function assembled(parts: AssembleParts, source: StateSource, tokens: number, bytesRead: number, fallbackReason: string | undefined, tailManifestId: string | undefined): AssembledState {
  return {
    source,
    tokens,
    bytesRead,
    ...(fallbackReason !== undefined ? { fallbackReason } : {}),
    ...(tailManifestId !== undefined ? { tailManifestId } : {}),
    [Symbol.dispose]: () => {
      if ('file' in source) removeScratchSync(source.file);
      else parts.images.give(source.image);
    },
  };
}

/**
 * The matched tail's verified, decoded payload, cut to the tokens that match; `{}` without a
 * tail; `failed` (the restore says why) when it cannot be used.
 */
function decodedTail(parts: AssembleParts, shape: StateShape, match: TailMatch | null): DecodedTail {
  if (match === null) return {};
  // The payload is a view of the store's read buffer, valid until its next readTail: restores
  // run one at a time (turns are serialized under the engine lock), so it outlives this restore.
  const tail = parts.store.readTail(match.manifestId);
  if (!tail.ok) return { failed: 'the last partial chunk failed verification' };
  if (!tail.value.payload) return {};
  const raw = decodeChunk(shape, tail.value.payload, parts.kernels);
  if (!raw.ok) return { failed: `the last partial chunk could not be decoded (${raw.error.message})` };
  const cut = match.tokens === match.storedTokens ? ok(raw.value) : truncateChunk(shape, raw.value, match.tokens);
  if (!cut.ok) return { failed: `the last partial chunk could not be cut (${cut.error.message})` };
  return { payload: cut.value, tokens: match.tokens, bytes: tail.value.payload.byteLength };
}
