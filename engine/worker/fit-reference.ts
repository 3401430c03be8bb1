/**
 * Reference models and machines for the fit verdicts (fit-core.ts): the published shapes of four
 * popular models with the sizes of their published GGUF files, seven typical machines, and an
 * estimator of a context's memory that needs no llama.cpp, so the verdicts test without a model
 * and `scripts/fit-table.ts` prints the README's table from them.
 *
 * `referenceEstimator` is a formula, not llama.cpp: fit.model.test.ts checks it against
 * node-llama-cpp's V2 estimate (llama.cpp's own context setup, without allocating) on headers of
 * these very shapes, within `REFERENCE_ESTIMATE_TOLERANCE`.
 */
import type { DeviceMemory } from '../contract/index.ts';
import { cellsPerSlot, kvBytesPerToken, type ContextEstimator, type ModelShape, type Reserve } from './planner-core.ts';

/** The quantizations the table lists (llama.cpp's quantize names). */
export type ReferenceQuant = 'Q4_K_M' | 'Q5_K_M' | 'Q8_0' | 'F16';

/** One published GGUF file of a reference model. */
export interface ReferenceFile {
  readonly quant: ReferenceQuant;
  /** The file's bytes as the repository lists them (GB there are 10^9 bytes). */
  readonly bytes: number;
}

/**
 * A model's shape, from its config.json, as llama.cpp's converter writes it: what a GGUF header of
 * the model states (test/support/reference-gguf.ts builds one from it).
 */
export interface PublishedShape {
  /** The model's name. */
  readonly name: string;
  /** llama.cpp's architecture name (the metadata key prefix). */
  readonly arch: 'llama' | 'qwen2' | 'qwen3';
  readonly layers: number;
  readonly nEmbd: number;
  readonly nFf: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  readonly headDim: number;
  readonly nVocab: number;
  /** The trained context (GGUF `context_length`). */
  readonly contextLength: number;
  readonly ropeBase: number;
  readonly rmsEps: number;
  /** Q, K and V projections with biases (Qwen2). */
  readonly qkvBias?: boolean;
  /** The output matrix is the token embedding (no output.weight). */
  readonly tiedEmbeddings?: boolean;
  /** Per-head RMS norms of Q and K (Qwen3). */
  readonly qkNorm?: boolean;
  /**
   * The header states the head size (`attention.key_length` and `value_length`), as the converter
   * does when config.json gives head_dim. It is stated anyway where it is not nEmbd / nHead, the
   * size llama.cpp assumes otherwise.
   */
  readonly statesHeadDim?: boolean;
}

/** A reference model: its published shape, and its published GGUF files. */
export interface ReferenceModel extends PublishedShape {
  /** Where the shape comes from. */
  readonly source: string;
  /** Where the file sizes come from. */
  readonly filesSource: string;
  /** The architectures the reference models use. */
  readonly arch: 'llama' | 'qwen2';
  readonly qkvBias: boolean;
  readonly files: readonly ReferenceFile[];
}

/** Bytes of a size given in GB (10^9 bytes), whole. */
const gb = (value: number) => Math.round(value * 1e9);

/**
 * The models. Shapes from each model's config.json on Hugging Face (hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size,
 * max_position_embeddings, rope_theta, rms_norm_eps; head_dim = hidden_size / heads). File sizes
 * from bartowski's GGUF repositories (the sizes their file tables give; the Q4_K_M sizes of the
 * Qwen models to the byte). fit.model.test.ts rebuilds each file's tensors with llama.cpp's
 * quantization recipes and checks these sizes against them.
 */
