import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { KvCacheType, KvPlan } from '../contract.ts';
import { kvTypes } from '../lib/kv.ts';
import { cpuPlan, planRow } from '../../../test/support/renderer/fixtures.ts';
import { KvPlanner, KvPlanSummary, shownRows, summaryRows, type KvPlannerProps } from './KvPlanner.tsx';

function render(extra: Partial<KvPlannerProps> = {}): string {
  return renderToStaticMarkup(<KvPlanner plan={cpuPlan()} pending={false} error={null} chosen={{ kType: 'q8_0', vType: 'q8_0' }} auto={false} {...extra} />);
}

/** The <tr> whose row header is this pair. */
function rowOf(html: string, pair: string): string {
  const found = new RegExp(`<tr[^>]*><th scope="row"[^>]*>${pair}.*?</tr>`).exec(html);
  if (!found) throw new Error(`no row ${pair}`);
  return found[0];
}

/** Every K×V pair, as a real plan has them. */
const fullPlan = (): KvPlan => ({
  ...cpuPlan(),
  rows: kvTypes.flatMap((k: KvCacheType) => kvTypes.map((v: KvCacheType) => planRow(k, v))),
  auto: { kType: 'f16', vType: 'q8_0' },
});

describe('shownRows', () => {
  it('shows the usual pairs (f16 K, or K = V) plus the chosen pair and the auto pick; everything on request', () => {
    const plan = fullPlan();
    expect(plan.rows).toHaveLength(49);
    const usual = shownRows(plan, { kType: 'q8_0', vType: 'q8_0' }, false);
    expect(usual).toHaveLength(13);
    expect(usual.every((r) => r.kType === 'f16' || r.kType === r.vType)).toBe(true);
    const odd = shownRows(plan, { kType: 'q4_0', vType: 'q8_0' }, false);
    expect(odd).toHaveLength(14);
    expect(odd.some((r) => r.kType === 'q4_0' && r.vType === 'q8_0')).toBe(true);
    expect(shownRows(plan, null, true)).toHaveLength(49);
  });
});

describe('KvPlanner', () => {
  it('a region with the device, the figure for the chosen pair, and a captioned table', () => {
    const html = render();
    expect(html).toMatch(/^<section aria-labelledby="kv-planner-heading"/);
    expect(html).toContain('<h3 id="kv-planner-heading" class="text-sm font-semibold">Memory planner</h3>');
    expect(html).toContain('Device: CPU · RAM 8.00 GB free of 16.0 GB');
    expect(html).toMatch(/<p id="kv-planner-chosen" aria-live="polite"[^>]*>q8_0 \/ q8_0 at 4,096 tokens: KV 2.23 MB, total 4.00 MB\. Fits\.<\/p>/);
    expect(html).toContain('Memory per K/V pair at 4,096 tokens (weights 1.30 MB)</caption>');
    for (const header of ['K / V', 'Bytes per token', 'KV memory', 'Total memory', 'Longest context, full GPU', 'Longest context in RAM', 'Fits']) {
      expect(html).toMatch(new RegExp(`<th scope="col"[^>]*>${header}</th>`));
    }
  });

  it('highlights the chosen row and marks the auto pick; every row has its figures', () => {
    const html = render();
    const chosen = rowOf(html, 'q8_0 / q8_0');
    expect(chosen).toContain('aria-current="true"');
    expect(chosen).toContain('bg-amber-100');
    expect(chosen).toContain('(chosen)');
    expect(chosen).toMatch(/>544<\/td><td[^>]*>2.23 MB<\/td><td[^>]*>4.00 MB<\/td><td[^>]*>—<\/td><td[^>]*>131,072<\/td><td[^>]*>fits<\/td>/);
    const auto = rowOf(html, 'f16 / f16');
    expect(auto).toContain('(auto pick)');
    expect(auto).not.toContain('aria-current');
    expect(rowOf(html, 'q4_0 / q4_0')).toContain('refused: the head size 48 is not a multiple of 32');
  });

  it('when auto is chosen, the figure says what auto picks', () => {
    const html = render({ chosen: { kType: 'f16', vType: 'f16' }, auto: true });
    expect(html).toContain('>Auto picks f16 / f16 at 4,096 tokens: KV 4.19 MB, total 6.00 MB. Fits.</p>');
    expect(rowOf(html, 'f16 / f16')).toMatch(/\(chosen\).*\(auto pick\)/);
  });

  it('with a GPU: the partial-offload column, and a pair that does not fit says the longest context', () => {
    const plan: KvPlan = {
      ...cpuPlan(),
      device: { backend: 'cuda', gpuName: 'RTX 4070', vramTotalBytes: 8e9, vramFreeBytes: 7e9, unifiedMemory: false, ramTotalBytes: 32e9, ramFreeBytes: 16e9 },
      contextSize: 65536,
      slots: 2,
      rows: [planRow('f16', 'f16', { fits: false, maxContextFullGpu: 24576, maxContextPartial: 90000 }), planRow('q8_0', 'q8_0', { maxContextFullGpu: 0 })],
      auto: { kType: 'q8_0', vType: 'q8_0' },
    };
    const html = render({ plan, chosen: { kType: 'f16', vType: 'f16' } });
    expect(html).toContain('Device: CUDA (RTX 4070) · VRAM 7.00 GB free of 8.00 GB');
    expect(html).toContain('>Longest context, partial offload</th>');
    expect(html).toContain('at 65,536 tokens × 2 slots');
    expect(html).toContain('Does not fit: the longest context that fits is 90,000 tokens.');
    expect(rowOf(html, 'f16 / f16')).toMatch(/>24,576<\/td><td[^>]*>90,000<\/td><td[^>]*>does not fit<\/td>/);
    expect(rowOf(html, 'q8_0 / q8_0')).toContain('>weights do not fit</td>');
  });

  it('offers all pairs when some are hidden', () => {
    const html = render({ plan: fullPlan() });
    expect(html).toMatch(/<button type="button" aria-expanded="false"[^>]*>Show all 49 pairs<\/button>/);
    expect(render()).not.toContain('Show all');
  });

  it('busy while planning, and a failure as a message beside the last table', () => {
    expect(render({ plan: null, pending: true })).toContain('>Planning…</p>');
    expect(render({ plan: null, pending: true })).toContain('aria-busy="true"');
    expect(render({ pending: true })).toContain('Updating the plan…');
    const failed = render({ error: { code: 'MODEL_INVALID', message: 'Not a GGUF file.' } });
    expect(failed).toContain('The planner could not run.');
    expect(failed).toContain('Not a GGUF file.');
    expect(failed).toContain('<table');
  });
});

