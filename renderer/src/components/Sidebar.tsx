import { useState, type ReactNode } from 'react';
import type { ChatSummary, HearthError } from '../contract.ts';
import { loadProgressText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectActiveDownloadCount, selectChatList, selectChatListLoaded, selectModel, selectRoute } from '../state/selectors.ts';
import { ChatSearch } from './ChatSearch.tsx';
import { PencilIcon, PlusIcon, TrashIcon } from './icons.tsx';
import { buttonStyles, Dialog, ErrorBox } from './ui.tsx';

export function Sidebar() {
  const actions = useActions();
  const [error, setError] = useState<HearthError | null>(null);
  const newChat = async () => {
    const result = await actions.newChat();
    setError(result.ok ? null : result.error);
  };
  return (
    <aside className="flex w-64 shrink-0 flex-col border-r border-stone-200 bg-stone-100 dark:border-stone-800 dark:bg-stone-900">
      <div className="flex items-center justify-between gap-2 px-3 pt-3 pb-2">
        <span className="text-base font-semibold tracking-tight">Hearth</span>
        <button type="button" data-new-chat onClick={() => void newChat()} className={buttonStyles.primary} title="New chat (Ctrl+N)">
          <PlusIcon />
          New chat
        </button>
      </div>
      {error && (
        <div className="px-3 pb-2">
          <ErrorBox error={error} />
        </div>
      )}
      <ChatSearch>
        <ChatList />
      </ChatSearch>
      <AppNav />
    </aside>
  );
}

function ChatList() {
  const chats = useHearth(selectChatList);
  const loaded = useHearth(selectChatListLoaded);
  return (
    <nav aria-label="Conversations" className="min-h-0 flex-1 overflow-y-auto px-2 py-1">
      {chats.length === 0 ? (
        <p className="px-2 py-4 text-sm text-stone-500 dark:text-stone-400">{loaded ? 'No conversations yet.' : 'Loading…'}</p>
      ) : (
        <ul className="space-y-0.5">
          {chats.map((chat) => (
            <ChatListItem key={chat.id} chat={chat} />
          ))}
        </ul>
      )}
    </nav>
  );
}

function ChatListItem({ chat }: { chat: ChatSummary }) {
  const actions = useActions();
  const route = useHearth(selectRoute);
  const current = route.name === 'chat' && route.chatId === chat.id;
  const [renaming, setRenaming] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);

  const rowClass = current
    ? 'bg-stone-300/70 text-stone-950 dark:bg-stone-700 dark:text-white'
    : 'text-stone-700 hover:bg-stone-200 dark:text-stone-300 dark:hover:bg-stone-800';

  return (
    <li className={`group flex items-center rounded-md ${rowClass}`}>
      {renaming ? (
        <RenameInput
          initial={chat.title}
          onDone={async (title) => {
            if (title !== null && title !== chat.title) {
              const result = await actions.rename(chat.id, title);
              setError(result.ok ? null : result.error);
            }
            setRenaming(false);
          }}
        />
      ) : (
        <a
          href={`#/chat/${encodeURIComponent(chat.id)}`}
          aria-current={current ? 'page' : undefined}
          onDoubleClick={(e) => {
            e.preventDefault();
            setRenaming(true);
          }}
          className="min-w-0 flex-1 truncate rounded-md px-2 py-1.5 text-sm"
        >
          {chat.title}
        </a>
      )}
      {!renaming && (
        <span className="flex shrink-0 opacity-0 group-focus-within:opacity-100 group-hover:opacity-100">
          <button type="button" aria-label={`Rename ${chat.title}`} title="Rename" onClick={() => setRenaming(true)} className={buttonStyles.ghost}>
            <PencilIcon className="size-3.5" />
          </button>
          <button type="button" aria-label={`Delete ${chat.title}`} title="Delete" onClick={() => setConfirming(true)} className={buttonStyles.ghost}>
            <TrashIcon className="size-3.5" />
          </button>
        </span>
      )}
      <Dialog open={confirming} onClose={() => setConfirming(false)} title="Delete this conversation?">
        <p className="mb-4 text-sm">
          “{chat.title}” and all its messages will be deleted. This cannot be undone.
        </p>
        {error && <ErrorBox error={error} />}
        <div className="mt-4 flex justify-end gap-2">
          <button type="button" className={buttonStyles.secondary} onClick={() => setConfirming(false)}>
            Cancel
          </button>
          <button
            type="button"
            className={buttonStyles.danger}
            onClick={async () => {
              const result = await actions.remove(chat.id);
              if (result.ok) setConfirming(false);
              else setError(result.error);
            }}
          >
            Delete
          </button>
        </div>
      </Dialog>
      {error && !confirming && <span className="sr-only" role="status">{error.message}</span>}
    </li>
  );
}

