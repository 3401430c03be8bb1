/**
 * KvCache on real inference: after a save and a restore into a fresh
 * context, the greedy continuation is token-identical to the uninterrupted one; shared prefixes
 * are stored once; another model's weights are refused by fingerprint; a damaged chunk falls
 * back from the first bad chunk with a reason.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LlamaContext, LlamaContextOptions, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { readStateFile } from '../kv/codec.ts';
import { openKvStore } from '../kv/store.ts';
import { testModelPath, type TestModelVariant } from '../../test/support/models.ts';
import { greedy as greedyTokens, seededTokens, useTestLlama } from '../../test/support/llama-fixture.ts';
import { expectedShape, KvCache, type KvProfile } from './kv-cache.ts';
import type { GenerateInput, PromptMessage } from '../protocol.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { seededText } from '../../test/support/text.ts';

const CONTINUATION = 24;
const fixture = useTestLlama('kv-cache');
const model = (variant: TestModelVariant): Promise<LlamaModel> => fixture.model(variant);

const text = seededText;


const greedy = (sequence: LlamaContextSequence, input: Token[], count = CONTINUATION): Promise<Token[]> => greedyTokens(sequence, input, count);

interface Setup {
  readonly variant: TestModelVariant;
  readonly flashAttention: boolean;
  readonly kv: 'F16' | 'Q8_0';
}

function contextOptions(setup: Setup): LlamaContextOptions {
  return { contextSize: 2048, sequences: 1, threads: 1, flashAttention: setup.flashAttention, experimentalKvCacheKeyType: setup.kv, experimentalKvCacheValueType: setup.kv };
}

async function withContext<T>(setup: Setup, cache: KvCache, task: (context: LlamaContext, sequence: LlamaContextSequence, profile: KvProfile) => Promise<T>): Promise<T> {
  const m = await model(setup.variant);
  const context = await m.createContext(contextOptions(setup));
  try {
    const profile = await cache.prepare({ model: m, context, modelPath: await testModelPath(setup.variant), flashAttention: setup.flashAttention });
    return await task(context, context.getSequence(), profile);
  } finally {
    await context.dispose();
  }
}

async function openCache(name: string, chunkTokens = 256, budgetBytes = 1 << 30): Promise<KvCache> {
  const opened = await KvCache.open({ root: join(fixture.dir(), name), budgetBytes, chunkTokens, llamaRelease: 'test-release', scratchDir: join(fixture.dir(), `${name}-scratch`) });
  if (!opened.ok) throw new Error(opened.error.message);
  return opened.value;
}

/** The uninterrupted run: evaluate `prompt` from scratch and continue greedily. */
async function reference(setup: Setup, prompt: Token[]): Promise<Token[]> {
  const context = await (await model(setup.variant)).createContext(contextOptions(setup));
  try {
    return await greedy(context.getSequence(), prompt);
  } finally {
    await context.dispose();
  }
}

