/**
 * The engine process's channel to its parent. Under `child_process.fork` it is Node's IPC
 * (`process.send`, `process.on('message')`); under Electron's utilityProcess it is
 * `process.parentPort` (`on('message', (e) => e.data)`, `postMessage`).
 */
import type { WorkerToHost } from '../protocol.ts';

export interface ParentChannel {
  readonly kind: 'fork' | 'utilityProcess';
  send(message: WorkerToHost): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Called when the parent goes away (fork only: Electron ends utility processes itself). */
  onDisconnect(listener: () => void): void;
}

/** The part of Electron's `process.parentPort` that the worker uses (typed here: no Electron import). */
interface ParentPort {
  on(event: 'message', listener: (event: { data: unknown }) => void): void;
  on(event: 'close', listener: () => void): void;
  postMessage(message: unknown): void;
}

/** Finds the channel this process was started with, or null when it has none (run by hand). */
export function connectToParent(): ParentChannel | null {
  const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;
  if (parentPort) {
    return {
      kind: 'utilityProcess',
      send: (message) => parentPort.postMessage(message),
      onMessage: (listener) => parentPort.on('message', (event) => listener(event.data)),
      onDisconnect: (listener) => parentPort.on('close', listener),
    };
  }
  if (typeof process.send === 'function') {
    return {
      kind: 'fork',
      send: (message) => {
        // Sending after the parent is gone throws ERR_IPC_CHANNEL_CLOSED; the process is about
        // to exit anyway (see onDisconnect), so the message has nobody to reach.
        if (process.connected) process.send?.(message, undefined, undefined, (error: Error | null) => void error);
      },
      onMessage: (listener) => process.on('message', listener),
      onDisconnect: (listener) => process.on('disconnect', listener),
    };
  }
  return null;
}
