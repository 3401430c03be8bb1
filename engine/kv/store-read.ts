/**
 * The KV store's reads: prefix lookups, chunk reads for a restore, and manifest reads. They take
 * no lock: renames are atomic, and a file evicted under a reader is a verified `missing`, i.e. a
 * cache miss. A chunk found damaged is recorded at once (lookups stop before it) and the
 * manifests using it are cut there under the lock.
 */
import { crc32 } from 'node:zlib';
import { err, hearthError, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import type { ChunkData, ChunkFault } from './chunk-file.ts';
import { readChunkFile } from './chunk-file.ts';
import { chunkKeys, firstBadToken, isDigest, tokensFromBytes } from './fingerprint.ts';
import type { Manifest, ManifestRow, PrefixMatch, TailData, TailMatch } from './manifest.ts';
import { commonPrefix, toManifest } from './manifest.ts';
import type { ChunkRow, StoreContext } from './store-context.ts';
import { chunkRow, chunkRows, collectUnreferenced, deleteTailPayload, readIndex, sql, truncate, unlinkChunks, unlinkTails } from './store-context.ts';
import { transaction } from './store-db.ts';
import { claim } from './store-open.ts';
import type { ChatUsage, ChunkError, ChunkResult } from './store-types.ts';
import { isTailName, readTailFileSync } from './tail-file.ts';

/** The longest stretch `readChunks` and `forEachChunk` keep the event loop busy before yielding once. */
const readSliceMs = 20;
const faultText: Readonly<Record<ChunkFault, string>> = {
  missing: 'missing',
  truncated: 'truncated',
  magic: 'not a chunk file',
  version: 'from another format version',
  header: 'damaged (header checksum)',
  key: 'misplaced (key mismatch)',
  length: 'longer than its header says',
  checksum: 'damaged (checksum)',
  payload: 'undecodable',
  io: 'unreadable',
};

function chunkError(key: string, reason: ChunkFault, detail: string): ChunkError {
  const base = hearthError(
    reason === 'missing' ? 'NOT_FOUND' : 'INTERNAL',
    `KV chunk ${key.slice(0, 12)}… is ${faultText[reason]}: ${detail}.`,
    reason === 'io' ? undefined : 'The chat re-reads its history from this point.',
  );
  return { ...base, reason, key };
}

/** Why `tokens` is not a list of int32 token ids, or null. */
export function checkTokens(tokens: ArrayLike<number>): string | null {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') return 'tokens is not an array';
  const bad = firstBadToken(tokens);
  return bad === -1 ? null : `token ${bad} is not an int32 token id`;
}

export function findLongestPrefix(ctx: StoreContext, fingerprint: string, tokens: ArrayLike<number>): Result<PrefixMatch> {
  return readIndex(ctx, 'Could not look up the KV store', () => {
    if (!isDigest(fingerprint)) return err('INVALID_INPUT', 'The fingerprint is not a sha256 hex digest.');
    const bad = checkTokens(tokens);
    if (bad) return err('INVALID_INPUT', `Invalid tokens: ${bad}.`);
    const size = ctx.chunkTokens;
    const chunks: string[] = [];
    let head = fingerprint;
    let stop: PrefixMatch['stop'] = 'end';
    // Every key first (hashing is cheap), then one query for all of them: a query per chunk
    // cost ~1.5 ms of a 16k-token restore whose budget is a few ms over the read time.
    const keys = chunkKeys(fingerprint, tokens, size);
    const rows = chunkRows(ctx, keys, 'corrupt');
    for (const key of keys) {
      const row = rows.get(key);
      if (!row) {
        // A key some manifest lists but the index lacks is damage (an index rolled back or
        // edited behind the store's back), not a chunk never stored: the caller says so.
        stop = sql(ctx, 'SELECT 1 FROM manifest_chunks WHERE key = ? LIMIT 1').get(key) ? 'dangling' : 'absent';
        break;
      }
      if (row.corrupt !== null) {
        stop = 'corrupt';
        break;
      }
      chunks.push(key);
      head = key;
    }
    const chunkedTokens = chunks.length * size;
    const tail = bestTail(ctx, fingerprint, head, tokens, chunkedTokens);
    return ok({ chunks, chunkedTokens, stop, tail, tokens: chunkedTokens + (tail?.tokens ?? 0) });
  });
}

/**
 * Among the tails that continue `head` (any manifest), the one sharing the most next tokens. It
 * reads manifest rows only (tail_bytes), never a payload: those are read by `readTail`.
 */
function bestTail(ctx: StoreContext, fingerprint: string, head: string, tokens: ArrayLike<number>, start: number): TailMatch | null {
  if (start >= tokens.length) return null;
  const rows = sql(
    ctx,
    `SELECT id, tail_tokens, tail_bytes AS bytes FROM manifests
     WHERE head = ? AND fingerprint = ? AND tail_bytes IS NOT NULL
     ORDER BY last_used DESC`,
  ).all(head, fingerprint) as unknown as { id: string; tail_tokens: Uint8Array; bytes: number }[];
  let best: TailMatch | null = null;
  for (const row of rows) {
    const stored = tokensFromBytes(row.tail_tokens);
    const matched = commonPrefix(stored, tokens, start);
    if (matched > 0 && (best === null || matched > best.tokens)) {
      best = { manifestId: row.id, tokens: matched, storedTokens: stored.length, bytes: row.bytes };
    }
  }
  return best;
}

export function missingChunks(ctx: StoreContext, fingerprint: string, tokens: ArrayLike<number>): Result<number[]> {
  return readIndex(ctx, 'Could not look up the KV store', () => {
    if (!isDigest(fingerprint)) return err('INVALID_INPUT', 'The fingerprint is not a sha256 hex digest.');
    const bad = checkTokens(tokens);
    if (bad) return err('INVALID_INPUT', `Invalid tokens: ${bad}.`);
    const missing: number[] = [];
    chunkKeys(fingerprint, tokens, ctx.chunkTokens).forEach((key, index) => {
      const row = sql(ctx, 'SELECT corrupt FROM chunks WHERE key = ?').get(key) as { corrupt: string | null } | undefined;
      if (!row || row.corrupt !== null) missing.push(index);
    });
    return ok(missing);
  });
}

export async function forEachChunk(
  ctx: StoreContext,
  keys: readonly string[],
  visit: (chunk: ChunkData, index: number) => boolean,
): Promise<{ count: number; bytes: number; error: ChunkError | null }> {
  // Sizes first, so that one buffer (kept between restores: ReusableBuffer) holds every file.
  let indexed: Map<string, Pick<ChunkRow, 'bytes'>> = new Map();
  try {
    if (!ctx.closed) indexed = chunkRows(ctx, keys.filter(isDigest), 'bytes');
  } catch {
    // the index is unreadable: verify by the files alone
  }
  const sizes = keys.map((key) => indexed.get(key)?.bytes);
  const largest = sizes.reduce<number>((max, size) => Math.max(max, size ?? 0), 0);
  const reuse = largest > 0 ? ctx.readBuffer.get(largest + 1) : undefined;
  let bytes = 0;
  let sliceStart = performance.now();
  for (const [index, key] of keys.entries()) {
    const result = await readChunk(ctx, key, reuse, sizes[index]);
    if (!result.ok) return { count: index, bytes, error: result.error };
    bytes += result.value.bytes;
    if (!visit(result.value, index)) return { count: index, bytes, error: null };
    if (performance.now() - sliceStart > readSliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
  return { count: keys.length, bytes, error: null };
}

/** The size index.db records for chunk `key`; undefined when it has none or cannot say. */
function indexedBytes(ctx: StoreContext, key: string): number | undefined {
  if (ctx.closed || !isDigest(key)) return undefined;
  try {
    return chunkRow(ctx, key)?.bytes;
  } catch {
    // the index is unreadable: verify by the file alone
    return undefined;
  }
}

/**
 * Reads and verifies one chunk; a fault is recorded. `reuse`: a buffer to read into; `indexed`: the
 * chunk's size from the index when the caller looked it up (`indexedBytes`).
 */
export async function readChunk(ctx: StoreContext, key: string, reuse?: Buffer, indexed?: number): Promise<ChunkResult<ChunkData>> {
  if (ctx.closed) return { ok: false, error: { ...hearthError('INTERNAL', 'The KV store is closed.'), reason: 'io', key } };
  if (!isDigest(key)) return { ok: false, error: chunkError(String(key), 'missing', 'not a chunk key') };
  const expected = indexed ?? indexedBytes(ctx, key);
  const verdict = await readChunkFile(ctx.fs, ctx.root, key, ctx.kernels, expected, reuse);
  if (verdict.ok) return verdict;
  // An I/O error says nothing about the bytes (it may be transient); any other fault is recorded
  // so that lookups stop before this chunk and the manifests using it are cut there.
  if (verdict.fault !== 'io') {
    try {
      if (!ctx.closed && chunkRow(ctx, key)) await recordFault(ctx, key, verdict.fault);
    } catch (error) {
      console.error('Hearth: could not record a damaged KV chunk:', error);
    }
  }
  return { ok: false, error: chunkError(key, verdict.fault, verdict.detail) };
}

export async function recordDamage(ctx: StoreContext, key: string, detail: string): Promise<ChunkError> {
  try {
    if (!ctx.closed && isDigest(key) && chunkRow(ctx, key)) await recordFault(ctx, key, 'payload');
  } catch (error) {
    console.error('Hearth: could not record a damaged KV chunk:', error);
  }
  return chunkError(key, 'payload', detail);
}

export async function readChunks(ctx: StoreContext, keys: readonly string[]): Promise<{ chunks: ChunkData[]; error: ChunkError | null }> {
  const chunks: ChunkData[] = [];
  const inFlight: Promise<ChunkResult<ChunkData>>[] = [];
  let next = 0;
  const launch = (): void => {
    while (next < keys.length && inFlight.length < ctx.readConcurrency) inFlight.push(readChunk(ctx, keys[next++] as string));
  };
  // Reads of known-size chunks are synchronous (store-fs.ts `readIntoSync`): give the event
  // loop a turn every few milliseconds so that a long read from a slow disk does not stall it.
  let sliceStart = performance.now();
  launch();
  while (inFlight.length > 0) {
    const result = await (inFlight.shift() as Promise<ChunkResult<ChunkData>>);
    if (!result.ok) {
      await Promise.allSettled(inFlight);
      return { chunks, error: result.error };
    }
    chunks.push(result.value);
    if (performance.now() - sliceStart > readSliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
    launch();
  }
  return { chunks, error: null };
}

/**
 * Under the lock: a chunk found damaged at read time stops being used. Every manifest that
 * lists it is cut just before it (its later chunks were computed on top of it, and its tail
 * too), and chunks that nobody references any more are removed with their files.
 */
async function invalidate(ctx: StoreContext, key: string): Promise<void> {
  const row = chunkRow(ctx, key);
  if (!row || row.corrupt === null) return; // rewritten (repaired) or collected meanwhile
  const dropped: string[] = [];
  const freed = transaction(ctx.db, () => {
    const users = sql(ctx, 'SELECT manifest_id, idx FROM manifest_chunks WHERE key = ?').all(key) as unknown as { manifest_id: string; idx: number }[];
    for (const user of users) truncate(ctx, user.manifest_id, user.idx, dropped);
    return collectUnreferenced(ctx);
  });
  await unlinkChunks(ctx, freed.map((r) => r.key));
  await unlinkTails(ctx, dropped);
}

/** Records a fault seen at read time: at once (so lookups stop matching), then invalidates under the lock. */
async function recordFault(ctx: StoreContext, key: string, reason: ChunkFault): Promise<void> {
  if (ctx.closed) return;
  sql(ctx, 'UPDATE chunks SET corrupt = ? WHERE key = ?').run(reason, key);
  await ctx.lock
    .run(async () => {
      // A store locked out of its root only marks the chunk (lookups stop before it); the
      // holder cuts the manifests, and a save rewrites the file.
      if (!ctx.closed && (await claim(ctx)) === null) await invalidate(ctx, key);
    })
    .catch((error: unknown) => console.error('Hearth: could not invalidate a damaged KV chunk:', error));
}

export function getManifest(ctx: StoreContext, id: string): Result<Manifest> {
  return readIndex(ctx, 'Could not read the KV manifest', () => {
    const row = sql(
      ctx,
      `SELECT id, fingerprint, chunk_tokens, chunk_count, head, tail_tokens, tail_bytes, total_tokens, last_used, created_at
       FROM manifests WHERE id = ?`,
    ).get(id) as ManifestRow | undefined;
    if (!row) return err('NOT_FOUND', `No KV manifest ${id}.`);
    const keys = sql(ctx, 'SELECT key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx').all(id) as unknown as { key: string }[];
    return ok(toManifest(row, keys.map((k) => k.key)));
  });
}

export function manifestIds(ctx: StoreContext, prefix: string): Result<string[]> {
  return readIndex(ctx, 'Could not list KV manifests', () => {
    // substr instead of LIKE: ids may contain % and _.
    const rows = sql(ctx, 'SELECT id FROM manifests WHERE substr(id, 1, ?) = ? ORDER BY id').all(prefix.length, prefix) as unknown as { id: string }[];
    return ok(rows.map((r) => r.id));
  });
}

export function chatUsage(ctx: StoreContext, options: { readonly limit: number } | { readonly chatId: string }): Result<ChatUsage[]> {
  return readIndex(ctx, 'Could not read the KV store\'s chats', () => {
    const one = 'chatId' in options;
    if (one ? typeof options.chatId !== 'string' || options.chatId === '' : !(Number.isInteger(options.limit) && options.limit >= 0)) {
      return err('INVALID_INPUT', 'chatUsage needs a chatId or a whole-number limit.');
    }
    // A chunk two branches of one chat share (their common history) counts once for the chat.
    const chat = "CASE WHEN instr(id, '/') > 0 THEN substr(id, 1, instr(id, '/') - 1) ELSE id END";
    const where = one ? 'WHERE substr(id, 1, ?) = ?' : '';
    const rows = sql(
      ctx,
      `WITH m AS (SELECT id, ${chat} AS chat, total_tokens, last_used, coalesce(tail_bytes, 0) AS tail FROM manifests ${where}),
            per AS (SELECT chat, max(total_tokens) AS tokens, max(last_used) AS last_used, sum(tail) AS tail_bytes FROM m GROUP BY chat),
            used AS (SELECT DISTINCT m.chat AS chat, mc.key AS key FROM m JOIN manifest_chunks mc ON mc.manifest_id = m.id),
            chunk_bytes AS (SELECT used.chat AS chat, sum(c.bytes) AS bytes FROM used JOIN chunks c ON c.key = used.key GROUP BY used.chat)
       SELECT per.chat AS chat, per.tokens AS tokens, per.last_used AS last_used, per.tail_bytes + coalesce(chunk_bytes.bytes, 0) AS bytes
       FROM per LEFT JOIN chunk_bytes ON chunk_bytes.chat = per.chat
       ORDER BY bytes DESC, last_used DESC, chat ASC LIMIT ?`,
    ).all(...(one ? [options.chatId.length + 1, `${options.chatId}/`, 1] : [options.limit])) as unknown as { chat: string; tokens: number; last_used: number; bytes: number }[];
    return ok(rows.map((r) => ({ chatId: r.chat, tokens: r.tokens, bytes: r.bytes, lastUsed: r.last_used })));
  });
}

/** A tails row as `readTail` reads it, with its manifest's tail_bytes. */
interface TailRow {
  tail_tokens: Uint8Array;
  tail_bytes: number | null;
  /** 1 when the manifest has a tails row. */
  has_row: number;
  crc: number | null;
  file: string | null;
  /** Only rows written before tail files (store-db.ts) hold their payload here. */
  payload: Uint8Array | null;
}

/**
 * The manifest's tail tokens and verified payload. A payload stored as a file is read into the
 * store's tail buffer (`ctx.tailBuffer`) and returned as a view into it, valid until the next
 * `readTail` (see `KvStore.readTail`): a fresh buffer of tens of MB costs more to fault in than
 * reading the file (store-context.ts says how much). Synchronous, like the lookup before it: a
 * cached 8 MB tail file reads and checks in ~3 ms, with no thread-pool round trip.
 */
export function readTail(ctx: StoreContext, id: string): Result<TailData> {
  return readIndex(ctx, 'Could not read the KV tail', () => {
    const row = sql(
      ctx,
      `SELECT m.tail_tokens AS tail_tokens, m.tail_bytes AS tail_bytes, t.manifest_id IS NOT NULL AS has_row, t.crc AS crc, t.file AS file, t.payload AS payload
       FROM manifests m LEFT JOIN tails t ON t.manifest_id = m.id WHERE m.id = ?`,
    ).get(id) as TailRow | undefined;
    if (!row) return err('NOT_FOUND', `No KV manifest ${id}.`);
    const tokens = tokensFromBytes(row.tail_tokens);
    if (row.tail_bytes === null && !row.has_row) return ok({ tokens, payload: null });
    const payload = verifiedTail(ctx, row);
    if (payload instanceof Uint8Array) return ok({ tokens, payload });
    if ('io' in payload) return err('INTERNAL', `The KV tail of ${id} could not be read: ${payload.io}.`, 'The chat re-reads its last partial chunk.');
    dropDamagedTail(ctx, id, row.crc, row.file);
    return err('INTERNAL', `The KV tail of ${id} is damaged (${payload.damaged}).`, 'The chat re-reads its last partial chunk.');
  });
}

/**
 * A tails row's payload, verified: of the length its manifest records and with its checksum.
 * A manifest that counts a payload its tails row lacks, or the reverse (an index edited behind
 * the store's back), a missing, short, long or altered file, and a row whose file name is not a
 * tail file's are all damage. An I/O error (`io`) says nothing about the bytes: the tail is kept.
 */
function verifiedTail(ctx: StoreContext, row: TailRow): Uint8Array | { damaged: string } | { io: string } {
  const bytes = row.tail_bytes;
  if (bytes === null || !row.has_row) return { damaged: 'its manifest and its row disagree' };
  let payload: Uint8Array;
  if (row.payload !== null) {
    payload = row.payload;
    if (payload.length !== bytes) return { damaged: 'length' };
  } else {
    if (!isTailName(row.file)) return { damaged: 'no file' };
    const buffer = ctx.tailBuffer.get(bytes + 1).subarray(0, bytes + 1);
    const read = readTailFileSync(ctx.fs, ctx.root, row.file, buffer);
    if (!read.ok) return read.missing ? { damaged: 'missing' } : { io: read.detail };
    if (read.bytes !== bytes) return { damaged: read.bytes < bytes ? 'truncated' : 'length' };
    payload = buffer.subarray(0, bytes);
  }
  return crc32(payload) === row.crc ? payload : { damaged: 'checksum' };
}

/**
 * Drops exactly the damaged tail `readTail` read (`crc` and `file`: its tails row's, null when it
 * had none), not a newer one another process holding the root may have saved since, keeping the
 * tail's tokens: the chat then re-reads its last partial chunk. It needs no lock: one synchronous
 * transaction, which no write of this process can interleave. The file is removed after it
 * commits, without waiting (a failure leaves an orphan for the sweep).
 */
function dropDamagedTail(ctx: StoreContext, id: string, crc: number | null, file: string | null): void {
  const dropped: string[] = [];
  transaction(ctx.db, () => {
    const current = sql(ctx, 'SELECT crc, file FROM tails WHERE manifest_id = ?').get(id) as { crc: number; file: string | null } | undefined;
    if ((current?.crc ?? null) !== crc || (current?.file ?? null) !== file) return;
    sql(ctx, 'UPDATE manifests SET tail_bytes = NULL WHERE id = ?').run(id);
    deleteTailPayload(ctx, id, dropped);
  });
  void unlinkTails(ctx, dropped);
}
