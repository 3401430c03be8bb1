import { useEffect, useRef, useState, type Dispatch, type KeyboardEvent, type MouseEvent, type ReactNode, type Ref, type SetStateAction } from 'react';
import type { ChatSearchHit } from '../contract.ts';
import { createChatSearcher, highlightParts, idleSearch, maxQueryChars, revealMessage, revealStep, type ChatSearcher, type SearchState } from '../lib/chat-search.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectActivePathIds, selectChatList, selectRoute } from '../state/selectors.ts';
import { ErrorBox, inputStyles } from './ui.tsx';

const inputId = 'chat-search';
const resultsId = 'chat-search-results';

/** A hit being opened: its message is brought into view once the chat shows it. */
interface Reveal {
  readonly chatId: string;
  readonly messageId: string;
  /** Each open is its own, so opening the same hit again scrolls to it again. */
  readonly token: number;
}

/**
 * The search field at the top of the chat list, and its results in the list's place while the
 * field holds text. Ctrl/Cmd+K focuses the field.
 */
export function ChatSearch({ children }: { children: ReactNode }) {
  const actions = useActions();
  const route = useHearth(selectRoute);
  const chatList = useHearth(selectChatList);
  const [state, setState] = useState<SearchState>(idleSearch);
  const searcher = useRef<ChatSearcher | null>(null);
  const field = useRef<HTMLInputElement>(null);
  const currentChatId = route.name === 'chat' ? route.chatId : null;

  useEffect(() => {
    const created = createChatSearcher({ search: (query) => actions.searchChats(query), onChange: setState });
    searcher.current = created;
    return () => {
      created.dispose();
      searcher.current = null;
    };
  }, [actions]);

  // A chat renamed, deleted or written to: the results shown may no longer be right.
  useEffect(() => searcher.current?.refresh(), [chatList]);

  const [reveal, setReveal] = useState<Reveal | null>(null);
  const opened = useRef(0);
  useRevealMessage(reveal, setReveal);

  const open = (hit: ChatSearchHit) => {
    actions.navigate({ name: 'chat', chatId: hit.chatId });
    opened.current += 1;
    setReveal(hit.messageId === null ? null : { chatId: hit.chatId, messageId: hit.messageId, token: opened.current });
  };

  return (
    <ChatSearchView state={state} currentChatId={currentChatId} inputRef={field} onQuery={(text) => searcher.current?.input(text)} onOpen={open}>
      {children}
    </ChatSearchView>
  );
}

/**
 * Once the opened chat is loaded: shows the branch that holds the message if another one is on
 * screen (as its branch arrows would), then scrolls to the message and highlights it. Gives up
 * when the user goes elsewhere first, or the chat or message is gone.
 */
function useRevealMessage(reveal: Reveal | null, setReveal: Dispatch<SetStateAction<Reveal | null>>): void {
  const actions = useActions();
  const route = useHearth(selectRoute);
  const load = useHearth((s) => (reveal ? s.chatLoad[reveal.chatId] : undefined));
  const known = useHearth((s) => (reveal ? s.messages[reveal.chatId]?.[reveal.messageId] !== undefined : false));
  const onScreen = useHearth((s) => (reveal ? selectActivePathIds(reveal.chatId)(s).includes(reveal.messageId) : false));
  const showing = reveal !== null && route.name === 'chat' && route.chatId === reveal.chatId;
  // Per open (token): whether its chat was on screen yet, and whether its branch was asked for.
  const arrived = useRef(0);
  const switched = useRef(0);
  const stop = useRef<(() => void) | null>(null);

  useEffect(() => {
    if (!reveal) return;
    // Only this open's: a later open may have replaced it by the time an answer comes.
    const finish = () => setReveal((current) => (current?.token === reveal.token ? null : current));
    const step = revealStep({ showing, arrived: arrived.current === reveal.token, load, known, onScreen, switchAsked: switched.current === reveal.token });
    if (showing) arrived.current = reveal.token;
    if (step === 'cancel') finish();
    else if (step === 'switch-branch') {
      switched.current = reveal.token;
      void actions.switchBranch(reveal.chatId, reveal.messageId).then((result) => {
        if (!result.ok) finish();
      });
    } else if (step === 'scroll') {
      stop.current?.();
      stop.current = revealMessage(reveal.messageId);
      finish();
    }
  }, [actions, known, load, onScreen, reveal, setReveal, showing]);

  useEffect(() => () => stop.current?.(), []);
}

export interface ChatSearchViewProps {
  readonly state: SearchState;
  /** The chat on screen, marked in the results. */
  readonly currentChatId: string | null;
  readonly inputRef?: Ref<HTMLInputElement>;
  readonly onQuery: (text: string) => void;
  readonly onOpen: (hit: ChatSearchHit) => void;
  /** The chat list, shown while the field is empty. */
  readonly children?: ReactNode;
}

/** Moves the focus to another result link (arrow keys), or back to the field from the first. */
function focusSibling(from: HTMLElement, step: 1 | -1): void {
  const links = [...(document.getElementById(resultsId)?.querySelectorAll<HTMLElement>('a[data-search-hit]') ?? [])];
  const at = links.indexOf(from);
  const next = at + step;
  if (next < 0) document.getElementById(inputId)?.focus();
  else links[next]?.focus();
}

