/**
 * Messages form a tree (siblings = branches). The server stores every branch; the renderer
 * derives what the user sees from `chat.activeLeafId` and the parent links.
 */
import type { Message } from '../contract.ts';

export type MessageMap = Readonly<Record<string, Message>>;

/** Children of each parent (null key = roots), oldest first. */
export type ChildrenIndex = ReadonlyMap<string | null, readonly Message[]>;

function byAge(a: Message, b: Message): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// One index per messages record: selectors run for every message on every store update
// (once per animation frame while streaming), so rebuilding it per lookup would be O(n²).
const indexCache = new WeakMap<MessageMap, ChildrenIndex>();

export function childrenIndex(messages: MessageMap): ChildrenIndex {
  const cached = indexCache.get(messages);
  if (cached) return cached;
  const index = new Map<string | null, Message[]>();
  for (const message of Object.values(messages)) {
    const list = index.get(message.parentId);
    if (list) list.push(message);
    else index.set(message.parentId, [message]);
  }
  for (const list of index.values()) list.sort(byAge);
  indexCache.set(messages, index);
  return index;
}

/** The most recently created leaf under `id` (inclusive), following the newest child at each step. */
export function latestLeafUnder(messages: MessageMap, id: string): string {
  const index = childrenIndex(messages);
  let current = id;
  const seen = new Set<string>();
  for (;;) {
    seen.add(current);
    const children = index.get(current);
    const newest = children?.[children.length - 1];
    if (!newest || seen.has(newest.id)) return current;
    current = newest.id;
  }
}

/**
 * The leaf to show: the chat's active leaf when it is known, otherwise the newest leaf of the
 * newest root (a chat whose server state is briefly ahead of or behind ours still shows text).
 */
export function resolveLeaf(messages: MessageMap, activeLeafId: string | null): string | null {
  if (activeLeafId !== null && messages[activeLeafId]) return activeLeafId;
  const roots = childrenIndex(messages).get(null);
  const newestRoot = roots?.[roots.length - 1];
  return newestRoot ? latestLeafUnder(messages, newestRoot.id) : null;
}

/** The ids from the root to the active leaf. Stops at a missing parent or a cycle. */
export function activePathIds(messages: MessageMap, activeLeafId: string | null): string[] {
  const leaf = resolveLeaf(messages, activeLeafId);
  const path: string[] = [];
  const seen = new Set<string>();
  let current = leaf === null ? undefined : messages[leaf];
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    path.push(current.id);
    current = current.parentId === null ? undefined : messages[current.parentId];
  }
  return path.reverse();
}

export interface BranchInfo {
  /** 1-based position among its siblings. */
  readonly position: number;
  readonly count: number;
  readonly previousId: string | null;
  readonly nextId: string | null;
}

/** Where a message sits among its siblings (messages with the same parent). */
export function branchInfo(messages: MessageMap, id: string): BranchInfo {
  const message = messages[id];
  if (!message) return { position: 1, count: 1, previousId: null, nextId: null };
  const siblings = childrenIndex(messages).get(message.parentId) ?? [message];
  const at = siblings.findIndex((m) => m.id === id);
  return {
    position: at + 1,
    count: siblings.length,
    previousId: siblings[at - 1]?.id ?? null,
    nextId: siblings[at + 1]?.id ?? null,
  };
}

const streamingCache = new WeakMap<MessageMap, string | null>();

/** The message in a chat that is streaming now, if any (cached per record, like the index). */
export function streamingMessageId(messages: MessageMap): string | null {
  const cached = streamingCache.get(messages);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  for (const message of Object.values(messages)) {
    if (message.status === 'streaming') {
      found = message.id;
      break;
    }
  }
  streamingCache.set(messages, found);
  return found;
}
