/**
 * First run: no model is loaded and the library is empty. The recommended models, each with the
 * planner's verdict for this machine, the best one marked; one click downloads it, then loads it
 * and opens a new chat (the store remembers that, so leaving this panel does not stop it).
 */
import { useEffect, useState } from 'react';
import type { DownloadItem, HearthError, SpeedProgress } from '../contract.ts';
import { downloadFraction, formatBytes } from '../lib/format.ts';
import { downloadBytesText, downloadStatusText, etaText, pickRecommended, recommendationRows, type RecommendationRow } from '../lib/models.ts';
import { measuringText } from '../lib/speed.ts';
import { activeDownloadStatuses } from '../state/downloads-slice.ts';
import { useActions, useHearth, useStoreActions } from '../state/react.tsx';
import {
  newestDownloadOf,
  selectChatAfterDownload,
  selectDownloads,
  selectHubFits,
  selectHubRepos,
  selectLoadPending,
  selectModel,
  selectRecommended,
  selectRecommendedError,
} from '../state/selectors.ts';
import { FitContexts, VerdictBadge } from './ModelBits.tsx';
import { buttonStyles, ErrorBox, ProgressBar } from './ui.tsx';

export function Onboarding() {
  const actions = useActions();
  const recommended = useHearth(selectRecommended);
  const recommendedError = useHearth(selectRecommendedError);
  const repos = useHearth(selectHubRepos);
  const fits = useHearth(selectHubFits);
  const downloads = useHearth(selectDownloads);
  const chatAfter = useHearth(selectChatAfterDownload);
  const loadPending = useHearth(selectLoadPending);
  const model = useHearth(selectModel);
  const modelLoading = model.status === 'loading';
  const store = useStoreActions();
  const [error, setError] = useState<HearthError | null>(null);
  useEffect(() => {
    void actions.loadRecommendations();
  }, [actions]);
  const rows = recommendationRows(recommended ?? [], repos, fits);
  const start = async (row: RecommendationRow, stopped: DownloadItem | null) => {
    if (!row.file) return;
    // A paused or failed download goes on where it stopped rather than starting over.
    const result = stopped ? await actions.resumeDownload(stopped.id) : await actions.downloadAndChat(row.model.repo, row.file.id);
    if (stopped && result.ok) store.setChatAfterDownload(stopped.id);
    setError(result.ok ? null : result.error);
  };
  return (
    <OnboardingView
      rows={recommended === null ? null : rows}
      listError={recommended === null ? recommendedError : null}
      downloads={downloads}
      chatAfter={chatAfter}
      busy={loadPending || modelLoading}
      measuring={modelLoading ? (model.measuring ?? null) : null}
      error={error}
      onStart={(row, stopped) => void start(row, stopped)}
      onRetry={() => void actions.loadRecommendations({ fresh: true })}
    />
  );
}

export interface OnboardingViewProps {
  /** null while the list is on its way. */
  readonly rows: readonly RecommendationRow[] | null;
  readonly listError: HearthError | null;
  readonly downloads: Readonly<Record<string, DownloadItem>>;
  readonly chatAfter: string | null;
  /** A model is loading (the download finished): the buttons wait. */
  readonly busy: boolean;
  /** The loading model's speed measurement (its first load here), shown in place of "Loading the model…". */
  readonly measuring?: SpeedProgress | null;
  readonly error: HearthError | null;
  /** `stopped`: the row's paused or failed download, to resume. */
  onStart(row: RecommendationRow, stopped: DownloadItem | null): void;
  onRetry(): void;
}

/** The newest download of a row's file. */
function downloadOf(row: RecommendationRow, downloads: Readonly<Record<string, DownloadItem>>): DownloadItem | null {
  return row.file ? (newestDownloadOf(downloads, row.model.repo, row.file.id) ?? null) : null;
}

