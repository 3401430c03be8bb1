/**
 * A Hugging Face repository's page: its GGUF files grouped by quantization, each with its size,
 * the planner's verdict for this machine (where it runs, and the longest context per KV type) and
 * a Download button. Gated and private repositories explain themselves and take a token.
 */
import { useEffect, useState } from 'react';
import type { DownloadItem, HearthError, HubFile, HubRepo, RepoFit } from '../contract.ts';
import { downloadFraction, formatBytes, formatPercent } from '../lib/format.ts';
import { compactCount, downloadStatusText, fitDeviceLine, groupByQuantization, hubRepoUrl, partsText, relativeTime } from '../lib/models.ts';
import { routeHash } from '../lib/route.ts';
import { remoteIdle } from '../state/hub-slice.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectDownloadOf, selectHubAuth, selectHubFit, selectHubRepo, selectLoadedModelPath, selectLoadPending } from '../state/selectors.ts';
import { AuthRequired, hubDefaultEndpoint } from './HubAuth.tsx';
import { ChevronLeftIcon } from './icons.tsx';
import { AccessBadges, FitContexts, VerdictBadge } from './ModelBits.tsx';
import { buttonStyles, ErrorBox, ProgressBar } from './ui.tsx';

const muted = 'text-sm text-stone-500 dark:text-stone-400';

export function HubRepoPage(props: { repo: string }) {
  const actions = useActions();
  const { repo } = props;
  const files = useHearth(selectHubRepo(repo)) ?? remoteIdle;
  const fit = useHearth(selectHubFit(repo)) ?? remoteIdle;
  const auth = useHearth(selectHubAuth);
  useEffect(() => {
    void actions.openHubRepo(repo);
  }, [actions, repo]);
  const authError = [files.error, fit.error].find((e) => e?.code === 'AUTH_REQUIRED') ?? null;
  const retry = () => void actions.openHubRepo(repo, { fresh: true });

  return (
    <article aria-labelledby="hub-repo-heading" className="space-y-4">
      <a href={routeHash({ name: 'models', tab: 'discover' })} className={`${buttonStyles.ghost} -ml-2`}>
        <ChevronLeftIcon className="size-4" />
        Discover
      </a>
      <header className="space-y-1">
        <h2 id="hub-repo-heading" className="flex flex-wrap items-center gap-2 text-lg font-semibold break-all">
          {repo}
          {files.value && <AccessBadges repo={files.value} />}
        </h2>
        {files.value && <RepoSummaryLine repo={files.value} />}
        <a href={hubRepoUrl(auth?.endpoint ?? hubDefaultEndpoint, repo)} target="_blank" rel="noreferrer" className="text-sm font-medium text-amber-700 underline dark:text-amber-400">
          Open on Hugging Face
        </a>
      </header>
      {authError ? (
        <AuthRequired repo={repo} error={authError} endpoint={auth?.endpoint ?? hubDefaultEndpoint} />
      ) : files.error ? (
        <ErrorBox error={files.error} alert title="The repository could not be read.">
          <button type="button" onClick={retry} className={`${buttonStyles.secondary} mt-3`}>
            Try again
          </button>
        </ErrorBox>
      ) : files.value === null ? (
        <p className={muted}>Reading the repository…</p>
      ) : (
        <RepoFiles repo={files.value} fit={fit.value} fitPending={fit.pending} fitError={fit.error} onRetryFit={retry} />
      )}
    </article>
  );
}

function RepoSummaryLine(props: { repo: HubRepo }) {
  const { repo } = props;
  return (
    <p className="flex flex-wrap gap-x-3 text-xs text-stone-500 tabular-nums dark:text-stone-400">
      <span>{compactCount(repo.downloads)} downloads</span>
      <span>{compactCount(repo.likes)} likes</span>
      <span>updated {relativeTime(repo.lastModified)}</span>
      <span>{repo.license ?? 'no licence given'}</span>
    </p>
  );
}

export interface RepoFilesProps {
  readonly repo: HubRepo;
  readonly fit: RepoFit | null;
  readonly fitPending: boolean;
  readonly fitError: HearthError | null;
  onRetryFit(): void;
}

