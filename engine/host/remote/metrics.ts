/**
 * A remote engine's Prometheus `/metrics`, read into the Cache view's figures: the text format
 * parsed by hand (small, bounded, never throws: no package on npm fits that), then each server's
 * names interpreted. Which names each server publishes, where that was read, and what is null
 * when: docs/decisions/remote-engine-metrics.md.
 */
import type { RemoteCacheSample, RemoteEngineKind, RemoteOffloadTier } from '../../contract/index.ts';

/** Bounds on what the parser accepts from a server: past them, an error result and no samples. */
export const promLimits = {
  /** Characters of text (a normal scrape is 10 to 200 KiB). */
  maxChars: 4 * 1024 * 1024,
  maxLines: 100_000,
  /** Labels on one sample; past it the line counts as malformed. */
  maxLabels: 64,
} as const;

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
const promTypes: ReadonlySet<string> = new Set<PromType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export interface PromSample {
  readonly name: string;
  /** A null-prototype record: a label named `__proto__` is an ordinary key. */
  readonly labels: Readonly<Record<string, string>>;
  /** May be NaN or ±Infinity, as the format allows. */
  readonly value: number;
  readonly timestampMs: number | null;
}

export interface PromSamples {
  readonly samples: readonly PromSample[];
  readonly byName: ReadonlyMap<string, readonly PromSample[]>;
  /** `# TYPE` per family name. */
  readonly types: ReadonlyMap<string, PromType>;
  /** `# HELP` per family name, unescaped. */
  readonly help: ReadonlyMap<string, string>;
  /** Lines skipped because they are neither a comment nor a valid sample. */
  readonly malformedLines: number;
  /** Set when the text was refused whole (then there are no samples). */
  readonly error: { readonly kind: 'too-large' | 'too-many-lines'; readonly message: string } | null;
}

interface Acc {
  readonly samples: PromSample[];
  readonly byName: Map<string, PromSample[]>;
  readonly types: Map<string, PromType>;
  readonly help: Map<string, string>;
  malformed: number;
}

/** Parses the Prometheus text exposition format (0.0.4; OpenMetrics' `# EOF` and exemplars are tolerated). */
export function parsePrometheusText(text: string): PromSamples {
  const acc: Acc = { samples: [], byName: new Map(), types: new Map(), help: new Map(), malformed: 0 };
  if (text.length > promLimits.maxChars) {
    return refused('too-large', `metrics text of ${text.length} characters is over the ${promLimits.maxChars} limit`);
  }
  let start = 0;
  let lines = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (++lines > promLimits.maxLines) return refused('too-many-lines', `metrics text has over ${promLimits.maxLines} lines`);
    const line = text.charCodeAt(end - 1) === 13 && end > start ? text.slice(start, end - 1) : text.slice(start, end);
    if (parseLine(line, acc) === 'eof') break;
    start = end + 1;
  }
  return { samples: acc.samples, byName: acc.byName, types: acc.types, help: acc.help, malformedLines: acc.malformed, error: null };
}

function refused(kind: 'too-large' | 'too-many-lines', message: string): PromSamples {
  return { samples: [], byName: new Map(), types: new Map(), help: new Map(), malformedLines: 0, error: { kind, message } };
}

function parseLine(line: string, acc: Acc): 'eof' | undefined {
  const i = skipBlank(line, 0);
  if (i === line.length) return undefined;
  if (line[i] === '#') return parseComment(line, i + 1, acc);
  const sample = parseSample(line, i);
  if (sample === null) {
    acc.malformed++;
    return undefined;
  }
  acc.samples.push(sample);
  const same = acc.byName.get(sample.name);
  if (same) same.push(sample);
  else acc.byName.set(sample.name, [sample]);
  return undefined;
}

