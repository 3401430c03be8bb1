import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import type { LocalEngineState } from '../contract.ts';
import { fire, hostElements } from '../../../test/support/renderer/element-tree.ts';
import { localEngine, speedTrial } from '../../../test/support/renderer/fixtures.ts';
import { byTestIdMarkup, visibleText } from '../../../test/support/renderer/markup.ts';
import { buildExplanation, comparisonText, LocalEngineView, localEngineStatusText, RemoveLocalEngineView, type LocalEngineViewProps } from './LocalEngineSettings.tsx';

const builtAt = new Date(2026, 10, 3, 9, 30).getTime();
const now = builtAt + 3_600_000;
const build = { release: 'b6188', builtAt, sizeBytes: 48_300_000 };
const comparison = {
  model: 'tiny-llama',
  prebuilt: speedTrial(false, 2, 512, { prefill: 212.9, decode: 24.06, turn: 11.24 }),
  local: speedTrial(true, 2, 512, { prefill: 260.3, decode: 27.4, turn: 9.83 }),
  faster: true,
  measuredAt: builtAt + 600_000,
};

function props(state: LocalEngineState | null, extra: Partial<LocalEngineViewProps> = {}): LocalEngineViewProps {
  return {
    state,
    loadError: null,
    callError: null,
    pending: null,
    onBuild: () => undefined,
    onCancel: () => undefined,
    onRemove: () => undefined,
    onRetryLoad: () => undefined,
    now,
    ...extra,
  };
}

