/**
 * `npm run bench -- resume`: how fast a chat resumes from Hearth's KV store compared with what
 * other apps do (re-read the history, or load a whole-file state snapshot), how close it gets
 * to the floor of reading the same bytes, and what saving and restoring cost in memory and
 * scratch writes at real model scale (kv-shape-8b: Llama-3-8B's KV shape, a gigabyte of state at
 * 8,000 tokens). It exists because resuming from disk is Hearth's reason to be: the figures in
 * docs/benchmarks.md come from it.
 *
 * Only ratios measured in the same run mean anything (the machine is shared and noisy), and
 * nothing here is a timed assertion. Each restore goes into a fresh context created outside the
 * timed part; restores are repeated `--reps` times after one discarded warm-up round and the
 * median is reported. `cold` evicts from the page cache everything the next timed step reads from
 * disk (the chunk files, and the KV index with its WAL), so it stands for a chat reopened after a
 * reboot; `warm` for one reopened minutes later. resume-measure.ts measures one size,
 * resume-report.ts says what each figure covers and computes the acceptance lines.
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { KvCompressionChoice, KvCompressionSetting } from '../engine/contract/index.ts';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { defaultSettings } from '../engine/host/settings.ts';
import { loadKernels } from '../engine/kv/kernels-load.ts';
import { chooseCompression, measureRestorePaths } from '../engine/worker/compression-choice.ts';
import { KvCache } from '../engine/worker/kv-cache.ts';
import { repoRoot, tinyModelPath, trainedModelsDir } from '../test/support/models.ts';
import { KV_SHAPE_8B, kvShape8bModelPath } from './kv-shape-8b.ts';
import { CHUNK_TOKENS, measureSize, TURN_TOKENS } from './resume-measure.ts';
import { acceptanceLines, formatReport, type PageCache, type ResumeReport, type ResumeRow } from './resume-report.ts';
import { fsTypeOf, isMemoryFs, machineInfo, writeReport } from './util.ts';

export { formatReport, type AcceptanceLine, type PageCache, type ResumeReport, type ResumeRow } from './resume-report.ts';

export type KvConfigName = 'f16' | 'q8_0' | 'f16-fa-off';

interface KvConfig {
  readonly name: KvConfigName;
  readonly kvType: string;
  readonly k: 'F16' | 'Q8_0';
  readonly v: 'F16' | 'Q8_0';
  readonly flashAttention: boolean;
  /** Q8_0 prefill is ~6× slower on one CPU thread: by default it runs at the largest size only. */
  readonly largestOnly: boolean;
}

export const kvConfigs: Readonly<Record<KvConfigName, KvConfig>> = {
  f16: { name: 'f16', kvType: 'f16/f16', k: 'F16', v: 'F16', flashAttention: true, largestOnly: false },
  q8_0: { name: 'q8_0', kvType: 'q8_0/q8_0', k: 'Q8_0', v: 'Q8_0', flashAttention: true, largestOnly: true },
  'f16-fa-off': { name: 'f16-fa-off', kvType: 'f16/f16', k: 'F16', v: 'F16', flashAttention: false, largestOnly: false },
};

/** The kv-shape-8b rows (after the test model's and --model's): their own sizes, KV configurations, threads and scratch. */
export interface Shape8bOptions {
  readonly sizes: readonly number[];
  readonly kv: readonly KvConfigName[];
  readonly threads: number;
  /** How `threads` was chosen, for the report header (e.g. "os.availableParallelism()"). */
  readonly threadsSource: string;
  /** KvCache scratch directory; default `<dir>/scratch`, on the measured disk (as on macOS and Windows, which have no /dev/shm). */
  readonly scratchDir?: string;
}

export interface ResumeOptions {
  readonly jsonPath: string;
  /** Extra GGUF models (the generated test model always runs first). */
  readonly models: readonly string[];
  readonly threads: number;
  readonly sizes: readonly number[];
  readonly kv: readonly KvConfigName[];
  readonly reps: number;
  /** Where stores and native state files go (on a disk: that is what is measured). */
  readonly dir: string;
  /** KvCache scratch directory; default /dev/shm/hearth-bench-<pid> where /dev/shm exists (as the app). */
  readonly scratchDir?: string;
  /** Which page-cache states to measure restores in (default both, in the same run). */
  readonly pageCache: readonly PageCache[];
  /** Run every configuration at every size (Q8_0 runs at the largest only otherwise). */
  readonly allSizes: boolean;
  /** The store's encoding setting (default: the app's, `defaultSettings.kvCompression`); `auto` is resolved as the engine does. */
  readonly compression?: KvCompressionSetting;
  /** The kv-shape-8b rows; null skips them. */
  readonly shape8b: Shape8bOptions | null;
  readonly log: (line: string) => void;
}

