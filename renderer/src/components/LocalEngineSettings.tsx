/**
 * Settings → Engine: an engine built for this computer from the llama.cpp source that ships with
 * Hearth. The host builds it in the background, compares it with the prebuilt engine on the
 * loaded model, and uses it only when it was faster; the prebuilt engine stays the fallback.
 * This section starts, follows (`engine.local` events), cancels and removes that build.
 */
import { useEffect, useState } from 'react';
import type { HearthError, LocalEngineState, SpeedTrial } from '../contract.ts';
import { formatBytes, formatPercent, formatTime } from '../lib/format.ts';
import { engineKindText, secondsText, settingsText, tokPerSText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectLocalEngine, selectLocalEngineError } from '../state/selectors.ts';
import { buttonStyles, Dialog, ErrorBox, ProgressBar } from './ui.tsx';

const muted = 'text-sm text-stone-500 dark:text-stone-400';

/** What a build is and costs, said before one is started. */
export const buildExplanation =
  'It compiles llama.cpp for this computer’s CPU and GPU in the background, which takes several minutes, and is used only if it measures faster on the loaded model; the prebuilt engine stays the fallback.';

/** The call a button of this section made. */
export type LocalEngineCall = 'build' | 'cancel' | 'remove';

/** The state in one line, for the section's status region: what is happening and what runs. */
export function localEngineStatusText(state: LocalEngineState): string {
  const inUse = `In use: the ${state.inUse === 'local' ? 'engine built for this computer' : 'prebuilt engine'}.`;
  switch (state.status) {
    case 'building':
      return `Building an engine for this computer${state.progress !== undefined ? `, ${formatPercent(state.progress)}` : ''}… ${inUse}`;
    case 'measuring':
      return `Comparing the new build with the prebuilt engine on the loaded model… ${inUse}`;
    case 'ready':
      return `Built. ${inUse}`;
    case 'failed':
      return `The last build failed. ${inUse}`;
    case 'idle':
      return state.available ? `No build for this computer yet. ${inUse}` : `An engine cannot be built on this computer. ${inUse}`;
  }
}

/** The comparison's verdict in words. */
export function comparisonText(comparison: NonNullable<LocalEngineState['comparison']>): string {
  return comparison.faster
    ? `On ${comparison.model}, the build for this computer was faster: it is in use.`
    : `On ${comparison.model}, the build for this computer was not faster: the prebuilt engine stays in use.`;
}

export interface LocalEngineViewProps {
  /** null until `engine.local` first answered. */
  readonly state: LocalEngineState | null;
  /** `engine.local` failed (and `state` is null, or older). */
  readonly loadError: HearthError | null;
  /** A build, cancel or remove call was refused. */
  readonly callError: HearthError | null;
  /** The call in flight, if any. */
  readonly pending: LocalEngineCall | null;
  /** After a click here: the state's main button takes the focus, as the one clicked went away. */
  readonly focusAction?: boolean;
  readonly onBuild: () => void;
  readonly onCancel: () => void;
  /** Asks to remove (the caller confirms first). */
  readonly onRemove: () => void;
  readonly onRetryLoad: () => void;
  /** For tests: "now" for the dates. */
  readonly now?: number;
}

export function LocalEngineView(props: LocalEngineViewProps) {
  const { state, pending } = props;
  return (
    <section aria-labelledby="local-engine-heading" aria-busy={state?.status === 'building' || state?.status === 'measuring' || undefined} className="space-y-3 border-t border-stone-200 pt-6 dark:border-stone-800">
      <h2 id="local-engine-heading" className="text-base font-semibold">
        Engine
      </h2>
      <p className={muted}>The llama.cpp libraries this computer’s chats run on: the prebuilt ones that come with Hearth, or an engine built for this computer.</p>
      {state === null ? (
        props.loadError ? (
          <ErrorBox error={props.loadError} title="The engine's state could not be read.">
            <button type="button" onClick={props.onRetryLoad} className={`${buttonStyles.secondary} mt-2`}>
              Try again
            </button>
          </ErrorBox>
        ) : (
          <p className={muted}>Loading…</p>
        )
      ) : (
        <LocalEngineBody {...props} state={state} />
      )}
      {props.callError && pending === null && <ErrorBox error={props.callError} alert title="That did not work." />}
    </section>
  );
}

