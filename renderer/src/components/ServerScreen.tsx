/**
 * The Server screen: the local API server (OpenAI- and Anthropic-compatible) on its own port.
 * Its switch, address, key, network and browser access, ready-to-paste client code, and the live
 * request log. The state is the host's (`server.state`, then its events); this screen only asks
 * for changes and shows the answer, so it never shows a setting the host did not apply.
 */
import { useEffect, useId, useState } from 'react';
import type { ApiRequestLog, CallInput, HearthError } from '../contract.ts';
import { clockText, msText } from '../lib/cache.ts';
import { baseUrl, cachedText, countText, maskedKey, modelIdFromPath, parseOrigin, parsePort, rateText, snippet, type SnippetKind } from '../lib/server.ts';
import { useActions, useHearth } from '../state/react.tsx';
import type { ServerInfo } from '../state/server-slice.ts';
import { selectLoadedModelPath, selectServer, selectServerLoadError, selectServerRequests } from '../state/selectors.ts';
import { CacheMissDetails } from './CacheMiss.tsx';
import { Section } from './CacheView.tsx';
import { buttonStyles, CopyButton, Dialog, ErrorBox, inputStyles } from './ui.tsx';

export type ServerPatch = CallInput<'server.configure'>;

export function ServerScreen() {
  const actions = useActions();
  const server = useHearth(selectServer);
  const requests = useHearth(selectServerRequests);
  const loadError = useHearth(selectServerLoadError);
  const modelPath = useHearth(selectLoadedModelPath);
  const [keyShown, setKeyShown] = useState(false);
  const [confirmingRotate, setConfirmingRotate] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);

  useEffect(() => {
    void actions.loadServer();
  }, [actions]);

  const configure = async (patch: ServerPatch) => {
    setBusy(true);
    const result = await actions.configureServer(patch);
    setBusy(false);
    setError(result.ok ? null : result.error);
  };
  const rotate = async () => {
    setBusy(true);
    const result = await actions.rotateServerKey();
    setBusy(false);
    setError(result.ok ? null : result.error);
    if (result.ok) setConfirmingRotate(false);
  };

  return (
    <div className="min-h-0 flex-1 overflow-y-auto" data-testid="server-screen">
      <div className="mx-auto max-w-4xl space-y-8 px-4 py-6">
        <div className="space-y-1">
          <h1 className="text-xl font-semibold">Server</h1>
          <p className="text-sm text-stone-600 dark:text-stone-300">
            Other programs on this computer can use the loaded model through an OpenAI- and Anthropic-compatible API.
          </p>
        </div>
        {server ? (
          <ServerView
            server={server}
            requests={requests}
            model={modelIdFromPath(modelPath)}
            keyShown={keyShown}
            confirmingRotate={confirmingRotate}
            busy={busy}
            error={error}
            onConfigure={(patch) => void configure(patch)}
            onToggleKey={() => setKeyShown((shown) => !shown)}
            onAskRotate={() => setConfirmingRotate(true)}
            onCancelRotate={() => setConfirmingRotate(false)}
            onRotate={() => void rotate()}
          />
        ) : loadError ? (
          <ErrorBox error={loadError} title="The server's state could not be read.">
            <button type="button" onClick={() => void actions.loadServer()} className={`${buttonStyles.secondary} mt-3`}>
              Try again
            </button>
          </ErrorBox>
        ) : (
          <p className={muted}>Loading…</p>
        )}
      </div>
    </div>
  );
}

const muted = 'text-sm text-stone-500 dark:text-stone-400';
const help = 'text-xs text-stone-500 dark:text-stone-400';

export interface ServerViewProps {
  readonly server: ServerInfo;
  /** Oldest first, as the store keeps them. */
  readonly requests: readonly ApiRequestLog[];
  /** The id snippets ask for. */
  readonly model: string;
  readonly keyShown: boolean;
  readonly confirmingRotate: boolean;
  /** A change is on its way to the host: the switch waits for its answer. */
  readonly busy: boolean;
  /** The last change the host refused. */
  readonly error: HearthError | null;
  onConfigure(patch: ServerPatch): void;
  onToggleKey(): void;
  onAskRotate(): void;
  onCancelRotate(): void;
  onRotate(): void;
}