/** Deterministic conversation text: a small trained model's held-out text when present, else a seeded word mix. */
async function conversationText(minChars: number): Promise<{ text: string; source: string }> {
  const austen = join(trainedModelsDir, 'austen-eval.txt');
  let base: string;
  let source: string;
  if (existsSync(austen)) {
    base = await readFile(austen, 'utf8');
    source = austen;
  } else {
    const words = ['the', 'letter', 'was', 'read', 'twice', 'before', 'she', 'could', 'say', 'whether', 'it', 'pleased', 'her', 'and', 'then', 'walked', 'out'];
    let s = 20261127;
    const out: string[] = [];
    let size = 0;
    while (size < minChars) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const word = words[(s >>> 8) % words.length]!;
      out.push(word);
      size += word.length + 1;
    }
    base = out.join(' ');
    source = 'seeded word mix';
  }
  let text = base;
  while (text.length < minChars) text += `\n\n${base}`;
  return { text, source };
}

async function conversationTokens(model: LlamaModel, needed: number, log: (line: string) => void): Promise<Token[]> {
  // Byte-level test models give ~1 token per character; real tokenizers fewer, so grow until enough.
  let chars = needed + 1024;
  for (;;) {
    const { text, source } = await conversationText(chars);
    const tokens = model.tokenize(text);
    if (tokens.length >= needed) {
      log(`  conversation: ${source}, ${needed.toLocaleString('en-US')} tokens`);
      return tokens.slice(0, needed);
    }
    chars = Math.ceil((chars * needed * 1.1) / Math.max(1, tokens.length));
  }
}

/** One model's part of the run: its sizes and configurations, threads and scratch. */
interface ModelPlan {
  readonly label: string;
  readonly modelPath: string;
  readonly sizes: readonly number[];
  readonly kv: readonly KvConfigName[];
  readonly threads: number;
  readonly contextSize: number;
  readonly scratchDir: string;
}

/** Context size for conversations up to `maxSize` tokens, the next message and one more turn. */
const contextSizeFor = (maxSize: number): number => maxSize + TURN_TOKENS + 64;

/** The scratch directory, created, and whether it is on a disk (its writes then count as turn writes). */
async function scratchAt(dir: string): Promise<{ fs: string | null; onDisk: boolean }> {
  await mkdir(dir, { recursive: true });
  const fs = await fsTypeOf(dir);
  return { fs, onDisk: !isMemoryFs(fs) };
}

/** Every configuration of one model, each in a store of its own (removed after). */
async function runModel(llama: Llama, plan: ModelPlan, options: ResumeOptions, compression: KvCompressionChoice, kernels: ReturnType<typeof loadKernels>['kernels'], rowsSoFar: number): Promise<ResumeRow[]> {
  const { log } = options;
  const dir = resolve(options.dir);
  const rows: ResumeRow[] = [];
  log(`${plan.label}: ${plan.modelPath}`);
  const model: LlamaModel = await llama.loadModel({ modelPath: plan.modelPath });
  try {
    if (model.trainContextSize > 0 && model.trainContextSize < plan.contextSize) log(`  note: trained context ${model.trainContextSize} < ${plan.contextSize}; timings are still valid, output quality is not`);
    const maxSize = Math.max(...plan.sizes);
    const conversation = await conversationTokens(model, maxSize + TURN_TOKENS, log);
    const scratch = await scratchAt(plan.scratchDir);
    for (const name of plan.kv) {
      const config = kvConfigs[name];
      const sizes = config.largestOnly && !options.allSizes ? [maxSize] : [...plan.sizes].sort((a, b) => a - b);
      log(`  ${config.kvType}${config.flashAttention ? '' : ' (FA off)'}: sizes ${sizes.join(', ')}, ${plan.threads} thread(s)`);
      const root = join(dir, `store-${rowsSoFar + rows.length}-${name}`);
      await rm(root, { recursive: true, force: true });
      const opened = await KvCache.open({ root, budgetBytes: 64 * 2 ** 30, chunkTokens: CHUNK_TOKENS, llamaRelease: llama.llamaCppRelease.release, scratchDir: plan.scratchDir, compression: compression.applied, kernels });
      if (!opened.ok) throw new Error(`KvCache.open failed: ${opened.error.message}`);
      const cache = opened.value;
      try {
        const contextOptions = { contextSize: plan.contextSize, sequences: 1, threads: plan.threads, flashAttention: config.flashAttention, experimentalKvCacheKeyType: config.k, experimentalKvCacheValueType: config.v };
        for (const tokens of sizes) {
          rows.push(
            ...(await measureSize({
              model,
              modelPath: plan.modelPath,
              label: plan.label,
              config,
              cache,
              compression: compression.applied,
              contextOptions,
              conversation,
              tokens,
              reps: options.reps,
              pageCache: options.pageCache,
              workDir: dir,
              scratchDir: plan.scratchDir,
              scratchFs: scratch.fs,
              scratchOnDisk: scratch.onDisk,
              log,
            })),
          );
        }
      } finally {
        await cache.close();
        await rm(root, { recursive: true, force: true });
      }
    }
  } finally {
    await model.dispose();
  }
  return rows;
}

