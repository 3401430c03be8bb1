/**
 * The Models screen's Downloads tab: the host's queue (it keeps downloading while this screen is
 * closed), each with its progress and controls, and Clear finished for the ones that ended.
 */
import { useState } from 'react';
import type { DownloadItem, HearthError } from '../contract.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { endedDownloadStatuses } from '../state/downloads-slice.ts';
import { selectChatAfterDownload, selectDownloads, selectDownloadsError, selectDownloadsLoaded, selectLoadedModelPath, selectLoadPending } from '../state/selectors.ts';
import { DownloadRow } from './ModelBits.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

const muted = 'text-sm text-stone-500 dark:text-stone-400';

/** Oldest first, as the host lists them. */
export function orderedDownloads(downloads: Readonly<Record<string, DownloadItem>>): DownloadItem[] {
  return Object.values(downloads).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

export function DownloadsView() {
  const actions = useActions();
  const downloads = useHearth(selectDownloads);
  const loaded = useHearth(selectDownloadsLoaded);
  const listError = useHearth(selectDownloadsError);
  const loadedPath = useHearth(selectLoadedModelPath);
  const loadPending = useHearth(selectLoadPending);
  const chatAfter = useHearth(selectChatAfterDownload);
  const [error, setError] = useState<HearthError | null>(null);
  const items = orderedDownloads(downloads);
  const ended = items.some((item) => endedDownloadStatuses.includes(item.status));

  /** A control's failure shows above the list until the next control succeeds. */
  const run = async (call: () => Promise<{ ok: boolean; error?: HearthError }>) => {
    const result = await call();
    setError(result.ok ? null : (result.error ?? null));
  };

  return (
    <section aria-labelledby="downloads-heading" className="space-y-3">
      <div className="flex items-center justify-between gap-3">
        <h2 id="downloads-heading" className="text-base font-semibold">
          Downloads
        </h2>
        <button type="button" disabled={!ended} onClick={() => void run(() => actions.clearDownloads())} className={buttonStyles.secondary}>
          Clear finished
        </button>
      </div>
      {error && <ErrorBox error={error} alert />}
      {listError && !loaded ? (
        <ErrorBox error={listError} title="The download queue could not be read.">
          <button type="button" onClick={() => void actions.loadDownloads()} className={`${buttonStyles.secondary} mt-3`}>
            Try again
          </button>
        </ErrorBox>
      ) : !loaded ? (
        <p className={muted}>Loading…</p>
      ) : items.length === 0 ? (
        <p className={muted}>
          No downloads. Find a model in{' '}
          <a href="#/models/discover" className="font-medium text-amber-700 underline dark:text-amber-400">
            Discover
          </a>
          .
        </p>
      ) : (
        <ul aria-label="Download queue" className="divide-y divide-stone-200 dark:divide-stone-800">
          {items.map((item) => (
            <DownloadRow
              key={item.id}
              item={item}
              loaded={loadedPath === item.path}
              loadPending={loadPending}
              chatAfter={chatAfter === item.id}
              onPause={() => void run(() => actions.pauseDownload(item.id))}
              onResume={() => void run(() => actions.resumeDownload(item.id))}
              onCancel={() => void run(() => actions.cancelDownload(item.id))}
              onLoad={() => void run(() => actions.loadModel(item.path))}
              onLoadAndChat={() => void run(() => actions.loadAndChat(item.path))}
            />
          ))}
        </ul>
      )}
    </section>
  );
}
