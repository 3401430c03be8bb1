import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import type { ApiServerState } from '../contract.ts';
import { parseHash, routeHash } from '../lib/route.ts';
import { anthropicBaseUrl, cachedText, modelIdFromPath, parseOrigin, parsePort, snippet } from '../lib/server.ts';
import { createActions } from '../state/actions.ts';
import { bindEvents } from '../state/events.ts';
import { HearthProvider } from '../state/react.tsx';
import { maxServerRequests } from '../state/server-slice.ts';
import { createHearthStore } from '../state/store.ts';
import { byTestId, fire, hostElements } from '../../../test/support/renderer/element-tree.ts';
import { fakeTransport, ok } from '../../../test/support/renderer/fake-transport.ts';
import { apiRequest, cacheTurn, serverState } from '../../../test/support/renderer/fixtures.ts';
import { TurnsTable } from './CacheView.tsx';
import { RequestLog, ServerScreen, ServerView, type ServerViewProps } from './ServerScreen.tsx';
import { visibleText } from '../../../test/support/renderer/markup.ts';

const key = 'hk-test-0123456789abcdef';

function viewProps(state: ApiServerState = serverState(), extra: Partial<ServerViewProps> = {}): ServerViewProps {
  const { requests, ...server } = state;
  return {
    server,
    requests,
    model: 'tiny-model',
    keyShown: false,
    confirmingRotate: false,
    busy: false,
    error: null,
    onConfigure: () => undefined,
    onToggleKey: () => undefined,
    onAskRotate: () => undefined,
    onCancelRotate: () => undefined,
    onRotate: () => undefined,
    ...extra,
  };
}


/** The markup of the element with `data-testid`, up to its closing tag (no nesting of the same tag inside); an input's tag alone. */
function testIdMarkup(html: string, testId: string): string {
  const start = html.indexOf(`data-testid="${testId}"`);
  expect(start, testId).toBeGreaterThanOrEqual(0);
  const open = html.lastIndexOf('<', start);
  const tag = /^<([a-z0-9]+)/.exec(html.slice(open))?.[1] ?? '';
  if (tag === 'input') return html.slice(open, html.indexOf('>', start) + 1);
  return html.slice(open, html.indexOf(`</${tag}>`, start) + tag.length + 3);
}

function setup(handlers: Parameters<typeof fakeTransport>[0] = {}) {
  const transport = fakeTransport(handlers);
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: () => undefined });
  return { transport, store, actions };
}

