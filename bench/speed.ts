/**
 * `npm run bench -- speed`: how well Hearth's first-load speed measurement (engine/worker/speed.ts
 * measureSpeed, a few short trials) picks context settings. Per model, Hearth's own measurement
 * as the app runs it, then every alternative it could have chosen, and more (each K/V pair, each
 * flash attention value the pair allows, each thread count and batch size), measured deeper and
 * longer, in interleaved rounds: the best of the rounds per row. With `--local-engine`, every
 * row also on a llama.cpp built on this machine, beside the prebuilt one.
 *
 * Each engine runs in a child process (bench/speed-engine.ts); this process only orders the
 * requests, so exactly one measurement runs at a time.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { KvCacheType } from '../engine/contract/index.ts';
import type { Measured } from '../engine/worker/speed-choice.ts';
import { physicalCoreCount, speedThreadCandidates } from '../engine/host/models.ts';
import { repoRoot, testModelPath, trainedModelsDir } from '../test/support/models.ts';
import { GENERATED } from './kv.ts';
import { KV_SHAPE_8B, kvShape8bModelPath } from './kv-shape-8b.ts';
import { startSpeedEngine, type EngineSpec, type SpeedEngine } from './speed-engine.ts';
import { acceptanceLines, alternatives, compareEngines, DEFAULT_PAIR, formatReport, roundOrder, rowOf, settingsText, type HearthChoice, type KvPairTypes, type SpeedReport, type SpeedRow } from './speed-report.ts';
import { machineInfo, writeReport } from './util.ts';

export { formatReport } from './speed-report.ts';

/** The K/V pairs measured by default: Hearth's default, and the two it suggests where memory is short. */
export const defaultSpeedPairs = ['f16/f16', 'q8_0/f16', 'q8_0/q8_0'] as const;

export interface SpeedBenchOptions {
  readonly jsonPath: string;
  /** Extra GGUF models; the test model, kv-shape-8b (unless `shape8b` is false) and the trained models always run. */
  readonly models: readonly string[];
  readonly pairs: readonly KvPairTypes[];
  /** Tokens read before decode is timed, and tokens decoded, per row and round. */
  readonly depth: number;
  readonly decodeTokens: number;
  readonly reps: number;
  readonly seed: number;
  readonly shape8b: boolean;
  /** Where kv-shape-8b is generated (`<dir>/models`). */
  readonly dir: string;
  /** A local llama.cpp build to measure beside the prebuilt one. */
  readonly localEngine: string | null;
  readonly log: (line: string) => void;
}

const short = (value: number): string => (value >= 100 ? Math.round(value).toString() : value.toFixed(1));