/** The screen below its heading; it holds no state of its own (the container above does). */
export function ServerView(props: ServerViewProps) {
  const { server, onConfigure } = props;
  const { settings } = server;
  return (
    <div className="space-y-8">
      <Section id="server-status" title="Status">
        <div className="flex flex-wrap items-center gap-3">
          <button
            type="button"
            role="switch"
            aria-checked={settings.enabled}
            aria-labelledby="server-toggle-label"
            data-testid="server-toggle"
            disabled={props.busy}
            onClick={() => onConfigure({ enabled: !settings.enabled })}
            className="group relative inline-flex h-6 w-11 shrink-0 items-center rounded-full bg-stone-300 transition-colors aria-checked:bg-amber-600 disabled:cursor-not-allowed disabled:opacity-50 dark:bg-stone-600 dark:aria-checked:bg-amber-500"
          >
            <span aria-hidden="true" className="inline-block size-5 translate-x-0.5 rounded-full bg-white shadow transition-transform group-aria-checked:translate-x-5.5" />
          </button>
          <span id="server-toggle-label" className="text-sm font-medium">
            Serve the API
          </span>
        </div>
        <StatusLine server={server} />
        {server.overridden && (
          <p role="note" className="rounded-md border border-sky-300 bg-sky-50 px-3 py-2 text-sm text-sky-900 dark:border-sky-800 dark:bg-sky-950 dark:text-sky-100">
            The command line set the port and key for this run. Changes to them here are saved, and take effect when Hearth starts without those options.
          </p>
        )}
        {props.error && <ErrorBox error={props.error} alert title="The server's settings were not changed." />}
        <dl className="grid grid-cols-[max-content_1fr] items-center gap-x-4 gap-y-2 text-sm">
          <dt className="text-stone-500 dark:text-stone-400">Address</dt>
          <dd className="flex min-w-0 flex-wrap items-center gap-2">
            {server.url ? (
              <>
                <code data-testid="server-url" className="font-mono break-all">
                  {server.url}
                </code>
                <CopyButton text={server.url} label="Copy address" />
              </>
            ) : (
              <span className="text-stone-500 dark:text-stone-400">Not listening</span>
            )}
          </dd>
          <dt>
            <label htmlFor="server-port" className="text-stone-500 dark:text-stone-400">
              Port
            </label>
          </dt>
          <dd>
            <PortField key={settings.port} port={settings.port} onApply={(port) => onConfigure({ port })} />
          </dd>
        </dl>
      </Section>

      <Section id="server-key" title="API key">
        <p className={help}>
          Clients send it as <code className="font-mono">Authorization: Bearer KEY</code> or <code className="font-mono">x-api-key: KEY</code>.
        </p>
        <div className="flex flex-wrap items-center gap-2">
          <code id="server-key-value" data-testid="server-key" className="rounded bg-stone-100 px-2 py-1 font-mono text-sm break-all dark:bg-stone-900">
            {props.keyShown ? (
              server.key
            ) : (
              <>
                <span aria-hidden="true">{maskedKey}</span>
                <span className="sr-only">hidden</span>
              </>
            )}
          </code>
          <button type="button" aria-controls="server-key-value" onClick={props.onToggleKey} className={buttonStyles.secondary}>
            {props.keyShown ? 'Hide' : 'Show'}
          </button>
          <CopyButton text={server.key} label="Copy" testId="server-copy-key" describedBy="server-key-heading" className={buttonStyles.secondary} />
          <button type="button" data-testid="server-rotate-key" onClick={props.onAskRotate} className={buttonStyles.secondary}>
            New key
          </button>
        </div>
        <Dialog open={props.confirmingRotate} onClose={props.onCancelRotate} title="Make a new key?">
          <p className="mb-4 text-sm">Programs using the current key stop working until they are given the new one.</p>
          {props.error && <ErrorBox error={props.error} />}
          <div className="mt-4 flex justify-end gap-2">
            <button type="button" className={buttonStyles.secondary} onClick={props.onCancelRotate}>
              Cancel
            </button>
            <button type="button" data-testid="server-rotate-confirm" disabled={props.busy} className={buttonStyles.danger} onClick={props.onRotate}>
              Make a new key
            </button>
          </div>
        </Dialog>
      </Section>

      <Section id="server-access" title="Access">
        <div className="space-y-1">
          <label className="flex items-center gap-2 text-sm">
            <input
              type="checkbox"
              data-testid="server-lan"
              checked={settings.lan}
              disabled={props.busy}
              onChange={() => onConfigure({ lan: !settings.lan })}
              aria-describedby="server-lan-help"
              className="accent-amber-600"
            />
            Allow other devices on my network
          </label>
          {settings.lan ? (
            <p id="server-lan-help" className="rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-100">
              Anyone on your network who has the key can use the model. Prefer 127.0.0.1 (this computer only) unless another device needs it.
            </p>
          ) : (
            <p id="server-lan-help" className={help}>
              Off: only programs on this computer (127.0.0.1) can connect.
            </p>
          )}
        </div>
        <CorsEditor origins={settings.corsOrigins} disabled={props.busy} onChange={(corsOrigins) => onConfigure({ corsOrigins })} />
      </Section>

      <Section id="server-endpoints" title="Endpoints">
        {server.endpoints.length === 0 ? (
          <p className={muted}>None.</p>
        ) : (
          <ul className="space-y-0.5 text-sm">
            {server.endpoints.map((endpoint) => (
              <li key={endpoint}>
                <code className="font-mono">{endpoint}</code>
              </li>
            ))}
          </ul>
        )}
      </Section>

      <Snippets url={baseUrl(server.url, settings)} apiKey={server.key} keyShown={props.keyShown} model={props.model} listening={server.url !== null} />

      <Section id="server-requests" title="Requests">
        <RequestLog requests={props.requests} />
      </Section>
    </div>
  );
}

