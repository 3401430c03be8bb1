/**
 * The chat header's cache badge: how many tokens of this chat are cached, where
 * (memory, disk or none) and its bytes on disk. Fetched when the chat opens; the event handlers
 * refetch it after each reply ends, after a save and after a forget (state/events.ts).
 */
import { useEffect } from 'react';
import type { CacheSource } from '../contract.ts';
import { chatCacheText } from '../lib/cache.ts';
import { useActions, useHearthShallow } from '../state/react.tsx';
import { selectChatCache } from '../state/selectors.ts';

export function ChatCacheBadge({ chatId }: { chatId: string }) {
  const actions = useActions();
  const cache = useHearthShallow(selectChatCache(chatId));
  useEffect(() => {
    void actions.refreshChatCache(chatId);
  }, [actions, chatId]);
  return <ChatCacheBadgeView text={chatCacheText(cache)} where={cache?.where ?? 'none'} />;
}

export function ChatCacheBadgeView({ text, where }: { text: string; where: CacheSource }) {
  const tone =
    where === 'memory'
      ? 'bg-amber-100 text-amber-900 dark:bg-amber-950 dark:text-amber-200'
      : where === 'disk'
        ? 'bg-sky-100 text-sky-900 dark:bg-sky-950 dark:text-sky-200'
        : 'bg-stone-100 text-stone-600 dark:bg-stone-800 dark:text-stone-300';
  return (
    <span role="status" aria-label="Chat cache" className={`shrink-0 truncate rounded px-2 py-0.5 text-xs whitespace-nowrap tabular-nums ${tone}`}>
      {text}
    </span>
  );
}
