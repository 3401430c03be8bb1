/**
 * Fixtures for the end-to-end tests: the real browser host (`node server/main.ts`) as a child
 * process on a temporary data directory, and the page opened on the address it prints.
 *
 * The host serves `out/renderer/`, so the renderer must be built before these tests run:
 * `npm test` runs `npm run build` before `playwright test`; when running Playwright by hand,
 * run `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { test as base, expect, type Page } from '@playwright/test';
import { testModelPath } from '../support/models.ts';

export { expect };

export const repoRoot = resolve(import.meta.dirname, '../..');

/**
 * The Node that runs the host: the project's Node 24 (the `node` devDependency), which runs
 * `.ts` directly, even when Playwright itself was started by another Node.
 */
const nodeBinary = existsSync(join(repoRoot, 'node_modules', '.bin', 'node')) ? join(repoRoot, 'node_modules', '.bin', 'node') : process.execPath;

const listeningLine = /^Hearth listening on (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]+))$/;

export interface HostOptions {
  readonly dataDir: string;
  /** A GGUF to load at start (`--model`). */
  readonly model?: string;
  readonly threads?: number;
}

/** A running browser host. */
export interface Host {
  /** The full address it printed, token included. */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  readonly token: string;
  readonly process: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** The pid of its engine process (a child running engine/worker/main.ts), or null. */
  enginePid(): Promise<number | null>;
  /** SIGTERM, then SIGKILL after a grace period; leftover engine processes are killed too. */
  stop(): Promise<void>;
}

/** Child pids of `parentPid` whose command line contains `needle`. Linux reads /proc; elsewhere `ps`. */
async function childPids(parentPid: number, needle: string): Promise<number[]> {
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `node server/main.ts --data-dir DIR --port 0 --threads 1 [--model FILE]` and waits for its address. */
export async function startHost(options: HostOptions): Promise<Host> {
  const args = ['server/main.ts', '--data-dir', options.dataDir, '--port', '0', '--threads', String(options.threads ?? 1)];
  if (options.model !== undefined) args.push('--model', options.model);
  const child = spawn(nodeBinary, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let output = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    output += chunk;
  });

  const address = await new Promise<{ url: string; port: number; token: string }>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the host printed no address within 60 s:\n${output}`)), 60_000);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      output += line + '\n';
      const m = listeningLine.exec(line);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        res({ url: m[1], port: Number(m[2]), token: m[3] ?? '' });
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

/** Opens the app on a host: the `?token=` page load sets the cookie the page's own requests use. */
export async function openApp(page: Page, host: Host): Promise<void> {
  await page.goto(host.url);
  // The sidebar is on every screen once the app has booted.
  await expect(page.getByRole('navigation', { name: 'Conversations' })).toBeVisible();
}

interface Fixtures {
  /** A fresh data directory, removed after the test. */
  dataDir: string;
  /** The generated tiny test model. */
  modelPath: string;
  /** Starts hosts on demand (several in turn for restart tests); all are stopped after the test. */
  launchHost: (options?: Partial<HostOptions>) => Promise<Host>;
  /** A host with the test model loaded at start (`--model`). */
  host: Host;
  /** Fails the test if the page shows an alert/confirm/prompt dialog (an injection firing). */
  noDialogs: void;
}

export const test = base.extend<Fixtures>({
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  dataDir: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'hearth-e2e-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  modelPath: async ({}, use) => {
    await use(await testModelPath());
  },
  launchHost: async ({ dataDir }, use, testInfo) => {
    const hosts: Host[] = [];
    await use(async (options = {}) => {
      const host = await startHost({ dataDir, ...options });
      hosts.push(host);
      return host;
    });
    for (const host of hosts) await host.stop();
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const [i, host] of hosts.entries()) await testInfo.attach(`host-${i}.log`, { body: host.output(), contentType: 'text/plain' });
    }
  },
  host: async ({ launchHost, modelPath }, use) => {
    await use(await launchHost({ model: modelPath }));
  },
  noDialogs: [
    async ({ page }, use) => {
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(`${dialog.type()}: ${dialog.message()}`);
        void dialog.dismiss();
      });
      await use();
      expect(dialogs, 'no dialog may fire').toEqual([]);
    },
    { auto: true },
  ],
});