describe('the Server screen', () => {
  it('shows the state: switch, address, status, port, endpoints, and the key masked', () => {
    const html = renderToStaticMarkup(<ServerView {...viewProps()} />);
    expect(testIdMarkup(html, 'server-toggle')).toMatch(/role="switch" aria-checked="true" aria-labelledby="server-toggle-label"/);
    expect(html).toMatch(/id="server-toggle-label"[^>]*>Serve the API</);
    expect(visibleText(testIdMarkup(html, 'server-url'))).toBe('http://127.0.0.1:4724/v1');
    expect(visibleText(testIdMarkup(html, 'server-status'))).toBe('Listening');
    expect(testIdMarkup(html, 'server-port')).toMatch(/id="server-port"[^>]*value="4724"/);
    expect(html).toMatch(/<label for="server-port"/);
    for (const endpoint of ['GET /v1/models', 'POST /v1/chat/completions', 'POST /v1/messages']) expect(html).toContain(`>${endpoint}</code>`);
    // Hidden means hidden everywhere: in the key's own place and in the snippets on screen.
    expect(html).not.toContain(key);
    expect(visibleText(testIdMarkup(html, 'server-key'))).toBe('••••••••••••••••••••••••hidden');
    expect(html).not.toContain('The command line set');
    expect(testIdMarkup(html, 'server-lan')).not.toContain('checked=""');
    expect(html).toContain('Off: only programs on this computer (127.0.0.1) can connect.');
    expect(html).not.toContain('Anyone on your network');
    expect(html).toContain('Leave this empty unless a web app in your browser calls Hearth.');
  });

  it('off, in error, overridden, on the network, with origins: each says so', () => {
    const off = renderToStaticMarkup(<ServerView {...viewProps(serverState({ settings: { enabled: false, port: 4724, lan: false, corsOrigins: [] }, status: 'off', url: null }))} />);
    expect(testIdMarkup(off, 'server-toggle')).toContain('aria-checked="false"');
    expect(visibleText(testIdMarkup(off, 'server-status'))).toBe('Off: nothing listens');
    expect(off).not.toContain('data-testid="server-url"');
    expect(off).toContain('Not listening');
    expect(off).toContain('Turn the server on to use these.');
    // The snippets still show where it would listen.
    expect(visibleText(testIdMarkup(off, 'server-snippet-curl'))).toContain('curl http://127.0.0.1:4724/v1/chat/completions');

    const failed = renderToStaticMarkup(
      <ServerView
        {...viewProps(
          serverState({ status: 'error', url: null, error: { code: 'INVALID_INPUT', message: 'Port 4724 is already in use.', hint: 'Choose another port.' }, overridden: true }),
        )}
      />,
    );
    expect(visibleText(testIdMarkup(failed, 'server-status'))).toBe('Not listening: an error stopped it');
    expect(failed).toContain('Port 4724 is already in use.');
    expect(failed).toContain('Choose another port.');
    expect(failed).toContain('The command line set the port and key for this run.');

    const lan = renderToStaticMarkup(<ServerView {...viewProps(serverState({ settings: { enabled: true, port: 4724, lan: true, corsOrigins: ['http://localhost:5173'] } }))} />);
    expect(testIdMarkup(lan, 'server-lan')).toContain('checked=""');
    expect(lan).toContain('Anyone on your network who has the key can use the model. Prefer 127.0.0.1');
    expect(lan).toMatch(/<code[^>]*>http:\/\/localhost:5173<\/code><button type="button" aria-label="Remove http:\/\/localhost:5173"/);
  });

  it('the switch asks the host to turn the server on', async () => {
    const { transport, store, actions } = setup({ 'server.configure': (input) => ok(serverState({ settings: { ...serverState().settings, ...input } })) });
    const off = serverState({ settings: { enabled: false, port: 4724, lan: false, corsOrigins: [] }, status: 'off', url: null });
    const tree = ServerView(viewProps(off, { onConfigure: (patch) => void actions.configureServer(patch) }));
    fire(byTestId(tree, 'server-toggle'), 'onClick');
    await vi.waitFor(() => expect(store.getState().server?.settings.enabled).toBe(true));
    expect(transport.calls).toEqual([{ name: 'server.configure', input: { enabled: true } }]);

    // On, it turns it off; the network checkbox flips `lan`.
    const changes: unknown[] = [];
    const on = ServerView(viewProps(serverState(), { onConfigure: (patch) => changes.push(patch) }));
    fire(byTestId(on, 'server-toggle'), 'onClick');
    fire(byTestId(on, 'server-lan'), 'onChange');
    expect(changes).toEqual([{ enabled: false }, { lan: true }]);
  });

  it('the key is masked until Show, then shown in its place and in the snippets', () => {
    let keyShown = false;
    const props = () => viewProps(serverState(), { keyShown, onToggleKey: () => (keyShown = !keyShown) });
    const show = hostElements(ServerView(props())).find((e) => e.type === 'button' && e.props.children === 'Show');
    expect(show).toBeDefined();
    expect(show?.props['aria-controls']).toBe('server-key-value');
    fire(show!, 'onClick');
    expect(keyShown).toBe(true);
    const html = renderToStaticMarkup(<ServerView {...props()} />);
    expect(visibleText(testIdMarkup(html, 'server-key'))).toBe(key);
    expect(visibleText(testIdMarkup(html, 'server-snippet-python'))).toContain(`api_key="${key}"`);
    expect(hostElements(ServerView(props())).some((e) => e.type === 'button' && e.props.children === 'Hide')).toBe(true);
  });

  it('New key asks first; only the confirmation rotates it', async () => {
    const rotated = serverState({ key: 'hk-new-key' });
    const { transport, store, actions } = setup({ 'server.rotateKey': () => ok(rotated) });
    let confirming = false;
    const props = () =>
      viewProps(serverState(), {
        confirmingRotate: confirming,
        onAskRotate: () => (confirming = true),
        onRotate: () => void actions.rotateServerKey(),
      });
    expect(renderToStaticMarkup(<ServerView {...props()} />)).not.toContain('stop working');
    fire(byTestId(ServerView(props()), 'server-rotate-key'), 'onClick');
    expect(confirming).toBe(true);
    expect(transport.calls).toEqual([]);
    const html = renderToStaticMarkup(<ServerView {...props()} />);
    expect(html).toMatch(/<dialog aria-label="Make a new key\?"/);
    expect(html).toContain('Programs using the current key stop working until they are given the new one.');
    fire(byTestId(ServerView(props()), 'server-rotate-confirm'), 'onClick');
    await vi.waitFor(() => expect(store.getState().server?.key).toBe('hk-new-key'));
    expect(transport.calls).toEqual([{ name: 'server.rotateKey', input: {} }]);
  });

  it('snippets: the real address, key and model; Anthropic without /v1', () => {
    const url = 'http://127.0.0.1:4724/v1';
    expect(snippet('curl', url, key, 'tiny-model')).toBe(
      [
        'curl http://127.0.0.1:4724/v1/chat/completions \\',
        `  -H "Authorization: Bearer ${key}" \\`,
        '  -H "Content-Type: application/json" \\',
        `  -d '{"model":"tiny-model","messages":[{"role":"user","content":"Hello!"}]}'`,
      ].join('\n'),
    );
    expect(snippet('python', url, key, 'tiny-model')).toContain(`client = OpenAI(base_url="${url}", api_key="${key}")`);
    expect(snippet('python', url, key, 'tiny-model')).toContain('model="tiny-model"');
    expect(snippet('js', url, key, 'tiny-model')).toContain(`const client = new OpenAI({ baseURL: "${url}", apiKey: "${key}" });`);
    expect(snippet('anthropic', url, key, 'tiny-model')).toContain(`client = Anthropic(base_url="http://127.0.0.1:4724", api_key="${key}")`);
    // A quote in a model's file name cannot end the shell's string early.
    expect(snippet('curl', url, key, "it's")).toContain(`"model":"it'\\''s"`);
    expect(anthropicBaseUrl('http://192.168.1.5:9000/v1')).toBe('http://192.168.1.5:9000');
    expect(modelIdFromPath('/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf')).toBe('Qwen2.5-0.5B-Instruct-Q4_K_M');
    expect(modelIdFromPath('C:\\models\\tiny.GGUF')).toBe('tiny');
    expect(modelIdFromPath(null)).toBe('MODEL');

    const html = renderToStaticMarkup(<ServerView {...viewProps(serverState(), { keyShown: true })} />);
    for (const kind of ['curl', 'python', 'js', 'anthropic']) expect(visibleText(testIdMarkup(html, `server-snippet-${kind}`))).toBe(snippet(kind as 'curl', url, key, 'tiny-model'));
  });

  it('checks ports and origins as the host does', () => {
    expect(parsePort('4724')).toBe(4724);
    for (const bad of ['', '0', '65536', '80.5', 'http']) expect(parsePort(bad)).toBeNull();
    expect(parseOrigin(' HTTP://localhost:5173/ ')).toBe('http://localhost:5173');
    expect(parseOrigin('https://app.example.com')).toBe('https://app.example.com');
    for (const bad of ['localhost:5173', 'http://localhost:5173/path', 'ftp://host', 'http://', '*']) expect(parseOrigin(bad)).toBeNull();
  });

  it('is a route of its own, and loads its state when opened', async () => {
    expect(parseHash('#/server')).toEqual({ name: 'server' });
    expect(routeHash({ name: 'server' })).toBe('#/server');
    const { store, actions } = setup({ 'server.state': () => ok(serverState({ requests: [apiRequest(1)] })) });
    const html = renderToStaticMarkup(
      <HearthProvider store={store} actions={actions}>
        <ServerScreen />
      </HearthProvider>,
    );
    expect(html).toMatch(/^<div class="[^"]*" data-testid="server-screen"><div[^>]*><div[^>]*><h1[^>]*>Server<\/h1>/);
    expect(html).toContain('Loading…');
    await actions.loadServer();
    expect(store.getState().server?.url).toBe('http://127.0.0.1:4724/v1');
    expect(store.getState().serverRequests.map((r) => r.id)).toEqual([1]);
  });
});

