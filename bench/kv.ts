/**
 * `npm run bench -- kv`: every K/V pair that validation accepts, per model: its KV bytes per
 * token, prefill and decode speed, quality against F16, and the planner's estimate of the
 * context's memory beside what llama.cpp allocated; then the planner's fit table for three
 * reference models, built from their published shapes, on an 8 GB GPU and a 16 GB Mac. It exists
 * to put numbers behind the planner's and the quality meter's advice (docs/benchmarks.md).
 *
 * Speeds are comparable within a run only (the machine is shared and noisy). f16/f16 is the
 * quality reference, not a measurement (docs/decisions/kv-quality.md). Planned against measured
 * memory is a check only on a GPU: on the CPU both figures come from llama.cpp's own buffer
 * sizes (docs/decisions/memory-estimate.md), so the report says so instead of a PASS.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { GgufInsights, getLlama, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import type { DeviceMemory, KvPlan } from '../engine/contract/index.ts';
import { readDevice, readModelShape, v2Estimator } from '../engine/worker/planner.ts';
import { buildPlan, formatBytes, kvBytesPerToken, memoizeEstimator, pairName, pairOrder, pairRefusal, resolveFlashAttention, type Reserve } from '../engine/worker/planner-core.ts';
import { ggmlKvTypeName } from '../engine/worker/kv-types.ts';
import { measureKvQuality } from '../engine/worker/quality.ts';
import { repoRoot, testModelPath, trainedModelsDir } from '../test/support/models.ts';
import { referenceModels } from '../engine/worker/fit-reference.ts';
import { LLAMA_3_2_3B, referenceHeader, type ReferenceGgufShape } from '../test/support/reference-gguf.ts';
import { markdownTable, type Column } from './table.ts';
import { machineInfo, round2, timed, writeReport, type MachineInfo } from './util.ts';
import { errorText } from '../engine/contract/index.ts';

/** The context each pair's memory is measured at. */
export const CONTEXT_TOKENS = 4096;

/** The context the fit table's totals are for. */
const FIT_CONTEXT_TOKENS = 8192;


export interface KvBenchOptions {
  readonly jsonPath: string;
  /** Extra GGUF models (the generated test model, and the small trained models when present, always run). */
  readonly models: readonly string[];
  readonly threads: number;
  /** Tokens prefilled per pair. */
  readonly prefillTokens: number;
  /** Tokens decoded per pair, after the prefill. */
  readonly decodeTokens: number;
  /** Positions the quality meter compares per pair. */
  readonly qualityTokens: number;
  /** Only these pairs ("k/v"), when given. */
  readonly pairs?: readonly string[];
  readonly log: (line: string) => void;
}

export interface KvRow {
  readonly model: string;
  /** "k/v", e.g. "q8_0/q4_0". */
  readonly kvType: string;
  readonly flashAttention: boolean;
  /** KV bytes per token per slot, every layer. */
  readonly bytesPerToken: number;
  readonly prefillTokPerS: number | null;
  readonly decodeTokPerS: number | null;
  /** Null when not measured, and for the reference pair (`qualityReference`). */
  readonly klVsF16: number | null;
  readonly top1VsF16: number | null;
  /** f16/f16: the pair the others are measured against, so it has no quality figures. */
  readonly qualityReference: boolean;
  /** The planner's estimate of the context's memory at 4,096 tokens (KV + compute + output buffers). */
  readonly plannedBytes: number | null;
  /** llama.cpp's allocation for that context. */
  readonly measuredBytes: number | null;
  readonly notes: readonly string[];
}

/** One row of the fit table: a reference model on a hypothetical device. */
export interface FitRow {
  readonly model: string;
  readonly device: string;
  readonly kvType: string;
  readonly refused: string | null;
  readonly bytesPerToken: number;
  /** Weights + KV + buffers at FIT_CONTEXT_TOKENS. */
  readonly totalBytes: number;
  readonly maxContextFullGpu: number | null;
  readonly maxContextPartial: number;
  readonly fits: boolean;
}

export interface ReferenceModelInfo {
  readonly name: string;
  readonly source: string;
  /** The synthesized Q4_K_M weights, beside the published Q4_K_M file size. */
  readonly weightsBytes: number;
  readonly publishedQ4KMBytes: number;
  readonly auto: Readonly<Record<string, string | null>>;
}

