import { describe, expect, it, vi } from 'vitest';
import { createCallHandler } from './ipc.ts';

function setup() {
  const call = vi.fn(async (_name: unknown, _payload: unknown) => ({ ok: true as const, value: 'from service' }));
  const pickModelFile = vi.fn(async () => '/models/a.gguf');
  const handle = createCallHandler({ call, pickModelFile, isTrustedSender: (url) => url.startsWith('file:///app/') });
  return { call, pickModelFile, handle };
}

describe('IPC call handler', () => {
  it('refuses calls from any frame but the app', async () => {
    const { handle, call } = setup();
    const result = await handle('https://evil.example/', 'chats.list', {});
    expect(result).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(call).not.toHaveBeenCalled();
  });

  it('validates payloads against the contract before anything runs', async () => {
    const { handle, call } = setup();
    const cases: Array<[unknown, unknown, string]> = [
      ['chats.get', { chatId: '../../etc' }, 'INVALID_INPUT'],
      ['chats.send', { chatId: 'abc', text: '   ' }, 'INVALID_INPUT'],
      ['chats.send', { chatId: 'abc', text: 'hi', extra: 1 }, 'INVALID_INPUT'],
      ['chats.list', 'not an object', 'INVALID_INPUT'],
      ['no.such.call', {}, 'NOT_FOUND'],
      [42, {}, 'NOT_FOUND'],
      ['__proto__', {}, 'NOT_FOUND'],
    ];
    for (const [name, payload, code] of cases) {
      expect(await handle('file:///app/index.html', name, payload)).toMatchObject({ ok: false, error: { code } });
    }
    expect(call).not.toHaveBeenCalled();
  });

  it('passes valid calls to the service with the parsed input', async () => {
    const { handle, call } = setup();
    expect(await handle('file:///app/index.html', 'chats.send', { chatId: 'abc', text: 'hello' })).toEqual({ ok: true, value: 'from service' });
    expect(call).toHaveBeenCalledWith('chats.send', { chatId: 'abc', text: 'hello' });
  });

  it('answers the file dialog in main', async () => {
    const { handle, call, pickModelFile } = setup();
    expect(await handle('file:///app/index.html', 'models.pick', {})).toEqual({ ok: true, value: { path: '/models/a.gguf' } });
    pickModelFile.mockRejectedValueOnce(new Error('no display'));
    expect(await handle('file:///app/index.html', 'models.pick', {})).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(call).not.toHaveBeenCalled();
  });
});
