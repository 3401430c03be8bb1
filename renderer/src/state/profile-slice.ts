import type { CallInput, HearthError, KvPlan, KvQuality, ModelProfileView, SpeedProfile } from '../contract.ts';
import type { SliceCreator } from './types.ts';

/**
 * A model's own settings as the host last reported them: one model's profile (the
 * loaded one, or the last one), the planner's table for the context being typed, and the
 * quality meter's last result. Fetched on demand by the Settings screen; the form being edited
 * stays in the component, as the Cache section's does.
 */
export interface ProfileSlice {
  readonly profile: ModelProfileView | null;
  readonly profileError: HearthError | null;
  readonly kvPlan: KvPlan | null;
  /** What `kvPlan` answers (the model and the context it was computed for). */
  readonly kvPlanInput: CallInput<'models.plan'> | null;
  /** The last `models.plan` failed; the table above (if any) is older. */
  readonly kvPlanError: HearthError | null;
  /** A plan is being computed (the table shown may be for the previous inputs). */
  readonly kvPlanPending: boolean;
  readonly kvQuality: KvQuality | null;
  /** The model the quality was measured on (the call names none: it is the loaded one). */
  readonly kvQualityPath: string | null;
  readonly kvQualityError: HearthError | null;
  /** A measurement runs (it takes seconds: two passes over the calibration text). */
  readonly kvQualityPending: boolean;

  setProfile(view: ModelProfileView | null, error?: HearthError | null): void;
  setKvPlanPending(): void;
  /** A plan (with the input it answers), or on a failure null and the error beside the last plan. */
  setKvPlan(plan: { plan: KvPlan; input: CallInput<'models.plan'> } | null, error?: HearthError | null): void;
  setKvQualityPending(): void;
  setKvQuality(quality: { quality: KvQuality; path: string | null } | null, error?: HearthError | null): void;

  /** The model a speed measurement (`models.measureSpeed`) runs for; null when none does. */
  readonly speedPendingPath: string | null;
  /** The last measurement asked for failed, on the model `speedErrorPath`. */
  readonly speedError: HearthError | null;
  readonly speedErrorPath: string | null;
  setSpeedPending(path: string): void;
  /** A measurement's answer: its profile goes into `profile` when that is the same model's. */
  setSpeed(path: string, speed: SpeedProfile | null, error?: HearthError | null): void;

  /**
   * The Models screen's plans, by `planKey`: each asked for when the user opens a row's memory
   * plan, and kept for the session so that opening it again is instant.
   */
  readonly modelPlans: Readonly<Record<string, ModelPlanEntry>>;
  setModelPlan(key: string, entry: ModelPlanEntry): void;
  /** Drops the cached plans whose key passes `which` (all without it): their inputs changed. */
  forgetModelPlans(which?: (key: string) => boolean): void;
}

/** What the Models screen plans: a local file (a file not downloaded yet gets `hub.fit`'s verdicts). */
export type PlanTarget = { readonly path: string };

/** One model's plan on the Models screen; `plan` stays beside a later failure to refresh it. */
export interface ModelPlanEntry {
  readonly plan: KvPlan | null;
  readonly error: HearthError | null;
  readonly pending: boolean;
}

/** The cache key of a target. */
export function planKey(target: PlanTarget): string {
  return `path:${target.path}`;
}

export const createProfileSlice: SliceCreator<ProfileSlice> = (set) => ({
  profile: null,
  profileError: null,
  kvPlan: null,
  kvPlanInput: null,
  kvPlanError: null,
  kvPlanPending: false,
  kvQuality: null,
  kvQualityPath: null,
  kvQualityError: null,
  kvQualityPending: false,
  speedPendingPath: null,
  speedError: null,
  speedErrorPath: null,
  modelPlans: {},

  setProfile: (view, error = null) => set((s) => ({ profile: view ?? s.profile, profileError: error })),
  setKvPlanPending: () => set({ kvPlanPending: true }),
  setKvPlan: (plan, error = null) =>
    set((s) => ({ kvPlan: plan?.plan ?? s.kvPlan, kvPlanInput: plan?.input ?? s.kvPlanInput, kvPlanError: error, kvPlanPending: false })),
  setKvQualityPending: () => set({ kvQualityPending: true, kvQualityError: null }),
  setKvQuality: (quality, error = null) =>
    set((s) => ({
      kvQuality: quality?.quality ?? s.kvQuality,
      kvQualityPath: quality ? quality.path : s.kvQualityPath,
      kvQualityError: error,
      kvQualityPending: false,
    })),
  setSpeedPending: (path) => set({ speedPendingPath: path, speedError: null, speedErrorPath: null }),
  setSpeed: (path, speed, error = null) =>
    set((s) => ({
      profile: speed && s.profile?.path === path ? { ...s.profile, speed } : s.profile,
      speedPendingPath: s.speedPendingPath === path ? null : s.speedPendingPath,
      speedError: error,
      speedErrorPath: error ? path : null,
    })),
  setModelPlan: (key, entry) => set((s) => ({ modelPlans: { ...s.modelPlans, [key]: entry } })),
  forgetModelPlans: (which) =>
    set((s) => ({ modelPlans: which ? Object.fromEntries(Object.entries(s.modelPlans).filter(([key]) => !which(key))) : {} })),
});
