/**
 * Named selectors. Those that build a new array or object (active path, branch info) must be
 * read with `useHearthShallow`, so that an unchanged result does not re-render.
 */
import { hubFileUri, type CacheMemory, type CacheSlot, type CacheStoreStats, type ChatCache, type ContextView, type DownloadItem, type HearthError, type Message, type ModelInfo } from '../contract.ts';
import { hitRatioText } from '../lib/cache.ts';
import { dividerAbove, latestView } from '../lib/context-view.ts';
import { activePathIds, branchInfo, resolveLeaf, streamingMessageId, type BranchInfo } from '../lib/tree.ts';
import { activeDownloadStatuses } from './downloads-slice.ts';
import { planKey, type ModelPlanEntry, type PlanTarget } from './profile-slice.ts';
import type { HearthState } from './types.ts';

type Selector<T> = (s: HearthState) => T;

const noIds: readonly string[] = [];
const single: BranchInfo = { position: 1, count: 1, previousId: null, nextId: null };

export const selectRoute: Selector<HearthState['route']> = (s) => s.route;
export const selectConnection: Selector<HearthState['connection']> = (s) => s.connection;
export const selectBooted: Selector<boolean> = (s) => s.booted;
export const selectBootError: Selector<HearthError | null> = (s) => s.bootError;
export const selectHost: Selector<'electron' | 'browser' | null> = (s) => s.app?.host ?? null;
export const selectModel: Selector<HearthState['model']> = (s) => s.model;
/** The loaded model's figures; null while none is ready. */
export const selectLoadedModel: Selector<ModelInfo | null> = (s) => (s.model?.status === 'ready' ? (s.model.model ?? null) : null);
/** The loaded model's path; null while none is loaded (none yet, loading, or failed). */
export const selectLoadedModelPath: Selector<string | null> = (s) => selectLoadedModel(s)?.path ?? null;
export const selectSettings: Selector<HearthState['settings']> = (s) => s.settings;
export const selectTheme: Selector<'system' | 'light' | 'dark'> = (s) => s.settings?.theme ?? 'system';
export const selectEngineBanner: Selector<HearthState['engineBanner']> = (s) => s.engineBanner;
export const selectComposerFocus: Selector<number> = (s) => s.composerFocus;

/** The model error to show as a banner, unless the user dismissed that very error. */
export const selectVisibleModelError: Selector<HearthError | null> = (s) =>
  s.model.status === 'error' && s.model.error && s.model.error !== s.dismissedModelError ? s.model.error : null;

/**
 * The text of the "persistence paused" banner, or null when persistence runs, is off, or the
 * user dismissed this pause.
 */
export const selectKvPauseBanner: Selector<string | null> = (s) => {
  if (s.kv?.persistence !== 'paused' || s.kvBannerDismissed) return null;
  // Host messages end with a period; the sentence goes on after the reason.
  const reason = (s.kv.reason?.message ?? 'the disk cannot be written to').trim().replace(/\.+$/, '');
  return `Saving chat memory to disk is paused: ${reason}. Chats keep working; they will re-read their history when reopened.`;
};

export const selectKv: Selector<HearthState['kv']> = (s) => s.kv;
export const selectKvStats: Selector<HearthState['kvStats']> = (s) => s.kvStats;
export const selectKvStatsError: Selector<HearthError | null> = (s) => s.kvStatsError;
export const selectEngineState: Selector<'starting' | 'running' | 'restarting' | 'stopped' | null> = (s) => s.engine?.state ?? null;

/**
 * While the engine does something a restart would cut off, what it is: the host then applies
 * changed cache settings only once it ends (engine/host/kv-apply.ts). Null when idle, as far
 * as this window knows (a chat streaming in another window is not seen here).
 */
export const selectEngineBusy: Selector<'reply' | 'model' | 'download' | null> = (s) => {
  for (const messages of Object.values(s.messages)) {
    for (const message of Object.values(messages)) if (message.status === 'streaming') return 'reply';
  }
  if (s.model.status === 'loading') return 'model';
  for (const download of Object.values(s.downloads)) if (download.status === 'downloading') return 'download';
  return null;
};

export const selectChatList: Selector<HearthState['chatList']> = (s) => s.chatList;
export const selectChatListLoaded: Selector<boolean> = (s) => s.chatListLoaded;
export const selectChat = (chatId: string) => (s: HearthState) => s.chats[chatId];
export const selectChatTitle = (chatId: string) => (s: HearthState) =>
  s.chats[chatId]?.title ?? s.chatList.find((c) => c.id === chatId)?.title;
export const selectChatLoad = (chatId: string) => (s: HearthState) => s.chatLoad[chatId];

/** Ids on the branch the user sees, root first. Read with `useHearthShallow`. */
export const selectActivePathIds = (chatId: string) => (s: HearthState): readonly string[] => {
  const messages = s.messages[chatId];
  const chat = s.chats[chatId];
  return messages && chat ? activePathIds(messages, chat.activeLeafId) : noIds;
};

