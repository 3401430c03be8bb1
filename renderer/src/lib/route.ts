/** Hash routes, so that a reload (or the browser's back button) keeps the place. */
export type Route =
  | { readonly name: 'home' }
  | { readonly name: 'chat'; readonly chatId: string }
  | { readonly name: 'models' }
  | { readonly name: 'settings' }
  | { readonly name: 'cache' }
  | { readonly name: 'server' };

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/^\/+/, '').replace(/\/+$/, '');
  if (path === 'models') return { name: 'models' };
  if (path === 'settings') return { name: 'settings' };
  if (path === 'cache') return { name: 'cache' };
  if (path === 'server') return { name: 'server' };
  const chat = /^chat\/([^/]+)$/.exec(path);
  if (chat) {
    let id: string;
    try {
      id = decodeURIComponent(chat[1] ?? '');
    } catch {
      return { name: 'home' };
    }
    if (idPattern.test(id)) return { name: 'chat', chatId: id };
  }
  return { name: 'home' };
}

export function routeHash(route: Route): string {
  switch (route.name) {
    case 'chat':
      return `#/chat/${encodeURIComponent(route.chatId)}`;
    case 'models':
      return '#/models';
    case 'settings':
      return '#/settings';
    case 'cache':
      return '#/cache';
    case 'server':
      return '#/server';
    case 'home':
      return '#/';
  }
}

export function sameRoute(a: Route, b: Route): boolean {
  return routeHash(a) === routeHash(b);
}
