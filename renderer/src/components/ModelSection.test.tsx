import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../contract.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { fileName, loadedLines, ModelSection, planInput } from './ModelSection.tsx';
import { profileFormFrom } from './ModelProfile.tsx';

const form = profileFormFrom({ kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' });

describe('the Model section', () => {
  it("asks the planner for the form's context and slots; on auto, for what auto allocates, else the host's size", () => {
    expect(planInput('/m/a.gguf', form)).toEqual({ path: '/m/a.gguf', slots: 1 });
    expect(planInput('/m/a.gguf', { ...form, contextSize: '16384', slots: '2' })).toEqual({ path: '/m/a.gguf', contextSize: 16384, slots: 2 });
    // The pair is no part of the input: one plan holds every pair's row.
    expect(planInput('/m/a.gguf', { ...form, kType: 'q8_0' })).toEqual(planInput('/m/a.gguf', form));
    // With the trained length known, auto is planned at what auto allocates.
    expect(planInput('/m/a.gguf', form, 4096)).toEqual({ path: '/m/a.gguf', contextSize: 4096, slots: 1 });
    expect(planInput('/m/a.gguf', form, 131072)).toEqual({ path: '/m/a.gguf', contextSize: 8192, slots: 1 });
    expect(planInput('/m/a.gguf', { ...form, contextSize: '2048' }, 131072)).toEqual({ path: '/m/a.gguf', contextSize: 2048, slots: 1 });
    expect(planInput('/m/a.gguf', { ...form, contextSize: '12x' })).toBeNull();
    expect(planInput('/m/a.gguf', { ...form, slots: '0' })).toBeNull();
  });

  it('names the last model by its file', () => {
    expect(fileName('/home/u/models/tiny.gguf')).toBe('tiny.gguf');
    expect(fileName('C:\\models\\tiny.gguf')).toBe('tiny.gguf');
  });

  it('says what the loaded context uses, and planned against measured memory when the host reports them', () => {
    const info: ModelInfo = { path: '/m/a.gguf', name: 'a', sizeBytes: 1, architecture: 'llama', trainedContextLength: 4096, contextSize: 4096, layerCount: 4 };
    expect(loadedLines(info)).toEqual(['Loaded with a context of 4,096 tokens per slot.']);
    expect(loadedLines({ ...info, kvType: { k: 'q8_0', v: 'q8_0' }, flashAttention: true, gpuLayers: 0, memory: { plannedBytes: 2_000_000, measuredBytes: 2_100_000 } })).toEqual([
      'Loaded with q8_0 / q8_0, flash attention on, 0 GPU layers and a context of 4,096 tokens per slot.',
      'Context memory: planned 2.00 MB · measured 2.10 MB (not a check without a GPU).',
    ]);
    expect(loadedLines({ ...info, threads: 2, batchSize: 512 })).toEqual(['Loaded with a context of 4,096 tokens per slot.', 'Runs with 2 threads and a batch of 512 tokens.']);
    expect(loadedLines({ ...info, threads: 1, batchSize: 2048 })[1]).toBe('Runs with 1 thread and a batch of 2,048 tokens.');
    expect(loadedLines({ ...info, gpuLayers: 33, memory: { plannedBytes: 2_000_000, measuredBytes: 2_100_000 } })).toContain('Context memory: planned 2.00 MB · measured 2.10 MB (+5%).');
  });

  it('with no model, loaded or last, it says so and links to the Models screen', () => {
    // Server rendering reads the store's initial state: no model, no settings.
    const store = createHearthStore();
    const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
    const html = renderToStaticMarkup(
      <HearthProvider store={store} actions={actions}>
        <ModelSection />
      </HearthProvider>,
    );
    expect(html).toMatch(/^<section aria-labelledby="model-profile-heading"/);
    expect(html).toContain('<h2 id="model-profile-heading" class="mb-2 text-base font-semibold">Model</h2>');
    expect(html).toContain('No model is loaded. Load one on the <a href="#/models" class="font-medium underline">Models</a> screen');
  });
});
