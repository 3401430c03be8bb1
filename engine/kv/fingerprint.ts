/**
 * Fingerprints and chunk keys of the KV store.
 *
 * A chunk's KV bytes depend on every token before it and on everything that decides how llama.cpp
 * lays out and computes them (docs/decisions/model-identity.md). So keys form a hash chain seeded
 * by the fingerprint:
 *
 *   key_0 = sha256(fingerprint ‖ tokens_0),  key_i = sha256(key_{i-1} ‖ tokens_i)
 *
 * (keys and the fingerprint as 32 raw bytes, tokens as int32 little-endian). Chats that share a
 * prefix share its chunk keys and files; another model, KV type or llama.cpp release gives
 * disjoint keys: an old chunk becomes a cache miss, never a wrong load.
 */
import { createHash } from 'node:crypto';
import { err, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import type { StoreFs } from './store-fs.ts';
import { fsError } from './store-fs.ts';

/** Bumped when the fingerprint's canonical form or the key derivation changes: old keys then miss. */
const keyScheme = 'hearth-kv/1';

/** Everything that decides a chunk's bytes. All fields take part in the digest. */
export interface FingerprintParts {
  /** The bundled llama.cpp release (e.g. node-llama-cpp's build tag), since values can change between releases. */
  readonly llamaCppRelease: string;
  /** llama.cpp's sequence state format version (3 today; docs/decisions/state-file-layout.md). */
  readonly stateFormatVersion: number;
  /** The model file's content hash (`KvStore.modelContentHash`); llama.cpp never checks model identity. */
  readonly modelHash: string;
  /** The K cache type, as a GGML type name ("F16", "Q8_0") or number; be consistent. */
  readonly kType: string | number;
  /** The V cache type. */
  readonly vType: string | number;
  /** Flash attention changes the V layout (transposed or not) and the values from layer 1 on. */
  readonly flashAttention: boolean;
  /** The context's sequence count (n_stream); the loader requires an exact match. */
  readonly nStream: number;
  /** The layer count of the KV section. */
  readonly layers: number;
  /** Per layer: the K row width (n_embd_k_gqa). Length must equal `layers`. */
  readonly kWidths: readonly number[];
  /** Per layer: the V row width (n_embd_v_gqa). Length must equal `layers`. */
  readonly vWidths: readonly number[];
  /**
   * Anything else a caller knows to change the bytes (e.g. extra per-cell metadata of M-RoPE
   * models, a codec version). Keys are sorted before hashing, so their order does not matter.
   */
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

const hexDigest = /^[0-9a-f]{64}$/;

/** True for a 64-character lowercase hex sha256 (fingerprints, chunk keys, model hashes). */
export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && hexDigest.test(value);
}

/** JSON with object keys sorted at every level: one byte string per value, whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;

/**
 * The fingerprint: sha256 (hex) of the parts' canonical JSON. Never throws; malformed parts are
 * INVALID_INPUT, since a wrong fingerprint would silently share bytes between incompatible caches.
 */
export function fingerprint(parts: FingerprintParts): Result<string> {
  const problem = checkParts(parts);
  if (problem) return err('INVALID_INPUT', `Invalid KV fingerprint parts: ${problem}.`);
  const canonical = canonicalJson({
    scheme: keyScheme,
    llamaCppRelease: parts.llamaCppRelease,
    stateFormatVersion: parts.stateFormatVersion,
    modelHash: parts.modelHash,
    kType: parts.kType,
    vType: parts.vType,
    flashAttention: parts.flashAttention,
    nStream: parts.nStream,
    layers: parts.layers,
    kWidths: parts.kWidths,
    vWidths: parts.vWidths,
    extra: parts.extra ?? {},
  });
  return ok(createHash('sha256').update(canonical).digest('hex'));
}

function checkParts(parts: FingerprintParts): string | null {
  if (typeof parts !== 'object' || parts === null) return 'not an object';
  if (typeof parts.llamaCppRelease !== 'string' || parts.llamaCppRelease === '') return 'llamaCppRelease is empty';
  if (!isCount(parts.stateFormatVersion)) return 'stateFormatVersion is not a non-negative integer';
  if (!isDigest(parts.modelHash)) return 'modelHash is not a sha256 hex digest';
  for (const name of ['kType', 'vType'] as const) {
    const t = parts[name];
    if (!(typeof t === 'string' && t !== '') && !isCount(t)) return `${name} is neither a type name nor a type number`;
  }
  if (typeof parts.flashAttention !== 'boolean') return 'flashAttention is not a boolean';
  if (!isCount(parts.nStream) || parts.nStream < 1) return 'nStream is not a positive integer';
  if (!isCount(parts.layers) || parts.layers < 1) return 'layers is not a positive integer';
  for (const name of ['kWidths', 'vWidths'] as const) {
    const widths = parts[name];
    if (!Array.isArray(widths) || widths.length !== parts.layers) return `${name} does not have one width per layer`;
    if (!widths.every((w) => isCount(w))) return `${name} holds a value that is not a non-negative integer`;
  }
  if (parts.extra !== undefined) {
    if (typeof parts.extra !== 'object' || parts.extra === null || Array.isArray(parts.extra)) return 'extra is not a flat object';
    for (const [k, v] of Object.entries(parts.extra)) {
      if (!['string', 'number', 'boolean'].includes(typeof v)) return `extra.${k} is not a string, number or boolean`;
    }
  }
  return null;
}

const int32Min = -0x8000_0000;
const int32Max = 0x7fff_ffff;

/** Index of the first entry that is not an int32 token id, or -1. */
export function firstBadToken(tokens: ArrayLike<number>): number {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as number;
    if (!Number.isInteger(t) || t < int32Min || t > int32Max) return i;
  }
  return -1;
}

