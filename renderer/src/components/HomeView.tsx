import { useHearth } from '../state/react.tsx';
import { selectChatList, selectModel } from '../state/selectors.ts';

/** No conversation open: say how to start, and whether a model is ready for it. */
export function HomeView() {
  const model = useHearth(selectModel);
  const chats = useHearth(selectChatList);
  return (
    <div className="flex flex-1 items-center justify-center px-4">
      <div className="max-w-md text-center">
        <h1 className="text-2xl font-semibold">Hearth</h1>
        <p className="mt-2 text-stone-600 dark:text-stone-300">
          {chats.length === 0 ? 'Start your first conversation with New chat' : 'Pick a conversation from the list, or start one with New chat'}{' '}
          <kbd className="rounded border border-stone-300 px-1 text-xs dark:border-stone-600">Ctrl</kbd>+
          <kbd className="rounded border border-stone-300 px-1 text-xs dark:border-stone-600">N</kbd>.
        </p>
        {model.status !== 'ready' && model.status !== 'loading' && (
          <p className="mt-4 text-sm">
            No model is loaded yet.{' '}
            <a href="#/models" className="font-medium text-amber-700 underline dark:text-amber-400">
              Choose a model
            </a>
          </p>
        )}
        {model.status === 'loading' && <p className="mt-4 text-sm text-stone-500">The model is loading…</p>}
      </div>
    </div>
  );
}
