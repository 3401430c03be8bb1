/**
 * The security decisions of the Electron shell, as pure functions so they are unit-tested
 * without Electron (docs/decisions/testing-without-electron.md).
 */

/**
 * The Content-Security-Policy for the app's pages. The renderer also carries it as a meta tag;
 * main adds it as a response header so that it holds whatever the page says.
 */
export const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The page may only ever be the app itself: any navigation elsewhere is refused. */
export function isAppUrl(url: string, appUrl: string): boolean {
  try {
    const u = new URL(url);
    const app = new URL(appUrl);
    if (app.protocol === 'file:') return u.protocol === 'file:' && u.pathname === app.pathname;
    return u.origin === app.origin;
  } catch {
    return false;
  }
}

/**
 * The request filter of the app's session (no remote content): a request may only load the
 * app's own files (file: URLs inside the renderer's directory, or, in development, the dev
 * server's origin and its WebSocket) or in-memory data (data:, blob:). Everything else (a
 * remote image, script, font, frame or fetch, another local file) is cancelled before it starts,
 * whatever the page or the CSP says. Model downloads run in the engine process, not here.
 */
export function isAllowedRequest(url: string, appUrl: string): boolean {
  let u: URL;
  let app: URL;
  try {
    u = new URL(url);
    app = new URL(appUrl);
  } catch {
    return false;
  }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'devtools:') return true;
  if (app.protocol === 'file:') {
    if (u.protocol !== 'file:' || u.host !== app.host) return false;
    // URL parsing already resolved `..` (and `%2e%2e`); an encoded separator could still smuggle one.
    if (/%2f|%5c/i.test(u.pathname)) return false;
    const dir = app.pathname.slice(0, app.pathname.lastIndexOf('/') + 1);
    return u.pathname.startsWith(dir);
  }
  if (u.origin === app.origin) return true;
  // The dev server's hot-reload socket.
  const wsProtocol = app.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.protocol === wsProtocol && u.host === app.host;
}

/** The only downloads the app starts are its own exports (a Blob the page made): nothing else is saved. */
export function isAllowedDownload(url: string): boolean {
  try {
    return new URL(url).protocol === 'blob:';
  } catch {
    return false;
  }
}

/**
 * Links in model output open in the user's browser, never inside the app, and only when they
 * are plain web or mail links (no `file:`, `javascript:`, custom protocol handlers…).
 */
export function externalLink(url: string): string | null {
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:' && u.protocol !== 'mailto:') return null;
    if (u.username || u.password) return null;
    return u.toString();
  } catch {
    return null;
  }
}

/** The window's webPreferences: every Electron hardening switch on (README.md, Security checklist). */
export function secureWebPreferences(preloadPath: string) {
  return {
    preload: preloadPath,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    experimentalFeatures: false,
    spellcheck: true,
  } as const;
}