function parseComment(line: string, from: number, acc: Acc): 'eof' | undefined {
  let i = skipBlank(line, from);
  const wordEnd = scanWhile(line, i, isWordChar);
  const word = line.slice(i, wordEnd);
  if (word === 'EOF') return 'eof';
  if (word !== 'HELP' && word !== 'TYPE') return undefined;
  i = skipBlank(line, wordEnd);
  const nameEnd = scanName(line, i, true);
  const name = line.slice(i, nameEnd);
  if (nameEnd === i || (nameEnd < line.length && !isBlank(line.charCodeAt(nameEnd)))) {
    acc.malformed++;
    return undefined;
  }
  if (word === 'HELP') {
    if (!acc.help.has(name)) acc.help.set(name, unescapeHelp(line.slice(Math.min(nameEnd + 1, line.length))));
    return undefined;
  }
  const type = line.slice(skipBlank(line, nameEnd)).trimEnd();
  if (!promTypes.has(type)) acc.malformed++;
  else if (!acc.types.has(name)) acc.types.set(name, type as PromType);
  return undefined;
}

function parseSample(line: string, from: number): PromSample | null {
  const nameEnd = scanName(line, from, true);
  if (nameEnd === from) return null;
  const labels = Object.create(null) as Record<string, string>;
  let i = skipBlank(line, nameEnd);
  if (line[i] === '{') {
    i = parseLabels(line, i + 1, labels);
    if (i < 0) return null;
    i = skipBlank(line, i);
  } else if (i === nameEnd) {
    return null; // no blank between the name and the value
  }
  const valueEnd = scanWhile(line, i, (c) => !isBlank(c));
  const value = parseValue(line.slice(i, valueEnd));
  if (value === null) return null;
  i = skipBlank(line, valueEnd);
  let timestampMs: number | null = null;
  if (i < line.length && line[i] !== '#') {
    const tsEnd = scanWhile(line, i, (c) => !isBlank(c));
    timestampMs = parseTimestamp(line.slice(i, tsEnd));
    if (timestampMs === null) return null;
    i = skipBlank(line, tsEnd);
  }
  // Anything left must be an OpenMetrics exemplar (`# {...} value`), which is not read.
  if (i < line.length && line[i] !== '#') return null;
  return { name: line.slice(from, nameEnd), labels, value, timestampMs };
}

/** Reads `name="value", ...}` into `labels`; the index after `}`, or -1 when malformed. */
function parseLabels(line: string, from: number, labels: Record<string, string>): number {
  let i = from;
  let count = 0;
  for (;;) {
    i = skipBlank(line, i);
    if (line[i] === '}') return i + 1;
    if (++count > promLimits.maxLabels) return -1;
    const nameEnd = scanName(line, i, false);
    if (nameEnd === i) return -1;
    const name = line.slice(i, nameEnd);
    if (Object.hasOwn(labels, name)) return -1;
    i = skipBlank(line, nameEnd);
    if (line[i] !== '=') return -1;
    i = skipBlank(line, i + 1);
    if (line[i] !== '"') return -1;
    const parts: string[] = [];
    let runStart = ++i;
    for (;;) {
      if (i >= line.length) return -1;
      const c = line[i];
      if (c === '"') break;
      if (c === '\\') {
        const next = line[i + 1];
        const unescaped = next === '\\' ? '\\' : next === '"' ? '"' : next === 'n' ? '\n' : null;
        if (unescaped === null) return -1;
        parts.push(line.slice(runStart, i), unescaped);
        i += 2;
        runStart = i;
      } else {
        i++;
      }
    }
    parts.push(line.slice(runStart, i));
    labels[name] = parts.join('');
    i = skipBlank(line, i + 1);
    if (line[i] === ',') i++;
    else if (line[i] !== '}') return -1;
  }
}

function parseValue(token: string): number | null {
  const lower = token.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Number.POSITIVE_INFINITY;
  if (lower === '-inf' || lower === '-infinity') return Number.NEGATIVE_INFINITY;
  return isDecimal(token) ? Number(token) : null;
}

/** `[+-]digits[.digits][e[+-]digits]`, with digits on at least one side of the point. */
function isDecimal(s: string): boolean {
  let i = s[0] === '+' || s[0] === '-' ? 1 : 0;
  const intEnd = scanWhile(s, i, isDigit);
  let digits = intEnd - i;
  i = intEnd;
  if (s[i] === '.') {
    const fracEnd = scanWhile(s, i + 1, isDigit);
    digits += fracEnd - i - 1;
    i = fracEnd;
  }
  if (digits === 0) return false;
  if (s[i] === 'e' || s[i] === 'E') {
    i++;
    if (s[i] === '+' || s[i] === '-') i++;
    const expEnd = scanWhile(s, i, isDigit);
    if (expEnd === i) return false;
    i = expEnd;
  }
  return i === s.length;
}

