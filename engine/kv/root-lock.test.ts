import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeBusy, lockRoot, ownerFileName, readOwner, tryLockRoot, type RootLock } from './root-lock.ts';
import { tempRoot } from '../../test/support/kv-store.ts';

let root = '';
let cleanup: () => void = () => undefined;
const held: RootLock[] = [];

beforeEach(() => {
  ({ root, cleanup } = tempRoot());
});
afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
  cleanup();
});

function take(): RootLock {
  const attempt = tryLockRoot(root);
  if (attempt.status !== 'held') throw new Error(`expected to hold the lock, got ${attempt.status}`);
  held.push(attempt.lock);
  return attempt.lock;
}

/** A child Node process that takes the lock, prints "held", and keeps it until killed. */
async function holderProcess(dir: string): Promise<{ pid: number; kill: () => Promise<void> }> {
  const script = `
    const { tryLockRoot } = await import(${JSON.stringify(join(import.meta.dirname, 'root-lock.ts'))});
    const attempt = tryLockRoot(${JSON.stringify(dir)});
    // Kept reachable: a collected lock closes its database, and the kernel lets the lock go.
    globalThis.heldLock = attempt;
    console.log(attempt.status);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const status = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    child.stdout.once('data', (line: string) => resolve(line.trim()));
    child.once('exit', (code) => reject(new Error(`the holder exited early (${code})`)));
  });
  expect(status).toBe('held');
  return {
    pid: child.pid as number,
    kill: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

describe('KV root lock', () => {
  it('is exclusive within a process, names its holder, and is free again once released', () => {
    const lock = take();
    expect(readOwner(root)).toMatchObject({ pid: process.pid });
    expect(tryLockRoot(root)).toMatchObject({ status: 'busy', owner: { pid: process.pid } });
    lock.release();
    lock.release(); // idempotent
    expect(existsSync(join(root, ownerFileName))).toBe(false);
    take();
  });

  it('is exclusive across processes, and a SIGKILLed holder never leaves it stale', async () => {
    const holder = await holderProcess(root);
    try {
      const attempt = tryLockRoot(root);
      expect(attempt).toMatchObject({ status: 'busy', owner: { pid: holder.pid } });
      if (attempt.status === 'busy') expect(describeBusy(root, attempt.owner)).toMatch(new RegExp(`^another Hearth process \\(pid ${holder.pid}, started .*\\) is using the KV cache at `));
    } finally {
      await holder.kill();
    }
    // The kernel dropped the lock with the process; its owner file is left behind, and overwritten.
    expect(JSON.parse(readFileSync(join(root, ownerFileName), 'utf8'))).toMatchObject({ pid: holder.pid });
    expect(readdirSync(root).sort()).toEqual(['lock', ownerFileName]);
    take();
    expect(readOwner(root)?.pid).toBe(process.pid);
  });

  it('waits up to waitMs for the holder to let go', async () => {
    const first = take();
    const started = performance.now();
    setTimeout(() => first.release(), 150);
    const attempt = await lockRoot(root, { waitMs: 3000, pollMs: 20 });
    expect(attempt.status).toBe('held');
    if (attempt.status === 'held') held.push(attempt.lock);
    expect(performance.now() - started).toBeLessThan(2000);

    const timedOut = performance.now();
    expect(await lockRoot(root, { waitMs: 120, pollMs: 20 })).toMatchObject({ status: 'busy' });
    expect(performance.now() - timedOut).toBeGreaterThanOrEqual(100);
  });

  it('reports a root it cannot lock as unsupported instead of throwing', () => {
    expect(tryLockRoot(join(root, 'missing', 'dir'))).toMatchObject({ status: 'unsupported', error: expect.any(String) });
  });
});
