/**
 * Header reads for the library, cached in the process by (path, size, modification time): a
 * model's header takes milliseconds to megabytes of reading, and the library is listed again
 * after every download and delete. A file that changes gets a new key, so nothing stale is shown.
 */
import type { Result } from '../../contract/index.ts';
import { inspectGguf, inspectGgufPart, type GgufPartSummary, type GgufSummary } from '../../gguf/reader.ts';

/** Entries kept at most; the oldest go first. Far more than anyone's models. */
const MAX_CACHED = 4096;

const cache = new Map<string, Promise<Result<unknown>>>();

function cached<T>(kind: string, file: string, size: number, mtimeMs: number, read: () => Promise<Result<T>>): Promise<Result<T>> {
  const key = `${kind}\u0000${file}\u0000${size}\u0000${mtimeMs}`;
  const hit = cache.get(key);
  if (hit) {
    // Refresh its place: a Map iterates in insertion order, so eviction drops the least recently used.
    cache.delete(key);
    cache.set(key, hit);
    return hit as Promise<Result<T>>;
  }
  const pending = read();
  cache.set(key, pending);
  while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return pending;
}

/** `inspectGguf`, once per version of the file. */
export function modelHeader(file: string, size: number, mtimeMs: number): Promise<Result<GgufSummary>> {
  return cached('model', file, size, mtimeMs, () => inspectGguf(file));
}

/** `inspectGgufPart`, once per version of the file. */
export function partHeader(file: string, size: number, mtimeMs: number): Promise<Result<GgufPartSummary>> {
  return cached('part', file, size, mtimeMs, () => inspectGgufPart(file));
}

