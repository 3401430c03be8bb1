/**
 * `npm run bench -- <benchmark> [options]`: dispatches to the benchmarks in bench/.
 * Benchmarks report ratios measured in one run; nothing here is a pass/fail test of speed.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { join } from 'node:path';
import { kvConfigs, formatReport, runResume, type KvConfigName, type PageCache } from '../bench/resume.ts';
import { formatKvReport, runKvBench } from '../bench/kv.ts';
import { repoRoot } from '../test/support/models.ts';

const usage = `Usage: npm run bench -- <benchmark> [options]

Benchmarks:
  resume   restore a chat from the KV store vs re-reading it vs a whole-file state load (issue 3)
  kv       every accepted K/V pair: size, speed, quality vs f16, planned vs measured memory;
           and the planner's fit table for three reference models (issue 4)
  codec    (not yet: issue 6)

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

kv options:
  --json FILE          write the JSON report here (required); a markdown copy goes to FILE.md
  --model FILE.gguf    also measure this model (repeatable); the generated test model and each
                       GGUF in ../shared/models/ (when it exists) always run
  --threads N          llama.cpp threads (default 1; set it to the physical core count)
  --prefill N          tokens prefilled per pair (default 512)
  --decode N           tokens decoded per pair after the prefill (default 64)
  --quality N          positions the quality meter compares per pair (default 256; 0 skips it)
  --pairs LIST         only these K/V pairs, e.g. f16/f16,q8_0/q8_0 (default: every accepted pair)
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
    fail(error instanceof Error ? error.message : String(error));
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
  }).values;
  if (v.json === undefined || v.json === '') fail('resume needs --json FILE.');
  const sizes = v.sizes.split(',').map((s) => positiveInt('sizes', s.trim()));
  const kv = v.kv.split(',').map((s) => s.trim());
  for (const name of kv) if (!(name in kvConfigs)) fail(`--kv: unknown configuration "${name}".`);
  const pageCache = [...new Set(v.cache.split(',').map((s) => s.trim()))];
  for (const mode of pageCache) if (mode !== 'warm' && mode !== 'cold') fail(`--cache: "${mode}" is neither warm nor cold.`);
  const report = await runResume({
    jsonPath: v.json,
    models: v.model ?? [],
    threads: positiveInt('threads', v.threads),
    sizes,
    kv: kv as KvConfigName[],
    reps: positiveInt('reps', v.reps),
    dir: v.dir,
    ...(v.scratch !== undefined ? { scratchDir: v.scratch } : {}),
    pageCache: pageCache as PageCache[],
    allSizes: v['all-sizes'],
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

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'resume':
    await resume(rest);
    break;
  case 'kv':
    await kv(rest);
    break;
  case 'codec':
    fail(`The "${command}" benchmark is not implemented yet.`);
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
