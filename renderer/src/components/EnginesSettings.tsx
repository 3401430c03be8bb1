/**
 * Settings → Engines: the remote OpenAI-compatible servers a chat can run on, beside this
 * computer's engine. Adding one checks it at once (the host keeps it even when the check fails);
 * the dialog's Test checks an address before anything is stored.
 */
import { useEffect, useRef, useState } from 'react';
import { remoteEngineKindNames, remoteEngineKinds, type CallInput, type HearthError, type RemoteEngine, type RemoteEngineKind, type RemoteEngineStatus, type Result } from '../contract.ts';
import { apiKeyProblem, baseUrlProblem, engineNameProblem, engineStatusText, modelCountText } from '../lib/engines.ts';
import { formatCount } from '../lib/format.ts';
import { routeHash } from '../lib/route.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectEngines, selectEnginesError, selectRoute } from '../state/selectors.ts';
import { buttonStyles, Dialog, ErrorBox, inputStyles } from './ui.tsx';

const muted = 'text-sm text-stone-500 dark:text-stone-400';
const help = 'mt-0.5 text-xs text-stone-500 dark:text-stone-400';
const problemStyle = 'mt-0.5 text-xs text-red-700 dark:text-red-300';

export function EnginesSection() {
  const actions = useActions();
  const engines = useHearth(selectEngines);
  const listError = useHearth(selectEnginesError);
  const route = useHearth(selectRoute);
  const heading = useRef<HTMLHeadingElement>(null);
  const [editing, setEditing] = useState<RemoteEngine | 'new' | null>(null);
  const [removing, setRemoving] = useState<RemoteEngine | null>(null);
  const [checking, setChecking] = useState<ReadonlySet<string>>(new Set());
  const [rowErrors, setRowErrors] = useState<Readonly<Record<string, HearthError>>>({});
  const [status, setStatus] = useState('');

  // `#/settings/engines` (the chat picker's link) lands on this section.
  const wanted = route.name === 'settings' && route.section === 'engines';
  useEffect(() => {
    if (wanted) heading.current?.scrollIntoView?.({ block: 'start' });
  }, [wanted]);

  const check = async (engine: RemoteEngine) => {
    setChecking((s) => new Set(s).add(engine.id));
    const result = await actions.checkEngine(engine.id);
    setChecking((s) => {
      const next = new Set(s);
      next.delete(engine.id);
      return next;
    });
    setRowErrors(({ [engine.id]: _old, ...rest }) => (result.ok ? rest : { ...rest, [engine.id]: result.error }));
  };

  return (
    <section aria-labelledby="engines-heading" className="space-y-3 border-t border-stone-200 pt-6 dark:border-stone-800">
      <h2 id="engines-heading" ref={heading} className="text-base font-semibold">
        Engines
      </h2>
      <p className={muted}>
        Chats run on this computer unless you move them to a remote engine: an OpenAI-compatible server (llama-server, vLLM, SGLang) on another machine.
        Hearth keeps the chat here; the server only writes the replies.
      </p>
      {engines === null ? (
        listError ? (
          <ErrorBox error={listError} title="The engines could not be listed.">
            <button type="button" onClick={() => void actions.loadEngines()} className={`${buttonStyles.secondary} mt-2`}>
              Try again
            </button>
          </ErrorBox>
        ) : (
          <p className={muted}>Loading…</p>
        )
      ) : (
        <EngineList
          engines={engines}
          checking={checking}
          errors={rowErrors}
          onCheck={(engine) => void check(engine)}
          onEdit={(engine) => setEditing(engine)}
          onRemove={(engine) => setRemoving(engine)}
        />
      )}
      <div className="flex items-center gap-3">
        <button type="button" onClick={() => setEditing('new')} className={buttonStyles.primary}>
          Add engine
        </button>
        <p role="status" className="text-sm">
          {status}
        </p>
      </div>
      <EngineDialog
        open={editing !== null}
        engine={editing === 'new' || editing === null ? null : editing}
        onClose={() => setEditing(null)}
        onSaved={(engine, added) => setStatus(added ? `Added ${engine.name}.` : `Saved ${engine.name}.`)}
      />
      <RemoveEngineDialog
        engine={removing}
        onClose={() => setRemoving(null)}
        onRemoved={(engine, chats) => setStatus(removedText(engine.name, chats))}
      />
    </section>
  );
}

