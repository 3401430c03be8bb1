/**
 * A real llama-server for tests (tests only): llama.cpp's OpenAI-compatible server, built from the
 * source node-llama-cpp ships (scripts/build-llama-server.ts), started on a loopback port with
 * one thread, and killed when the test process ends however it ends.
 * docs/decisions/llama-server-in-tests.md records what this release answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { llamaServerBinary } from '../../scripts/build-llama-server.ts';

export interface LlamaServerOptions {
  /** The GGUF file to serve (a generated test model: `testModelPath()`). */
  readonly model: string;
  /** The whole context, shared by the slots: each of `parallel` slots gets ctxSize / parallel. Default 2048. */
  readonly ctxSize?: number;
  /** Slots (`-np`). Default 1. */
  readonly parallel?: number;
  /** Makes every endpoint but /health require `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** More command-line arguments, after the fixture's own (a later flag wins). */
  readonly extraArgs?: readonly string[];
  /** How long to wait for /health to answer 200. Default 60 s. */
  readonly readyTimeoutMs?: number;
}

export interface LlamaServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash; the OpenAI API is under `/v1`. */
  readonly baseUrl: string;
  readonly port: number;
  readonly pid: number;
  /** Sends a signal (default SIGKILL, a crash); `exited` settles when the process is gone. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the process has exited, with its exit code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it is gone. Safe to call twice. */
  stop(): Promise<void>;
  /** Everything the server wrote to stdout and stderr so far (the last 1 MB). */
  log(): string;
}

const logLimit = 1 << 20;

/** A port nothing listens on now: the kernel picks it, the probe closes it, the server binds it. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * Kills `pid` when this process goes away by any means, SIGKILL included: a shell waits on a
 * pipe from this process, which the kernel closes when this process dies. (An `exit` listener
 * alone misses crashes and killed test workers, and would leave servers holding ports and memory.)
 */
function watchdog(pid: number): ChildProcess {
  const guard = spawn('/bin/sh', ['-c', 'read _ignored; kill -9 "$1" 2>/dev/null', 'hearth-llama-server-watchdog', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  guard.unref();
  (guard.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return guard;
}

/** Environment without llama.cpp's LLAMA_ARG_* settings, which the server would read as flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LLAMA_ARG_')));
}

function lastLines(text: string, count: number): string {
  return text.split('\n').filter((line) => line.trim() !== '').slice(-count).join('\n');
}

async function healthy(baseUrl: string): Promise<boolean> {
  try {
    const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

async function startOnce(binary: string, options: LlamaServerOptions): Promise<LlamaServer> {
  const port = await freePort();
  const args = [
    '--host', '127.0.0.1',
    '--port', String(port),
    '-m', options.model,
    '--metrics',
    '--slots',
    '--threads', '1',
    '--threads-batch', '1',
    '-c', String(options.ctxSize ?? 2048),
    '-np', String(options.parallel ?? 1),
    // Quiet and quick: no web UI, no warm-up decode, no probing of device memory to resize the context.
    '--no-webui',
    '--no-warmup',
    '--fit', 'off',
    ...(options.apiKey !== undefined ? ['--api-key', options.apiKey] : []),
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  const pid = child.pid;
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`llama-server could not be started (${binary}): ${error.message}`);
  }
  let output = '';
  const take = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > 2 * logLimit) output = output.slice(-logLimit);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  // A server a test forgot to stop must not keep the test process alive; the exit hook and the
  // watchdog end it.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  const guard = watchdog(pid);
  const killOnExit = (): void => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killOnExit);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      process.removeListener('exit', killOnExit);
      guard.kill('SIGKILL');
      resolve({ code, signal });
    });
  });
  let gone: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((status) => (gone = status));

  const baseUrl = `http://127.0.0.1:${port}`;
  const server: LlamaServer = {
    baseUrl,
    port,
    pid,
    exited,
    kill(signal = 'SIGKILL') {
      if (!gone) child.kill(signal);
    },
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    log: () => output.slice(-logLimit),
  };

  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await healthy(baseUrl))) {
    if (gone) {
      throw new LlamaServerStartError(
        `llama-server exited with ${gone.code ?? gone.signal} before it was ready (${binary} ${args.join(' ')}). Its last output:\n${lastLines(output, 20)}`,
        output,
      );
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new LlamaServerStartError(`llama-server did not answer /health with 200 within ${timeoutMs} ms. Its last output:\n${lastLines(output, 20)}`, output);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return server;
}

/** The server did not become ready; `output` is all it printed. */
export class LlamaServerStartError extends Error {
  readonly output: string;
  constructor(message: string, output: string) {
    super(message);
    this.output = output;
  }
}

/**
 * Builds llama-server if needed (minutes, once per machine), starts it and waits until it is
 * ready. A port taken between the probe and the server's bind is retried on another port.
 */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const binary = await llamaServerBinary();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (error) {
      if (attempt < 3 && error instanceof LlamaServerStartError && /couldn't bind/.test(error.output)) continue;
      throw error;
    }
  }
}
