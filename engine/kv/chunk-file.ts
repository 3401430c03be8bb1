/**
 * Chunk files: `<root>/chunks/<key[0..2]>/<key>.kvc`, one per chunk key, written atomically and
 * verified before a single byte is handed out. The layout and why its checksum is a CRC are
 * described below the imports.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { chainKey, tokenBytes, tokensFromBytes } from './fingerprint.ts';
import type { CodecKernels } from './kernels.ts';
import type { StoreFileHandle, StoreFs } from './store-fs.ts';
import { errnoOf } from './store-fs.ts';
import { errorText } from '../contract/index.ts';

/**
 * Layout (all little-endian; 96-byte header, then the body):
 *
 *   0  magic "HKVF"                      4 bytes   (the codec's payloads start with "HKVC")
 *   4  format version (2; 1 is read)     u16
 *   6  header length (96)                u16   so a later version can grow the header
 *   8  token count                       u32
 *  12  checksum of the body              u32   body = tokens ‖ payload
 *  16  payload length                    u64
 *  24  key                               32 bytes (raw sha256)
 *  56  parent (previous key or the fingerprint)  32 bytes
 *  88  checksum of bytes 0..88           u32   a flipped length/count is reported as such, not misparsed
 *  92  reserved (0)                      u32
 *  96  tokens                            int32 × token count
 *   …  payload                           the stored payload, opaque here (frame.ts: raw or compressed)
 *
 * The checksum is CRC-32C (Castagnoli) in version 2, computed by the codec kernels (kernels.ts:
 * the native addon, or its TypeScript fallback), and zlib's CRC-32 in version 1. Both are read:
 * the reader accepts every version it ever wrote. Since the body checksum covers the stored (compressed) bytes, a damaged compressed
 * chunk is caught before zstd ever sees it.
 *
 * Why a CRC and not sha256: the checksum guards against accidental damage (bit rot, torn or
 * truncated writes, a stray editor), not an adversary: anyone who can write the data directory can
 * also rewrite the index. crc32 catches every single-bit flip and every burst up to 32 bits, and a
 * random corruption with probability 1 − 2⁻³²; the length and key checks catch truncation and
 * misplaced files on their own. And it is on the restore path, whose budget is ≤ 2 × the plain
 * read time + 10 ms: zlib's crc32 ran at ~5 GB/s here against ~1.3 GB/s for sha256,
 * which would have cost more than the read itself for a cached file. Content addressing does not
 * need a payload hash either: keys address tokens (the hash chain), not bytes. The tokens and the
 * parent ARE verified cryptographically: the key must equal sha256(parent ‖ tokens).
 */

export const chunkMagic = Buffer.from('HKVF', 'latin1');
/** The version written; every version listed in `readableVersions` is read. */
export const chunkFormatVersion = 2;
const readableVersions = new Set([1, 2]);
export const chunkHeaderBytes = 96;
/** Chunk file name suffix. */
export const chunkSuffix = '.kvc';
/** Temp file suffix: a file with it is never read, and `gc()` removes it. */
export const tempSuffix = '.tmp';

/**
 * Why a chunk could not be returned. `io` is a read error that says nothing about the bytes
 * (EACCES, EIO); every other fault means the file is gone or damaged. `payload`: the file
 * verified, but its payload does not decode (reported by the reader, `KvStore.recordDamage`).
 */
export type ChunkFault = 'missing' | 'truncated' | 'magic' | 'version' | 'header' | 'key' | 'length' | 'checksum' | 'payload' | 'io';

/** A verified chunk. `payload` is a view into one buffer holding the file. */
export interface ChunkData {
  readonly key: string;
  /** The previous chunk's key, or the fingerprint for a first chunk. */
  readonly parent: string;
  readonly tokens: Int32Array;
  readonly payload: Uint8Array;
  /** The file's size in bytes (header + tokens + payload). */
  readonly bytes: number;
}

/** What to write: the store has already checked that `key = chainKey(parent, tokens)`. */
export interface ChunkWrite {
  readonly key: string;
  readonly parent: string;
  readonly tokens: ArrayLike<number>;
  readonly payload: Uint8Array;
}

