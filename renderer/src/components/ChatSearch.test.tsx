import type { ReactElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChatSearchHit, HearthError, Result } from '../contract.ts';
import { createChatSearcher, flashClasses, flashMs, highlightParts, idleSearch, revealMessage, revealStep, searchDelayMs, type RevealEnv, type RevealProgress, type SearchState } from '../lib/chat-search.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { byTestId, fire, hostElements } from '../../../test/support/renderer/element-tree.ts';
import { fakeTransport, ok } from '../../../test/support/renderer/fake-transport.ts';
import { ChatSearchView, type ChatSearchViewProps } from './ChatSearch.tsx';
import { Sidebar } from './Sidebar.tsx';
import { visibleText } from '../../../test/support/renderer/markup.ts';

const hit = (chatId: string, extra: Partial<ChatSearchHit> = {}): ChatSearchHit => ({
  chatId,
  title: `Chat ${chatId}`,
  messageId: `m-${chatId}`,
  role: 'assistant',
  snippet: `a snippet of ${chatId}`,
  updatedAt: 1,
  ...extra,
});

const failure: HearthError = { code: 'BUSY', message: 'The database is locked.', hint: 'Close the other program.' };

/** A transport that answers `chats.search` after `delays[query]` ms (0 when absent), with one hit named after the query. */
function searchTransport(delays: Record<string, number> = {}) {
  return fakeTransport({
    'chats.search': ({ query }) =>
      new Promise<Result<{ hits: ChatSearchHit[] }>>((resolve) => setTimeout(() => resolve(ok({ hits: [hit(query)] })), delays[query] ?? 0)),
  });
}