function parseTimestamp(token: string): number | null {
  const start = token[0] === '+' || token[0] === '-' ? 1 : 0;
  const end = scanWhile(token, start, isDigit);
  if (end === start || end !== token.length || end - start > 19) return null;
  return Number(token);
}

function unescapeHelp(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === '\\' || s[i + 1] === 'n')) {
      out += s[++i] === 'n' ? '\n' : '\\';
    } else {
      out += c;
    }
  }
  return out;
}

function scanName(s: string, from: number, metric: boolean): number {
  const first = s.charCodeAt(from);
  if (!(isLetter(first) || first === 95 || (metric && first === 58))) return from;
  return scanWhile(s, from + 1, (c) => isLetter(c) || isDigit(c) || c === 95 || (metric && c === 58));
}

function scanWhile(s: string, from: number, ok: (code: number) => boolean): number {
  let i = from;
  while (i < s.length && ok(s.charCodeAt(i))) i++;
  return i;
}

const skipBlank = (s: string, from: number): number => scanWhile(s, from, isBlank);
const isBlank = (c: number): boolean => c === 32 || c === 9;
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isWordChar = (c: number): boolean => isLetter(c) || isDigit(c) || c === 95;

// ---------------------------------------------------------------------------------------------
// Interpretation
// ---------------------------------------------------------------------------------------------

/** The server software whose names were read. */
export type MetricsSource = Exclude<RemoteEngineKind, 'openai-compatible'>;

/** The raw figures of one scrape: cumulative counters as read, before any rate is derived. */
export interface RemoteFigures {
  /** Whose names were found; null when none Hearth knows were (then every figure is null). */
  readonly source: MetricsSource | null;
  /** Share of the KV cache held by running requests, 0..1 (the mean over data-parallel engines). */
  readonly kvUsage: number | null;
  /** Tokens in the KV cache now. */
  readonly kvTokens: number | null;
  /** Prompt tokens looked up in the first-level (GPU) prefix cache since start, and of those found. */
  readonly prefixQueries: number | null;
  readonly prefixHits: number | null;
  /** A since-start hit rate the server computes itself; read only where it has no counters. */
  readonly prefixHitRateGauge: number | null;
  readonly requestsRunning: number | null;
  readonly requestsWaiting: number | null;
  readonly offload: OffloadFigures | null;
}

/** The tier below the GPU cache: LMCache or another KV connector under vLLM, HiCache under SGLang. */
export interface OffloadFigures {
  readonly name: string;
  /** Tokens the GPU cache missed and the tier was asked for since start, and of those it supplied. */
  readonly queries: number | null;
  readonly hits: number | null;
  /** Tokens its hits supplied since start. */
  readonly hitTokens: number | null;
  readonly usedBytes: number | null;
  /** SGLang's host pool counts tokens, not bytes. */
  readonly usedTokens: number | null;
  readonly capacityTokens: number | null;
}

const noFigures: RemoteFigures = {
  source: null,
  kvUsage: null,
  kvTokens: null,
  prefixQueries: null,
  prefixHits: null,
  prefixHitRateGauge: null,
  requestsRunning: null,
  requestsWaiting: null,
  offload: null,
};

type LabelFilter = (labels: Readonly<Record<string, string>>) => boolean;

interface Read {
  /** Candidate names, the first one present wins (current name first, then older ones). */
  readonly names: readonly string[];
  /** Labels whose series repeat one figure (tensor-parallel ranks): the largest is taken. */
  readonly replicas?: readonly string[];
  /** How the remaining label sets (engines, models, data-parallel ranks) combine. */
  readonly across?: 'sum' | 'mean';
  readonly filter?: LabelFilter;
}

/** A server's own samples of `name`, also under `ns_name` (some exporters replace the colon). */
function seriesOf(s: PromSamples, name: string): readonly PromSample[] {
  const direct = s.byName.get(name);
  if (direct) return direct;
  return s.byName.get(name.replace(':', '_')) ?? [];
}

function present(s: PromSamples, names: readonly string[]): boolean {
  return names.some((n) => seriesOf(s, n).length > 0);
}

