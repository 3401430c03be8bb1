/**
 * The Models screen: the library (what is loaded, open a file, every local model by source, the
 * models folder), Discover (Hugging Face search), a repository's page, and the download queue.
 * Each is a route of its own (`#/models`, `#/models/discover`, `#/models/repo/owner/name`,
 * `#/models/downloads`), reached by the tabs at the top.
 */
import { useEffect, useState } from 'react';
import type { ModelStatus } from '../contract.ts';
import { formatBytes, formatCount } from '../lib/format.ts';
import { loadedKvText, memoryText } from '../lib/kv.ts';
import { routeHash, type Route } from '../lib/route.ts';
import { loadProgressBar, loadProgressText } from '../lib/speed.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectActiveDownloadCount, selectHost, selectLoadError, selectLoadPending, selectModel, selectNeedsOnboarding, selectRoute } from '../state/selectors.ts';
import { DownloadsView } from './DownloadsView.tsx';
import { HubDiscover } from './HubDiscover.tsx';
import { HubRepoPage } from './HubRepoPage.tsx';
import { LocalModels, ModelsFolder } from './ModelLibrary.tsx';
import { Onboarding } from './Onboarding.tsx';
import { buttonStyles, ErrorBox, inputStyles, ProgressBar } from './ui.tsx';

const section = 'rounded-lg border border-stone-200 p-4 dark:border-stone-800';
const heading = 'mb-3 text-base font-semibold';

type ModelsRoute = Extract<Route, { name: 'models' }>;

export function ModelScreen() {
  const route = useHearth(selectRoute);
  const models: ModelsRoute = route.name === 'models' ? route : { name: 'models' };
  return (
    <div className="min-h-0 flex-1 overflow-y-auto [scrollbar-gutter:stable]" data-testid="models-screen">
      <div className="mx-auto max-w-3xl space-y-5 px-4 py-6">
        <h1 className="text-xl font-semibold">Models</h1>
        <ModelTabs route={models} />
        {models.tab === 'discover' ? (
          <HubDiscover />
        ) : models.tab === 'downloads' ? (
          <DownloadsView />
        ) : models.tab === 'repo' ? (
          <HubRepoPage key={models.repo} repo={models.repo} />
        ) : (
          <Library />
        )}
      </div>
    </div>
  );
}

/** The sub-views as links (each is an address), the current one marked; a repository page belongs to Discover. */
export function ModelTabs(props: { route: ModelsRoute }) {
  const active = useHearth(selectActiveDownloadCount);
  const current = props.route.tab === 'repo' ? 'discover' : (props.route.tab ?? 'library');
  const tab = (key: 'library' | 'discover' | 'downloads', label: string, badge?: number) => (
    <a
      href={routeHash(key === 'library' ? { name: 'models' } : { name: 'models', tab: key })}
      aria-current={current === key ? 'page' : undefined}
      className="-mb-px inline-flex items-center gap-1.5 border-b-2 border-transparent px-3 py-2 text-sm font-medium text-stone-600 hover:text-stone-900 aria-[current=page]:border-amber-600 aria-[current=page]:text-stone-950 dark:text-stone-300 dark:hover:text-white dark:aria-[current=page]:border-amber-400 dark:aria-[current=page]:text-white"
    >
      {label}
      {badge !== undefined && badge > 0 && (
        <span className="rounded-full bg-amber-600 px-1.5 text-xs text-white tabular-nums dark:bg-amber-500 dark:text-stone-950">
          {badge}
          <span className="sr-only"> active</span>
        </span>
      )}
    </a>
  );
  return (
    <nav aria-label="Models" className="flex gap-1 border-b border-stone-200 dark:border-stone-800">
      {tab('library', 'Library')}
      {tab('discover', 'Discover')}
      {tab('downloads', 'Downloads', active)}
    </nav>
  );
}

function Library() {
  const actions = useActions();
  const onboarding = useHearth(selectNeedsOnboarding);
  useEffect(() => {
    void actions.refreshModels();
  }, [actions]);
  return (
    <>
      <CurrentModel />
      {onboarding && <Onboarding />}
      <OpenModel />
      <LocalModels />
      <ModelsFolder />
    </>
  );
}

function CurrentModel() {
  const actions = useActions();
  const model = useHearth(selectModel);
  const pending = useHearth(selectLoadPending);
  const loadError = useHearth(selectLoadError);
  // One alert per failure: a load started here reports beside its form (OpenModel); this one
  // reports failures from elsewhere (--model at start, a reload after an engine restart).
  const showError = !pending && loadError === null;
  return (
    <section aria-labelledby="current-model" className={section}>
      <h2 id="current-model" className={heading}>
        Current model
      </h2>
      <CurrentModelBody model={model} showError={showError} onUnload={() => void actions.unloadModel()} />
    </section>
  );
}

