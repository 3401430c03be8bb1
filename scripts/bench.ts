/**
 * `npm run bench -- <benchmark> [options]`: dispatches to the benchmarks in bench/.
 * Benchmarks report ratios measured in one run; nothing here is a pass/fail test of speed.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { kvConfigs, formatReport, runResume, type KvConfigName, type PageCache } from '../bench/resume.ts';
import { formatKvReport, runKvBench } from '../bench/kv.ts';
import { codecKvConfigs, formatCodecReport, runCodecBench, type CodecKvName } from '../bench/codec.ts';
import { benchPolicies, engineLogLevels, formatReport as formatOverflowReport, overflowKvTypes, runOverflow, type EngineLogLevel, type OverflowKv } from '../bench/overflow.ts';
import type { BenchPolicy } from '../bench/overflow-report.ts';
import { kvCacheTypes, kvCompressionSettings } from '../engine/contract/api.ts';
import type { KvCompressionSetting } from '../engine/contract/index.ts';
import { defaultSettings } from '../engine/host/settings.ts';
import { KV_SHAPE_8B } from '../bench/kv-shape-8b.ts';
import { apiModes, formatReport as formatApiReport, runApiBench } from '../bench/api.ts';
import type { ApiMode } from '../bench/api-report.ts';
import { fitQuants, formatReport as formatModelsReport, runModelsBench } from '../bench/models.ts';
import { modelsParts, type ModelsPart } from '../bench/models-report.ts';
import { defaultSpeedPairs, formatReport as formatSpeedReport, runSpeedBench } from '../bench/speed.ts';
import { parsePair, type KvPairTypes } from '../bench/speed-report.ts';
import { localLlamaModule } from '../bench/speed-engine.ts';
import { repoRoot } from '../test/support/models.ts';
import { errorText } from '../engine/contract/index.ts';

const usage = `Usage: npm run bench -- <benchmark> [options]

Benchmarks:
  resume   restore a chat from the KV store vs re-reading it vs a whole-file state load
  kv       every accepted K/V pair: size, speed, quality vs f16, planned vs measured memory;
           and the planner's fit table for three reference models
  codec    the KV codec's disk encodings (off, lossless, lossy) × KV types: bytes ratio, encode and
           decode speed (native and fallback), restore vs read floor at 16,000 tokens, lossy KL;
           and the byte transforms alone
  overflow a scripted 60-turn chat that outgrows its context, per overflow policy × context × KV
           type, with an engine restart half way: what each turn re-reads, how much history the
           model sees, refusals, restore after the restart; and drop-oldest's step size sweep
  api      an agent re-sending its history through the local API server across a restart of
           Hearth, and several clients at once: time to first token, cache hits, peak memory
  models   Hearth's own model handling on loopback against the Hugging Face emulator: a large
           download through the DownloadQueue vs a plain fetch, pause/resume and a restart
           mid-download, hub.fit's header fetches through the host, and the library scan
  speed    Hearth's first-load speed measurement (flash attention, threads, batch size) against
           every alternative, measured deeper and in interleaved rounds; optionally a local
           llama.cpp build beside the prebuilt one

resume options:
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also measure this model (repeatable); the generated test model always runs
  --threads N          llama.cpp threads (default 1; set it to the physical core count)
  --sizes A,B,C        conversation sizes in tokens (default 1000,4000,16000)
  --kv LIST            KV configurations: ${Object.keys(kvConfigs).join(', ')} (default f16,q8_0;
                       q8_0 runs at the largest size only unless --all-sizes)
  --all-sizes          run every configuration at every size
  --reps N             restores and floor reads per row; the median is reported (default 5)
  --dir DIR            where stores and state files go (default .cache/bench; must be on the disk you want to measure)
  --scratch DIR        KvCache scratch directory (default /dev/shm/hearth-bench-<pid> when it exists)
  --cache MODES        page-cache states to measure restores in: warm, cold or warm,cold (default);
                       cold evicts the measured files before each timed read (Linux, GNU dd)
  --compression MODE   the store's disk encoding: ${kvCompressionSettings.join(', ')} (default ${defaultSettings.kvCompression},
                       the app's; auto is measured on this machine as the engine does at start).
                       The rows say which encoding they used; run again with another to compare
  --shape8b on|off     after the other rows, ${KV_SHAPE_8B}: a generated model with Llama-3-8B's KV
                       shape (32 layers, 8 KV heads × 128; f16 128 KiB per token), generated on
                       first use into DIR/models (default on; its prefill of 8,000 tokens takes
                       minutes, so off for a quick run)
  --sizes8b LIST       ${KV_SHAPE_8B} conversation sizes (default 8000)
  --kv8b LIST          ${KV_SHAPE_8B} KV configurations (default f16)
  --threads8b N        ${KV_SHAPE_8B} llama.cpp threads (default os.availableParallelism(), ${availableParallelism()} here)
  --scratch8b DIR      ${KV_SHAPE_8B} KvCache scratch directory (default DIR/scratch, on the disk:
                       as on macOS and Windows, which have no /dev/shm)

kv options:
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also measure this model (repeatable); the generated test model and each
                       GGUF in the trained-models folder (HEARTH_TRAINED_MODELS) always run
  --threads N          llama.cpp threads (default 1; set it to the physical core count)
  --prefill N          tokens prefilled per pair (default 512)
  --decode N           tokens decoded per pair after the prefill (default 64)
  --quality N          positions the quality meter compares per pair (default 256; 0 skips it)
  --pairs LIST         only these K/V pairs, e.g. f16/f16,q8_0/q8_0 (default: every accepted pair)

codec options:
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --models LIST        KV source models, comma-separated GGUF paths or "test" for the generated model
                       (default austen-byte-6l.gguf from the trained-models folder when present, else the generated model)
  --threads N          llama.cpp threads (default 1)
  --tokens N           restore size in tokens (default 16000)
  --sample-tokens N    tokens the bytes ratio and codec speeds are measured over (default 4096)
  --kl-tokens N        tokens of the lossy KL stretch, half restored, half compared (default 1024; 0 skips)
  --kv LIST            KV types: ${Object.keys(codecKvConfigs).join(', ')} (default all)
  --reps N             timed repetitions per figure after one discarded; the median is reported (default 5)
  --cache MODE         warm, cold or both (default both; warm,cold also works)
  --restore-on WHERE   auto (default: q8_0 and FA-off restores on the generated model, their prefill
                       of --tokens is too slow on the trained one) or trained (all on the KV source)
  --transform-mb N     MB of f16 data per transform pass (default 16)
  --dir DIR            where stores go (default .cache/bench; on the disk you want to measure)
  --scratch DIR        KvCache scratch directory (default /dev/shm/hearth-codec-bench-<pid> when it exists)

overflow options (the defaults run 18 chats of 60 turns: about 10 minutes on the 2-core build machine):
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also run every chat on this model (repeatable); the generated test model
                       always runs, and only it runs the step sweep
  --threads N          llama.cpp threads (default 1)
  --turns N            turns per chat; the engine restarts after half of them (default 60)
  --contexts LIST      context sizes in tokens (default 1024,4096)
  --kv LIST            KV types, K and V alike: ${overflowKvTypes.join(', ')} (default both)
  --policies LIST      ${benchPolicies.join(', ')} (default all; naive is drop-oldest with
                       dropTarget 1: drop just enough every turn)
  --steps LIST         the sweep's dropTarget values, drop-oldest, f16, each context (default
                       0.25,0.5,0.75; the engine's own DROP_TARGET is the default row's, run once,
                       and the naive rows are its 1); "none" skips it
  --user-tokens N      tokens per user message, by the model's tokenizer (default 60)
  --max-tokens N       sampling.maxTokens of each reply (default 100)
  --engine-log LEVEL   the engine's log level (${engineLogLevels.join(', ')}; default warn): what it logs goes
                       into each row's engineLog in the JSON, and a row with warnings says so
  --dir DIR            where the per-chat KV stores go, removed after each (default .cache/bench)

api options (the defaults take about 17 minutes on the 2-core build machine, 14 of them ${KV_SHAPE_8B}'s):
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also run on this model (repeatable); the generated test model always runs
  --trained on|off     also run the smallest GGUF of the trained-models folder (HEARTH_TRAINED_MODELS)
                       when there is one (default on)
  --shape8b on|off     also run ${KV_SHAPE_8B} (32 layers, 8 KV heads × 128: Llama-3-8B's KV, f16 128 KiB
                       per token), generated into --dir on first use (default on)
  --threads N          llama.cpp threads (default 1)
  --requests N         requests per loop (default 12)
  --restart-after N    the restart modes stop the host after this many requests (default 6)
  --target-tokens N    the prompt size of the first request after the restart: the user messages
                       before it are sized to reach it (default 4000)
  --system-tokens N    the loop's system prompt (default 300)
  --late-user-tokens N each user message after the restart (default 60)
  --max-tokens N       max_tokens of each request (default 32)
  --shared-tokens N    the shared-prefix measurement's system prompt (default 2000)
  --min-context N      the loaded context must hold this; a smaller one is raised through the
                       model's profile (default 6144)
  --modes LIST         ${apiModes.join(', ')} (default all)
  --dir DIR            where the data directories go, removed after each (default .cache/bench)

models options (the defaults take about 5 minutes on the 2-core build machine):
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --size-mib N         the download's size in MiB (default 2048): a GGUF header, then pseudo-random
                       bytes, written to --dir (so the disk needs about 3× this free)
  --reps N             whole downloads per method, alternating plain fetch and queue (default 2)
  --pause-at F         where the pause and the restart stop, a fraction of the file (default 0.5)
  --fit-quants LIST    the fit repository's files, Llama-3.1-8B's shape: ${Object.keys(fitQuants).join(', ')}
                       (default all)
  --fit-size MODE      small (default): each fit file is its header and 64 MiB, sparse; published:
                       the published sizes, sparse beyond the header, but the emulator hashes every
                       byte before it answers (about 5 minutes for the 53 GB here)
  --vocab on|off       give the fit headers a vocabulary of Llama 3's size, as a real file's has (default on)
  --fit-repeats N      hub.fit calls after the first (default 3)
  --scan-models N      small generated GGUFs in Hearth's folder for the library scan (default 200)
  --scan-large N       GGUFs with a Llama 3 vocabulary header, sparse beyond it, beside them (default 20)
  --scan-repeats N     scans after the first (default 3)
  --parts LIST         ${modelsParts.join(', ')} (default all)
  --dir DIR            where the files go, removed after (default .cache/bench; on the disk you want to measure)

speed options (the defaults take about 12 minutes on the 2-core build machine, most of it ${KV_SHAPE_8B}'s;
               twice that with --local-engine, longer while the machine is busy):
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also measure this model (repeatable); the generated test model, ${KV_SHAPE_8B}
                       and each GGUF in the trained-models folder (HEARTH_TRAINED_MODELS) always run
  --kv LIST            K/V pairs of the alternatives (default ${defaultSpeedPairs.join(',')}); Hearth's own
                       measurement always uses its default profile's f16/f16
  --depth N            tokens read before decode is timed, per alternative (default 1024)
  --decode N           tokens decoded one at a time after them (default 64)
  --reps N             interleaved rounds over every alternative; the best is reported (default 3)
  --seed N             seeds each round's order (default 1)
  --shape8b on|off     measure ${KV_SHAPE_8B}, generated into DIR/models on first use (default on)
  --dir DIR            where ${KV_SHAPE_8B} is generated (default .cache/bench)
  --local-engine DIR   also run every measurement on the llama.cpp built in DIR
                       (engine/worker/local-llama.ts), in a process of its own, and compare
`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${usage}`);
  process.exit(2);
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) fail(`--${name} must be a positive integer, got "${value}".`);
  return n;
}

/** node:util's parseArgs, strict and without positionals; a bad argument prints the usage and exits. */
function parse<O extends ParseArgsOptionsConfig>(args: string[], options: O) {
  try {
    return parseArgs({ args, strict: true, allowPositionals: false, options });
  } catch (error) {
    fail(errorText(error));
  }
}