export const referenceModels: readonly ReferenceModel[] = [
  {
    name: 'Qwen2.5-7B',
    // hidden_size 3584, intermediate_size 18944, 28 layers, 28 heads, 4 KV heads, vocab 152064,
    // max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-6, untied.
    source: 'huggingface.co/Qwen/Qwen2.5-7B-Instruct (config.json)',
    filesSource: 'huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF',
    arch: 'qwen2',
    layers: 28,
    nEmbd: 3584,
    nFf: 18944,
    nHead: 28,
    nHeadKv: 4,
    headDim: 128,
    nVocab: 152064,
    contextLength: 32768,
    ropeBase: 1e6,
    rmsEps: 1e-6,
    qkvBias: true,
    files: [
      { quant: 'Q4_K_M', bytes: 4_683_074_816 },
      { quant: 'Q5_K_M', bytes: gb(5.44) },
      { quant: 'Q8_0', bytes: gb(8.1) },
      { quant: 'F16', bytes: gb(15.24) },
    ],
  },
  {
    name: 'Llama-3.1-8B',
    // hidden_size 4096, intermediate_size 14336, 32 layers, 32 heads, 8 KV heads, vocab 128256,
    // max_position_embeddings 131072, rope_theta 500000, rms_norm_eps 1e-5, untied.
    source: 'huggingface.co/meta-llama/Llama-3.1-8B-Instruct (config.json)',
    filesSource: 'huggingface.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF',
    arch: 'llama',
    layers: 32,
    nEmbd: 4096,
    nFf: 14336,
    nHead: 32,
    nHeadKv: 8,
    headDim: 128,
    nVocab: 128256,
    contextLength: 131072,
    ropeBase: 500000,
    rmsEps: 1e-5,
    qkvBias: false,
    files: [
      { quant: 'Q4_K_M', bytes: gb(4.92) },
      { quant: 'Q5_K_M', bytes: gb(5.73) },
      { quant: 'Q8_0', bytes: gb(8.54) },
      // Half of the repository's F32 file (32.13 GB): every matrix in 2 bytes instead of 4.
      { quant: 'F16', bytes: gb(16.07) },
    ],
  },
  {
    name: 'Qwen2.5-14B',
    // hidden_size 5120, intermediate_size 13824, 48 layers, 40 heads, 8 KV heads, vocab 152064,
    // max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-5, untied.
    source: 'huggingface.co/Qwen/Qwen2.5-14B-Instruct (config.json)',
    filesSource: 'huggingface.co/bartowski/Qwen2.5-14B-Instruct-GGUF',
    arch: 'qwen2',
    layers: 48,
    nEmbd: 5120,
    nFf: 13824,
    nHead: 40,
    nHeadKv: 8,
    headDim: 128,
    nVocab: 152064,
    contextLength: 32768,
    ropeBase: 1e6,
    rmsEps: 1e-5,
    qkvBias: true,
    files: [
      { quant: 'Q4_K_M', bytes: 8_988_111_584 },
      { quant: 'Q5_K_M', bytes: gb(10.51) },
      { quant: 'Q8_0', bytes: gb(15.7) },
    ],
  },
  {
    name: 'Qwen2.5-32B',
    // hidden_size 5120, intermediate_size 27648, 64 layers, 40 heads, 8 KV heads, vocab 152064,
    // max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-5, untied.
    source: 'huggingface.co/Qwen/Qwen2.5-32B-Instruct (config.json)',
    filesSource: 'huggingface.co/bartowski/Qwen2.5-32B-Instruct-GGUF',
    arch: 'qwen2',
    layers: 64,
    nEmbd: 5120,
    nFf: 27648,
    nHead: 40,
    nHeadKv: 8,
    headDim: 128,
    nVocab: 152064,
    contextLength: 32768,
    ropeBase: 1e6,
    rmsEps: 1e-5,
    qkvBias: true,
    files: [
      { quant: 'Q4_K_M', bytes: 19_851_351_776 },
      { quant: 'Q5_K_M', bytes: gb(23.26) },
      { quant: 'Q8_0', bytes: gb(34.82) },
    ],
  },
];

/**
 * The planner's shape of a reference model with `weightsBytes` of weights. Every one of these
 * architectures runs with flash attention in llama.cpp.
 */
export function referenceShape(model: ReferenceModel, weightsBytes: number): ModelShape {
  return {
    layers: model.layers,
    headCountKv: Array.from({ length: model.layers }, () => model.nHeadKv),
    headDimK: model.headDim,
    headDimV: model.headDim,
    trainedContextLength: model.contextLength,
    flashAttentionSupported: true,
    weightsBytes,
  };
}

/** A machine the verdicts are computed for: its memory totals and what node-llama-cpp keeps free. */
export interface ReferenceMachine {
  /** The table's column heading. */
  readonly name: string;
  readonly device: DeviceMemory;
  readonly reserve: Reserve;
  readonly note: string;
}

const GiB = 1024 ** 3;

/** node-llama-cpp 3.21.1's default paddings (bindings/getLlama.js): VRAM min(8%, 1.6 GiB); RAM min(25%, 6 GiB), 1 GiB on Linux. */
const vramPadding = (total: number) => Math.floor(Math.min(total * 0.08, 1.6 * GiB));
const ramPadding = (total: number) => Math.floor(Math.min(total * 0.25, 6 * GiB));

function pc(vramGiB: number): ReferenceMachine {
  const vram = vramGiB * GiB;
  const ram = 32 * GiB;
  return {
    name: `PC ${vramGiB} GB`,
    device: { backend: 'cuda', gpuName: `a ${vramGiB} GB NVIDIA card`, vramTotalBytes: vram, vramFreeBytes: vram, unifiedMemory: false, ramTotalBytes: ram, ramFreeBytes: ram },
    reserve: { vramBytes: vramPadding(vram), ramBytes: ramPadding(ram) },
    note: `CUDA, ${vramGiB} GiB of VRAM, 32 GiB of RAM, Windows`,
  };
}

