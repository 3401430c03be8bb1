/**
 * Starts the engine in an Electron utilityProcess (a Node process that Chromium supervises),
 * so a llama.cpp crash (one is in docs/decisions/quantized-k-shift-crash.md) kills only the
 * engine, never the window or main.
 */
import { utilityProcess } from 'electron';
import type { EnginePort, SpawnEngine, WorkerToHost } from '../engine/index.ts';

export function utilityProcessSpawner(workerPath: string): SpawnEngine {
  return (): EnginePort => {
    const child = utilityProcess.fork(workerPath, [], {
      serviceName: 'Hearth Engine',
      stdio: 'inherit',
    });
    return {
      get pid() {
        return child.pid;
      },
      send: (message) => {
        child.postMessage(message);
      },
      onMessage: (listener) => {
        child.on('message', (message: WorkerToHost) => listener(message));
      },
      onExit: (listener) => {
        // utilityProcess reports only a code; a native crash shows as a non-zero one.
        child.once('exit', (code) => listener(code, null));
      },
      kill: () => {
        child.kill();
      },
    };
  };
}
