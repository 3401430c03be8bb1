// Electron cannot run on the build machine (docs/decisions/testing-without-electron.md), so
// main.ts is exercised against a mock of the `electron` module that records what main asks of it.
import { beforeEach, describe, expect, it, vi } from 'vitest';

type Listener = (...args: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

const state = vi.hoisted(() => ({
  gotLock: true,
  appHandlers: new Map<string, Listener>(),
  ipcHandlers: new Map<string, Listener>(),
  windows: [] as Array<{ options: Record<string, unknown>; sent: unknown[]; loaded: string[] }>,
  opened: [] as string[],
  sessionHandlers: new Map<string, Listener>(),
  hearth: {
    call: vi.fn(async () => ({ ok: true, value: 'ok' })),
    dispose: vi.fn(async () => undefined),
    listeners: [] as Listener[],
  },
  createHearth: vi.fn(),
}));

vi.mock('electron', () => {
  class BrowserWindow {
    webContents = { send: (...args: unknown[]) => this.record.sent.push(args) };
    record: { options: Record<string, unknown>; sent: unknown[]; loaded: string[] };
    constructor(options: Record<string, unknown>) {
      this.record = { options, sent: [], loaded: [] };
      state.windows.push(this.record);
    }
    once() {}
    on() {}
    maximize() {}
    isDestroyed() { return false; }
    loadFile(path: string) { this.record.loaded.push(path); return Promise.resolve(); }
    loadURL(url: string) { this.record.loaded.push(url); return Promise.resolve(); }
  }
  const app = {
    requestSingleInstanceLock: () => state.gotLock,
    quit: vi.fn(),
    exit: vi.fn(),
    enableSandbox: vi.fn(),
    on: (name: string, fn: Listener) => state.appHandlers.set(name, fn),
    whenReady: () => Promise.resolve(),
    getPath: () => '/tmp/hearth-electron-test',
    getVersion: () => '0.0.0-test',
    getName: () => 'Hearth',
  };
  return {
    app,
    BrowserWindow,
    dialog: { showErrorBox: vi.fn(), showOpenDialog: vi.fn(async () => ({ canceled: true, filePaths: [] })) },
    ipcMain: { handle: (channel: string, fn: Listener) => state.ipcHandlers.set(channel, fn) },
    Menu: { setApplicationMenu: vi.fn(), buildFromTemplate: (t: unknown) => t },
    safeStorage: { isEncryptionAvailable: () => true, encryptString: (s: string) => Buffer.from(s), decryptString: (b: Buffer) => b.toString() },
    screen: { getAllDisplays: () => [{ workArea: { x: 0, y: 0, width: 1920, height: 1080 } }] },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (fn: Listener) => state.sessionHandlers.set('permission-request', fn),
        setPermissionCheckHandler: (fn: Listener) => state.sessionHandlers.set('permission-check', fn),
        on: (name: string, fn: Listener) => state.sessionHandlers.set(name, fn),
        webRequest: {
          onHeadersReceived: (fn: Listener) => state.sessionHandlers.set('headers-received', fn),
          onBeforeRequest: (fn: Listener) => state.sessionHandlers.set('before-request', fn),
        },
      },
    },
    shell: { openExternal: vi.fn(async (url: string) => void state.opened.push(url)) },
    utilityProcess: { fork: vi.fn() },
  };
});

vi.mock('../engine/index.ts', () => ({
  createHearth: state.createHearth,
  HearthStartError: class HearthStartError extends Error {
    hint = 'Choose another folder.';
  },
}));

async function loadMain() {
  vi.resetModules();
  state.appHandlers.clear();
  state.ipcHandlers.clear();
  state.windows.length = 0;
  state.opened.length = 0;
  state.sessionHandlers.clear();
  state.hearth.listeners = [];
  state.createHearth.mockImplementation(async () => ({
    call: state.hearth.call,
    dispose: state.hearth.dispose,
    onEvent: (fn: Listener) => { state.hearth.listeners.push(fn); return () => undefined; },
  }));
  await import('./main.ts');
  await vi.waitFor(() => expect(state.windows.length).toBe(1));
}