async function resume(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    model: { type: 'string', multiple: true },
    threads: { type: 'string', default: '1' },
    sizes: { type: 'string', default: '1000,4000,16000' },
    kv: { type: 'string', default: 'f16,q8_0' },
    'all-sizes': { type: 'boolean', default: false },
    reps: { type: 'string', default: '5' },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
    scratch: { type: 'string' },
    cache: { type: 'string', default: 'warm,cold' },
    compression: { type: 'string', default: defaultSettings.kvCompression },
    shape8b: { type: 'string', default: 'on' },
    sizes8b: { type: 'string', default: '8000' },
    kv8b: { type: 'string', default: 'f16' },
    threads8b: { type: 'string' },
    scratch8b: { type: 'string' },
  }).values;
  if (v.json === undefined || v.json === '') fail('resume needs --json FILE.');
  if (!(kvCompressionSettings as readonly string[]).includes(v.compression)) fail(`--compression: "${v.compression}" is not one of ${kvCompressionSettings.join(', ')}.`);
  if (v.shape8b !== 'on' && v.shape8b !== 'off') fail(`--shape8b: "${v.shape8b}" is neither on nor off.`);
  const sizes = v.sizes.split(',').map((s) => positiveInt('sizes', s.trim()));
  const kvList = (flag: string, value: string): KvConfigName[] => {
    const names = value.split(',').map((s) => s.trim());
    for (const name of names) if (!(name in kvConfigs)) fail(`--${flag}: unknown configuration "${name}".`);
    return names as KvConfigName[];
  };
  const kv = kvList('kv', v.kv);
  const pageCache = [...new Set(v.cache.split(',').map((s) => s.trim()))];
  for (const mode of pageCache) if (mode !== 'warm' && mode !== 'cold') fail(`--cache: "${mode}" is neither warm nor cold.`);
  const report = await runResume({
    jsonPath: v.json,
    models: v.model ?? [],
    threads: positiveInt('threads', v.threads),
    sizes,
    kv,
    reps: positiveInt('reps', v.reps),
    dir: v.dir,
    ...(v.scratch !== undefined ? { scratchDir: v.scratch } : {}),
    pageCache: pageCache as PageCache[],
    allSizes: v['all-sizes'],
    compression: v.compression as KvCompressionSetting,
    shape8b:
      v.shape8b === 'off'
        ? null
        : {
            sizes: v.sizes8b.split(',').map((s) => positiveInt('sizes8b', s.trim())),
            kv: kvList('kv8b', v.kv8b),
            threads: v.threads8b === undefined ? availableParallelism() : positiveInt('threads8b', v.threads8b),
            threadsSource: v.threads8b === undefined ? 'os.availableParallelism()' : '--threads8b',
            ...(v.scratch8b !== undefined ? { scratchDir: v.scratch8b } : {}),
          },
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatReport(report)}\n`);
}

async function kv(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    model: { type: 'string', multiple: true },
    threads: { type: 'string', default: '1' },
    prefill: { type: 'string', default: '512' },
    decode: { type: 'string', default: '64' },
    quality: { type: 'string', default: '256' },
    pairs: { type: 'string' },
  }).values;
  if (v.json === undefined || v.json === '') fail('kv needs --json FILE.');
  const quality = Number(v.quality);
  if (!Number.isInteger(quality) || quality < 0) fail(`--quality must be a whole number ≥ 0, got "${v.quality}".`);
  const pairs = v.pairs?.split(',').map((s) => s.trim());
  for (const pair of pairs ?? []) if (!/^[a-z0-9_]+\/[a-z0-9_]+$/.test(pair)) fail(`--pairs: "${pair}" is not K/V, e.g. q8_0/q4_0.`);
  const report = await runKvBench({
    jsonPath: v.json,
    models: v.model ?? [],
    threads: positiveInt('threads', v.threads),
    prefillTokens: positiveInt('prefill', v.prefill),
    decodeTokens: positiveInt('decode', v.decode),
    qualityTokens: quality,
    ...(pairs ? { pairs } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatKvReport(report)}\n`);
}

