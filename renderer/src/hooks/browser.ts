/** What binds the store to the browser: the address hash, the theme, global shortcuts. */
import { useEffect } from 'react';
import type { Theme } from '../contract.ts';
import { parseHash, routeHash, type Route } from '../lib/route.ts';
import type { Actions } from '../state/actions.ts';
import type { HearthStore } from '../state/store.ts';
import { selectRoute, selectStreamingId } from '../state/selectors.ts';

/** Navigation is the address hash: reloads and the back button keep the place. */
export function navigateTo(route: Route): void {
  const hash = routeHash(route);
  if (window.location.hash !== hash) window.location.hash = hash;
}

export function bindHashRoute(store: HearthStore): () => void {
  const sync = () => store.getState().setRoute(parseHash(window.location.hash));
  sync();
  window.addEventListener('hashchange', sync);
  return () => window.removeEventListener('hashchange', sync);
}

const themeKey = 'hearth.theme';

/** Sets the `dark` class on <html> (tailwind's `dark:` variant), following the OS for 'system'. */
export function applyTheme(theme: Theme): () => void {
  const media = window.matchMedia('(prefers-color-scheme: dark)');
  const apply = () => document.documentElement.classList.toggle('dark', theme === 'dark' || (theme === 'system' && media.matches));
  apply();
  try {
    // Remembered so the next start paints in the right theme before the host answers.
    localStorage.setItem(themeKey, theme);
  } catch {
    // Storage may be unavailable (privacy modes); the theme still applies.
  }
  if (theme !== 'system') return () => {};
  media.addEventListener('change', apply);
  return () => media.removeEventListener('change', apply);
}

export function rememberedTheme(): Theme {
  try {
    const value = localStorage.getItem(themeKey);
    if (value === 'light' || value === 'dark' || value === 'system') return value;
  } catch {
    // See applyTheme.
  }
  return 'system';
}

export function useTheme(theme: Theme): void {
  useEffect(() => applyTheme(theme), [theme]);
}

/** Ctrl/Cmd+K: focus the chat search field, else the current chat's link, else the first, else New chat. */
export function focusChatList(): void {
  // The search field heads the list: typing there is what Ctrl/Cmd+K is for.
  const search = document.getElementById('chat-search');
  if (search instanceof HTMLInputElement) {
    search.focus();
    search.select();
    return;
  }
  const nav = document.querySelector('nav[aria-label="Conversations"]');
  const target =
    nav?.querySelector<HTMLElement>('a[aria-current="page"]') ??
    nav?.querySelector<HTMLElement>('a') ??
    document.querySelector<HTMLElement>('[data-new-chat]');
  target?.focus();
}

/**
 * Ctrl/Cmd+N: new chat. In Electron the app menu owns that accelerator and sends `app.command`,
 * so `newChatKey` is off there and one key press never makes two chats.
 * Ctrl/Cmd+K: focus the chat list.
 * Esc: stop the reply in progress, unless something else (an open dialog, an inline editor)
 * handled Esc first.
 */
export function bindShortcuts(store: HearthStore, actions: Actions, options: { newChatKey: boolean }): () => void {
  const onKeyDown = (event: KeyboardEvent) => {
    const mod = event.ctrlKey || event.metaKey;
    const plain = !event.shiftKey && !event.altKey;
    if (options.newChatKey && mod && plain && event.key.toLowerCase() === 'n') {
      event.preventDefault();
      void actions.newChat();
      return;
    }
    if (mod && plain && event.key.toLowerCase() === 'k') {
      event.preventDefault();
      focusChatList();
      return;
    }
    if (event.key === 'Escape' && !event.defaultPrevented && !event.isComposing) {
      if (document.querySelector('dialog[open]')) return;
      const state = store.getState();
      const route = selectRoute(state);
      if (route.name !== 'chat' || selectStreamingId(route.chatId)(state) === null) return;
      event.preventDefault();
      void actions.stop(route.chatId);
    }
  };
  window.addEventListener('keydown', onKeyDown);
  return () => window.removeEventListener('keydown', onKeyDown);
}
