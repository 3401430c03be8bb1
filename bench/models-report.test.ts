import { describe, expect, it } from 'vitest';
import { bodyBytes, deviceBytes, formatReport, interruptedFigures, mbPerSecond, medianMs, rangeBytes, rangeStart, rehashSpell, syscallBytes, type DownloadRun, type InterruptedRun, type IoCounters, type ModelsReport, type ProgressSeen } from './models-report.ts';

const MiB = 2 ** 20;
const size = 2048 * MiB;
const io = (wchar: number, writeBytes: number, cancelledWriteBytes = 0, rchar = 0): IoCounters => ({ rchar, wchar, writeBytes, cancelledWriteBytes });

const download = (method: DownloadRun['method'], ms: number, over: Partial<DownloadRun> = {}): DownloadRun => ({
  method,
  fileBytes: size,
  networkBytes: size,
  ms,
  cpuMs: ms * 0.8,
  peakRssDeltaBytes: 30 * MiB,
  ioBefore: io(1000, 4096),
  ioAfter: io(1000 + size + 500, 4096 + size),
  complete: true,
  failure: null,
  ...over,
});

const interrupted = (over: Partial<InterruptedRun> = {}): InterruptedRun => ({
  kind: 'pause',
  fileBytes: size,
  stoppedAtBytes: 1100 * MiB,
  beforeMs: 6000,
  afterMs: 7000,
  resumeRangeStart: 1100 * MiB,
  networkBytesBefore: 1104 * MiB,
  networkBytesAfter: 948 * MiB,
  rehashBytes: 1100 * MiB,
  rehashMs: 1000,
  peakRssDeltaBytes: 20 * MiB,
  ioBefore: io(0, 0),
  // After the stop: the prefix read back, then the rest received, and 40 KiB of small reads.
  ioResumed: io(1104 * MiB, 1104 * MiB, 0, 2000 * MiB),
  ioAfter: io(size, size + 8192, 8192, 2000 * MiB + 1100 * MiB + 948 * MiB + 40 * 1024),
  complete: true,
  failure: null,
  ...over,
});

