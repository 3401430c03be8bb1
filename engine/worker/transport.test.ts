import { afterEach, describe, expect, it } from 'vitest';
import { connectToParent } from './transport.ts';

type Listener = (event: { data: unknown }) => void;

describe('connectToParent', () => {
  const proc = process as unknown as { parentPort?: unknown };
  afterEach(() => {
    delete proc.parentPort;
  });

  it("uses Electron's parentPort when the process has one", () => {
    const posted: unknown[] = [];
    const listeners: Record<string, Array<Listener | (() => void)>> = {};
    proc.parentPort = {
      on: (event: string, listener: Listener) => (listeners[event] ??= []).push(listener),
      postMessage: (message: unknown) => posted.push(message),
    };
    const channel = connectToParent();
    expect(channel?.kind).toBe('utilityProcess');
    const received: unknown[] = [];
    channel!.onMessage((message) => received.push(message));
    for (const listener of listeners.message ?? []) (listener as Listener)({ data: { kind: 'call', id: 1 } });
    expect(received).toEqual([{ kind: 'call', id: 1 }]);
    channel!.send({ kind: 'ready' });
    expect(posted).toEqual([{ kind: 'ready' }]);
  });

  it('uses Node IPC under fork, and nothing when run by hand', () => {
    const channel = connectToParent();
    // Vitest's forks pool gives workers an IPC channel; its threads pool does not.
    expect(channel === null || channel.kind === 'fork').toBe(true);
    expect(channel === null).toBe(typeof process.send !== 'function');
  });
});
