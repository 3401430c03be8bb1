/**
 * The state bridge on real inference: a sequence's state read through memory is byte for byte the
 * file node-llama-cpp writes, a load through memory continues token-identically, a KV cache on the
 * memory path writes no scratch file; and every guard (forced file path, another node-llama-cpp
 * version or llama.cpp release, a build from source, a failing probe, no idle sequence) falls back
 * to the file path with its reason instead of crashing.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LlamaContext, Token } from 'node-llama-cpp';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeStateBridge } from '../kv/kernels-load.ts';
import { greedy, seededTokens, useTestLlama } from '../../test/support/llama-fixture.ts';
import { testModelPath } from '../../test/support/models.ts';
import { KvCache } from './kv-cache.ts';
import { openBridge, PROBE_FAULT_ENV, STATE_TRANSFER_ENV, StateTransfer, TESTED_WITH } from './state-transfer.ts';

const fixture = useTestLlama('state-transfer');
/** The CI job that forces the file path sets it for every suite: those runs skip the memory tests. */
const forced = process.env[STATE_TRANSFER_ENV];
const bridged = (() => {
  const loaded = nativeStateBridge();
  return forced !== 'file' && 'bridge' in loaded && (loaded.bridge as { build?: unknown } | undefined)?.build != null;
})();

async function withContext<T>(sequences: number, task: (context: LlamaContext) => Promise<T>): Promise<T> {
  const model = await fixture.model();
  const context = await model.createContext({ contextSize: 1024, sequences, threads: 1, flashAttention: true });
  try {
    return await task(context);
  } finally {
    await context.dispose();
  }
}

afterEach(() => {
  if (forced === undefined) delete process.env[STATE_TRANSFER_ENV];
  else process.env[STATE_TRANSFER_ENV] = forced;
  delete process.env[PROBE_FAULT_ENV];
});

describe('the version and build guard', () => {
  const llama = { buildType: 'prebuilt', llamaCppRelease: { repo: 'ggml-org/llama.cpp', release: TESTED_WITH.llamaCpp } } as const;

  it('keeps the file path, with the reason, when anything differs from what the bridge was built and tested for', () => {
    process.env[STATE_TRANSFER_ENV] = 'file';
    expect(openBridge(llama, TESTED_WITH.nodeLlamaCpp)).toEqual({ reason: `${STATE_TRANSFER_ENV}=file is set` });
    if (!bridged) return;
    delete process.env[STATE_TRANSFER_ENV];
    expect(openBridge(llama, '3.22.1')).toMatchObject({ reason: expect.stringContaining('built for node-llama-cpp 3.21.1, and 3.22.1 is installed') });
    expect(openBridge(llama, null)).toMatchObject({ reason: expect.stringContaining('an unknown version is installed') });
    expect(openBridge({ ...llama, llamaCppRelease: { repo: 'ggml-org/llama.cpp', release: 'v0.5.0' } }, TESTED_WITH.nodeLlamaCpp)).toMatchObject({
      reason: expect.stringContaining('llama.cpp v0.5.0 is loaded'),
    });
    expect(openBridge({ ...llama, buildType: 'localBuild' }, TESTED_WITH.nodeLlamaCpp)).toMatchObject({ reason: expect.stringContaining('localBuild build') });
  });
});