export function ChatSearchView({ state, currentChatId, inputRef, onQuery, onOpen, children }: ChatSearchViewProps) {
  const searching = state.query.trim() !== '';
  const onFieldKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.nativeEvent.isComposing) return;
    if (e.key === 'Escape' && state.query !== '') {
      // Handled: the app's Esc (stop the reply) is not for this press.
      e.preventDefault();
      onQuery('');
    } else if (e.key === 'Enter') {
      e.preventDefault();
      const first = state.hits[0];
      if (searching && first) onOpen(first);
    } else if (e.key === 'ArrowDown' && searching) {
      e.preventDefault();
      document.getElementById(resultsId)?.querySelector<HTMLElement>('a[data-search-hit]')?.focus();
    }
  };
  return (
    <>
      <div role="search" className="px-3 pb-2">
        <label htmlFor={inputId} className="sr-only">
          Search chats
        </label>
        <input
          ref={inputRef}
          id={inputId}
          data-testid="chat-search"
          type="search"
          value={state.query}
          maxLength={maxQueryChars}
          placeholder="Search chats"
          title="Search chats (Ctrl+K)"
          aria-keyshortcuts="Control+K Meta+K"
          aria-controls={searching ? resultsId : undefined}
          autoComplete="off"
          spellCheck={false}
          enterKeyHint="search"
          onChange={(e) => onQuery(e.target.value)}
          onKeyDown={onFieldKey}
          className={inputStyles}
        />
      </div>
      {searching ? <SearchResults state={state} currentChatId={currentChatId} onOpen={onOpen} /> : children}
    </>
  );
}

function resultsStatus(state: SearchState): string {
  if (state.status === 'error') return 'The search failed.';
  if (state.status === 'pending' && state.hits.length === 0) return 'Searching…';
  if (state.hits.length === 0) return 'No chats match';
  return `${state.hits.length} ${state.hits.length === 1 ? 'chat' : 'chats'} found`;
}

function SearchResults(props: { state: SearchState; currentChatId: string | null; onOpen: (hit: ChatSearchHit) => void }) {
  const { state } = props;
  const status = resultsStatus(state);
  const pending = state.status === 'pending';
  return (
    <section id={resultsId} aria-label="Search results" aria-busy={pending || undefined} className="min-h-0 flex-1 overflow-y-auto px-2 py-1">
      {state.error && (
        <div className="px-1 pb-2">
          <ErrorBox error={state.error} title="The search failed." />
        </div>
      )}
      <p role="status" data-testid="chat-search-status" className={state.hits.length > 0 ? 'sr-only' : 'px-2 py-4 text-sm text-stone-500 dark:text-stone-400'}>
        {state.error ? '' : status}
      </p>
      {state.hits.length > 0 && (
        <ul className={`space-y-0.5 ${pending ? 'opacity-60' : ''}`}>
          {state.hits.map((hit) => (
            <SearchHitItem key={hit.chatId} hit={hit} query={state.query} current={hit.chatId === props.currentChatId} onOpen={props.onOpen} />
          ))}
        </ul>
      )}
    </section>
  );
}

/** Text with the query's occurrences marked; React escapes it (a snippet is what someone wrote). */
function Highlighted({ text, query }: { text: string; query: string }) {
  return highlightParts(text, query).map((part, i) =>
    part.match ? (
      <mark key={i} className="rounded-sm bg-amber-200 text-inherit dark:bg-amber-700/70">
        {part.text}
      </mark>
    ) : (
      part.text
    ),
  );
}

export function SearchHitItem(props: { hit: ChatSearchHit; query: string; current: boolean; onOpen: (hit: ChatSearchHit) => void }) {
  const { hit } = props;
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    // A middle or modified click keeps the browser's own meaning (a new tab, a copy of the link).
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    props.onOpen(hit);
  };
  const onKeyDown = (e: KeyboardEvent<HTMLAnchorElement>) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    e.preventDefault();
    focusSibling(e.currentTarget, e.key === 'ArrowDown' ? 1 : -1);
  };
  const rowClass = props.current
    ? 'bg-stone-300/70 text-stone-950 dark:bg-stone-700 dark:text-white'
    : 'text-stone-700 hover:bg-stone-200 dark:text-stone-300 dark:hover:bg-stone-800';
  return (
    <li>
      <a
        href={`#/chat/${encodeURIComponent(hit.chatId)}`}
        data-search-hit
        data-testid="search-hit"
        aria-current={props.current ? 'page' : undefined}
        onClick={onClick}
        onKeyDown={onKeyDown}
        className={`block rounded-md px-2 py-1.5 text-sm ${rowClass}`}
      >
        <span className="block truncate">
          <Highlighted text={hit.title} query={props.query} />
        </span>
        {hit.messageId !== null && (
          <span data-testid="search-snippet" className="mt-0.5 line-clamp-2 block text-xs break-words text-stone-500 dark:text-stone-400">
            <span className="font-medium">{hit.role === 'user' ? 'You: ' : 'Reply: '}</span>
            <Highlighted text={hit.snippet} query={props.query} />
          </span>
        )}
      </a>
    </li>
  );
}
