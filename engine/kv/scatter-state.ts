/**
 * Full chunks of a state read straight into their places in an in-memory state image: the
 * codec's layout (StateFileWriter `claim`, the payload header check) joined to the store's
 * scatter read (store-scatter.ts). One place for that join, for the restore path
 * (engine/worker/kv-assemble.ts) and its tests.
 */
import { CHUNK_HEADER_BYTES, checkChunkHeader, chunkPayloadSize } from './chunk-payload.ts';
import type { StateShape } from './state-file.ts';
import type { StateFileWriter } from './state-file-writer.ts';
import type { KvStore, ScatterResult } from './store.ts';

/**
 * Reads the full chunks `keys` (from token 0) into `writer`'s image, each claimed at its place.
 * `done: false` when the scatter read does not apply or anything is off: the writer is then
 * partly written and should be discarded. Never throws.
 */
export function scatterIntoWriter(store: KvStore, writer: StateFileWriter, shape: StateShape, keys: readonly string[]): Promise<ScatterResult> {
  const image = writer.image;
  if (image === null) return Promise.resolve({ done: false });
  const n = store.chunkTokens;
  const payloadBytes = chunkPayloadSize(shape, n);
  const tokensAt: number[] = [];
  return store.scatterChunks(keys, {
    image,
    payloadBytes,
    payloadHeadBytes: CHUNK_HEADER_BYTES + 4 * n,
    place: (index) => {
      const claimed = writer.claim(index * n, n);
      if (!claimed.ok) return null;
      tokensAt[index] = claimed.value.tokensAt;
      return { pieces: claimed.value.pieces };
    },
    acceptHead: (index, head) => {
      const info = checkChunkHeader(head, payloadBytes, shape);
      if (!info.ok || info.value.start !== index * n || info.value.length !== n) return false;
      image.set(head.subarray(CHUNK_HEADER_BYTES), tokensAt[index]!);
      return true;
    },
  });
}