export type ChunkVerdict = { readonly ok: true; readonly value: ChunkData } | { readonly ok: false; readonly fault: ChunkFault; readonly detail: string };

/** The size of a chunk's file. */
export function chunkFileBytes(tokenCount: number, payloadLength: number): number {
  return chunkHeaderBytes + 4 * tokenCount + payloadLength;
}

/** `<root>/chunks`. */
export function chunksDir(root: string): string {
  return join(root, 'chunks');
}

/** The fan-out directory of a key: 256 directories keep each one small on every file system. */
export function chunkDir(root: string, key: string): string {
  return join(chunksDir(root), key.slice(0, 2));
}

export function chunkPath(root: string, key: string): string {
  return join(chunkDir(root, key), `${key}${chunkSuffix}`);
}

/** The checksum a file of format `version` uses: zlib's CRC-32 (1) or CRC-32C (2). */
function checksumOf(version: number, kernels: CodecKernels): (data: Uint8Array, seed?: number) => number {
  return version === 1 ? crc32 : (data, seed) => kernels.crc32c(data, seed);
}

function encodeHeader(key: string, parent: string, tokenCount: number, payloadLength: number, bodyCrc: number, kernels: CodecKernels): Buffer {
  const header = Buffer.alloc(chunkHeaderBytes);
  chunkMagic.copy(header, 0);
  header.writeUInt16LE(chunkFormatVersion, 4);
  header.writeUInt16LE(chunkHeaderBytes, 6);
  header.writeUInt32LE(tokenCount, 8);
  header.writeUInt32LE(bodyCrc, 12);
  header.writeBigUInt64LE(BigInt(payloadLength), 16);
  Buffer.from(key, 'hex').copy(header, 24);
  Buffer.from(parent, 'hex').copy(header, 56);
  header.writeUInt32LE(kernels.crc32c(header.subarray(0, 88)), 88);
  return header;
}

/** What a verified chunk file header says. */
interface ChunkHead {
  readonly version: number;
  readonly tokenCount: number;
  /** The file's size the header implies (header + tokens + payload). */
  readonly fileBytes: number;
  readonly bodyCrc: number;
  readonly parent: string;
}

/**
 * Checks a chunk file's 96-byte header (any readable version) against the key it was asked for:
 * everything but the body. `head` may be longer than the header. Never throws.
 */
function checkHead(head: Buffer, key: string, kernels: CodecKernels): ChunkHead | { fault: ChunkFault; detail: string } {
  const fail = (fault: ChunkFault, detail: string): { fault: ChunkFault; detail: string } => ({ fault, detail });
  if (head.length < chunkHeaderBytes) return fail('truncated', `the file has ${head.length} bytes, less than its header`);
  if (!head.subarray(0, 4).equals(chunkMagic)) return fail('magic', 'the file does not start with HKVF');
  const version = head.readUInt16LE(4);
  if (!readableVersions.has(version)) return fail('version', `format version ${version}, this build reads ${[...readableVersions].join(' and ')}`);
  if (head.readUInt32LE(88) !== checksumOf(version, kernels)(head.subarray(0, 88))) return fail('header', 'the header checksum does not match');
  if (head.readUInt16LE(6) !== chunkHeaderBytes) return fail('header', 'unexpected header length');
  // Outside the header checksum, and every version wrote zeros there: anything else is damage
  // (the fault suite flips random header bits; these would otherwise pass unnoticed).
  if (head.readUInt32LE(92) !== 0) return fail('header', 'the reserved header bytes are not zero');
  const stored = head.toString('hex', 24, 56);
  if (stored !== key) return fail('key', `the file holds chunk ${stored.slice(0, 12)}…`);
  const tokenCount = head.readUInt32LE(8);
  const payloadLength = head.readBigUInt64LE(16);
  if (payloadLength > BigInt(Number.MAX_SAFE_INTEGER)) return fail('length', 'impossible payload length');
  return { version, tokenCount, fileBytes: chunkFileBytes(tokenCount, Number(payloadLength)), bodyCrc: head.readUInt32LE(12), parent: head.toString('hex', 56, 88) };
}

