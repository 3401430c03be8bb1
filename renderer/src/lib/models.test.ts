import { describe, expect, it } from 'vitest';
import type { FileFit, HubRepo, RepoFit } from '../contract.ts';
import type { Remote } from '../state/hub-slice.ts';
import { download, fileFit, gpuDevice, hubFile, hubRepo, localModel, recommended, repoFit } from '../state/models.fixtures.ts';
import {
  downloadHint,
  etaText,
  fitDeviceLine,
  formatParams,
  groupByQuantization,
  groupBySource,
  modelFacts,
  partsText,
  pickRecommended,
  recommendationRows,
  relativeTime,
} from './models.ts';

const done = <T>(value: T): Remote<T> => ({ value, error: null, pending: false });

describe('model figures', () => {
  it('parameter counts as people quote them', () => {
    expect(formatParams(8_030_261_248)).toBe('8.0B');
    expect(formatParams(135_000_000)).toBe('135M');
    expect(formatParams(1_540_000_000)).toBe('1.5B');
    expect(formatParams(null)).toBeNull();
    expect(formatParams(0)).toBeNull();
  });

  it('a local model on one line, leaving out what is unknown', () => {
    expect(modelFacts(localModel('a.gguf'))).toBe('Q4_K_M · llama · 8.0B · 131,072 context');
    expect(modelFacts(localModel('b.gguf', { quantization: null, parameterCount: null, trainedContextLength: null }))).toBe('llama');
  });

  it('groups by source, Hearth first, leaving out empty sources', () => {
    const groups = groupBySource([localModel('o.gguf', { source: 'ollama' }), localModel('h.gguf'), localModel('l.gguf', { source: 'lmstudio' })]);
    expect(groups.map((g) => g.source)).toEqual(['hearth', 'lmstudio', 'ollama']);
  });

  it('relative times', () => {
    const now = Date.UTC(2025, 5, 1);
    expect(relativeTime(now - 30_000, now)).toBe('just now');
    expect(relativeTime(now - 5 * 60_000, now)).toBe('5 minutes ago');
    expect(relativeTime(now - 86_400_000, now)).toBe('1 day ago');
    expect(relativeTime(now - 3 * 365 * 86_400_000, now)).toBe('3 years ago');
    expect(relativeTime(null, now)).toBe('unknown');
  });

  it('the device line: a discrete GPU, Apple silicon, no GPU', () => {
    expect(fitDeviceLine(gpuDevice)).toBe('Planned for NVIDIA GeForce RTX 4090, 24 GiB VRAM, 64 GiB RAM');
    expect(fitDeviceLine({ ...gpuDevice, backend: 'metal', gpuName: 'Apple M2 Pro', unifiedMemory: true, vramTotalBytes: 21.3 * 1024 ** 3, ramTotalBytes: 32 * 1024 ** 3 })).toBe(
      'Planned for Apple M2 Pro, 32 GiB unified memory (Metal may use 21.3 GiB)',
    );
    expect(fitDeviceLine({ backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * 1024 ** 3, ramFreeBytes: 1 })).toBe('Planned for this CPU, 16 GiB RAM');
  });

  it('files by quantization in their order, multi-part ones as "N parts"', () => {
    const files = [hubFile('m-Q2_K', 'Q2_K', 1), hubFile('m-Q4_K_M', 'Q4_K_M', 2), hubFile('mmx', null, 3), hubFile('m-Q4_K_M-alt', 'Q4_K_M', 4), hubFile('m-F16', 'F16', 5, 3)];
    expect(groupByQuantization(files).map((g) => [g.quantization, g.files.length])).toEqual([
      ['Q2_K', 1],
      ['Q4_K_M', 2],
      ['F16', 1],
      ['Other', 1],
    ]);
    expect(partsText(files[4]!)).toBe('3 parts');
    expect(partsText(files[0]!)).toBeNull();
  });

  it('time left, and a download\'s hint', () => {
    expect(etaText(42)).toBe('42 s left');
    expect(etaText(180)).toBe('3 min left');
    expect(etaText(4_800)).toBe('1 h 20 min left');
    expect(etaText(null)).toBeNull();
    expect(downloadHint(download('d', { status: 'paused', error: { code: 'DISK_FULL', message: 'The disk is full.' } }))).toBe('Free space, then Resume.');
    expect(downloadHint(download('d', { status: 'error', error: { code: 'NETWORK_ERROR', message: 'Lost.', hint: 'Check the connection.' } }))).toBe('Check the connection.');
    expect(downloadHint(download('d'))).toBeNull();
  });
});