describe('electron main', () => {
  beforeEach(() => {
    state.gotLock = true;
    vi.clearAllMocks();
  });

  it('quits at once when another instance holds the lock', async () => {
    state.gotLock = false;
    vi.resetModules();
    state.windows.length = 0;
    const electron = await import('electron');
    await import('./main.ts');
    expect(electron.app.quit).toHaveBeenCalled();
    expect(state.windows).toHaveLength(0);
  });

  it('creates a sandboxed, isolated window and starts Hearth in the electron host', async () => {
    await loadMain();
    const electron = await import('electron');
    expect(electron.app.enableSandbox).toHaveBeenCalled();
    expect(state.createHearth).toHaveBeenCalledWith(expect.objectContaining({ host: 'electron', dataDir: '/tmp/hearth-electron-test' }));
    const prefs = state.windows[0]?.options['webPreferences'] as Record<string, unknown>;
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false });
    expect(String(prefs['preload'])).toMatch(/preload\.cjs$/);
    expect(state.windows[0]?.loaded[0]).toMatch(/renderer[/\\]index\.html$/);
  });

  it('explains a start failure with its hint, and exits', async () => {
    vi.resetModules();
    state.windows.length = 0;
    const { HearthStartError } = (await import('../engine/index.ts')) as unknown as { HearthStartError: new (m: string) => Error };
    state.createHearth.mockImplementationOnce(async () => {
      throw new HearthStartError('The data directory /x is not writable.');
    });
    const electron = await import('electron');
    await import('./main.ts');
    await vi.waitFor(() => expect(electron.app.exit).toHaveBeenCalledWith(1));
    expect(electron.dialog.showErrorBox).toHaveBeenCalledWith('Hearth could not start', 'The data directory /x is not writable.\n\nChoose another folder.');
    expect(state.windows).toHaveLength(0);
  });

  it('validates IPC payloads and refuses foreign senders', async () => {
    await loadMain();
    const handler = state.ipcHandlers.get('hearth:call');
    expect(handler).toBeDefined();
    const appUrl = `file://${state.windows[0]?.loaded[0]}`;
    const fromApp = { senderFrame: { url: appUrl } };
    expect(await handler?.(fromApp, 'chats.get', { chatId: '../x' })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await handler?.({ senderFrame: { url: 'https://evil.example/' } }, 'chats.list', {})).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(state.hearth.call).not.toHaveBeenCalled();
    expect(await handler?.(fromApp, 'chats.list', {})).toEqual({ ok: true, value: 'ok' });
    expect(state.hearth.call).toHaveBeenCalledWith('chats.list', {});
  });

  it('blocks navigation and new windows; opens only safe links outside', async () => {
    await loadMain();
    const created = state.appHandlers.get('web-contents-created');
    const handlers = new Map<string, Listener>();
    let openHandler: Listener | undefined;
    created?.({}, { on: (n: string, fn: Listener) => handlers.set(n, fn), setWindowOpenHandler: (fn: Listener) => (openHandler = fn) });
    const prevent = vi.fn();
    handlers.get('will-navigate')?.({ preventDefault: prevent }, 'https://evil.example/');
    expect(prevent).toHaveBeenCalled();
    expect(openHandler?.({ url: 'javascript:alert(1)' })).toEqual({ action: 'deny' });
    expect(openHandler?.({ url: 'https://example.com/doc' })).toEqual({ action: 'deny' });
    await vi.waitFor(() => expect(state.opened).toEqual(['https://example.com/doc']));
  });

  it('refuses every navigation, frame navigation, redirect, webview and window.open that leaves the app', async () => {
    await loadMain();
    const appPage = `file://${state.windows[0]?.loaded[0]}`;
    const handlers = new Map<string, Listener>();
    let openHandler: Listener | undefined;
    state.appHandlers.get('web-contents-created')?.({}, { on: (n: string, fn: Listener) => handlers.set(n, fn), setWindowOpenHandler: (fn: Listener) => (openHandler = fn) });
    const hostile = ['https://evil.example/', 'http://127.0.0.1:9/', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/html,<script>x</script>', 'about:blank', 'chrome://settings', 'not a url'];
    for (const url of hostile) {
      for (const name of ['will-navigate', 'will-redirect']) {
        const preventDefault = vi.fn();
        handlers.get(name)?.({ preventDefault }, url);
        expect(preventDefault, `${name} ${url}`).toHaveBeenCalled();
      }
      const preventDefault = vi.fn();
      handlers.get('will-frame-navigate')?.({ preventDefault, url });
      expect(preventDefault, `will-frame-navigate ${url}`).toHaveBeenCalled();
      expect(openHandler?.({ url }), url).toEqual({ action: 'deny' });
    }
    // Never a window of ours; only the http(s) ones reach the OS browser, through shell.openExternal.
    await vi.waitFor(() => expect(state.opened).toEqual(['https://evil.example/', 'http://127.0.0.1:9/']));
    const webview = vi.fn();
    handlers.get('will-attach-webview')?.({ preventDefault: webview });
    expect(webview).toHaveBeenCalled();
    // The app's own page (a hash route) may still load.
    const own = vi.fn();
    handlers.get('will-navigate')?.({ preventDefault: own }, `${appPage}#/settings`);
    expect(own).not.toHaveBeenCalled();
  });

  it('cancels every request for remote content in the app session, and denies permissions', async () => {
    await loadMain();
    const appPage = `file://${state.windows[0]?.loaded[0]}`;
    const filter = state.sessionHandlers.get('before-request');
    expect(filter).toBeDefined();
    const decide = (url: string): boolean => {
      let cancel: boolean | undefined;
      filter?.({ url }, (response: { cancel?: boolean }) => (cancel = response.cancel));
      return cancel ?? false;
    };
    const assets = new URL('assets/index.js', appPage).toString();
    for (const url of [appPage, assets, 'data:image/png;base64,AAAA', 'blob:file:///1234']) expect(decide(url), url).toBe(false);
    for (const url of [
      'http://127.0.0.2:9/beacon.png',
      'https://evil.example/x.js',
      'ws://evil.example/',
      'file:///etc/passwd',
      new URL('../../../etc/passwd', appPage).toString(),
      new URL('assets/..%2f..%2f..%2fsecret', appPage).toString(),
      'ftp://evil.example/',
      'not a url',
    ]) {
      expect(decide(url), url).toBe(true);
    }
    let granted: boolean | undefined;
    state.sessionHandlers.get('permission-request')?.({}, 'media', (ok: boolean) => (granted = ok));
    expect(granted).toBe(false);
    expect(state.sessionHandlers.get('permission-check')?.({}, 'clipboard-read')).toBe(false);
    // Downloads: only the page's own Blob exports.
    const blocked = vi.fn();
    state.sessionHandlers.get('will-download')?.({ preventDefault: blocked }, { getURL: () => 'https://evil.example/x.exe' });
    expect(blocked).toHaveBeenCalled();
    const allowed = vi.fn();
    state.sessionHandlers.get('will-download')?.({ preventDefault: allowed }, { getURL: () => 'blob:file:///5678' });
    expect(allowed).not.toHaveBeenCalled();
    // Responses carry the strict CSP as a header too.
    let headers: Record<string, string[]> | undefined;
    state.sessionHandlers.get('headers-received')?.({ responseHeaders: { 'Content-Type': ['text/html'] } }, (r: { responseHeaders: Record<string, string[]> }) => (headers = r.responseHeaders));
    expect(headers?.['Content-Security-Policy']?.[0]).toMatch(/default-src 'self'/);
  });

  it('forwards the events of Hearth to the window and disposes Hearth before quitting', async () => {
    await loadMain();
    state.hearth.listeners[0]?.({ type: 'engine.status', payload: { state: 'running', restarts: 0 } });
    expect(state.windows[0]?.sent).toEqual([['hearth:event', { type: 'engine.status', payload: { state: 'running', restarts: 0 } }]]);
    const preventDefault = vi.fn();
    state.appHandlers.get('before-quit')?.({ preventDefault });
    expect(preventDefault).toHaveBeenCalled();
    expect(state.hearth.dispose).toHaveBeenCalled();
  });
});
