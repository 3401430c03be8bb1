import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';

const repoRoot = join(import.meta.dirname, '..');
const dirs: string[] = [];

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Runs `node server/main.ts ...args` and collects what it printed, stopping it after its first stdout line. */
function runMain(args: string[]): Promise<{ firstLine: string | null; stdout: string; stderr: string; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    // process.execPath: vitest runs on the project's Node 24, which runs .ts directly.
    const child = spawn(process.execPath, ['server/main.ts', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    let firstLine: string | null = null;
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    createInterface({ input: child.stdout }).once('line', (line) => {
      firstLine = line;
      child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ firstLine, stdout, stderr, code, signal });
    });
  });
}

describe('node server/main.ts', () => {
  it('prints exactly the listening line, then shuts down cleanly on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'hearth-main-'));
    dirs.push(dataDir);
    const r = await runMain(['--data-dir', dataDir, '--port', '0', '--threads', '1']);
    expect(r.firstLine, r.stderr).toMatch(/^Hearth listening on http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    expect(r.code, r.stderr).toBe(0);
    // One line and nothing else on stdout: scripts read it.
    expect(r.stdout).toBe(`${r.firstLine}\n`);
  }, 30_000);

  it('rejects bad arguments with a clear message and exit code 2', async () => {
    const r = await runMain(['--port', 'eighty']);
    expect(r.firstLine).toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--port must be a whole number/);
    expect(r.stderr).toMatch(/Usage:/);
  }, 30_000);

  it('with --api-port and --api-key prints the API address as a second line, and the API answers with that key only', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'hearth-main-'));
    dirs.push(dataDir);
    const key = 'main-test-key-0123456789';
    const answers: { models?: number; body?: unknown; uiToken?: number; wrongKey?: number } = {};
    const r = await runUntil(['--data-dir', dataDir, '--port', '0', '--threads', '1', '--api-port', '0', '--api-key', key], async (lines) => {
      if (lines.length < 2) return false;
      const api = /^Hearth API listening on (http:\/\/127\.0\.0\.1:(\d+)\/v1)$/.exec(lines[1]!);
      const token = /\?token=([A-Za-z0-9_-]+)$/.exec(lines[0]!)?.[1];
      if (!api || token === undefined) return true;
      const models = await fetch(`${api[1]}/models`, { headers: { authorization: `Bearer ${key}` } });
      answers.models = models.status;
      answers.body = await models.json();
      // The UI's token is not an API key.
      answers.uiToken = (await fetch(`${api[1]}/models`, { headers: { authorization: `Bearer ${token}` } })).status;
      answers.wrongKey = (await fetch(`${api[1]}/models`, { headers: { 'x-api-key': `${key}x` } })).status;
      return true;
    });
    const lines = r.stdout.split('\n');
    expect(lines, r.stderr).toHaveLength(3);
    expect(lines[0]).toMatch(/^Hearth listening on http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    expect(lines[1]).toMatch(/^Hearth API listening on http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(lines[2]).toBe('');
    // Port 0 picked a real port, not the UI's.
    const apiPort = Number(/:(\d+)\/v1$/.exec(lines[1]!)![1]);
    expect(apiPort).toBeGreaterThan(0);
    expect(apiPort).not.toBe(Number(/:(\d+)\/\?/.exec(lines[0]!)![1]));
    expect(answers).toEqual({ models: 200, body: { object: 'list', data: [] }, uiToken: 401, wrongKey: 401 });
    expect(r.code, r.stderr).toBe(0);
    // The key is not echoed anywhere.
    expect(r.stderr).not.toContain(key);
  }, 40_000);

  it('says on stderr why the API server is not listening when its port is taken, and still serves the UI', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'hearth-main-'));
    dirs.push(dataDir);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runUntil(['--data-dir', dataDir, '--port', '0', '--threads', '1', '--api-port', String(port)], async (_lines, stderr) => stderr.includes('hearth: data directory'));
      expect(r.stdout, r.stderr).toMatch(/^Hearth listening on http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}\n$/);
      expect(r.stderr).toContain(`hearth: the API server is not listening: Port ${port} is already in use.`);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  }, 40_000);

  it('refuses --api-key without --api-port with exit code 2', async () => {
    const r = await runMain(['--api-key', 'k'.repeat(32)]);
    expect(r.firstLine).toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--api-key needs --api-port/);
  }, 30_000);
});

/**
 * Runs `node server/main.ts ...args` until `done(stdoutLines, stderr)` resolves true (checked on
 * each output), then stops it with SIGTERM and collects what it printed.
 */
function runUntil(args: string[], done: (lines: string[], stderr: string) => Promise<boolean>): Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['server/main.ts', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    const lines: string[] = [];
    let checking = false;
    let finished = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const check = (): void => {
      if (finished || checking) return;
      checking = true;
      done([...lines], stderr).then(
        (ready) => {
          checking = false;
          if (ready && !finished) {
            finished = true;
            child.kill('SIGTERM');
          } else if (!finished) {
            // Output may have arrived while checking.
            setTimeout(check, 20);
          }
        },
        (error: unknown) => {
          finished = true;
          child.kill('SIGKILL');
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    };
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      check();
    });
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      check();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      finished = true;
      resolve({ stdout, stderr, code, signal });
    });
  });
}
