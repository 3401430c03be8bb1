import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunksDir } from '../kv/chunk-file.ts';
import { loadKernels } from '../kv/kernels-load.ts';
import { chooseCompression, decideCompression, gbPerSec, measureRestorePaths, type Measured } from './compression-choice.ts';

const measured = (decodeBytesPerSec: number, readBytesPerSec: number): Measured => ({ ok: true, value: { decodeBytesPerSec, readBytesPerSec } });

describe('the rule: compression may not make a restore slower than reading the bytes uncompressed', () => {
  it('decoding slower than reading: off, with both figures', () => {
    expect(decideCompression(measured(0.7e9, 9.8e9))).toEqual({ applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s' });
  });

  it('decoding at least as fast as reading: lossless', () => {
    expect(decideCompression(measured(3.1e9, 0.45e9))).toEqual({ applied: 'lossless', reason: 'decoding 3.1 GB/s keeps up with reading 0.45 GB/s' });
    expect(decideCompression(measured(2e9, 2e9)).applied).toBe('lossless');
    expect(decideCompression(measured(2e9 - 1, 2e9)).applied).toBe('off');
  });

  it('a failed or meaningless measurement: off, with the reason', () => {
    expect(decideCompression({ ok: false, reason: 'EACCES: permission denied' })).toEqual({ applied: 'off', reason: 'the measurement failed (EACCES: permission denied)' });
    for (const [decode, read] of [
      [Number.NaN, 1e9],
      [1e9, 0],
      [Infinity, 1e9],
      [-1, -2],
    ] as const) {
      const decided = decideCompression(measured(decode, read));
      expect(decided.applied).toBe('off');
      expect(decided.reason).toMatch(/^the measurement failed/);
    }
  });

  it('writes figures with two significant digits', () => {
    expect(gbPerSec(0.704e9)).toBe('0.70 GB/s');
    expect(gbPerSec(9.84e9)).toBe('9.8 GB/s');
    expect(gbPerSec(12.4e9)).toBe('12 GB/s');
  });
});

describe('chooseCompression', () => {
  it('a fixed setting is applied as it is, and nothing is measured', () => {
    const measure = (): Measured => {
      throw new Error('must not measure');
    };
    expect(chooseCompression('off', measure)).toEqual({ setting: 'off', applied: 'off' });
    expect(chooseCompression('lossless', measure)).toEqual({ setting: 'lossless', applied: 'lossless' });
    expect(chooseCompression('lossy', measure)).toEqual({ setting: 'lossy', applied: 'lossy' });
  });

  it('auto applies the rule to the figures measured, and says them', () => {
    expect(chooseCompression('auto', () => measured(0.7e9, 9.8e9))).toEqual({
      setting: 'auto',
      applied: 'off',
      reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s',
      measured: { decodeBytesPerSec: 0.7e9, readBytesPerSec: 9.8e9 },
    });
    expect(chooseCompression('auto', () => measured(4e9, 1e9))).toMatchObject({ setting: 'auto', applied: 'lossless' });
  });

  it('auto whose measurement fails or throws picks off, with the reason, and never throws', () => {
    expect(chooseCompression('auto', () => ({ ok: false, reason: 'disk full' }))).toEqual({ setting: 'auto', applied: 'off', reason: 'the measurement failed (disk full)' });
    const thrown = chooseCompression('auto', () => {
      throw new Error('boom');
    });
    expect(thrown).toEqual({ setting: 'auto', applied: 'off', reason: 'the measurement failed (boom)' });
  });
});

describe('measureRestorePaths', () => {
  const root = mkdtempSync(join(tmpdir(), 'hearth-compression-choice-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('measures both restore paths in the store directory and leaves nothing behind', () => {
    const { kernels } = loadKernels();
    const result = measureRestorePaths(join(root, 'kv'), kernels, 1);
    if (!result.ok) throw new Error(result.reason);
    expect(result.value.decodeBytesPerSec).toBeGreaterThan(0);
    expect(result.value.readBytesPerSec).toBeGreaterThan(0);
    expect(Number.isFinite(result.value.decodeBytesPerSec + result.value.readBytesPerSec)).toBe(true);
    expect(readdirSync(chunksDir(join(root, 'kv')))).toEqual([]);
  });

  it('a store directory that cannot be written: a reason, not a throw', () => {
    const blocked = join(root, 'blocked');
    // A file where the directory should be.
    writeFileSync(blocked, 'not a directory');
    const result = measureRestorePaths(blocked, loadKernels().kernels, 1);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/ENOTDIR|EEXIST/);
    expect(existsSync(join(blocked, 'chunks'))).toBe(false);
  });
});
