import { createBrowserTransport } from './browser.ts';
import { createElectronTransport } from './electron.ts';
import type { Transport } from './types.ts';

export type { ConnectionState, Transport } from './types.ts';

/** Electron when the preload's bridge is there, the browser host otherwise. */
export function createTransport(): Transport {
  if (window.hearth) return createElectronTransport(window.hearth);
  return createBrowserTransport({ origin: window.location.origin });
}

/**
 * The browser host's address carries `?token=`; the host has set its cookie by the time the
 * page runs, so the token is removed from the address bar (and from history and bookmarks).
 */
export function stripTokenFromAddress(): void {
  const url = new URL(window.location.href);
  if (!url.searchParams.has('token')) return;
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
}
