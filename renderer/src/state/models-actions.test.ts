import { describe, expect, it } from 'vitest';
import type { CallName, DownloadItem, Result } from '../contract.ts';
import type { Route } from '../lib/route.ts';
import { appState, chat } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport, ok, type FakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { bindEvents } from './events.ts';
import { download, fileFit, hubFile, hubRepo, library, localModel, recommended, repoFit } from './models.fixtures.ts';
import { selectActiveDownloadCount, selectNeedsOnboarding } from './selectors.ts';
import { createHearthStore } from './store.ts';

function setup(transport: FakeTransport = fakeTransport()) {
  const store = createHearthStore();
  const routes: Route[] = [];
  const actions = createActions(transport, store, {
    navigate: (route) => {
      routes.push(route);
      store.getState().setRoute(route);
    },
  });
  bindEvents(transport, store, actions, (cb) => cb());
  return { store, actions, transport, routes };
}

/** Resolves once the transport was asked `name` (an event's follow-up calls run on their own). */
async function called(transport: FakeTransport, name: CallName): Promise<void> {
  for (let i = 0; i < 50 && !transport.calls.some((c) => c.name === name); i++) await Promise.resolve();
  expect(transport.calls.map((c) => c.name)).toContain(name);
}

const failed = <T>(code: 'AUTH_REQUIRED' | 'NETWORK_ERROR', message: string): Result<T> => ({ ok: false, error: { code, message } });

describe('the download queue in the store', () => {
  it('mirrors the list, applies every event, drops removed ones, and counts the active ones', async () => {
    const t = setup(fakeTransport({ 'downloads.list': () => ok({ downloads: [download('a'), download('b', { status: 'paused' }), download('c', { status: 'done' })] }) }));
    await t.actions.loadDownloads();
    expect(Object.keys(t.store.getState().downloads)).toEqual(['a', 'b', 'c']);
    expect(selectActiveDownloadCount(t.store.getState())).toBe(1);
    t.transport.emit({ type: 'download.progress', payload: download('b', { status: 'downloading' }) });
    t.transport.emit({ type: 'download.progress', payload: download('d', { status: 'queued' }) });
    expect(selectActiveDownloadCount(t.store.getState())).toBe(3);
    t.transport.emit({ type: 'download.progress', payload: { ...download('c', { status: 'done' }), removed: true } });
    expect(t.store.getState().downloads.c).toBeUndefined();
  });

  it("a call's answer never overwrites a newer event", async () => {
    let answer: (value: Result<DownloadItem>) => void = () => undefined;
    const t = setup(fakeTransport({ 'downloads.pause': () => new Promise((resolve) => (answer = resolve)) }));
    t.store.getState().applyDownload(download('a'));
    const paused = t.actions.pauseDownload('a');
    t.transport.emit({ type: 'download.progress', payload: download('a', { status: 'paused' }) });
    t.transport.emit({ type: 'download.progress', payload: download('a', { status: 'downloading', downloadedBytes: 2e9 }) });
    answer(ok(download('a', { status: 'paused' })));
    await paused;
    expect(t.store.getState().downloads.a?.downloadedBytes).toBe(2e9);
  });
});

describe('Download and chat', () => {
  it('downloads, and when done loads the model and opens a new chat, even from another screen', async () => {
    const t = setup(
      fakeTransport({
        'downloads.start': () => ok(download('d1', { status: 'queued', downloadedBytes: 0, path: '/d/models/small.gguf' })),
        'models.list': () => ok(library([localModel('small.gguf')])),
        'models.recommended': () => ok({ models: [] }),
        'models.load': (input) => ok({ path: input.path } as never),
        'chats.create': () => ok(chat('n1')),
      }),
    );
    await t.actions.downloadAndChat('org/small-GGUF', 'small-Q4_K_M.gguf');
    expect(t.transport.calls.find((c) => c.name === 'downloads.start')?.input).toEqual({ repo: 'org/small-GGUF', file: 'small-Q4_K_M.gguf' });
    expect(t.store.getState().chatAfterDownload).toBe('d1');
    t.store.getState().setRoute({ name: 'settings' });
    t.transport.emit({ type: 'download.progress', payload: download('d1', { status: 'downloading', path: '/d/models/small.gguf' }) });
    expect(t.transport.calls.some((c) => c.name === 'models.load')).toBe(false);
    t.transport.emit({ type: 'download.progress', payload: download('d1', { status: 'done', path: '/d/models/small.gguf' }) });
    await called(t.transport, 'chats.create');
    expect(t.transport.calls.find((c) => c.name === 'models.load')?.input).toEqual({ path: '/d/models/small.gguf' });
    expect(t.routes.at(-1)).toEqual({ name: 'chat', chatId: 'n1' });
    expect(t.store.getState().chatAfterDownload).toBeNull();
  });

  it('another download ending loads nothing, and a failed load opens no chat', async () => {
    const t = setup(
      fakeTransport({
        'models.list': () => ok(library()),
        'models.recommended': () => ok({ models: [] }),
        'models.load': () => ({ ok: false, error: { code: 'OUT_OF_MEMORY', message: 'Too large.' } }),
      }),
    );
    t.store.getState().setChatAfterDownload('mine');
    // Both end: the other's follow-up (list, then load if it were wrongly chosen) runs first, so a
    // load of it would come before this one's.
    t.transport.emit({ type: 'download.progress', payload: download('other', { status: 'done', path: '/d/models/other.gguf' }) });
    t.transport.emit({ type: 'download.progress', payload: download('mine', { status: 'done', path: '/d/models/mine.gguf' }) });
    await called(t.transport, 'models.load');
    expect(t.transport.calls.filter((c) => c.name === 'models.load').map((c) => c.input)).toEqual([{ path: '/d/models/mine.gguf' }]);
    await Promise.resolve();
    expect(t.transport.calls.some((c) => c.name === 'chats.create')).toBe(false);
    expect(t.store.getState().loadError?.code).toBe('OUT_OF_MEMORY');
  });
});