/** One figure over every label set; null when no candidate name has a finite sample. */
function read(s: PromSamples, spec: Read): number | null {
  const replicas = new Set(spec.replicas ?? []);
  for (const name of spec.names) {
    const groups = new Map<string, number>();
    for (const sample of seriesOf(s, name)) {
      if (!Number.isFinite(sample.value) || (spec.filter && !spec.filter(sample.labels))) continue;
      const key = JSON.stringify(
        Object.keys(sample.labels)
          .filter((k) => !replicas.has(k))
          .sort()
          .map((k) => [k, sample.labels[k]]),
      );
      groups.set(key, Math.max(groups.get(key) ?? Number.NEGATIVE_INFINITY, sample.value));
    }
    if (groups.size === 0) continue;
    let total = 0;
    for (const v of groups.values()) total += v;
    return spec.across === 'mean' ? total / groups.size : total;
  }
  return null;
}

const vllmReplicas: readonly string[] = [];
/** SGLang labels every scheduler's series with its ranks; under tensor parallelism they repeat one value. */
const sglangReplicas = ['tp_rank', 'pp_rank', 'moe_ep_rank'] as const;
/** LMCache labels each worker (one per tensor-parallel rank); each counts the same tokens. */
const lmcacheReplicas = ['worker_id', 'role'] as const;

type EngineFigures = Omit<RemoteFigures, 'source' | 'offload'>;

const engineNames: Readonly<Record<MetricsSource, readonly string[]>> = {
  vllm: [
    'vllm:num_requests_running',
    'vllm:num_requests_waiting',
    'vllm:kv_cache_usage_perc',
    'vllm:gpu_cache_usage_perc',
    'vllm:prefix_cache_queries_total',
    'vllm:gpu_prefix_cache_queries_total',
  ],
  sglang: ['sglang:num_running_reqs', 'sglang:num_queue_reqs', 'sglang:token_usage', 'sglang:prompt_tokens_total'],
  'llama-server': [
    'llamacpp:requests_processing',
    'llamacpp:requests_deferred',
    'llamacpp:prompt_tokens_total',
    'llamacpp:kv_cache_usage_ratio',
  ],
};

