import { describe, expect, it, vi } from 'vitest';

const exposed = vi.hoisted(() => ({ api: new Map<string, unknown>(), listeners: new Map<string, unknown>() }));

vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, api: unknown) => exposed.api.set(key, api) },
  ipcRenderer: {
    invoke: vi.fn(async (...args: unknown[]) => ({ ok: true, value: args })),
    on: (channel: string, fn: unknown) => exposed.listeners.set(channel, fn),
    removeListener: (channel: string) => exposed.listeners.delete(channel),
  },
}));

describe('preload', () => {
  it('exposes only call and onEvent, never ipcRenderer itself', async () => {
    await import('./preload.ts');
    const api = exposed.api.get('hearth') as { call: (n: string, i: unknown) => Promise<unknown>; onEvent: (fn: (e: unknown) => void) => () => void };
    expect(Object.keys(api).sort()).toEqual(['call', 'onEvent']);
    expect(await api.call('chats.list', {})).toEqual({ ok: true, value: ['hearth:call', 'chats.list', {}] });
    const seen: unknown[] = [];
    const off = api.onEvent((e) => seen.push(e));
    (exposed.listeners.get('hearth:event') as (ev: unknown, p: unknown) => void)({ sender: 'hidden' }, { type: 'x' });
    expect(seen).toEqual([{ type: 'x' }]);
    off();
    expect(exposed.listeners.has('hearth:event')).toBe(false);
  });
});