const render = (state: LocalEngineState | null, extra: Partial<LocalEngineViewProps> = {}) => renderToStaticMarkup(<LocalEngineView {...props(state, extra)} />);
const buttons = (state: LocalEngineState | null, extra: Partial<LocalEngineViewProps> = {}) => hostElements(LocalEngineView(props(state, extra))).filter((e) => e.type === 'button');
const labelOf = (b: ReturnType<typeof buttons>[number]) => String(b.props['aria-label'] ?? b.props.children);
const named = (list: ReturnType<typeof buttons>, label: string) => list.find((b) => labelOf(b) === label) ?? expect.unreachable(label);
const cells = (row: string) => [...row.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((m) => visibleText(m[1] ?? ''));

describe('Settings → Engine', () => {
  it('is a labelled section; while the state is on its way it says so, and a failed read offers a retry', () => {
    const html = render(null);
    expect(html).toMatch(/^<section aria-labelledby="local-engine-heading"/);
    expect(html).toContain('<h2 id="local-engine-heading" class="text-base font-semibold">Engine</h2>');
    expect(visibleText(html)).toContain('Loading…');
    const onRetryLoad = vi.fn();
    const failed = { loadError: { code: 'ENGINE_UNAVAILABLE' as const, message: 'The engine is restarting.' }, onRetryLoad };
    expect(visibleText(render(null, failed))).toContain("The engine's state could not be read.The engine is restarting.Try again");
    fire(named(buttons(null, failed), 'Try again'), 'onClick');
    expect(onRetryLoad).toHaveBeenCalledOnce();
  });

  it('idle: what a build does, and a button that starts it', () => {
    const onBuild = vi.fn();
    const html = render(localEngine());
    expect(buildExplanation).toBe(
      'It compiles llama.cpp for this computer’s CPU and GPU in the background, which takes several minutes, and is used only if it measures faster on the loaded model; the prebuilt engine stays the fallback.',
    );
    expect(visibleText(html)).toContain(buildExplanation);
    expect(html).toMatch(/<p role="status" data-testid="local-engine-status" data-state="idle"[^>]*>No build for this computer yet. In use: the prebuilt engine.<\/p>/);
    expect(html).toMatch(/<button type="button" aria-describedby="local-engine-explanation" class="[^"]*">Build an engine for this computer<\/button>/);
    fire(named(buttons(localEngine(), { onBuild }), 'Build an engine for this computer'), 'onClick');
    expect(onBuild).toHaveBeenCalledOnce();
    // While the call runs the button waits, and says so.
    expect(render(localEngine(), { pending: 'build' })).toMatch(/<button type="button" disabled=""[^>]*>Starting…<\/button>/);
  });

  it('unavailable: the button is disabled and the reason is shown beside it', () => {
    const state = localEngine({ available: false, unavailable: 'No C++ compiler was found (install build tools, then restart Hearth).' });
    const html = render(state);
    expect(html).toMatch(/<button type="button" disabled="" aria-describedby="local-engine-unavailable"[^>]*>Build an engine for this computer<\/button>/);
    expect(html).toContain('<p id="local-engine-unavailable" class="text-sm text-amber-800 dark:text-amber-300">No C++ compiler was found (install build tools, then restart Hearth).</p>');
    expect(visibleText(html)).toContain('An engine cannot be built on this computer. In use: the prebuilt engine.');
  });

  it('building: a progress bar, the step and percent, and Cancel', () => {
    const onCancel = vi.fn();
    const state = localEngine({ status: 'building', progress: 0.42, step: 'Compiling ggml-cpu' });
    const html = render(state);
    expect(html).toContain('aria-busy="true"');
    expect(html).toMatch(/<progress aria-label="Engine build progress"[^>]*max="1" value="0.42"/);
    expect(visibleText(html)).toContain('Compiling ggml-cpu · 42%');
    expect(visibleText(html)).toContain('Building an engine for this computer, 42%… In use: the prebuilt engine.');
    expect(html).not.toContain('Build an engine for this computer</button>');
    expect(html).not.toContain(buildExplanation);
    fire(named(buttons(state, { onCancel }), 'Cancel the engine build'), 'onClick');
    expect(onCancel).toHaveBeenCalledOnce();
    expect(render(state, { pending: 'cancel' })).toMatch(/disabled=""[^>]*aria-label="Cancel the engine build"[^>]*>Cancelling…</);
    // No progress reported yet: the bar is indeterminate, not at 0.
    expect(render(localEngine({ status: 'building' }))).toMatch(/<progress aria-label="Engine build progress" class="[^"]*" max="1"><\/progress>/);
  });

  it('measuring: it says it compares the build with the prebuilt engine, and offers nothing to click', () => {
    const html = render(localEngine({ status: 'measuring', build }));
    expect(visibleText(html)).toContain('Comparing the new build with the prebuilt engine on the loaded model… In use: the prebuilt engine.');
    expect(html).toContain('aria-label="Engine comparison progress"');
    expect(buttons(localEngine({ status: 'measuring', build }))).toEqual([]);
  });

  it('ready: the build’s release, date and size, and the comparison with which engine is in use', () => {
    const state = localEngine({ status: 'ready', build, comparison, inUse: 'local' });
    const html = render(state);
    expect(visibleText(byTestIdMarkup(html, 'local-engine-build', 'dl').join(''))).toMatch(/^llama\.cpp releaseb6188Built\d\d?:30[^S]*Size on disk48\.3 MB$/);
    expect(visibleText(html)).toContain('On tiny-llama, the build for this computer was faster: it is in use.');
    const rows = byTestIdMarkup(html, 'local-engine-row', 'tr');
    expect(rows.map(cells)).toEqual([
      ['Prebuilt', 'Flash attention off · 2 threads · batch 512', '213', '24.1', '11.2 s'],
      ['Built for this computer(in use)', 'Flash attention on · 2 threads · batch 512', '260', '27.4', '9.83 s'],
    ]);
    expect(rows.map((r) => r.includes('data-in-use="true"'))).toEqual([false, true]);
    expect(visibleText(html)).toContain('Built. In use: the engine built for this computer.');
    expect(visibleText(html)).toMatch(/Compared \d\d?:40/);
    expect(buttons(state).map(labelOf)).toEqual(['Remove']);

    const slower = localEngine({ status: 'ready', build, comparison: { ...comparison, faster: false }, inUse: 'prebuilt' });
    expect(comparisonText({ ...comparison, faster: false })).toBe('On tiny-llama, the build for this computer was not faster: the prebuilt engine stays in use.');
    expect(byTestIdMarkup(render(slower), 'local-engine-row', 'tr').map((r) => r.includes('data-in-use="true"'))).toEqual([true, false]);
    expect(visibleText(render(localEngine({ status: 'ready', build })))).toContain('Not compared with the prebuilt engine yet: that happens on a loaded model.');
  });

  it('a side of the comparison that could not run shows its error', () => {
    const failedLocal = { ...comparison, local: speedTrial(true, 2, 512, { error: 'the build crashed loading the model' }), faster: false };
    const rows = byTestIdMarkup(render(localEngine({ status: 'ready', build, comparison: failedLocal })), 'local-engine-row', 'tr');
    expect(cells(rows[1] ?? '')).toEqual(['Built for this computer', 'Flash attention on · 2 threads · batch 512', 'failed: the build crashed loading the model']);
  });

  it('Remove asks first: the confirmation says what goes and its button calls back', () => {
    const onRemove = vi.fn();
    fire(named(buttons(localEngine({ status: 'ready', build, comparison }), { onRemove }), 'Remove'), 'onClick');
    expect(onRemove).toHaveBeenCalledOnce();
    const confirmRemove = vi.fn();
    const onCancel = vi.fn();
    const dialog = <RemoveLocalEngineView sizeBytes={48_300_000} error={null} removing={false} onCancel={onCancel} onRemove={confirmRemove} />;
    expect(visibleText(renderToStaticMarkup(dialog))).toContain('The build for this computer (48.3 MB) is deleted, and chats run on the prebuilt engine again.');
    const dialogButtons = hostElements(RemoveLocalEngineView({ sizeBytes: 48_300_000, error: null, removing: false, onCancel, onRemove: confirmRemove })).filter((e) => e.type === 'button');
    expect(dialogButtons.map(labelOf)).toEqual(['Keep it', 'Remove the build']);
    fire(named(dialogButtons, 'Remove the build'), 'onClick');
    fire(named(dialogButtons, 'Keep it'), 'onClick');
    expect(confirmRemove).toHaveBeenCalledOnce();
    expect(onCancel).toHaveBeenCalledOnce();
    const refused = renderToStaticMarkup(<RemoveLocalEngineView sizeBytes={null} error={{ code: 'BUSY', message: 'A reply is being written.' }} removing={false} onCancel={onCancel} onRemove={confirmRemove} />);
    expect(visibleText(refused)).toContain('The build could not be removed.A reply is being written.');
  });

  it('failed: the error with its hint, the explanation again, and a retry; a build left on disk can still be removed', () => {
    const onBuild = vi.fn();
    const error = { code: 'INTERNAL' as const, message: 'CMake failed: no CUDA toolkit found.', hint: 'Install the CUDA toolkit, or build for the CPU only.' };
    const state = localEngine({ status: 'failed', error });
    const html = render(state);
    expect(visibleText(html)).toContain('The build or its comparison failed.CMake failed: no CUDA toolkit found.Install the CUDA toolkit, or build for the CPU only.');
    expect(visibleText(html)).toContain('The last build failed. In use: the prebuilt engine.');
    expect(visibleText(html)).toContain(buildExplanation);
    fire(named(buttons(state, { onBuild }), 'Try the build again'), 'onClick');
    expect(onBuild).toHaveBeenCalledOnce();
    expect(buttons(state).map(labelOf)).toEqual(['Try the build again']);
    expect(buttons(localEngine({ status: 'failed', error, build })).map(labelOf)).toEqual(['Try the build again', 'Remove']);
  });

  it('a refused call is shown in place once it has answered', () => {
    const callError = { code: 'BUSY' as const, message: 'A model is loading.', hint: 'Build once it is ready.' };
    const html = render(localEngine(), { callError });
    expect(html).toContain('role="alert"');
    expect(visibleText(html)).toContain('That did not work.A model is loading.Build once it is ready.');
    expect(render(localEngine(), { callError, pending: 'build' })).not.toContain('role="alert"');
  });

  it('after a click here, the next state’s button takes the focus', () => {
    expect(named(buttons(localEngine({ status: 'building' }), { focusAction: true }), 'Cancel the engine build').props.autoFocus).toBe(true);
    expect(named(buttons(localEngine(), { focusAction: true }), 'Build an engine for this computer').props.autoFocus).toBe(true);
    expect(named(buttons(localEngine()), 'Build an engine for this computer').props.autoFocus).toBeUndefined();
  });

  it('the status line in every state', () => {
    expect(localEngineStatusText(localEngine({ status: 'building' }))).toBe('Building an engine for this computer… In use: the prebuilt engine.');
    expect(localEngineStatusText(localEngine({ status: 'ready', inUse: 'local' }))).toBe('Built. In use: the engine built for this computer.');
  });
});
