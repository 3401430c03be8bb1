/**
 * Model tests' shared fixture (tests only): one CPU Llama per test file, the generated test
 * models loaded once each, and a temp directory — created before the file's tests, disposed after.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, expect } from 'vitest';
import { testModelPath, type TestModelVariant } from './models.ts';
import { seededText } from './text.ts';

export interface TestLlama {
  readonly llama: () => Llama;
  /** The file's temp directory. */
  readonly dir: () => string;
  /** The generated test model `variant`, loaded on first use and kept for the file. */
  model(variant?: TestModelVariant): Promise<LlamaModel>;
}

export function useTestLlama(name: string): TestLlama {
  let llama: Llama | undefined;
  let dir: string | undefined;
  const models = new Map<TestModelVariant, Promise<LlamaModel>>();
  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
    dir = await mkdtemp(join(tmpdir(), `hearth-${name}-`));
  });
  afterAll(async () => {
    for (const m of models.values()) await (await m.catch(() => null))?.dispose();
    await llama?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`useTestLlama: ${what} is used before beforeAll ran`);
    return value;
  };
  return {
    llama: () => need(llama, 'llama'),
    dir: () => need(dir, 'dir'),
    model(variant: TestModelVariant = 'default') {
      let loaded = models.get(variant);
      if (!loaded) {
        const instance = need(llama, 'llama');
        loaded = testModelPath(variant).then((modelPath) => instance.loadModel({ modelPath }));
        models.set(variant, loaded);
      }
      return loaded;
    },
  };
}

/** The first `count` tokens of seeded text `seed` (the tiny models read about one token per character). */
export function seededTokens(model: LlamaModel, seed: number, count: number): Token[] {
  const all = model.tokenize(seededText(seed, count));
  expect(all.length).toBeGreaterThanOrEqual(count);
  return all.slice(0, count);
}

/** `count` greedy tokens after evaluating `input` on `sequence`. */
export async function greedy(sequence: LlamaContextSequence, input: Token[], count: number): Promise<Token[]> {
  const out: Token[] = [];
  for await (const token of sequence.evaluate(input, { temperature: 0 })) {
    out.push(token);
    if (out.length >= count) break;
  }
  return out;
}
