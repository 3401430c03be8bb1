/**
 * Words and figures for the Models screens: parameter counts, the planner's verdicts and the
 * device they were made for, Hugging Face files grouped by quantization, download rows, and the
 * first-run recommendation. Pure, so the screens and their tests say each thing one way.
 */
import type {
  DeviceMemory,
  DownloadItem,
  FileFit,
  FitKvType,
  FitVerdict,
  HearthError,
  HubFile,
  HubRepo,
  LocalModel,
  ModelSource,
  RecommendedModel,
  RepoFit,
} from '../contract.ts';
import { modelSources } from '../contract.ts';
import type { Remote } from '../state/hub-slice.ts';
import { formatBytes, formatCount } from './format.ts';

/** "8.0B", "135M", "1.2T"; a model's size as people quote it. */
export function formatParams(count: number | null): string | null {
  if (count === null || !Number.isFinite(count) || count <= 0) return null;
  if (count >= 1e12) return `${(count / 1e12).toFixed(1)}T`;
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`;
  if (count >= 1e6) return `${Math.round(count / 1e6)}M`;
  if (count >= 1e3) return `${Math.round(count / 1e3)}K`;
  return String(count);
}

/** Local models by source in the contract's order (Hearth's own first, then the other apps), each group newest first (the list's own order); empty groups left out. */
export function groupBySource(models: readonly LocalModel[]): { readonly source: ModelSource; readonly models: readonly LocalModel[] }[] {
  return modelSources.map((source) => ({ source, models: models.filter((m) => m.source === source) })).filter((g) => g.models.length > 0);
}

/** The facts of a local model on one line: "Q4_K_M · llama · 8.0B · 8,192 context". */
export function modelFacts(model: Pick<LocalModel, 'quantization' | 'architecture' | 'parameterCount' | 'trainedContextLength'>): string {
  const parts: string[] = [];
  if (model.quantization) parts.push(model.quantization);
  if (model.architecture) parts.push(model.architecture);
  const params = formatParams(model.parameterCount);
  if (params) parts.push(params);
  if (model.trainedContextLength) parts.push(`${formatCount(model.trainedContextLength)} context`);
  return parts.join(' · ');
}

/** "just now", "5 minutes ago", "3 days ago", "2 years ago"; "unknown" when the Hub did not say. */
export function relativeTime(epochMs: number | null, now = Date.now()): string {
  if (epochMs === null || !Number.isFinite(epochMs)) return 'unknown';
  const seconds = Math.max(0, Math.round((now - epochMs) / 1000));
  const steps: [number, string][] = [
    [365 * 86_400, 'year'],
    [30 * 86_400, 'month'],
    [7 * 86_400, 'week'],
    [86_400, 'day'],
    [3_600, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, unit] of steps) {
    const n = Math.floor(seconds / size);
    if (n >= 1) return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  }
  return 'just now';
}

/** "1.2M", "34.5K", "980": downloads and likes in a results list. */
export function compactCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** The badge text of a verdict. */
export const verdictText: Readonly<Record<FitVerdict, string>> = {
  gpu: 'Runs on GPU',
  partial: 'Partly on GPU',
  ram: 'Runs in RAM',
  'too-large': 'Too large',
};

/** What each verdict means, for the badge's title and the screen reader. */
export const verdictHelp: Readonly<Record<FitVerdict, string>> = {
  gpu: 'The weights and the context fit in video memory: the fastest way to run it.',
  partial: 'Some layers run on the GPU, the rest on the CPU: it works, more slowly.',
  ram: 'It runs on the CPU from RAM: it works, slowly for a large model.',
  'too-large': 'Even with the smallest KV type it does not fit with a useful context on this machine.',
};

/** A verdict's rank for choosing: higher is better. */
const verdictRank: Readonly<Record<FitVerdict, number>> = { gpu: 3, partial: 2, ram: 1, 'too-large': 0 };

/** "f16" → "F16": KV types as the fit table labels them. */
export function kvTypeLabel(type: FitKvType): string {
  return type.toUpperCase();
}

/**
 * The device a verdict was made for: "Planned for NVIDIA GeForce RTX 4090, 24 GiB VRAM, 64 GiB RAM",
 * on Apple silicon "Planned for Apple M2 Pro, 32 GiB unified memory (Metal may use 21.3 GiB)",
 * without a GPU "Planned for this CPU, 16 GiB RAM". Totals, in GiB (what the shops call GB).
 */
export function fitDeviceLine(device: DeviceMemory): string {
  const gib = (bytes: number) => `${Number((bytes / 1024 ** 3).toFixed(1))} GiB`;
  const backend = { cuda: 'CUDA', vulkan: 'Vulkan', metal: 'Metal', cpu: 'CPU' }[device.backend];
  if (device.unifiedMemory) {
    const name = device.gpuName ?? 'Apple silicon';
    const metal = device.vramTotalBytes === null ? '' : ` (Metal may use ${gib(device.vramTotalBytes)})`;
    return `Planned for ${name}, ${gib(device.ramTotalBytes)} unified memory${metal}`;
  }
  if (device.vramTotalBytes === null || device.backend === 'cpu') return `Planned for this CPU, ${gib(device.ramTotalBytes)} RAM`;
  const name = device.gpuName ?? `a ${backend} GPU`;
  return `Planned for ${name}, ${gib(device.vramTotalBytes)} VRAM, ${gib(device.ramTotalBytes)} RAM`;
}

/** "32,768 tokens", or why the type cannot run. */
export function fitContextText(context: FileFit['contexts'][number]): string {
  if (context.refused) return `not here: ${context.refused}`;
  if (context.maxContext <= 0) return 'does not fit';
  return `${formatCount(context.maxContext)} tokens`;
}

/** A repository's files grouped by quantization, in the files' order (smallest first); unnamed ones last as "Other". */
export function groupByQuantization(files: readonly HubFile[]): { readonly quantization: string; readonly files: readonly HubFile[] }[] {
  const groups = new Map<string, HubFile[]>();
  for (const file of files) {
    const key = file.quantization ?? 'Other';
    const group = groups.get(key);
    if (group) group.push(file);
    else groups.set(key, [file]);
  }
  const entries = [...groups.entries()];
  entries.sort(([a], [b]) => (a === 'Other' ? 1 : 0) - (b === 'Other' ? 1 : 0));
  return entries.map(([quantization, group]) => ({ quantization, files: group }));
}

/** "3 parts", or null for a single file. */
export function partsText(file: Pick<HubFile, 'paths'>): string | null {
  return file.paths.length > 1 ? `${file.paths.length} parts` : null;
}

/** "12.3 MB/s". */
export function speedText(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "45 s left", "3 min left", "1 h 20 min left"; null when unknown. */
export function etaText(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return null;
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h left` : `${hours} h ${rest} min left`;
}

