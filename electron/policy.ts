/**
 * The security decisions of the Electron shell, as pure functions so they are unit-tested
 * without Electron (facts.md: no Electron binary can run here).
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

/** The window's webPreferences: every Electron hardening switch on (issue 2, "Electron"). */
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