/** The status line after a removal: its chats are not lost. */
export function removedText(name: string, chats: number): string {
  if (chats === 0) return `Removed ${name}.`;
  const which = chats === 1 ? '1 chat ran on it: it keeps its history' : `${formatCount(chats)} chats ran on it: they keep their history`;
  return `Removed ${name}. ${which} and will ask to be moved.`;
}

export interface EngineListProps {
  readonly engines: readonly RemoteEngine[];
  readonly checking: ReadonlySet<string>;
  /** A failed `engines.check` call, by engine (a failed check of the server itself is in its status). */
  readonly errors: Readonly<Record<string, HearthError>>;
  readonly onCheck: (engine: RemoteEngine) => void;
  readonly onEdit: (engine: RemoteEngine) => void;
  readonly onRemove: (engine: RemoteEngine) => void;
}

export function EngineList(props: EngineListProps) {
  if (props.engines.length === 0) return <p className={muted}>No remote engines yet.</p>;
  return (
    <ul aria-label="Remote engines" className="divide-y divide-stone-200 rounded-md border border-stone-200 dark:divide-stone-800 dark:border-stone-800">
      {props.engines.map((engine) => (
        <EngineRow
          key={engine.id}
          engine={engine}
          checking={props.checking.has(engine.id)}
          error={props.errors[engine.id]}
          onCheck={props.onCheck}
          onEdit={props.onEdit}
          onRemove={props.onRemove}
        />
      ))}
    </ul>
  );
}

/** Model ids shown in a row before "and N more". */
const modelsShown = 6;

function EngineRow(props: { engine: RemoteEngine; checking: boolean; error: HearthError | undefined } & Pick<EngineListProps, 'onCheck' | 'onEdit' | 'onRemove'>) {
  const { engine } = props;
  const { status } = engine;
  const statusId = `engine-${engine.id}-status`;
  const models = status.models.map((m) => m.id);
  const more = models.length - modelsShown;
  return (
    <li aria-label={engine.name} data-testid="engine-row" className="space-y-1.5 px-3 py-2.5">
      <div className="flex flex-wrap items-baseline gap-x-3 gap-y-1">
        <span className="font-medium">{engine.name}</span>
        <span className="text-xs text-stone-600 dark:text-stone-300">{remoteEngineKindNames[engine.kind]}</span>
        <code className="min-w-0 truncate text-xs text-stone-600 dark:text-stone-300">{engine.baseUrl}</code>
        {engine.hasApiKey && <span className="text-xs text-stone-500 dark:text-stone-400">key stored</span>}
      </div>
      <div id={statusId} data-testid="engine-status" data-state={status.state} className="text-sm">
        {status.state === 'error' && status.error ? (
          <ErrorBox error={status.error} />
        ) : (
          <p className={status.state === 'online' ? 'text-green-800 dark:text-green-300' : 'text-stone-600 dark:text-stone-300'}>
            {props.checking ? 'Checking…' : engineStatusText(status)}
            {status.state === 'online' && !status.metrics && <span className="text-stone-600 dark:text-stone-300"> · its /metrics did not answer, so the Cache view has no figures for it</span>}
          </p>
        )}
      </div>
      {models.length > 0 && (
        <p className="text-xs break-words text-stone-600 dark:text-stone-300">
          {status.state === 'error' ? 'Last listed: ' : ''}
          {models.slice(0, modelsShown).join(', ')}
          {more > 0 ? ` and ${formatCount(more)} more` : ''}
        </p>
      )}
      {props.error && <ErrorBox error={props.error} title="The check could not run." />}
      <div className="flex flex-wrap items-center gap-1">
        <button type="button" disabled={props.checking} aria-describedby={statusId} aria-label={`Check again: ${engine.name}`} onClick={() => props.onCheck(engine)} className={buttonStyles.ghost}>
          {props.checking ? 'Checking…' : 'Check again'}
        </button>
        <button type="button" aria-label={`Edit ${engine.name}`} onClick={() => props.onEdit(engine)} className={buttonStyles.ghost}>
          Edit
        </button>
        <button type="button" aria-label={`Remove ${engine.name}`} onClick={() => props.onRemove(engine)} className={buttonStyles.ghost}>
          Remove
        </button>
        <a
          href={routeHash({ name: 'cache', engineId: engine.id })}
          aria-label={`Cache view: ${engine.name}`}
          className="px-2 py-1 text-sm text-amber-700 underline hover:text-amber-800 dark:text-amber-400 dark:hover:text-amber-300"
        >
          Cache view
        </a>
      </div>
    </li>
  );
}

// The add/edit dialog.