/**
 * The store's encoding: the setting asked for (default: the app's), with `auto` measured on this
 * machine in the store's folder, exactly as the engine resolves it at start.
 */
export function resolveCompression(setting: KvCompressionSetting, dir: string, kernels: ReturnType<typeof loadKernels>['kernels']): KvCompressionChoice {
  const root = join(dir, `compression-probe-${process.pid}`);
  try {
    return chooseCompression(setting, () => measureRestorePaths(root, kernels));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Runs the resume benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runResume(options: ResumeOptions): Promise<ResumeReport> {
  const { log } = options;
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const scratchDir = resolve(options.scratchDir ?? (existsSync('/dev/shm') ? `/dev/shm/hearth-bench-${process.pid}` : join(dir, 'scratch')));
  const shape8b = options.shape8b;
  const scratchDir8b = shape8b === null ? null : resolve(shape8b.scratchDir ?? join(dir, 'scratch'));

  const testContext = contextSizeFor(Math.max(...options.sizes));
  const testModel = await tinyModelPath({ contextLength: Math.max(16_384, Math.ceil(testContext / 1024) * 1024) }, 'bench-long');
  const plans: ModelPlan[] = [testModel, ...options.models.map((p) => resolve(p))].map((modelPath) => ({
    label: modelPath === testModel ? 'test model' : basename(modelPath),
    modelPath,
    sizes: options.sizes,
    kv: options.kv,
    threads: options.threads,
    contextSize: testContext,
    scratchDir,
  }));
  if (shape8b !== null && scratchDir8b !== null) {
    const contextSize = contextSizeFor(Math.max(...shape8b.sizes));
    log(`${KV_SHAPE_8B}: generating the model on first use (about 10 s)…`);
    plans.push({ label: KV_SHAPE_8B, modelPath: await kvShape8bModelPath(dir, contextSize), sizes: shape8b.sizes, kv: shape8b.kv, threads: shape8b.threads, contextSize, scratchDir: scratchDir8b });
  }

  const llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  const release = llama.llamaCppRelease.release;
  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const codec = loadKernels();
  const compression = resolveCompression(options.compression ?? defaultSettings.kvCompression, dir, codec.kernels);
  log(`store compression ${compression.setting === compression.applied ? compression.applied : `${compression.setting} → ${compression.applied} (${compression.reason ?? ''})`}, kernels ${codec.info.kernels}${codec.info.reason ? ` (${codec.info.reason})` : ''}`);
  // Created now, so that the report can say where they are; removed at the end.
  const scratchFs = (await scratchAt(scratchDir)).fs;
  const scratchFs8b = scratchDir8b === null ? null : (await scratchAt(scratchDir8b)).fs;
  const rows: ResumeRow[] = [];
  try {
    for (const plan of plans) rows.push(...(await runModel(llama, plan, options, compression, codec.kernels, rows.length)));
  } finally {
    await llama.dispose();
    for (const scratch of new Set([scratchDir, scratchDir8b])) if (scratch !== null) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }

  const report: ResumeReport = {
    rows,
    machine: {
      ...machineInfo(),
      threads: options.threads,
      threads8b: shape8b?.threads ?? null,
      threads8bSource: shape8b?.threadsSource ?? null,
      nodeLlamaCpp,
      llamaCppRelease: release,
      storeDir: dir,
      storeFs: await fsTypeOf(dir),
      scratchDir,
      scratchFs,
      scratchDir8b,
      scratchFs8b,
      pageCache: options.pageCache,
      reps: options.reps,
      chunkTokens: CHUNK_TOKENS,
      compressionSetting: compression.setting,
      compression: compression.applied,
      compressionReason: compression.reason ?? null,
      codec: codec.info,
    },
    date: new Date().toISOString(),
    acceptance: acceptanceLines(rows),
  };
  await writeReport(options.jsonPath, report, formatReport(report));
  return report;
}
