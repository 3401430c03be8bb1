import { useHearth, useStoreActions } from '../state/react.tsx';
import { selectBooted, selectConnection, selectEngineBanner, selectKvPauseBanner, selectRoute, selectVisibleModelError } from '../state/selectors.ts';
import { buttonStyles } from './ui.tsx';

/**
 * What the user must know whatever screen they are on: the engine, the model, the connection,
 * and whether chats are still saved to disk.
 */
export function Banners() {
  return (
    <div className="space-y-px">
      <ConnectionBanner />
      <EngineBanner />
      <ModelErrorBanner />
      <KvPauseBanner />
    </div>
  );
}

const bar = 'flex items-start gap-3 px-4 py-2 text-sm';

function ConnectionBanner() {
  const connection = useHearth(selectConnection);
  const booted = useHearth(selectBooted);
  if (!booted || connection === 'open') return null;
  return (
    <div role="status" className={`${bar} bg-stone-200 text-stone-800 dark:bg-stone-800 dark:text-stone-100`}>
      Connection to Hearth lost. Reconnecting…
    </div>
  );
}

function EngineBanner() {
  const banner = useHearth(selectEngineBanner);
  const { dismissEngineBanner } = useStoreActions();
  if (!banner) return null;
  return (
    <div role="alert" className={`${bar} bg-amber-100 text-amber-950 dark:bg-amber-950 dark:text-amber-100`}>
      <p className="flex-1">
        The engine stopped unexpectedly and was restarted.{' '}
        {banner.crashLoop
          ? banner.crashLoop.message
          : banner.restarting
            ? 'It is starting again…'
            : 'Your conversations are safe; a reply that was cut off is marked incomplete.'}
        {banner.crashLoop?.hint && <span className="block">{banner.crashLoop.hint}</span>}
        {banner.reason && <span className="block text-xs opacity-80">Cause: {banner.reason}</span>}
      </p>
      <button type="button" onClick={dismissEngineBanner} className={buttonStyles.ghost}>
        Dismiss
      </button>
    </div>
  );
}

function ModelErrorBanner() {
  const error = useHearth(selectVisibleModelError);
  const route = useHearth(selectRoute);
  const { dismissModelError } = useStoreActions();
  // The model screen shows the error in full; a second copy there would only repeat it.
  if (!error || route.name === 'models') return null;
  return (
    <div role="alert" className={`${bar} bg-red-100 text-red-950 dark:bg-red-950 dark:text-red-100`}>
      <p className="flex-1">
        The model could not be loaded: {error.message}
        {error.hint && <span className="block text-xs">{error.hint}</span>}{' '}
        <a href="#/models" className="font-medium underline">
          Open the model screen
        </a>
      </p>
      <button type="button" onClick={dismissModelError} className={buttonStyles.ghost}>
        Dismiss
      </button>
    </div>
  );
}

function KvPauseBanner() {
  const text = useHearth(selectKvPauseBanner);
  const { dismissKvBanner } = useStoreActions();
  return text ? <KvPauseAlert text={text} onDismiss={dismissKvBanner} /> : null;
}

/** The "persistence paused" banner itself (its text comes from `selectKvPauseBanner`). */
export function KvPauseAlert(props: { text: string; onDismiss: () => void }) {
  return (
    <div role="alert" className={`${bar} bg-amber-100 text-amber-950 dark:bg-amber-950 dark:text-amber-100`}>
      <p className="flex-1">{props.text}</p>
      <button type="button" onClick={props.onDismiss} className={buttonStyles.ghost}>
        Dismiss
      </button>
    </div>
  );
}
