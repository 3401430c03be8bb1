/**
 * Words and figures for generation speed: a model's measured settings (flash attention, threads,
 * batch size), its trials, the measurement under way while it loads, and the engine built for
 * this computer. Pure, so the Settings sections, the loading lines and their tests say each thing
 * one way.
 */
import { SPEED_TURN, type EngineBuildKind, type ModelStatus, type SpeedProgress, type SpeedSettings, type SpeedTrial } from '../contract.ts';
import { formatCount, formatPercent } from './format.ts';

/** "41.2", "1,234" (tokens per second: one decimal below 100, where it still tells two settings apart); "—" when not measured. */
export function tokPerSText(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value >= 100 ? formatCount(Math.round(value)) : value.toFixed(1);
}

/** "3.84 s", "12.5 s", "184 s" for a reference turn; "—" when it could not run. */
export function secondsText(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const digits = seconds < 10 ? 2 : seconds < 100 ? 1 : 0;
  return `${digits === 0 ? formatCount(Math.round(seconds)) : seconds.toFixed(digits)} s`;
}

/** How long a measurement took: "850 ms", "42 s", "3 min 5 s". */
export function durationText(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}

/** "Flash attention off · 2 threads · batch 512". */
export function settingsText(settings: SpeedSettings): string {
  const threads = `${formatCount(settings.threads)} ${settings.threads === 1 ? 'thread' : 'threads'}`;
  return `Flash attention ${settings.flashAttention ? 'on' : 'off'} · ${threads} · batch ${formatCount(settings.batchSize)}`;
}

export function sameSettings(a: SpeedSettings, b: SpeedSettings): boolean {
  return a.flashAttention === b.flashAttention && a.threads === b.threads && a.batchSize === b.batchSize;
}

/** The trial the chosen settings came from: the first that ran with them. */
export function chosenTrialIndex(trials: readonly SpeedTrial[], chosen: SpeedSettings): number {
  const ran = trials.findIndex((t) => sameSettings(t, chosen) && t.turnSeconds !== null);
  return ran >= 0 ? ran : trials.findIndex((t) => sameSettings(t, chosen));
}

export const engineKindText: Readonly<Record<EngineBuildKind, string>> = {
  prebuilt: 'Prebuilt',
  local: 'Built for this computer',
};

/** How the choice is scored, in one line (the contract's SPEED_TURN). */
export const speedScoreText = `The settings chosen are those with the lowest time for a reference turn: reading a prompt of ${formatCount(SPEED_TURN.promptTokens)} tokens and writing a reply of ${formatCount(SPEED_TURN.replyTokens)} tokens.`;

/** "Measuring speed on this computer (3 of 12)…" */
export function measuringText(progress: SpeedProgress): string {
  return `Measuring speed on this computer (${formatCount(progress.done)} of ${formatCount(progress.total)})…`;
}

/** 0..1 of a measurement under way. */
export function measuringFraction(progress: SpeedProgress): number {
  return progress.total > 0 ? Math.min(1, Math.max(0, progress.done / progress.total)) : 0;
}

/**
 * A loading model's progress in words: the measurement under way when there is one (the
 * percent would sit still at the end while it runs), else the percent loaded.
 */
export function loadProgressText(model: Pick<ModelStatus, 'progress' | 'measuring'>): string {
  return model.measuring ? measuringText(model.measuring) : formatPercent(model.progress ?? 0);
}

/** The bar's value and name for a loading model: the measurement's share, or the load's. */
export function loadProgressBar(model: Pick<ModelStatus, 'progress' | 'measuring'>): { readonly label: string; readonly value: number } {
  return model.measuring ? { label: 'Speed measurement progress', value: measuringFraction(model.measuring) } : { label: 'Model loading progress', value: model.progress ?? 0 };
}