describe('the request log', () => {
  it('a server.request event adds a row; the log keeps the newest 200', () => {
    const { transport, store, actions } = setup();
    bindEvents(transport, store, actions, (callback) => callback());
    store.getState().setServerState(serverState({ requests: [apiRequest(1)] }));
    const { requests: _ignored, ...info } = serverState({ key: 'hk-rotated' });
    transport.emit({ type: 'server.state', payload: info });
    expect(store.getState().server?.key).toBe('hk-rotated');
    // The event carries no log: the one held is kept.
    expect(store.getState().serverRequests).toHaveLength(1);

    transport.emit({ type: 'server.request', payload: apiRequest(2, { cachedTokens: 12, promptTokens: 40 }) });
    transport.emit({ type: 'server.request', payload: apiRequest(2, { cachedTokens: 12, promptTokens: 40 }) });
    const rows = store.getState().serverRequests;
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
    const html = renderToStaticMarkup(<RequestLog requests={rows} />);
    expect(html.match(/data-testid="server-request-row"/g)).toHaveLength(2);
    // Newest first.
    expect(html.indexOf('>12 (30%)</td>')).toBeLessThan(html.indexOf('>30 (75%)</td>'));
    expect(html).toMatch(/<tr data-testid="server-request-row"[^>]*><td[^>]*><time[^>]*>[^<]+<\/time><\/td><td[^>]*>OpenAI\/JS 7.60.0<\/td><td[^>]*>POST \/v1\/chat\/completions<\/td><td[^>]*>tiny<\/td><td[^>]*>200<\/td><td[^>]*>40<\/td><td[^>]*>12 \(30%\)<\/td><td[^>]*>12<\/td><td[^>]*>55.3<\/td><\/tr>/);

    for (let id = 3; id <= maxServerRequests + 5; id++) transport.emit({ type: 'server.request', payload: apiRequest(id) });
    expect(store.getState().serverRequests).toHaveLength(maxServerRequests);
    expect(store.getState().serverRequests[0]?.id).toBe(6);
    expect(renderToStaticMarkup(<RequestLog requests={[]} />)).toContain('No requests yet.');
  });

  it("a state fetched meanwhile keeps the rows pushed after the host's list", () => {
    const { store } = setup();
    store.getState().addServerRequest(apiRequest(3));
    store.getState().setServerState(serverState({ requests: [apiRequest(1), apiRequest(2)] }));
    expect(store.getState().serverRequests.map((r) => r.id)).toEqual([1, 2, 3]);
  });

  it('a cache miss explains the divergence, its texts as text only; an error shows', () => {
    const miss = {
      atToken: 1204,
      promptTokens: 1530,
      storedTokens: 1400,
      before: 'You are a helpful assistant.\nToday is',
      sent: ' <b>Monday</b> <img src=x onerror=alert(1)> **bold**',
      stored: ' Sunday\tnoon',
    };
    const html = renderToStaticMarkup(
      <RequestLog requests={[apiRequest(1, { cacheMiss: miss }), apiRequest(2, { status: 400, error: 'model "nope" is not loaded', cachedTokens: null, promptTokens: null })]} />,
    );
    const details = testIdMarkup(html, 'server-cache-miss');
    expect(details).toMatch(/^<details data-testid="server-cache-miss"[^>]*><summary[^>]*>cache miss<\/summary>/);
    expect(visibleText(details)).toContain('The prompt diverged from a cached conversation at token 1,204 of 1,530 (1,400 cached).');
    // Whitespace is drawn: · a space, → a tab, ↵ a line break.
    expect(visibleText(details)).toContain('…You·are·a·helpful·assistant.↵\nToday·is');
    expect(visibleText(testIdMarkup(details, 'cache-miss-sent'))).toBe('·<b>Monday</b>·<img·src=x·onerror=alert(1)>·**bold**');
    expect(visibleText(testIdMarkup(details, 'cache-miss-cached'))).toBe('·Sunday→noon');
    // Literal: escaped, never an element, never Markdown.
    expect(details).toContain('&lt;b&gt;Monday&lt;/b&gt;');
    expect(details).not.toMatch(/<b>|<img|<strong>/);
    expect(html).toContain('>model &quot;nope&quot; is not loaded</p>');
    expect(html).toMatch(/<td[^>]*>400<\/td><td[^>]*>—<\/td><td[^>]*>—<\/td>/);
    expect(cachedText({ cachedTokens: 0, promptTokens: 0 })).toBe('0');
  });
});

