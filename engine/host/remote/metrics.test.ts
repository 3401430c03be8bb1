/** The Prometheus text parser on edge and hostile input, and each server's recorded names read into figures. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../test/support/fuzz.ts';
import {
  interpretMetrics,
  parsePrometheusText,
  promLimits,
  remoteCacheSample,
  type RemoteFigures,
} from './metrics.ts';

const fixture = (name: string): string =>
  readFileSync(path.join(import.meta.dirname, '../../../test/fixtures/remote-metrics', name), 'utf8');

const none: RemoteFigures = {
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

describe('parsePrometheusText', () => {
  it('reads HELP, TYPE, labels, values and timestamps', () => {
    const p = parsePrometheusText(
      [
        '# HELP http_requests_total The total number of HTTP requests, a \\\\ and a\\nnewline.',
        '# TYPE http_requests_total counter',
        'http_requests_total{method="post",code="200"} 1027 1395066363000',
        'http_requests_total{method="post",code="400"}    3   -1395066363000',
        '  # a plain comment',
        'metric_without_labels 12.47',
        'trailing_comma{a="1",} 2',
        'spaced { a = "1" , b="2" } 3',
      ].join('\n'),
    );
    expect(p.error).toBeNull();
    expect(p.malformedLines).toBe(0);
    expect(p.types.get('http_requests_total')).toBe('counter');
    expect(p.help.get('http_requests_total')).toBe('The total number of HTTP requests, a \\ and a\nnewline.');
    expect(p.samples.map((s) => [s.name, { ...s.labels }, s.value, s.timestampMs])).toEqual([
      ['http_requests_total', { method: 'post', code: '200' }, 1027, 1395066363000],
      ['http_requests_total', { method: 'post', code: '400' }, 3, -1395066363000],
      ['metric_without_labels', {}, 12.47, null],
      ['trailing_comma', { a: '1' }, 2, null],
      ['spaced', { a: '1', b: '2' }, 3, null],
    ]);
    expect(p.byName.get('http_requests_total')?.length).toBe(2);
  });

  it('unescapes label values, and keeps commas, braces and a __proto__ label as text', () => {
    const p = parsePrometheusText(
      'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9\n' +
        'odd{__proto__="x",v="a,b}c{d=\\"e\\""} 1',
    );
    expect(p.malformedLines).toBe(0);
    expect(p.samples[0]?.labels).toEqual({ path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
    expect(p.samples[0]?.value).toBe(1458255915);
    const odd = p.samples[1]?.labels ?? {};
    expect(Object.getPrototypeOf(odd)).toBeNull();
    expect(Object.keys(odd)).toEqual(['__proto__', 'v']);
    expect(odd['__proto__']).toBe('x');
    expect(odd['v']).toBe('a,b}c{d="e"');
  });

  it('reads NaN, ±Inf, exponents and histogram series', () => {
    const p = parsePrometheusText(
      [
        'a NaN',
        'b +Inf',
        'c -Inf',
        'd Inf',
        'e 1.52384e+06',
        'f -.5E-3',
        'g 7.',
        '# TYPE h histogram',
        'h_bucket{le="0.1"} 3',
        'h_bucket{le="+Inf"} 5',
        'h_sum 0.75',
        'h_count 5',
      ].join('\n'),
    );
    const v = Object.fromEntries(p.samples.map((s) => [s.name + (s.labels['le'] ?? ''), s.value]));
    expect(v['a']).toBeNaN();
    expect(v).toMatchObject({ b: Infinity, c: -Infinity, d: Infinity, e: 1523840, f: -0.0005, g: 7 });
    expect(v).toMatchObject({ 'h_bucket0.1': 3, 'h_bucket+Inf': 5, h_sum: 0.75, h_count: 5 });
    expect(p.types.get('h')).toBe('histogram');
    expect(p.malformedLines).toBe(0);
  });

  it('skips and counts malformed lines, reading the good lines around them', () => {
    const bad = [
      'no_value',
      'no_value_either{a="1"}',
      '1starts_with_digit 1',
      'bad-name 1',
      'value_is_hex 0x10',
      'value_has_underscore 1_000',
      'dot_only .',
      'unclosed{a="1" 1',
      'unterminated{a="1} 1',
      'bad_escape{a="\\x"} 1',
      'duplicate{a="1",a="2"} 1',
      'unquoted{a=1} 1',
      'bad_timestamp 1 12.5',
      'too_many_fields 1 2 3',
      'name1',
      '{a="1"} 1',
      '# TYPE t notatype',
      '# TYPE 9bad counter',
    ];
    const p = parsePrometheusText(['good_a 1', ...bad, 'good_b{x="y"} 2'].join('\n'));
    expect(p.malformedLines).toBe(bad.length);
    expect(p.samples.map((s) => s.name)).toEqual(['good_a', 'good_b']);
    expect(p.types.size).toBe(0);
  });

  it('reads CRLF text as LF text, ignores blank lines, stops at # EOF and skips exemplars', () => {
    const lines = ['# TYPE a counter', '', 'a_total{x="1"} 4 1700000000000', '   ', 'b 2 # {trace_id="abc"} 1.0 1.7e9'];
    const lf = parsePrometheusText(lines.join('\n'));
    const crlf = parsePrometheusText(lines.join('\r\n') + '\r\n');
    expect(crlf).toEqual(lf);
    expect(lf.samples.map((s) => [s.name, s.value])).toEqual([
      ['a_total', 4],
      ['b', 2],
    ]);
    const eof = parsePrometheusText('a 1\n# EOF\nb 2\n');
    expect(eof.samples.map((s) => s.name)).toEqual(['a']);
  });

  it('refuses text over the size or line limit whole, as data', () => {
    const big = parsePrometheusText('x'.repeat(promLimits.maxChars + 1));
    expect(big.error?.kind).toBe('too-large');
    expect(big.samples).toEqual([]);
    const many = parsePrometheusText('a 1\n'.repeat(promLimits.maxLines));
    expect(many.error?.kind).toBe('too-many-lines');
    expect(many.samples).toEqual([]);
    const atLimit = parsePrometheusText('a 1\n'.repeat(promLimits.maxLines - 1));
    expect(atLimit.error).toBeNull();
    expect(atLimit.samples.length).toBe(promLimits.maxLines - 1);
    const labels = Array.from({ length: promLimits.maxLabels + 1 }, (_, i) => `l${i}="v"`).join(',');
    expect(parsePrometheusText(`wide{${labels}} 1`).malformedLines).toBe(1);
  });

  it('stays linear on input shaped to make a backtracking parser crawl', () => {
    const started = performance.now();
    const longValue = 'a{b="' + '\\\\'.repeat(400_000) + '"} 1'; // 800 KB of escapes, closed
    const unclosed = 'a{b="' + '\\"'.repeat(400_000); // never closed
    const manyDigits = 'a ' + '1'.repeat(1_000_000) + 'x';
    const p = parsePrometheusText([longValue, unclosed, manyDigits].join('\n'));
    expect(p.samples.length).toBe(1);
    expect(p.samples[0]?.labels['b']?.length).toBe(400_000);
    expect(p.malformedLines).toBe(2);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('never throws on random bytes or mutated real text', () => {
    const random = mulberry32(7);
    const alphabet = 'ab_:{}="\\,# \t\n\r0.1e+-InfNaN\u00e9\u0000';
    const real = fixture('vllm.txt');
    for (let round = 0; round < 300; round++) {
      let text = '';
      const length = Math.floor(random() * 400);
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      const cut = Math.floor(random() * real.length);
      const mutated = real.slice(0, cut) + text + real.slice(cut + Math.floor(random() * 50));
      for (const t of [text, mutated]) {
        const p = parsePrometheusText(t);
        expect(p.error).toBeNull();
        expect(() => interpretMetrics('openai-compatible', p)).not.toThrow();
      }
    }
  });
});

describe('interpretMetrics on recorded names', () => {
  it('vLLM: sums requests over data-parallel engines, averages their KV usage; no connector, no tier', () => {
    const f = interpretMetrics('vllm', parsePrometheusText(fixture('vllm.txt')));
    expect(f).toEqual({
      ...none,
      source: 'vllm',
      kvUsage: 0.25,
      prefixQueries: 200000,
      prefixHits: 80000,
      requestsRunning: 5,
      requestsWaiting: 1,
    });
    expect(remoteCacheSample('e1', f, null, 1000)).toEqual({
      engineId: 'e1',
      at: 1000,
      kvUsage: 0.25,
      kvTokens: null,
      prefixHitRate: 0.4,
      recentPrefixHitRate: null,
      requestsRunning: 5,
      requestsWaiting: 1,
      offload: null,
    });
  });

  it('vLLM with LMCache: the tier from vLLM connector counters, bytes over workers', () => {
    const f = interpretMetrics('vllm', parsePrometheusText(fixture('vllm-lmcache.txt')));
    expect(f).toEqual({
      ...none,
      source: 'vllm',
      kvUsage: 0.75,
      prefixQueries: 500000,
      prefixHits: 150000,
      requestsRunning: 4,
      requestsWaiting: 2,
      offload: {
        name: 'LMCache',
        queries: 350000,
        hits: 210000,
        hitTokens: 210000,
        usedBytes: 12884901888,
        usedTokens: null,
        capacityTokens: null,
      },
    });
    expect(remoteCacheSample('e1', f, null, 0).offload).toEqual({
      name: 'LMCache',
      hitRate: 0.6,
      usedBytes: 12884901888,
      usedTokens: null,
      capacityTokens: null,
      hitTokens: 210000,
    });
  });

  it("LMCache without vLLM's connector counters: its own lookups, once per tensor-parallel worker", () => {
    const text = fixture('vllm-lmcache.txt')
      .split('\n')
      .filter((line) => !line.includes('external_prefix_cache'))
      .join('\n');
    const f = interpretMetrics('vllm', parsePrometheusText(text));
    expect(f.offload).toEqual({
      name: 'LMCache',
      queries: 520000,
      hits: 260000,
      hitTokens: 198000,
      usedBytes: 12884901888,
      usedTokens: null,
      capacityTokens: null,
    });
    expect(remoteCacheSample('e1', f, null, 0).offload?.hitRate).toBe(0.5);
  });

  it('SGLang: one value per tensor-parallel rank, GPU hits apart from HiCache hits', () => {
    const f = interpretMetrics('sglang', parsePrometheusText(fixture('sglang.txt')));
    expect(f).toEqual({
      ...none,
      source: 'sglang',
      kvUsage: 0.5,
      kvTokens: 112232,
      prefixQueries: 840000,
      prefixHits: 420000,
      requestsRunning: 6,
      requestsWaiting: 3,
      offload: {
        name: 'HiCache',
        queries: 420000,
        hits: 84000,
        hitTokens: 84000,
        usedBytes: null,
        usedTokens: 300000,
        capacityTokens: 1000000,
      },
    });
    expect(remoteCacheSample('e2', f, null, 5)).toEqual({
      engineId: 'e2',
      at: 5,
      kvUsage: 0.5,
      kvTokens: 112232,
      prefixHitRate: 0.5,
      recentPrefixHitRate: null,
      requestsRunning: 6,
      requestsWaiting: 3,
      offload: { name: 'HiCache', hitRate: 0.2, usedBytes: null, usedTokens: 300000, capacityTokens: 1000000, hitTokens: 84000 },
    });
  });

  it('llama-server (this release): cached prompt tokens over cached plus evaluated; no KV usage', () => {
    const f = interpretMetrics('llama-server', parsePrometheusText(fixture('llama-server.txt')));
    expect(f).toEqual({
      ...none,
      source: 'llama-server',
      prefixQueries: 48213 + 1523840,
      prefixHits: 1523840,
      requestsRunning: 1,
      requestsWaiting: 0,
    });
    expect(remoteCacheSample('e3', f, null, 0).prefixHitRate).toBe(1523840 / 1572053);
  });

  it('reads a server by the names it publishes, whatever kind it was configured as', () => {
    const vllm = parsePrometheusText(fixture('vllm.txt'));
    const sglang = parsePrometheusText(fixture('sglang.txt'));
    expect(interpretMetrics('llama-server', vllm)).toEqual(interpretMetrics('vllm', vllm));
    expect(interpretMetrics('openai-compatible', vllm).source).toBe('vllm');
    expect(interpretMetrics('openai-compatible', sglang)).toEqual(interpretMetrics('sglang', sglang));
    // Both present (a proxy in front of two servers): the configured kind's names come first.
    const both = parsePrometheusText(fixture('vllm.txt') + '\n' + fixture('llama-server.txt'));
    expect(interpretMetrics('llama-server', both).source).toBe('llama-server');
    expect(interpretMetrics('vllm', both).source).toBe('vllm');
    expect(interpretMetrics('openai-compatible', both).source).toBe('vllm');
  });

  it('an unknown server, or refused text, gives nulls, not zeros', () => {
    const nodeExporter = parsePrometheusText(
      '# TYPE node_load1 gauge\nnode_load1 0.52\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.3\n',
    );
    for (const kind of ['vllm', 'sglang', 'llama-server', 'openai-compatible'] as const) {
      expect(interpretMetrics(kind, nodeExporter)).toEqual(none);
    }
    expect(interpretMetrics('vllm', parsePrometheusText('x'.repeat(promLimits.maxChars + 1)))).toEqual(none);
    expect(remoteCacheSample('e', none, none, 1)).toEqual({
      engineId: 'e',
      at: 1,
      kvUsage: null,
      kvTokens: null,
      prefixHitRate: null,
      recentPrefixHitRate: null,
      requestsRunning: null,
      requestsWaiting: null,
      offload: null,
    });
  });

  it("older vLLM: the deprecated gpu_ names, and the V0 engine's own hit-rate gauge", () => {
    const v010 = parsePrometheusText(
      [
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.5',
        'vllm:gpu_prefix_cache_queries_total{model_name="m"} 1000.0',
        'vllm:gpu_prefix_cache_hits_total{model_name="m"} 250.0',
        'vllm:num_requests_running{model_name="m"} 1.0',
      ].join('\n'),
    );
    expect(interpretMetrics('vllm', v010)).toMatchObject({ kvUsage: 0.5, prefixQueries: 1000, prefixHits: 250 });
    const v0 = parsePrometheusText(
      'vllm:gpu_cache_usage_perc{model_name="m"} 0.25\nvllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.375\n',
    );
    const f = interpretMetrics('vllm', v0);
    expect(f).toMatchObject({ source: 'vllm', prefixQueries: null, prefixHits: null, prefixHitRateGauge: 0.375 });
    expect(remoteCacheSample('e', f, null, 0).prefixHitRate).toBe(0.375);
  });

  it('older llama-server: KV usage and tokens; no cached counter, so no hit rate', () => {
    const text = [
      'llamacpp:prompt_tokens_total 4096',
      'llamacpp:kv_cache_usage_ratio 0.125',
      'llamacpp:kv_cache_tokens 1024',
      'llamacpp:requests_processing 2',
      'llamacpp:requests_deferred 1',
    ].join('\n');
    const f = interpretMetrics('llama-server', parsePrometheusText(text));
    expect(f).toEqual({ ...none, source: 'llama-server', kvUsage: 0.125, kvTokens: 1024, requestsRunning: 2, requestsWaiting: 1 });
    expect(remoteCacheSample('e', f, null, 0).prefixHitRate).toBeNull();
  });

  it('SGLang: data-parallel ranks add up, no hit yet reads 0, and sglang_ names read like sglang:', () => {
    const dp = [
      'sglang:num_running_reqs{dp_rank="0",tp_rank="0"} 2',
      'sglang:num_running_reqs{dp_rank="1",tp_rank="1"} 5',
      'sglang:token_usage{dp_rank="0",tp_rank="0"} 0.25',
      'sglang:token_usage{dp_rank="1",tp_rank="1"} 0.75',
      'sglang:prompt_tokens_total{model_name="m"} 300',
    ].join('\n');
    expect(interpretMetrics('sglang', parsePrometheusText(dp))).toEqual({
      ...none,
      source: 'sglang',
      kvUsage: 0.5,
      prefixQueries: 300,
      prefixHits: 0,
      requestsRunning: 7,
    });
    const underscored = fixture('sglang.txt').replaceAll('sglang:', 'sglang_');
    expect(interpretMetrics('sglang', parsePrometheusText(underscored))).toEqual(
      interpretMetrics('sglang', parsePrometheusText(fixture('sglang.txt'))),
    );
  });

  it('ignores samples a server could not mean: NaN, negative counts, usage past 1', () => {
    const text = [
      'vllm:num_requests_running{engine="0"} NaN',
      'vllm:num_requests_waiting{engine="0"} -3',
      'vllm:kv_cache_usage_perc{engine="0"} 1.5',
      'vllm:prefix_cache_queries_total{engine="0"} 10',
      'vllm:prefix_cache_hits_total{engine="0"} 40',
    ].join('\n');
    const f = interpretMetrics('vllm', parsePrometheusText(text));
    expect(f).toMatchObject({ requestsRunning: null, requestsWaiting: null });
    expect(remoteCacheSample('e', f, null, 0)).toMatchObject({ kvUsage: 1, prefixHitRate: 1 });
  });
});

describe('remoteCacheSample rates between scrapes', () => {
  const vllmAt = (queries: number, hits: number): RemoteFigures =>
    interpretMetrics(
      'vllm',
      parsePrometheusText(
        `vllm:prefix_cache_queries_total{engine="0"} ${queries}\nvllm:prefix_cache_hits_total{engine="0"} ${hits}\n`,
      ),
    );

  it('the recent rate is the hits over the lookups since the scrape before', () => {
    const first = vllmAt(200000, 80000);
    const second = vllmAt(210000, 89000);
    const s = remoteCacheSample('e', second, first, 2000);
    expect(s.prefixHitRate).toBe(89000 / 210000);
    expect(s.recentPrefixHitRate).toBe(0.9);
  });

  it('no lookups in between, or no scrape before, gives no recent rate', () => {
    const first = vllmAt(200000, 80000);
    expect(remoteCacheSample('e', first, first, 1).recentPrefixHitRate).toBeNull();
    expect(remoteCacheSample('e', first, null, 1).recentPrefixHitRate).toBeNull();
    expect(remoteCacheSample('e', first, none, 1).recentPrefixHitRate).toBeNull();
  });

  it('a counter that went down is a restart: the new counts are all since then', () => {
    const before = vllmAt(200000, 80000);
    const restarted = vllmAt(1000, 750);
    expect(remoteCacheSample('e', restarted, before, 1).recentPrefixHitRate).toBe(0.75);
    // Only the hits went down (a counter reset alone): still a fresh start, not a negative rate.
    const hitsReset = vllmAt(200500, 100);
    expect(remoteCacheSample('e', hitsReset, before, 1).recentPrefixHitRate).toBe(100 / 200500);
  });

  it('another server now answering at the address is a fresh start too', () => {
    const llama = interpretMetrics('openai-compatible', parsePrometheusText(fixture('llama-server.txt')));
    const vllm = vllmAt(400000, 300000);
    expect(remoteCacheSample('e', llama, vllm, 1).recentPrefixHitRate).toBe(1523840 / 1572053);
  });

  it('llama-server: the recent rate from two scrapes of its rounded counters', () => {
    const scrape = (cached: string, processed: string): RemoteFigures =>
      interpretMetrics(
        'llama-server',
        parsePrometheusText(`llamacpp:prompt_tokens_total ${processed}\nllamacpp:prompt_tokens_cached_total ${cached}\n`),
      );
    const before = scrape('1.52384e+06', '48213');
    const after = scrape('1.52784e+06', '49213');
    expect(remoteCacheSample('e', after, before, 1).recentPrefixHitRate).toBe(4000 / 5000);
  });
});
