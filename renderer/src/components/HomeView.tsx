/**
 * No conversation open: how to start, and whether a model is ready for it. On first run (nothing
 * loaded, no model on disk) the onboarding panel leads: one click downloads a model and chats.
 */
import { useEffect } from 'react';
import { measuringText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectChatList, selectLibrary, selectModel, selectNeedsOnboarding } from '../state/selectors.ts';
import { Onboarding } from './Onboarding.tsx';

export function HomeView() {
  const actions = useActions();
  const model = useHearth(selectModel);
  const chats = useHearth(selectChatList);
  const library = useHearth(selectLibrary);
  const onboarding = useHearth(selectNeedsOnboarding);
  const idle = model.status !== 'ready' && model.status !== 'loading';
  // Whether this is a first run depends on the library: list it once when nothing is loaded.
  useEffect(() => {
    if (idle && library === null) void actions.refreshModels();
  }, [idle, library, actions]);
  return (
    <div className="flex min-h-0 flex-1 justify-center overflow-y-auto px-4">
      <div className={`my-auto py-8 ${onboarding ? 'w-full max-w-2xl' : 'max-w-md'}`}>
        <div className="text-center">
          <h1 className="text-2xl font-semibold">Hearth</h1>
          <p className="mt-2 text-stone-600 dark:text-stone-300">
            {chats.length === 0 ? 'Start your first conversation with New chat' : 'Pick a conversation from the list, or start one with New chat'}{' '}
            <kbd className="rounded border border-stone-300 px-1 text-xs dark:border-stone-600">Ctrl</kbd>+
            <kbd className="rounded border border-stone-300 px-1 text-xs dark:border-stone-600">N</kbd>.
          </p>
          {idle && !onboarding && (
            <p className="mt-4 text-sm">
              No model is loaded yet.{' '}
              <a href="#/models" className="font-medium text-amber-700 underline dark:text-amber-400">
                Choose a model
              </a>
            </p>
          )}
          {model.status === 'loading' && <p className="mt-4 text-sm text-stone-500">{model.measuring ? measuringText(model.measuring) : 'The model is loading…'}</p>}
        </div>
        {onboarding && (
          <div className="mt-6 text-left">
            <Onboarding />
          </div>
        )}
      </div>
    </div>
  );
}
