import type { HearthEvent } from '../contract.ts';
import { asEvent, asResult, unreachable } from './shape.ts';
import type { HearthBridge, Transport } from './types.ts';

/** Calls and events through the preload's bridge; the IPC channel is always up. */
export function createElectronTransport(bridge: HearthBridge): Transport {
  const listeners = new Set<(event: HearthEvent) => void>();
  const unsubscribe = bridge.onEvent((raw) => {
    const event = asEvent(raw);
    if (event) for (const listener of listeners) listener(event);
  });
  return {
    kind: 'electron',
    async call(name, input) {
      try {
        return asResult(await bridge.call(name, input));
      } catch {
        return { ok: false, error: unreachable };
      }
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onConnection(listener) {
      listener('open');
      return () => {};
    },
    dispose() {
      listeners.clear();
      unsubscribe();
    },
  };
}