export interface KvReport {
  readonly rows: KvRow[];
  readonly fit: { readonly contextTokens: number; readonly devices: readonly HypotheticalDevice[]; readonly models: readonly ReferenceModelInfo[]; readonly rows: FitRow[] };
  readonly machine: MachineInfo & { readonly threads: number; readonly nodeLlamaCpp: string; readonly llamaCppRelease: string; readonly backend: string };
  readonly settings: { readonly contextTokens: number; readonly prefillTokens: number; readonly decodeTokens: number; readonly qualityTokens: number };
  readonly date: string;
  readonly acceptance: AcceptanceLine[];
}

export interface AcceptanceLine {
  readonly model: string;
  readonly kvType: string;
  readonly check: string;
  readonly pass: boolean | null;
  readonly detail: string;
}

// --- Reference models -------------------------------------------------------------------------

const llama31 = referenceModels.find((m) => m.name === 'Llama-3.1-8B')!;

/** A reference model: its published shape, where it comes from, and its published Q4_K_M file's size. */
interface ReferenceShape extends ReferenceGgufShape {
  /** Where the numbers come from. */
  readonly source: string;
  /** The size of a published Q4_K_M file, for a sanity check of the synthesized tensor types. */
  readonly publishedQ4KMBytes: number;
}

/**
 * Published shapes (each model's config.json on Hugging Face) and published Q4_K_M file sizes.
 * KV per token in F16: 128 KiB (Llama-3.1-8B), 144 (Qwen3-8B), 112 (Llama-3.2-3B). Their headers
 * state the head size (`statesHeadDim`), as this benchmark's headers always have.
 */
const referenceShapes: readonly ReferenceShape[] = [
  {
    // fit-reference.ts's Llama-3.1-8B (the base model's config.json is the Instruct one's).
    // Q4_K_M: bartowski/Meta-Llama-3.1-8B-Instruct-GGUF, 4.92 GB.
    ...llama31,
    source: 'huggingface.co/meta-llama/Llama-3.1-8B (config.json)',
    statesHeadDim: true,
    publishedQ4KMBytes: llama31.files.find((f) => f.quant === 'Q4_K_M')!.bytes,
  },
  {
    name: 'Qwen3-8B',
    // huggingface.co/Qwen/Qwen3-8B config.json: hidden_size 4096, intermediate_size 12288,
    // num_hidden_layers 36, num_attention_heads 32, num_key_value_heads 8, head_dim 128,
    // vocab_size 151936, max_position_embeddings 40960, rope_theta 1000000, rms_norm_eps 1e-6,
    // untied, q/k RMS norms. Q4_K_M: Qwen/Qwen3-8B-GGUF, 5.03 GB.
    source: 'huggingface.co/Qwen/Qwen3-8B (config.json)',
    arch: 'qwen3',
    layers: 36,
    nEmbd: 4096,
    nFf: 12288,
    nHead: 32,
    nHeadKv: 8,
    headDim: 128,
    nVocab: 151936,
    contextLength: 40960,
    ropeBase: 1000000,
    rmsEps: 1e-6,
    tiedEmbeddings: false,
    qkNorm: true,
    statesHeadDim: true,
    publishedQ4KMBytes: 5.03e9,
  },
  {
    // Q4_K_M: bartowski/Llama-3.2-3B-Instruct-GGUF, 2.02 GB.
    ...LLAMA_3_2_3B,
    source: 'huggingface.co/meta-llama/Llama-3.2-3B (config.json)',
    statesHeadDim: true,
    publishedQ4KMBytes: 2.02e9,
  },
];

/** A device the fit table plans for, with what node-llama-cpp would keep free on it. */
export interface HypotheticalDevice {
  readonly name: string;
  readonly memory: DeviceMemory;
  readonly reserve: Reserve;
  readonly note: string;
}

const GiB = 1024 ** 3;

/**
 * The reserves are node-llama-cpp 3.21.1's default paddings (bindings/getLlama.js): VRAM
 * min(8% of the total, 1.6 GiB); RAM min(25% of the total, 1 GiB on Linux, 6 GiB elsewhere).
 */