/** Inline title editor: Enter or leaving the field saves, Esc cancels. */
function RenameInput(props: { initial: string; onDone: (title: string | null) => void }) {
  const [value, setValue] = useState(props.initial);
  const [done, setDone] = useState(false);
  const finish = (title: string | null) => {
    if (done) return;
    setDone(true);
    props.onDone(title === null || title.trim() === '' ? null : title.trim());
  };
  return (
    <input
      aria-label="Chat title"
      autoFocus
      value={value}
      maxLength={200}
      onChange={(e) => setValue(e.target.value)}
      onFocus={(e) => e.target.select()}
      onBlur={() => finish(value)}
      onKeyDown={(e) => {
        if (e.key === 'Enter' && !e.nativeEvent.isComposing) {
          e.preventDefault();
          finish(value);
        } else if (e.key === 'Escape') {
          e.preventDefault();
          finish(null);
        }
      }}
      className="m-0.5 min-w-0 flex-1 rounded border border-amber-500 bg-white px-1.5 py-1 text-sm text-stone-900 dark:bg-stone-950 dark:text-stone-100"
    />
  );
}

function AppNav() {
  const route = useHearth(selectRoute);
  const model = useHearth(selectModel);
  const downloads = useHearth(selectActiveDownloadCount);
  const link = (href: string, name: 'models' | 'cache' | 'server' | 'settings', label: string, badge?: ReactNode) => (
    <a
      href={href}
      aria-current={route.name === name ? 'page' : undefined}
      className="flex items-center justify-between rounded-md px-2 py-1.5 text-sm text-stone-700 hover:bg-stone-200 aria-[current=page]:bg-stone-300/70 dark:text-stone-300 dark:hover:bg-stone-800 dark:aria-[current=page]:bg-stone-700"
    >
      {label}
      {badge}
    </a>
  );
  // Outside the link's name ("Models" stays "Models"), read as its description.
  const downloadBadge =
    downloads > 0 ? (
      <span data-testid="downloads-badge" title={`${downloads} ${downloads === 1 ? 'download' : 'downloads'} running`} className="rounded-full bg-amber-600 px-1.5 text-xs text-white tabular-nums dark:bg-amber-500 dark:text-stone-950">
        <span aria-hidden="true">{downloads}</span>
        <span className="sr-only">, {downloads} {downloads === 1 ? 'download' : 'downloads'} running</span>
      </span>
    ) : undefined;
  const status =
    model.status === 'ready'
      ? `Model: ${model.model?.name ?? 'ready'}`
      : model.status === 'loading'
        ? model.measuring
          ? loadProgressText(model)
          : `Model loading ${loadProgressText(model)}`
        : model.status === 'error'
          ? 'Model error'
          : // Remote chats still run: this line is about this computer's engine only.
            'No local model';
  return (
    <div className="border-t border-stone-200 px-2 py-2 dark:border-stone-800">
      <nav aria-label="App" className="flex flex-col">
        {link('#/models', 'models', 'Models', downloadBadge)}
        {link('#/cache', 'cache', 'Cache')}
        {link('#/server', 'server', 'Server')}
        {link('#/settings', 'settings', 'Settings')}
      </nav>
      <p className="truncate px-2 pt-1 text-xs text-stone-500 dark:text-stone-400" title={status}>
        <span
          aria-hidden="true"
          className={`mr-1.5 inline-block size-2 rounded-full ${
            model.status === 'ready' ? 'bg-green-500' : model.status === 'loading' ? 'bg-amber-500' : model.status === 'error' ? 'bg-red-500' : 'bg-stone-400'
          }`}
        />
        {status}
      </p>
    </div>
  );
}