describe('KvCache', () => {
  const setups: (Setup & { name: string })[] = [
    { name: 'F16, flash attention on', variant: 'default', flashAttention: true, kv: 'F16' },
    { name: 'F16, flash attention off', variant: 'default', flashAttention: false, kv: 'F16' },
    { name: 'Q8_0 K+V, flash attention on', variant: 'default', flashAttention: true, kv: 'Q8_0' },
    { name: 'Q8_0 K+V, head_dim 64, flash attention on', variant: 'hd64', flashAttention: true, kv: 'Q8_0' },
  ];

  it.each(setups)('computes the state shape llama.cpp writes: $name', async (setup) => {
    const cache = await openCache(`shape-${setup.variant}-${setup.kv}-${setup.flashAttention}`);
    try {
      await withContext(setup, cache, async (context, sequence) => {
        await sequence.evaluateWithoutGeneratingNewTokens(seededTokens(context.model, 1, 10));
        const path = join(fixture.dir(), `shape-${setup.kv}-${setup.flashAttention}.bin`);
        await sequence.saveStateToFile(path);
        const parsed = await readStateFile(path);
        if (!parsed.ok) throw new Error(parsed.error.message);
        const shape = expectedShape(context.model, context, setup.flashAttention);
        expect(shape.ok && shape.value).toEqual(parsed.value.shape);
      });
    } finally {
      await cache.close();
    }
  });

  it.each(setups)('continues token-identically after a save and a restore into a fresh context: $name', async (setup) => {
    const cache = await openCache(`restore-${setup.variant}-${setup.kv}-${setup.flashAttention}`);
    try {
      const m = await model(setup.variant);
      const prompt = seededTokens(m, 3, 700);
      const expected = await reference(setup, prompt);
      const saved = await withContext(setup, cache, async (_context, sequence, profile) => {
        expect(profile.fingerprint).not.toBeNull();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 650));
        const report = await cache.save(profile, sequence, 'chat/a');
        if (!report.ok) throw new Error(report.error.message);
        return report.value;
      });
      expect(saved.tokens).toBe(650);
      expect(saved.chunksWritten).toBe(2);
      const got = await withContext(setup, cache, async (_context, sequence, profile) => {
        const report = await cache.restore(profile, sequence, prompt);
        expect(report.fallbackReason).toBeUndefined();
        expect(report.tokensRestored).toBe(650);
        expect(sequence.nextTokenIndex).toBe(650);
        return greedy(sequence, prompt.slice(report.tokensRestored));
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });

  const f16: Setup = { variant: 'default', flashAttention: true, kv: 'F16' };

  it('removes scratch state files of engine processes that are gone', async () => {
    const scratch = join(fixture.dir(), 'stale-scratch');
    await mkdir(scratch, { recursive: true });
    // Above Linux's largest pid (2^22): never a live process.
    await writeFile(join(scratch, 'state-4194305-0.bin'), 'x');
    await writeFile(join(scratch, `state-${process.pid}-0.bin`), 'x');
    const opened = await KvCache.open({ root: join(fixture.dir(), 'stale'), budgetBytes: 1 << 20, llamaRelease: 't', scratchDir: scratch });
    if (!opened.ok) throw new Error(opened.error.message);
    await opened.value.close();
    expect((await readdir(scratch)).sort()).toEqual([`state-${process.pid}-0.bin`]);
  });

  it('leaves one token to evaluate, and only loads when the store has more than memory', async () => {
    const cache = await openCache('one-left');
    try {
      const m = await model('default');
      const prompt = seededTokens(m, 5, 600);
      const expected = await reference(f16, prompt);
      await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        expect((await cache.save(profile, sequence, 'chat/x')).ok).toBe(true);
        // Everything is in memory already: nothing is loaded.
        const again = await cache.restore(profile, sequence, prompt);
        expect(again.tokensRestored).toBe(0);
      });
      const got = await withContext(f16, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, prompt);
        expect(report.tokensRestored).toBe(599);
        return greedy(sequence, prompt.slice(599));
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });

  it('stores a shared ~1,000-token prefix of two chats once, and restores one chat from the other\'s prefix', async () => {
    const cache = await openCache('shared', 256);
    try {
      const m = await model('default');
      const system = seededTokens(m, 11, 1024);
      const chatA = [...system, ...seededTokens(m, 12, 100)];
      const chatB = [...system, ...seededTokens(m, 13, 120)];
      const first = await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(chatA);
        const a = await cache.save(profile, sequence, 'A/1');
        await sequence.clearHistory();
        await sequence.evaluateWithoutGeneratingNewTokens(chatB);
        const b = await cache.save(profile, sequence, 'B/1');
        if (!a.ok || !b.ok) throw new Error('save failed');
        return { a: a.value, b: b.value };
      });
      expect(first.a.chunksWritten).toBe(4);
      expect(first.b.chunksWritten).toBe(0);
      const stats = await cache.stats();
      expect(stats.ok && stats.value.chunkCount).toBe(4);
      expect(stats.ok && stats.value.logicalBytes).toBeGreaterThan(stats.ok ? stats.value.storedBytes : 0);

      // A third chat with the same system prompt starts from the stored prefix.
      const chatC = [...system, ...seededTokens(m, 14, 50)];
      const expected = await reference(f16, chatC);
      const got = await withContext(f16, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, chatC);
        // At least the shared chunks; a stored tail may continue them a few tokens further.
        expect(report.tokensRestored).toBeGreaterThanOrEqual(1024);
        return greedy(sequence, chatC.slice(report.tokensRestored));
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });

  it('restores an older branch (a regenerate) from the stored branch and replaces a grown branch\'s old leaf', async () => {
    const cache = await openCache('branches');
    try {
      const m = await model('default');
      const turn1 = seededTokens(m, 21, 400);
      const turn2 = [...turn1, ...seededTokens(m, 22, 300)];
      await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(turn1);
        expect((await cache.save(profile, sequence, 'chat/m1')).ok).toBe(true);
        await sequence.evaluateWithoutGeneratingNewTokens(turn2.slice(turn1.length));
        expect((await cache.save(profile, sequence, 'chat/m2', { replaces: 'chat/m1' })).ok).toBe(true);
      });
      expect(cache.store.getManifest('chat/m1').ok).toBe(false);
      expect(cache.store.getManifest('chat/m2').ok).toBe(true);
      // Regenerate the first reply: the prompt is turn1 + a different last part.
      const regen = [...turn1.slice(0, 380), ...seededTokens(m, 23, 40)];
      const expected = await reference(f16, regen);
      const got = await withContext(f16, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, regen);
        // The branch point lies inside chunk 1 and m1's tail was replaced by m2: the chat
        // restores the full chunk before it and re-reads the rest.
        expect(report.tokensRestored).toBe(256);
        return greedy(sequence, regen.slice(report.tokensRestored));
      });
      expect(got).toEqual(expected);
      expect((await cache.forget('chat/')).ok).toBe(true);
      expect(cache.store.getManifest('chat/m2').ok).toBe(false);
    } finally {
      await cache.close();
    }
  });

  it('refuses KV of a model with the same shapes but other weights, and re-reads correctly', async () => {
    const cache = await openCache('other-weights');
    try {
      const m = await model('default');
      const prompt = seededTokens(m, 31, 600);
      await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        expect((await cache.save(profile, sequence, 'chat/a')).ok).toBe(true);
      });
      const other: Setup = { ...f16, variant: 'otherWeights' };
      const expected = await reference(other, prompt);
      const got = await withContext(other, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, prompt);
        expect(report.tokensRestored).toBe(0);
        return greedy(sequence, prompt);
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });

  it('after eviction restores what is left and re-reads the rest', async () => {
    // F16 on the tiny model: ~264 kB per 256-token chunk, so this budget keeps two chunks.
    const cache = await openCache('evicted', 256, 600_000);
    try {
      const m = await model('default');
      const prompt = seededTokens(m, 61, 1000);
      const expected = await reference(f16, prompt);
      await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        expect((await cache.save(profile, sequence, 'chat/a')).ok).toBe(true);
      });
      const stats = await cache.stats();
      expect(stats.ok && stats.value.storedBytes).toBeLessThanOrEqual(600_000);
      const got = await withContext(f16, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, prompt);
        expect(report.tokensRestored).toBeGreaterThan(0);
        expect(report.tokensRestored).toBeLessThan(999);
        return greedy(sequence, prompt.slice(report.tokensRestored));
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });

  it('falls back from the first damaged chunk with a reason', async () => {
    const cache = await openCache('corrupt');
    try {
      const m = await model('default');
      const prompt = seededTokens(m, 41, 900);
      const expected = await reference(f16, prompt);
      const keys = await withContext(f16, cache, async (_c, sequence, profile) => {
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        expect((await cache.save(profile, sequence, 'chat/a')).ok).toBe(true);
        const manifest = cache.store.getManifest('chat/a');
        if (!manifest.ok) throw new Error(manifest.error.message);
        return manifest.value.chunks;
      });
      expect(keys).toHaveLength(3);
      // Flip one bit in the second chunk's file.
      const files = await findFiles(join(fixture.dir(), 'corrupt'), keys[1]!);
      expect(files).toHaveLength(1);
      const bytes = await readFile(files[0]!);
      bytes[bytes.length - 100]! ^= 0x10;
      await writeFile(files[0]!, bytes);
      const got = await withContext(f16, cache, async (_c, sequence, profile) => {
        const report = await cache.restore(profile, sequence, prompt);
        expect(report.tokensRestored).toBe(256);
        expect(report.fallbackReason).toMatch(/chunk 1 .*re-read from token 256/);
        return greedy(sequence, prompt.slice(report.tokensRestored));
      });
      expect(got).toEqual(expected);
    } finally {
      await cache.close();
    }
  });
});

