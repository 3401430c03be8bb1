import { describe, expect, it } from 'vitest';
import { acceptanceLines, cachedFraction, formatReport, requestAfterRestart, sharedFigures, type ApiMode, type ApiReport, type ModeRun, type RequestRecord, type SharedPrefixRun } from './api-report.ts';

const request = (index: number, over: Partial<RequestRecord> = {}): RequestRecord => ({
  index,
  afterRestart: false,
  messages: 2 * index,
  promptTokens: 300 * index,
  cachedTokens: 300 * (index - 1),
  completionTokens: 32,
  ttftMs: 100,
  totalMs: 600,
  hearth: { reused: 300 * (index - 1), restored: 0, prefilled: 300, restoreMs: 0 },
  finishReason: 'length',
  error: null,
  ...over,
});

/** A 12-request run; with a restart, request 7 is the first after it and gets `after`. */
const run = (mode: ApiMode, after: Partial<RequestRecord> = {}, over: Partial<ModeRun> = {}): ModeRun => {
  const restartAfter = mode === 'restart' || mode === 'off-restart' ? 6 : null;
  return {
    model: 'test model',
    mode,
    contextSize: 8192,
    restartAfter,
    persistence: restartAfter === null ? ['on'] : ['on', 'on'],
    hostStartMs: restartAfter === null ? [9000] : [9000, 8000],
    engines: restartAfter === null ? [{ peakRssBytes: 300 * 2 ** 20, writeBytes: 40 * 2 ** 20 }] : [{ peakRssBytes: 300 * 2 ** 20, writeBytes: 20 * 2 ** 20 }, { peakRssBytes: 310 * 2 ** 20, writeBytes: 25 * 2 ** 20 }],
    requests: Array.from({ length: 12 }, (_, i) => (restartAfter !== null && i + 1 === 7 ? request(7, { afterRestart: true, ...after }) : request(i + 1))),
    failure: null,
    wallMs: 30_000,
    ...over,
  };
};

const shared = (bBytesAdded: number, over: Partial<SharedPrefixRun> = {}): SharedPrefixRun => ({
  model: 'test model',
  systemTokens: 2000,
  userTokens: 100,
  chunkTokens: 256,
  // A stores 2,100 prompt + 32 reply tokens at 1,000 B each.
  a: { request: request(1, { promptTokens: 2100, cachedTokens: 0, completionTokens: 32 }), bytesBefore: 0, bytesAfter: 2_132_000, chunksBefore: 0, chunksAfter: 8 },
  b: { request: request(1, { promptTokens: 2100, cachedTokens: 1792, completionTokens: 32 }), bytesBefore: 2_132_000, bytesAfter: 2_132_000 + bBytesAdded, chunksBefore: 8, chunksAfter: 9 },
  failure: null,
  ...over,
});

describe('api report', () => {
  it('finds the request after the restart and its cached share', () => {
    const r = run('restart', { promptTokens: 4000, cachedTokens: 3900 });
    expect(requestAfterRestart(r)?.index).toBe(7);
    expect(requestAfterRestart(run('persist'))).toBeNull();
    expect(cachedFraction(requestAfterRestart(r))).toBeCloseTo(0.975);
    expect(cachedFraction(request(1, { promptTokens: null }))).toBeNull();
  });

  it('passes (a) and (b) when the restored request is fast and cached, and fails them otherwise', () => {
    const fast = acceptanceLines([run('restart', { ttftMs: 150, promptTokens: 4000, cachedTokens: 3900 }), run('off-restart', { ttftMs: 2000, promptTokens: 4000, cachedTokens: 0 })], []);
    expect(fast.map((l) => [l.check.slice(0, 3), l.pass])).toEqual([
      ['(a)', true],
      ['(b)', true],
    ]);
    expect(fast[0]!.detail).toContain('ratio 0.075');
    const slow = acceptanceLines([run('restart', { ttftMs: 400, promptTokens: 4000, cachedTokens: 0 }), run('off-restart', { ttftMs: 2000, promptTokens: 4000, cachedTokens: 0 })], []);
    expect(slow.map((l) => l.pass)).toEqual([false, false]);
    expect(slow[1]!.detail).toContain('0 of 4,000 prompt tokens (0.0%)');
  });

  it('says N/A when a run did not reach the request after the restart', () => {
    const broken = run('restart', {}, { requests: [request(1)], failure: 'the host did not start' });
    const lines = acceptanceLines([broken, run('off-restart', { ttftMs: 2000 })], []);
    expect(lines.map((l) => l.pass)).toEqual([null, null]);
    expect(lines[0]!.detail).toContain('the host did not start');
  });

  it('weighs the second client against its own tokens (c)', () => {
    // B's own: 2,100 + 32 − 2,000 = 132 tokens; limit 132 + 256 = 388 tokens = 388,000 B.
    const once = shared(300_000);
    const f = sharedFigures(once)!;
    expect(f.bytesPerToken).toBe(1000);
    expect(f.bOwnTokens).toBe(132);
    expect(f.limitTokens).toBe(388);
    expect(f.bAddedTokens).toBe(300);
    expect(f.sharedBytes).toBe(2_000_000);
    const [ok] = acceptanceLines([], [once]);
    expect(ok!.pass).toBe(true);
    expect(ok!.detail).toContain('shared-prefix chunks written once: yes');
    // B wrote the whole prompt again.
    const [twice] = acceptanceLines([], [shared(2_132_000)]);
    expect(twice!.pass).toBe(false);
    expect(twice!.detail).toContain('shared-prefix chunks written once: no');
    const [missing] = acceptanceLines([], [shared(0, { b: null, failure: 'ENOENT' })]);
    expect(missing!.pass).toBeNull();
  });

  it('formats a report with its tables and lines', () => {
    const runs = [run('persist'), run('off'), run('off-restart', { ttftMs: 2000, cachedTokens: 0 }), run('restart', { ttftMs: 150 })];
    const sh = [shared(300_000)];
    const report: ApiReport = {
      runs,
      shared: sh,
      skipped: [{ model: 'big.gguf', path: '/m/big.gguf', reason: 'test' }],
      machine: {
        cpu: 'CPU',
        cores: 2,
        memoryBytes: 1,
        platform: 'linux-x64',
        osRelease: '6',
        node: 'v24',
        threads: 1,
        nodeLlamaCpp: '3',
        openai: '7',
        requests: 12,
        restartAfter: 6,
        maxTokens: 32,
        targetTokens: 4000,
        systemTokens: 300,
        earlyUserTokens: 556,
        lateUserTokens: 60,
        sharedSystemTokens: 2000,
        minContext: 6144,
        compression: null,
        codec: null,
        wallMs: 100_000,
      },
      date: '2026-01-01T00:00:00.000Z',
      acceptance: acceptanceLines(runs, sh),
    };
    const text = formatReport(report);
    expect(text).toContain('| 7 (after restart) |');
    // The restart modes' two engines: the higher peak, the bytes summed.
    expect(text).toMatch(/\| restart \|.*\| 310 \| 45 \|/);
    expect(text).toContain('Request 7, TTFT: 100 ms in memory, persistence on (1,800 of 2,100 cached); 100 ms in memory, persistence off');
    expect(text).toContain('2,000 ms after a restart, persistence off (0 of 2,100 cached); 150 ms after a restart, from the disk store');
    expect(text).toContain('Skipped big.gguf: test');
    expect(text).toMatch(/^PASS {2}test model: \(a\)/m);
    expect(text).toMatch(/^PASS {2}test model: \(c\)/m);
  });
});