function CurrentModelBody({ model, showError, onUnload }: { model: ModelStatus; showError: boolean; onUnload: () => void }) {
  switch (model.status) {
    case 'idle':
      return <p className="text-sm text-stone-600 dark:text-stone-300">No model is loaded. Open a GGUF file or download one below.</p>;
    case 'loading':
      return (
        <div className="space-y-2 text-sm">
          <p>
            Loading {model.model?.name ?? 'the model'}… <span className="tabular-nums">{loadProgressText(model)}</span>
          </p>
          <ProgressBar {...loadProgressBar(model)} />
        </div>
      );
    case 'ready': {
      const info = model.model;
      return (
        <div className="flex items-start justify-between gap-4 text-sm">
          {info ? (
            <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-0.5">
              <dt className="text-stone-500">Name</dt>
              <dd className="font-medium">{info.name}</dd>
              <dt className="text-stone-500">Architecture</dt>
              <dd>{info.architecture}</dd>
              <dt className="text-stone-500">Context</dt>
              <dd>
                {info.contextSize.toLocaleString('en-US')} tokens (trained {info.trainedContextLength.toLocaleString('en-US')})
              </dd>
              {loadedKvText(info) !== null && (
                <>
                  <dt className="text-stone-500">KV cache</dt>
                  <dd>{loadedKvText(info)}</dd>
                </>
              )}
              {info.memory && (
                <>
                  <dt className="text-stone-500">Context memory</dt>
                  <dd>{memoryText(info.memory, info.gpuLayers)}</dd>
                </>
              )}
              {info.threads !== undefined && info.batchSize !== undefined && (
                <>
                  <dt className="text-stone-500">Speed settings</dt>
                  <dd>
                    {formatCount(info.threads)} {info.threads === 1 ? 'thread' : 'threads'}, batch {formatCount(info.batchSize)}
                  </dd>
                </>
              )}
              <dt className="text-stone-500">Size</dt>
              <dd>
                {formatBytes(info.sizeBytes)}, {info.layerCount} layers
              </dd>
              <dt className="text-stone-500">File</dt>
              <dd className="break-all">{info.path}</dd>
            </dl>
          ) : (
            <p>A model is loaded.</p>
          )}
          <button type="button" onClick={onUnload} className={buttonStyles.secondary}>
            Unload
          </button>
        </div>
      );
    }
    case 'error':
      if (!showError) return <p className="text-sm text-stone-600 dark:text-stone-300">No model is loaded.</p>;
      return model.error ? (
        <ErrorBox error={model.error} alert title="The model could not be loaded." />
      ) : (
        <p role="alert">The model could not be loaded.</p>
      );
  }
}

function OpenModel() {
  const actions = useActions();
  const host = useHearth(selectHost);
  const pending = useHearth(selectLoadPending);
  const error = useHearth(selectLoadError);
  const [path, setPath] = useState('');

  return (
    <section aria-labelledby="open-model" className={section}>
      <h2 id="open-model" className={heading}>
        Open a model file
      </h2>
      {host === 'electron' ? (
        <div className="flex items-center gap-3">
          <button type="button" disabled={pending} onClick={() => void actions.pickAndLoadModel()} className={buttonStyles.primary}>
            Choose file…
          </button>
          <span className="text-sm text-stone-500 dark:text-stone-400">A .gguf file from your disk.</span>
        </div>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (path.trim() !== '') void actions.loadModel(path.trim());
          }}
        >
          <label htmlFor="model-path" className="mb-1 block text-sm font-medium">
            Model path
          </label>
          <div className="flex gap-2">
            <input
              id="model-path"
              value={path}
              onChange={(e) => setPath(e.target.value)}
              placeholder="/path/to/model.gguf"
              spellCheck={false}
              autoComplete="off"
              className={inputStyles}
            />
            <button type="submit" disabled={pending || path.trim() === ''} className={buttonStyles.primary}>
              Load
            </button>
          </div>
          <p className="mt-1 text-xs text-stone-500 dark:text-stone-400">The full path of a .gguf file on the machine that runs Hearth.</p>
        </form>
      )}
      {pending && <p className="mt-2 text-sm text-stone-500">Loading…</p>}
      {error && (
        <div className="mt-3">
          <ErrorBox error={error} alert title="The model could not be loaded." />
        </div>
      )}
    </section>
  );
}

