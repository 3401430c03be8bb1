import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HearthEvent } from '../contract.ts';
import { createBrowserTransport } from './browser.ts';
import { createElectronTransport } from './electron.ts';
import type { ConnectionState } from './types.ts';

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
    FakeSocket.all.push(this);
  }
  close() {
    this.onclose?.();
  }
}

const socketClass = FakeSocket as unknown as typeof WebSocket;

describe('browser transport', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('POSTs same-origin JSON and returns the body whatever the status', async () => {
    const fetch = vi.fn(async (_url: string, _init?: RequestInit) =>
      new Response(JSON.stringify({ ok: false, error: { code: 'NOT_FOUND', message: 'No such chat.' } }), { status: 404 }),
    );
    const t = createBrowserTransport({ origin: 'http://127.0.0.1:5000', fetch: fetch as unknown as typeof globalThis.fetch, WebSocket: socketClass });
    const result = await t.call('chats.get', { chatId: 'abc' });
    expect(result).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'No such chat.' } });
    const [url, init] = fetch.mock.calls[0] ?? [];
    expect(url).toBe('/api/call/chats.get');
    expect(init).toMatchObject({ method: 'POST', credentials: 'same-origin', body: '{"chatId":"abc"}' });
    t.dispose();
  });

  it('turns a network failure or a non-Result body into an error Result', async () => {
    const down = createBrowserTransport({
      origin: 'http://127.0.0.1:5000',
      fetch: (async () => {
        throw new TypeError('Failed to fetch');
      }) as unknown as typeof fetch,
      WebSocket: socketClass,
    });
    expect(await down.call('app.state', {})).toMatchObject({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'Cannot reach Hearth' } });
    const html = createBrowserTransport({
      origin: 'http://127.0.0.1:5000',
      fetch: (async () => new Response('<html>bad gateway</html>', { status: 502 })) as unknown as typeof fetch,
      WebSocket: socketClass,
    });
    expect(await html.call('app.state', {})).toMatchObject({ ok: false, error: { code: 'ENGINE_UNAVAILABLE' } });
    const odd = createBrowserTransport({
      origin: 'http://127.0.0.1:5000',
      fetch: (async () => new Response('{"hello":1}')) as unknown as typeof fetch,
      WebSocket: socketClass,
    });
    expect(await odd.call('app.state', {})).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });

  it('reads events from /api/events and reconnects with backoff', () => {
    const t = createBrowserTransport({ origin: 'http://localhost:7000', fetch: vi.fn() as unknown as typeof fetch, WebSocket: socketClass });
    const states: ConnectionState[] = [];
    const events: HearthEvent[] = [];
    t.onConnection((s) => states.push(s));
    t.onEvent((e) => events.push(e));
    const first = FakeSocket.all[0];
    expect(first?.url).toBe('ws://localhost:7000/api/events');
    first?.onopen?.();
    first?.onmessage?.({ data: JSON.stringify({ type: 'engine.status', payload: { state: 'running', restarts: 0 } }) });
    first?.onmessage?.({ data: 'not json' });
    first?.onmessage?.({ data: JSON.stringify({ nope: true }) });
    expect(events).toEqual([{ type: 'engine.status', payload: { state: 'running', restarts: 0 } }]);

    first?.onclose?.();
    expect(states).toEqual(['connecting', 'open', 'closed']);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.all[1]?.onopen?.();
    expect(states.at(-1)).toBe('open');
    t.dispose();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(2);
  });
});

describe('electron transport', () => {
  it('passes calls and events through the bridge', async () => {
    let push: ((e: unknown) => void) | null = null;
    const bridge = {
      call: vi.fn(async () => ({ ok: true, value: { deleted: true } })),
      onEvent: (listener: (e: unknown) => void) => {
        push = listener;
        return () => (push = null);
      },
    };
    const t = createElectronTransport(bridge);
    expect(await t.call('chats.delete', { chatId: 'x' })).toEqual({ ok: true, value: { deleted: true } });
    expect(bridge.call).toHaveBeenCalledWith('chats.delete', { chatId: 'x' });
    const events: unknown[] = [];
    t.onEvent((e) => events.push(e));
    (push as ((e: unknown) => void) | null)?.({ type: 'model.status', payload: { status: 'idle' } });
    (push as ((e: unknown) => void) | null)?.('garbage');
    expect(events).toHaveLength(1);
    const states: string[] = [];
    t.onConnection((s) => states.push(s));
    expect(states).toEqual(['open']);
    t.dispose();
    expect(push).toBeNull();
  });

  it('a rejected IPC call is an error Result', async () => {
    const t = createElectronTransport({ call: async () => Promise.reject(new Error('gone')), onEvent: () => () => {} });
    expect(await t.call('app.state', {})).toMatchObject({ ok: false, error: { code: 'ENGINE_UNAVAILABLE' } });
  });
});
