/**
 * How the builder runs its commands (git, cmake, the compiler cmake starts): one seam, so the
 * builder's tests drive it with a fake and no test compiles llama.cpp. The real runner starts
 * each command in a process group of its own, so a cancel stops the compiler processes ninja or
 * make started too, not only the cmake in front of them.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Each line the command writes (stdout and stderr together), without its line break. */
  readonly onLine: (line: string) => void;
  /** Aborting kills the command and everything it started. */
  readonly signal?: AbortSignal;
  /** A lower CPU priority (a nice value, 1..19) for the command and what it starts: a build must not make the app stutter. */
  readonly nice?: number;
}

/** How a command ended: its exit code, or the signal that stopped it, or why it never started. */
export interface RunEnd {
  readonly code: number | null;
  readonly signal: string | null;
  /** Set when the command could not be started (not installed, no permission). */
  readonly startError?: string;
}

export interface CommandRunner {
  run(command: string, args: readonly string[], options: RunOptions): Promise<RunEnd>;
}

/** How long a cancelled command gets after SIGTERM before its group is killed outright. */
const KILL_GRACE_MS = 3000;

/** Splits a byte stream into lines; a final line without a break is flushed at the end. */
export function lineSplitter(onLine: (line: string) => void): { push(chunk: Buffer | string): void; end(): void } {
  let partial = '';
  return {
    push(chunk) {
      partial += chunk.toString();
      // ninja redraws its status line with carriage returns on a terminal; treat them as breaks.
      const lines = partial.split(/\r\n|\n|\r/);
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    },
    end() {
      if (partial !== '') onLine(partial);
      partial = '';
    },
  };
}

/** Signals a process group, or the process alone where groups do not exist (Windows). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(process.platform === 'win32' ? pid : -pid, signal);
  } catch {
    // already gone
  }
}

/** The runner that really spawns: a process group per command, killed whole on abort. */
export const spawnRunner: CommandRunner = {
  run(command, args, options) {
    return new Promise((resolve) => {
      if (options.signal?.aborted) {
        resolve({ code: null, signal: 'SIGTERM' });
        return;
      }
      const child = spawn(command, [...args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: the group is what a cancel kills.
        detached: process.platform !== 'win32',
        windowsHide: true,
      });
      if (options.nice !== undefined && child.pid !== undefined) {
        try {
          // Before it starts anything: what it starts inherits the priority.
          os.setPriority(child.pid, options.nice);
        } catch {
          // not permitted here: it runs at normal priority
        }
      }
      const out = lineSplitter(options.onLine);
      const err = lineSplitter(options.onLine);
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      let killTimer: NodeJS.Timeout | null = null;
      const abort = (): void => {
        if (child.pid === undefined) return;
        signalGroup(child.pid, 'SIGTERM');
        killTimer = setTimeout(() => child.pid !== undefined && signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
        killTimer.unref();
      };
      options.signal?.addEventListener('abort', abort, { once: true });
      let settled = false;
      const settle = (end: RunEnd): void => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener('abort', abort);
        if (killTimer) clearTimeout(killTimer);
        out.end();
        err.end();
        resolve(end);
      };
      child.on('error', (error) => settle({ code: null, signal: null, startError: error.message }));
      child.on('close', (code, signal) => {
        // The command is done; anything it left running in its group goes with it.
        if (child.pid !== undefined && options.signal?.aborted) signalGroup(child.pid, 'SIGKILL');
        settle({ code, signal });
      });
    });
  },
};
