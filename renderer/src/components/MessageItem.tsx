import { memo, useState } from 'react';
import type { Message, MessageStats } from '../contract.ts';
import { statsRows } from '../lib/cache.ts';
import { isContextOverflow } from '../lib/context-view.ts';
import { formatStats, movedText } from '../lib/format.ts';
import { useActions, useHearth, useHearthShallow } from '../state/react.tsx';
import { selectBranchInfo, selectMessage, selectStreamingId } from '../state/selectors.ts';
import { ContinueOffer, StopAndAsk } from './ContextActions.tsx';
import { ChevronLeftIcon, ChevronRightIcon } from './icons.tsx';
import { MarkdownText, StreamingMarkdown } from './Markdown.tsx';
import { buttonStyles, CopyButton, ErrorBox, inputStyles } from './ui.tsx';

/** One message of the branch on screen. Re-renders only when this message (or its siblings) change. */
export const MessageItem = memo(function MessageItem({ chatId, messageId }: { chatId: string; messageId: string }) {
  const message = useHearth(selectMessage(chatId, messageId));
  // Continuing a reply works on this computer's engine only (the host refuses it elsewhere), so a
  // chat on a remote engine is not offered a button that can only fail.
  const remote = useHearth((s) => (s.chats[chatId]?.engine ?? null) !== null);
  const [editing, setEditing] = useState(false);
  if (!message) return null;
  const user = message.role === 'user';
  return (
    // The article's text is the message and its status only (no role label, no "typing" text):
    // what a reader or a test reads from it is what was said.
    <article
      aria-label={user ? 'User message' : 'Assistant message'}
      aria-busy={message.status === 'streaming' || undefined}
      data-message-id={messageId}
      className={user ? 'ml-auto max-w-[85%] rounded-lg bg-amber-50 px-4 py-3 dark:bg-stone-800' : 'px-1 py-1'}
    >
      {editing ? (
        <EditBox chatId={chatId} message={message} onDone={() => setEditing(false)} />
      ) : user ? (
        <p className="break-words whitespace-pre-wrap">{message.content}</p>
      ) : (
        <AssistantBody message={message} />
      )}
      <MessageStatus chatId={chatId} message={message} />
      {!user && message.stats && <StatsReadout stats={message.stats} />}
      {!user && !editing && !remote && <ContinueOffer chatId={chatId} message={message} />}
      {!editing && <MessageActions chatId={chatId} message={message} onEdit={() => setEditing(true)} />}
    </article>
  );
});

/** The one-line readout (kept as the summary: tests and users know it), expanding to every figure. */
export function StatsReadout({ stats }: { stats: MessageStats }) {
  const moved = movedText(stats);
  return (
    <>
      {moved && (
        <p data-testid="reply-moved" className="mt-1 text-[11px] text-amber-800 dark:text-amber-300">
          {moved}
        </p>
      )}
      <StatsDetails stats={stats} />
    </>
  );
}

