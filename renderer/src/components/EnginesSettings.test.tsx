import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import type { RemoteEngine } from '../contract.ts';
import { byTestId, fire, hostElements } from '../../../test/support/renderer/element-tree.ts';
import { remoteEngine } from '../../../test/support/renderer/fixtures.ts';
import { visibleText } from '../../../test/support/renderer/markup.ts';
import {
  addInput,
  EngineFormView,
  engineFormFrom,
  engineFormProblems,
  EngineList,
  removedText,
  RemoveEngineView,
  TestResult,
  testInput,
  updateInput,
  type EngineForm,
  type EngineFormViewProps,
  type EngineListProps,
} from './EnginesSettings.tsx';


const gpu = remoteEngine('e1');
const lab = remoteEngine('e2', {
  name: 'Lab',
  kind: 'sglang',
  baseUrl: 'https://lab.example:30000',
  hasApiKey: true,
  status: { state: 'error', checkedAt: 3, models: [], metrics: false, error: { code: 'AUTH_REQUIRED', message: 'The server refused the API key.', hint: 'Check the key in Edit.' } },
});
const fresh = remoteEngine('e3', { name: 'New', kind: 'llama-server', status: { state: 'unknown', checkedAt: null, models: [], metrics: false } });

function listProps(extra: Partial<EngineListProps> = {}): EngineListProps {
  return { engines: [gpu, lab, fresh], checking: new Set(), errors: {}, onCheck: () => undefined, onEdit: () => undefined, onRemove: () => undefined, ...extra };
}

/** The markup of each `<li>` row, by its aria-label. */
function rows(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of html.matchAll(/<li aria-label="([^"]+)" data-testid="engine-row"[^>]*>([\s\S]*?)<\/li>/g)) out[match[1] ?? ''] = match[2] ?? '';
  return out;
}

describe('the Engines list', () => {
  it('shows each engine: name, kind, address, and its status as online, error (message and hint) or not checked', () => {
    const html = renderToStaticMarkup(<EngineList {...listProps()} />);
    expect(html).toContain('<ul aria-label="Remote engines"');
    const r = rows(html);
    expect(Object.keys(r)).toEqual(['GPU box', 'Lab', 'New']);
    expect(visibleText(r['GPU box'] ?? '')).toContain('GPU boxvLLMhttp://gpu-box:8000');
    expect(r['GPU box']).toMatch(/data-testid="engine-status" data-state="online"[^>]*><p[^>]*>Online · 2 models<\/p>/);
    expect(visibleText(r['GPU box'] ?? '')).toContain('llama-3-70b, qwen-7b');
    expect(r.Lab).toContain('data-state="error"');
    expect(visibleText(r.Lab ?? '')).toContain('The server refused the API key.Check the key in Edit.');
    expect(visibleText(r.Lab ?? '')).toContain('key stored');
    expect(visibleText(r.New ?? '')).toContain('Not checked yet');
    for (const name of ['GPU box', 'Lab', 'New']) {
      for (const action of [`Check again: ${name}`, `Edit ${name}`, `Remove ${name}`]) expect(r[name]).toContain(`aria-label="${action}"`);
      expect(r[name]).toContain(`aria-label="Cache view: ${name}"`);
    }
    expect(r['GPU box']).toContain('href="#/cache/engine/e1"');
  });

  it('says when /metrics did not answer, and that nothing is listed yet', () => {
    const html = renderToStaticMarkup(<EngineList {...listProps({ engines: [remoteEngine('e1', { status: { ...gpu.status, metrics: false } })] })} />);
    expect(visibleText(html)).toContain('Online · 2 models · its /metrics did not answer, so the Cache view has no figures for it');
    expect(renderToStaticMarkup(<EngineList {...listProps({ engines: [] })} />)).toContain('No remote engines yet.');
  });

  it("the row's buttons call back with their engine; a check under way says so and cannot start twice", () => {
    const onCheck = vi.fn<(e: RemoteEngine) => void>();
    const onEdit = vi.fn<(e: RemoteEngine) => void>();
    const onRemove = vi.fn<(e: RemoteEngine) => void>();
    const tree = EngineList(listProps({ onCheck, onEdit, onRemove, checking: new Set(['e2']), errors: { e3: { code: 'NOT_FOUND', message: 'No such engine.' } } }));
    const buttons = hostElements(tree).filter((e) => e.type === 'button');
    const named = (label: string) => buttons.find((b) => b.props['aria-label'] === label) ?? expect.unreachable(label);
    fire(named('Check again: GPU box'), 'onClick');
    fire(named('Edit Lab'), 'onClick');
    fire(named('Remove New'), 'onClick');
    expect(onCheck).toHaveBeenCalledWith(gpu);
    expect(onEdit).toHaveBeenCalledWith(lab);
    expect(onRemove).toHaveBeenCalledWith(fresh);
    expect(named('Check again: Lab').props.disabled).toBe(true);
    const html = renderToStaticMarkup(tree);
    expect(visibleText(rows(html).Lab ?? '')).toContain('Checking…');
    expect(visibleText(rows(html).New ?? '')).toContain('The check could not run.No such engine.');
  });

  it('after a removal, the status says its chats keep their history', () => {
    expect(removedText('GPU box', 0)).toBe('Removed GPU box.');
    expect(removedText('GPU box', 1)).toBe('Removed GPU box. 1 chat ran on it: it keeps its history and will ask to be moved.');
    expect(removedText('GPU box', 3)).toBe('Removed GPU box. 3 chats ran on it: they keep their history and will ask to be moved.');
    const html = renderToStaticMarkup(<RemoveEngineView name="GPU box" error={null} removing={false} onCancel={() => undefined} onRemove={() => undefined} />);
    expect(visibleText(html)).toContain('Its chats keep their history and will ask to be moved');
  });
});