/** The model's view of the chat as its newest reply on screen left it; null before any reply reported one. */
export const selectLatestView = (chatId: string) => (s: HearthState): ContextView | null => {
  const messages = s.messages[chatId];
  const chat = s.chats[chatId];
  return messages && chat ? (latestView(messages, activePathIds(messages, chat.activeLeafId))?.view ?? null) : null;
};

/** The message on screen that the "outside the model's view" divider goes above; null for none. */
export const selectDividerAbove = (chatId: string) => (s: HearthState): string | null => {
  const messages = s.messages[chatId];
  const chat = s.chats[chatId];
  return messages && chat ? dividerAbove(messages, activePathIds(messages, chat.activeLeafId)) : null;
};

/** Whether the branch on screen holds any reply yet. */
export const selectHasReplies = (chatId: string) => (s: HearthState): boolean => {
  const messages = s.messages[chatId];
  const chat = s.chats[chatId];
  if (!messages || !chat) return false;
  return activePathIds(messages, chat.activeLeafId).some((id) => messages[id]?.role === 'assistant');
};

/** Whether `messageId` ends the branch on screen (what `chats.continue` writes on from). */
export const selectIsActiveLeaf = (chatId: string, messageId: string) => (s: HearthState): boolean => {
  const messages = s.messages[chatId];
  const chat = s.chats[chatId];
  return messages !== undefined && chat !== undefined && resolveLeaf(messages, chat.activeLeafId) === messageId;
};

export const selectMessage = (chatId: string, messageId: string) => (s: HearthState): Message | undefined =>
  s.messages[chatId]?.[messageId];

/** Read with `useHearthShallow`. */
export const selectBranchInfo = (chatId: string, messageId: string) => (s: HearthState): BranchInfo => {
  const messages = s.messages[chatId];
  return messages ? branchInfo(messages, messageId) : single;
};

export const selectStreamingId = (chatId: string) => (s: HearthState): string | null => {
  const messages = s.messages[chatId];
  return messages ? streamingMessageId(messages) : null;
};

export const selectLibrary: Selector<HearthState['library']> = (s) => s.library;
export const selectLibraryError: Selector<HearthError | null> = (s) => s.libraryError;
export const selectRecommended: Selector<HearthState['recommended']> = (s) => s.recommended;
export const selectRecommendedError: Selector<HearthError | null> = (s) => s.recommendedError;
export const selectLoadPending: Selector<boolean> = (s) => s.loadPending;
export const selectLoadError: Selector<HearthError | null> = (s) => s.loadError;

/**
 * First run: nothing is loaded (or loading) and the library, once listed, holds no model. Then
 * the Home view and the Models screen lead with the recommendations.
 */
export const selectNeedsOnboarding: Selector<boolean> = (s) =>
  s.model.status !== 'ready' && s.model.status !== 'loading' && s.library !== null && s.library.models.length === 0;

// Downloads.
export const selectDownloads: Selector<HearthState['downloads']> = (s) => s.downloads;
export const selectDownloadsLoaded: Selector<boolean> = (s) => s.downloadsLoaded;
export const selectDownloadsError: Selector<HearthError | null> = (s) => s.downloadsError;
export const selectChatAfterDownload: Selector<string | null> = (s) => s.chatAfterDownload;
/** Downloads still moving (queued, downloading, verifying): the sidebar's badge. */
export const selectActiveDownloadCount: Selector<number> = (s) => {
  let n = 0;
  for (const item of Object.values(s.downloads)) if (activeDownloadStatuses.includes(item.status)) n += 1;
  return n;
};
/** The newest download of a repository's file (a cancelled one may be started again). */
export function newestDownloadOf(downloads: Readonly<Record<string, DownloadItem>>, repo: string, fileId: string): DownloadItem | undefined {
  const uri = hubFileUri(repo, fileId);
  let found: DownloadItem | undefined;
  for (const item of Object.values(downloads)) {
    if (item.uri === uri && (!found || item.createdAt >= found.createdAt)) found = item;
  }
  return found;
}

export const selectDownloadOf = (repo: string, fileId: string) => (s: HearthState): DownloadItem | undefined => newestDownloadOf(s.downloads, repo, fileId);

// Hugging Face.
export const selectHubQuery: Selector<string> = (s) => s.hubQuery;
export const selectHubSort: Selector<HearthState['hubSort']> = (s) => s.hubSort;
export const selectHubSearch: Selector<HearthState['hubSearch']> = (s) => s.hubSearch;
export const selectHubRepo = (repo: string) => (s: HearthState) => s.hubRepos[repo];
export const selectHubFit = (repo: string) => (s: HearthState) => s.hubFits[repo];
export const selectHubRepos: Selector<HearthState['hubRepos']> = (s) => s.hubRepos;
export const selectHubFits: Selector<HearthState['hubFits']> = (s) => s.hubFits;
export const selectHubAuth: Selector<HearthState['hubAuth']> = (s) => s.hubAuth;