function LocalEngineBody(props: LocalEngineViewProps & { state: LocalEngineState }) {
  const { state, pending, focusAction } = props;
  const buildButton = (label: string) => (
    <button
      type="button"
      autoFocus={focusAction}
      disabled={!state.available || pending !== null}
      onClick={props.onBuild}
      aria-describedby={state.available ? 'local-engine-explanation' : 'local-engine-unavailable'}
      className={buttonStyles.primary}
    >
      {pending === 'build' ? 'Starting…' : label}
    </button>
  );
  const removeButton = state.build && (
    <button type="button" disabled={pending !== null} onClick={props.onRemove} className={buttonStyles.secondary}>
      {pending === 'remove' ? 'Removing…' : 'Remove'}
    </button>
  );
  return (
    <div className="space-y-3">
      <p role="status" data-testid="local-engine-status" data-state={state.status} className="text-sm">
        {localEngineStatusText(state)}
      </p>
      {!state.available && (
        <p id="local-engine-unavailable" className="text-sm text-amber-800 dark:text-amber-300">
          {state.unavailable ?? 'A build cannot be made on this computer.'}
        </p>
      )}
      {(state.status === 'idle' || state.status === 'failed') && (
        <p id="local-engine-explanation" className={muted}>
          {buildExplanation}
        </p>
      )}
      {state.status === 'building' && (
        <div className="space-y-1 text-sm">
          <ProgressBar label="Engine build progress" value={state.progress ?? null} />
          <p className="text-stone-600 tabular-nums dark:text-stone-300">
            {state.step ?? 'Building…'}
            {state.progress !== undefined && ` · ${formatPercent(state.progress)}`}
          </p>
        </div>
      )}
      {state.status === 'measuring' && (
        <div className="space-y-1 text-sm">
          <ProgressBar label="Engine comparison progress" value={null} />
          {state.step && <p className="text-stone-600 dark:text-stone-300">{state.step}</p>}
        </div>
      )}
      {state.status === 'failed' && state.error && <ErrorBox error={state.error} title="The build or its comparison failed." />}
      {state.build && (state.status === 'ready' || state.status === 'failed') && <BuildFacts build={state.build} now={props.now} />}
      {state.comparison && state.status === 'ready' && <Comparison comparison={state.comparison} inUse={state.inUse} now={props.now} />}
      {state.status === 'ready' && !state.comparison && <p className={muted}>Not compared with the prebuilt engine yet: that happens on a loaded model.</p>}
      <div className="flex flex-wrap items-center gap-2">
        {state.status === 'idle' && buildButton('Build an engine for this computer')}
        {state.status === 'failed' && buildButton('Try the build again')}
        {state.status === 'building' && (
          <button type="button" autoFocus={focusAction} disabled={pending !== null} onClick={props.onCancel} aria-label="Cancel the engine build" className={buttonStyles.secondary}>
            {pending === 'cancel' ? 'Cancelling…' : 'Cancel'}
          </button>
        )}
        {(state.status === 'ready' || state.status === 'failed') && removeButton}
      </div>
    </div>
  );
}

function BuildFacts({ build, now }: { build: NonNullable<LocalEngineState['build']>; now: number | undefined }) {
  return (
    <dl data-testid="local-engine-build" className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-0.5 text-sm">
      <dt className="text-stone-500">llama.cpp release</dt>
      <dd className="font-mono">{build.release}</dd>
      <dt className="text-stone-500">Built</dt>
      <dd>{formatTime(build.builtAt, now)}</dd>
      <dt className="text-stone-500">Size on disk</dt>
      <dd>{formatBytes(build.sizeBytes)}</dd>
    </dl>
  );
}