export const hypotheticalDevices: readonly HypotheticalDevice[] = [
  {
    name: '8 GB GPU',
    memory: { backend: 'cuda', gpuName: 'an 8 GB NVIDIA card (RTX 4060 class)', vramTotalBytes: 8 * GiB, vramFreeBytes: 7.5 * GiB, unifiedMemory: false, ramTotalBytes: 32 * GiB, ramFreeBytes: 24 * GiB },
    reserve: { vramBytes: Math.floor(Math.min(0.08 * 8 * GiB, 1.6 * GiB)), ramBytes: GiB },
    note: "CUDA, 8 GiB of VRAM of which 0.5 GiB are taken by the desktop, 32 GiB of RAM (24 free), Linux; llama.cpp's prebuilt CUDA flash attention runs f16/f16, q8_0/q8_0 and q4_0/q4_0 only",
  },
  {
    name: '16 GB Mac',
    // Metal's recommendedMaxWorkingSetSize on a 16 GB Apple silicon Mac is two thirds of it:
    // llama.cpp logs "recommendedMaxWorkingSetSize = 10922.67 MB" there (MiB, from a 16 GB M1
    // MacBook Pro in github.com/abetlen/llama-cpp-python/issues/687).
    memory: { backend: 'metal', gpuName: 'Apple silicon, 16 GB', vramTotalBytes: Math.floor((16 * GiB * 2) / 3), vramFreeBytes: Math.floor((16 * GiB * 2) / 3), unifiedMemory: true, ramTotalBytes: 16 * GiB, ramFreeBytes: 12 * GiB },
    reserve: { vramBytes: Math.floor(Math.min((0.08 * 16 * GiB * 2) / 3, 1.6 * GiB)), ramBytes: Math.floor(Math.min(0.25 * 16 * GiB, 6 * GiB)) },
    note: "Metal on unified memory: Metal lets a process use 2/3 of the 16 GiB (10,923 MiB); 12 GiB free with macOS and apps running; Metal's flash attention needs K and V of one type",
  },
];