export const selectNotice = (chatId: string) => (s: HearthState) => (s.notice?.chatId === chatId ? s.notice.error : null);

export const selectProfile: Selector<HearthState['profile']> = (s) => s.profile;
export const selectProfileError: Selector<HearthError | null> = (s) => s.profileError;
export const selectKvPlan: Selector<HearthState['kvPlan']> = (s) => s.kvPlan;
export const selectKvPlanInput: Selector<HearthState['kvPlanInput']> = (s) => s.kvPlanInput;
export const selectKvPlanError: Selector<HearthError | null> = (s) => s.kvPlanError;
export const selectKvPlanPending: Selector<boolean> = (s) => s.kvPlanPending;
export const selectKvQuality: Selector<HearthState['kvQuality']> = (s) => s.kvQuality;
export const selectKvQualityPath: Selector<string | null> = (s) => s.kvQualityPath;
export const selectKvQualityError: Selector<HearthError | null> = (s) => s.kvQualityError;
export const selectKvQualityPending: Selector<boolean> = (s) => s.kvQualityPending;
/** The measured speed of the model at `path`, from its profile: null before the first measurement, undefined while the store holds another model's profile. */
export const selectSpeed = (path: string) => (s: HearthState) => (s.profile?.path === path ? (s.profile.speed ?? null) : undefined);
export const selectSpeedPending = (path: string) => (s: HearthState): boolean => s.speedPendingPath === path;
export const selectSpeedError = (path: string) => (s: HearthState): HearthError | null => (s.speedErrorPath === path ? s.speedError : null);
/** A model's cached plan on the Models screen; undefined before it is first asked for. */
export const selectModelPlan = (target: PlanTarget) => (s: HearthState): ModelPlanEntry | undefined => s.modelPlans[planKey(target)];

/**
 * The model the Settings screen's Model section is about: the loaded (or loading) one, else the
 * last one loaded; null when there has never been one.
 */
export const selectProfilePath: Selector<string | null> = (s) => s.model.model?.path ?? s.settings?.lastModelPath ?? null;

// The Cache view. A tick replaces the whole snapshot; these read its parts, and the
// object ones (memory, a slot, the store) hold primitives only, so `useHearthShallow` re-renders
// a section only when one of its figures changed.
export const selectCacheRing: Selector<HearthState['cacheRing']> = (s) => s.cacheRing;
export const selectHasSnapshot: Selector<boolean> = (s) => s.snapshot !== null;
/** Read with `useHearthShallow`. */
export const selectCacheMemory: Selector<CacheMemory | null> = (s) => s.snapshot?.memory ?? null;
export const selectSlotCount: Selector<number> = (s) => s.snapshot?.slots.length ?? 0;
/** Read with `useHearthShallow`. */
export const selectCacheSlot = (index: number) => (s: HearthState): CacheSlot | null => s.snapshot?.slots[index] ?? null;
/** Read with `useHearthShallow`. */
export const selectCacheStore: Selector<CacheStoreStats | null> = (s) => s.snapshot?.store ?? null;
export const selectTurns: Selector<HearthState['turns']> = (s) => s.turns;
export const selectCacheEvents: Selector<HearthState['events']> = (s) => s.events;
export const selectCachedChats: Selector<HearthState['cachedChats']> = (s) => s.cachedChats;
export const selectCacheOverviewError: Selector<HearthError | null> = (s) => s.cacheOverviewError;
export const selectHitRatioText: Selector<string> = (s) => hitRatioText(s.turns);
export const selectChatCache = (chatId: string) => (s: HearthState): ChatCache | undefined => s.chatCache[chatId];

// The Server screen.
export const selectServer: Selector<HearthState['server']> = (s) => s.server;
export const selectServerRequests: Selector<HearthState['serverRequests']> = (s) => s.serverRequests;
export const selectServerLoadError: Selector<HearthError | null> = (s) => s.serverLoadError;

// Remote engines.
export const selectEngines: Selector<HearthState['engines']> = (s) => s.engines;
export const selectEnginesError: Selector<HearthError | null> = (s) => s.enginesError;
export const selectEngineById = (engineId: string) => (s: HearthState) => s.engines?.find((e) => e.id === engineId);
export const selectLocalEngine: Selector<HearthState['localEngine']> = (s) => s.localEngine;
export const selectLocalEngineError: Selector<HearthError | null> = (s) => s.localEngineError;
export const selectRemoteSample = (engineId: string) => (s: HearthState) => s.remoteSamples[engineId];
/** Messages on the branch on screen: what a move reads again. */
export const selectActivePathLength = (chatId: string) => (s: HearthState): number => selectActivePathIds(chatId)(s).length;
