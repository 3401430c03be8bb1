/**
 * Manifests: the chunk list of one chat branch, and what a prefix lookup
 * returns. The rows live in `<root>/index.db` (store-db.ts).
 */
import { tokensFromBytes } from './fingerprint.ts';

/** What `putManifest` stores for one chat branch. */
export interface ManifestInput {
  /** The fingerprint the branch's KV was computed under (`fingerprint()`). */
  readonly fingerprint: string;
  /**
   * The branch's tokens whose KV is being saved: a clean prefix of the sequence (never
   * what lies beyond the clean prefix of a fragmented cache). The store cuts them into
   * full chunks of its `chunkTokens`; the rest is the tail.
   */
  readonly tokens: ArrayLike<number>;
  /**
   * The payload of full chunk `index` (key `key`). Only asked for chunks the store does not hold
   * (or holds damaged), so the caller can cut lazily; an array works too (holes are allowed for
   * chunks the caller knows are stored). Returning undefined for a chunk the store needs fails
   * with NOT_FOUND, and nothing is changed.
   */
  readonly chunks?: ReadonlyArray<Uint8Array | undefined> | ((index: number, key: string) => Uint8Array | undefined | Promise<Uint8Array | undefined>);
  /** Optional KV of the tail tokens (a partial chunk). Without it, a restore re-reads the tail. */
  readonly tailPayload?: Uint8Array;
}

/** A stored manifest (the tail payload itself is read with `readTail`). */
export interface Manifest {
  readonly id: string;
  readonly fingerprint: string;
  /** The chunk size it was cut with. */
  readonly chunkTokens: number;
  /** Its chunk keys, in order. */
  readonly chunks: readonly string[];
  readonly tail: {
    readonly tokens: Int32Array;
    /** The tail payload's length; 0 when only the tail's tokens are kept. */
    readonly bytes: number;
  };
  /** chunks.length × chunkTokens + tail tokens. */
  readonly totalTokens: number;
  readonly lastUsed: number;
  readonly createdAt: number;
}

/** A manifest's tail, verified. */
export interface TailData {
  readonly tokens: Int32Array;
  /** null when the manifest keeps only the tail's tokens. */
  readonly payload: Uint8Array | null;
}

/** The stored tail that best continues a prefix match. */
export interface TailMatch {
  readonly manifestId: string;
  /** Tokens of the tail that equal the request's next tokens (≥ 1). */
  readonly tokens: number;
  /**
   * The tail's stored token count. When larger than `tokens`, the caller must cut the payload to
   * its first `tokens` tokens (the codec can: cells are sorted by position) before loading it.
   */
  readonly storedTokens: number;
  /** The tail payload's length. */
  readonly bytes: number;
}

/** The longest stored prefix of a token sequence, over every manifest of the store. */
export interface PrefixMatch {
  /** Keys of the stored full chunks that continue the chain from the start, in order. */
  readonly chunks: readonly string[];
  /** Tokens those chunks cover: chunks.length × chunkTokens. */
  readonly chunkedTokens: number;
  /**
   * Why the run of chunks ended: every full chunk of the request matched (`end`), the next key
   * was never stored or was evicted (`absent`), it is known to be corrupt (`corrupt`), or a
   * manifest lists it but the index has no row for it (`dangling`: the index is damaged).
   */
  readonly stop: 'end' | 'absent' | 'corrupt' | 'dangling';
  /** A stored tail that continues the run, or null. */
  readonly tail: TailMatch | null;
  /** Tokens restorable in all: chunkedTokens + tail.tokens. */
  readonly tokens: number;
}

/** The row shape of `manifests` (store-db.ts). */
export interface ManifestRow {
  id: string;
  fingerprint: string;
  chunk_tokens: number;
  chunk_count: number;
  head: string;
  tail_tokens: Uint8Array;
  tail_bytes: number | null;
  total_tokens: number;
  last_used: number;
  created_at: number;
}

export function toManifest(row: ManifestRow, chunks: readonly string[]): Manifest {
  return {
    id: row.id,
    fingerprint: row.fingerprint,
    chunkTokens: row.chunk_tokens,
    chunks,
    tail: { tokens: tokensFromBytes(row.tail_tokens), bytes: row.tail_bytes ?? 0 },
    totalTokens: row.total_tokens,
    lastUsed: row.last_used,
    createdAt: row.created_at,
  };
}

/** Length of the common prefix of `stored` and `tokens[start..]`. */
export function commonPrefix(stored: Int32Array, tokens: ArrayLike<number>, start: number): number {
  const n = Math.min(stored.length, tokens.length - start);
  let i = 0;
  while (i < n && stored[i] === tokens[start + i]) i++;
  return i;
}