describe('the first-run recommendation', () => {
  const small = recommended('small', 'org/small-GGUF', 0.4e9);
  const mid = recommended('mid', 'org/mid-GGUF', 2e9);
  const large = recommended('large', 'org/large-GGUF', 5e9);
  const repos: Record<string, Remote<HubRepo>> = {
    'org/small-GGUF': done(hubRepo('org/small-GGUF', [hubFile('small-Q8_0', 'Q8_0', 0.7e9), hubFile('small-Q4_K_M', 'Q4_K_M', 0.4e9)])),
    'org/mid-GGUF': done(hubRepo('org/mid-GGUF', [hubFile('mid-Q4_K_M', 'Q4_K_M', 2e9)])),
    'org/large-GGUF': done(hubRepo('org/large-GGUF', [hubFile('large-q4_k_m', 'q4_k_m', 5e9)])),
  };
  const fits = (verdicts: [repo: string, file: string, verdict: FileFit['verdict']][]): Record<string, Remote<RepoFit>> =>
    Object.fromEntries(verdicts.map(([repo, file, verdict]) => [repo, done(repoFit({ [file]: fileFit(verdict) }))]));

  it('finds each model\'s file of its quantization (case aside) and its verdict', () => {
    const rows = recommendationRows([small, large], repos, fits([['org/small-GGUF', 'small-Q4_K_M.gguf', 'gpu'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'ram']]));
    expect(rows.map((r) => [r.file?.id, r.fit?.verdict, r.pending, r.error])).toEqual([
      ['small-Q4_K_M.gguf', 'gpu', false, null],
      ['large-q4_k_m.gguf', 'ram', false, null],
    ]);
  });

  it('marks the largest that runs fully on the GPU', () => {
    const rows = recommendationRows([small, mid, large], repos, fits([['org/small-GGUF', 'small-Q4_K_M.gguf', 'gpu'], ['org/mid-GGUF', 'mid-Q4_K_M.gguf', 'gpu'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'partial']]));
    expect(pickRecommended(rows)?.model.id).toBe('mid');
  });

  it('without any on the GPU, the largest that runs from RAM at a comfortable speed, else the smallest that runs; none when nothing fits', () => {
    const cpu = recommendationRows([small, mid, large], repos, fits([['org/small-GGUF', 'small-Q4_K_M.gguf', 'ram'], ['org/mid-GGUF', 'mid-Q4_K_M.gguf', 'ram'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'too-large']]));
    expect(pickRecommended(cpu)?.model.id).toBe('mid');
    // A 5 GB model that fits in RAM is still not the first one to offer a CPU: it would crawl.
    const roomy = recommendationRows([small, mid, large], repos, fits([['org/small-GGUF', 'small-Q4_K_M.gguf', 'ram'], ['org/mid-GGUF', 'mid-Q4_K_M.gguf', 'partial'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'ram']]));
    expect(pickRecommended(roomy)?.model.id).toBe('mid');
    const onlyLarge = recommendationRows([mid, large], repos, fits([['org/mid-GGUF', 'mid-Q4_K_M.gguf', 'too-large'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'ram']]));
    expect(pickRecommended(onlyLarge)?.model.id).toBe('large');
    const none = recommendationRows([mid, large], repos, fits([['org/mid-GGUF', 'mid-Q4_K_M.gguf', 'too-large'], ['org/large-GGUF', 'large-q4_k_m.gguf', 'too-large']]));
    expect(pickRecommended(none)).toBeNull();
  });

  it('a repository that failed, or lacks the quantization, is an error on its row, not a blank', () => {
    const offline: Record<string, Remote<HubRepo>> = { 'org/small-GGUF': { value: null, error: { code: 'NETWORK_ERROR', message: 'Hugging Face could not be reached.' }, pending: false } };
    const [row] = recommendationRows([small], offline, {});
    expect(row?.error?.code).toBe('NETWORK_ERROR');
    expect(row?.pending).toBe(false);
    const [missing] = recommendationRows([recommended('x', 'org/mid-GGUF', 1, 'Q8_0')], repos, {});
    expect(missing?.error?.message).toBe('The repository has no Q8_0 file.');
    const [waiting] = recommendationRows([small], {}, {});
    expect(waiting?.pending).toBe(true);
    expect(pickRecommended([row!, missing!, waiting!])).toBeNull();
  });
});
