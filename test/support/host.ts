/**
 * The real browser host (`node server/main.ts`) as a child process on a data directory, for the
 * end-to-end tests (test/e2e/fixtures.ts) and the fault suite (test/faults/): it starts the host,
 * reads the one address line it prints, finds its engine process, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const repoRoot = resolve(import.meta.dirname, '../..');

/**
 * The Node that runs the host: the project's Node 24 (the `node` devDependency), which runs
 * `.ts` directly, even when Playwright itself was started by another Node.
 */
const nodeBinary = existsSync(join(repoRoot, 'node_modules', '.bin', 'node')) ? join(repoRoot, 'node_modules', '.bin', 'node') : process.execPath;

const listeningLine = /^Hearth listening on (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]+))$/;
const apiLine = /^Hearth API listening on (http:\/\/127\.0\.0\.1:\d+\/v1)$/;

export interface HostOptions {
  readonly dataDir: string;
  /** A GGUF to load at start (`--model`). */
  readonly model?: string;
  readonly threads?: number;
  /**
   * Whether a model's first load measures its speed (default false: the tests' expectations
   * assume the default settings; the speed tests turn it on).
   */
  readonly measureSpeed?: boolean;
  /** Extra environment for the host (and so its engine process). */
  readonly env?: NodeJS.ProcessEnv;
  /** Turns the API server on for this run (`--api-port`, `--api-key`); port 0 picks a free one. */
  readonly api?: { readonly port: number; readonly key?: string };
}

/** A running browser host. */
export interface Host {
  /** The full address it printed, token included. */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  readonly token: string;
  /** The API's base URL (`http://127.0.0.1:N/v1`) when `api` was given. */
  readonly apiUrl: string | null;
  readonly process: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** The pid of its engine process (a child running engine/worker/main.ts), or null. */
  enginePid(): Promise<number | null>;
  /** SIGTERM, then SIGKILL after a grace period; leftover engine processes are killed too. */
  stop(): Promise<void>;
}

/** Child pids of `parentPid` whose command line contains `needle`. Linux reads /proc; elsewhere `ps`. */
export async function childPids(parentPid: number, needle: string): Promise<number[]> {
  if (process.platform === 'linux') {
    const found: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // Field 4 of /proc/PID/stat is the parent pid; the command name (field 2) may contain
        // spaces and parentheses, so split after its closing parenthesis.
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== parentPid) continue;
        const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ');
        if (cmdline.includes(needle)) found.push(Number(entry));
      } catch {
        // The process ended while we looked.
      }
    }
    return found;
  }
  const { execFile } = await import('node:child_process');
  const out = await new Promise<string>((res, rej) => execFile('ps', ['-A', '-o', 'pid=,ppid=,command='], (e, stdout) => (e ? rej(e) : res(stdout))));
  return out
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[2]) === parentPid && (m[3] ?? '').includes(needle))
    .map((m) => Number(m[1]));
}

/** A port nothing listens on right now (a fixed one, like the API's default 4724, may be taken on a shared machine). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `node server/main.ts --data-dir DIR --port 0 --threads 1 --no-measure-speed [--model FILE]` and waits for its address. */
export async function startHost(options: HostOptions): Promise<Host> {
  const args = ['server/main.ts', '--data-dir', options.dataDir, '--port', '0', '--threads', String(options.threads ?? 1)];
  if (options.model !== undefined) args.push('--model', options.model);
  if (options.measureSpeed !== true) args.push('--no-measure-speed');
  if (options.api) {
    args.push('--api-port', String(options.api.port));
    if (options.api.key !== undefined) args.push('--api-key', options.api.key);
  }
  const child = spawn(nodeBinary, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let output = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    output += chunk;
  });

  const address = await new Promise<{ url: string; port: number; token: string; apiUrl: string | null }>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the host printed no address within 60 s:\n${output}`)), 60_000);
    const lines = createInterface({ input: child.stdout });
    let ui: { url: string; port: number; token: string } | null = null;
    lines.on('line', (line) => {
      output += line + '\n';
      const m = listeningLine.exec(line);
      if (m?.[1] !== undefined) ui = { url: m[1], port: Number(m[2]), token: m[3] ?? '' };
      const api = apiLine.exec(line)?.[1];
      // With the API on, its line comes right after the UI's.
      if (ui !== null && (!options.api || api !== undefined)) {
        clearTimeout(timer);
        res({ ...ui, apiUrl: api ?? null });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`the host exited (${code ?? signal}) before printing its address:\n${output}`));
    });
  });

  const enginePid = async (): Promise<number | null> => {
    if (child.pid === undefined) return null;
    return (await childPids(child.pid, join('engine', 'worker', 'main.ts')))[0] ?? null;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const engines = child.pid === undefined ? [] : await childPids(child.pid, join('engine', 'worker', 'main.ts'));
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((res) => child.once('exit', () => res()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      for (const pid of engines) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    })();
    return stopping;
  };

  return {
    ...address,
    origin: `http://127.0.0.1:${address.port}`,
    process: child,
    output: () => output,
    enginePid,
    stop,
  };
}