function Comparison(props: { comparison: NonNullable<LocalEngineState['comparison']>; inUse: LocalEngineState['inUse']; now: number | undefined }) {
  const { comparison } = props;
  const rows: readonly (readonly ['prebuilt' | 'local', SpeedTrial])[] = [
    ['prebuilt', comparison.prebuilt],
    ['local', comparison.local],
  ];
  return (
    <div className="space-y-1">
      <p className="text-sm">{comparisonText(comparison)}</p>
      <div className="overflow-x-auto">
        <table className="w-full text-xs">
          <caption className="sr-only">
            The prebuilt engine and the build for this computer on {comparison.model}, each with its fastest settings
          </caption>
          <thead className="text-stone-500 dark:text-stone-400">
            <tr>
              <th scope="col" className="px-2 py-1 text-left font-medium">
                Engine
              </th>
              <th scope="col" className="px-2 py-1 text-left font-medium">
                Settings
              </th>
              <th scope="col" className="px-2 py-1 text-right font-medium">
                Prefill tok/s
              </th>
              <th scope="col" className="px-2 py-1 text-right font-medium">
                Decode tok/s
              </th>
              <th scope="col" className="px-2 py-1 text-right font-medium">
                Turn
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([kind, trial]) => {
              const inUse = kind === props.inUse;
              return (
                <tr key={kind} data-testid="local-engine-row" data-in-use={inUse || undefined} className={`border-t border-stone-200 dark:border-stone-800 ${inUse ? 'bg-amber-50 font-medium dark:bg-amber-950' : ''}`}>
                  <th scope="row" className="px-2 py-1 text-left font-medium">
                    {engineKindText[kind]}
                    {inUse && <span className="ml-1 text-amber-700 dark:text-amber-400">(in use)</span>}
                  </th>
                  <td className="px-2 py-1">{settingsText(trial)}</td>
                  {trial.turnSeconds === null ? (
                    <td colSpan={3} className="px-2 py-1 text-red-700 dark:text-red-400">
                      failed: {trial.error ?? 'it did not run'}
                    </td>
                  ) : (
                    <>
                      <td className="px-2 py-1 text-right tabular-nums">{tokPerSText(trial.prefillTokPerS)}</td>
                      <td className="px-2 py-1 text-right tabular-nums">{tokPerSText(trial.decodeTokPerS)}</td>
                      <td className="px-2 py-1 text-right tabular-nums">{secondsText(trial.turnSeconds)}</td>
                    </>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p className="text-xs text-stone-500 dark:text-stone-400">Compared {formatTime(comparison.measuredAt, props.now)}.</p>
    </div>
  );
}

export function RemoveLocalEngineView(props: { sizeBytes: number | null; error: HearthError | null; removing: boolean; onCancel: () => void; onRemove: () => void }) {
  return (
    <div className="space-y-4">
      <p className="text-sm">
        The build for this computer{props.sizeBytes !== null ? ` (${formatBytes(props.sizeBytes)})` : ''} is deleted, and chats run on the prebuilt engine again. You can build it again later.
      </p>
      {props.error && <ErrorBox error={props.error} alert title="The build could not be removed." />}
      <div className="flex justify-end gap-2">
        <button type="button" autoFocus onClick={props.onCancel} className={buttonStyles.secondary}>
          Keep it
        </button>
        <button type="button" disabled={props.removing} onClick={props.onRemove} className={buttonStyles.danger}>
          {props.removing ? 'Removing…' : 'Remove the build'}
        </button>
      </div>
    </div>
  );
}

/** The section, wired to the host: it asks for the state when shown and follows its events. */
export function LocalEngineSection() {
  const actions = useActions();
  const state = useHearth(selectLocalEngine);
  const loadError = useHearth(selectLocalEngineError);
  const [pending, setPending] = useState<LocalEngineCall | null>(null);
  const [callError, setCallError] = useState<HearthError | null>(null);
  const [focusAction, setFocusAction] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [removeError, setRemoveError] = useState<HearthError | null>(null);

  useEffect(() => {
    void actions.loadLocalEngine();
  }, [actions]);

  const run = async (call: Exclude<LocalEngineCall, 'remove'>) => {
    if (pending) return;
    setPending(call);
    setCallError(null);
    const result = call === 'build' ? await actions.buildLocalEngine() : await actions.cancelLocalBuild();
    setPending(null);
    setFocusAction(true);
    if (!result.ok) setCallError(result.error);
  };

  const closeConfirm = () => {
    setConfirming(false);
    setRemoveError(null);
  };
  const remove = async () => {
    if (pending) return;
    setPending('remove');
    const result = await actions.removeLocalEngine();
    setPending(null);
    if (!result.ok) return setRemoveError(result.error);
    setFocusAction(true);
    closeConfirm();
  };

  return (
    <>
      <LocalEngineView
        state={state}
        loadError={loadError}
        callError={callError}
        pending={pending}
        focusAction={focusAction}
        onBuild={() => void run('build')}
        onCancel={() => void run('cancel')}
        onRemove={() => setConfirming(true)}
        onRetryLoad={() => void actions.loadLocalEngine()}
      />
      <Dialog open={confirming} onClose={closeConfirm} title="Remove the engine built for this computer?">
        <RemoveLocalEngineView sizeBytes={state?.build?.sizeBytes ?? null} error={removeError} removing={pending === 'remove'} onCancel={closeConfirm} onRemove={() => void remove()} />
      </Dialog>
    </>
  );
}
