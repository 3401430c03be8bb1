import type { HearthError } from '../contract.ts';
import { parseHash, type Route } from '../lib/route.ts';
import type { SliceCreator } from './types.ts';

/** A failed chat action (send, regenerate, edit…), shown above the composer of that chat. */
export interface ChatNotice {
  readonly chatId: string;
  readonly error: HearthError;
}

export interface UiSlice {
  readonly route: Route;
  /** Bumped to ask the composer to take focus (after New chat, Ctrl/Cmd+N). */
  readonly composerFocus: number;
  readonly notice: ChatNotice | null;
  setRoute(route: Route): void;
  requestComposerFocus(): void;
  setNotice(notice: ChatNotice | null): void;
}

export const createUiSlice: SliceCreator<UiSlice> = (set) => ({
  route: typeof location === 'undefined' ? { name: 'home' } : parseHash(location.hash),
  composerFocus: 0,
  notice: null,
  setRoute: (route) => set({ route }),
  requestComposerFocus: () => set((s) => ({ composerFocus: s.composerFocus + 1 })),
  setNotice: (notice) => set({ notice }),
});
