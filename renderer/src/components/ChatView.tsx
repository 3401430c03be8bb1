import { Fragment, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { dividerText } from '../lib/context-view.ts';
import { useActions, useHearth, useHearthShallow } from '../state/react.tsx';
import { selectActivePathIds, selectChatLoad, selectChatTitle, selectDividerAbove } from '../state/selectors.ts';
import { ChatCacheBadge } from './ChatCacheBadge.tsx';
import { ChatEnginePicker } from './ChatEnginePicker.tsx';
import { ChatSettingsDialog } from './ChatSettingsDialog.tsx';
import { ContextMeter } from './ContextMeter.tsx';
import { Composer } from './Composer.tsx';
import { ExportChat } from './ExportChat.tsx';
import { SlidersIcon } from './icons.tsx';
import { MessageItem } from './MessageItem.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

export function ChatView({ chatId }: { chatId: string }) {
  const actions = useActions();
  const load = useHearth(selectChatLoad(chatId));
  const title = useHearth(selectChatTitle(chatId));
  const remote = useHearth((s) => (s.chats[chatId]?.engine ?? null) !== null);
  const [settingsOpen, setSettingsOpen] = useState(false);

  useEffect(() => {
    if (load === undefined) void actions.openChat(chatId);
  }, [actions, chatId, load]);

  if (typeof load === 'object') {
    return (
      <div className="mx-auto mt-16 max-w-md px-4">
        <ErrorBox
          error={load.error}
          title={load.error.code === 'NOT_FOUND' ? 'This conversation does not exist (it may have been deleted).' : 'The conversation could not be opened.'}
        >
          <a href="#/" className="mt-2 inline-block underline">
            Back to the start
          </a>
        </ErrorBox>
      </div>
    );
  }
  if (load !== 'loaded') return <p className="mt-16 text-center text-sm text-stone-500">Loading conversation…</p>;

  return (
    <section aria-labelledby="chat-title" className="flex min-h-0 flex-1 flex-col">
      <header className="flex items-center gap-3 border-b border-stone-200 px-4 py-2 dark:border-stone-800">
        <h1 id="chat-title" className="min-w-0 flex-1 truncate text-base font-semibold">
          {title ?? 'Conversation'}
        </h1>
        <ChatEnginePicker chatId={chatId} />
        <ContextMeter chatId={chatId} />
        {/* This computer's cache: a remote chat's is the server's (the Cache view shows it). */}
        {remote ? null : <ChatCacheBadge chatId={chatId} />}
        <ExportChat chatId={chatId} />
        <button type="button" className={buttonStyles.ghost} onClick={() => setSettingsOpen(true)}>
          <SlidersIcon />
          Chat settings
        </button>
      </header>
      <MessageList chatId={chatId} />
      <Composer chatId={chatId} />
      <ChatSettingsDialog chatId={chatId} open={settingsOpen} onClose={() => setSettingsOpen(false)} />
    </section>
  );
}

/** Pixels from the bottom within which the view keeps following new text. */
const followSlack = 48;

function MessageList({ chatId }: { chatId: string }) {
  const ids = useHearthShallow(selectActivePathIds(chatId));
  const dividerId = useHearth(selectDividerAbove(chatId));
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  // Follow the stream unless the user scrolled up to read; a ref, because scrolling must not re-render.
  const follow = useRef(true);
  const count = useRef(0);

  // A new message (sent or branched to) brings the view back to the bottom.
  useLayoutEffect(() => {
    if (ids.length !== count.current) follow.current = true;
    count.current = ids.length;
    const el = scroller.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [ids]);

  // Streaming text grows the content without a render here: watch its size instead.
  useEffect(() => {
    const el = scroller.current;
    const inner = content.current;
    if (!el || !inner || typeof ResizeObserver === 'undefined') return;
    const observer = new ResizeObserver(() => {
      if (follow.current) el.scrollTop = el.scrollHeight;
    });
    observer.observe(inner);
    return () => observer.disconnect();
  }, []);

  return (
    <div
      ref={scroller}
      className="min-h-0 flex-1 overflow-y-auto"
      onScroll={(e) => {
        const el = e.currentTarget;
        follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < followSlack;
      }}
    >
      <div ref={content} className="mx-auto max-w-3xl space-y-5 px-4 py-6">
        {ids.length === 0 ? (
          <div className="mt-16 text-center text-stone-500 dark:text-stone-400">
            <p className="text-lg">Start the conversation</p>
            <p className="mt-1 text-sm">Type a message below. Enter sends, Shift+Enter adds a new line.</p>
          </div>
        ) : (
          ids.map((id) => (
            <Fragment key={id}>
              {id === dividerId && <ContextDivider />}
              <MessageItem chatId={chatId} messageId={id} />
            </Fragment>
          ))
        )}
      </div>
    </div>
  );
}

/** Where the model's view begins: the messages above stay in the chat, but the model no longer reads them. */
export function ContextDivider() {
  return (
    <div role="separator" aria-label={dividerText} data-testid="context-divider" className="flex items-center gap-3 text-xs text-stone-500 dark:text-stone-400">
      <span aria-hidden="true" className="h-px flex-1 bg-stone-300 dark:bg-stone-700" />
      <span>{dividerText}</span>
      <span aria-hidden="true" className="h-px flex-1 bg-stone-300 dark:bg-stone-700" />
    </div>
  );
}
