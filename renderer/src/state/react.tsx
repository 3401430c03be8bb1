import { createContext, useContext, type ReactNode } from 'react';
import { useStore } from 'zustand';
import { useShallow } from 'zustand/react/shallow';
import type { Actions } from './actions.ts';
import type { HearthState, HearthStore } from './store.ts';

interface HearthContextValue {
  readonly store: HearthStore;
  readonly actions: Actions;
}

const HearthContext = createContext<HearthContextValue | null>(null);

export function HearthProvider(props: { store: HearthStore; actions: Actions; children: ReactNode }) {
  return <HearthContext value={{ store: props.store, actions: props.actions }}>{props.children}</HearthContext>;
}

function useHearthContext(): HearthContextValue {
  const value = useContext(HearthContext);
  if (!value) throw new Error('Hearth components must be rendered inside <HearthProvider>.');
  return value;
}

/** Reads the store through a selector; re-renders only when the selected value changes. */
export function useHearth<T>(selector: (s: HearthState) => T): T {
  return useStore(useHearthContext().store, selector);
}

/** For selectors that derive a new array or object each time (compared shallowly). */
export function useHearthShallow<T>(selector: (s: HearthState) => T): T {
  return useStore(useHearthContext().store, useShallow(selector));
}

/** The store's own setters (for pure UI state such as dismissing a banner). */
export function useStoreActions(): HearthState {
  return useHearthContext().store.getState();
}

export function useActions(): Actions {
  return useHearthContext().actions;
}