function StatusLine({ server }: { server: ServerInfo }) {
  const dot = server.status === 'listening' ? 'bg-green-500' : server.status === 'error' ? 'bg-red-500' : 'bg-stone-400';
  const text = server.status === 'listening' ? 'Listening' : server.status === 'error' ? 'Not listening: an error stopped it' : 'Off: nothing listens';
  return (
    <div className="space-y-2">
      <p role="status" data-testid="server-status" className="flex items-center gap-2 text-sm">
        <span aria-hidden="true" className={`inline-block size-2 rounded-full ${dot}`} />
        {text}
      </p>
      {server.status === 'error' && server.error && <ErrorBox error={server.error} />}
    </div>
  );
}

/** The port, applied when the field is left or Enter is pressed (not at each keystroke: each change restarts the server). */
function PortField({ port, onApply }: { port: number; onApply: (port: number) => void }) {
  const [text, setText] = useState(String(port));
  const [invalid, setInvalid] = useState(false);
  const apply = () => {
    const value = parsePort(text);
    setInvalid(value === null);
    if (value !== null && value !== port) onApply(value);
  };
  return (
    <div>
      <input
        id="server-port"
        data-testid="server-port"
        type="number"
        min={1}
        max={65_535}
        step={1}
        value={text}
        aria-invalid={invalid}
        aria-describedby="server-port-help"
        onChange={(e) => setText(e.target.value)}
        onBlur={apply}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            apply();
          } else if (e.key === 'Escape') {
            setText(String(port));
            setInvalid(false);
          }
        }}
        className={`${inputStyles} max-w-32 tabular-nums`}
      />
      <p id="server-port-help" className={invalid ? 'mt-0.5 text-xs text-red-700 dark:text-red-400' : `mt-0.5 ${help}`}>
        {invalid ? 'The port is a whole number from 1 to 65535.' : 'Applied when you leave the field or press Enter. The default is 4724.'}
      </p>
    </div>
  );
}

/** The host takes at most this many (server.configure). */
const maxOrigins = 20;