export interface EngineForm {
  readonly name: string;
  readonly baseUrl: string;
  readonly kind: RemoteEngineKind;
  /** Typed by the user; empty keeps the stored key (edit) or means none (add). */
  readonly apiKey: string;
  /** Edit only: forget the stored key (`apiKey: null`). */
  readonly removeKey: boolean;
}

export type EngineFormProblems = Partial<Record<'name' | 'baseUrl' | 'apiKey', string>>;

export function engineFormFrom(engine: RemoteEngine | null): EngineForm {
  return { name: engine?.name ?? '', baseUrl: engine?.baseUrl ?? '', kind: engine?.kind ?? 'openai-compatible', apiKey: '', removeKey: false };
}

export function engineFormProblems(form: EngineForm, only: 'all' | 'address' = 'all'): EngineFormProblems {
  const problems: { -readonly [K in keyof EngineFormProblems]: string } = {};
  const name = only === 'all' ? engineNameProblem(form.name) : null;
  const baseUrl = baseUrlProblem(form.baseUrl);
  const apiKey = form.removeKey ? null : apiKeyProblem(form.apiKey);
  if (name) problems.name = name;
  if (baseUrl) problems.baseUrl = baseUrl;
  if (apiKey) problems.apiKey = apiKey;
  return problems;
}

const hasProblems = (p: EngineFormProblems) => Object.keys(p).length > 0;

export function addInput(form: EngineForm): CallInput<'engines.add'> {
  const apiKey = form.apiKey.trim();
  return { name: form.name.trim(), baseUrl: form.baseUrl.trim(), kind: form.kind, ...(apiKey ? { apiKey } : {}) };
}

/** Every field is sent; the key only when typed (a new one) or removed (null). */
export function updateInput(form: EngineForm, engine: RemoteEngine): CallInput<'engines.update'> {
  const apiKey = form.apiKey.trim();
  const key = form.removeKey ? { apiKey: null } : apiKey ? { apiKey } : {};
  return { engineId: engine.id, name: form.name.trim(), baseUrl: form.baseUrl.trim(), kind: form.kind, ...key };
}

/** A typed key is tested; else an edited engine lends its stored key, unless it is being removed. */
export function testInput(form: EngineForm, engine: RemoteEngine | null): CallInput<'engines.test'> {
  const apiKey = form.removeKey ? '' : form.apiKey.trim();
  const lend = engine !== null && engine.hasApiKey && !form.removeKey && apiKey === '';
  return { baseUrl: form.baseUrl.trim(), kind: form.kind, ...(apiKey ? { apiKey } : {}), ...(lend ? { engineId: engine.id } : {}) };
}

export type TestState = { readonly pending: true } | { readonly pending: false; readonly result: Result<RemoteEngineStatus> } | null;

function EngineDialog(props: { open: boolean; engine: RemoteEngine | null; onClose: () => void; onSaved: (engine: RemoteEngine, added: boolean) => void }) {
  return (
    <Dialog open={props.open} onClose={props.onClose} title={props.engine ? `Edit ${props.engine.name}` : 'Add engine'}>
      <EngineFormBox engine={props.engine} onClose={props.onClose} onSaved={props.onSaved} />
    </Dialog>
  );
}

function EngineFormBox(props: { engine: RemoteEngine | null; onClose: () => void; onSaved: (engine: RemoteEngine, added: boolean) => void }) {
  const actions = useActions();
  const [form, setForm] = useState<EngineForm>(() => engineFormFrom(props.engine));
  const [shown, setShown] = useState<'none' | 'address' | 'all'>('none');
  const [test, setTest] = useState<TestState>(null);
  const [error, setError] = useState<HearthError | null>(null);
  const [saving, setSaving] = useState(false);
  // Answers for an older address are not this one's.
  const tests = useRef(0);

  const change = (patch: Partial<EngineForm>) => {
    setForm((f) => ({ ...f, ...patch }));
    if (patch.baseUrl !== undefined || patch.kind !== undefined || patch.apiKey !== undefined || patch.removeKey !== undefined) {
      tests.current += 1;
      setTest(null);
    }
  };

  const runTest = async () => {
    if (shown !== 'all') setShown('address');
    if (hasProblems(engineFormProblems(form, 'address'))) return;
    tests.current += 1;
    const mine = tests.current;
    setTest({ pending: true });
    const result = await actions.testEngine(testInput(form, props.engine));
    if (mine === tests.current) setTest({ pending: false, result });
  };

  const save = async () => {
    if (saving) return;
    setShown('all');
    if (hasProblems(engineFormProblems(form))) return;
    setSaving(true);
    const result = props.engine ? await actions.updateEngine(updateInput(form, props.engine)) : await actions.addEngine(addInput(form));
    setSaving(false);
    if (!result.ok) return setError(result.error);
    props.onSaved(result.value, props.engine === null);
    props.onClose();
  };

  return (
    <EngineFormView
      form={form}
      problems={shown === 'none' ? {} : engineFormProblems(form, shown)}
      editing={props.engine}
      test={test}
      error={error}
      saving={saving}
      onChange={change}
      onTest={() => void runTest()}
      onSubmit={() => void save()}
      onCancel={props.onClose}
    />
  );
}

