import type { CachedChat, CacheEvent, CacheSnapshot, CacheTurn, ChatCache, HearthError, KvStoreInfo } from '../contract.ts';
import { cacheRingCapacity, createRing, type Ring } from '../lib/ring.ts';
import type { SliceCreator } from './types.ts';

/** The host keeps the same bounds (engine/host/cache-view-log.ts). */
export const maxTurns = 100;
export const maxEvents = 200;

/**
 * The disk KV store as the host last measured it (`kv.stats`), fetched on demand for Settings,
 * and the live Cache view: the latest tick, the ring of recent ticks that its charts
 * read, the turns timeline, the event log, the chats with the most KV on disk, and each open
 * chat's cache for the chat header's badge.
 */
export interface CacheSlice {
  readonly kvStats: KvStoreInfo | null;
  /** The last `kv.stats` failed; the figures above (if any) are older. */
  readonly kvStatsError: HearthError | null;
  /**
   * The last 60 s of ticks. One mutable object for the store's life: charts subscribe to it and
   * redraw themselves, so a tick re-renders no React component through it.
   */
  readonly cacheRing: Ring<CacheSnapshot>;
  /** The latest `cache.tick`; null before the first. */
  readonly snapshot: CacheSnapshot | null;
  /** Finished replies, oldest first, at most `maxTurns`. */
  readonly turns: readonly CacheTurn[];
  /** The Cache view's event log, newest last, at most `maxEvents`. */
  readonly events: readonly CacheEvent[];
  /** Largest first; null until `cache.overview` answered. */
  readonly cachedChats: readonly CachedChat[] | null;
  /** The last `cache.overview` failed. */
  readonly cacheOverviewError: HearthError | null;
  /** By chat id, from `cache.chat`. */
  readonly chatCache: Readonly<Record<string, ChatCache>>;
  setKvStats(stats: KvStoreInfo | null, error?: HearthError | null): void;
  applyCacheTick(snapshot: CacheSnapshot): void;
  addCacheTurn(turn: CacheTurn): void;
  addCacheEvent(event: CacheEvent): void;
  /** The host's history replaces ours (it saw every event, also those before this page loaded). */
  setCacheOverview(overview: { turns: readonly CacheTurn[]; events: readonly CacheEvent[]; chats: readonly CachedChat[] } | null, error?: HearthError | null): void;
  setCachedChats(chats: readonly CachedChat[]): void;
  setChatCache(cache: ChatCache): void;
}

function bounded<T>(items: readonly T[], max: number): readonly T[] {
  return items.length > max ? items.slice(items.length - max) : items;
}

export const createCacheSlice: SliceCreator<CacheSlice> = (set, get) => ({
  kvStats: null,
  kvStatsError: null,
  cacheRing: createRing<CacheSnapshot>(cacheRingCapacity),
  snapshot: null,
  turns: [],
  events: [],
  cachedChats: null,
  cacheOverviewError: null,
  chatCache: {},
  setKvStats: (stats, error = null) => set((s) => ({ kvStats: stats ?? s.kvStats, kvStatsError: error })),
  applyCacheTick: (snapshot) => {
    // The ring first: a chart scheduled by it reads the same tick the numbers show.
    get().cacheRing.push(snapshot);
    set({ snapshot });
  },
  addCacheTurn: (turn) =>
    set((s) => {
      // A turn can arrive both live and in an overview fetched meanwhile.
      if (s.turns.some((t) => t.messageId === turn.messageId && t.at === turn.at)) return s;
      return { turns: bounded([...s.turns, turn], maxTurns) };
    }),
  addCacheEvent: (event) =>
    set((s) => {
      // Ids restart with the host, so an event is the same one only with the same time too.
      if (s.events.some((e) => e.id === event.id && e.at === event.at)) return s;
      return { events: bounded([...s.events, event], maxEvents) };
    }),
  setCacheOverview: (overview, error = null) =>
    set((s) =>
      overview
        ? { turns: bounded(overview.turns, maxTurns), events: bounded(overview.events, maxEvents), cachedChats: overview.chats, cacheOverviewError: null }
        : { cachedChats: s.cachedChats, cacheOverviewError: error },
    ),
  setCachedChats: (chats) => set({ cachedChats: chats }),
  setChatCache: (cache) => set((s) => ({ chatCache: { ...s.chatCache, [cache.chatId]: cache } })),
});
