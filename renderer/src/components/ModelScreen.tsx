import { useEffect, useId, useState, type ReactNode } from 'react';
import type { HearthError, LocalModel, ModelStatus, RecommendedModel } from '../contract.ts';
import { downloadFraction, formatBytes, formatPercent } from '../lib/format.ts';
import { loadedKvText, memoryText } from '../lib/kv.ts';
import { useActions, useHearth } from '../state/react.tsx';
import {
  selectDownloadFor,
  selectHost,
  selectLoadError,
  selectLoadPending,
  selectLocalModels,
  selectLocalModelsError,
  selectModel,
  selectModelsDir,
  selectRecommended,
} from '../state/selectors.ts';
import { RefreshIcon } from './icons.tsx';
import { MemoryPlanButton, MemoryPlanPanel } from './MemoryPlan.tsx';
import { buttonStyles, ErrorBox, inputStyles, ProgressBar } from './ui.tsx';

const section = 'rounded-lg border border-stone-200 p-4 dark:border-stone-800';
const heading = 'mb-3 text-base font-semibold';

/** First run and the Models link: what is loaded, open a GGUF, the models folder, downloads. */
export function ModelScreen() {
  const actions = useActions();
  useEffect(() => {
    void actions.refreshModels();
  }, [actions]);
  return (
    <div className="min-h-0 flex-1 overflow-y-auto">
      <div className="mx-auto max-w-3xl space-y-5 px-4 py-6">
        <h1 className="text-xl font-semibold">Models</h1>
        <CurrentModel />
        <OpenModel />
        <LocalModels />
        <Recommended />
      </div>
    </div>
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
    case 'loading': {
      const progress = model.progress ?? 0;
      return (
        <div className="space-y-2 text-sm">
          <p>
            Loading {model.model?.name ?? 'the model'}… <span className="tabular-nums">{formatPercent(progress)}</span>
          </p>
          <ProgressBar label="Model loading progress" value={progress} />
        </div>
      );
    }
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

function LocalModels() {
  const actions = useActions();
  const models = useHearth(selectLocalModels);
  const error = useHearth(selectLocalModelsError);
  const dir = useHearth(selectModelsDir);
  return (
    <section aria-labelledby="local-models" className={section}>
      <div className="mb-3 flex items-center justify-between">
        <h2 id="local-models" className="text-base font-semibold">
          Local files
        </h2>
        <button type="button" onClick={() => void actions.refreshModels()} className={buttonStyles.ghost}>
          <RefreshIcon />
          Refresh
        </button>
      </div>
      {dir && <p className="mb-2 text-xs break-all text-stone-500 dark:text-stone-400">{dir}</p>}
      {error && <ErrorBox error={error} />}
      {models === null ? (
        <p className="text-sm text-stone-500">Looking…</p>
      ) : models.length === 0 ? (
        <p className="text-sm text-stone-500 dark:text-stone-400">No .gguf files here yet. Download one below, or copy a file into this folder.</p>
      ) : (
        <ul className="divide-y divide-stone-200 dark:divide-stone-800">
          {models.map((m) => (
            <LocalModelRow key={m.path} model={m} />
          ))}
        </ul>
      )}
    </section>
  );
}

function LocalModelRow({ model }: { model: LocalModel }) {
  const actions = useActions();
  const current = useHearth(selectModel);
  const pending = useHearth(selectLoadPending);
  const loaded = current.status === 'ready' && current.model?.path === model.path;
  const [planOpen, setPlanOpen] = useState(false);
  const panelId = useId();
  return (
    <li className="py-2 text-sm">
      <div className="flex items-center justify-between gap-3">
        <div className="min-w-0">
          <p className="truncate font-medium">{model.fileName}</p>
          <p className="text-xs text-stone-500 dark:text-stone-400">{formatBytes(model.sizeBytes)}</p>
        </div>
        <div className="flex shrink-0 items-center gap-2">
          <MemoryPlanButton name={model.fileName} open={planOpen} panelId={panelId} onToggle={() => setPlanOpen(!planOpen)} />
          {loaded ? (
            <span className="text-xs font-semibold text-green-700 dark:text-green-400">Loaded</span>
          ) : (
            <button
              type="button"
              aria-label={`Load ${model.fileName}`}
              disabled={pending}
              onClick={() => void actions.loadModel(model.path)}
              className={buttonStyles.secondary}
            >
              Load
            </button>
          )}
        </div>
      </div>
      {planOpen && <MemoryPlanPanel id={panelId} name={model.fileName} target={{ path: model.path }} />}
    </li>
  );
}

function Recommended() {
  const models = useHearth(selectRecommended);
  if (models === null || models.length === 0) return null;
  return (
    <section aria-labelledby="recommended-models" className={section}>
      <h2 id="recommended-models" className={heading}>
        Recommended downloads
      </h2>
      <ul className="space-y-3">
        {models.map((m) => (
          <RecommendedRow key={m.id} model={m} />
        ))}
      </ul>
    </section>
  );
}

function RecommendedRow({ model }: { model: RecommendedModel }) {
  const actions = useActions();
  const download = useHearth(selectDownloadFor(model.uri));
  const [error, setError] = useState<HearthError | null>(null);
  const start = async () => {
    const result = await actions.download(model.uri);
    setError(result.ok ? null : result.error);
  };
  const fraction = download ? downloadFraction(download) : null;
  const [planOpen, setPlanOpen] = useState(false);
  const panelId = useId();

  let controls: ReactNode;
  if (download?.status === 'downloading') {
    controls = (
      <button
        type="button"
        aria-label={`Cancel download of ${model.name}`}
        onClick={() => void actions.cancelDownload(download.downloadId)}
        className={buttonStyles.secondary}
      >
        Cancel
      </button>
    );
  } else if (download?.status === 'done' && download.path) {
    const path = download.path;
    controls = (
      <button type="button" aria-label={`Load ${model.name}`} onClick={() => void actions.loadModel(path)} className={buttonStyles.primary}>
        Load
      </button>
    );
  } else if (download?.status === 'error' || download?.status === 'cancelled') {
    controls = (
      <button type="button" aria-label={`Resume ${model.name}`} onClick={() => void start()} className={buttonStyles.primary}>
        Resume
      </button>
    );
  } else {
    controls = (
      <button type="button" aria-label={`Download ${model.name}`} onClick={() => void start()} className={buttonStyles.primary}>
        Download
      </button>
    );
  }

  return (
    <li className="rounded-md bg-stone-50 p-3 text-sm dark:bg-stone-900">
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <p className="font-medium">{model.name}</p>
          <p className="text-stone-600 dark:text-stone-300">{model.description}</p>
          <p className="text-xs text-stone-500 dark:text-stone-400">About {formatBytes(model.approxSizeBytes)}</p>
        </div>
        <div className="flex shrink-0 items-center gap-2">
          <MemoryPlanButton name={model.name} open={planOpen} panelId={panelId} onToggle={() => setPlanOpen(!planOpen)} />
          {controls}
        </div>
      </div>
      {planOpen && <MemoryPlanPanel id={panelId} name={model.name} target={{ uri: model.uri }} />}
      {download && download.status !== 'done' && download.downloadedBytes > 0 && (
        <div className="mt-2 space-y-1">
          <ProgressBar label={`Downloading ${model.name}`} value={fraction} />
          <p className="text-xs text-stone-500 tabular-nums dark:text-stone-400">
            {formatBytes(download.downloadedBytes)}
            {download.totalBytes > 0 && ` of ${formatBytes(download.totalBytes)} (${formatPercent(fraction ?? 0)})`}
            {download.status === 'cancelled' && ' — cancelled'}
          </p>
        </div>
      )}
      {download?.status === 'downloading' && download.downloadedBytes === 0 && <p className="mt-2 text-xs text-stone-500">Starting…</p>}
      {download?.status === 'done' && <p className="mt-2 text-xs text-green-700 dark:text-green-400">Downloaded.</p>}
      {download?.error && (
        <div className="mt-2">
          <ErrorBox error={download.error} />
        </div>
      )}
      {error && (
        <div className="mt-2">
          <ErrorBox error={error} />
        </div>
      )}
    </li>
  );
}