/**
 * Metal lets one process use `recommendedMaxWorkingSetSize` of a Mac's unified memory, which
 * Metal reports as the GPU's total: two thirds of it on the 16 and 32 GB Macs, three quarters on
 * the 64 GB one. llama.cpp logs it at start ("MB" there are MiB): 10922.67 on a 16 GB M1
 * (github.com/abetlen/llama-cpp-python/issues/687), 21845.34 on a 32 GB M2 Max
 * (github.com/ollama/ollama/issues/434), 49152.00 on a 64 GB M1 Max
 * (github.com/ggml-org/llama.cpp/issues/1870).
 */
function mac(ramGiB: number, metalShare: number): ReferenceMachine {
  const ram = ramGiB * GiB;
  const metal = Math.floor(ram * metalShare);
  return {
    name: `Mac ${ramGiB} GB`,
    device: { backend: 'metal', gpuName: `Apple silicon, ${ramGiB} GB`, vramTotalBytes: metal, vramFreeBytes: metal, unifiedMemory: true, ramTotalBytes: ram, ramFreeBytes: ram },
    reserve: { vramBytes: vramPadding(metal), ramBytes: ramPadding(ram) },
    note: `Apple silicon with ${ramGiB} GiB of unified memory, of which Metal lets a process use ${metalShare === 0.75 ? 'three quarters' : 'two thirds'}`,
  };
}

/** The table's columns: PCs with 8, 16 and 24 GB cards, Macs with 16, 32 and 64 GB, and a laptop without a GPU. */
export const referenceMachines: readonly ReferenceMachine[] = [
  pc(8),
  pc(16),
  pc(24),
  mac(16, 2 / 3),
  mac(32, 2 / 3),
  mac(64, 3 / 4),
  {
    name: 'Laptop 16 GB, no GPU',
    device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * GiB, ramFreeBytes: 16 * GiB },
    reserve: { vramBytes: 0, ramBytes: ramPadding(16 * GiB) },
    note: 'CPU only, 16 GiB of RAM, Windows',
  },
];

/** node-llama-cpp's default batch (`getDefaultContextBatchSize`): the context's tokens, at most 512; the micro-batch is the same. */
const DEFAULT_BATCH = 512;

/**
 * A context's memory as llama.cpp's V2 estimate gives it on the CPU, from the model's shape
 * alone: the KV cache, plus the compute buffers' peak, which with flash attention is at the
 * output (the logits of a whole batch, n_vocab × batch floats, and two n_embd × batch
 * activations); without flash attention the attention scores of every head (n_head + 1 rows of
 * batch × cells floats, with the mask) may peak higher, with about six n_embd × batch activations
 * beside them. The batch is node-llama-cpp's default. Slots multiply the KV only: llama.cpp
 * splits the batch across the slots' streams, so the scores stay the same size. Measured, not
 * derived: fit.model.test.ts holds it to `REFERENCE_ESTIMATE_TOLERANCE` of llama.cpp's figure on
 * headers of every reference model, for f16, q8_0 and q4_0, flash attention on and off, 256 to
 * 131,072 tokens, one and two slots. Compute buffers on a GPU backend differ somewhat from the
 * CPU's; the estimate ignores that.
 */
export function referenceEstimator(model: ReferenceModel): ContextEstimator {
  const shape = referenceShape(model, 0);
  return async ({ contextSize, slots, pair, flashAttention }) => {
    const cells = cellsPerSlot(contextSize);
    const batch = Math.min(contextSize * slots, DEFAULT_BATCH);
    const kv = kvBytesPerToken(shape, pair) * cells * slots;
    const output = (model.nVocab + 2 * model.nEmbd) * batch * 4;
    if (flashAttention) return kv + output;
    const scores = ((model.nHead + 1) * cells + 6 * model.nEmbd) * batch * 4;
    return kv + Math.max(output, scores);
  };
}

/**
 * How far `referenceEstimator` may be from llama.cpp's V2 estimate, as a share of the latter.
 * The worst measured was 5.1% under it (tens of MiB: Qwen2.5-14B's q4_0 cache at 8,192 tokens,
 * and its f16 cache without flash attention at 2,048, where the attention and output peaks
 * meet); the machines' reserves (fitReferenceMachines) are far larger than that.
 */
export const REFERENCE_ESTIMATE_TOLERANCE = 0.06;