async function referenceFitTable(llama: Llama, log: (line: string) => void): Promise<{ models: ReferenceModelInfo[]; rows: FitRow[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-kv-bench-'));
  const models: ReferenceModelInfo[] = [];
  const rows: FitRow[] = [];
  try {
    for (const shape of referenceShapes) {
      const file = join(dir, `${shape.name}.gguf`);
      await writeFile(file, referenceHeader(shape, 'Q4_K_M'));
      const insights = await GgufInsights.from(await readGgufFileInfo(file, { logWarnings: false }), llama);
      const modelShape = readModelShape(insights);
      // One estimator for both devices: the estimate does not depend on the device's size.
      const estimate = memoizeEstimator(v2Estimator(insights, 0));
      const auto: Record<string, string | null> = {};
      for (const device of hypotheticalDevices) {
        const started = performance.now();
        const plan: KvPlan = await buildPlan({ shape: modelShape, device: device.memory, reserve: device.reserve, contextSize: FIT_CONTEXT_TOKENS, slots: 1, estimate });
        log(`  ${shape.name} on ${device.name}: ${Math.round(performance.now() - started)} ms`);
        auto[device.name] = plan.auto ? pairName(plan.auto) : null;
        for (const row of plan.rows) {
          rows.push({
            model: shape.name,
            device: device.name,
            kvType: pairName(row),
            refused: row.refused ?? null,
            bytesPerToken: row.kvBytesPerToken,
            totalBytes: row.totalBytes,
            maxContextFullGpu: row.maxContextFullGpu,
            maxContextPartial: row.maxContextPartial,
            fits: row.fits,
          });
        }
      }
      models.push({ name: shape.name, source: shape.source, weightsBytes: modelShape.weightsBytes, publishedQ4KMBytes: shape.publishedQ4KMBytes, auto });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { models, rows };
}

// --- Measured rows ----------------------------------------------------------------------------

/** `count` tokens of `text`, repeated as needed. */
function textTokens(model: LlamaModel, text: string, count: number): Token[] {
  const once = model.tokenize(text, false);
  if (once.length === 0) throw new Error('the calibration text tokenizes to nothing');
  const out: Token[] = [];
  while (out.length < count) out.push(...once.slice(0, count - out.length));
  return out;
}

async function measureModel(llama: Llama, modelPath: string, label: string, text: string, options: KvBenchOptions): Promise<KvRow[]> {
  const { log } = options;
  const insights = await GgufInsights.from(await readGgufFileInfo(modelPath, { logWarnings: false }), llama);
  const shape = readModelShape(insights);
  const { device } = await readDevice(llama);
  const flashAttention = resolveFlashAttention('auto', shape);
  const estimate = v2Estimator(insights, device.backend === 'cpu' ? 0 : insights.totalLayers);
  const accepted = pairOrder.filter((pair) => pairRefusal(shape, pair, flashAttention, device.backend) === null && (options.pairs === undefined || options.pairs.includes(pairName(pair))));
  log(`${label}: ${accepted.length} accepted pairs, flash attention ${flashAttention ? 'on' : 'off'}`);
  const model = await llama.loadModel({ modelPath });
  const rows: KvRow[] = [];
  try {
    const tokens = textTokens(model, text, options.prefillTokens + 1);
    {
      // Warm-up, not timed: the process's first evaluation pays one-off costs (thread pool,
      // allocator, page faults) that would otherwise land on the first pair.
      const warm = await model.createContext({ contextSize: CONTEXT_TOKENS, sequences: 1, threads: options.threads, flashAttention });
      await warm.getSequence().evaluateWithoutGeneratingNewTokens(tokens.slice(0, options.prefillTokens));
      await warm.dispose();
    }
    if (model.trainContextSize > 0 && model.trainContextSize < CONTEXT_TOKENS) log(`  note: trained on ${model.trainContextSize} tokens; the ${CONTEXT_TOKENS}-token context is for memory, speeds and quality are within ${options.prefillTokens} tokens`);
    for (const pair of accepted) {
      const notes: string[] = [];
      let plannedBytes: number | null = null;
      try {
        plannedBytes = await estimate({ contextSize: CONTEXT_TOKENS, slots: 1, pair, flashAttention });
      } catch (error) {
        notes.push(`no estimate: ${errorText(error)}`);
      }
      let measuredBytes: number | null = null;
      let prefillTokPerS: number | null = null;
      let decodeTokPerS: number | null = null;
      const context = await model.createContext({
        contextSize: CONTEXT_TOKENS,
        sequences: 1,
        threads: options.threads,
        flashAttention,
        experimentalKvCacheKeyType: ggmlKvTypeName(pair.kType),
        experimentalKvCacheValueType: ggmlKvTypeName(pair.vType),
      });
      try {
        measuredBytes = context.memoryUsage.ram + context.memoryUsage.vram;
        const sequence = context.getSequence();
        const prefill = await timed(() => sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, options.prefillTokens)));
        prefillTokPerS = options.prefillTokens / (prefill.ms / 1000);
        let generated = 0;
        const decode = await timed(async () => {
          for await (const token of sequence.evaluate([tokens[options.prefillTokens]!], { temperature: 0 })) {
            void token;
            if (++generated >= options.decodeTokens) break;
          }
        });
        decodeTokPerS = generated / (decode.ms / 1000);
      } finally {
        await context.dispose();
      }
      let klVsF16: number | null = null;
      let top1VsF16: number | null = null;
      const qualityReference = pair.kType === 'f16' && pair.vType === 'f16';
      if (!qualityReference && options.qualityTokens > 1) {
        const quality = await measureKvQuality(model, { kType: pair.kType, vType: pair.vType, flashAttention, threads: options.threads, text, maxTokens: options.qualityTokens });
        if (quality.ok) {
          klVsF16 = quality.value.klDivergence;
          top1VsF16 = quality.value.top1Agreement;
        } else {
          notes.push(`quality not measured: ${quality.error.message}`);
        }
      }
      const row: KvRow = {
        model: label,
        kvType: pairName(pair),
        flashAttention,
        bytesPerToken: kvBytesPerToken(shape, pair),
        prefillTokPerS: round2(prefillTokPerS),
        decodeTokPerS: round2(decodeTokPerS),
        klVsF16,
        top1VsF16,
        qualityReference,
        plannedBytes,
        measuredBytes,
        notes,
      };
      const quality = qualityReference ? 'quality: the reference' : `KL ${klVsF16?.toExponential(2) ?? '—'}, top-1 ${top1VsF16?.toFixed(3) ?? '—'}`;
      log(`  ${row.kvType}: ${row.bytesPerToken} B/token, prefill ${Math.round(prefillTokPerS ?? 0)} tok/s, decode ${Math.round(decodeTokPerS ?? 0)} tok/s, ${quality}, planned ${plannedBytes} / measured ${measuredBytes}${device.backend === 'cpu' ? ' (CPU: not a check)' : ''}`);
      rows.push(row);
    }
  } finally {
    await model.dispose();
  }
  return rows;
}

// --- Report -----------------------------------------------------------------------------------

export const GENERATED = 'test model';

/** What the report prints for planned against measured memory when no GPU is in use. */
export const NOT_A_CHECK_WITHOUT_GPU = 'not a check without a GPU';

/**
 * The report's checks. `backend` is the one the rows ran on: on the CPU, llama.cpp's allocation
 * is the same buffer arithmetic its estimate uses, so planned against measured compares the
 * estimate with itself and is reported as no check at all (pass null), never as a PASS.
 */
export function acceptance(rows: readonly KvRow[], backend: string): AcceptanceLine[] {
  const lines: AcceptanceLine[] = [];
  for (const row of rows) {
    if (row.model === GENERATED) {
      const { plannedBytes: p, measuredBytes: m } = row;
      const check = 'plannedBytes within 10% of measuredBytes';
      const figures = p === null || m === null ? 'not measured' : `${p.toLocaleString('en-US')} vs ${m.toLocaleString('en-US')} B (${(((p - m) / m) * 100).toFixed(2)}%)`;
      if (backend === 'cpu') {
        lines.push({ model: row.model, kvType: row.kvType, check, pass: null, detail: `${NOT_A_CHECK_WITHOUT_GPU} (on the CPU both figures are llama.cpp's own buffer sizes): ${figures}` });
      } else {
        lines.push({ model: row.model, kvType: row.kvType, check, pass: p === null || m === null ? null : Math.abs(p - m) <= 0.1 * m, detail: figures });
      }
    } else if (row.kvType === 'q8_0/q8_0') {
      lines.push({
        model: row.model,
        kvType: row.kvType,
        check: 'top1VsF16 ≥ 0.98 (trained models)',
        pass: row.top1VsF16 === null ? null : row.top1VsF16 >= 0.98,
        detail: row.top1VsF16 === null ? 'not measured' : `top-1 ${row.top1VsF16.toFixed(4)}, KL ${row.klVsF16?.toExponential(2) ?? '—'}`,
      });
    }
  }
  return lines;
}

const rowColumns: Column<KvRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'K/V', value: (r) => r.kvType },
  { title: 'B/token', value: (r) => r.bytesPerToken, numeric: true },
  { title: 'prefill tok/s', value: (r) => (r.prefillTokPerS === null ? null : Math.round(r.prefillTokPerS)), numeric: true },
  { title: 'decode tok/s', value: (r) => (r.decodeTokPerS === null ? null : Math.round(r.decodeTokPerS)), numeric: true },
  { title: 'KL vs f16', value: (r) => (r.qualityReference ? 'reference' : r.klVsF16 === null ? null : r.klVsF16 === 0 ? '0' : r.klVsF16.toExponential(2)) },
  { title: 'top-1 vs f16', value: (r) => (r.qualityReference ? 'reference' : r.top1VsF16 === null ? null : r.top1VsF16.toFixed(3)) },
  { title: 'planned bytes', value: (r) => r.plannedBytes, numeric: true },
  { title: 'measured bytes', value: (r) => r.measuredBytes, numeric: true },
];

