/**
 * Reading a repository's tree as models: quantization names, split sets, projectors and imatrix
 * files left out, folder layouts, and the order.
 */
import { describe, expect, it } from 'vitest';
import { groupGgufFiles, quantizationOf } from './files.ts';

describe('quantizationOf', () => {
  it.each([
    ['Llama-3.2-1B-Instruct-Q4_K_M.gguf', 'Q4_K_M'],
    ['qwen2.5-coder-7b-instruct-q5_k_s.gguf', 'Q5_K_S'],
    ['model.Q8_0.gguf', 'Q8_0'],
    ['model_IQ3_XXS.gguf', 'IQ3_XXS'],
    ['model-iq4_nl.gguf', 'IQ4_NL'],
    ['model-Q4_0_4_4.gguf', 'Q4_0_4_4'],
    ['Llama-3.2-1B-Instruct-f16.gguf', 'F16'],
    ['model-BF16.gguf', 'BF16'],
    ['model-fp32.gguf', 'F32'],
    ['bitnet-TQ1_0.gguf', 'TQ1_0'],
    ['gpt-oss-20b-MXFP4.gguf', 'MXFP4'],
    ['Qwen3-30B-A3B-UD-Q4_K_XL.gguf', 'Q4_K_XL'],
    ['model-Q6_K-00001-of-00002.gguf', 'Q6_K'],
    ['model-Q8_0-from-F16-then-Q4_K_M.gguf', 'Q4_K_M'],
    ['Q3_K_L', 'Q3_K_L'],
  ])('%s → %s', (name, quant) => {
    expect(quantizationOf(name)).toBe(quant);
  });

  it('finds none in names without one, nor inside words', () => {
    expect(quantizationOf('tinyllama.gguf')).toBeNull();
    expect(quantizationOf('XQ4_0Y.gguf')).toBeNull();
    expect(quantizationOf('model-v2F16x.gguf')).toBeNull();
  });
});

describe('groupGgufFiles', () => {
  const sha = (n: number): string => n.toString(16).padStart(64, '0');

  it('keeps GGUF files only, smallest first, with their hashes', () => {
    const files = groupGgufFiles([
      { path: 'README.md', size: 10 },
      { path: 'big-Q8_0.gguf', size: 800, lfs: { oid: sha(1).toUpperCase() } },
      { path: 'small-Q4_K_M.gguf', size: 400, lfs: { oid: sha(2) } },
      { path: 'config.json', size: 5 },
      { path: 'odd-F16.GGUF', size: 1600 },
    ]);
    expect(files).toEqual([
      { id: 'small-Q4_K_M.gguf', paths: ['small-Q4_K_M.gguf'], name: 'small-Q4_K_M.gguf', quantization: 'Q4_K_M', sizeBytes: 400, sha256: [sha(2)] },
      { id: 'big-Q8_0.gguf', paths: ['big-Q8_0.gguf'], name: 'big-Q8_0.gguf', quantization: 'Q8_0', sizeBytes: 800, sha256: [sha(1)] },
      { id: 'odd-F16.GGUF', paths: ['odd-F16.GGUF'], name: 'odd-F16.GGUF', quantization: 'F16', sizeBytes: 1600, sha256: [null] },
    ]);
  });

  it('joins complete split sets in part order and leaves incomplete ones out', () => {
    const files = groupGgufFiles([
      { path: 'm-Q4_K_M-00002-of-00003.gguf', size: 20, lfs: { oid: sha(2) } },
      { path: 'm-Q4_K_M-00001-of-00003.gguf', size: 10, lfs: { oid: sha(1) } },
      { path: 'm-Q4_K_M-00003-of-00003.gguf', size: 30, lfs: { oid: sha(3) } },
      // Part 2 of 2 is missing: not loadable, not listed.
      { path: 'm-Q8_0-00001-of-00002.gguf', size: 50 },
    ]);
    expect(files).toEqual([
      {
        id: 'm-Q4_K_M-00001-of-00003.gguf',
        paths: ['m-Q4_K_M-00001-of-00003.gguf', 'm-Q4_K_M-00002-of-00003.gguf', 'm-Q4_K_M-00003-of-00003.gguf'],
        name: 'm-Q4_K_M.gguf',
        quantization: 'Q4_K_M',
        sizeBytes: 60,
        sha256: [sha(1), sha(2), sha(3)],
      },
    ]);
  });

  it('leaves projectors and importance matrices out, but not models quantized with an imatrix', () => {
    const files = groupGgufFiles([
      { path: 'mmproj-model-f16.gguf', size: 1 },
      { path: 'model-mmproj-F16.gguf', size: 1 },
      { path: 'imatrix.gguf', size: 1 },
      { path: 'Model.imatrix.gguf', size: 1 },
      { path: 'Model-imatrix-Q4_K_M.gguf', size: 5 },
      { path: 'model-Q4_K_M.gguf', size: 4 },
    ]);
    expect(files.map((f) => f.id)).toEqual(['model-Q4_K_M.gguf', 'Model-imatrix-Q4_K_M.gguf']);
  });

  it('reads quant folder layouts, taking the quantization from the folder when the name has none', () => {
    const files = groupGgufFiles([
      { path: 'Q4_K_M/model-Q4_K_M-00001-of-00002.gguf', size: 10 },
      { path: 'Q4_K_M/model-Q4_K_M-00002-of-00002.gguf', size: 10 },
      { path: 'IQ2_XXS/model-00001-of-00002.gguf', size: 4 },
      { path: 'IQ2_XXS/model-00002-of-00002.gguf', size: 4 },
      // Same stem in another folder: a separate set, incomplete here.
      { path: 'Q8_0/model-00001-of-00002.gguf', size: 30 },
    ]);
    expect(files.map((f) => [f.id, f.name, f.quantization, f.sizeBytes, f.paths.length])).toEqual([
      ['IQ2_XXS/model-00001-of-00002.gguf', 'model.gguf', 'IQ2_XXS', 8, 2],
      ['Q4_K_M/model-Q4_K_M-00001-of-00002.gguf', 'model-Q4_K_M.gguf', 'Q4_K_M', 20, 2],
    ]);
  });

  it('gives no quantization when neither the name nor the folder names one', () => {
    expect(groupGgufFiles([{ path: 'weights/tiny.gguf', size: 1 }])[0]!.quantization).toBeNull();
  });
});
