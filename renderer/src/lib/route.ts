/** Hash routes, so that a reload (or the browser's back button) keeps the place. */
import { isHubRepoId } from '../contract.ts';

/** The Models screen's sub-views that need no argument (the library has none: `#/models`). */
export type ModelsTab = 'discover' | 'downloads';

export type Route =
  | { readonly name: 'home' }
  | { readonly name: 'chat'; readonly chatId: string }
  /** The library; `tab` picks Discover or Downloads. */
  | { readonly name: 'models'; readonly tab?: ModelsTab }
  /** A Hugging Face repository's page (`#/models/repo/owner/name`). */
  | { readonly name: 'models'; readonly tab: 'repo'; readonly repo: string }
  /** `section` scrolls to one part of the screen (`#/settings/engines`). */
  | { readonly name: 'settings'; readonly section?: 'engines' }
  /** This computer's cache, or with `engineId` a remote engine's (`#/cache/engine/<id>`). */
  | { readonly name: 'cache'; readonly engineId?: string }
  | { readonly name: 'server' };

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

/** One path segment, decoded; null when it is malformed. */
function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/^\/+/, '').replace(/\/+$/, '');
  if (path === 'models') return { name: 'models' };
  if (path === 'models/discover') return { name: 'models', tab: 'discover' };
  if (path === 'models/downloads') return { name: 'models', tab: 'downloads' };
  if (path === 'settings') return { name: 'settings' };
  if (path === 'settings/engines') return { name: 'settings', section: 'engines' };
  if (path === 'cache') return { name: 'cache' };
  if (path === 'server') return { name: 'server' };
  // Each segment is decoded alone, so an encoded `/` cannot make a third one pass as a repo.
  const repo = /^models\/repo\/([^/]+)\/([^/]+)$/.exec(path);
  if (repo) {
    const owner = decodeSegment(repo[1] ?? '');
    const name = decodeSegment(repo[2] ?? '');
    if (owner !== null && name !== null && !owner.includes('/') && !name.includes('/')) {
      const id = `${owner}/${name}`;
      if (isHubRepoId(id)) return { name: 'models', tab: 'repo', repo: id };
    }
    return { name: 'models', tab: 'discover' };
  }
  const engine = /^cache\/engine\/([^/]+)$/.exec(path);
  if (engine) {
    const id = decodeSegment(engine[1] ?? '');
    return id !== null && idPattern.test(id) ? { name: 'cache', engineId: id } : { name: 'cache' };
  }
  const chat = /^chat\/([^/]+)$/.exec(path);
  if (chat) {
    const id = decodeSegment(chat[1] ?? '');
    if (id !== null && idPattern.test(id)) return { name: 'chat', chatId: id };
  }
  return { name: 'home' };
}

export function routeHash(route: Route): string {
  switch (route.name) {
    case 'chat':
      return `#/chat/${encodeURIComponent(route.chatId)}`;
    case 'models':
      if (route.tab === 'repo') return `#/models/repo/${route.repo.split('/').map(encodeURIComponent).join('/')}`;
      return route.tab ? `#/models/${route.tab}` : '#/models';
    case 'settings':
      return route.section ? `#/settings/${route.section}` : '#/settings';
    case 'cache':
      return route.engineId === undefined ? '#/cache' : `#/cache/engine/${encodeURIComponent(route.engineId)}`;
    case 'server':
      return '#/server';
    case 'home':
      return '#/';
  }
}

export function sameRoute(a: Route, b: Route): boolean {
  return routeHash(a) === routeHash(b);
}