export interface EngineFormViewProps {
  readonly form: EngineForm;
  readonly problems: EngineFormProblems;
  /** The engine being edited; null when adding. */
  readonly editing: RemoteEngine | null;
  readonly test: TestState;
  readonly error: HearthError | null;
  readonly saving: boolean;
  readonly onChange: (patch: Partial<EngineForm>) => void;
  readonly onTest: () => void;
  readonly onSubmit: () => void;
  readonly onCancel: () => void;
}

/** A field's label, input and its help or problem, tied together for assistive technology. */
function describedBy(id: string, problem: string | undefined, hasHelp: boolean): string | undefined {
  const ids = [problem ? `${id}-problem` : null, hasHelp ? `${id}-help` : null].filter((x) => x !== null);
  return ids.length > 0 ? ids.join(' ') : undefined;
}

function Problem({ id, text }: { id: string; text: string | undefined }) {
  return text ? (
    <p id={`${id}-problem`} className={problemStyle}>
      {text}
    </p>
  ) : null;
}

export function EngineFormView(props: EngineFormViewProps) {
  const { form, problems, editing } = props;
  const keyHelp = editing?.hasApiKey ? 'Leave empty to keep the stored key.' : 'Leave empty if the server needs none. It is sent as a Bearer token.';
  return (
    <form
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
      className="space-y-4"
    >
      <div>
        <label htmlFor="engine-name" className="mb-1 block text-sm font-medium">
          Name
        </label>
        <input
          id="engine-name"
          autoFocus
          value={form.name}
          maxLength={80}
          placeholder="GPU box"
          aria-invalid={problems.name ? true : undefined}
          aria-describedby={describedBy('engine-name', problems.name, false)}
          onChange={(e) => props.onChange({ name: e.target.value })}
          className={inputStyles}
        />
        <Problem id="engine-name" text={problems.name} />
      </div>
      <div>
        <label htmlFor="engine-url" className="mb-1 block text-sm font-medium">
          Base URL
        </label>
        <input
          id="engine-url"
          type="url"
          value={form.baseUrl}
          placeholder="http://gpu-box:8000"
          spellCheck={false}
          aria-invalid={problems.baseUrl ? true : undefined}
          aria-describedby={describedBy('engine-url', problems.baseUrl, true)}
          onChange={(e) => props.onChange({ baseUrl: e.target.value })}
          className={inputStyles}
        />
        <Problem id="engine-url" text={problems.baseUrl} />
        <p id="engine-url-help" className={help}>
          The server’s root, without /v1: Hearth calls &lt;address&gt;/v1 and reads &lt;address&gt;/metrics.
        </p>
      </div>
      <div>
        <label htmlFor="engine-kind" className="mb-1 block text-sm font-medium">
          Kind
        </label>
        <select id="engine-kind" value={form.kind} aria-describedby="engine-kind-help" onChange={(e) => props.onChange({ kind: e.target.value as RemoteEngineKind })} className={inputStyles}>
          {remoteEngineKinds.map((kind) => (
            <option key={kind} value={kind}>
              {remoteEngineKindNames[kind]}
            </option>
          ))}
        </select>
        <p id="engine-kind-help" className={help}>
          Decides which cache figures are read from its /metrics.
        </p>
      </div>
      <div>
        <label htmlFor="engine-key" className="mb-1 block text-sm font-medium">
          API key
        </label>
        <input
          id="engine-key"
          type="password"
          autoComplete="off"
          value={form.removeKey ? '' : form.apiKey}
          disabled={form.removeKey}
          aria-invalid={problems.apiKey ? true : undefined}
          aria-describedby={describedBy('engine-key', problems.apiKey, true)}
          onChange={(e) => props.onChange({ apiKey: e.target.value })}
          className={inputStyles}
        />
        <Problem id="engine-key" text={problems.apiKey} />
        <p id="engine-key-help" className={help}>
          {keyHelp}
        </p>
        {editing?.hasApiKey && (
          <label className="mt-1.5 flex items-center gap-1.5 text-sm">
            <input type="checkbox" checked={form.removeKey} onChange={(e) => props.onChange({ removeKey: e.target.checked })} className="accent-amber-600" />
            Remove the stored key
          </label>
        )}
      </div>
      <TestResult test={props.test} />
      {props.error && <ErrorBox error={props.error} alert title={editing ? 'The engine could not be saved.' : 'The engine could not be added.'} />}
      <div className="flex items-center justify-between gap-2">
        <button type="button" disabled={props.test?.pending === true} onClick={props.onTest} className={buttonStyles.secondary}>
          Test
        </button>
        <div className="flex gap-2">
          <button type="button" onClick={props.onCancel} className={buttonStyles.secondary}>
            Cancel
          </button>
          <button type="submit" disabled={props.saving} className={buttonStyles.primary}>
            {props.saving ? 'Saving…' : 'Save'}
          </button>
        </div>
      </div>
    </form>
  );
}

