import type { CallInput, CallName, CallOutputs, HearthEvent, Result } from '../contract.ts';

/** `open`: calls and events flow. `connecting`/`closed`: the event stream is down (browser host). */
export type ConnectionState = 'connecting' | 'open' | 'closed';

/**
 * How the page reaches Hearth, whichever host serves it. Never throws: a failure to reach the
 * host is a `Result` error like any other, so callers handle one kind of failure.
 */
export interface Transport {
  readonly kind: 'electron' | 'browser';
  call<N extends CallName>(name: N, input: CallInput<N>): Promise<Result<CallOutputs[N]>>;
  /** Returns the unsubscribe function. */
  onEvent(listener: (event: HearthEvent) => void): () => void;
  /** The listener is called at once with the current state, then on every change. */
  onConnection(listener: (state: ConnectionState) => void): () => void;
  dispose(): void;
}

/** What the preload exposes (electron/preload.ts). */
export interface HearthBridge {
  call(name: string, input: unknown): Promise<unknown>;
  onEvent(listener: (event: unknown) => void): () => void;
}

declare global {
  interface Window {
    hearth?: HearthBridge;
  }
}
