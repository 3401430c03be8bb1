/**
 * Small pieces the Models screens share: the verdict badge and the per-KV-type contexts of a fit,
 * a download's row, and the Hugging Face badges. Hook-free, so tests render them bare.
 */
import type { DownloadItem, FileFit, FitVerdict, HubRepoSummary } from '../contract.ts';
import { downloadFraction, formatPercent } from '../lib/format.ts';
import { downloadBytesText, downloadHint, downloadStatusText, etaText, fitContextText, kvTypeLabel, speedText, verdictHelp, verdictText } from '../lib/models.ts';
import { buttonStyles, ErrorBox, ProgressBar } from './ui.tsx';

const verdictStyles: Readonly<Record<FitVerdict, string>> = {
  gpu: 'border-green-300 bg-green-50 text-green-900 dark:border-green-800 dark:bg-green-950 dark:text-green-100',
  partial: 'border-sky-300 bg-sky-50 text-sky-900 dark:border-sky-800 dark:bg-sky-950 dark:text-sky-100',
  ram: 'border-amber-300 bg-amber-50 text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-100',
  'too-large': 'border-red-300 bg-red-50 text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100',
};

export const badgeBase = 'inline-flex items-center rounded-full border px-2 py-0.5 text-xs font-medium whitespace-nowrap';

/** "Runs on GPU", "Partly on GPU", "Runs in RAM" or "Too large", with what it means as its title. */
export function VerdictBadge(props: { verdict: FitVerdict; testId?: string }) {
  return (
    <span data-testid={props.testId} title={verdictHelp[props.verdict]} className={`${badgeBase} ${verdictStyles[props.verdict]}`}>
      {verdictText[props.verdict]}
    </span>
  );
}

/** A neutral badge (Gated, Private, a source's name). */
export function Badge(props: { children: string; title?: string; tone?: 'neutral' | 'warn' }) {
  const tone =
    props.tone === 'warn'
      ? 'border-amber-300 bg-amber-50 text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-100'
      : 'border-stone-300 bg-stone-50 text-stone-700 dark:border-stone-600 dark:bg-stone-800 dark:text-stone-200';
  return (
    <span title={props.title} className={`${badgeBase} ${tone}`}>
      {props.children}
    </span>
  );
}

/** A repository's access badges: gated (approval on the Hub) and private. */
export function AccessBadges(props: { repo: Pick<HubRepoSummary, 'gated' | 'private'> }) {
  return (
    <>
      {props.repo.gated !== false && (
        <Badge tone="warn" title={props.repo.gated === 'manual' ? 'The authors approve each request on the Hub.' : 'Access is granted on the Hub once you accept the terms.'}>
          Gated
        </Badge>
      )}
      {props.repo.private && (
        <Badge tone="warn" title="Visible only with a token that may read it.">
          Private
        </Badge>
      )}
    </>
  );
}

/**
 * The longest context per KV type, the one Hearth would choose marked "default":
 * "F16 32,768 tokens (default) · Q8_0 61,440 tokens · Q4_0 not here: …".
 */
export function FitContexts(props: { fit: FileFit; testId?: string }) {
  const { fit } = props;
  return (
    <ul data-testid={props.testId} aria-label="Longest context per KV type" className="flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-stone-600 tabular-nums dark:text-stone-300">
      {fit.contexts.map((c) => (
        <li key={c.kvType} className={c.kvType === fit.chosen ? 'font-semibold text-stone-900 dark:text-stone-100' : undefined}>
          <span className="font-mono">{kvTypeLabel(c.kvType)}</span> {fitContextText(c)}
          {c.kvType === fit.chosen && ' (default)'}
        </li>
      ))}
    </ul>
  );
}

export interface DownloadRowProps {
  readonly item: DownloadItem;
  /** The model is the one loaded now (a done download then offers no Load). */
  readonly loaded: boolean;
  /** A model load is on its way: Load waits. */
  readonly loadPending: boolean;
  /** This download will load its model and open a chat when it is done (first run). */
  readonly chatAfter?: boolean;
  onPause(): void;
  onResume(): void;
  onCancel(): void;
  onLoad(): void;
  onLoadAndChat(): void;
}