export function OnboardingView(props: OnboardingViewProps) {
  const best = props.rows ? pickRecommended(props.rows) : null;
  const failed = props.rows?.some((row) => row.error !== null && row.error.code !== 'NOT_FOUND') ?? false;
  return (
    <section aria-labelledby="onboarding-heading" data-testid="onboarding" className="space-y-3 rounded-lg border border-amber-300 bg-amber-50/50 p-4 dark:border-amber-800 dark:bg-amber-950/30">
      <div>
        <h2 id="onboarding-heading" className="text-base font-semibold">
          Get a model to chat with
        </h2>
        <p className="text-sm text-stone-600 dark:text-stone-300">
          Hearth runs models on this computer. These small ones work well; the verdicts say how each runs on this machine.
        </p>
      </div>
      {props.listError ? (
        <ErrorBox error={props.listError} alert title="The recommendations could not be read.">
          <button type="button" onClick={props.onRetry} className={`${buttonStyles.secondary} mt-3`}>
            Try again
          </button>
        </ErrorBox>
      ) : props.rows === null ? (
        <p className="text-sm text-stone-500 dark:text-stone-400">Loading…</p>
      ) : (
        <>
          <ul className="space-y-2">
            {props.rows.map((row) => (
              <OnboardingRow
                key={row.model.id}
                row={row}
                best={best?.model.id === row.model.id}
                download={downloadOf(row, props.downloads)}
                chatAfter={props.chatAfter}
                busy={props.busy}
                measuring={props.measuring ?? null}
                onStart={(stopped) => props.onStart(row, stopped)}
              />
            ))}
          </ul>
          {failed && (
            <div className="flex flex-wrap items-center gap-3 text-sm">
              <span>Some details could not be fetched from Hugging Face.</span>
              <button type="button" onClick={props.onRetry} className={buttonStyles.secondary}>
                Try again
              </button>
            </div>
          )}
        </>
      )}
      {props.error && <ErrorBox error={props.error} alert title="The download could not start." />}
      <p className="text-xs text-stone-500 dark:text-stone-400">
        Or{' '}
        <a href="#/models/discover" className="font-medium text-amber-700 underline dark:text-amber-400">
          find another model on Hugging Face
        </a>
        , or open a GGUF file you already have.
      </p>
    </section>
  );
}

function OnboardingRow(props: { row: RecommendationRow; best: boolean; download: DownloadItem | null; chatAfter: string | null; busy: boolean; measuring: SpeedProgress | null; onStart: (stopped: DownloadItem | null) => void }) {
  const { row, download } = props;
  const { model } = row;
  const running = download !== null && activeDownloadStatuses.includes(download.status);
  const stopped = download !== null && (download.status === 'paused' || download.status === 'error');
  const eta = download?.status === 'downloading' ? etaText(download.etaSeconds) : null;
  return (
    <li
      data-testid={`onboarding-${model.id}`}
      aria-label={props.best ? `${model.name}, recommended for this machine` : model.name}
      className={`rounded-md border bg-white p-3 text-sm dark:bg-stone-900 ${props.best ? 'border-amber-400 dark:border-amber-600' : 'border-stone-200 dark:border-stone-800'}`}
    >
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0 space-y-1">
          <p className="flex flex-wrap items-center gap-2">
            <span className="font-medium">{model.name}</span>
            {props.best && (
              <span data-testid="recommended-marker" className="rounded-full bg-amber-600 px-2 py-0.5 text-xs font-semibold text-white dark:bg-amber-500 dark:text-stone-950">
                Recommended for this machine
              </span>
            )}
            {row.fit && <VerdictBadge verdict={row.fit.verdict} testId={`onboarding-verdict-${model.id}`} />}
            {!row.fit && row.pending && <span className="text-xs text-stone-500 dark:text-stone-400">Checking this machine…</span>}
          </p>
          <p className="text-stone-600 dark:text-stone-300">{model.description}</p>
          <p className="text-xs text-stone-500 tabular-nums dark:text-stone-400">
            {formatBytes(row.file?.sizeBytes ?? model.approxSizeBytes)} · {model.quantization} · {model.repo}
          </p>
          {row.fit && <FitContexts fit={row.fit} />}
          {row.error && <p className="text-xs text-red-700 dark:text-red-300">{row.error.message}</p>}
        </div>
        <div className="shrink-0">
          {running || download?.status === 'done' ? null : (
            <button
              type="button"
              aria-label={stopped ? `Try again: download ${model.name} and chat` : `Download ${model.name} and chat`}
              disabled={row.file === null || props.busy}
              onClick={() => props.onStart(stopped ? download : null)}
              className={props.best ? buttonStyles.primary : buttonStyles.secondary}
            >
              {stopped ? 'Try again' : 'Download and chat'}
            </button>
          )}
        </div>
      </div>
      {download && download.status !== 'cancelled' && (
        <div className="mt-2 space-y-1">
          <ProgressBar label={`Download of ${model.name}`} value={download.status === 'done' ? 1 : downloadFraction(download)} />
          <p className="flex flex-wrap gap-x-3 text-xs text-stone-600 tabular-nums dark:text-stone-300">
            <span className="font-medium">{downloadStatusText[download.status]}</span>
            <span>{downloadBytesText(download)}</span>
            {eta && <span>{eta}</span>}
            {props.chatAfter === download.id && <span>A new chat opens when it is done.</span>}
            {download.status === 'done' && props.busy && <span>{props.measuring ? measuringText(props.measuring) : 'Loading the model…'}</span>}
          </p>
          {download.error && <ErrorBox error={download.error} />}
        </div>
      )}
    </li>
  );
}
