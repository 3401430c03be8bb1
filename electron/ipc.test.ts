import { describe, expect, it, vi } from 'vitest';
import { callNames } from '../engine/contract/index.ts';
import { malformedCases, mulberry32, randomCases, unknownNames, validInputs } from '../test/support/fuzz.ts';
import { createCallHandler } from './ipc.ts';

function setup() {
  const call = vi.fn(async (name: unknown, _payload: unknown) => ({
    ok: true as const,
    value: name === 'models.list' ? { models: [{ path: '/models/a.gguf' }] } : 'from Hearth',
  }));
  const pickModelFile = vi.fn(async () => '/models/a.gguf');
  const showInFolder = vi.fn((_path: string) => undefined);
  const handle = createCallHandler({ call, pickModelFile, showInFolder, isTrustedSender: (url) => url.startsWith('file:///app/') });
  return { call, pickModelFile, showInFolder, handle };
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

  it('passes valid calls to Hearth with the parsed input', async () => {
    const { handle, call } = setup();
    expect(await handle('file:///app/index.html', 'chats.send', { chatId: 'abc', text: 'hello' })).toEqual({ ok: true, value: 'from Hearth' });
    expect(call).toHaveBeenCalledWith('chats.send', { chatId: 'abc', text: 'hello' });
  });

  it('answers the file dialog in main', async () => {
    const { handle, call, pickModelFile } = setup();
    expect(await handle('file:///app/index.html', 'models.pick', {})).toEqual({ ok: true, value: { path: '/models/a.gguf' } });
    pickModelFile.mockRejectedValueOnce(new Error('no display'));
    expect(await handle('file:///app/index.html', 'models.pick', {})).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    expect(call).not.toHaveBeenCalled();
  });

  it('reveals only a model the library lists, in the file manager', async () => {
    const { handle, showInFolder } = setup();
    expect(await handle('file:///app/index.html', 'models.reveal', { path: '/models/a.gguf' })).toEqual({ ok: true, value: { revealed: true } });
    expect(showInFolder).toHaveBeenCalledWith('/models/a.gguf');
    expect(await handle('file:///app/index.html', 'models.reveal', { path: '/etc/passwd' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(showInFolder).toHaveBeenCalledTimes(1);
    showInFolder.mockImplementationOnce(() => {
      throw new Error('no file manager');
    });
    expect(await handle('file:///app/index.html', 'models.reveal', { path: '/models/a.gguf' })).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });
});

describe('IPC fuzz: every call, malformed payloads (seeded)', () => {
  const appUrl = 'file:///app/index.html';
  const seed = 0x1bc7;

  it('has a valid base input for every call in the contract, and each passes', async () => {
    expect(Object.keys(validInputs).sort()).toEqual([...callNames].sort());
    const { handle, call, pickModelFile } = setup();
    for (const name of callNames) {
      const result = await handle(appUrl, name, validInputs[name]);
      expect(result.ok, `${name}: ${JSON.stringify(result)}`).toBe(true);
    }
    expect(call).toHaveBeenCalledTimes(callNames.length - 1);
    expect(pickModelFile).toHaveBeenCalledTimes(1);
  });

  it('answers INVALID_INPUT to every malformed payload of every call, and never runs the call', async () => {
    const { handle, call, pickModelFile } = setup();
    const random = mulberry32(seed);
    let count = 0;
    for (const name of callNames) {
      const cases = [...malformedCases(name), ...randomCases(name, random, 40)];
      expect(cases.length, name).toBeGreaterThan(40);
      for (const c of cases) {
        const result = await handle(appUrl, name, c.payload);
        expect(result, `${name}: ${c.label}`).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT', message: expect.any(String) } });
        count += 1;
      }
    }
    expect(call).not.toHaveBeenCalled();
    expect(pickModelFile).not.toHaveBeenCalled();
    // Nothing leaked onto Object.prototype from an own `__proto__` key.
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(count).toBeGreaterThan(2000);
  });

  it('answers NOT_FOUND to names that are not calls, whatever the payload', async () => {
    const { handle, call, pickModelFile } = setup();
    const random = mulberry32(seed + 1);
    for (const name of unknownNames(random, 200)) {
      for (const payload of [{}, undefined, null, validInputs['chats.list']]) {
        const result = await handle(appUrl, name, payload);
        expect(result, typeof name === 'string' ? name.slice(0, 40) : typeof name).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
      }
    }
    expect(call).not.toHaveBeenCalled();
    expect(pickModelFile).not.toHaveBeenCalled();
  });

  it('answers FORBIDDEN to every call from a frame that is not the app, valid or not', async () => {
    const { handle, call, pickModelFile } = setup();
    for (const sender of ['', 'about:blank', 'https://evil.example/', 'file:///tmp/evil.html', 'data:text/html,x', 'devtools://devtools/x', 'chrome-extension://x/y', 'file:///app.evil/index.html']) {
      for (const name of callNames) {
        expect(await handle(sender, name, validInputs[name]), `${sender} ${name}`).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
      }
    }
    expect(call).not.toHaveBeenCalled();
    expect(pickModelFile).not.toHaveBeenCalled();
  });
});
