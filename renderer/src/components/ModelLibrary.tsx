/**
 * The library's lists: every local model by where it was found (Hearth's folder, LM Studio,
 * Ollama, Jan, GPT4All) with its figures, Load, Reveal and, for Hearth's own, Delete (asking
 * first, with the KV it left); and the models folder with the folders searched.
 */
import { useEffect, useId, useState } from 'react';
import { modelSourceNames, type HearthError, type LocalModel, type ModelFolder, type ModelKvUsage, type ModelLibrary } from '../contract.ts';
import { formatBytes } from '../lib/format.ts';
import { groupBySource, modelFacts } from '../lib/models.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectLibrary, selectLibraryError, selectLoadedModelPath, selectLoadPending, selectSettings } from '../state/selectors.ts';
import { RefreshIcon, TrashIcon } from './icons.tsx';
import { MemoryPlanButton, MemoryPlanPanel } from './MemoryPlan.tsx';
import { buttonStyles, CopyButton, Dialog, ErrorBox, inputStyles } from './ui.tsx';

const section = 'rounded-lg border border-stone-200 p-4 dark:border-stone-800';
const muted = 'text-sm text-stone-500 dark:text-stone-400';

export function LocalModels() {
  const actions = useActions();
  const library = useHearth(selectLibrary);
  const error = useHearth(selectLibraryError);
  return (
    <section aria-labelledby="local-models" className={section}>
      <div className="mb-3 flex items-center justify-between gap-3">
        <h2 id="local-models" className="text-base font-semibold">
          Local files
        </h2>
        <button type="button" onClick={() => void actions.refreshModels()} className={buttonStyles.ghost}>
          <RefreshIcon />
          Refresh
        </button>
      </div>
      {library && <DiskLine library={library} />}
      {error && <ErrorBox error={error} title="The models could not be listed." />}
      {library === null ? !error && <p className={muted}>Looking…</p> : <LibraryGroups library={library} />}
    </section>
  );
}

/** "3 models · 12.4 GB on disk · 210 GB free". */
export function DiskLine(props: { library: ModelLibrary }) {
  const { library } = props;
  const n = library.models.length;
  return (
    <p data-testid="library-disk" className="mb-3 text-xs text-stone-500 tabular-nums dark:text-stone-400">
      {n} {n === 1 ? 'model' : 'models'} · {formatBytes(library.totalBytes)} on disk · {formatBytes(library.freeBytes)} free
    </p>
  );
}

