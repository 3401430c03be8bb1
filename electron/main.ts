/**
 * Electron's main process: thin on purpose. It makes the window safe, starts Hearth
 * (engine/index.ts, which supervises the engine process), and relays calls and events. Logic
 * that can be tested without Electron lives beside it (policy.ts, ipc.ts, window-state.ts,
 * menu.ts).
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, safeStorage, screen, session, shell } from 'electron';
import { join } from 'node:path';
import { createHearth, HearthStartError, type Hearth, type HearthEvent } from '../engine/index.ts';
import { utilityProcessSpawner } from './engine-process.ts';
import { createCallHandler } from './ipc.ts';
import { menuTemplate } from './menu.ts';
import { safeStorageSecrets } from './secrets.ts';
import { contentSecurityPolicy, externalLink, isAllowedDownload, isAllowedRequest, isAppUrl, secureWebPreferences } from './policy.ts';
import { defaultSize, fitToDisplays, loadWindowState, minSize, saveWindowState } from './window-state.ts';
import { errorText } from '../engine/contract/index.ts';

const here = import.meta.dirname;
const rendererUrl = process.env['ELECTRON_RENDERER_URL'];
const appUrl = rendererUrl ?? new URL(`file://${join(here, '../renderer/index.html')}`).toString();

let hearth: Hearth | null = null;
let win: BrowserWindow | null = null;

if (!app.requestSingleInstanceLock()) {
  // Two instances would fight over one SQLite file and one engine: hand over to the first.
  app.quit();
} else {
  app.enableSandbox();
  app.on('second-instance', () => {
    if (!win) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('web-contents-created', (_e, contents) => {
    contents.on('will-navigate', (event, url) => {
      if (!isAppUrl(url, appUrl)) event.preventDefault();
    });
    contents.on('will-frame-navigate', (event) => {
      if (!isAppUrl(event.url, appUrl)) event.preventDefault();
    });
    contents.on('will-redirect', (event, url) => {
      if (!isAppUrl(url, appUrl)) event.preventDefault();
    });
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      const link = externalLink(url);
      if (link) void shell.openExternal(link);
      return { action: 'deny' };
    });
  });
  app.whenReady().then(start, (e: unknown) => {
    dialog.showErrorBox('Hearth could not start', String(e));
    app.exit(1);
  });
  app.on('window-all-closed', () => app.quit());
  app.on('before-quit', (event) => {
    if (!hearth) return;
    // Let Hearth finish its writes (partial replies, settings) before the process ends.
    event.preventDefault();
    const closing = hearth;
    hearth = null;
    void closing.dispose().finally(() => app.quit());
  });
}

async function start(): Promise<void> {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  // No remote content: every request that is not the app's own file (or in-memory data) is cancelled.
  session.defaultSession.webRequest.onBeforeRequest((details, callback) => {
    callback({ cancel: !isAllowedRequest(details.url, appUrl) });
  });
  // Only the page's own exports (Blob URLs) may be saved; Electron then asks where, with a save dialog.
  session.defaultSession.on('will-download', (event, item) => {
    if (!isAllowedDownload(item.getURL())) event.preventDefault();
  });
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [contentSecurityPolicy] } });
  });

  try {
    hearth = await createHearth({
      dataDir: app.getPath('userData'),
      host: 'electron',
      version: app.getVersion(),
      spawnEngine: utilityProcessSpawner(join(here, 'engine-worker.js')),
      secrets: safeStorageSecrets(join(app.getPath('userData'), 'secrets'), safeStorage, (message) => console.warn(`hearth: ${message}`)),
    });
  } catch (e) {
    // A HearthStartError (unwritable data directory, damaged database) carries a hint.
    const hint = e instanceof HearthStartError ? `\n\n${e.hint}` : '';
    dialog.showErrorBox('Hearth could not start', `${errorText(e)}${hint}`);
    app.exit(1);
    return;
  }
  const started = hearth; // a const, so the closures below need no null check

  const handle = createCallHandler({
    call: (name, payload) => started.call(name, payload),
    isTrustedSender: (url) => isAppUrl(url, appUrl),
    showInFolder: (file) => shell.showItemInFolder(file),
    pickModelFile: async () => {
      const options = { title: 'Open a GGUF model', properties: ['openFile' as const], filters: [{ name: 'GGUF models', extensions: ['gguf'] }] };
      const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
  });
  ipcMain.handle('hearth:call', (event, name: unknown, payload: unknown) => handle(event.senderFrame?.url ?? '', name, payload));
  started.onEvent((event) => send(event));

  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate(process.platform, app.getName(), {
        newChat: () => send({ type: 'app.command', payload: { command: 'newChat' } }),
        openSettings: () => send({ type: 'app.command', payload: { command: 'openSettings' } }),
        openModels: () => send({ type: 'app.command', payload: { command: 'openModels' } }),
      }),
    ),
  );
  createWindow();
}

function send(event: HearthEvent): void {
  if (win && !win.isDestroyed()) win.webContents.send('hearth:event', event);
}

function createWindow(): void {
  const stateFile = join(app.getPath('userData'), 'window-state.json');
  const saved = loadWindowState(stateFile);
  const bounds = saved ? fitToDisplays(saved.bounds, screen.getAllDisplays().map((d) => d.workArea)) : null;
  win = new BrowserWindow({
    ...(bounds ?? defaultSize),
    minWidth: minSize.width,
    minHeight: minSize.height,
    show: false,
    title: 'Hearth',
    backgroundColor: '#1c1917',
    webPreferences: secureWebPreferences(join(here, '../preload/preload.cjs')),
  });
  if (saved?.maximized) win.maximize();
  win.once('ready-to-show', () => win?.show());
  const remember = () => {
    if (!win || win.isDestroyed()) return;
    saveWindowState(stateFile, { bounds: win.getNormalBounds(), maximized: win.isMaximized() });
  };
  win.on('close', remember);
  win.on('closed', () => {
    win = null;
  });
  if (rendererUrl) void win.loadURL(rendererUrl);
  else void win.loadFile(join(here, '../renderer/index.html'));
}