/** A download's status as a word for its row. */
export const downloadStatusText: Readonly<Record<DownloadItem['status'], string>> = {
  queued: 'Queued',
  downloading: 'Downloading',
  verifying: 'Verifying',
  paused: 'Paused',
  done: 'Done',
  error: 'Failed',
  cancelled: 'Cancelled',
};

/** "1.20 GB of 4.92 GB", or just what arrived while the total is unknown. */
export function downloadBytesText(item: Pick<DownloadItem, 'downloadedBytes' | 'totalBytes'>): string {
  return item.totalBytes > 0 ? `${formatBytes(item.downloadedBytes)} of ${formatBytes(item.totalBytes)}` : formatBytes(item.downloadedBytes);
}

/**
 * What the user can do about a stopped download. A full disk pauses it (the host keeps what
 * arrived), so the way out is to make room and resume; other errors carry their own hint.
 */
export function downloadHint(item: Pick<DownloadItem, 'status' | 'error'>): string | null {
  if (!item.error) return null;
  if (item.error.code === 'DISK_FULL') return 'Free space, then Resume.';
  if (item.error.code === 'AUTH_REQUIRED') return item.error.hint ?? 'Add a Hugging Face token that may read this repository, then Resume.';
  return item.error.hint ?? (item.status === 'error' ? 'Resume tries again from where it stopped.' : null);
}