async function findFiles(root: string, key: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.startsWith(key)) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe('disk KV through the engine process', () => {
  const greedyReply = { temperature: 0, topP: 1, maxTokens: 40 };
  let n = 0;
  const request = (branchId: string, messages: readonly PromptMessage[]): GenerateInput => ({ requestId: `r${++n}`, chatId: 'chat1', branchId, messages, sampling: greedyReply });
  const warnings = (engine: EngineClient): string[] => engine.events.flatMap((e) => (e.type === 'log' && e.level !== 'debug' && e.level !== 'info' ? [e.message] : []));

  it('restores a chat in a new engine process and continues token-identically', async () => {
    const kvDir = join(fixture.dir(), 'engine-kv');
    const modelPath = await testModelPath();
    const system = `You are a helpful assistant. ${text(51, 600)}`;
    const history: PromptMessage[] = [{ role: 'system', text: system }, { role: 'user', text: 'Tell me about the sea.' }];
    let expected: string;
    let third: PromptMessage[];
    const first = await startEngine();
    try {
      await first.must('init', { logLevel: 'warn', kvDir, kvBudgetBytes: 1 << 30, kvChunkTokens: 256 });
      await first.must('loadModel', { path: modelPath, contextSize: 4096, threads: 1 });
      const one = await first.must('generate', request('m1', history));
      const second = [...history, { role: 'assistant' as const, text: one.text }, { role: 'user' as const, text: `And the sky? ${text(52, 300)}` }];
      const two = await first.must('generate', request('m2', second));
      expect(two.stats.cacheSource).toBe('memory');
      third = [...second, { role: 'assistant' as const, text: two.text }, { role: 'user' as const, text: 'And boats?' }];
      // The uninterrupted run: the same process continues from memory.
      const uninterrupted = await first.must('generate', request('m3', third));
      expected = uninterrupted.text;
      // unloadModel waits for the queued save of the last turn.
      await first.must('unloadModel', {});
      expect(warnings(first)).toEqual([]);
    } finally {
      await first.dispose();
    }
    // Each turn's manifest replaced the previous one of the growing branch.
    const store = await openKvStore({ root: kvDir, budgetBytes: 1 << 30, chunkTokens: 256 });
    if (!store.ok) throw new Error(store.error.message);
    expect(store.value.manifestIds('chat1/')).toEqual({ ok: true, value: ['chat1/m3'] });
    await store.value.close();

    const fresh = await startEngine();
    try {
      await fresh.must('init', { logLevel: 'warn', kvDir, kvBudgetBytes: 1 << 30, kvChunkTokens: 256 });
      await fresh.must('loadModel', { path: modelPath, contextSize: 4096, threads: 1 });
      const restored = await fresh.must('generate', request('m3b', third));
      expect(restored.text).toBe(expected);
      expect(restored.stats.cacheSource).toBe('disk');
      expect(restored.stats.tokensRestored).toBeGreaterThan(1000);
      expect(restored.stats.tokensPrefilled).toBeLessThan(260);
      expect(restored.stats.restoreMs).toBeGreaterThan(0);
      expect(restored.stats.fallbackReason).toBeUndefined();
      const metrics = await fresh.must('metrics', {});
      expect(metrics.kvStore?.chunkCount).toBeGreaterThan(3);
      expect(metrics.kvStore?.bytesOnDisk).toBeGreaterThan(0);
      // No warning: LlamaChat evaluated only the prompt's unrestored part.
      expect(warnings(fresh)).toEqual([]);
      // Deleting the chat forgets its stored KV.
      await fresh.must('unloadModel', {});
      await fresh.must('forgetChat', { chatId: 'chat1' });
      await fresh.must('loadModel', { path: modelPath, contextSize: 4096, threads: 1 });
      expect((await fresh.must('metrics', {})).kvStore?.chunkCount).toBe(0);
    } finally {
      await fresh.dispose();
    }
  });
});