describe('the compact plan (Models screen)', () => {
  const pairs = (plan: KvPlan) => summaryRows(plan).map((r) => `${r.kType}/${r.vType}`);

  it('shows f16, q8_0 and q4_0 for both, then the auto pick when it is none of them; each once', () => {
    expect(pairs(fullPlan())).toEqual(['f16/f16', 'q8_0/q8_0', 'q4_0/q4_0', 'f16/q8_0']);
    expect(pairs({ ...fullPlan(), auto: { kType: 'q8_0', vType: 'q8_0' } })).toEqual(['f16/f16', 'q8_0/q8_0', 'q4_0/q4_0']);
    expect(pairs({ ...fullPlan(), auto: null })).toEqual(['f16/f16', 'q8_0/q8_0', 'q4_0/q4_0']);
    // Pairs the plan lacks are left out.
    expect(pairs(cpuPlan())).toEqual(['f16/f16', 'q8_0/q8_0', 'q4_0/q4_0']);
  });

  it('the device, the auto pick at the default context, and a small table without ids of its own', () => {
    const html = renderToStaticMarkup(<KvPlanSummary plan={fullPlan()} />);
    expect(html).toContain('Device: CPU · RAM 8.00 GB free of 16.0 GB');
    expect(html).toContain('Auto picks f16 / q8_0 at 4,096 tokens: KV 4.19 MB, total 6.00 MB. Fits.');
    expect(html).toContain('Memory at 4,096 tokens (weights 1.30 MB)</caption>');
    for (const header of ['K / V', 'Bytes per token', 'KV memory', 'Total memory', 'Longest context in RAM']) {
      expect(html).toMatch(new RegExp(`<th scope="col"[^>]*>${header}</th>`));
    }
    expect(rowOf(html, 'f16 / q8_0')).toContain('(auto pick)');
    expect(rowOf(html, 'f16 / f16')).toMatch(/>1,024<\/td><td[^>]*>4.19 MB<\/td><td[^>]*>6.00 MB<\/td><td[^>]*>in RAM 131,072<\/td>/);
    // It appears once per row on the Models screen, so it must not repeat the full planner's ids.
    expect(html).not.toContain(' id="');
  });

  it('with a GPU: full and partial offload in one column; a refused pair says why', () => {
    const plan: KvPlan = {
      ...cpuPlan(),
      device: { backend: 'cuda', gpuName: 'RTX 4070', vramTotalBytes: 8e9, vramFreeBytes: 7e9, unifiedMemory: false, ramTotalBytes: 16e9, ramFreeBytes: 8e9 },
      rows: cpuPlan().rows.map((r) => ({ ...r, maxContextFullGpu: 32_768 })),
    };
    const html = renderToStaticMarkup(<KvPlanSummary plan={plan} />);
    expect(html).toMatch(/<th scope="col"[^>]*>Longest context<\/th>/);
    expect(rowOf(html, 'f16 / f16')).toContain('full GPU 32,768 · partial 131,072');
    expect(rowOf(html, 'q4_0 / q4_0')).toContain('refused: the head size 48 is not a multiple of 32');
    expect(rowOf(html, 'q4_0 / q4_0')).toContain('text-red-700');
  });
});