const context = (n: number | null) => (n === null ? null : n === 0 ? '0' : n.toLocaleString('en-US'));

const fitColumns: Column<FitRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'device', value: (r) => r.device },
  { title: 'K/V', value: (r) => r.kvType },
  { title: 'KiB/token', value: (r) => Math.round((r.bytesPerToken / 1024) * 10) / 10, numeric: true },
  { title: `total at ${FIT_CONTEXT_TOKENS.toLocaleString('en-US')}`, value: (r) => formatBytes(r.totalBytes) },
  { title: 'fits', value: (r) => (r.fits ? 'yes' : 'no') },
  { title: 'longest context, all on GPU', value: (r) => context(r.maxContextFullGpu), numeric: true },
  { title: 'longest context, partial offload', value: (r) => context(r.maxContextPartial), numeric: true },
];

/** The markdown report: the measured rows, the acceptance lines, and the fit table. */
export function formatKvReport(report: KvReport): string {
  const m = report.machine;
  const s = report.settings;
  const lines = [
    `## KV pairs (context memory at ${s.contextTokens.toLocaleString('en-US')} tokens)`,
    '',
    markdownTable(report.rows, rowColumns),
    '',
    `${m.cpu}, ${m.cores} cores, ${m.threads} thread(s), ${m.backend}; node-llama-cpp ${m.nodeLlamaCpp} (llama.cpp ${m.llamaCppRelease}). Prefill ${s.prefillTokens} tokens, then ${s.decodeTokens} decoded; quality over the calibration text's first ${s.qualityTokens} tokens, f16/f16 being the reference (not measured).${m.backend === 'cpu' ? ` Planned and measured bytes: ${NOT_A_CHECK_WITHOUT_GPU} (both are llama.cpp's own buffer sizes on the CPU).` : ''}`,
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.model} ${a.kvType}: ${a.check}: ${a.detail}`),
    ...report.rows.flatMap((r) => r.notes.map((n) => `note: ${r.model} ${r.kvType}: ${n}`)),
    '',
    `## Planner fit table (reference models from their published shapes, Q4_K_M, context ${FIT_CONTEXT_TOKENS.toLocaleString('en-US')}, one slot)`,
    '',
    ...report.fit.devices.map((d) => `- ${d.name}: ${d.note}.`),
    ...report.fit.models.map(
      (r) => `- ${r.name} (${r.source}): synthesized Q4_K_M weights ${(r.weightsBytes / 1e9).toFixed(2)} GB (published file ${(r.publishedQ4KMBytes / 1e9).toFixed(2)} GB); auto picks ${Object.entries(r.auto).map(([device, pair]) => `${pair ?? 'nothing'} on the ${device}`).join(', ')}.`,
    ),
    '',
    'Pairs a device refuses (its flash-attention kernels) are left out of the table.',
    '',
    markdownTable(report.fit.rows.filter((r) => r.refused === null), fitColumns),
  ];
  return lines.join('\n');
}

