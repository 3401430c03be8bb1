import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireBuildLock, BuildLockBusy } from './build-lock.ts';

let dir: string;
let lockPath: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hearth-lock-'));
  lockPath = path.join(dir, '.build.lock');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A pid no process has (the highest Linux allows is far below). */
const deadPid = 2 ** 30;

describe('acquireBuildLock', () => {
  it('names its owner and the build command, and is gone once released', async () => {
    const lock = await acquireBuildLock(lockPath, { waitMs: 0, label: 'test' });
    expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    lock.setChild(1234);
    expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: process.pid, child: 1234 });
    lock.release();
    expect(existsSync(lockPath)).toBe(false);
  });

  it('refuses at once while a live process holds it', async () => {
    writeFileSync(lockPath, JSON.stringify({ pid: process.ppid, host: hostname(), started: Date.now() }));
    const failure = await acquireBuildLock(lockPath, { waitMs: 0, label: 'engine build' }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BuildLockBusy);
    expect((failure as BuildLockBusy).message).toBe(`engine build: process ${process.ppid} has been building (lock ${lockPath})`);
  });

  it("takes over a lock whose owner and build command are dead, but not one whose build command lives on", async () => {
    writeFileSync(lockPath, JSON.stringify({ pid: deadPid, host: hostname(), started: Date.now(), child: process.ppid }));
    await expect(acquireBuildLock(lockPath, { waitMs: 0, label: 'test' })).rejects.toBeInstanceOf(BuildLockBusy);
    const lines: string[] = [];
    writeFileSync(lockPath, JSON.stringify({ pid: deadPid, host: hostname(), started: Date.now() }));
    const lock = await acquireBuildLock(lockPath, { waitMs: 0, label: 'test', log: (line) => lines.push(line) });
    expect(lines).toEqual([`test: removing an abandoned build lock (process ${deadPid})`]);
    lock.release();
  });

  it('waits for a release when told to wait', async () => {
    const first = await acquireBuildLock(lockPath, { waitMs: 0, label: 'test' });
    setTimeout(() => first.release(), 300);
    const second = await acquireBuildLock(lockPath, { waitMs: 10_000, label: 'test' });
    expect(JSON.parse(readFileSync(lockPath, 'utf8')).pid).toBe(process.pid);
    second.release();
  });
});
