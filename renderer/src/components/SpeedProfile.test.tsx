import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import { hostElements, fire } from '../../../test/support/renderer/element-tree.ts';
import { speedProfile, speedTrial } from '../../../test/support/renderer/fixtures.ts';
import { byTestIdMarkup, visibleText } from '../../../test/support/renderer/markup.ts';
import { SpeedPanel, type SpeedPanelProps } from './SpeedProfile.tsx';

const speed = speedProfile();

function props(extra: Partial<SpeedPanelProps> = {}): SpeedPanelProps {
  return { speed, pending: false, measuring: null, error: null, canMeasure: true, onMeasure: () => undefined, now: speed.measuredAt + 60_000, ...extra };
}

/** A table row's cells, as read. */
const cells = (row: string) => [...row.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => visibleText(m[1] ?? ''));

const render = (extra: Partial<SpeedPanelProps> = {}) => renderToStaticMarkup(<SpeedPanel {...props(extra)} />);

function button(extra: Partial<SpeedPanelProps>, label: string) {
  return hostElements(SpeedPanel(props(extra))).find((e) => e.type === 'button' && e.props.children === label) ?? expect.unreachable(label);
}

describe('Speed on this computer', () => {
  it('shows the chosen settings in words, their figures, the device, engine, pair, and when and how long', () => {
    const html = render();
    expect(html).toContain('<h3 id="model-speed-heading" class="text-sm font-semibold">Speed on this computer</h3>');
    const shown = visibleText(html);
    expect(visibleText(byTestIdMarkup(html, 'speed-chosen', 'dd').join(''))).toBe('Flash attention off · 2 threads · batch 512');
    expect(visibleText(byTestIdMarkup(html, 'speed-figures', 'dd').join(''))).toBe('Prefill 213 tok/s · decode 24.1 tok/s');
    expect(shown).toContain('DeviceAMD EPYC 9B14, 2 cores, CPU');
    expect(shown).toContain('EnginePrebuilt');
    expect(shown).toContain('KV cachef16 / f16');
    expect(shown).toMatch(/Measured\d\d?:02[^,]*, took 42 s/);
    expect(shown).toContain('The settings chosen are those with the lowest time for a reference turn: reading a prompt of 128 tokens and writing a reply of 256 tokens.');
    expect(shown).toContain('Each trial read 512 tokens, then timed 32 reply tokens.');
    expect(render({ speed: speedProfile({ engine: 'local' }) })).toContain('<dd>Built for this computer</dd>');
  });

  it('lists every trial in order, the chosen one marked, a failed one with its error', () => {
    const html = render();
    expect(html).toContain('<caption class="sr-only">Every setting measured, the chosen one marked</caption>');
    const heads = [...html.matchAll(/<th scope="col"[^>]*>(.*?)<\/th>/g)].map((m) => visibleText(m[1] ?? ''));
    expect(heads).toEqual(['Chosen', 'Flash attention', 'Threads', 'Batch', 'Prefill tok/s', 'Decode tok/s', 'Turn']);
    const rows = byTestIdMarkup(html, 'speed-trial', 'tr');
    expect(rows.map(cells)).toEqual([
      ['', 'on', '2', '512', '180', '21.3', '12.7 s'],
      ['✓chosen', 'off', '2', '512', '213', '24.1', '11.2 s'],
      ['', 'off', '1', '512', '118', '15.5', '17.6 s'],
      ['', 'off', '2', '2,048', 'failed: llama.cpp refused the context'],
    ]);
    expect(rows.map((r) => r.includes('data-chosen="true"'))).toEqual([false, true, false, false]);
    expect(rows[3]).toMatch(/<td colspan="3"[^>]*>failed: /i);
  });

  it('not measured yet: says when it will be, and offers "Measure now"', () => {
    const onMeasure = vi.fn();
    const html = render({ speed: null });
    expect(visibleText(html)).toContain('Not measured on this computer yet — it is measured when the model first loads.');
    expect(html).not.toContain('<table');
    expect(html).toMatch(/<button type="button" aria-describedby="model-speed-status" class="[^"]*">Measure now<\/button>/);
    fire(button({ speed: null, onMeasure }, 'Measure now'), 'onClick');
    expect(onMeasure).toHaveBeenCalledTimes(1);
  });

  it('"Measure again" calls back; busy while it runs, with the measurement’s progress when the host reports it', () => {
    const onMeasure = vi.fn();
    fire(button({ onMeasure }, 'Measure again'), 'onClick');
    expect(onMeasure).toHaveBeenCalledTimes(1);

    const pending = render({ pending: true });
    expect(pending).toContain('aria-busy="true"');
    expect(pending).toMatch(/<button type="button" disabled=""[^>]*>Measure again<\/button>/);
    expect(pending).toContain('<p id="model-speed-status" role="status" class="text-sm">Measuring speed on this computer… the model loads again for it.</p>');

    const measuring = render({ pending: true, measuring: { done: 3, total: 12 } });
    expect(measuring).toContain('role="status" class="text-sm">Measuring speed on this computer (3 of 12)…</p>');
    // The model's own first load measures too: the button waits for it.
    expect(render({ measuring: { done: 1, total: 12 } })).toMatch(/disabled=""[^>]*>Measure again</);
    expect(render({ canMeasure: false })).toMatch(/disabled=""[^>]*>Measure again</);
    expect(render()).not.toMatch(/disabled=""[^>]*>Measure again</);
  });

  it('shows the new result in place of the old one', () => {
    const next = speedProfile({
      trials: [speedTrial(true, 4, 1024, { prefill: 402, decode: 31.2, turn: 8.52 })],
      chosen: { flashAttention: true, threads: 4, batchSize: 1024 },
    });
    const html = render({ speed: next });
    expect(visibleText(byTestIdMarkup(html, 'speed-chosen', 'dd').join(''))).toBe('Flash attention on · 4 threads · batch 1,024');
    expect(visibleText(byTestIdMarkup(html, 'speed-figures', 'dd').join(''))).toBe('Prefill 402 tok/s · decode 31.2 tok/s');
    expect(byTestIdMarkup(html, 'speed-trial', 'tr')).toHaveLength(1);
  });

  it('an error is shown in place with its hint, once nothing runs', () => {
    const error = { code: 'BUSY' as const, message: 'A reply is being written.', hint: 'Measure once it is done.' };
    const html = render({ error });
    expect(html).toContain('role="alert"');
    expect(visibleText(html)).toContain('The speed could not be measured.A reply is being written.Measure once it is done.');
    expect(render({ error, pending: true })).not.toContain('role="alert"');
    // The last result stays beside the error.
    expect(visibleText(html)).toContain('Flash attention off · 2 threads · batch 512');
  });
});