/** What a download may do in each status: the buttons its row shows. */
export function downloadControls(status: DownloadItem['status']): readonly ('pause' | 'resume' | 'cancel' | 'load')[] {
  switch (status) {
    // Verifying can take a minute on a large model (a resume after a restart reads back what
    // arrived before it): it can be paused like a transfer.
    case 'queued':
    case 'downloading':
    case 'verifying':
      return ['pause', 'cancel'];
    case 'paused':
    case 'error':
      return ['resume', 'cancel'];
    case 'done':
      return ['load'];
    case 'cancelled':
      return [];
  }
}

/** One download: name, status, progress, bytes, speed and time left, its error and hint, and what can be done. */
export function DownloadRow(props: DownloadRowProps) {
  const { item } = props;
  const controls = downloadControls(item.status);
  const fraction = item.status === 'done' ? 1 : downloadFraction(item);
  const moving = item.status === 'downloading';
  const eta = moving ? etaText(item.etaSeconds) : null;
  const hint = downloadHint(item);
  const statusId = `download-${item.id}-status`;
  return (
    <li data-testid={`download-${item.id}`} aria-label={item.name} className="space-y-2 py-3 text-sm">
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <p className="truncate font-medium" title={item.name}>
            {item.name}
          </p>
          {item.repo && <p className="truncate text-xs text-stone-500 dark:text-stone-400">{item.repo}</p>}
        </div>
        <div className="flex shrink-0 items-center gap-2">
          {controls.includes('pause') && (
            <button type="button" aria-label={`Pause ${item.name}`} onClick={props.onPause} className={buttonStyles.secondary}>
              Pause
            </button>
          )}
          {controls.includes('resume') && (
            <button type="button" aria-label={`Resume ${item.name}`} onClick={props.onResume} className={buttonStyles.primary}>
              Resume
            </button>
          )}
          {controls.includes('cancel') && (
            <button type="button" aria-label={`Cancel ${item.name}`} onClick={props.onCancel} className={buttonStyles.secondary}>
              Cancel
            </button>
          )}
          {controls.includes('load') &&
            (props.loaded ? (
              <span className="text-xs font-semibold text-green-700 dark:text-green-400">Loaded</span>
            ) : (
              <>
                <button type="button" aria-label={`Load ${item.name}`} disabled={props.loadPending} onClick={props.onLoad} className={buttonStyles.secondary}>
                  Load
                </button>
                <button type="button" aria-label={`Load ${item.name} and chat`} disabled={props.loadPending} onClick={props.onLoadAndChat} className={buttonStyles.primary}>
                  Load and chat
                </button>
              </>
            ))}
        </div>
      </div>
      {item.status !== 'cancelled' && <ProgressBar label={`Download of ${item.name}`} value={fraction} />}
      <p id={statusId} data-testid={`download-${item.id}-line`} className="flex flex-wrap gap-x-3 text-xs text-stone-600 tabular-nums dark:text-stone-300">
        <span className="font-medium">{downloadStatusText[item.status]}</span>
        {item.status !== 'done' && item.status !== 'cancelled' && <span>{downloadBytesText(item)}</span>}
        {item.status === 'done' && item.totalBytes > 0 && <span>{downloadBytesText({ downloadedBytes: item.totalBytes, totalBytes: 0 })}</span>}
        {fraction !== null && item.status !== 'done' && item.status !== 'cancelled' && <span>{formatPercent(fraction)}</span>}
        {moving && item.bytesPerSecond > 0 && <span>{speedText(item.bytesPerSecond)}</span>}
        {eta && <span>{eta}</span>}
        {props.chatAfter && item.status !== 'done' && <span>A chat opens when it is done.</span>}
      </p>
      {item.error && (
        <ErrorBox error={hint === null || hint === item.error.hint ? item.error : { ...item.error, hint }} />
      )}
    </li>
  );
}
