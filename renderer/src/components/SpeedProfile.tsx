/**
 * "Speed on this computer": the settings a model was measured fastest with here (flash
 * attention, threads, batch size), the figures behind the choice, every trial, and a button to
 * measure again. The host measures on a model's first load; measuring again reloads the model.
 */
import type { HearthError, SpeedProfile, SpeedProgress } from '../contract.ts';
import { formatTime } from '../lib/format.ts';
import { pairText } from '../lib/kv.ts';
import { chosenTrialIndex, durationText, engineKindText, measuringText, secondsText, settingsText, speedScoreText, tokPerSText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectModel, selectSpeed, selectSpeedError, selectSpeedPending } from '../state/selectors.ts';
import { buttonStyles, ErrorBox } from './ui.tsx';

export interface SpeedPanelProps {
  /** null: not measured here yet. */
  readonly speed: SpeedProfile | null;
  /** A `models.measureSpeed` call runs. */
  readonly pending: boolean;
  /** The measurement under way as the host reports it while the model loads. */
  readonly measuring: SpeedProgress | null;
  readonly error: HearthError | null;
  /** Whether a measurement may start now (not while the model loads for something else). */
  readonly canMeasure: boolean;
  readonly onMeasure: () => void;
  /** For tests: "now" for the measured-at time. */
  readonly now?: number;
}

const muted = 'text-xs text-stone-500 dark:text-stone-400';
const cell = 'px-2 py-1 text-right tabular-nums';
const headCell = 'px-2 py-1 text-right font-medium';

export function SpeedPanel(props: SpeedPanelProps) {
  const { speed, pending } = props;
  const busy = pending || props.measuring !== null;
  const status = props.measuring ? measuringText(props.measuring) : pending ? 'Measuring speed on this computer… the model loads again for it.' : '';
  const chosen = speed ? speed.trials[chosenTrialIndex(speed.trials, speed.chosen)] : undefined;
  return (
    <section aria-labelledby="model-speed-heading" aria-busy={busy || undefined} className="space-y-2">
      <h3 id="model-speed-heading" className="text-sm font-semibold">
        Speed on this computer
      </h3>
      {speed === null ? (
        <p className="text-sm text-stone-600 dark:text-stone-300">Not measured on this computer yet — it is measured when the model first loads.</p>
      ) : (
        <>
          <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-0.5 text-sm">
            <dt className="text-stone-500">Settings</dt>
            <dd data-testid="speed-chosen" className="font-medium">
              {settingsText(speed.chosen)}
            </dd>
            <dt className="text-stone-500">Speed</dt>
            <dd data-testid="speed-figures" className="tabular-nums">
              {chosen ? `Prefill ${tokPerSText(chosen.prefillTokPerS)} tok/s · decode ${tokPerSText(chosen.decodeTokPerS)} tok/s` : 'No trial ran with these settings.'}
            </dd>
            <dt className="text-stone-500">Device</dt>
            <dd>{speed.device}</dd>
            <dt className="text-stone-500">Engine</dt>
            <dd>{engineKindText[speed.engine]}</dd>
            <dt className="text-stone-500">KV cache</dt>
            <dd className="font-mono">{pairText(speed.kType, speed.vType)}</dd>
            <dt className="text-stone-500">Measured</dt>
            <dd>
              {formatTime(speed.measuredAt, props.now)}, took {durationText(speed.durationMs)}
            </dd>
          </dl>
          <p className={muted}>
            {speedScoreText} Each trial read {speed.depth.toLocaleString('en-US')} tokens, then timed {speed.decodeTokens.toLocaleString('en-US')} reply tokens.
          </p>
          <SpeedTrials speed={speed} />
        </>
      )}
      <div className="flex flex-wrap items-center gap-2">
        <button type="button" disabled={busy || !props.canMeasure} onClick={props.onMeasure} aria-describedby="model-speed-status" className={buttonStyles.secondary}>
          {speed === null ? 'Measure now' : 'Measure again'}
        </button>
        <p id="model-speed-status" role="status" className="text-sm">
          {status}
        </p>
      </div>
      {props.error && !busy && <ErrorBox error={props.error} alert title="The speed could not be measured." />}
    </section>
  );
}

/** Every trial, in the order measured, the chosen one marked. */
export function SpeedTrials({ speed }: { speed: SpeedProfile }) {
  const chosenAt = chosenTrialIndex(speed.trials, speed.chosen);
  return (
    <div className="overflow-x-auto">
      <table className="w-full text-xs">
        <caption className="sr-only">Every setting measured, the chosen one marked</caption>
        <thead className="text-stone-500 dark:text-stone-400">
          <tr>
            <th scope="col" className="px-2 py-1 text-left font-medium">
              <span className="sr-only">Chosen</span>
            </th>
            <th scope="col" className="px-2 py-1 text-left font-medium">
              Flash attention
            </th>
            <th scope="col" className={headCell}>
              Threads
            </th>
            <th scope="col" className={headCell}>
              Batch
            </th>
            <th scope="col" className={headCell}>
              Prefill tok/s
            </th>
            <th scope="col" className={headCell}>
              Decode tok/s
            </th>
            <th scope="col" className={headCell}>
              Turn
            </th>
          </tr>
        </thead>
        <tbody>
          {speed.trials.map((trial, i) => {
            const isChosen = i === chosenAt;
            const failed = trial.turnSeconds === null;
            return (
              <tr
                key={i}
                data-testid="speed-trial"
                data-chosen={isChosen || undefined}
                className={`border-t border-stone-200 dark:border-stone-800 ${isChosen ? 'bg-amber-50 font-medium dark:bg-amber-950' : ''}`}
              >
                <td className="px-2 py-1 text-amber-700 dark:text-amber-400">
                  {isChosen && (
                    <>
                      <span aria-hidden="true">✓</span>
                      <span className="sr-only">chosen</span>
                    </>
                  )}
                </td>
                <td className="px-2 py-1">{trial.flashAttention ? 'on' : 'off'}</td>
                <td className={cell}>{trial.threads.toLocaleString('en-US')}</td>
                <td className={cell}>{trial.batchSize.toLocaleString('en-US')}</td>
                {failed ? (
                  <td colSpan={3} className="px-2 py-1 text-red-700 dark:text-red-400">
                    failed: {trial.error ?? 'it did not run'}
                  </td>
                ) : (
                  <>
                    <td className={cell}>{tokPerSText(trial.prefillTokPerS)}</td>
                    <td className={cell}>{tokPerSText(trial.decodeTokPerS)}</td>
                    <td className={cell}>{secondsText(trial.turnSeconds)}</td>
                  </>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** The panel for the model at `path`, wired to the store. */
export function SpeedSection({ path }: { path: string }) {
  const actions = useActions();
  const model = useHearth(selectModel);
  const speed = useHearth(selectSpeed(path));
  const pending = useHearth(selectSpeedPending(path));
  const error = useHearth(selectSpeedError(path));
  const thisModel = model.model?.path === path;
  const measuring = thisModel && model.status === 'loading' ? (model.measuring ?? null) : null;
  // Another load in progress would be cut short by a reload; this model's own load may be measuring already.
  const canMeasure = model.status !== 'loading';
  // undefined: the store still holds another model's profile (the section's editor is fetching this one's).
  if (speed === undefined) return null;
  return <SpeedPanel speed={speed} pending={pending} measuring={measuring} error={error} canMeasure={canMeasure} onMeasure={() => void actions.measureSpeed(path)} />;
}