/** What Test found: the models, or why it failed (a refused call, or the server's own error). */
export function TestResult({ test }: { test: TestState }) {
  return (
    <div role="status" data-testid="engine-test-result" className="text-sm">
      {test === null ? null : test.pending ? (
        <p className="text-stone-600 dark:text-stone-300">Testing…</p>
      ) : !test.result.ok ? (
        <ErrorBox error={test.result.error} title="The test could not run." />
      ) : test.result.value.state === 'error' ? (
        <ErrorBox error={test.result.value.error ?? { code: 'NETWORK_ERROR', message: 'The server did not answer as expected.' }} title="The server did not pass the test." />
      ) : (
        <TestFound status={test.result.value} />
      )}
    </div>
  );
}

function TestFound({ status }: { status: RemoteEngineStatus }) {
  const models = status.models;
  return (
    <div className="rounded-md border border-green-300 bg-green-50 px-3 py-2 text-green-900 dark:border-green-800 dark:bg-green-950 dark:text-green-100">
      <p className="font-medium">It answered: {modelCountText(models.length)}.</p>
      {models.length > 0 && (
        <ul className="mt-1 max-h-32 overflow-y-auto text-xs">
          {models.map((m) => (
            <li key={m.id} className="break-all">
              {m.id}
              {m.contextLength ? ` (${formatCount(m.contextLength)} tokens of context)` : ''}
            </li>
          ))}
        </ul>
      )}
      <p className="mt-1 text-xs">{status.metrics ? 'Its /metrics answered: the Cache view can show its KV cache.' : 'Its /metrics did not answer: the Cache view will have no figures for it.'}</p>
    </div>
  );
}

function RemoveEngineDialog(props: { engine: RemoteEngine | null; onClose: () => void; onRemoved: (engine: RemoteEngine, chats: number) => void }) {
  const actions = useActions();
  const [error, setError] = useState<HearthError | null>(null);
  const [removing, setRemoving] = useState(false);
  const { engine } = props;
  const close = () => {
    setError(null);
    props.onClose();
  };
  const remove = async () => {
    if (!engine || removing) return;
    setRemoving(true);
    const result = await actions.removeEngine(engine.id);
    setRemoving(false);
    if (!result.ok) return setError(result.error);
    props.onRemoved(engine, result.value.chats);
    close();
  };
  return (
    <Dialog open={engine !== null} onClose={close} title={engine ? `Remove ${engine.name}?` : 'Remove engine'}>
      <RemoveEngineView name={engine?.name ?? ''} error={error} removing={removing} onCancel={close} onRemove={() => void remove()} />
    </Dialog>
  );
}

export function RemoveEngineView(props: { name: string; error: HearthError | null; removing: boolean; onCancel: () => void; onRemove: () => void }) {
  return (
    <div className="space-y-4">
      <p className="text-sm">
        Hearth forgets {props.name} and its API key. Its chats keep their history and will ask to be moved to another engine before their next reply.
      </p>
      {props.error && <ErrorBox error={props.error} alert title="The engine could not be removed." />}
      <div className="flex justify-end gap-2">
        <button type="button" autoFocus onClick={props.onCancel} className={buttonStyles.secondary}>
          Cancel
        </button>
        <button type="button" disabled={props.removing} onClick={props.onRemove} className={buttonStyles.danger}>
          Remove
        </button>
      </div>
    </div>
  );
}