/** Checks a whole chunk file's bytes (any readable version) against the key it was asked for. Never throws. */
export function verifyChunk(file: Uint8Array, key: string, kernels: CodecKernels): ChunkVerdict {
  const fail = (fault: ChunkFault, detail: string): ChunkVerdict => ({ ok: false, fault, detail });
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const head = checkHead(bytes, key, kernels);
  if ('fault' in head) return fail(head.fault, head.detail);
  if (bytes.length < head.fileBytes) return fail('truncated', `the file has ${bytes.length} of ${head.fileBytes} bytes`);
  if (bytes.length > head.fileBytes) return fail('length', `the file has ${bytes.length} bytes, ${head.fileBytes} expected`);
  const body = bytes.subarray(chunkHeaderBytes);
  if (checksumOf(head.version, kernels)(body) !== head.bodyCrc) return fail('checksum', 'the payload checksum does not match');
  const tokens = tokensFromBytes(body.subarray(0, 4 * head.tokenCount));
  // The crc says the bytes are as written; this says they belong to this place in the chain.
  if (chainKey(head.parent, tokens) !== key) return fail('key', 'the tokens do not hash to the key');
  return { ok: true, value: { key, parent: head.parent, tokens, payload: body.subarray(4 * head.tokenCount), bytes: bytes.length } };
}

/**
 * Checks a chunk file read in pieces elsewhere (engine/kv/store-scatter.ts): its header and
 * tokens (`head`, the file's first bytes), its size, and the CRC-32C of its body computed while
 * reading. Only format version 2 (CRC-32C) qualifies: null means "verify it the usual way".
 * Otherwise the same verdicts as `verifyChunk`, whose checks these are.
 */
export function verifyChunkHead(head: Uint8Array, key: string, kernels: CodecKernels, fileBytes: number, bodyCrc: number): { ok: true; tokens: Int32Array } | { ok: false; fault: ChunkFault; detail: string } | null {
  const bytes = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const checked = checkHead(bytes, key, kernels);
  if ('fault' in checked) return { ok: false, ...checked };
  if (checked.version !== 2) return null;
  if (fileBytes !== checked.fileBytes) return { ok: false, fault: fileBytes < checked.fileBytes ? 'truncated' : 'length', detail: `the file has ${fileBytes} of ${checked.fileBytes} bytes` };
  if (bodyCrc !== checked.bodyCrc) return { ok: false, fault: 'checksum', detail: 'the payload checksum does not match' };
  if (bytes.length < chunkHeaderBytes + 4 * checked.tokenCount) return null;
  const tokens = tokensFromBytes(bytes.subarray(chunkHeaderBytes, chunkHeaderBytes + 4 * checked.tokenCount));
  if (chainKey(checked.parent, tokens) !== key) return { ok: false, fault: 'key', detail: 'the tokens do not hash to the key' };
  return { ok: true, tokens };
}

/** Writes all of `data` at `position` (a write may take less than asked); returns the position after it. Tail files use it too. */
export async function writeAll(handle: StoreFileHandle, data: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += bytesWritten;
  }
  return position + done;
}

/** Codes with which a file system says "directories cannot be fsynced here" (Windows, some FUSE). */
const dirSyncUnsupported = new Set(['EISDIR', 'EPERM', 'EINVAL', 'ENOTSUP', 'EBADF']);