function StatsDetails({ stats }: { stats: MessageStats }) {
  return (
    <details data-testid="reply-readout" className="mt-1 text-[11px] text-stone-500 dark:text-stone-400">
      <summary className="cursor-pointer hover:text-stone-700 dark:hover:text-stone-200">
        {formatStats(stats)}
      </summary>
      <dl className="mt-1 grid w-fit grid-cols-[auto_auto] gap-x-4 gap-y-0.5 rounded-md border border-stone-200 px-2 py-1.5 dark:border-stone-700">
        {statsRows(stats).map(([label, value]) => (
          <div key={label} className="contents">
            <dt>{label}</dt>
            <dd className="tabular-nums text-stone-700 dark:text-stone-200">{value}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}

function AssistantBody({ message }: { message: Message }) {
  if (message.status === 'streaming') return message.content === '' ? null : <StreamingMarkdown text={message.content} />;
  return message.content === '' ? null : <MarkdownText text={message.content} />;
}

/** Drawn, not written: the article's text stays the message's text (the article is aria-busy meanwhile). */
function TypingDots() {
  return (
    <span aria-hidden="true" className="mt-2 flex gap-1">
      <span className="size-1.5 animate-bounce rounded-full bg-stone-400" />
      <span className="size-1.5 animate-bounce rounded-full bg-stone-400 [animation-delay:150ms]" />
      <span className="size-1.5 animate-bounce rounded-full bg-stone-400 [animation-delay:300ms]" />
    </span>
  );
}

const badge = 'inline-block rounded px-1.5 py-0.5 text-xs font-semibold';

function MessageStatus({ chatId, message }: { chatId: string; message: Message }) {
  switch (message.status) {
    case 'streaming':
      return <TypingDots />;
    case 'stopped':
      return (
        <p className="mt-1">
          <span className={`${badge} bg-stone-200 text-stone-700 dark:bg-stone-700 dark:text-stone-200`}>Stopped</span>
        </p>
      );
    case 'incomplete':
      return (
        <p className="mt-1 text-xs text-amber-800 dark:text-amber-300">
          <span className={`${badge} bg-amber-200 text-amber-900 dark:bg-amber-900 dark:text-amber-100`}>Incomplete</span> —{' '}
          {/* Why, when the host knows (a remote engine's cut connection names the engine); the text so far is kept either way. */}
          {message.error?.message ?? 'interrupted: the engine stopped before the reply finished.'}
        </p>
      );
    case 'error':
      return message.error ? (
        <div className="mt-2">
          <ErrorBox error={message.error}>{isContextOverflow(message) && <StopAndAsk chatId={chatId} messageId={message.id} />}</ErrorBox>
        </div>
      ) : (
        <p className="mt-1 text-xs text-red-700">The reply failed.</p>
      );
    case 'complete':
      return null;
  }
}

function MessageActions({ chatId, message, onEdit }: { chatId: string; message: Message; onEdit: () => void }) {
  const actions = useActions();
  const branch = useHearthShallow(selectBranchInfo(chatId, message.id));
  const busy = useHearth(selectStreamingId(chatId)) !== null;
  return (
    <div className="mt-1.5 flex flex-wrap items-center gap-1 text-xs">
      {branch.count > 1 && (
        <span className="flex items-center text-stone-600 dark:text-stone-300">
          <button
            type="button"
            aria-label="Previous branch"
            disabled={branch.previousId === null}
            onClick={() => branch.previousId && void actions.switchBranch(chatId, branch.previousId)}
            className={buttonStyles.ghost}
          >
            <ChevronLeftIcon className="size-3.5" />
          </button>
          <span className="tabular-nums">
            {branch.position} / {branch.count}
          </span>
          <button
            type="button"
            aria-label="Next branch"
            disabled={branch.nextId === null}
            onClick={() => branch.nextId && void actions.switchBranch(chatId, branch.nextId)}
            className={buttonStyles.ghost}
          >
            <ChevronRightIcon className="size-3.5" />
          </button>
        </span>
      )}
      {message.role === 'assistant' ? (
        <button type="button" disabled={busy} onClick={() => void actions.regenerate(chatId, message.id)} className={buttonStyles.ghost}>
          Regenerate
        </button>
      ) : (
        <button type="button" disabled={busy} onClick={onEdit} className={buttonStyles.ghost}>
          Edit
        </button>
      )}
      {message.content !== '' && <CopyButton text={message.content} />}
    </div>
  );
}

/** Editing a user message makes a new branch beside it (chats.edit); the old one stays. */
function EditBox({ chatId, message, onDone }: { chatId: string; message: Message; onDone: () => void }) {
  const actions = useActions();
  const [text, setText] = useState(message.content);
  const [saving, setSaving] = useState(false);
  const save = async () => {
    if (text.trim() === '' || saving) return;
    setSaving(true);
    const result = await actions.edit(chatId, message.id, text);
    setSaving(false);
    if (result.ok) onDone();
  };
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <textarea
        aria-label="Edit message"
        autoFocus
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.preventDefault();
            onDone();
          } else if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            void save();
          }
        }}
        rows={Math.min(10, Math.max(2, text.split('\n').length))}
        className={inputStyles}
      />
      <div className="mt-2 flex justify-end gap-2">
        <button type="button" onClick={onDone} className={buttonStyles.secondary}>
          Cancel
        </button>
        <button type="submit" disabled={text.trim() === '' || saving} className={buttonStyles.primary}>
          Save
        </button>
      </div>
    </form>
  );
}
