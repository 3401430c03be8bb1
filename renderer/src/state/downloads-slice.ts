/**
 * The download queue as the host keeps it: `downloads.list` once, then one `download.progress`
 * event per change (a `removed` one drops the entry). The queue lives in the host, so this is
 * only a mirror; the one thing of our own is which download should open a chat when it ends.
 */
import type { DownloadItem, DownloadStatus, HearthError } from '../contract.ts';
import type { SliceCreator } from './types.ts';

/** Statuses that still move: the sidebar counts them, and Clear finished leaves them. */
export const activeDownloadStatuses: readonly DownloadStatus[] = ['queued', 'downloading', 'verifying'];

/** Statuses `downloads.clear` removes. */
export const endedDownloadStatuses: readonly DownloadStatus[] = ['done', 'error', 'cancelled'];

export interface DownloadsSlice {
  /** By id; the list shows them oldest first (by `createdAt`). */
  readonly downloads: Readonly<Record<string, DownloadItem>>;
  /** `downloads.list` answered at least once. */
  readonly downloadsLoaded: boolean;
  readonly downloadsError: HearthError | null;
  /**
   * "Download and chat": the download that loads its model and opens a new chat when it is done.
   * In the store, not in the panel that started it, so it still happens after the user navigated away.
   */
  readonly chatAfterDownload: string | null;
  /** A `downloads.list` answer replaces the mirror (it saw every change). */
  setDownloads(items: readonly DownloadItem[]): void;
  setDownloadsError(error: HearthError | null): void;
  /** An event or a call's answer: one entry changed, or with `removed` went away. */
  applyDownload(item: DownloadItem & { readonly removed?: true }): void;
  setChatAfterDownload(downloadId: string | null): void;
}

export const createDownloadsSlice: SliceCreator<DownloadsSlice> = (set) => ({
  downloads: {},
  downloadsLoaded: false,
  downloadsError: null,
  chatAfterDownload: null,
  setDownloads: (items) =>
    set((s) => ({
      downloads: Object.fromEntries(items.map((item) => [item.id, item])),
      downloadsLoaded: true,
      downloadsError: null,
      // A download the host no longer knows (cleared elsewhere) cannot end in a chat.
      chatAfterDownload: s.chatAfterDownload !== null && items.some((i) => i.id === s.chatAfterDownload) ? s.chatAfterDownload : null,
    })),
  setDownloadsError: (downloadsError) => set({ downloadsError }),
  applyDownload: ({ removed, ...item }) =>
    set((s) => {
      if (removed) {
        if (!(item.id in s.downloads)) return s;
        const { [item.id]: _gone, ...rest } = s.downloads;
        return { downloads: rest, chatAfterDownload: s.chatAfterDownload === item.id ? null : s.chatAfterDownload };
      }
      return { downloads: { ...s.downloads, [item.id]: item } };
    }),
  setChatAfterDownload: (chatAfterDownload) => set({ chatAfterDownload }),
});
