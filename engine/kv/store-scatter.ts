/**
 * Restoring at memory speed: chunk files read straight into their places in a state image by the
 * native addon (`readScatter`), in parallel, each checksummed while its bytes are in the CPU
 * cache, then verified here exactly as `verifyChunk` verifies a file read whole (header, size,
 * CRC-32C of the body, the key chain). One pass over the bytes instead of read, checksum and copy.
 *
 * It applies only where nothing needs decoding: chunks stored raw (compression `off`, so the file
 * size is the raw one), format version 2, on the real file system, with the addon loaded.
 * Anything else, and any fault at all, answers `done: false` and the caller reads the usual way
 * (store-read.ts), which reports and records faults with their reasons: this path never decides
 * that a chunk is damaged.
 */
import { availableParallelism } from 'node:os';
import { chunkFileBytes, chunkHeaderBytes, chunkPath, verifyChunkHead } from './chunk-file.ts';
import { nativeReadScatter } from './kernels-load.ts';
import { chunkRows, type StoreContext } from './store-context.ts';
import { nodeFs } from './store-fs.ts';

/** Where a chunk's payload goes: K/V row runs in payload order, as [image offset, length] pairs. */
export interface ScatterPlacement {
  readonly pieces: readonly number[];
}

export interface ScatterRequest {
  /** The image the rows go into. */
  readonly image: Uint8Array;
  /** A full chunk's raw payload size (its header, tokens and rows). */
  readonly payloadBytes: number;
  /** The payload's leading bytes that are not rows (its header and token list). */
  readonly payloadHeadBytes: number;
  /** Where chunk `index`'s rows go; null to give up (the caller then reads the usual way). */
  place(index: number): ScatterPlacement | null;
  /** Checks chunk `index`'s payload head (and takes its tokens); false to give up. */
  acceptHead(index: number, head: Uint8Array): boolean;
}

export type ScatterResult = { readonly done: true; readonly bytes: number } | { readonly done: false };

/** Parallel reads: beyond the cores they only contend, and past four the page cache is the limit. */
const threads = Math.max(1, Math.min(4, availableParallelism()));

/** See the module comment. Never throws. */
export async function scatterChunks(ctx: StoreContext, keys: readonly string[], request: ScatterRequest): Promise<ScatterResult> {
  const reader = nativeReadScatter();
  if (reader === null || ctx.fs !== nodeFs || ctx.closed || keys.length === 0) return { done: false };
  const n = ctx.chunkTokens;
  const fileBytes = chunkFileBytes(n, request.payloadBytes);
  const headBytes = chunkHeaderBytes + 4 * n + request.payloadHeadBytes;
  let rows: Map<string, { bytes: number }>;
  try {
    rows = chunkRows(ctx, keys, 'bytes');
  } catch {
    return { done: false };
  }
  // A size other than the raw one is an encoded (compressed) chunk: it needs decoding.
  if (keys.some((key) => rows.get(key)?.bytes !== fileBytes)) return { done: false };
  const heads = Buffer.allocUnsafe(keys.length * headBytes);
  const headStarts = new Float64Array(keys.length + 1);
  const pieceStarts = new Float64Array(keys.length + 1);
  const pieces: number[] = [];
  for (let i = 0; i < keys.length; i++) {
    headStarts[i + 1] = (i + 1) * headBytes;
    const placement = request.place(i);
    if (placement === null) return { done: false };
    pieces.push(...placement.pieces);
    pieceStarts[i + 1] = pieces.length / 2;
  }
  let results: (number | string)[];
  try {
    const paths = keys.map((key) => chunkPath(ctx.root, key));
    const sizes = new Float64Array(keys.length).fill(fileBytes);
    results = await reader(paths, sizes, heads, headStarts, pieceStarts, Float64Array.from(pieces), request.image, threads);
  } catch {
    return { done: false };
  }
  for (const [i, key] of keys.entries()) {
    const crc = results[i];
    if (typeof crc !== 'number') return { done: false };
    const head = heads.subarray(i * headBytes, (i + 1) * headBytes);
    const verdict = verifyChunkHead(head, key, ctx.kernels, fileBytes, crc);
    if (verdict === null || !verdict.ok) return { done: false };
    const payloadHead = head.subarray(chunkHeaderBytes + 4 * n);
    // The payload repeats the file's tokens: they must agree, as the usual read's decode checks.
    if (!payloadHead.subarray(payloadHead.length - 4 * n).equals(head.subarray(chunkHeaderBytes, chunkHeaderBytes + 4 * n))) return { done: false };
    if (!request.acceptHead(i, payloadHead)) return { done: false };
  }
  return { done: true, bytes: keys.length * fileBytes };
}