function formProps(extra: Partial<EngineFormViewProps> = {}): EngineFormViewProps {
  return {
    form: engineFormFrom(null),
    problems: {},
    editing: null,
    test: null,
    error: null,
    saving: false,
    onChange: () => undefined,
    onTest: () => undefined,
    onSubmit: () => undefined,
    onCancel: () => undefined,
    ...extra,
  };
}

const form = (extra: Partial<EngineForm> = {}): EngineForm => ({ name: 'GPU box', baseUrl: 'http://gpu-box:8000', kind: 'vllm', apiKey: '', removeKey: false, ...extra });

describe('the Add/Edit engine dialog', () => {
  it('adding: labelled fields, the address placeholder, a password field for the key, every kind by its name', () => {
    const html = renderToStaticMarkup(<EngineFormView {...formProps()} />);
    for (const [id, label] of [
      ['engine-name', 'Name'],
      ['engine-url', 'Base URL'],
      ['engine-kind', 'Kind'],
      ['engine-key', 'API key'],
    ]) {
      expect(html).toMatch(new RegExp(`<label for="${id}"[^>]*>${label}</label>`));
    }
    expect(html).toMatch(/<input id="engine-url" type="url"[^>]*placeholder="http:\/\/gpu-box:8000"/);
    expect(html).toMatch(/<input id="engine-key" type="password"/);
    expect([...html.matchAll(/<option value="([^"]+)"[^>]*>([^<]+)<\/option>/g)].map((m) => [m[1], m[2]])).toEqual([
      ['llama-server', 'llama-server'],
      ['vllm', 'vLLM'],
      ['sglang', 'SGLang'],
      ['openai-compatible', 'OpenAI-compatible'],
    ]);
    expect(html).not.toContain('Remove the stored key');
    expect(visibleText(html)).toContain('Leave empty if the server needs none.');
  });

  it('editing an engine with a key: empty keeps it, and "Remove the stored key" clears it', () => {
    const onChange = vi.fn<(patch: Partial<EngineForm>) => void>();
    const props = formProps({ editing: lab, form: engineFormFrom(lab), onChange });
    const html = renderToStaticMarkup(<EngineFormView {...props} />);
    expect(html).toMatch(/<input id="engine-name"[^>]*value="Lab"/);
    expect(html).toMatch(/<input id="engine-url"[^>]*value="https:\/\/lab.example:30000"/);
    expect(html).toMatch(/<option value="sglang" selected="">SGLang<\/option>/);
    expect(html).toContain('Leave empty to keep the stored key.');
    const checkbox = hostElements(EngineFormView(props)).find((e) => e.type === 'input' && e.props.type === 'checkbox') ?? expect.unreachable('checkbox');
    fire(checkbox, 'onChange', { target: { checked: true } });
    expect(onChange).toHaveBeenCalledWith({ removeKey: true });
    const removing = renderToStaticMarkup(<EngineFormView {...props} form={{ ...engineFormFrom(lab), apiKey: 'typed', removeKey: true }} />);
    expect(removing).toMatch(/<input id="engine-key" type="password"[^>]*disabled=""[^>]*value=""\/>/);
  });

  it('shows each problem beside its field, tied to it, and the host refusal with its hint', () => {
    const problems = engineFormProblems(form({ name: ' ', baseUrl: 'gpu-box:8000', apiKey: 'has space' }));
    expect(Object.keys(problems)).toEqual(['name', 'baseUrl', 'apiKey']);
    const html = renderToStaticMarkup(
      <EngineFormView {...formProps({ problems, error: { code: 'INVALID_INPUT', message: 'An engine has this name already.', hint: 'Choose another name.' } })} />,
    );
    expect(html).toMatch(/<input id="engine-name"[^>]*aria-invalid="true" aria-describedby="engine-name-problem"/);
    expect(html).toContain(`<p id="engine-name-problem" class="mt-0.5 text-xs text-red-700 dark:text-red-300">Give the engine a name.</p>`);
    expect(html).toMatch(/<input id="engine-url"[^>]*aria-invalid="true" aria-describedby="engine-url-problem engine-url-help"/);
    expect(html).toMatch(/<input id="engine-key"[^>]*aria-invalid="true"/);
    expect(visibleText(html)).toContain('An API key is printable ASCII without spaces.');
    expect(html).toMatch(/role="alert"[^>]*><p class="font-semibold">The engine could not be added.<\/p><p>An engine has this name already.<\/p><p[^>]*>Choose another name.<\/p>/);
    // The Test button checks the address only: a missing name is no reason to refuse it.
    expect(engineFormProblems(form({ name: '' }), 'address')).toEqual({});
    expect(engineFormProblems(form())).toEqual({});
  });

  it('Test and Save call back; the form submits on Enter (a form with a submit button)', () => {
    const onTest = vi.fn();
    const onSubmit = vi.fn();
    const tree = EngineFormView(formProps({ onTest, onSubmit }));
    const buttons = hostElements(tree).filter((e) => e.type === 'button');
    fire(buttons.find((b) => b.props.children === 'Test') ?? expect.unreachable('Test'), 'onClick');
    expect(onTest).toHaveBeenCalledTimes(1);
    expect(buttons.find((b) => b.props.type === 'submit')?.props.children).toBe('Save');
    const preventDefault = vi.fn();
    (tree.props as { onSubmit: (e: unknown) => void }).onSubmit({ preventDefault });
    expect(preventDefault).toHaveBeenCalled();
    expect(onSubmit).toHaveBeenCalledTimes(1);
  });

  it('what is sent: add, update (the key only when typed or removed) and test (the stored key lent while editing)', () => {
    expect(addInput(form({ name: ' GPU box ', baseUrl: ' http://gpu-box:8000 ' }))).toEqual({ name: 'GPU box', baseUrl: 'http://gpu-box:8000', kind: 'vllm' });
    expect(addInput(form({ apiKey: ' sk-1 ' }))).toEqual({ name: 'GPU box', baseUrl: 'http://gpu-box:8000', kind: 'vllm', apiKey: 'sk-1' });
    expect(updateInput(form(), lab)).toEqual({ engineId: 'e2', name: 'GPU box', baseUrl: 'http://gpu-box:8000', kind: 'vllm' });
    expect(updateInput(form({ apiKey: 'sk-2' }), lab)).toMatchObject({ apiKey: 'sk-2' });
    expect(updateInput(form({ apiKey: 'sk-2', removeKey: true }), lab)).toMatchObject({ apiKey: null });
    expect(testInput(form(), null)).toEqual({ baseUrl: 'http://gpu-box:8000', kind: 'vllm' });
    expect(testInput(form(), lab)).toEqual({ baseUrl: 'http://gpu-box:8000', kind: 'vllm', engineId: 'e2' });
    expect(testInput(form({ apiKey: 'sk-new' }), lab)).toEqual({ baseUrl: 'http://gpu-box:8000', kind: 'vllm', apiKey: 'sk-new' });
    expect(testInput(form({ removeKey: true }), lab)).toEqual({ baseUrl: 'http://gpu-box:8000', kind: 'vllm' });
    // An engine without a stored key has none to lend.
    expect(testInput(form(), gpu)).toEqual({ baseUrl: 'http://gpu-box:8000', kind: 'vllm' });
  });

  it("Test's answer: the models found, the server's error with its hint, or a refused call", () => {
    const found = renderToStaticMarkup(<TestResult test={{ pending: false, result: { ok: true, value: gpu.status } }} />);
    expect(found).toMatch(/^<div role="status" data-testid="engine-test-result"/);
    expect(visibleText(found)).toContain('It answered: 2 models.');
    expect(visibleText(found)).toContain('llama-3-70b (32,768 tokens of context)');
    expect(visibleText(found)).toContain('qwen-7b');
    expect(visibleText(found)).toContain('Its /metrics answered');
    const failed = renderToStaticMarkup(<TestResult test={{ pending: false, result: { ok: true, value: lab.status } }} />);
    expect(visibleText(failed)).toBe('The server did not pass the test.The server refused the API key.Check the key in Edit.');
    const refused = renderToStaticMarkup(<TestResult test={{ pending: false, result: { ok: false, error: { code: 'INVALID_INPUT', message: 'not an http(s) address' } } }} />);
    expect(visibleText(refused)).toBe('The test could not run.not an http(s) address');
    expect(visibleText(renderToStaticMarkup(<TestResult test={{ pending: true }} />))).toBe('Testing…');
    expect(byTestId(TestResult({ test: null }), 'engine-test-result').props.children).toBeNull();
  });
});