describe('models report figures', () => {
  it('reads the bytes a Range asks for against the file, as the emulator serves it', () => {
    expect(rangeBytes('bytes=0-1048575', 10 * MiB)).toBe(MiB);
    expect(rangeBytes('bytes=100-', 1000)).toBe(900);
    // Clipped at the end of the file; past it, nothing (416).
    expect(rangeBytes('bytes=900-5000', 1000)).toBe(100);
    expect(rangeBytes('bytes=1000-', 1000)).toBe(0);
    expect(rangeBytes('bytes=-10', 1000)).toBe(10);
    // No range, or one the emulator ignores: the whole file.
    expect(rangeBytes(undefined, 1000)).toBe(1000);
    expect(rangeBytes('bytes=0-1,5-6', 1000)).toBe(1000);
    expect(rangeStart('bytes=12345-')).toBe(12345);
    expect(rangeStart('bytes=-10')).toBeNull();
    expect(rangeStart(undefined)).toBeNull();
  });

  it("counts the CDN's file bodies only, by the file each request names", () => {
    const sizes = new Map([['a.gguf', 10 * MiB]]);
    const seen = [
      { method: 'GET', path: '/api/models/o/r', server: 'hub' as const },
      { method: 'GET', path: '/o/r/resolve/main/a.gguf', server: 'hub' as const, range: 'bytes=0-1048575' },
      { method: 'GET', path: '/cdn/abc?repo=o%2Fr&file=a.gguf&Expires=1', server: 'cdn' as const, range: 'bytes=0-1048575' },
      { method: 'HEAD', path: '/cdn/abc?repo=o%2Fr&file=a.gguf', server: 'cdn' as const },
      { method: 'GET', path: '/cdn/abc?repo=o%2Fr&file=a.gguf', server: 'cdn' as const, range: 'bytes=1048576-3145727' },
      { method: 'GET', path: '/cdn/def?repo=o%2Fr&file=other.gguf', server: 'cdn' as const },
    ];
    expect(bodyBytes(seen, sizes)).toEqual({ bytes: 3 * MiB, bodyRequests: 2, unknown: 1 });
  });

  it('takes disk bytes as write_bytes less cancelled, and says null when /proc was not there', () => {
    expect(deviceBytes(io(0, 100, 10), io(50, 1100, 60))).toBe(950);
    expect(syscallBytes(io(0, 100), io(50, 1100))).toBe(50);
    expect(deviceBytes({ rchar: null, wchar: null, writeBytes: null, cancelledWriteBytes: null }, io(1, 1))).toBeNull();
    expect(mbPerSecond(200e6, 1000)).toBe(200);
    expect(mbPerSecond(1, 0)).toBeNull();
  });

  it('takes the median of complete runs per method', () => {
    const runs = [download('plain fetch', 10_000), download('plain fetch', 12_000), download('plain fetch', 1, { complete: false }), download('DownloadQueue', 15_000)];
    expect(medianMs(runs, 'plain fetch')).toBe(11_000);
    expect(medianMs(runs, 'DownloadQueue')).toBe(15_000);
    expect(medianMs([], 'DownloadQueue')).toBeNull();
  });

  it('computes an interrupted download against the uninterrupted one: time, re-fetch, bytes received, re-hash speed', () => {
    const f = interruptedFigures(interrupted(), 10_000);
    expect(f.timeRatio).toBeCloseTo(1.3);
    expect(f.refetchedBytes).toBe(0);
    // 4 MiB in flight at the pause were received and thrown away.
    expect(f.networkRatio).toBeCloseTo((2052 * MiB) / size);
    expect(f.rehashMBps).toBeCloseTo((1100 * MiB) / 1e6);
    expect(f.diskRatio).toBeCloseTo(1);
    expect(f.stoppedFraction).toBeCloseTo(1100 / 2048);
    // rchar counts the received bytes too: what is left is the prefix and the small reads.
    expect(f.readBackBytes).toBe(1100 * MiB + 40 * 1024);
    expect(interruptedFigures(interrupted({ ioResumed: { rchar: null, wchar: null, writeBytes: null, cancelledWriteBytes: null } }), 10_000).readBackBytes).toBeNull();
  });

  const at = (ms: number, status: ProgressSeen['item']['status'], downloadedBytes: number): ProgressSeen => ({ at: ms, item: { status, downloadedBytes } });

  it('measures a re-hash spell from its first `verifying` event to the `downloading` one that ends it, whose bytes are the prefix', () => {
    const prefix = 1100 * MiB;
    const seen = [
      // Before the stop: not part of the resume.
      at(100, 'downloading', 500 * MiB),
      at(900, 'queued', prefix),
      // A new queue: its events count the bytes read back from 0, then the transfer goes on at the prefix.
      at(1000, 'verifying', 0),
      at(1500, 'verifying', 300 * MiB),
      at(2500, 'verifying', 900 * MiB),
      at(3200, 'downloading', prefix),
      at(9000, 'downloading', 2000 * MiB),
      at(9500, 'verifying', size),
      at(9600, 'done', size),
    ];
    expect(rehashSpell(seen, 950)).toEqual({ bytes: prefix, ms: 2200 });
    // From a later moment the only `verifying` is the final check, which re-read no prefix.
    expect(rehashSpell(seen, 3500)).toBeNull();
  });

  it('sees no re-hash when the transfer goes on from a kept hash, or stops while verifying', () => {
    const kept = [at(1000, 'queued', 1100 * MiB), at(1010, 'downloading', 1100 * MiB), at(5000, 'downloading', 2000 * MiB), at(5100, 'verifying', size), at(5200, 'done', size)];
    expect(rehashSpell(kept, 1000)).toBeNull();
    expect(rehashSpell([at(1000, 'verifying', 0), at(1200, 'verifying', 200 * MiB), at(1300, 'paused', 1100 * MiB)], 0)).toBeNull();
    expect(rehashSpell([], 0)).toBeNull();
  });

  it('counts a resume from an earlier byte, or from 0 without a Range, as a re-fetch; an incomplete run has no time ratio', () => {
    expect(interruptedFigures(interrupted({ resumeRangeStart: 1000 * MiB }), 10_000).refetchedBytes).toBe(100 * MiB);
    expect(interruptedFigures(interrupted({ resumeRangeStart: null }), 10_000).refetchedBytes).toBe(1100 * MiB);
    expect(interruptedFigures(interrupted({ complete: false }), 10_000).timeRatio).toBeNull();
    expect(interruptedFigures(interrupted(), null).timeRatio).toBeNull();
  });

  it('prints a table per part with the ratios first', () => {
    const report: ModelsReport = {
      downloads: [download('plain fetch', 10_000), download('DownloadQueue', 13_000)],
      interrupted: [interrupted({ rehashBytes: null, rehashMs: null, ioAfter: io(size, size + 8192, 8192, 2000 * MiB + 948 * MiB + 40 * 1024) }), interrupted({ kind: 'restart' }), interrupted({ kind: 'restart', complete: false, failure: 'error: damaged', rehashBytes: null, rehashMs: null })],
      fit: {
        repo: 'bench/R',
        files: [
          { name: 'a-Q4_K_M.gguf', sizeBytes: 4.92e9, servedBytes: 8 * MiB + 64 * MiB },
          { name: 'a-Q8_0.gguf', sizeBytes: 8.54e9, servedBytes: 8 * MiB + 64 * MiB },
        ],
        headerBytes: 8 * MiB,
        vocabulary: true,
        emulatorSetupMs: 500,
        hostStartMs: 4000,
        calls: [
          { label: 'first', call: 'hub.fit', ms: 2900, bytesFetched: 12 * MiB, bodyRequests: 3, requests: 8, verdicts: 2, failure: null },
          { label: 'repeat 1', call: 'hub.fit', ms: 60, bytesFetched: 0, bodyRequests: 0, requests: 2, verdicts: 2, failure: null },
        ],
        enginePeakRssBytes: 300 * MiB,
        failure: null,
      },
      scan: {
        smallModels: 200,
        largeHeaderModels: 20,
        largeHeaderBytes: 8 * MiB,
        fakeHomeModels: 10,
        evicted: true,
        runs: [
          { label: 'first', pageCache: 'evicted', ms: 4000, models: 230, peakRssDeltaBytes: 40 * MiB },
          { label: 'repeat 1', pageCache: 'warm', ms: 200, models: 230, peakRssDeltaBytes: 0 },
        ],
        smallHeaderMs: 1,
        largeHeaderMs: 90,
        failure: null,
      },
      machine: { cpu: 'Test CPU', cores: 2, memoryBytes: 24 * 2 ** 30, platform: 'linux-x64', osRelease: '6', node: 'v24', fileBytes: size, pauseAt: 0.5, reps: 1, dir: '/x', fsType: 'ext4', loadAverage: [1, 2], wallMs: 300_000 },
      date: '2026-01-01T00:00:00.000Z',
    };
    const text = formatReport(report);
    expect(text).toContain('| method | time vs plain fetch (median) |');
    // cpuMs is 0.8 × ms for both: the same CPU ratio as the time's.
    expect(text).toMatch(/\| DownloadQueue \| 1\.30× \| 1\.30× \| 1\.00× \|/);
    // 6 + 7 s against the queue's 13 s.
    expect(text).toMatch(/\| pause, resume \| 1\.00× \|/);
    // No spell on the complete pause: none, no speed, and what it read back beside it; the restart's spell with its speed.
    expect(text).toMatch(/\| 54% \(1100 MiB\) \| none \| — \| 40 KiB \|/);
    expect(text).toMatch(/\| 1100 MiB in 1,000 ms \| 1,153 \| 1100 MiB \|/);
    // A failed run's missing spell says nothing.
    expect(text).toMatch(/\| 54% \(1100 MiB\) \| — \| — \| 1100 MiB \| 6,000 ms \+ 7,000 ms \| 20\.0 MiB \| NO: error: damaged \|/);
    expect(text).toContain('NO: error: damaged');
    // 12 MiB of 13.46 GB.
    expect(text).toMatch(/\| hub\.fit \(first\) \| 0\.0935% \| 1\.50× \| 12\.0 MiB \| 3 \/ 8 \|/);
    expect(text).toContain('cut to its header and 64.0 MiB');
    expect(text).toMatch(/\| repeat 1 \| 0\.05× \| 200 ms \|/);
    expect(text).toContain('large-header 90 ms');
  });
});