async function codec(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    models: { type: 'string' },
    threads: { type: 'string', default: '1' },
    tokens: { type: 'string', default: '16000' },
    'sample-tokens': { type: 'string', default: '4096' },
    'kl-tokens': { type: 'string', default: '1024' },
    kv: { type: 'string', default: Object.keys(codecKvConfigs).join(',') },
    reps: { type: 'string', default: '5' },
    cache: { type: 'string', default: 'both' },
    'restore-on': { type: 'string', default: 'auto' },
    'transform-mb': { type: 'string', default: '16' },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
    scratch: { type: 'string' },
  }).values;
  if (v.json === undefined || v.json === '') fail('codec needs --json FILE.');
  const kv = v.kv.split(',').map((s) => s.trim());
  for (const name of kv) if (!(name in codecKvConfigs)) fail(`--kv: unknown KV type "${name}".`);
  const cache = v.cache === 'both' ? ['warm', 'cold'] : [...new Set(v.cache.split(',').map((s) => s.trim()))];
  for (const mode of cache) if (mode !== 'warm' && mode !== 'cold') fail(`--cache: "${mode}" is not warm, cold or both.`);
  if (v['restore-on'] !== 'auto' && v['restore-on'] !== 'trained') fail(`--restore-on: "${v['restore-on']}" is neither auto nor trained.`);
  const klTokens = Number(v['kl-tokens']);
  if (!Number.isInteger(klTokens) || klTokens < 0) fail(`--kl-tokens must be a whole number ≥ 0, got "${v['kl-tokens']}".`);
  const report = await runCodecBench({
    jsonPath: v.json,
    models: v.models === undefined ? [] : v.models.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    threads: positiveInt('threads', v.threads),
    tokens: positiveInt('tokens', v.tokens),
    sampleTokens: positiveInt('sample-tokens', v['sample-tokens']),
    klTokens,
    kv: kv as CodecKvName[],
    reps: positiveInt('reps', v.reps),
    pageCache: cache as PageCache[],
    restoreOn: v['restore-on'],
    transformMB: positiveInt('transform-mb', v['transform-mb']),
    dir: v.dir,
    ...(v.scratch !== undefined ? { scratchDir: v.scratch } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatCodecReport(report)}\n`);
}

async function overflow(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    model: { type: 'string', multiple: true },
    threads: { type: 'string', default: '1' },
    turns: { type: 'string', default: '60' },
    contexts: { type: 'string', default: '1024,4096' },
    kv: { type: 'string', default: overflowKvTypes.join(',') },
    policies: { type: 'string', default: benchPolicies.join(',') },
    steps: { type: 'string', default: '0.25,0.5,0.75' },
    'user-tokens': { type: 'string', default: '60' },
    'max-tokens': { type: 'string', default: '100' },
    'engine-log': { type: 'string', default: 'warn' },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
  }).values;
  if (v.json === undefined || v.json === '') fail('overflow needs --json FILE.');
  const list = (value: string): string[] => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const kv = list(v.kv);
  for (const name of kv) if (!(overflowKvTypes as readonly string[]).includes(name)) fail(`--kv: unknown KV type "${name}".`);
  const policies = list(v.policies);
  for (const name of policies) if (!(benchPolicies as readonly string[]).includes(name)) fail(`--policies: unknown policy "${name}".`);
  if (!(engineLogLevels as readonly string[]).includes(v['engine-log'])) fail(`--engine-log: "${v['engine-log']}" is not one of ${engineLogLevels.join(', ')}.`);
  const steps = v.steps === 'none' ? [] : list(v.steps).map(Number);
  for (const step of steps) if (!(step > 0 && step <= 1)) fail(`--steps: each dropTarget must be in (0, 1], got "${v.steps}".`);
  const report = await runOverflow({
    jsonPath: v.json,
    models: v.model ?? [],
    threads: positiveInt('threads', v.threads),
    turns: positiveInt('turns', v.turns),
    contexts: list(v.contexts).map((s) => positiveInt('contexts', s)),
    kv: kv as OverflowKv[],
    policies: policies as BenchPolicy[],
    steps,
    userTokens: positiveInt('user-tokens', v['user-tokens']),
    maxTokens: positiveInt('max-tokens', v['max-tokens']),
    engineLog: v['engine-log'] as EngineLogLevel,
    dir: v.dir,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatOverflowReport(report)}\n`);
}

