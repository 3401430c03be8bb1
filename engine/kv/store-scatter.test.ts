/**
 * The scatter read (store-scatter.ts and the addon's readScatter): raw chunks land in the image
 * exactly where the codec would put them, and anything it cannot vouch for — a flipped bit, a
 * compressed chunk, a missing file — answers `done: false` without recording damage (the usual
 * read finds and reports faults), while a bad plan is refused before any byte is read.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assembleStateFile, StateFileWriter, type StateShape } from './codec.ts';
import { scatterIntoWriter } from './scatter-state.ts';
import { chunkPath } from './chunk-file.ts';
import { encodeChunk } from './frame.ts';
import { loadKernels, nativeReadScatter } from './kernels-load.ts';
import type { KvStore } from './store.ts';
import { f16Layers, syntheticChunks } from '../../test/support/kv-state.ts';
import { useTestStores } from '../../test/support/kv-store.ts';

const CHUNK = 8;
const stores = useTestStores(CHUNK);
const reader = nativeReadScatter();

/** Stores three raw (or encoded) chunks of a synthetic state; returns what a restore needs. */
async function stored(store: KvStore, encode: (payload: Uint8Array, shape: StateShape) => Uint8Array = (p) => p) {
  const cut = syntheticChunks({ tokens: 3 * CHUNK, layers: f16Layers(2, 64), vTrans: false, seed: 5 }, CHUNK);
  const tokens = Array.from(cut.chunks.flatMap((c) => Array.from(c.tokens)));
  const put = await store.putManifest('chat/a', { fingerprint: stores.fingerprint, tokens, chunks: (i) => cut.chunks[i] && encode(cut.chunks[i]!.payload, cut.shape) });
  if (!put.ok) throw new Error(put.error.message);
  const match = store.findLongestPrefix(stores.fingerprint, tokens);
  if (!match.ok) throw new Error(match.error.message);
  return { cut, keys: match.value.chunks, expected: assembleStateFile(cut.shape, cut.chunks.map((c) => c.payload)) };
}

/** Scatters the chunks into a fresh in-memory state, as a restore does. */
async function scatter(store: KvStore, shape: StateShape, keys: readonly string[]) {
  const writer = StateFileWriter.inMemory(shape, keys.length * CHUNK);
  if (!writer.ok) throw new Error(writer.error.message);
  const result = await scatterIntoWriter(store, writer.value, shape, keys);
  const finished = result.done ? writer.value.finish() : null;
  return { result, image: writer.value.image!, finished };
}

describe.skipIf(reader === null)('scatter reads', () => {
  it('lays raw chunks out byte for byte as the codec assembles them', async () => {
    const store = await stores.open();
    const { cut, keys, expected } = await stored(store);
    const { result, image, finished } = await scatter(store, cut.shape, keys);
    expect(result).toEqual({ done: true, bytes: expect.any(Number) });
    expect(finished?.ok).toBe(true);
    if (!expected.ok) throw new Error(expected.error.message);
    expect(image.equals(expected.value)).toBe(true);
  });

  it('gives up, recording nothing, on a flipped bit, a missing file or a compressed chunk', async () => {
    const store = await stores.open();
    const { cut, keys } = await stored(store);
    const path = chunkPath(stores.root, keys[1]!);
    const bytes = readFileSync(path);
    bytes[bytes.length - 3]! ^= 0x10;
    writeFileSync(path, bytes);
    expect((await scatter(store, cut.shape, keys)).result).toEqual({ done: false });
    // The usual read is the one that finds and reports the fault.
    expect((await store.readChunks(keys)).error?.reason).toBe('checksum');

    const other = await stores.open({ root: `${stores.root}/b` });
    const encoded = await stored(other, (payload, shape) => {
      const frame = encodeChunk(shape, payload, 'lossless', loadKernels().kernels);
      if (!frame.ok) throw new Error(frame.error.message);
      return frame.value;
    });
    expect((await scatter(other, encoded.cut.shape, encoded.keys)).result).toEqual({ done: false });
  });

  it('refuses a plan that reaches outside its buffers before reading anything', async () => {
    const store = await stores.open();
    const { keys } = await stored(store);
    const size = readFileSync(chunkPath(stores.root, keys[0]!)).length;
    const head = new Uint8Array(200);
    const call = (pieces: number[], dest: Uint8Array) =>
      reader!([chunkPath(stores.root, keys[0]!)], Float64Array.of(size), head, Float64Array.of(0, 200), Float64Array.of(0, pieces.length / 2), Float64Array.from(pieces), dest, 1);
    expect(() => call([10, size - 200], new Uint8Array(size - 200))).toThrow(RangeError);
    expect(() => call([0, size - 300], new Uint8Array(size))).toThrow(/do not add up/);
    expect(typeof (await call([0, size - 200], new Uint8Array(size - 200)))[0]).toBe('number');
    const missing = reader!(['/nonexistent/x.kvc'], Float64Array.of(size), head, Float64Array.of(0, 200), Float64Array.of(0, 1), Float64Array.of(0, size - 200), new Uint8Array(size - 200), 1);
    expect(await missing).toEqual(['open: ENOENT']);
  });
});
