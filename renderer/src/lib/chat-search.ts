/**
 * The sidebar's search across chats (`chats.search`): the typing's debounce, which answer is
 * shown, the match's highlight in a snippet, and bringing the matched message into view.
 */
import type { CallOutputs, ChatSearchHit, HearthError, Result } from '../contract.ts';

/** How long typing pauses before a search is sent. */
export const searchDelayMs = 200;
/** The longest query the host takes (`chats.search`). */
export const maxQueryChars = 200;

export interface SearchState {
  /** The field's text, as typed. */
  readonly query: string;
  /** `pending`: a search for `query` is waiting or running; the hits shown are the last answer's. */
  readonly status: 'idle' | 'pending' | 'done' | 'error';
  readonly hits: readonly ChatSearchHit[];
  readonly error: HearthError | null;
}

export const idleSearch: SearchState = { query: '', status: 'idle', hits: [], error: null };

export type SearchCall = (query: string) => Promise<Result<CallOutputs['chats.search']>>;

export interface ChatSearcher {
  /** The field changed: searches once typing pauses; an empty field clears the results at once. */
  input(query: string): void;
  /** Searches the current query again (the chats changed), after the same pause. */
  refresh(): void;
  dispose(): void;
}

/**
 * Debounces the field and keeps only the latest answer: a slow answer to an older query never
 * replaces a newer one's.
 */
export function createChatSearcher(options: {
  readonly search: SearchCall;
  readonly onChange: (state: SearchState) => void;
  readonly delayMs?: number;
}): ChatSearcher {
  let state = idleSearch;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let latest = 0;
  let disposed = false;
  const update = (next: SearchState) => {
    state = next;
    if (!disposed) options.onChange(state);
  };
  const cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  const schedule = () => {
    cancel();
    const query = state.query.trim();
    timer = setTimeout(() => {
      timer = null;
      latest += 1;
      const mine = latest;
      void options.search(query).then((result) => {
        if (mine !== latest || disposed) return;
        update(result.ok ? { ...state, status: 'done', hits: result.value.hits, error: null } : { ...state, status: 'error', error: result.error });
      });
    }, options.delayMs ?? searchDelayMs);
  };
  return {
    input(query) {
      const before = state.query.trim();
      const text = query.trim();
      if (text === '') {
        cancel();
        // An answer still on its way is for a query that is gone.
        latest += 1;
        update(idleSearch);
        return;
      }
      // Spaces around the words search the same thing: keep the answer already shown.
      if (text === before && state.status !== 'idle') {
        update({ ...state, query });
        return;
      }
      update({ ...state, query, status: 'pending' });
      schedule();
    },
    refresh() {
      if (state.query.trim() === '') return;
      update({ ...state, status: 'pending' });
      schedule();
    },
    dispose() {
      disposed = true;
      cancel();
    },
  };
}

/** A piece of a title or snippet: `match` pieces are the query, shown highlighted. */
export interface TextPart {
  readonly text: string;
  readonly match: boolean;
}

/**
 * Splits `text` at every occurrence of `query`, ignoring case (Unicode simple case folding, as
 * near to the host's matching as a RegExp gets); a run of spaces in the query matches any run
 * of whitespace, since snippets come with their line breaks collapsed.
 */
export function highlightParts(text: string, query: string): TextPart[] {
  const words = query.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [{ text, match: false }];
  const pattern = new RegExp(words.map((w) => w.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')).join('\\s+'), 'giu');
  const parts: TextPart[] = [];
  let at = 0;
  for (const found of text.matchAll(pattern)) {
    if (found.index > at) parts.push({ text: text.slice(at, found.index), match: false });
    parts.push({ text: found[0], match: true });
    at = found.index + found[0].length;
  }
  if (at < text.length || parts.length === 0) parts.push({ text: text.slice(at), match: false });
  return parts;
}

/** Where an opened hit's message stands, and so what to do next (`revealStep`). */
export interface RevealProgress {
  /** The chat is the one on screen (the address says so). */
  readonly showing: boolean;
  /** It was on screen earlier in this open: the user has gone elsewhere since. */
  readonly arrived: boolean;
  /** The chat's detail (the chats slice's `chatLoad`). */
  readonly load: 'loading' | 'loaded' | { readonly error: unknown } | undefined;
  /** The loaded chat has the message. */
  readonly known: boolean;
  /** The message is on the branch on screen. */
  readonly onScreen: boolean;
  /** Its branch was asked for already in this open. */
  readonly switchAsked: boolean;
}

/**
 * `wait` (for the address or the chat's messages), `cancel` (the user went elsewhere, or the
 * chat or message is gone), `switch-branch` (show the branch that holds it, as its branch
 * arrows would), or `scroll` (it is on screen).
 */
export function revealStep(p: RevealProgress): 'wait' | 'cancel' | 'switch-branch' | 'scroll' {
  if (!p.showing) return p.arrived ? 'cancel' : 'wait';
  if (typeof p.load === 'object' || (p.load === 'loaded' && !p.known)) return 'cancel';
  if (p.load !== 'loaded') return 'wait';
  if (p.onScreen) return 'scroll';
  return p.switchAsked ? 'wait' : 'switch-branch';
}

/** What `revealMessage` needs of the page (the unit tests run without a DOM). */
export interface RevealEnv {
  readonly find: (messageId: string) => HTMLElement | null;
  readonly nextFrame: (run: () => void) => unknown;
  readonly later: (run: () => void, ms: number) => unknown;
}

/** How long to wait for the message to be on screen: the chat may still be loading. */
const revealFrames = 180;
/** How long the found message stays highlighted. */
export const flashMs = 2000;
/** Added for the flash and taken away after (only those the element did not have). */
export const flashClasses = ['ring-2', 'ring-amber-500', 'rounded-lg'] as const;

export function browserRevealEnv(): RevealEnv {
  return {
    find: (messageId) => document.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(messageId)}"]`),
    nextFrame: (run) => requestAnimationFrame(run),
    later: (run, ms) => setTimeout(run, ms),
  };
}

/**
 * Scrolls the message `messageId` to the middle of the view once it is on the page and
 * highlights it for a moment. Gives up after about three seconds of frames. Returns a function
 * that stops waiting.
 */
export function revealMessage(messageId: string, env: RevealEnv = browserRevealEnv()): () => void {
  let stopped = false;
  let frames = 0;
  const attempt = () => {
    if (stopped) return;
    const element = env.find(messageId);
    if (!element) {
      frames += 1;
      if (frames < revealFrames) env.nextFrame(attempt);
      return;
    }
    // One more frame: the list scrolls itself to the bottom when a chat opens, after its layout.
    env.nextFrame(() => {
      if (stopped) return;
      element.scrollIntoView({ block: 'center' });
      const added = flashClasses.filter((name) => !element.classList.contains(name));
      element.classList.add(...added);
      env.later(() => element.classList.remove(...added), flashMs);
    });
  };
  attempt();
  return () => {
    stopped = true;
  };
}
