import { useEffect, useRef, useState } from 'react';
import { needsModel } from '../state/actions.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectComposerFocus, selectNotice, selectStreamingId } from '../state/selectors.ts';
import { SendIcon, StopIcon } from './icons.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

/**
 * The message box. Enter sends, Shift+Enter is a newline, and Enter that confirms an IME
 * composition does neither. The text stays when a send fails, so nothing typed is lost.
 */
export function Composer({ chatId }: { chatId: string }) {
  const actions = useActions();
  const streamingId = useHearth(selectStreamingId(chatId));
  const notice = useHearth(selectNotice(chatId));
  const focusRequest = useHearth(selectComposerFocus);
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    box.current?.focus();
  }, [focusRequest, chatId]);

  const canSend = text.trim() !== '' && !sending && streamingId === null;

  const send = async () => {
    if (!canSend) return;
    setSending(true);
    const result = await actions.send(chatId, text);
    setSending(false);
    if (result.ok) setText('');
    box.current?.focus();
  };

  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
      className="border-t border-stone-200 px-4 py-3 dark:border-stone-800"
    >
      <div className="mx-auto max-w-3xl">
        {notice && (
          <div className="mb-2">
            <ErrorBox error={notice} alert>
              {needsModel(notice) && (
                <a href="#/models" className="mt-1 inline-block font-medium underline">
                  Open the model screen
                </a>
              )}
            </ErrorBox>
          </div>
        )}
        <div className="flex items-end gap-2">
          <textarea
            ref={box}
            aria-label="Message"
            value={text}
            rows={1}
            placeholder="Message Hearth — Enter sends, Shift+Enter adds a line"
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key !== 'Enter' || e.shiftKey || e.altKey) return;
              // keyCode 229: some IMEs report the confirming Enter only this way.
              if (e.nativeEvent.isComposing || e.keyCode === 229) return;
              e.preventDefault();
              void send();
            }}
            className="max-h-60 min-h-10 flex-1 resize-none rounded-lg border border-stone-300 bg-white px-3 py-2 text-sm leading-6 [field-sizing:content] placeholder:text-stone-400 dark:border-stone-600 dark:bg-stone-900"
          />
          {streamingId !== null ? (
            <button type="button" onClick={() => void actions.stop(chatId)} className={buttonStyles.secondary} title="Stop (Esc)">
              <StopIcon />
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!canSend} className={buttonStyles.primary}>
              <SendIcon />
              Send
            </button>
          )}
        </div>
      </div>
    </form>
  );
}
