import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
});