describe('API turns in the Cache view', () => {
  it('are labelled API, with no chat title or link, and show their cache miss', () => {
    const turns = [
      cacheTurn('m1', { tokensPrefilled: 30 }, 1000),
      {
        ...cacheTurn('m2', { cacheMiss: { atToken: 7, promptTokens: 20, storedTokens: 18, before: 'abc', sent: 'x', stored: 'y' } }, 2000),
        chatId: 'api-3f2a',
        source: 'api' as const,
      },
    ];
    const html = renderToStaticMarkup(<TurnsTable turns={turns} titleOf={(chatId) => (chatId === 'c1' ? 'Orchard' : 'Untitled chat')} />);
    const rows = html.split('<tr').slice(2);
    // Newest first: the API turn, then the chat's.
    expect(rows[0]).toMatch(/<span[^>]*>API<\/span>/);
    expect(rows[0]).toContain('api-3f2a');
    expect(rows[0]).not.toContain('Untitled chat');
    expect(html).not.toContain('href=');
    expect(visibleText(testIdMarkup(html, 'cache-miss'))).toContain('The prompt diverged from a cached conversation at token 7 of 20 (18 cached).');
    expect(rows.at(-1)).toContain('>Orchard</td>');
    expect(rows.at(-1)).not.toContain('>API<');
  });
});
