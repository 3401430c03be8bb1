/**
 * A model's memory plan on the Models screen. The planner works from GGUF metadata alone, so the
 * plan shows before a model is downloaded or loaded: a disclosure per row that asks the host for
 * the plan when first opened. A download address is planned from its header alone, fetched over the
 * network, so that takes seconds and can fail.
 */
import { useEffect } from 'react';
import type { HearthError, KvPlan } from '../contract.ts';
import { planKey, type ModelPlanEntry, type PlanTarget } from '../state/profile-slice.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectModelPlan } from '../state/selectors.ts';
import { KvPlanSummary } from './KvPlanner.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

/** The row's toggle. `name` tells the rows' buttons apart for assistive technology. */
export function MemoryPlanButton(props: { readonly name: string; readonly open: boolean; readonly panelId: string; readonly onToggle: () => void }) {
  return (
    <button
      type="button"
      aria-expanded={props.open}
      aria-controls={props.open ? props.panelId : undefined}
      aria-label={`Memory plan for ${props.name}`}
      onClick={props.onToggle}
      className={buttonStyles.ghost}
    >
      Memory plan
    </button>
  );
}

export interface MemoryPlanViewProps {
  readonly id: string;
  readonly name: string;
  readonly target: PlanTarget;
  readonly entry: ModelPlanEntry | undefined;
  readonly onRetry: () => void;
}

/** The open panel for one state of the cached entry (no store: rendered as is by tests). */
export function MemoryPlanView(props: MemoryPlanViewProps) {
  const { entry } = props;
  const pending = entry === undefined || entry.pending;
  const plan: KvPlan | null = entry?.plan ?? null;
  const error: HearthError | null = entry?.error ?? null;
  return (
    <section id={props.id} aria-label={`Memory plan for ${props.name}`} aria-busy={pending || undefined} className="mt-2 space-y-2 rounded-md border border-stone-200 p-2 dark:border-stone-700">
      {pending && (
        <p role="status" className="text-xs text-stone-500 dark:text-stone-400">
          Reading the model file…
        </p>
      )}
      {error && (
        <ErrorBox error={error} title="The memory plan could not be made.">
          <button type="button" onClick={props.onRetry} className={`${buttonStyles.secondary} mt-2`}>
            Try again
          </button>
        </ErrorBox>
      )}
      {plan && <KvPlanSummary plan={plan} />}
      {plan && <p className="text-xs text-stone-500 dark:text-stone-400">Every pair, and a context of your choice, are in Settings → Model once the model is loaded.</p>}
    </section>
  );
}

/**
 * The open panel, bound to the store: asks for the plan when it opens (answered at once from
 * the session's cache, or run again after a failure), and again if the cached plan is dropped
 * while it is open (the model's profile or the default context changed).
 */
export function MemoryPlanPanel(props: { readonly id: string; readonly name: string; readonly target: PlanTarget }) {
  const actions = useActions();
  const { target } = props;
  const entry = useHearth(selectModelPlan(target));
  const key = planKey(target);
  const missing = entry === undefined;
  useEffect(() => {
    void actions.planModel(target);
    // `target` is a new object each render; `key` is what it stands for.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [actions, key, missing]);
  return <MemoryPlanView {...props} entry={entry} onRetry={() => void actions.planModel(target, { fresh: true })} />;
}