function CorsEditor(props: { origins: readonly string[]; disabled: boolean; onChange: (origins: string[]) => void }) {
  const [text, setText] = useState('');
  const [problem, setProblem] = useState('');
  const inputId = useId();
  const add = () => {
    const origin = parseOrigin(text);
    if (origin === null) return setProblem('An origin is scheme://host[:port], for example http://localhost:5173 (no path).');
    if (props.origins.includes(origin)) return setProblem(`${origin} is already allowed.`);
    if (props.origins.length >= maxOrigins) return setProblem(`At most ${maxOrigins} origins.`);
    setProblem('');
    setText('');
    props.onChange([...props.origins, origin]);
  };
  return (
    <fieldset className="space-y-2">
      <legend className="text-sm font-medium">Allowed browser origins (CORS)</legend>
      <p className={help}>Leave this empty unless a web app in your browser calls Hearth. Scripts, editors and other programs do not need it.</p>
      {props.origins.length > 0 && (
        <ul aria-label="Allowed origins" className="space-y-1">
          {props.origins.map((origin) => (
            <li key={origin} className="flex items-center gap-2 text-sm">
              <code className="font-mono">{origin}</code>
              <button
                type="button"
                aria-label={`Remove ${origin}`}
                disabled={props.disabled}
                onClick={() => props.onChange(props.origins.filter((o) => o !== origin))}
                className={buttonStyles.ghost}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="flex items-start gap-2">
        <label htmlFor={inputId} className="sr-only">
          Origin to allow
        </label>
        <input
          id={inputId}
          type="url"
          value={text}
          placeholder="http://localhost:5173"
          aria-invalid={problem !== ''}
          aria-describedby={problem ? `${inputId}-problem` : undefined}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.nativeEvent.isComposing) {
              e.preventDefault();
              add();
            }
          }}
          className={`${inputStyles} max-w-sm`}
        />
        <button type="button" disabled={props.disabled || text.trim() === ''} onClick={add} className={buttonStyles.secondary}>
          Add
        </button>
      </div>
      {problem && (
        <p id={`${inputId}-problem`} className="text-xs text-red-700 dark:text-red-400">
          {problem}
        </p>
      )}
    </fieldset>
  );
}

const snippetKinds: readonly { kind: SnippetKind; title: string }[] = [
  { kind: 'curl', title: 'curl' },
  { kind: 'python', title: 'Python (openai)' },
  { kind: 'js', title: 'JavaScript (openai)' },
  { kind: 'anthropic', title: 'Anthropic SDK (Python)' },
];

/**
 * Client code with the real address and key. While the key is hidden the code on screen masks
 * it too; Copy always copies the real key, which is what the reader wants to paste.
 */
export function Snippets(props: { url: string; apiKey: string; keyShown: boolean; model: string; listening: boolean }) {
  return (
    <Section id="server-snippets" title="Use it">
      <p className={help}>
        {props.listening ? '' : 'Turn the server on to use these. '}
        Any OpenAI-compatible client works with the address and key above; Anthropic clients take the address without <code className="font-mono">/v1</code>.
        {props.model === 'MODEL' ? ' Load a model, or replace MODEL with a model file name without .gguf.' : ''}
      </p>
      {snippetKinds.map(({ kind, title }) => {
        const text = snippet(kind, props.url, props.apiKey, props.model);
        const shown = props.keyShown ? text : snippet(kind, props.url, maskedKey, props.model);
        const headingId = `server-snippet-${kind}-title`;
        return (
          <div key={kind} className="space-y-1">
            <div className="flex items-center justify-between gap-2">
              <h3 id={headingId} className="text-sm font-medium">
                {title}
              </h3>
              <CopyButton text={text} describedBy={headingId} />
            </div>
            <pre data-testid={`server-snippet-${kind}`} className="overflow-x-auto rounded-md bg-stone-100 px-3 py-2 font-mono text-xs dark:bg-stone-900">
              {shown}
            </pre>
          </div>
        );
      })}
    </Section>
  );
}

const th = 'px-2 py-1.5 text-left font-medium';
const td = 'px-2 py-1.5';
const columns = ['Time', 'Client', 'Endpoint', 'Model', 'Status', 'Prompt tokens', 'Cached', 'TTFT ms', 'Tokens/s'] as const;

/** Newest first. A failed request, or one whose prompt missed the cache, gets a line below it that says why. */
export function RequestLog({ requests }: { requests: readonly ApiRequestLog[] }) {
  return (
    <div data-testid="server-request-log" className="max-h-[32rem] overflow-auto">
      {requests.length === 0 ? (
        <p className={muted}>No requests yet. Each finished request adds a row here.</p>
      ) : (
        <table className="w-full border-collapse text-sm [&>tbody]:border-t [&>tbody]:border-stone-200 dark:[&>tbody]:border-stone-800">
          <thead className="sticky top-0 bg-white text-stone-600 dark:bg-stone-950 dark:text-stone-300">
            <tr>
              {columns.map((column) => (
                <th key={column} className={th}>
                  {column}
                </th>
              ))}
            </tr>
          </thead>
          {requests
            .slice()
            .reverse()
            .map((row) => (
              <RequestRow key={`${row.id}-${row.at}`} row={row} />
            ))}
        </table>
      )}
    </div>
  );
}

function RequestRow({ row }: { row: ApiRequestLog }) {
  const failed = row.status >= 400;
  return (
    <tbody>
      <tr data-testid="server-request-row" className="tabular-nums">
        <td className={td}>
          <time dateTime={new Date(row.at).toISOString()}>{clockText(row.at)}</time>
        </td>
        <td className={`${td} max-w-40 truncate`} title={row.client}>
          {row.client}
        </td>
        <td className={`${td} font-mono text-xs whitespace-nowrap`}>{row.endpoint}</td>
        <td className={`${td} max-w-40 truncate`} title={row.model ?? undefined}>
          {row.model ?? '—'}
        </td>
        <td className={`${td} ${failed ? 'font-medium text-red-700 dark:text-red-400' : 'text-green-700 dark:text-green-400'}`}>{row.status}</td>
        <td className={td}>{countText(row.promptTokens)}</td>
        <td className={td}>{cachedText(row)}</td>
        <td className={td}>{row.ttftMs === null ? '—' : msText(row.ttftMs)}</td>
        <td className={td}>{rateText(row.tokensPerSecond)}</td>
      </tr>
      {(row.error !== undefined || row.cacheMiss) && (
        <tr>
          <td colSpan={columns.length} className={`${td} space-y-1 pt-0`}>
            {row.error !== undefined && <p className="text-sm text-red-700 dark:text-red-400">{row.error}</p>}
            {row.cacheMiss && <CacheMissDetails miss={row.cacheMiss} testId="server-cache-miss" />}
          </td>
        </tr>
      )}
    </tbody>
  );
}