/** Hearth's measurement on each engine, then every row on each, round after round. */
async function measureModel(engines: readonly SpeedEngine[], modelPath: string, label: string, threads: readonly number[], options: SpeedBenchOptions): Promise<{ rows: SpeedRow[]; hearth: HearthChoice[] }> {
  const { log } = options;
  const hearth: HearthChoice[] = [];
  let supported: boolean | null = null;
  for (const engine of engines) {
    const { flashAttentionSupported } = await engine.load(modelPath);
    if (supported !== null && supported !== flashAttentionSupported) log(`  note: the engines disagree on flash attention support; the rows follow the prebuilt engine's`);
    supported ??= flashAttentionSupported;
    // Right after the load, as the app measures on a model's first load.
    const [kType, vType] = DEFAULT_PAIR.split('/') as [KvCacheType, KvCacheType];
    const profile = await engine.hearth(kType, vType, threads);
    hearth.push({ model: label, engine: engine.info.engine, threadCandidates: threads, flashAttentionSupported, profile });
    log(`${label} (${engine.info.engine}): Hearth measured ${profile.trials.length} trials in ${(profile.durationMs / 1000).toFixed(1)} s, chose ${settingsText(profile.chosen)}`);
  }
  const plan = alternatives(options.pairs, supported ?? false, threads);
  const measured = engines.map(() => plan.map((): Measured[] => []));
  for (let round = 0; round < options.reps; round++) {
    const order = roundOrder(plan.length, options.seed, round);
    for (const [position, index] of order.entries()) {
      const alternative = plan[index]!;
      // Engines alternate which goes first, so neither always runs right after the other.
      const turn = (round + position) % 2 === 0 ? engines.map((_, e) => e) : engines.map((_, e) => engines.length - 1 - e);
      const parts: string[] = [];
      for (const e of turn) {
        const result = await engines[e]!.trial({ ...alternative, depth: options.depth, decodeTokens: options.decodeTokens });
        measured[e]![index]!.push(result);
        parts.push(`${engines[e]!.info.engine} ${'error' in result ? `error: ${result.error}` : `prefill ${short(result.prefillTokPerS)}, decode ${short(result.decodeTokPerS)} tok/s`}`);
      }
      log(`  round ${round + 1}/${options.reps} ${position + 1}/${plan.length} ${alternative.kvType} ${settingsText(alternative)}: ${parts.join('; ')}`);
    }
  }
  for (const engine of engines) await engine.unload();
  const rows = engines.flatMap((engine, e) => {
    const choice = hearth.find((h) => h.engine === engine.info.engine)?.profile.chosen ?? null;
    return plan.map((alternative, index) => rowOf(label, engine.info.engine, alternative, measured[e]![index]!, choice));
  });
  return { rows, hearth };
}

/** Runs the benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runSpeedBench(options: SpeedBenchOptions): Promise<SpeedReport> {
  const { log } = options;
  const started = performance.now();
  const specs: EngineSpec[] = [{ engine: 'prebuilt' }, ...(options.localEngine === null ? [] : [{ engine: 'local', buildDir: resolve(options.localEngine) } as const])];
  const trained = existsSync(trainedModelsDir) ? (await readdir(trainedModelsDir)).filter((name) => name.endsWith('.gguf')).sort().map((name) => join(trainedModelsDir, name)) : [];
  const testModel = await testModelPath();
  const models: Array<{ path: string; label: string }> = [
    { path: testModel, label: GENERATED },
    ...(options.shape8b ? [{ path: await kvShape8bModelPath(options.dir, options.depth + options.decodeTokens), label: KV_SHAPE_8B }] : []),
    ...[...trained, ...options.models.map((path) => resolve(path))].map((path) => ({ path, label: basename(path) })),
  ];
  const threads = speedThreadCandidates(null);
  log(`thread candidates ${threads.join(', ')}; ${models.length} models; engines ${specs.map((s) => s.engine).join(', ')}`);
  const engines: SpeedEngine[] = [];
  const rows: SpeedRow[] = [];
  const hearth: HearthChoice[] = [];
  try {
    for (const spec of specs) engines.push(await startSpeedEngine(spec));
    for (const { path, label } of models) {
      const measured = await measureModel(engines, path, label, threads, options);
      rows.push(...measured.rows);
      hearth.push(...measured.hearth);
    }
  } finally {
    for (const engine of engines) await engine.close();
  }
  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const report: SpeedReport = {
    rows,
    hearth,
    engines: engines.map((engine) => engine.info),
    comparison: compareEngines(rows),
    acceptance: acceptanceLines(rows),
    machine: { ...machineInfo(), physicalCores: physicalCoreCount(), nodeLlamaCpp },
    settings: {
      depth: options.depth,
      decodeTokens: options.decodeTokens,
      reps: options.reps,
      seed: options.seed,
      pairs: options.pairs.map((pair) => `${pair.kType}/${pair.vType}`),
      threadCandidates: threads,
    },
    durationMs: Math.round(performance.now() - started),
    date: new Date().toISOString(),
  };
  await writeReport(options.jsonPath, report, formatReport(report));
  return report;
}
