import type { DownloadProgress, HearthError, LocalModel, RecommendedModel } from '../contract.ts';
import type { SliceCreator } from './types.ts';

export interface ModelsSlice {
  readonly localModels: readonly LocalModel[] | null;
  readonly localModelsError: HearthError | null;
  readonly recommended: readonly RecommendedModel[] | null;
  /** By download id; the newest entry per URI is the one shown. */
  readonly downloads: Readonly<Record<string, DownloadProgress>>;
  /** The last `models.load` that failed, shown beside the form that started it. */
  readonly loadError: HearthError | null;
  readonly loadPending: boolean;

  setLocalModels(models: readonly LocalModel[] | null, error?: HearthError | null): void;
  setRecommended(models: readonly RecommendedModel[]): void;
  setDownload(progress: DownloadProgress): void;
  setLoadState(pending: boolean, error: HearthError | null): void;
}

export const createModelsSlice: SliceCreator<ModelsSlice> = (set) => ({
  localModels: null,
  localModelsError: null,
  recommended: null,
  downloads: {},
  loadError: null,
  loadPending: false,

  setLocalModels: (localModels, error = null) => set({ localModels, localModelsError: error }),
  setRecommended: (recommended) => set({ recommended }),
  setDownload: (progress) => set((s) => ({ downloads: { ...s.downloads, [progress.downloadId]: progress } })),
  setLoadState: (loadPending, loadError) => set({ loadPending, loadError }),
});
