import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, chainKey, chunkKeys, fingerprint, hashFile, tokenBytes, tokensFromBytes } from './fingerprint.ts';
import { nodeFs } from './store-fs.ts';
import { range, sampleFingerprint, sampleParts, tempRoot } from '../../test/support/kv-store.ts';

describe('fingerprint', () => {
  it('is a stable sha256 hex digest, whatever the key order', () => {
    const a = fingerprint(sampleParts);
    const reordered = Object.fromEntries(Object.entries(sampleParts).reverse()) as unknown as typeof sampleParts;
    expect(a.ok && a.value).toMatch(/^[0-9a-f]{64}$/);
    expect(fingerprint(reordered)).toEqual(a);
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
  });

  it('changes with every part that decides the bytes', () => {
    const base = sampleFingerprint();
    const variants = [
      { llamaCppRelease: 'b0001' },
      { stateFormatVersion: 4 },
      { modelHash: 'cd'.repeat(32) },
      { kType: 'Q8_0' },
      { vType: 'Q8_0' },
      { flashAttention: true },
      { nStream: 2 },
      { layers: 3, kWidths: [64, 64, 64], vWidths: [64, 64, 64] },
      { kWidths: [64, 128] },
      { vWidths: [128, 64] },
      { extra: { cellMeta: 3 } },
    ];
    const seen = new Set([base]);
    for (const v of variants) seen.add(sampleFingerprint(v));
    expect(seen.size).toBe(variants.length + 1);
  });

  it('rejects malformed parts as data', () => {
    for (const bad of [{ modelHash: 'nope' }, { layers: 0 }, { kWidths: [64] }, { nStream: 1.5 }, { kType: '' }, { llamaCppRelease: '' }]) {
      const result = fingerprint({ ...sampleParts, ...bad });
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.code).toBe('INVALID_INPUT');
    }
  });
});

describe('chunk keys', () => {
  it('form a hash chain seeded by the fingerprint, tokens as int32 LE', () => {
    const fp = sampleFingerprint();
    const tokens = [...range(0, 8), -1, 0x7fffffff];
    const keys = chunkKeys(fp, tokens, 4);
    expect(keys).toHaveLength(2); // the last 2 tokens are a partial chunk: no key
    const bytes = Buffer.alloc(16);
    [0, 1, 2, 3].forEach((t, i) => bytes.writeInt32LE(t, i * 4));
    expect(keys[0]).toBe(createHash('sha256').update(Buffer.from(fp, 'hex')).update(bytes).digest('hex'));
    expect(keys[1]).toBe(chainKey(keys[0] as string, tokens, 4, 8));
    expect(Array.from(tokensFromBytes(tokenBytes(tokens)))).toEqual(tokens);
  });

  it('are shared by a shared prefix and differ after a divergence, even for equal later tokens', () => {
    const fp = sampleFingerprint();
    const a = chunkKeys(fp, [...range(0, 8), ...range(100, 4)], 4);
    const b = chunkKeys(fp, [...range(0, 4), ...range(50, 4), ...range(100, 4)], 4);
    expect(a[0]).toBe(b[0]);
    expect(a[1]).not.toBe(b[1]);
    expect(a[2]).not.toBe(b[2]); // same tokens, different prefix: different KV
    expect(chunkKeys(sampleFingerprint({ kType: 'Q8_0' }), range(0, 4), 4)[0]).not.toBe(a[0]);
  });
});

describe('hashFile', () => {
  let cleanup = (): void => undefined;
  afterEach(() => cleanup());

  it('streams a sha256 of the file and reports progress', async () => {
    const t = tempRoot();
    cleanup = t.cleanup;
    const file = join(t.root, 'model.gguf');
    const data = Buffer.alloc(9 * 1024 * 1024 + 5, 7);
    writeFileSync(file, data);
    const progress: number[] = [];
    const result = await hashFile(nodeFs, file, { onProgress: (done, total) => progress.push(done / total) });
    expect(result).toEqual({ ok: true, value: { hash: createHash('sha256').update(data).digest('hex'), size: data.length } });
    expect(progress[0]).toBe(0);
    expect(progress.at(-1)).toBe(1);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    const missing = await hashFile(nodeFs, join(t.root, 'nope'));
    expect(!missing.ok && missing.error.code).toBe('NOT_FOUND');
  });
});
