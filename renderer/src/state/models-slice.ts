/**
 * The model library: every local model the host found (Hearth's folder and other apps'), the
 * first-run recommendations, and the state of the last load started from the UI.
 */
import type { HearthError, ModelLibrary, RecommendedModel } from '../contract.ts';
import type { SliceCreator } from './types.ts';

export interface ModelsSlice {
  /** null until `models.list` first answered. */
  readonly library: ModelLibrary | null;
  /** The last `models.list` failed (the library shown, if any, is the one before). */
  readonly libraryError: HearthError | null;
  readonly recommended: readonly RecommendedModel[] | null;
  readonly recommendedError: HearthError | null;
  /** The last `models.load` that failed, shown beside the form that started it. */
  readonly loadError: HearthError | null;
  readonly loadPending: boolean;

  setLibrary(library: ModelLibrary | null, error?: HearthError | null): void;
  setRecommended(models: readonly RecommendedModel[] | null, error?: HearthError | null): void;
  setLoadState(pending: boolean, error: HearthError | null): void;
}

export const createModelsSlice: SliceCreator<ModelsSlice> = (set) => ({
  library: null,
  libraryError: null,
  recommended: null,
  recommendedError: null,
  loadError: null,
  loadPending: false,

  setLibrary: (library, error = null) => set({ library, libraryError: error }),
  setRecommended: (recommended, error = null) => set({ recommended, recommendedError: error }),
  setLoadState: (loadPending, loadError) => set({ loadPending, loadError }),
});