/** Runs the benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runKvBench(options: KvBenchOptions): Promise<KvReport> {
  const { log } = options;
  const sharedDir = trainedModelsDir;
  const shared = existsSync(sharedDir) ? (await readdir(sharedDir)).filter((name) => name.endsWith('.gguf')).sort().map((name) => join(sharedDir, name)) : [];
  const testModel = await testModelPath();
  const models = [testModel, ...shared, ...options.models.map((p) => resolve(p))];
  const text = await readFile(join(repoRoot, 'assets', 'calibration.txt'), 'utf8');
  const llama = await getLlama({ gpu: 'auto', build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const llamaCppRelease = llama.llamaCppRelease.release;
  const backend = llama.gpu === false ? 'cpu' : llama.gpu;
  const rows: KvRow[] = [];
  let fit: { models: ReferenceModelInfo[]; rows: FitRow[] };
  try {
    for (const modelPath of models) {
      rows.push(...(await measureModel(llama, modelPath, modelPath === testModel ? GENERATED : basename(modelPath), text, options)));
    }
    log('fit table');
    fit = await referenceFitTable(llama, log);
  } finally {
    await llama.dispose();
  }
  const report: KvReport = {
    rows,
    fit: { contextTokens: FIT_CONTEXT_TOKENS, devices: hypotheticalDevices, ...fit },
    machine: {
      ...machineInfo(),
      threads: options.threads,
      nodeLlamaCpp,
      llamaCppRelease,
      backend,
    },
    settings: { contextTokens: CONTEXT_TOKENS, prefillTokens: options.prefillTokens, decodeTokens: options.decodeTokens, qualityTokens: options.qualityTokens },
    date: new Date().toISOString(),
    acceptance: acceptance(rows, backend),
  };
  await writeReport(options.jsonPath, report, formatKvReport(report));
  return report;
}
