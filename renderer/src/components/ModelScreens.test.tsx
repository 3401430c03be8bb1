import type { ReactNode } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import type { DownloadItem, FileFit } from '../contract.ts';
import { recommendationRows } from '../lib/models.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { download, fileFit, hubFile, hubRepo, library, localModel, recommended, repoFit } from '../state/models.fixtures.ts';
import { byTestId, fire, hostElements } from '../../../test/support/renderer/element-tree.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { DownloadRow, FitContexts, VerdictBadge, type DownloadRowProps } from './ModelBits.tsx';
import { DeleteModelForm, LibraryGroups, LocalModelView, type DeleteModelFormProps, type LocalModelViewProps } from './ModelLibrary.tsx';
import { OnboardingView, type OnboardingViewProps } from './Onboarding.tsx';
import { SearchResults } from './HubDiscover.tsx';

/** The text a reader sees: tags dropped, entities read. */
function text(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&quot;/g, '"')
    .replace(/&#x27;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}

const html = (node: ReactNode) => renderToStaticMarkup(node);
const buttons = (node: ReactNode) => hostElements(node).filter((e) => e.type === 'button');
const buttonLabels = (node: ReactNode) => buttons(node).map((b) => String(b.props['aria-label'] ?? b.props.children));

describe('verdicts', () => {
  it('each verdict has its badge text', () => {
    const texts = (['gpu', 'partial', 'ram', 'too-large'] as FileFit['verdict'][]).map((v) => text(html(<VerdictBadge verdict={v} />)));
    expect(texts).toEqual(['Runs on GPU', 'Partly on GPU', 'Runs in RAM', 'Too large']);
  });

  it('the longest context per KV type, the chosen one marked default, a refused one says why', () => {
    const out = text(html(<FitContexts fit={fileFit('gpu', { chosen: 'q8_0' })} />));
    expect(out).toBe('F16 32,768 tokens Q8_0 61,440 tokens (default) Q4_0 not here: the head size 80 is not supported');
  });
});

describe('the library', () => {
  const viewProps = (extra: Partial<LocalModelViewProps> = {}): LocalModelViewProps => ({
    model: localModel('llama-8b-Q4_K_M.gguf', { displayName: 'Llama 3.1 8B Instruct' }),
    loaded: false,
    loadPending: false,
    planOpen: false,
    panelId: 'p',
    revealError: null,
    onTogglePlan: () => undefined,
    onLoad: () => undefined,
    onReveal: () => undefined,
    onDelete: () => undefined,
    ...extra,
  });

  it('a row shows the name, size, quantization, architecture, parameters, trained context and path', () => {
    const out = text(html(<LocalModelView {...viewProps()} />));
    expect(out).toContain('Llama 3.1 8B Instruct');
    expect(out).toContain('4.92 GB · Q4_K_M · llama · 8.0B · 131,072 context');
    expect(out).toContain('llama-8b-Q4_K_M.gguf · /d/models/llama-8b-Q4_K_M.gguf');
  });

  it("only Hearth's own models can be deleted; every one can be revealed and loaded", () => {
    expect(buttonLabels(LocalModelView(viewProps()))).toEqual([
      'Memory plan for llama-8b-Q4_K_M.gguf',
      'Reveal llama-8b-Q4_K_M.gguf in its folder',
      'Delete llama-8b-Q4_K_M.gguf',
      'Load llama-8b-Q4_K_M.gguf',
    ]);
    const ollama = viewProps({ model: localModel('sha256-abc', { source: 'ollama', displayName: 'llama3.1:8b' }) });
    expect(buttonLabels(LocalModelView(ollama))).not.toContain('Delete sha256-abc');
    expect(buttonLabels(LocalModelView(ollama))).toContain('Load sha256-abc');
  });

  it('where folders cannot be opened, Reveal shows the path to copy instead', () => {
    const out = html(<LocalModelView {...viewProps({ revealError: { code: 'NOT_SUPPORTED', message: 'Not here.' } })} />);
    expect(text(out)).toContain('This window cannot open folders. The file is at /d/models/llama-8b-Q4_K_M.gguf Copy path');
    const other = html(<LocalModelView {...viewProps({ revealError: { code: 'NOT_FOUND', message: 'The file is gone.' } })} />);
    expect(other).not.toContain('reveal-path');
    expect(text(other)).toContain('The file is gone.');
  });

  it('groups by source with their names and counts', () => {
    const lib = library([localModel('a.gguf'), localModel('b', { source: 'ollama' }), localModel('c.gguf', { source: 'lmstudio' }), localModel('d.gguf')]);
    const out = html(<Providers>{<LibraryGroups library={lib} />}</Providers>);
    expect([...out.matchAll(/aria-label="([^"]+) models"/g)].map((m) => m[1])).toEqual(['Hearth', 'LM Studio', 'Ollama']);
    expect(text(out)).toContain('Hearth (2)');
  });
});

describe('the delete dialog', () => {
  const formProps = (extra: Partial<DeleteModelFormProps> = {}): DeleteModelFormProps => ({
    model: localModel('m.gguf'),
    usage: { conversations: 3, bytes: 48 * 1024 ** 2 },
    usageError: null,
    deleteKv: false,
    busy: false,
    error: null,
    onDeleteKvChange: () => undefined,
    onCancel: () => undefined,
    onConfirm: () => undefined,
    ...extra,
  });

  it('offers its stored KV with the number of conversations and the bytes, unticked', () => {
    const out = html(<DeleteModelForm {...formProps()} />);
    expect(text(out)).toContain('Also delete its stored KV (3 conversations, 48 MB)');
    expect(out).toMatch(/<input id="delete-model-kv" type="checkbox" data-testid="delete-kv"/);
    expect(out).not.toMatch(/data-testid="delete-kv"[^>]*checked/);
  });

  it('no checkbox while the KV is measured, nor when there is none', () => {
    expect(text(html(<DeleteModelForm {...formProps({ usage: null })} />))).toContain('Checking its stored KV…');
    expect(html(<DeleteModelForm {...formProps({ usage: null })} />)).not.toContain('delete-kv');
    expect(text(html(<DeleteModelForm {...formProps({ usage: { conversations: 0, bytes: 0 } })} />))).toContain('No conversation has stored KV');
  });

  it('ticking the box and confirming deletes the model and its KV (models.delete with deleteKv)', async () => {
    const transport = fakeTransport({
      'models.delete': () => ({ ok: true, value: { modelBytes: 4e9, kvBytes: 5e7 } }),
      'models.list': () => ({ ok: true, value: library() }),
      'models.recommended': () => ({ ok: true, value: { models: [] } }),
    });
    const store = createHearthStore();
    const actions = createActions(transport, store, { navigate: () => undefined });
    // The dialog's state, as DeleteModelDialog keeps it: the box's value, then Delete with it.
    let deleteKv = false;
    const onDeleteKvChange = vi.fn((value: boolean) => void (deleteKv = value));
    fire(byTestId(DeleteModelForm(formProps({ onDeleteKvChange })), 'delete-kv'), 'onChange', { target: { checked: true } });
    expect(onDeleteKvChange).toHaveBeenCalledWith(true);
    let confirmed: Promise<unknown> | undefined;
    fire(byTestId(DeleteModelForm(formProps({ deleteKv, onConfirm: () => void (confirmed = actions.deleteModel('/d/models/m.gguf', deleteKv)) })), 'delete-model-confirm'), 'onClick');
    await confirmed;
    expect(transport.calls.find((c) => c.name === 'models.delete')?.input).toEqual({ path: '/d/models/m.gguf', deleteKv: true });
    // The library is listed again after it.
    expect(transport.calls.map((c) => c.name)).toContain('models.list');
  });
});

describe('download rows', () => {
  const rowProps = (item: DownloadItem, extra: Partial<DownloadRowProps> = {}): DownloadRowProps => ({
    item,
    loaded: false,
    loadPending: false,
    onPause: () => undefined,
    onResume: () => undefined,
    onCancel: () => undefined,
    onLoad: () => undefined,
    onLoadAndChat: () => undefined,
    ...extra,
  });
  const controls = (item: DownloadItem, extra: Partial<DownloadRowProps> = {}) => buttons(DownloadRow(rowProps(item, extra))).map((b) => b.props.children);
  const line = (item: DownloadItem) => text(html(<DownloadRow {...rowProps(item)} />));

  it('downloading: bytes, percent, speed and time left; Pause and Cancel', () => {
    expect(controls(download('d'))).toEqual(['Pause', 'Cancel']);
    expect(line(download('d'))).toContain('Downloading 1.00 GB of 4.00 GB 25% 25.0 MB/s 2 min left');
  });

  it('queued, verifying, paused, failed, done and cancelled each offer what can be done then', () => {
    expect(controls(download('d', { status: 'queued', downloadedBytes: 0, bytesPerSecond: 0, etaSeconds: null }))).toEqual(['Pause', 'Cancel']);
    expect(controls(download('d', { status: 'verifying' }))).toEqual(['Pause', 'Cancel']);
    expect(controls(download('d', { status: 'paused' }))).toEqual(['Resume', 'Cancel']);
    expect(controls(download('d', { status: 'error', error: { code: 'NETWORK_ERROR', message: 'Lost.' } }))).toEqual(['Resume', 'Cancel']);
    expect(controls(download('d', { status: 'done' }))).toEqual(['Load', 'Load and chat']);
    expect(controls(download('d', { status: 'done' }), { loaded: true })).toEqual([]);
    expect(controls(download('d', { status: 'cancelled' }))).toEqual([]);
    // Before the total is known: what arrived, and no percentage.
    expect(line(download('d', { status: 'queued', downloadedBytes: 0, totalBytes: 0 }))).toMatch(/Queued 0 B$/);
  });

  it('a full disk pauses it with "Free space, then Resume"', () => {
    const out = line(download('d', { status: 'paused', error: { code: 'DISK_FULL', message: 'The disk is full.' } }));
    expect(out).toContain('Paused');
    expect(out).toContain('The disk is full. Free space, then Resume.');
  });

  it('the buttons call their handlers', () => {
    const onPause = vi.fn();
    const onLoadAndChat = vi.fn();
    fire(buttons(DownloadRow(rowProps(download('d'), { onPause })))[0]!, 'onClick');
    fire(buttons(DownloadRow(rowProps(download('d', { status: 'done' }), { onLoadAndChat })))[1]!, 'onClick');
    expect(onPause).toHaveBeenCalledOnce();
    expect(onLoadAndChat).toHaveBeenCalledOnce();
  });
});

describe('onboarding', () => {
  const small = recommended('small', 'org/small-GGUF', 0.4e9);
  const large = recommended('large', 'org/large-GGUF', 5e9);
  const repos = {
    'org/small-GGUF': { value: hubRepo('org/small-GGUF', [hubFile('small-Q4_K_M', 'Q4_K_M', 0.4e9)]), error: null, pending: false },
    'org/large-GGUF': { value: hubRepo('org/large-GGUF', [hubFile('large-Q4_K_M', 'Q4_K_M', 5e9)]), error: null, pending: false },
  };
  const viewProps = (rows: OnboardingViewProps['rows'], extra: Partial<OnboardingViewProps> = {}): OnboardingViewProps => ({
    rows,
    listError: null,
    downloads: {},
    chatAfter: null,
    busy: false,
    error: null,
    onStart: () => undefined,
    onRetry: () => undefined,
    ...extra,
  });

  it('marks the largest model that runs on the GPU, with each verdict', () => {
    const fits = {
      'org/small-GGUF': { value: repoFit({ 'small-Q4_K_M.gguf': fileFit('gpu') }), error: null, pending: false },
      'org/large-GGUF': { value: repoFit({ 'large-Q4_K_M.gguf': fileFit('partial') }), error: null, pending: false },
    };
    const out = html(<OnboardingView {...viewProps(recommendationRows([small, large], repos, fits))} />);
    expect(out).toContain('aria-label="Model small, recommended for this machine"');
    expect(out).not.toContain('aria-label="Model large, recommended');
    expect(text(out)).toContain('Model small Recommended for this machine Runs on GPU');
    expect(text(out)).toContain('Model large Partly on GPU');
  });

  it('on a machine where only RAM works, the largest that stays quick from RAM (not the 5 GB one that also fits); Download and chat starts it', () => {
    const fits = {
      'org/small-GGUF': { value: repoFit({ 'small-Q4_K_M.gguf': fileFit('ram') }), error: null, pending: false },
      'org/large-GGUF': { value: repoFit({ 'large-Q4_K_M.gguf': fileFit('ram') }), error: null, pending: false },
    };
    const rows = recommendationRows([small, large], repos, fits);
    const out = html(<OnboardingView {...viewProps(rows)} />);
    expect(out).toContain('aria-label="Model small, recommended for this machine"');
    expect(out).not.toContain('aria-label="Model large, recommended');
    const onStart = vi.fn();
    const start = buttons(OnboardingView(viewProps(rows, { onStart }))).find((b) => b.props['aria-label'] === 'Download Model small and chat');
    fire(start!, 'onClick');
    expect(onStart).toHaveBeenCalledWith(rows[0], null);
  });

  it('a running download shows its progress and that a chat opens after it', () => {
    const rows = recommendationRows([small], repos, {});
    const item = download('d1', { repo: 'org/small-GGUF', uri: 'hf:org/small-GGUF/small-Q4_K_M.gguf', totalBytes: 0.4e9, downloadedBytes: 0.1e9, etaSeconds: 30 });
    const out = html(<OnboardingView {...viewProps(rows, { downloads: { d1: item }, chatAfter: 'd1' })} />);
    expect(text(out)).toContain('Downloading 100 MB of 400 MB 30 s left A new chat opens when it is done.');
    expect(out).not.toContain('Download Model small and chat');
  });

  it('once downloaded, the row says the model is loading, or the speed measurement of its first load', () => {
    const rows = recommendationRows([small], repos, {});
    const item = download('d1', { repo: 'org/small-GGUF', uri: 'hf:org/small-GGUF/small-Q4_K_M.gguf', status: 'done', totalBytes: 0.4e9, downloadedBytes: 0.4e9 });
    const loading = text(html(<OnboardingView {...viewProps(rows, { downloads: { d1: item }, busy: true })} />));
    expect(loading).toContain('Loading the model…');
    const measuring = text(html(<OnboardingView {...viewProps(rows, { downloads: { d1: item }, busy: true, measuring: { done: 4, total: 9 } })} />));
    expect(measuring).toContain('Measuring speed on this computer (4 of 9)…');
    expect(measuring).not.toContain('Loading the model…');
  });

  it('network failures offer a retry instead of a blank panel', () => {
    const failed = recommendationRows([small], { 'org/small-GGUF': { value: null, error: { code: 'NETWORK_ERROR', message: 'Hugging Face could not be reached.' }, pending: false } }, {});
    const onRetry = vi.fn();
    const tree = OnboardingView(viewProps(failed, { onRetry }));
    expect(text(html(tree))).toContain('Hugging Face could not be reached.');
    fire(buttons(tree).find((b) => b.props.children === 'Try again')!, 'onClick');
    expect(onRetry).toHaveBeenCalledOnce();
    const listDown = html(<OnboardingView {...viewProps(null, { listError: { code: 'ENGINE_UNAVAILABLE', message: 'Hearth is restarting.' } })} />);
    expect(text(listDown)).toContain('The recommendations could not be read. Hearth is restarting. Try again');
  });
});

describe('search results', () => {
  it('downloads, likes, last update, licence and access badges; each opens its repository page', () => {
    const now = Date.UTC(2025, 5, 10);
    const repos = [
      { ...hubRepo('org/a-GGUF', []), downloads: 1_234_567, likes: 3_400, lastModified: now - 3 * 86_400_000 },
      { ...hubRepo('meta/gated-GGUF', []), gated: 'manual' as const, license: null, downloads: 5, likes: 0, lastModified: null },
    ];
    const out = html(<SearchResults search={{ value: { query: 'a', sort: 'downloads', repos }, error: null, pending: false }} onRetry={() => undefined} now={now} />);
    expect(out).toContain('href="#/models/repo/org/a-GGUF"');
    expect(text(out)).toContain('org/a-GGUF 1.2M downloads 3.4K likes updated 3 days ago apache-2.0');
    expect(text(out)).toContain('meta/gated-GGUF Gated 5 downloads 0 likes updated unknown no licence given');
    expect(text(html(<SearchResults search={{ value: { query: 'zzz', sort: 'likes', repos: [] }, error: null, pending: false }} onRetry={() => undefined} />))).toBe('Results No GGUF repositories match “zzz”.');
  });
});

/** The store and actions a component with hooks needs to render statically. */
function Providers(props: { children: ReactNode }) {
  const store = createHearthStore();
  const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
  return (
    <HearthProvider store={store} actions={actions}>
      {props.children}
    </HearthProvider>
  );
}
