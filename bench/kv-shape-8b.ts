/**
 * `kv-shape-8b`: a generated model whose KV cache has Llama-3-8B's shape (32 layers, 8 KV heads
 * of 128 values), so the resume benchmark moves state of real size (f16: 128 KiB per token, a
 * gigabyte at 8,000 tokens) without downloading an 8B model. Only the KV shape is Llama 3's: the
 * model is 8 query heads wide (n_embd 1024), its feed-forward is small and its vocabulary is the
 * test model's, so a prefill costs minutes rather than hours on a CPU. The weights are seeded
 * random (test/support/gguf-writer.ts); the file is generated on first use into the benchmark's
 * folder, ~315 MB, and never committed.
 */
import { join } from 'node:path';
import type { TinyLlamaOptions } from '../test/support/gguf-writer.ts';
import { tinyModelPath } from '../test/support/models.ts';

/** The model's name in rows and acceptance lines. */
export const KV_SHAPE_8B = 'kv-shape-8b';

/** Llama-3-8B's KV shape: n_head_kv 8 × head dim 128 = n_embd_k_gqa 1024, in 32 layers. */
export const kvShape8bOptions = {
  layers: 32,
  nEmbd: 1024,
  nHead: 8,
  nHeadKv: 8,
  nFf: 256,
  seed: 8,
  name: 'Hearth kv-shape-8b',
} as const satisfies TinyLlamaOptions;

/** F16 K and V bytes per token: layers × 2 × n_embd_k_gqa × 2 bytes. */
export const kvShape8bF16BytesPerToken = kvShape8bOptions.layers * 2 * (kvShape8bOptions.nHeadKv * (kvShape8bOptions.nEmbd / kvShape8bOptions.nHead)) * 2;

/**
 * The model's path under `dir` (the benchmark's folder), generated on first use (about 10 s).
 * Its trained context is 8,192 unless `contextSize` needs more: rounding up to a multiple of
 * 1,024 keeps runs of nearby sizes on one file.
 */
export function kvShape8bModelPath(dir: string, contextSize: number): Promise<string> {
  const contextLength = Math.max(8192, Math.ceil(contextSize / 1024) * 1024);
  return tinyModelPath({ ...kvShape8bOptions, contextLength }, KV_SHAPE_8B, join(dir, 'models'));
}
