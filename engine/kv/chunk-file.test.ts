import { readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chunkDir, chunkFileBytes, chunkFormatVersion, chunkHeaderBytes, chunkPath, readChunkFile, verifyChunk, writeChunkFile } from './chunk-file.ts';
import { chainKey } from './fingerprint.ts';
import { fallbackKernels as kernels } from './kernels-fallback.ts';
import { nodeFs } from './store-fs.ts';
import { errno, faultyFs, payloadFor, range, sampleFingerprint, tempRoot } from '../../test/support/kv-store.ts';

let root = '';
let cleanup = (): void => undefined;
beforeEach(() => {
  ({ root, cleanup } = tempRoot());
});
afterEach(() => cleanup());

const fp = sampleFingerprint();
const tokens = range(10, 4);
const key = chainKey(fp, tokens);
const payload = payloadFor(tokens, 64);

async function writeSample(): Promise<string> {
  await writeChunkFile(nodeFs, root, { key, parent: fp, tokens, payload }, kernels);
  return chunkPath(root, key);
}

describe('chunk files', () => {
  it('round-trip under a fan-out directory, with nothing else left there', async () => {
    const path = await writeSample();
    expect(path).toBe(`${root}/chunks/${key.slice(0, 2)}/${key}.kvc`);
    expect(statSync(path).size).toBe(chunkFileBytes(4, payload.length));
    expect(readdirSync(chunkDir(root, key))).toEqual([`${key}.kvc`]);
    const read = await readChunkFile(nodeFs, root, key, kernels);
    expect(read.ok).toBe(true);
    if (!read.ok) return;
    expect(read.value.parent).toBe(fp);
    expect(Array.from(read.value.tokens)).toEqual(tokens);
    expect(Buffer.from(read.value.payload).equals(Buffer.from(payload))).toBe(true);
  });

  it('name each kind of damage', async () => {
    const path = await writeSample();
    const good = readFileSync(path);
    const faultOf = (bytes: Buffer, asKey = key): string => {
      const verdict = verifyChunk(bytes, asKey, kernels);
      return verdict.ok ? 'ok' : verdict.fault;
    };
    const flipped = (offset: number): Buffer => {
      const copy = Buffer.from(good);
      copy[offset] = (copy[offset] as number) ^ 0x10;
      return copy;
    };
    expect(faultOf(good)).toBe('ok');
    expect(faultOf(flipped(good.length - 1))).toBe('checksum'); // payload bit flip
    expect(faultOf(flipped(chunkHeaderBytes))).toBe('checksum'); // a token
    expect(faultOf(flipped(0))).toBe('magic');
    expect(faultOf(flipped(4))).toBe('version');
    expect(faultOf(flipped(17))).toBe('header'); // payload length
    expect(faultOf(good.subarray(0, good.length - 3))).toBe('truncated');
    expect(faultOf(good.subarray(0, 40))).toBe('truncated');
    expect(faultOf(Buffer.concat([good, Buffer.alloc(1)]))).toBe('length');
    expect(faultOf(good, chainKey(fp, range(0, 4)))).toBe('key');
  });

  it('catch every single-bit flip, the reserved header bytes included', async () => {
    const good = readFileSync(await writeSample());
    for (let offset = 0; offset < good.length; offset++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(good);
        copy[offset] = (copy[offset] as number) ^ (1 << bit);
        const verdict = verifyChunk(copy, key, kernels);
        if (verdict.ok) throw new Error(`a flip of bit ${bit} at byte ${offset} passed verification`);
        if (offset >= 92 && offset < 96) expect(verdict).toMatchObject({ fault: 'header', detail: expect.stringContaining('reserved') });
      }
    }
  });

  it('are verified when read from disk: truncated, missing, misplaced', async () => {
    const path = await writeSample();
    truncateSync(path, statSync(path).size - 10);
    expect(await readChunkFile(nodeFs, root, key, kernels)).toMatchObject({ ok: false, fault: 'truncated' });
    const otherTokens = range(0, 4);
    const other = chainKey(fp, otherTokens);
    await writeChunkFile(nodeFs, root, { key: other, parent: fp, tokens: otherTokens, payload }, kernels);
    expect(await readChunkFile(nodeFs, root, chainKey(fp, range(50, 4)), kernels)).toMatchObject({ ok: false, fault: 'missing' });
    // a valid chunk file under another key's name
    writeFileSync(path, readFileSync(chunkPath(root, other)));
    expect(await readChunkFile(nodeFs, root, key, kernels)).toMatchObject({ ok: false, fault: 'key' });
    renameSync(path, `${path}.x`);
    expect(await readChunkFile(nodeFs, root, key, kernels)).toMatchObject({ ok: false, fault: 'missing' });
  });

  it('never leave a partial file visible when a write fails', async () => {
    for (const fault of ['ENOSPC', 'EIO'] as const) {
      const { fs, faults } = faultyFs();
      faults.writeBudget = chunkHeaderBytes + 8; // header and half the tokens fit
      faults.writeError = fault;
      await expect(writeChunkFile(fs, root, { key, parent: fp, tokens, payload }, kernels)).rejects.toMatchObject({ code: fault });
      expect(readdirSync(chunkDir(root, key))).toEqual([]);
    }
    const { fs, faults } = faultyFs();
    faults.syncError = 'EIO';
    await expect(writeChunkFile(fs, root, { key, parent: fp, tokens, payload }, kernels)).rejects.toMatchObject({ code: 'EIO' });
    expect(readdirSync(chunkDir(root, key))).toEqual([]);
    expect(errno('ENOSPC').code).toBe('ENOSPC');
  });
});