/** Tokens `[start, end)` as int32 little-endian bytes, whatever the platform's byte order. */
export function tokenBytes(tokens: ArrayLike<number>, start = 0, end = tokens.length): Buffer {
  const out = Buffer.allocUnsafe((end - start) * 4);
  for (let i = start; i < end; i++) out.writeInt32LE(tokens[i] as number, (i - start) * 4);
  return out;
}

/** Reads int32 little-endian tokens back. */
export function tokensFromBytes(bytes: Uint8Array): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(Math.floor(bytes.byteLength / 4));
  for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
  return out;
}

/**
 * One link of the chain: the key of the chunk holding `tokens[start, end)` after `parent` (the
 * previous chunk's key, or the fingerprint for the first chunk). Both are hex digests.
 */
export function chainKey(parent: string, tokens: ArrayLike<number>, start = 0, end = tokens.length): string {
  return createHash('sha256').update(Buffer.from(parent, 'hex')).update(tokenBytes(tokens, start, end)).digest('hex');
}

/** The keys of every full chunk of `tokens` (a trailing partial chunk has no key). */
export function chunkKeys(fingerprintHex: string, tokens: ArrayLike<number>, chunkTokens: number): string[] {
  const keys: string[] = [];
  let parent = fingerprintHex;
  for (let start = 0; start + chunkTokens <= tokens.length; start += chunkTokens) {
    parent = chainKey(parent, tokens, start, start + chunkTokens);
    keys.push(parent);
  }
  return keys;
}

/** Progress of a model hash: bytes hashed so far out of the file's size. */
export type HashProgress = (done: number, total: number) => void;

const hashReadBytes = 8 * 1024 * 1024;

/**
 * sha256 (hex) of a file, read sequentially in 8 MiB blocks so a multi-GB model never sits in
 * memory. Never throws.
 */
export async function hashFile(
  fs: StoreFs,
  path: string,
  options: { onProgress?: HashProgress; signal?: AbortSignal } = {},
): Promise<Result<{ hash: string; size: number }>> {
  let handle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    return fsError(error, `Could not open the model file ${path} to hash it`);
  }
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(hashReadBytes, Math.max(size, 1)));
    let done = 0;
    options.onProgress?.(0, size);
    for (;;) {
      if (options.signal?.aborted) return err('CANCELLED', 'Hashing the model file was cancelled.');
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, done);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      done += bytesRead;
      options.onProgress?.(done, size);
    }
    if (done !== size) return err('INTERNAL', `The model file ${path} changed size while it was hashed.`);
    return ok({ hash: hash.digest('hex'), size });
  } catch (error) {
    return fsError(error, `Could not read the model file ${path} to hash it`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