export function LibraryGroups(props: { library: ModelLibrary }) {
  const groups = groupBySource(props.library.models);
  if (groups.length === 0) {
    return <p className={muted}>No models yet. Download one, copy a .gguf file into the models folder, or open a file above.</p>;
  }
  return (
    <div className="space-y-4">
      {groups.map((group) => (
        <section key={group.source} aria-label={`${modelSourceNames[group.source]} models`}>
          <h3 className="mb-1 text-sm font-semibold text-stone-700 dark:text-stone-200">
            {modelSourceNames[group.source]} <span className="font-normal text-stone-500 dark:text-stone-400">({group.models.length})</span>
          </h3>
          <ul className="divide-y divide-stone-200 dark:divide-stone-800">
            {group.models.map((m) => (
              <LocalModelRow key={m.path} model={m} />
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}

function LocalModelRow({ model }: { model: LocalModel }) {
  const actions = useActions();
  const loadedPath = useHearth(selectLoadedModelPath);
  const pending = useHearth(selectLoadPending);
  const [planOpen, setPlanOpen] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [revealFailed, setRevealFailed] = useState<HearthError | null>(null);
  const panelId = useId();
  const reveal = async () => {
    const result = await actions.revealModel(model.path);
    setRevealFailed(result.ok ? null : result.error);
  };
  return (
    <li className="py-2.5 text-sm">
      <LocalModelView
        model={model}
        loaded={loadedPath === model.path}
        loadPending={pending}
        planOpen={planOpen}
        panelId={panelId}
        revealError={revealFailed}
        onTogglePlan={() => setPlanOpen(!planOpen)}
        onLoad={() => void actions.loadModel(model.path)}
        onReveal={() => void reveal()}
        onDelete={() => setDeleting(true)}
      />
      {planOpen && <MemoryPlanPanel id={panelId} name={model.fileName} target={{ path: model.path }} />}
      {deleting && <DeleteModelDialog model={model} onClose={() => setDeleting(false)} />}
    </li>
  );
}

export interface LocalModelViewProps {
  readonly model: LocalModel;
  readonly loaded: boolean;
  readonly loadPending: boolean;
  readonly planOpen: boolean;
  readonly panelId: string;
  /** Reveal's failure: on NOT_SUPPORTED (the browser host) the path is shown to copy instead. */
  readonly revealError: HearthError | null;
  onTogglePlan(): void;
  onLoad(): void;
  onReveal(): void;
  onDelete(): void;
}

/** A local model's row: names, figures, path, and its buttons (Delete only for Hearth's own). */
export function LocalModelView(props: LocalModelViewProps) {
  const { model } = props;
  const facts = modelFacts(model);
  return (
    <div className="space-y-1">
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <p className="truncate font-medium" title={model.displayName}>
            {model.displayName}
          </p>
          <p className="text-xs text-stone-500 tabular-nums dark:text-stone-400">
            {formatBytes(model.sizeBytes)}
            {model.parts > 1 && ` · ${model.parts} parts`}
            {facts && ` · ${facts}`}
          </p>
        </div>
        <div className="flex shrink-0 items-center gap-1.5">
          <MemoryPlanButton name={model.fileName} open={props.planOpen} panelId={props.panelId} onToggle={props.onTogglePlan} />
          <button type="button" aria-label={`Reveal ${model.fileName} in its folder`} title="Show in folder" onClick={props.onReveal} className={buttonStyles.ghost}>
            Reveal
          </button>
          {model.source === 'hearth' && (
            <button type="button" aria-label={`Delete ${model.fileName}`} title="Delete" onClick={props.onDelete} className={buttonStyles.ghost}>
              <TrashIcon className="size-3.5" />
            </button>
          )}
          {props.loaded ? (
            <span className="px-2 text-xs font-semibold text-green-700 dark:text-green-400">Loaded</span>
          ) : (
            <button
              type="button"
              aria-label={`Load ${model.fileName}`}
              disabled={props.loadPending || model.problem !== undefined}
              onClick={props.onLoad}
              className={buttonStyles.secondary}
            >
              Load
            </button>
          )}
        </div>
      </div>
      <p className="text-xs break-all text-stone-500 dark:text-stone-400" title={model.path}>
        {model.displayName !== model.fileName && <span className="text-stone-600 dark:text-stone-300">{model.fileName} · </span>}
        {model.path}
      </p>
      {model.problem && <p className="text-xs text-red-700 dark:text-red-300">It cannot be loaded: {model.problem}</p>}
      {props.revealError &&
        (props.revealError.code === 'NOT_SUPPORTED' ? (
          <div data-testid="reveal-path" className="flex flex-wrap items-center gap-2 rounded-md bg-stone-100 px-2 py-1 text-xs dark:bg-stone-900">
            <span>This window cannot open folders. The file is at</span>
            <code className="font-mono break-all">{model.path}</code>
            <CopyButton text={model.path} label="Copy path" />
          </div>
        ) : (
          <ErrorBox error={props.revealError} />
        ))}
    </div>
  );
}

/** Asks before deleting, with the KV the model left (conversations and bytes) as an option. */
function DeleteModelDialog(props: { model: LocalModel; onClose: () => void }) {
  const actions = useActions();
  const { model } = props;
  const [usage, setUsage] = useState<ModelKvUsage | null>(null);
  const [usageError, setUsageError] = useState<HearthError | null>(null);
  const [deleteKv, setDeleteKv] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);
  useEffect(() => {
    let live = true;
    void actions.modelKvUsage(model.path).then((result) => {
      if (!live) return;
      if (result.ok) setUsage(result.value);
      else setUsageError(result.error);
    });
    return () => {
      live = false;
    };
  }, [actions, model.path]);
  const confirm = async () => {
    setBusy(true);
    const result = await actions.deleteModel(model.path, deleteKv);
    setBusy(false);
    if (result.ok) props.onClose();
    else setError(result.error);
  };
  return (
    <Dialog open onClose={props.onClose} title={`Delete ${model.displayName}?`}>
      <DeleteModelForm
        model={model}
        usage={usage}
        usageError={usageError}
        deleteKv={deleteKv}
        busy={busy}
        error={error}
        onDeleteKvChange={setDeleteKv}
        onCancel={props.onClose}
        onConfirm={() => void confirm()}
      />
    </Dialog>
  );
}

export interface DeleteModelFormProps {
  readonly model: LocalModel;
  /** null while `models.kvUsage` is on its way (or failed). */
  readonly usage: ModelKvUsage | null;
  readonly usageError: HearthError | null;
  readonly deleteKv: boolean;
  readonly busy: boolean;
  readonly error: HearthError | null;
  onDeleteKvChange(deleteKv: boolean): void;
  onCancel(): void;
  onConfirm(): void;
}

/** The dialog's body: what goes, the KV option once its size is known, Cancel and Delete. */
export function DeleteModelForm(props: DeleteModelFormProps) {
  const { model, usage } = props;
  // One delete dialog is open at a time: a fixed id keeps this body free of hooks (tests render it bare).
  const id = 'delete-model-kv';
  return (
    <div className="space-y-3 text-sm">
      <p>
        {model.parts > 1 ? `Its ${model.parts} files` : 'The file'} ({formatBytes(model.sizeBytes)}) will be deleted from disk. This cannot be undone.
      </p>
      <div className="min-h-6">
        {usage === null ? (
          props.usageError ? (
            <p className="text-stone-500 dark:text-stone-400">Its stored KV could not be measured: {props.usageError.message}</p>
          ) : (
            <p className="text-stone-500 dark:text-stone-400">Checking its stored KV…</p>
          )
        ) : usage.conversations === 0 ? (
          <p className="text-stone-500 dark:text-stone-400">No conversation has stored KV computed with it.</p>
        ) : (
          <label htmlFor={id} className="flex items-start gap-2">
            <input
              id={id}
              type="checkbox"
              data-testid="delete-kv"
              checked={props.deleteKv}
              onChange={(e) => props.onDeleteKvChange(e.target.checked)}
              className="mt-0.5 accent-amber-600"
            />
            <span>
              Also delete its stored KV ({usage.conversations} {usage.conversations === 1 ? 'conversation' : 'conversations'}, {formatBytes(usage.bytes, true)})
              <span className="block text-xs text-stone-500 dark:text-stone-400">The conversations stay; they are read again from their text if the model comes back.</span>
            </span>
          </label>
        )}
      </div>
      {props.error && <ErrorBox error={props.error} alert />}
      <div className="flex justify-end gap-2 pt-1">
        <button type="button" onClick={props.onCancel} className={buttonStyles.secondary}>
          Cancel
        </button>
        <button type="button" data-testid="delete-model-confirm" disabled={props.busy} onClick={props.onConfirm} className={buttonStyles.danger}>
          Delete
        </button>
      </div>
    </div>
  );
}

/** Hearth's models folder (where downloads go), Reset to default, and every folder searched. */
export function ModelsFolder() {
  const actions = useActions();
  const library = useHearth(selectLibrary);
  const settings = useHearth(selectSettings);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);
  const apply = async (dir: string | null) => {
    setBusy(true);
    const result = await actions.setModelsDir(dir);
    setBusy(false);
    setError(result.ok ? null : result.error);
    return result.ok;
  };
  return (
    <ModelsFolderView
      key={library?.modelsDir ?? ''}
      modelsDir={library?.modelsDir ?? null}
      custom={settings?.modelsDir != null}
      folders={library?.folders ?? null}
      busy={busy}
      error={error}
      onApply={apply}
    />
  );
}

export interface ModelsFolderViewProps {
  readonly modelsDir: string | null;
  /** Settings.modelsDir is set (Reset to default then shows). */
  readonly custom: boolean;
  readonly folders: readonly ModelFolder[] | null;
  readonly busy: boolean;
  readonly error: HearthError | null;
  /** null: back to the default folder. Resolves true when the host took it. */
  onApply(dir: string | null): Promise<boolean>;
}

export function ModelsFolderView(props: ModelsFolderViewProps) {
  const [dir, setDir] = useState(props.modelsDir ?? '');
  const id = useId();
  const changed = dir.trim() !== '' && dir.trim() !== props.modelsDir;
  return (
    <section aria-labelledby="models-folder" className={`${section} space-y-3`}>
      <h2 id="models-folder" className="text-base font-semibold">
        Models folder
      </h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (changed) void props.onApply(dir.trim());
        }}
        className="space-y-1"
      >
        <label htmlFor={id} className="block text-sm font-medium">
          Downloads go to
        </label>
        <div className="flex flex-wrap gap-2">
          <input id={id} value={dir} onChange={(e) => setDir(e.target.value)} spellCheck={false} autoComplete="off" className={`${inputStyles} min-w-48 flex-1 font-mono`} />
          <button type="submit" disabled={props.busy || !changed} className={buttonStyles.primary}>
            Save
          </button>
          {props.custom && (
            <button type="button" disabled={props.busy} onClick={() => void props.onApply(null)} className={buttonStyles.secondary}>
              Reset to default
            </button>
          )}
        </div>
        <p className="text-xs text-stone-500 dark:text-stone-400">Models already downloaded stay where they are; the new folder is listed from now on.</p>
      </form>
      {props.error && <ErrorBox error={props.error} alert title="The folder was not changed." />}
      <div>
        <h3 className="mb-1 text-sm font-semibold">Folders searched</h3>
        {props.folders === null ? (
          <p className={muted}>Looking…</p>
        ) : (
          <ul data-testid="model-folders" className="space-y-1 text-xs">
            {props.folders.map((folder) => (
              <li key={`${folder.source}:${folder.dir}`} className="flex flex-wrap items-baseline gap-x-2">
                <span className="w-20 shrink-0 font-medium">{modelSourceNames[folder.source]}</span>
                <code className="min-w-0 flex-1 font-mono break-all text-stone-600 dark:text-stone-300">{folder.dir}</code>
                <span className="text-stone-500 tabular-nums dark:text-stone-400">
                  {folder.exists ? `${folder.models} ${folder.models === 1 ? 'model' : 'models'}` : 'not found'}
                </span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