/** A version 1 file (zlib CRC-32) with the same content, as an older Hearth wrote it. */
function asVersion1(v2: Buffer): Buffer {
  const v1 = Buffer.from(v2);
  v1.writeUInt16LE(1, 4);
  v1.writeUInt32LE(crc32(v1.subarray(chunkHeaderBytes)), 12);
  v1.writeUInt32LE(crc32(v1.subarray(0, 88)), 88);
  return v1;
}

describe('chunk file versions', () => {
  it('writes version 2 with CRC-32C checksums', async () => {
    const file = readFileSync(await writeSample());
    expect(chunkFormatVersion).toBe(2);
    expect(file.readUInt16LE(4)).toBe(2);
    expect(file.readUInt32LE(12)).toBe(kernels.crc32c(file.subarray(chunkHeaderBytes)));
    expect(file.readUInt32LE(88)).toBe(kernels.crc32c(file.subarray(0, 88)));
    // Not zlib's CRC-32: a version 2 header with version 1 checksums is damaged.
    const mixed = asVersion1(file);
    mixed.writeUInt16LE(2, 4);
    expect(verifyChunk(mixed, key, kernels)).toMatchObject({ ok: false, fault: 'header' });
  });

  it('still reads and verifies version 1 files, damage included', async () => {
    const path = await writeSample();
    const v1 = asVersion1(readFileSync(path));
    writeFileSync(path, v1);
    const read = await readChunkFile(nodeFs, root, key, kernels, v1.length);
    expect(read.ok).toBe(true);
    if (!read.ok) return;
    expect(Buffer.from(read.value.payload).equals(Buffer.from(payload))).toBe(true);
    const flipped = Buffer.from(v1);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x04;
    expect(verifyChunk(flipped, key, kernels)).toMatchObject({ ok: false, fault: 'checksum' });
    const header = Buffer.from(v1);
    header[9] = header[9]! ^ 0x01;
    expect(verifyChunk(header, key, kernels)).toMatchObject({ ok: false, fault: 'header' });
    const future = Buffer.from(v1);
    future.writeUInt16LE(3, 4);
    expect(verifyChunk(future, key, kernels)).toMatchObject({ ok: false, fault: 'version' });
  });
});