describe('the searcher (debounce, latest answer wins)', () => {
  let states: SearchState[];
  beforeEach(() => {
    vi.useFakeTimers();
    states = [];
  });
  afterEach(() => vi.useRealTimers());

  const searcherOn = (transport: ReturnType<typeof searchTransport>) =>
    createChatSearcher({ search: (query) => transport.call('chats.search', { query }), onChange: (s) => states.push(s) });

  it('sends one search for a burst of typing, once typing pauses, trimmed', async () => {
    const transport = searchTransport();
    const searcher = searcherOn(transport);
    searcher.input('o');
    await vi.advanceTimersByTimeAsync(searchDelayMs / 2);
    searcher.input('ot');
    await vi.advanceTimersByTimeAsync(searchDelayMs / 2);
    searcher.input(' otter ');
    expect(states.at(-1)).toMatchObject({ query: ' otter ', status: 'pending' });
    await vi.advanceTimersByTimeAsync(searchDelayMs - 1);
    expect(transport.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.calls).toEqual([{ name: 'chats.search', input: { query: 'otter' } }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(states.at(-1)).toEqual({ query: ' otter ', status: 'done', hits: [hit('otter')], error: null });
  });

  it('drops an older answer that arrives after a newer one', async () => {
    const transport = searchTransport({ slow: 1000, slower: 10 });
    const searcher = searcherOn(transport);
    searcher.input('slow');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    searcher.input('slower');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 20);
    expect(states.at(-1)?.hits).toEqual([hit('slower')]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(transport.calls.map((c) => c.input)).toEqual([{ query: 'slow' }, { query: 'slower' }]);
    expect(states.at(-1)).toMatchObject({ query: 'slower', status: 'done', hits: [hit('slower')] });
  });

  it('clears at once when the field is emptied, and ignores the answer still on its way', async () => {
    const transport = searchTransport({ gone: 500 });
    const searcher = searcherOn(transport);
    searcher.input('gone');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    searcher.input('   ');
    expect(states.at(-1)).toEqual(idleSearch);
    await vi.advanceTimersByTimeAsync(1000);
    expect(states.at(-1)).toEqual(idleSearch);
  });

  it('does not search again for spaces around the same words; refresh does', async () => {
    const transport = searchTransport();
    const searcher = searcherOn(transport);
    searcher.input('tea');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    searcher.input('tea ');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    expect(transport.calls).toHaveLength(1);
    expect(states.at(-1)).toMatchObject({ query: 'tea ', status: 'done' });
    searcher.refresh();
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    expect(transport.calls.map((c) => c.input)).toEqual([{ query: 'tea' }, { query: 'tea' }]);
  });

  it('keeps the last hits and reports the error when a search fails; nothing after dispose', async () => {
    const transport = searchTransport();
    const searcher = searcherOn(transport);
    searcher.input('first');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    transport.handlers['chats.search'] = () => ({ ok: false, error: failure });
    searcher.input('second');
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    expect(states.at(-1)).toEqual({ query: 'second', status: 'error', hits: [hit('first')], error: failure });
    const seen = states.length;
    searcher.input('third');
    searcher.dispose();
    await vi.advanceTimersByTimeAsync(searchDelayMs + 1);
    expect(transport.calls).toHaveLength(2);
    expect(states.length).toBe(seen + 1);
  });
});

describe('highlightParts', () => {
  const marked = (text: string, query: string) =>
    highlightParts(text, query)
      .map((p) => (p.match ? `[${p.text}]` : p.text))
      .join('');

  it('marks every occurrence, ignoring case, in any script', () => {
    expect(marked('Otters and otters', 'OTTER')).toBe('[Otter]s and [otter]s');
    expect(marked('Ein Apfel, zwei ÄPFEL', 'äpfel')).toBe('Ein Apfel, zwei [ÄPFEL]');
    expect(marked('Мой ДОМ', 'дом')).toBe('Мой [ДОМ]');
  });

  it('takes the query literally, and its spaces as any whitespace', () => {
    expect(marked('f(x) = a.b*c', '(x)')).toBe('f[(x)] = a.b*c');
    expect(marked('f(x) = a.b*c', 'a.b*')).toBe('f(x) = [a.b*]c');
    expect(marked('axb', 'a.b')).toBe('axb');
    expect(marked('100% sure', '100%')).toBe('[100%] sure');
    expect(marked('two  words', ' two words ')).toBe('[two  words]');
  });

  it('gives the text whole when nothing matches or the query is blank', () => {
    expect(highlightParts('plain', 'zzz')).toEqual([{ text: 'plain', match: false }]);
    expect(highlightParts('plain', '  ')).toEqual([{ text: 'plain', match: false }]);
    expect(highlightParts('', 'x')).toEqual([{ text: '', match: false }]);
  });
});

const viewProps = (state: SearchState, extra: Partial<ChatSearchViewProps> = {}): ChatSearchViewProps => ({
  state,
  currentChatId: null,
  onQuery: () => undefined,
  onOpen: () => undefined,
  children: <nav aria-label="Conversations">the chat list</nav>,
  ...extra,
});

const done = (query: string, hits: ChatSearchHit[]): SearchState => ({ query, status: 'done', hits, error: null });


describe('the search field and its results', () => {
  it('has a labelled field, and shows the chat list while it is empty', () => {
    const html = renderToStaticMarkup(<ChatSearchView {...viewProps(idleSearch)} />);
    expect(html).toMatch(/<label for="chat-search"[^>]*>Search chats<\/label>/);
    expect(html).toMatch(/<input[^>]*id="chat-search"[^>]*type="search"/);
    expect(html).toContain('role="search"');
    expect(html).toContain('the chat list');
    expect(html).not.toContain('Search results');
  });

  it('lists the hits in place of the chat list: links to the chats, the match marked, the current chat marked', () => {
    const hits = [hit('c1', { title: 'Otter facts', snippet: '…they hold hands when they sleep…' }), hit('c2', { title: 'Hands on', messageId: null, role: null, snippet: 'Hands on' })];
    const html = renderToStaticMarkup(<ChatSearchView {...viewProps(done('hands', hits), { currentChatId: 'c2' })} />);
    expect(html).not.toContain('the chat list');
    expect(html).toMatch(/<section[^>]*aria-label="Search results"/);
    const links = [...html.matchAll(/<a [^>]*href="([^"]*)"[^>]*>(.*?)<\/a>/g)];
    expect(links.map((l) => l[1])).toEqual(['#/chat/c1', '#/chat/c2']);
    expect(visibleText(links[0]?.[2] ?? '')).toBe('Otter factsReply: …they hold hands when they sleep…');
    expect(links[0]?.[2]).toContain('<mark class="rounded-sm bg-amber-200 text-inherit dark:bg-amber-700/70">hands</mark>');
    // A title-only hit shows the title, marked, and no snippet line.
    expect(links[1]?.[2]).toContain('<mark class="rounded-sm bg-amber-200 text-inherit dark:bg-amber-700/70">Hands</mark> on');
    expect(links[1]?.[2]).not.toContain('search-snippet');
    expect(links[1]?.[0]).toContain('aria-current="page"');
    expect(links[0]?.[0]).not.toContain('aria-current');
    expect(html).toMatch(/role="status"[^>]*>2 chats found</);
  });

  it('renders a snippet as text, never as markup', () => {
    const hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const html = renderToStaticMarkup(<ChatSearchView {...viewProps(done('img', [hit('c1', { title: '<b>bold</b>', snippet: hostile, role: 'user' })]))} />);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<b>');
    expect(html).toContain('&lt;<mark');
    expect(visibleText(html)).toContain(`You: ${hostile}`);
  });

  it('says when nothing matches, while it searches, and shows a failure inline', () => {
    expect(renderToStaticMarkup(<ChatSearchView {...viewProps(done('zebra', []))} />)).toMatch(/role="status"[^>]*>No chats match</);
    expect(renderToStaticMarkup(<ChatSearchView {...viewProps({ query: 'zeb', status: 'pending', hits: [], error: null })} />)).toMatch(/role="status"[^>]*>Searching…</);
    const pending = renderToStaticMarkup(<ChatSearchView {...viewProps({ query: 'zebr', status: 'pending', hits: [hit('c1')], error: null })} />);
    expect(pending).toContain('aria-busy="true"');
    expect(pending).toContain('href="#/chat/c1"');
    const failed = renderToStaticMarkup(<ChatSearchView {...viewProps({ query: 'zebra', status: 'error', hits: [], error: failure })} />);
    expect(visibleText(failed)).toContain('The search failed.The database is locked.Close the other program.');
    expect(failed).not.toContain('No chats match');
  });
});

describe('the search field by keyboard and pointer', () => {
  const key = (k: string, extra: Record<string, unknown> = {}) => {
    const event = { key: k, nativeEvent: { isComposing: false }, preventDefault: vi.fn(), ...extra };
    return event;
  };
  const field = (tree: ReactElement) => byTestId(tree, 'chat-search');
  const press = (element: ReturnType<typeof field>, event: ReturnType<typeof key>) => (element.props.onKeyDown as (e: unknown) => void)(event);

  it('types into the query, and Escape clears it (and is not passed on)', () => {
    const onQuery = vi.fn();
    const tree = <ChatSearchView {...viewProps(done('otter', [hit('c1')]), { onQuery })} />;
    fire(field(tree), 'onChange', { target: { value: 'otters' } });
    expect(onQuery).toHaveBeenLastCalledWith('otters');
    const escape = key('Escape');
    press(field(tree), escape);
    expect(onQuery).toHaveBeenLastCalledWith('');
    expect(escape.preventDefault).toHaveBeenCalled();
    // An empty field leaves Escape to the app (it stops a reply being written).
    const idle = key('Escape');
    press(field(<ChatSearchView {...viewProps(idleSearch, { onQuery })} />), idle);
    expect(idle.preventDefault).not.toHaveBeenCalled();
    expect(onQuery).toHaveBeenCalledTimes(2);
  });

  it('Enter opens the first hit; a composing Enter does nothing', () => {
    const onOpen = vi.fn();
    const tree = <ChatSearchView {...viewProps(done('otter', [hit('c1'), hit('c2')]), { onOpen })} />;
    press(field(tree), key('Enter', { nativeEvent: { isComposing: true } }));
    expect(onOpen).not.toHaveBeenCalled();
    press(field(tree), key('Enter'));
    expect(onOpen).toHaveBeenCalledWith(hit('c1'));
    press(field(<ChatSearchView {...viewProps(done('zebra', []), { onOpen })} />), key('Enter'));
    expect(onOpen).toHaveBeenCalledTimes(1);
  });

  it('a click opens the hit in place; a modified or middle click is left to the browser', () => {
    const onOpen = vi.fn();
    const links = hostElements(<ChatSearchView {...viewProps(done('otter', [hit('c1'), hit('c2')]), { onOpen })} />).filter((e) => e.props['data-testid'] === 'search-hit');
    expect(links).toHaveLength(2);
    const plain = { button: 0, preventDefault: vi.fn() };
    fire(links[1]!, 'onClick', plain);
    expect(plain.preventDefault).toHaveBeenCalled();
    expect(onOpen).toHaveBeenCalledWith(hit('c2'));
    const modified = { button: 0, ctrlKey: true, preventDefault: vi.fn() };
    fire(links[0]!, 'onClick', modified);
    fire(links[0]!, 'onClick', { button: 1, preventDefault: vi.fn() });
    expect(modified.preventDefault).not.toHaveBeenCalled();
    expect(onOpen).toHaveBeenCalledTimes(1);
  });
});

describe('revealMessage', () => {
  /** A page whose message element appears after `after` frames; frames and timers run when the test says. */
  function fakePage(after: number) {
    const classes = new Set(['rounded-lg', 'px-4']);
    const element = {
      scrollIntoView: vi.fn(),
      classList: {
        contains: (name: string) => classes.has(name),
        add: (...names: string[]) => names.forEach((n) => classes.add(n)),
        remove: (...names: string[]) => names.forEach((n) => classes.delete(n)),
      },
    };
    let frame = 0;
    let queued: (() => void)[] = [];
    const timers: { run: () => void; ms: number }[] = [];
    const looked: string[] = [];
    const env: RevealEnv = {
      find: (id) => {
        looked.push(id);
        return frame >= after ? (element as unknown as HTMLElement) : null;
      },
      nextFrame: (run) => queued.push(run),
      later: (run, ms) => timers.push({ run, ms }),
    };
    const frames = (n: number) => {
      for (let i = 0; i < n; i++) {
        frame += 1;
        const now = queued;
        queued = [];
        now.forEach((run) => run());
      }
    };
    return { element, classes, env, frames, timers, looked, pending: () => queued.length };
  }

  it('waits for the message, scrolls it to the middle and flashes it, then restores its classes', () => {
    const page = fakePage(3);
    revealMessage('m1', page.env);
    page.frames(3);
    expect(page.element.scrollIntoView).not.toHaveBeenCalled();
    page.frames(1);
    expect(page.looked.every((id) => id === 'm1')).toBe(true);
    expect(page.element.scrollIntoView).toHaveBeenCalledWith({ block: 'center' });
    for (const name of flashClasses) expect(page.classes.has(name)).toBe(true);
    expect(page.timers.map((t) => t.ms)).toEqual([flashMs]);
    page.timers[0]?.run();
    // Only what the flash added is taken away: the element's own rounded corners stay.
    expect([...page.classes].sort()).toEqual(['px-4', 'rounded-lg']);
  });

  it('gives up when the message never shows, and stops when told', () => {
    const never = fakePage(Number.POSITIVE_INFINITY);
    revealMessage('m1', never.env);
    never.frames(1000);
    expect(never.pending()).toBe(0);
    expect(never.looked.length).toBeLessThan(1000);
    const stopped = fakePage(2);
    const stop = revealMessage('m1', stopped.env);
    stopped.frames(1);
    stop();
    stopped.frames(5);
    expect(stopped.element.scrollIntoView).not.toHaveBeenCalled();
  });
});

describe('revealStep', () => {
  const progress = (extra: Partial<RevealProgress> = {}): RevealProgress => ({ showing: true, arrived: true, load: 'loaded', known: true, onScreen: true, switchAsked: false, ...extra });

  it('waits for the address and the messages, then scrolls to a message on screen', () => {
    expect(revealStep(progress({ showing: false, arrived: false }))).toBe('wait');
    expect(revealStep(progress({ load: undefined, known: false, onScreen: false }))).toBe('wait');
    expect(revealStep(progress({ load: 'loading', known: false, onScreen: false }))).toBe('wait');
    expect(revealStep(progress())).toBe('scroll');
  });

  it('asks once for the branch that holds a message not on screen', () => {
    expect(revealStep(progress({ onScreen: false }))).toBe('switch-branch');
    expect(revealStep(progress({ onScreen: false, switchAsked: true }))).toBe('wait');
  });

  it('gives up when the user went elsewhere, or the chat or the message is gone', () => {
    expect(revealStep(progress({ showing: false, arrived: true }))).toBe('cancel');
    expect(revealStep(progress({ load: { error: failure } }))).toBe('cancel');
    expect(revealStep(progress({ known: false, onScreen: false }))).toBe('cancel');
  });
});

describe('the sidebar', () => {
  it('puts the search field above the conversation list, outside it', () => {
    // Server rendering reads the store's initial state: the list is still loading.
    const store = createHearthStore();
    const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
    const html = renderToStaticMarkup(
      <HearthProvider store={store} actions={actions}>
        <Sidebar />
      </HearthProvider>,
    );
    const field = html.indexOf('id="chat-search"');
    const list = html.indexOf('<nav aria-label="Conversations"');
    expect(field).toBeGreaterThan(0);
    expect(list).toBeGreaterThan(field);
    const nav = html.slice(list, html.indexOf('</nav>', list));
    expect(nav).not.toContain('<input');
    expect(nav).not.toContain('Search');
  });
});
