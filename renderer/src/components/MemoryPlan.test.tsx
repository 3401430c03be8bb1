import type { ReactNode } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { createActions } from '../state/actions.ts';
import { planKey, type ModelPlanEntry, type PlanTarget } from '../state/profile-slice.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { cpuPlan } from '../../../test/support/renderer/fixtures.ts';
import { MemoryPlanButton, MemoryPlanPanel, MemoryPlanView } from './MemoryPlan.tsx';
import { library, localModel } from '../state/models.fixtures.ts';
import { ModelScreen } from './ModelScreen.tsx';

const local: PlanTarget = { path: '/m/tiny.gguf' };
const other: PlanTarget = { path: '/m/other.gguf' };

function view(target: PlanTarget, entry: ModelPlanEntry | undefined): string {
  return renderToStaticMarkup(<MemoryPlanView id="p1" name="tiny.gguf" target={target} entry={entry} onRetry={() => {}} />);
}

function withStore(seed: (store: ReturnType<typeof createHearthStore>) => void, node: ReactNode): string {
  const store = createHearthStore();
  seed(store);
  const actions = createActions(fakeTransport(), store, { navigate: () => {} });
  // Static rendering reads the store's initial state (zustand's server snapshot): start it from the seeded one.
  const seeded = { ...store, getInitialState: store.getState };
  return renderToStaticMarkup(
    <HearthProvider store={seeded} actions={actions}>
      {node}
    </HearthProvider>,
  );
}

describe('the memory plan disclosure', () => {
  it('a named toggle that says whether it is open, and points at its panel only when there is one', () => {
    const closed = renderToStaticMarkup(<MemoryPlanButton name="tiny.gguf" open={false} panelId="p1" onToggle={() => {}} />);
    expect(closed).toMatch(/^<button type="button" aria-expanded="false" aria-label="Memory plan for tiny.gguf"[^>]*>Memory plan<\/button>$/);
    const open = renderToStaticMarkup(<MemoryPlanButton name="tiny.gguf" open panelId="p1" onToggle={() => {}} />);
    expect(open).toContain('aria-expanded="true" aria-controls="p1"');
  });

  it('busy while the plan runs', () => {
    const pending = { plan: null, error: null, pending: true };
    const html = view(local, pending);
    expect(html).toMatch(/^<section id="p1" aria-label="Memory plan for tiny.gguf" aria-busy="true"/);
    expect(html).toContain('<p role="status"');
    expect(html).toContain('Reading the model file…');
    // Before the store has an entry (the first render after opening) it is busy too.
    expect(view(local, undefined)).toContain('aria-busy="true"');
  });

  it('a plan shows its summary; an error shows its message with Try again', () => {
    const done = view(local, { plan: cpuPlan(), error: null, pending: false });
    expect(done).not.toContain('aria-busy');
    expect(done).toContain('Device: CPU · RAM 8.00 GB free of 16.0 GB');
    expect(done).toContain('Auto picks f16 / f16 at 4,096 tokens');
    expect(done).toContain('in RAM 131,072');

    const offline = view(other, { plan: null, error: { code: 'NOT_FOUND', message: 'There is no file at /m/other.gguf.', hint: 'Check the path.' }, pending: false });
    expect(offline).toContain('The memory plan could not be made.');
    expect(offline).toContain('There is no file at /m/other.gguf.');
    expect(offline).toContain('Check the path.');
    expect(offline).toMatch(/<button type="button"[^>]*>Try again<\/button>/);
    expect(offline).not.toContain('<table');
  });

  it('the panel reads the cached plan from the store, so it shows at once when opened again', () => {
    const html = withStore(
      (store) => store.getState().setModelPlan(planKey(local), { plan: cpuPlan({ contextSize: 2048 }), error: null, pending: false }),
      <MemoryPlanPanel id="p1" name="tiny.gguf" target={local} />,
    );
    expect(html).toContain('Memory at 2,048 tokens');
    expect(html).not.toContain('aria-busy');
  });

  it('the Models screen has a closed Memory plan toggle on each local file', () => {
    const html = withStore((store) => {
      store.getState().setLibrary(library([localModel('tiny.gguf', { path: '/m/tiny.gguf' })]));
    }, <ModelScreen />);
    expect(html).toMatch(/<button type="button" aria-expanded="false" aria-label="Memory plan for tiny.gguf"/);
    expect(html).not.toContain('<section id=');
  });
});
