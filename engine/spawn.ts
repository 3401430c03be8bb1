/**
 * Starts the engine process with `child_process.fork`: the browser host and the tests use this.
 * (Electron's main process spawns the same entry with utilityProcess instead.)
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EnginePort, HostToWorker, WorkerToHost } from './protocol.ts';

/** The engine process entry. */
export const workerEntry = fileURLToPath(new URL('./worker/main.ts', import.meta.url));

export interface ForkEngineOptions {
  /** The child's environment; defaults to this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * What becomes of the child's stdout and stderr (llama.cpp may write to them directly, and a
   * native crash prints there). Default `inherit`: both go to this process's stderr, because
   * the browser host's stdout is reserved for its one "listening" line.
   */
  readonly stdio?: 'inherit' | 'ignore';
}

/**
 * Forks a fresh engine process running `engine/worker/main.ts` on this Node binary
 * (`process.execPath`; Node ≥ 23.6 runs the `.ts` entry by type stripping). The process exits
 * by itself when this process disconnects from it, so it never outlives its host.
 */
export function forkEngine(options: ForkEngineOptions = {}): EnginePort {
  const stdio = options.stdio ?? 'inherit';
  const child = fork(workerEntry, [], {
    execPath: process.execPath,
    // Not the parent's: test runners and debuggers put loaders and inspector flags there.
    execArgv: [],
    env: options.env ?? process.env,
    stdio: stdio === 'inherit' ? ['ignore', 2, 2, 'ipc'] : ['ignore', 'ignore', 'ignore', 'ipc'],
    serialization: 'json',
  });

  const messageListeners: Array<(message: WorkerToHost) => void> = [];
  const exitListeners: Array<(code: number | null, signal: string | null) => void> = [];
  let exited: { code: number | null; signal: string | null } | null = null;

  const markExited = (code: number | null, signal: string | null): void => {
    if (exited) return;
    exited = { code, signal };
    for (const listener of exitListeners.splice(0)) listener(code, signal);
  };

  child.on('message', (message: unknown) => {
    for (const listener of messageListeners) listener(message as WorkerToHost);
  });
  child.on('exit', (code, signal) => markExited(code, signal));
  // A failed spawn emits 'error' and no 'exit'; a failed kill or send also emits 'error' but
  // then the process is still there, so only a process that never started counts as gone.
  child.on('error', () => {
    if (child.pid === undefined) markExited(null, null);
  });

  return {
    get pid() {
      return child.pid;
    },
    send(message: HostToWorker): void {
      if (exited || !child.connected) return;
      // The callback swallows EPIPE when the process dies between the check and the write;
      // the host learns of the death from onExit.
      child.send(message, (error) => void error);
    },
    onMessage(listener): void {
      messageListeners.push(listener);
    },
    onExit(listener): void {
      if (exited) {
        const { code, signal } = exited;
        queueMicrotask(() => listener(code, signal));
      } else {
        exitListeners.push(listener);
      }
    },
    kill(signal: NodeJS.Signals = 'SIGTERM'): void {
      if (!exited) child.kill(signal);
    },
  };
}