async function api(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    model: { type: 'string', multiple: true },
    trained: { type: 'string', default: 'on' },
    shape8b: { type: 'string', default: 'on' },
    threads: { type: 'string', default: '1' },
    requests: { type: 'string', default: '12' },
    'restart-after': { type: 'string', default: '6' },
    'target-tokens': { type: 'string', default: '4000' },
    'system-tokens': { type: 'string', default: '300' },
    'late-user-tokens': { type: 'string', default: '60' },
    'max-tokens': { type: 'string', default: '32' },
    'shared-tokens': { type: 'string', default: '2000' },
    'min-context': { type: 'string', default: '6144' },
    modes: { type: 'string', default: apiModes.join(',') },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
  }).values;
  if (v.json === undefined || v.json === '') fail('api needs --json FILE.');
  if (v.trained !== 'on' && v.trained !== 'off') fail(`--trained: "${v.trained}" is neither on nor off.`);
  if (v.shape8b !== 'on' && v.shape8b !== 'off') fail(`--shape8b: "${v.shape8b}" is neither on nor off.`);
  const modes = v.modes.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const mode of modes) if (!(apiModes as readonly string[]).includes(mode)) fail(`--modes: unknown mode "${mode}".`);
  const requests = positiveInt('requests', v.requests);
  const restartAfter = positiveInt('restart-after', v['restart-after']);
  if (restartAfter >= requests) fail(`--restart-after must be less than --requests (${requests}).`);
  const report = await runApiBench({
    jsonPath: v.json,
    models: v.model ?? [],
    trained: v.trained === 'on',
    shape8b: v.shape8b === 'on',
    threads: positiveInt('threads', v.threads),
    requests,
    restartAfter,
    targetTokens: positiveInt('target-tokens', v['target-tokens']),
    systemTokens: positiveInt('system-tokens', v['system-tokens']),
    lateUserTokens: positiveInt('late-user-tokens', v['late-user-tokens']),
    maxTokens: positiveInt('max-tokens', v['max-tokens']),
    sharedTokens: positiveInt('shared-tokens', v['shared-tokens']),
    minContext: positiveInt('min-context', v['min-context']),
    modes: modes as ApiMode[],
    dir: v.dir,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatApiReport(report)}\n`);
}

async function models(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    'size-mib': { type: 'string', default: '2048' },
    reps: { type: 'string', default: '2' },
    'pause-at': { type: 'string', default: '0.5' },
    'fit-quants': { type: 'string', default: Object.keys(fitQuants).join(',') },
    vocab: { type: 'string', default: 'on' },
    'fit-size': { type: 'string', default: 'small' },
    'fit-repeats': { type: 'string', default: '3' },
    'scan-models': { type: 'string', default: '200' },
    'scan-large': { type: 'string', default: '20' },
    'scan-repeats': { type: 'string', default: '3' },
    parts: { type: 'string', default: modelsParts.join(',') },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
  }).values;
  if (v.json === undefined || v.json === '') fail('models needs --json FILE.');
  if (v.vocab !== 'on' && v.vocab !== 'off') fail(`--vocab: "${v.vocab}" is neither on nor off.`);
  if (v['fit-size'] !== 'small' && v['fit-size'] !== 'published') fail(`--fit-size: "${v['fit-size']}" is neither small nor published.`);
  const list = (value: string): string[] => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const quants = list(v['fit-quants']);
  for (const quant of quants) if (!(quant in fitQuants)) fail(`--fit-quants: unknown quantization "${quant}".`);
  const parts = list(v.parts);
  for (const part of parts) if (!(modelsParts as readonly string[]).includes(part)) fail(`--parts: unknown part "${part}".`);
  const pauseAt = Number(v['pause-at']);
  if (!(pauseAt > 0 && pauseAt < 1)) fail(`--pause-at must be between 0 and 1, got "${v['pause-at']}".`);
  const whole = (name: string, value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a whole number ≥ 0, got "${value}".`);
    return n;
  };
  const report = await runModelsBench({
    jsonPath: v.json,
    dir: v.dir,
    fileBytes: positiveInt('size-mib', v['size-mib']) * 2 ** 20,
    pauseAt,
    reps: positiveInt('reps', v.reps),
    fitQuants: quants,
    vocabulary: v.vocab === 'on',
    fitSize: v['fit-size'],
    fitRepeats: whole('fit-repeats', v['fit-repeats']),
    scanModels: whole('scan-models', v['scan-models']),
    scanLargeModels: whole('scan-large', v['scan-large']),
    scanRepeats: whole('scan-repeats', v['scan-repeats']),
    parts: parts as ModelsPart[],
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatModelsReport(report)}\n`);
}

async function speed(args: string[]): Promise<void> {
  const v = parse(args, {
    json: { type: 'string' },
    model: { type: 'string', multiple: true },
    kv: { type: 'string', default: defaultSpeedPairs.join(',') },
    depth: { type: 'string', default: '1024' },
    decode: { type: 'string', default: '64' },
    reps: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    shape8b: { type: 'string', default: 'on' },
    dir: { type: 'string', default: join(repoRoot, '.cache', 'bench') },
    'local-engine': { type: 'string' },
  }).values;
  if (v.json === undefined || v.json === '') fail('speed needs --json FILE.');
  if (v.shape8b !== 'on' && v.shape8b !== 'off') fail(`--shape8b: "${v.shape8b}" is neither on nor off.`);
  const localEngine = v['local-engine'] ?? null;
  if (localEngine !== null) {
    if (!existsSync(localLlamaModule)) fail(`--local-engine: this checkout has no ${relative(repoRoot, localLlamaModule)} (loadLocalLlama) yet, so a local build cannot be loaded.`);
    if (localEngine === '' || !existsSync(localEngine)) fail(`--local-engine: no build directory "${localEngine}".`);
  }
  const pairs: KvPairTypes[] = [];
  for (const name of v.kv.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const pair = parsePair(name, kvCacheTypes);
    if (pair === null) fail(`--kv: "${name}" is not K/V of ${kvCacheTypes.join(', ')}, e.g. q8_0/f16.`);
    pairs.push(pair);
  }
  if (pairs.length === 0) fail('--kv needs at least one pair.');
  const seed = Number(v.seed);
  if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a whole number ≥ 0, got "${v.seed}".`);
  const report = await runSpeedBench({
    jsonPath: v.json,
    models: v.model ?? [],
    pairs,
    depth: positiveInt('depth', v.depth),
    decodeTokens: positiveInt('decode', v.decode),
    reps: positiveInt('reps', v.reps),
    seed,
    shape8b: v.shape8b === 'on',
    dir: v.dir,
    localEngine,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatSpeedReport(report)}\n`);
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'resume':
    await resume(rest);
    break;
  case 'kv':
    await kv(rest);
    break;
  case 'codec':
    await codec(rest);
    break;
  case 'overflow':
    await overflow(rest);
    break;
  case 'api':
    await api(rest);
    break;
  case 'models':
    await models(rest);
    break;
  case 'speed':
    await speed(rest);
    break;
  case undefined:
  case '-h':
  case '--help':
    process.stdout.write(usage);
    if (command === undefined) process.exit(2);
    break;
  default:
    fail(`Unknown benchmark "${command}".`);
}