/** The device line, then the files by quantization. */
export function RepoFiles(props: RepoFilesProps) {
  const { repo, fit } = props;
  if (repo.files.length === 0) return <p className={muted}>This repository has no GGUF model files.</p>;
  return (
    <div className="space-y-4">
      <div data-testid="hub-device" className="min-h-5 text-sm text-stone-600 dark:text-stone-300">
        {fit ? (
          fitDeviceLine(fit.device)
        ) : props.fitError ? (
          <ErrorBox error={props.fitError} title="How the files run here could not be worked out.">
            <button type="button" onClick={props.onRetryFit} className={`${buttonStyles.secondary} mt-3`}>
              Try again
            </button>
          </ErrorBox>
        ) : (
          <span aria-live="polite">Working out how each file runs on this machine…</span>
        )}
      </div>
      {groupByQuantization(repo.files).map((group) => (
        <section key={group.quantization} aria-label={group.quantization} className="rounded-lg border border-stone-200 dark:border-stone-800">
          <h3 className="border-b border-stone-200 px-3 py-1.5 font-mono text-sm font-semibold dark:border-stone-800">{group.quantization}</h3>
          <ul className="divide-y divide-stone-200 dark:divide-stone-800">
            {group.files.map((file) => (
              <HubFileRow key={file.id} repo={repo.id} file={file} fit={fit?.files[file.id] ?? null} fitPending={props.fitPending} />
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}

function HubFileRow(props: { repo: string; file: HubFile; fit: RepoFit['files'][string] | null; fitPending: boolean }) {
  const actions = useActions();
  const download = useHearth(selectDownloadOf(props.repo, props.file.id));
  const loadedPath = useHearth(selectLoadedModelPath);
  const loadPending = useHearth(selectLoadPending);
  const [error, setError] = useState<HearthError | null>(null);
  const start = async () => {
    const result = await actions.startDownload({ repo: props.repo, file: props.file.id });
    setError(result.ok ? null : result.error);
  };
  return (
    <HubFileView
      file={props.file}
      fit={props.fit}
      fitPending={props.fitPending}
      download={download ?? null}
      loaded={download !== undefined && loadedPath === download.path}
      loadPending={loadPending}
      error={error}
      onDownload={() => void start()}
      onLoad={(path) => void actions.loadModel(path)}
    />
  );
}

export interface HubFileViewProps {
  readonly file: HubFile;
  readonly fit: RepoFit['files'][string] | null;
  readonly fitPending: boolean;
  /** The newest download of this file, if any. */
  readonly download: DownloadItem | null;
  readonly loaded: boolean;
  readonly loadPending: boolean;
  readonly error: HearthError | null;
  onDownload(): void;
  onLoad(path: string): void;
}

/** One file: name, parts and size, its verdict and contexts, and Download (or how its download goes). */
export function HubFileView(props: HubFileViewProps) {
  const { file, fit, download } = props;
  const parts = partsText(file);
  const verdict = fit && 'fit' in fit ? fit.fit : null;
  const tooLarge = verdict?.verdict === 'too-large';
  const active = download && download.status !== 'cancelled' && download.status !== 'error';
  return (
    <li data-testid={`hub-file-${file.id}`} className="space-y-1.5 px-3 py-2.5 text-sm">
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0 space-y-1">
          <p className="flex flex-wrap items-center gap-2">
            <span className="font-medium break-all">{file.name}</span>
            {verdict && <VerdictBadge verdict={verdict.verdict} testId={`verdict-${file.id}`} />}
            {!verdict && props.fitPending && <span className="text-xs text-stone-500 dark:text-stone-400">Checking…</span>}
          </p>
          <p className="text-xs text-stone-500 tabular-nums dark:text-stone-400">
            {formatBytes(file.sizeBytes)}
            {parts && ` · ${parts}`}
          </p>
        </div>
        <div className="flex shrink-0 items-center gap-2">
          {download?.status === 'done' ? (
            props.loaded ? (
              <span className="text-xs font-semibold text-green-700 dark:text-green-400">Loaded</span>
            ) : (
              <button type="button" aria-label={`Load ${file.name}`} disabled={props.loadPending} onClick={() => props.onLoad(download.path)} className={buttonStyles.primary}>
                Load
              </button>
            )
          ) : active ? (
            <a href={routeHash({ name: 'models', tab: 'downloads' })} className={buttonStyles.secondary}>
              {downloadStatusText[download.status]}
              {download.status === 'downloading' && downloadFraction(download) !== null && ` ${formatPercent(downloadFraction(download) ?? 0)}`}
            </a>
          ) : (
            <button
              type="button"
              aria-label={`Download ${file.name}`}
              aria-describedby={tooLarge ? `too-large-${file.id}` : undefined}
              onClick={props.onDownload}
              className={tooLarge ? buttonStyles.secondary : buttonStyles.primary}
            >
              {download ? 'Download again' : 'Download'}
            </button>
          )}
        </div>
      </div>
      {verdict && <FitContexts fit={verdict} testId={`contexts-${file.id}`} />}
      {fit && 'error' in fit && <p className="text-xs text-red-700 dark:text-red-300">Its header could not be read: {fit.error.message}</p>}
      {tooLarge && (
        <p id={`too-large-${file.id}`} className="text-xs text-red-700 dark:text-red-300">
          Too large for this machine: it would not load with a useful context. A smaller quantization may fit.
        </p>
      )}
      {active && download.status !== 'done' && <ProgressBar label={`Download of ${file.name}`} value={downloadFraction(download)} />}
      {download?.status === 'error' && download.error && <ErrorBox error={download.error} title="The last download failed." />}
      {props.error && <ErrorBox error={props.error} alert />}
    </li>
  );
}