describe.skipIf(!bridged)('state through memory', () => {
  it('passes its probe, reads the bytes saveStateToFile writes, and a load continues token-identically', async () => {
    await withContext(2, async (context) => {
      const transfer = await StateTransfer.forContext(context);
      expect(transfer.info).toEqual({ mode: 'memory' });
      const source = context.getSequence();
      const target = context.getSequence();
      const prompt = seededTokens(context.model, 11, 300);
      await source.evaluateWithoutGeneratingNewTokens(prompt);
      const image = await transfer.read(source);
      if (!image.ok) throw new Error(image.error.message);
      const path = join(fixture.dir(), 'state.bin');
      await source.saveStateToFile(path);
      expect(image.value.equals(await readFile(path))).toBe(true);
      await rm(path);

      const before = Buffer.from(image.value);
      expect(await transfer.write(target, image.value)).toEqual({ ok: true, value: undefined });
      expect(target.contextTokens).toEqual(prompt);
      // The image is lent during the load (its 8 bytes before llama.cpp's data), and given back unchanged.
      expect(image.value.equals(before)).toBe(true);
      const next = prompt.slice(0, 4) as Token[];
      expect(await greedy(target, next, 12)).toEqual(await greedy(source, next, 12));
    });
  });

  it('recognizes a context whose size llama.cpp rounded up', async () => {
    const model = await fixture.model();
    // 8,256 × 2 cells: llama.cpp makes 16,896 of them.
    const context = await model.createContext({ contextSize: 8256, sequences: 2, threads: 1, flashAttention: true });
    try {
      expect((await StateTransfer.forContext(context)).info).toEqual({ mode: 'memory' });
    } finally {
      await context.dispose();
    }
  });

  it('refuses a damaged image with a clear error and leaves the sequence empty', async () => {
    await withContext(2, async (context) => {
      const transfer = await StateTransfer.forContext(context);
      const source = context.getSequence();
      const target = context.getSequence();
      await source.evaluateWithoutGeneratingNewTokens(seededTokens(context.model, 12, 100));
      const image = await transfer.read(source);
      if (!image.ok) throw new Error(image.error.message);
      const truncated = image.value.subarray(0, image.value.byteLength - 1000);
      const written = await transfer.write(target, truncated);
      expect(written.ok).toBe(false);
      expect(target.nextTokenIndex).toBe(0);
      expect(await transfer.write(target, Buffer.from('not a state'))).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    });
  });

  it('falls back with the reason when the probe fails or no sequence is idle, never crashing', async () => {
    await withContext(1, async (context) => {
      process.env[PROBE_FAULT_ENV] = 'mismatch';
      const failed = await StateTransfer.forContext(context);
      expect(failed.info).toEqual({ mode: 'file', reason: "the state bridge's probe failed: the state read through memory differs from the state file" });
      delete process.env[PROBE_FAULT_ENV];
      const sequence = context.getSequence();
      expect((await StateTransfer.forContext(context)).info).toEqual({ mode: 'file', reason: 'no idle sequence to probe the state bridge with' });
      // The probe left the sequence it used empty and gave it back.
      expect(sequence.nextTokenIndex).toBe(0);
      expect((await StateTransfer.forContext(context, sequence)).info).toEqual({ mode: 'memory' });
      expect(sequence.nextTokenIndex).toBe(0);
    });
  });
});

describe('a KV cache on each path', () => {
  async function saveAndRestore(name: string): Promise<{ mode: string; scratch: number; restored: number }> {
    const cache = await KvCache.open({ root: join(fixture.dir(), name), budgetBytes: 1 << 30, llamaRelease: 'test-release', scratchDir: join(fixture.dir(), `${name}-scratch`) });
    if (!cache.ok) throw new Error(cache.error.message);
    try {
      return await withContext(2, async (context) => {
        const profile = await cache.value.prepare({ model: context.model, context, modelPath: await testModelPath(), flashAttention: true });
        const prompt = seededTokens(context.model, 13, 600);
        const source = context.getSequence();
        await source.evaluateWithoutGeneratingNewTokens(prompt);
        expect((await cache.value.save(profile, source, 'chat/a')).ok).toBe(true);
        const target = context.getSequence();
        const report = await cache.value.restore(profile, target, [...prompt, prompt[0]!]);
        return { mode: cache.value.transferOf(profile).mode, scratch: cache.value.scratchBytesWritten, restored: report.tokensRestored };
      });
    } finally {
      await cache.value.close();
    }
  }

  it.skipIf(!bridged)('writes no scratch file through memory', async () => {
    expect(await saveAndRestore('memory')).toEqual({ mode: 'memory', scratch: 0, restored: 600 });
  });

  it('goes through scratch files, and counts them, with HEARTH_STATE_TRANSFER=file', async () => {
    process.env[STATE_TRANSFER_ENV] = 'file';
    const run = await saveAndRestore('file');
    expect(run).toMatchObject({ mode: 'file', restored: 600 });
    // The save's state file and the restore's, each ~1 KB per token of the test model.
    expect(run.scratch).toBeGreaterThan(2 * 600 * 900);
  });
});