function readVllm(s: PromSamples): EngineFigures {
  const sum = (...names: string[]): number | null => read(s, { names, replicas: vllmReplicas });
  const pairs = [
    ['vllm:prefix_cache_hits_total', 'vllm:prefix_cache_queries_total'],
    ['vllm:gpu_prefix_cache_hits_total', 'vllm:gpu_prefix_cache_queries_total'],
  ] as const;
  let prefixHits: number | null = null;
  let prefixQueries: number | null = null;
  for (const [hits, queries] of pairs) {
    prefixHits = sum(hits);
    prefixQueries = sum(queries);
    if (prefixHits !== null && prefixQueries !== null) break;
  }
  const counted = prefixHits !== null && prefixQueries !== null;
  return {
    kvUsage: read(s, { names: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'], across: 'mean' }),
    kvTokens: null,
    prefixQueries: counted ? prefixQueries : null,
    prefixHits: counted ? prefixHits : null,
    prefixHitRateGauge: counted ? null : read(s, { names: ['vllm:gpu_prefix_cache_hit_rate'], across: 'mean' }),
    requestsRunning: sum('vllm:num_requests_running'),
    requestsWaiting: sum('vllm:num_requests_waiting'),
  };
}

/** SGLang's `cache_source` label: host and storage hits are HiCache's, the rest the GPU cache's. */
const isTierSource: LabelFilter = (l) => l['cache_source'] === 'host' || (l['cache_source'] ?? '').startsWith('storage');

function readSglang(s: PromSamples): EngineFigures {
  const sum = (name: string, filter?: LabelFilter): number | null =>
    read(s, { names: [name], replicas: sglangReplicas, ...(filter ? { filter } : {}) });
  const prompt = sum('sglang:prompt_tokens_total');
  // The cached counter gets its first series at the first hit: absent beside the prompt counter means none yet.
  const cached = sum('sglang:cached_tokens_total', (l) => !isTierSource(l)) ?? (prompt === null ? null : 0);
  return {
    kvUsage: read(s, { names: ['sglang:token_usage'], replicas: sglangReplicas, across: 'mean' }),
    kvTokens: sum('sglang:num_used_tokens'),
    prefixQueries: prompt,
    prefixHits: prompt === null ? null : cached,
    prefixHitRateGauge: null,
    requestsRunning: sum('sglang:num_running_reqs'),
    requestsWaiting: sum('sglang:num_queue_reqs'),
  };
}

function readLlamaServer(s: PromSamples): EngineFigures {
  const one = (name: string): number | null => read(s, { names: [name] });
  // `prompt_tokens_total` counts only the tokens it evaluated; the cached ones are counted apart.
  const processed = one('llamacpp:prompt_tokens_total');
  const cached = one('llamacpp:prompt_tokens_cached_total');
  const counted = processed !== null && cached !== null;
  return {
    kvUsage: one('llamacpp:kv_cache_usage_ratio'),
    kvTokens: one('llamacpp:kv_cache_tokens'),
    prefixQueries: counted ? processed + cached : null,
    prefixHits: counted ? cached : null,
    prefixHitRateGauge: null,
    requestsRunning: one('llamacpp:requests_processing'),
    requestsWaiting: one('llamacpp:requests_deferred'),
  };
}

const readers: Readonly<Record<MetricsSource, (s: PromSamples) => EngineFigures>> = {
  vllm: readVllm,
  sglang: readSglang,
  'llama-server': readLlamaServer,
};

function lmcacheTier(s: PromSamples, source: MetricsSource | null): OffloadFigures | null {
  if (!present(s, ['lmcache:num_lookup_tokens_total', 'lmcache:num_hit_tokens_total', 'lmcache:local_cache_usage'])) return null;
  const perToken = (name: string): number | null => read(s, { names: [name], replicas: lmcacheReplicas });
  const external = source === 'vllm' ? vllmExternal(s) : null;
  const lookup = { queries: perToken('lmcache:num_lookup_tokens_total'), hits: perToken('lmcache:num_lookup_hits_total') };
  const pair = external && external.queries > 0 ? external : lookup;
  return {
    name: 'LMCache',
    queries: pair.queries,
    hits: pair.hits,
    hitTokens: external ? external.hits : perToken('lmcache:num_hit_tokens_total'),
    // Each worker holds its own shard of every chunk: the bytes add up.
    usedBytes: read(s, { names: ['lmcache:local_cache_usage'] }),
    usedTokens: null,
    capacityTokens: null,
  };
}

/** vLLM's own count of what its KV connector was asked for and found (any connector). */
function vllmExternal(s: PromSamples): { queries: number; hits: number } | null {
  const queries = read(s, { names: ['vllm:external_prefix_cache_queries_total'] });
  const hits = read(s, { names: ['vllm:external_prefix_cache_hits_total'] });
  return queries === null || hits === null ? null : { queries, hits };
}

function connectorTier(s: PromSamples): OffloadFigures | null {
  const external = vllmExternal(s);
  // vLLM registers these counters with or without a connector: only lookups show there is one.
  if (!external || external.queries <= 0) return null;
  return { name: 'KV connector', ...external, hitTokens: external.hits, usedBytes: null, usedTokens: null, capacityTokens: null };
}

function hicacheTier(s: PromSamples, figures: EngineFigures): OffloadFigures | null {
  const kvPool: LabelFilter = (l) => l['pool'] === undefined || l['pool'] === 'kv';
  const sum = (name: string, filter?: LabelFilter): number | null =>
    read(s, { names: [name], replicas: sglangReplicas, ...(filter ? { filter } : {}) });
  const usedTokens = sum('sglang:hicache_host_used_tokens', kvPool);
  const capacityTokens = sum('sglang:hicache_host_total_tokens', kvPool);
  const tierHits = sum('sglang:cached_tokens_total', isTierSource);
  const loadBack = sum('sglang:load_back_tokens_total', kvPool);
  if (usedTokens === null && capacityTokens === null && tierHits === null && loadBack === null) return null;
  const bySource = seriesOf(s, 'sglang:cached_tokens_total').some((x) => x.labels['cache_source'] === 'device' || isTierSource(x.labels));
  const missed = figures.prefixQueries !== null && figures.prefixHits !== null ? figures.prefixQueries - figures.prefixHits : null;
  return {
    name: 'HiCache',
    queries: bySource ? missed : null,
    hits: bySource ? (tierHits ?? 0) : null,
    hitTokens: tierHits ?? loadBack,
    usedBytes: null,
    usedTokens,
    capacityTokens,
  };
}

/**
 * The figures of one scrape. The configured kind only decides which names are tried first: a
 * server is read by the names it publishes, and "openai-compatible" reads whichever are known.
 */
export function interpretMetrics(kind: RemoteEngineKind, samples: PromSamples): RemoteFigures {
  if (samples.error) return noFigures;
  const order: MetricsSource[] = ['vllm', 'sglang', 'llama-server'];
  if (kind !== 'openai-compatible') order.sort((a, b) => Number(b === kind) - Number(a === kind));
  const source = order.find((k) => present(samples, engineNames[k])) ?? null;
  const figures = source ? readers[source](samples) : noFigures;
  const offload =
    lmcacheTier(samples, source) ??
    (source === 'vllm' ? connectorTier(samples) : null) ??
    (source === 'sglang' ? hicacheTier(samples, figures) : null);
  return {
    source,
    kvUsage: figures.kvUsage,
    kvTokens: count(figures.kvTokens),
    prefixQueries: count(figures.prefixQueries),
    prefixHits: count(figures.prefixHits),
    prefixHitRateGauge: figures.prefixHitRateGauge,
    requestsRunning: count(figures.requestsRunning),
    requestsWaiting: count(figures.requestsWaiting),
    offload: offload && {
      ...offload,
      queries: count(offload.queries),
      hits: count(offload.hits),
      hitTokens: count(offload.hitTokens),
      usedBytes: count(offload.usedBytes),
      usedTokens: count(offload.usedTokens),
      capacityTokens: count(offload.capacityTokens),
    },
  };
}

/** A count a server could have published: finite and not negative, else unknown. */
function count(n: number | null): number | null {
  return n !== null && Number.isFinite(n) && n >= 0 ? n : null;
}

function unit(n: number | null): number | null {
  return n === null || !Number.isFinite(n) ? null : Math.min(1, Math.max(0, n));
}

function ratio(hits: number | null, queries: number | null): number | null {
  return hits === null || queries === null || queries <= 0 ? null : unit(hits / queries);
}

/**
 * Hits over lookups between two scrapes. A counter lower than before means the server restarted
 * (or another one now answers at that address): the new values count from zero.
 */
function recentRate(now: RemoteFigures, before: RemoteFigures | null): number | null {
  const { prefixHits: hits, prefixQueries: queries } = now;
  if (before === null || hits === null || queries === null) return null;
  const { prefixHits: hitsBefore, prefixQueries: queriesBefore } = before;
  if (hitsBefore === null || queriesBefore === null) return null;
  const restarted = before.source !== now.source || queries < queriesBefore || hits < hitsBefore;
  const dq = restarted ? queries : queries - queriesBefore;
  const dh = restarted ? hits : hits - hitsBefore;
  return dq > 0 ? unit(dh / dq) : null;
}

function tier(o: OffloadFigures | null): RemoteOffloadTier | null {
  return o && { name: o.name, hitRate: ratio(o.hits, o.queries), usedBytes: o.usedBytes, usedTokens: o.usedTokens, capacityTokens: o.capacityTokens, hitTokens: o.hitTokens };
}

/** What the Cache view shows for one scrape, with the rates derived against the scrape before. */
export function remoteCacheSample(
  engineId: string,
  figures: RemoteFigures,
  previous: RemoteFigures | null,
  at: number,
): RemoteCacheSample {
  const counted = figures.prefixQueries !== null && figures.prefixHits !== null;
  return {
    engineId,
    at,
    kvUsage: unit(figures.kvUsage),
    kvTokens: figures.kvTokens,
    prefixHitRate: counted ? ratio(figures.prefixHits, figures.prefixQueries) : unit(figures.prefixHitRateGauge),
    recentPrefixHitRate: recentRate(figures, previous),
    requestsRunning: figures.requestsRunning,
    requestsWaiting: figures.requestsWaiting,
    offload: tier(figures.offload),
  };
}
