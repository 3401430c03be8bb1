/**
 * Settings' "Model" section: the loaded (or last) model's own settings with Apply,
 * the planner beside them, updated as the user types, the quality meter and the speed measured here. Everything here is
 * per model and saved on its own, so it sits outside the Settings form and its Save button.
 */
import { useEffect, useState } from 'react';
import type { CallInput, HearthError, ModelInfo, ModelProfile, ProfileIssue } from '../contract.ts';
import { formatCount } from '../lib/format.ts';
import { chosenPair, loadedKvText, memoryText } from '../lib/kv.ts';
import { loadProgressBar, loadProgressText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import {
  selectKvPlan,
  selectKvPlanError,
  selectKvPlanInput,
  selectKvPlanPending,
  selectKvQuality,
  selectKvQualityError,
  selectKvQualityPath,
  selectKvQualityPending,
  selectModel,
  selectProfileError,
  selectProfilePath,
} from '../state/selectors.ts';
import { KvPlanner } from './KvPlanner.tsx';
import {
  contextSizeOf,
  issuesFromMessage,
  profileFormFrom,
  profileFromForm,
  ProfileFields,
  profilePatch,
  slotsOf,
  visibleIssues,
  type ProfileForm,
} from './ModelProfile.tsx';
import { QualityMeter } from './QualityMeter.tsx';
import { SpeedSection } from './SpeedProfile.tsx';
import { buttonStyles, ErrorBox, ProgressBar } from './ui.tsx';

/** How long typing must pause before the planner runs again. */
export const planDebounceMs = 300;

/** What an automatic context allocates (contract: ModelProfile.contextSize). */
export const autoContextCap = 8192;

/**
 * The planner's input for the form, or null while a field it needs is not valid. On `auto` the
 * context is the one auto allocates when the trained length is known (the model is loaded);
 * otherwise the host picks the size to plan for.
 */
export function planInput(path: string, form: ProfileForm, trainedContextLength?: number): CallInput<'models.plan'> | null {
  const contextSize = contextSizeOf(form.contextSize);
  const slots = slotsOf(form.slots);
  if (contextSize === null || slots === null) return null;
  if (contextSize > 0) return { path, contextSize, slots };
  return trainedContextLength && trainedContextLength > 0 ? { path, contextSize: Math.min(trainedContextLength, autoContextCap), slots } : { path, slots };
}

/** The file name of a model path, for "the last model, NAME". */
export function fileName(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}

/** What the loaded context really uses, and the planner's estimate beside the measured memory. */
export function loadedLines(info: ModelInfo): string[] {
  const lines: string[] = [];
  const kv = loadedKvText(info);
  const context = `a context of ${info.contextSize.toLocaleString('en-US')} tokens per slot`;
  lines.push(kv ? `Loaded with ${kv} and ${context}.` : `Loaded with ${context}.`);
  if (info.threads !== undefined && info.batchSize !== undefined) {
    lines.push(`Runs with ${formatCount(info.threads)} ${info.threads === 1 ? 'thread' : 'threads'} and a batch of ${formatCount(info.batchSize)} tokens.`);
  }
  if (info.memory) lines.push(`Context memory: ${memoryText(info.memory, info.gpuLayers)}.`);
  return lines;
}

const heading = 'mb-2 text-base font-semibold';
const help = 'text-xs text-stone-500 dark:text-stone-400';

export function ModelSection() {
  const path = useHearth(selectProfilePath);
  return (
    <section aria-labelledby="model-profile-heading" className="space-y-4 border-t border-stone-200 pt-6 dark:border-stone-800">
      <h2 id="model-profile-heading" className={heading}>
        Model
      </h2>
      {path === null ? (
        <p className="text-sm text-stone-600 dark:text-stone-300">
          No model is loaded. Load one on the{' '}
          <a href="#/models" className="font-medium underline">
            Models
          </a>{' '}
          screen to choose its KV cache types, context and overflow policy.
        </p>
      ) : (
        // Keyed: another model starts from its own stored profile, not the previous one's edits.
        <ProfileEditor key={path} path={path} />
      )}
    </section>
  );
}

function ProfileEditor({ path }: { path: string }) {
  const actions = useActions();
  const model = useHearth(selectModel);
  const profileError = useHearth(selectProfileError);
  const plan = useHearth(selectKvPlan);
  const planFor = useHearth(selectKvPlanInput);
  const planPending = useHearth(selectKvPlanPending);
  const planError = useHearth(selectKvPlanError);
  const quality = useHearth(selectKvQuality);
  const qualityPath = useHearth(selectKvQualityPath);
  const qualityPending = useHearth(selectKvQualityPending);
  const qualityError = useHearth(selectKvQualityError);

  const [form, setForm] = useState<ProfileForm | null>(null);
  /** The profile as the host stores it: Apply sends only what differs. */
  const [stored, setStored] = useState<ModelProfile | null>(null);
  const [hostIssues, setHostIssues] = useState<{ issues: readonly ProfileIssue[]; checked: ProfileForm } | null>(null);
  const [loadFailed, setLoadFailed] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const [applying, setApplying] = useState(false);
  const [refused, setRefused] = useState<{ error: HearthError; inline: boolean } | null>(null);
  const [note, setNote] = useState('');

  const info = model.model?.path === path ? model.model : undefined;
  const loaded = model.status === 'ready' && info !== undefined;
  const loading = model.status === 'loading' && info !== undefined;

  useEffect(() => {
    let live = true;
    void actions.loadProfile(path).then((result) => {
      if (!live) return;
      setLoadFailed(!result.ok);
      if (!result.ok) return;
      const loadedForm = profileFormFrom(result.value.profile);
      setStored(result.value.profile);
      setForm(loadedForm);
      setHostIssues({ issues: result.value.issues, checked: loadedForm });
    });
    return () => {
      live = false;
    };
  }, [actions, path, attempt]);

  const input = form ? planInput(path, form, info?.trainedContextLength) : null;
  const planKey = input ? JSON.stringify(input) : null;
  useEffect(() => {
    if (planKey === null) return;
    // Debounced: typing "16384" asks once, not five times. The pair is not part of the input:
    // every pair's row comes back, and the form only picks which one is highlighted.
    const timer = setTimeout(() => void actions.planKv(JSON.parse(planKey) as CallInput<'models.plan'>), planDebounceMs);
    return () => clearTimeout(timer);
  }, [actions, planKey]);

  const issues = form ? visibleIssues(form, hostIssues) : [];
  const modelIssues = issues.filter((i) => i.field === 'model');
  const shownPlan = plan && planFor?.path === path ? plan : null;
  const chosen = shownPlan && form ? chosenPair(shownPlan, form.kType, form.vType) : null;

  const apply = async () => {
    if (!form || !stored || applying) return;
    setNote('');
    setRefused(null);
    const parsed = profileFromForm(form);
    if (!parsed.ok) {
      setNote('Not applied: fix the marked fields first.');
      return;
    }
    const submitted = form;
    setApplying(true);
    const result = await actions.saveProfile(path, profilePatch(parsed.value, stored));
    setApplying(false);
    if (result.ok) {
      setStored(result.value.profile);
      const saved = profileFormFrom(result.value.profile);
      setForm(saved);
      setHostIssues({ issues: result.value.issues, checked: saved });
      // The host answers once the loaded model has reloaded with the new settings.
      setNote(loaded || loading ? 'Applied to the loaded model. Chats are kept.' : 'Saved. These settings apply when the model is next loaded.');
      return;
    }
    const listed = result.error.code === 'INVALID_INPUT' ? issuesFromMessage(result.error.message) : [];
    if (listed.length > 0) setHostIssues({ issues: listed, checked: submitted });
    setRefused({ error: result.error, inline: listed.length > 0 });
  };

  return (
    <>
      <p className={help}>
        {loaded || loading ? `Settings for ${info?.name ?? fileName(path)}, kept with this model.` : `No model is loaded. These are the settings of the last model, ${fileName(path)}; they apply when it is loaded next.`}
      </p>
      {loaded && info && (
        <div className="space-y-0.5 text-sm">
          {loadedLines(info).map((line) => (
            <p key={line}>{line}</p>
          ))}
        </div>
      )}
      {loading && (
        <div className="space-y-1 text-sm">
          <p>
            {model.measuring ? '' : 'Loading the model… '}
            <span className="tabular-nums">{loadProgressText(model)}</span>
          </p>
          <ProgressBar {...loadProgressBar(model)} />
        </div>
      )}
      {loadFailed && profileError && (
        <ErrorBox error={profileError} alert title="This model's settings could not be read.">
          <button type="button" onClick={() => setAttempt(attempt + 1)} className={`${buttonStyles.secondary} mt-2`}>
            Try again
          </button>
        </ErrorBox>
      )}
      {!form && !loadFailed && <p className="text-sm text-stone-500">Loading the model&apos;s settings…</p>}
      {modelIssues.map((issue, n) => (
        <p key={n} className={issue.severity === 'error' ? 'text-sm text-red-700 dark:text-red-400' : 'text-sm text-amber-800 dark:text-amber-300'}>
          {issue.message}
        </p>
      ))}
      {refused &&
        (refused.inline ? (
          <p role="alert" className="text-sm text-red-700 dark:text-red-400">
            Not applied: see the messages beside the fields.
          </p>
        ) : (
          <ErrorBox error={refused.error} alert title="Not applied." />
        ))}
      {form && (
        <form
          aria-label="Model settings"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            void apply();
          }}
          className="space-y-3"
        >
          <ProfileFields value={form} onChange={setForm} issues={issues} disabled={applying} />
          <div className="flex items-center gap-3">
            <button type="submit" disabled={applying} className={buttonStyles.primary}>
              Apply
            </button>
            <p role="status" className="text-sm">
              {applying ? 'Applying…' : note}
            </p>
          </div>
        </form>
      )}
      {form && <KvPlanner plan={shownPlan} pending={planPending} error={planError} chosen={chosen} auto={form.kType === 'auto' && form.vType === 'auto'} />}
      <QualityMeter
        quality={quality}
        qualityPath={qualityPath}
        pending={qualityPending}
        error={qualityError}
        loadedPath={loaded ? path : null}
        loadedPair={info?.kvType ?? null}
        onMeasure={(fresh) => void actions.measureQuality(fresh)}
      />
      <SpeedSection path={path} />
    </>
  );
}