/** The Hub's page for a repository, for "request access" and gated repositories. */
export function hubRepoUrl(endpoint: string, repo: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${repo.split('/').map(encodeURIComponent).join('/')}`;
}

/** One recommended model as this machine sees it. */
export interface RecommendationRow {
  readonly model: RecommendedModel;
  /** The repository's file of the recommended quantization; null until the repository answered, or when it has none. */
  readonly file: HubFile | null;
  readonly fit: FileFit | null;
  /** Why the file or its verdict is not known (the Hub could not be reached, the file is gone). */
  readonly error: HearthError | null;
  /** The repository or its verdicts are still on their way. */
  readonly pending: boolean;
}

/** Each recommendation with its file and verdict, from the repositories and fits the store holds. */
export function recommendationRows(
  models: readonly RecommendedModel[],
  repos: Readonly<Record<string, Remote<HubRepo>>>,
  fits: Readonly<Record<string, Remote<RepoFit>>>,
): RecommendationRow[] {
  return models.map((model) => {
    const repo = repos[model.repo];
    const fit = fits[model.repo];
    const wanted = model.quantization.toUpperCase();
    const file = repo?.value?.files.find((f) => f.quantization?.toUpperCase() === wanted) ?? null;
    const verdict = file ? fit?.value?.files[file.id] : undefined;
    const pending = repo === undefined || repo.pending || (file !== null && (fit === undefined || fit.pending));
    let error = repo?.error ?? null;
    if (!error && repo?.value && !file) error = { code: 'NOT_FOUND', message: `The repository has no ${model.quantization} file.` };
    if (!error && file && fit?.error) error = fit.error;
    if (!error && verdict && 'error' in verdict) error = verdict.error;
    return { model, file, fit: verdict && 'fit' in verdict ? verdict.fit : null, error, pending };
  });
}

/**
 * The most a first model should weigh when it runs from RAM: decoding reads every weight once per
 * token, so a CPU's speed is its memory bandwidth over the weights' size. A laptop's ~40–60 GB/s
 * gives about 20 tokens a second at 2.5 GB, a comfortable first chat; at 9 GB it is about 5, and
 * the first impression is a slow one.
 */
export const ramComfortBytes = 2.5e9;

/**
 * The recommendation for this machine: the largest model that runs fully on the GPU; without
 * one, the largest that runs from RAM within `ramComfortBytes` (the smallest that runs when none
 * is that small); null when none runs or nothing is known yet.
 */
export function pickRecommended(rows: readonly RecommendationRow[]): RecommendationRow | null {
  const size = (row: RecommendationRow) => row.file?.sizeBytes ?? row.model.approxSizeBytes;
  const largest = (pool: readonly RecommendationRow[]) =>
    pool.reduce((best, row) => (size(row) > size(best) || (size(row) === size(best) && rank(row) > rank(best)) ? row : best));
  const runs = rows.filter((row) => row.fit !== null && row.fit.verdict !== 'too-large');
  if (runs.length === 0) return null;
  const onGpu = runs.filter((row) => row.fit?.verdict === 'gpu');
  if (onGpu.length > 0) return largest(onGpu);
  const comfortable = runs.filter((row) => size(row) <= ramComfortBytes);
  if (comfortable.length > 0) return largest(comfortable);
  return runs.reduce((best, row) => (size(row) < size(best) ? row : best));
}

function rank(row: RecommendationRow): number {
  return row.fit ? verdictRank[row.fit.verdict] : -1;
}