describe('Hugging Face in the store', () => {
  it('only the latest search reaches the store', async () => {
    const answers: ((value: Result<{ repos: never[] }>) => void)[] = [];
    const t = setup(fakeTransport({ 'hub.search': () => new Promise((resolve) => answers.push(resolve)) }));
    const first = t.actions.searchHub('ll', 'downloads');
    const second = t.actions.searchHub('llama', 'likes');
    answers[1]?.(ok({ repos: [] }));
    await second;
    answers[0]?.(failed('NETWORK_ERROR', 'late'));
    await first;
    expect(t.store.getState().hubSearch).toEqual({ value: { query: 'llama', sort: 'likes', repos: [] }, error: null, pending: false });
  });

  it('a repository then its verdicts; a gated one keeps AUTH_REQUIRED until a token is stored, then reads again', async () => {
    const repo = hubRepo('meta/gated-GGUF', [hubFile('g-Q4_K_M', 'Q4_K_M', 4e9)], { gated: 'manual' });
    let token = false;
    const t = setup(
      fakeTransport({
        'hub.repo': () => (token ? ok(repo) : failed('AUTH_REQUIRED', 'This repository is gated.')),
        'hub.fit': () => ok(repoFit({ 'g-Q4_K_M.gguf': fileFit('gpu') })),
        'hub.setToken': (input) => {
          token = input.token !== null;
          return ok({ hasToken: token, endpoint: 'https://huggingface.co' });
        },
      }),
    );
    t.store.getState().setRoute({ name: 'models', tab: 'repo', repo: repo.id });
    await t.actions.openHubRepo(repo.id);
    expect(t.store.getState().hubRepos[repo.id]?.error?.code).toBe('AUTH_REQUIRED');
    expect(t.transport.calls.some((c) => c.name === 'hub.fit')).toBe(false);

    await t.actions.setHubToken('hf_secret_token');
    await called(t.transport, 'hub.fit');
    await t.actions.openHubRepo(repo.id);
    expect(t.store.getState().hubRepos[repo.id]?.value?.id).toBe(repo.id);
    expect(t.store.getState().hubFits[repo.id]?.value?.files['g-Q4_K_M.gguf']).toEqual({ fit: fileFit('gpu') });
    // The page keeps whether a token is stored, never the token.
    expect(JSON.stringify(t.store.getState().hubAuth)).not.toContain('hf_secret_token');
    expect(t.store.getState().hubAuth?.hasToken).toBe(true);
  });

  it('a repository held is not asked for again; a call running is joined', async () => {
    const t = setup(fakeTransport({ 'hub.repo': () => ok(hubRepo('a/b', [])), 'hub.fit': () => ok(repoFit({})) }));
    await Promise.all([t.actions.openHubRepo('a/b'), t.actions.openHubRepo('a/b')]);
    await t.actions.openHubRepo('a/b');
    expect(t.transport.calls.filter((c) => c.name === 'hub.repo')).toHaveLength(1);
    await t.actions.openHubRepo('a/b', { fresh: true });
    expect(t.transport.calls.filter((c) => c.name === 'hub.repo')).toHaveLength(2);
  });

  it('recommendations read each repository once', async () => {
    const t = setup(
      fakeTransport({
        'models.recommended': () => ok({ models: [recommended('a', 'org/x', 1), recommended('b', 'org/x', 2, 'Q8_0'), recommended('c', 'org/y', 3)] }),
        'hub.repo': (input) => ok(hubRepo(input.repo, [])),
        'hub.fit': () => ok(repoFit({})),
      }),
    );
    await t.actions.loadRecommendations();
    expect(t.transport.calls.filter((c) => c.name === 'hub.repo').map((c) => c.input)).toEqual([{ repo: 'org/x' }, { repo: 'org/y' }]);
  });
});

describe('first run', () => {
  it('needs onboarding only when nothing is loaded and the library, once listed, is empty', () => {
    const { store } = setup();
    const s = () => store.getState();
    s().setAppState(appState({ model: { status: 'idle' } }));
    expect(selectNeedsOnboarding(s())).toBe(false);
    s().setLibrary(library());
    expect(selectNeedsOnboarding(s())).toBe(true);
    s().setModel({ status: 'loading', progress: 0.1 });
    expect(selectNeedsOnboarding(s())).toBe(false);
    s().setModel({ status: 'idle' });
    s().setLibrary(library([localModel('x.gguf', { source: 'ollama' })]));
    expect(selectNeedsOnboarding(s())).toBe(false);
  });

  it('deleting a model lists the library again and forgets its plan', async () => {
    const t = setup(
      fakeTransport({
        'models.delete': () => ok({ modelBytes: 1, kvBytes: 0 }),
        'models.list': () => ok(library()),
        'models.recommended': () => ok({ models: [] }),
      }),
    );
    t.store.getState().setModelPlan('path:/d/models/x.gguf', { plan: null, error: null, pending: false });
    const result = await t.actions.deleteModel('/d/models/x.gguf', false);
    expect(result.ok).toBe(true);
    expect(t.store.getState().library?.models).toEqual([]);
    expect(t.store.getState().modelPlans['path:/d/models/x.gguf']).toBeUndefined();
  });
});
