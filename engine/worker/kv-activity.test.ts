import { describe, expect, it } from 'vitest';
import { cachedFor, evictActivity, forgetActivity, manifestChat, saveActivity, summarizeIntegrity } from './kv-activity.ts';

describe('KV activity for the event log', () => {
  it('names the chat of a manifest', () => {
    expect(manifestChat('chat-1/branch-2')).toBe('chat-1');
    expect(manifestChat('solo')).toBe('solo');
  });

  it('describes a save', () => {
    expect(saveActivity('c1', { tokens: 512, chunksWritten: 2, bytesWritten: 1_153_434, ms: 13.6 })).toEqual({
      kind: 'save',
      chatId: 'c1',
      text: 'saved 512 tokens (2 new chunks, 1.15 MB written) in 14 ms',
      tokens: 512,
      bytes: 1_153_434,
      ms: 14,
    });
    expect(saveActivity('c1', { tokens: 1, chunksWritten: 1, bytesWritten: 100, ms: 0.2 }).text).toBe('saved 1 token (1 new chunk, 100 B written) in 0 ms');
  });

  it('describes an eviction, naming the chat when it touched one', () => {
    const one = evictActivity({ chunksRemoved: 3, bytesFreed: 3 * 1024 * 1024, truncated: ['a/1'], deleted: ['a/2'], budget: 10 * 1024 ** 3 });
    expect(one).toEqual({ kind: 'evict', chatId: 'a', text: 'evicted 3 chunks (3.15 MB) to stay within the 10 GB budget: 1 chat cut short', bytes: 3 * 1024 * 1024 });
    const two = evictActivity({ chunksRemoved: 1, bytesFreed: 2048, truncated: ['a/1'], deleted: ['b/1', 'c/1'], budget: 4096 });
    expect(two.chatId).toBeUndefined();
    expect(two.text).toBe('evicted 1 chunk (2.05 KB) to stay within the 4 KB budget: 1 chat cut short, 2 chats removed');
  });

  it('describes a forgotten chat', () => {
    expect(forgetActivity('c2', { manifests: 2, bytesFreed: 5 * 1024 })).toEqual({ kind: 'forget', chatId: 'c2', text: 'forgot its cache: 2 branches, 5.12 KB freed', bytes: 5 * 1024 });
    expect(forgetActivity('c2', { manifests: 1, bytesFreed: 0 }).text).toBe('forgot its cache: 1 branch, 0 B freed');
  });
});

describe('cachedFor', () => {
  it('reads at most once per period, shares a read in flight, and re-reads after invalidate or a failure', async () => {
    let t = 0;
    let reads = 0;
    let fail = false;
    const value = cachedFor(
      1000,
      async () => {
        reads++;
        if (fail) throw new Error('no');
        return reads;
      },
      () => t,
    );
    const [a, b] = await Promise.all([value.get(), value.get()]);
    expect([a, b, reads]).toEqual([1, 1, 1]);
    t = 999;
    expect(await value.get()).toBe(1);
    t = 1000;
    expect(await value.get()).toBe(2);
    value.invalidate();
    expect(await value.get()).toBe(3);
    value.invalidate();
    fail = true;
    await expect(value.get()).rejects.toThrow('no');
    fail = false;
    expect(await value.get()).toBe(5);
  });

  it('summarizes an integrity report as counts with its findings named', () => {
    const clean = { chunksVerified: 3, missing: [], corrupt: [], knownCorrupt: [], orphanFiles: [], tempFiles: [], refcountMismatches: [], danglingReferences: [], inconsistentManifests: [], corruptTails: [], ok: true, repaired: false };
    expect(summarizeIntegrity(clean, 12.4)).toMatchObject({ checked: true, ok: true, chunksVerified: 3, missingChunks: 0, problems: [], ms: 12 });
    const damaged = summarizeIntegrity(
      { ...clean, ok: false, missing: ['k1'], corrupt: [{ key: 'k2', reason: 'checksum' as const }], danglingReferences: [{ manifestId: 'c/b', index: 4, key: 'k9' }], tempFiles: Array.from({ length: 30 }, (_, i) => `/kv/t${i}.tmp`) },
      1,
    );
    expect(damaged).toMatchObject({ ok: false, missingChunks: 1, corruptChunks: 1, danglingReferences: 1, tempFiles: 30 });
    expect(damaged.problems[0]).toBe('chunk k1: its file is missing');
    expect(damaged.problems[1]).toBe('chunk k2: checksum');
    expect(damaged.problems[2]).toContain('manifest c/b: chunk 4 (k9)');
    // Bounded: a store with thousands of findings still answers with a short list.
    expect(damaged.problems).toHaveLength(20);
  });
});