/** fsyncs a directory so that a rename in it survives power loss. */
export async function syncDir(fs: StoreFs, dir: string): Promise<void> {
  let handle: StoreFileHandle;
  try {
    handle = await fs.open(dir, 'r');
  } catch (error) {
    if (dirSyncUnsupported.has(errnoOf(error) ?? '')) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!dirSyncUnsupported.has(errnoOf(error) ?? '')) throw error;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Writes a chunk atomically: a temp file in the same directory, write, fsync, rename, fsync the
 * directory. On any failure the temp file is removed (best effort; `gc()` sweeps what is left) and
 * the error is rethrown, so no partial file is ever visible under a chunk's name. Returns the
 * file's size.
 */
export async function writeChunkFile(fs: StoreFs, root: string, chunk: ChunkWrite, kernels: CodecKernels): Promise<number> {
  const dir = chunkDir(root, chunk.key);
  const final = chunkPath(root, chunk.key);
  const temp = join(dir, `.${chunk.key}.${process.pid}-${randomBytes(4).toString('hex')}${tempSuffix}`);
  const tokens = tokenBytes(chunk.tokens);
  const header = encodeHeader(chunk.key, chunk.parent, chunk.tokens.length, chunk.payload.length, kernels.crc32c(chunk.payload, kernels.crc32c(tokens)), kernels);
  await fs.mkdir(dir);
  const handle = await fs.open(temp, 'wx', 0o644);
  let renamed = false;
  try {
    let position = await writeAll(handle, header, 0);
    position = await writeAll(handle, tokens, position);
    position = await writeAll(handle, chunk.payload, position);
    await handle.sync();
    await handle.close();
    await fs.rename(temp, final);
    renamed = true;
    await syncDir(fs, dir);
    return position;
  } catch (error) {
    await handle.close().catch(() => undefined);
    if (!renamed) await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Reads and verifies one chunk file. Nothing unverified is returned: a fault names its reason.
 * Never throws.
 *
 * With `expectedBytes` (the size the index recorded) it skips the fstat and reads once into a
 * buffer one byte larger: a full buffer means the file is too long, a short read is continued
 * until EOF. This is the restore path, so each saved thread-pool round trip counts; the close is
 * not awaited for the same reason. With `reuse` (and a synchronous reader) the file is read into
 * that buffer, and the verdict's views point into it.
 */
export async function readChunkFile(fs: StoreFs, root: string, key: string, kernels: CodecKernels, expectedBytes?: number, reuse?: Buffer): Promise<ChunkVerdict> {
  if (expectedBytes !== undefined && fs.readIntoSync) return readChunkFileSync(fs.readIntoSync, root, key, kernels, expectedBytes, reuse);
  let handle: StoreFileHandle;
  try {
    handle = await fs.open(chunkPath(root, key), 'r');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { ok: false, fault: 'missing', detail: 'the file does not exist' };
    return { ok: false, fault: 'io', detail: errorText(error) };
  }
  try {
    const wanted = expectedBytes === undefined ? (await handle.stat()).size : expectedBytes + 1;
    // allocUnsafeSlow: an own ArrayBuffer at offset 0 (not the shared pool), so the payload view
    // does not pin unrelated memory and is aligned for the codec's typed arrays.
    const buffer = Buffer.allocUnsafeSlow(wanted);
    let done = 0;
    while (done < wanted) {
      const { bytesRead } = await handle.read(buffer, done, wanted - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
      // A read that delivered exactly the expected size is taken as EOF: were the file longer
      // after all, its first bytes still pass or fail verification on their own merits.
      if (expectedBytes !== undefined && done === expectedBytes) break;
    }
    return verifyChunk(buffer.subarray(0, done), key, kernels);
  } catch (error) {
    return { ok: false, fault: 'io', detail: errorText(error) };
  } finally {
    void handle.close().catch(() => undefined);
  }
}

/**
 * `readChunkFile` with a known size through a synchronous reader (see `StoreFs.readIntoSync`):
 * the same checks. The buffer is one byte larger than the indexed size, so a file that grew is
 * reported as such ('length').
 */
function readChunkFileSync(read: (path: string, buffer: Uint8Array) => number, root: string, key: string, kernels: CodecKernels, expectedBytes: number, reuse?: Buffer): ChunkVerdict {
  // allocUnsafeSlow: see readChunkFile. `reuse` (big enough, at offset 0) spares the allocation.
  const buffer = reuse !== undefined && reuse.byteOffset === 0 && reuse.length >= expectedBytes + 1 ? reuse.subarray(0, expectedBytes + 1) : Buffer.allocUnsafeSlow(expectedBytes + 1);
  let done: number;
  try {
    done = read(chunkPath(root, key), buffer);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { ok: false, fault: 'missing', detail: 'the file does not exist' };
    return { ok: false, fault: 'io', detail: errorText(error) };
  }
  return verifyChunk(buffer.subarray(0, done), key, kernels);
}
