import type { HearthEvent } from '../contract.ts';
import { backoffDelay } from './backoff.ts';
import { asEvent, asResult, unreachable } from './shape.ts';
import type { ConnectionState, Transport } from './types.ts';

export interface BrowserTransportOptions {
  /** The page's origin, e.g. http://127.0.0.1:8080 (location.origin). */
  readonly origin: string;
  readonly fetch?: typeof fetch;
  readonly WebSocket?: typeof WebSocket;
}

/**
 * The browser host: calls are same-origin `POST /api/call/<name>`, events a WebSocket at
 * `/api/events`. The host's cookie authenticates both, so the page handles no token.
 */
export function createBrowserTransport(options: BrowserTransportOptions): Transport {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const Socket = options.WebSocket ?? globalThis.WebSocket;
  const eventsUrl = new URL('/api/events', options.origin);
  eventsUrl.protocol = eventsUrl.protocol === 'https:' ? 'wss:' : 'ws:';

  const eventListeners = new Set<(event: HearthEvent) => void>();
  const connectionListeners = new Set<(state: ConnectionState) => void>();
  let state: ConnectionState = 'connecting';
  let socket: WebSocket | null = null;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let disposed = false;

  const setState = (next: ConnectionState) => {
    if (next === state) return;
    state = next;
    for (const listener of connectionListeners) listener(next);
  };

  const scheduleReconnect = () => {
    if (disposed || timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      connect();
    }, backoffDelay(attempt));
    attempt += 1;
  };

  const connect = () => {
    if (disposed) return;
    let ws: WebSocket;
    try {
      ws = new Socket(eventsUrl.href);
    } catch {
      setState('closed');
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      setState('open');
    };
    ws.onmessage = (message: MessageEvent) => {
      if (typeof message.data !== 'string') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      const event = asEvent(parsed);
      if (event) for (const listener of eventListeners) listener(event);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      setState('closed');
      scheduleReconnect();
    };
    // An error is always followed by close; reconnecting happens there.
    ws.onerror = () => {};
  };

  connect();

  return {
    kind: 'browser',
    async call(name, input) {
      let response: Response;
      try {
        response = await doFetch(`/api/call/${encodeURIComponent(name)}`, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(input ?? {}),
        });
      } catch {
        return { ok: false, error: unreachable };
      }
      let body: unknown;
      try {
        body = await response.json();
      } catch {
        // A proxy error page or a host that is going down: no Result in the body.
        return { ok: false, error: { ...unreachable, message: `Cannot reach Hearth (HTTP ${response.status})` } };
      }
      return asResult(body);
    },
    onEvent(listener) {
      eventListeners.add(listener);
      return () => eventListeners.delete(listener);
    },
    onConnection(listener) {
      connectionListeners.add(listener);
      listener(state);
      return () => connectionListeners.delete(listener);
    },
    dispose() {
      disposed = true;
      if (timer !== null) clearTimeout(timer);
      socket?.close();
      socket = null;
      eventListeners.clear();
      connectionListeners.clear();
    },
  };
}
