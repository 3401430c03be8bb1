/**
 * A typed client of a running browser host (test/support/host.ts) for tests that drive it without
 * a browser: calls over `POST /api/call/<name>` with the bearer token, and every event from the
 * `/api/events` WebSocket, kept in order.
 */
import WebSocket from 'ws';
import type { CallInput, CallName, CallOutputs, HearthEvent, Result } from '../../engine/contract/index.ts';
import { errorText } from '../../engine/contract/index.ts';

export class HostClient {
  readonly origin: string;
  readonly token: string;
  /** Every event received since `connect`, in order. */
  readonly events: HearthEvent[] = [];
  #ws: WebSocket | null = null;
  readonly #waiters = new Set<() => void>();

  constructor(origin: string, token: string) {
    this.origin = origin;
    this.token = token;
  }

  /** Opens the events socket; resolves once it is open. */
  static async connect(host: { readonly origin: string; readonly token: string }): Promise<HostClient> {
    const client = new HostClient(host.origin, host.token);
    await client.#open();
    return client;
  }

  async #open(): Promise<void> {
    const ws = new WebSocket(`${this.origin.replace('http:', 'ws:')}/api/events`, { headers: { Authorization: `Bearer ${this.token}`, Origin: this.origin } });
    ws.on('message', (data) => {
      this.events.push(JSON.parse(String(data)) as HearthEvent);
      for (const wake of this.#waiters) wake();
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.#ws = ws;
  }

  /** Makes a call; a network failure (the host is gone) becomes an INTERNAL error result. */
  async call<N extends CallName>(name: N, input: CallInput<N>): Promise<Result<CallOutputs[N]>> {
    try {
      const response = await fetch(`${this.origin}/api/call/${name}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
        body: JSON.stringify(input),
      });
      return (await response.json()) as Result<CallOutputs[N]>;
    } catch (e) {
      return { ok: false, error: { code: 'INTERNAL', message: `the host did not answer: ${errorText(e)}` } };
    }
  }

  /** Like `call`, but throws on an error result (for setup steps). */
  async must<N extends CallName>(name: N, input: CallInput<N>): Promise<CallOutputs[N]> {
    const result = await this.call(name, input);
    if (!result.ok) throw new Error(`${name} failed: ${result.error.code}: ${result.error.message}`);
    return result.value;
  }

  /**
   * Resolves with the first event from index `from` on that matches; rejects after `timeoutMs`.
   * Events that arrived before the call count, so nothing is missed between a call and its wait.
   */
  waitFor<T extends HearthEvent>(predicate: (event: HearthEvent) => event is T, options?: { from?: number; timeoutMs?: number }): Promise<T>;
  waitFor(predicate: (event: HearthEvent) => boolean, options?: { from?: number; timeoutMs?: number }): Promise<HearthEvent>;
  waitFor(predicate: (event: HearthEvent) => boolean, options: { from?: number; timeoutMs?: number } = {}): Promise<HearthEvent> {
    const from = options.from ?? 0;
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      let scanned = from;
      const check = (): boolean => {
        for (; scanned < this.events.length; scanned++) {
          const event = this.events[scanned] as HearthEvent;
          if (predicate(event)) {
            resolve(event);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(new Error(`no matching event within ${timeoutMs} ms (${this.events.length - from} events seen)`));
      }, timeoutMs);
      const wake = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
      };
      this.#waiters.add(wake);
    });
  }

  /** Waits until the message is no longer streaming (its final `message.updated`), and returns it. */
  async finalMessage(messageId: string, options?: { from?: number; timeoutMs?: number }): Promise<Extract<HearthEvent, { type: 'message.updated' }>['payload']['message']> {
    const event = await this.waitFor(
      (e): e is Extract<HearthEvent, { type: 'message.updated' }> => e.type === 'message.updated' && e.payload.message.id === messageId && e.payload.message.status !== 'streaming',
      options,
    );
    return event.payload.message;
  }

  close(): void {
    this.#ws?.terminate();
    this.#ws = null;
  }
}
