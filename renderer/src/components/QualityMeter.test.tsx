import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { KvQuality } from '../contract.ts';
import { isReference, lossyText, QualityMeter, qualitySummary, referenceText, type QualityMeterProps } from './QualityMeter.tsx';

const measuredAt = new Date(2026, 10, 3, 14, 2).getTime();
const quality: KvQuality = { kType: 'q8_0', vType: 'q8_0', klDivergence: 0.00098, top1Agreement: 0.9871, verdict: 'near-lossless', positions: 512, measuredAt };

function render(extra: Partial<QualityMeterProps> = {}): string {
  const props: QualityMeterProps = {
    quality,
    qualityPath: '/m/a.gguf',
    pending: false,
    error: null,
    loadedPath: '/m/a.gguf',
    loadedPair: { k: 'q8_0', v: 'q8_0' },
    onMeasure: () => undefined,
    now: measuredAt + 60_000,
    ...extra,
  };
  return renderToStaticMarkup(<QualityMeter {...props} />);
}

describe('QualityMeter', () => {
  it('shows the figures, the verdict and when it was measured, with both buttons', () => {
    const html = render();
    expect(html).toContain('<h3 id="kv-quality-heading" class="text-sm font-semibold">Quality meter</h3>');
    expect(html).toContain('<dd class="font-mono">q8_0 / q8_0 against f16</dd>');
    expect(html).toMatch(/KL divergence<\/dt><dd[^>]*>0.00098<\/dd>/);
    expect(html).toMatch(/Top-1 agreement<\/dt><dd[^>]*>98.7%<\/dd>/);
    expect(html).toMatch(/Verdict<\/dt><dd class="font-medium text-green-700[^"]*">Near-lossless<\/dd>/);
    expect(html).toMatch(/Measured<\/dt><dd>[^<]*\d:02[^<]*, over 512 positions<\/dd>/);
    expect(html).toMatch(/<button type="button" class="[^"]*">Measure quality<\/button>/);
    expect(html).toMatch(/<button type="button" class="[^"]*">Measure again<\/button>/);
    expect(html).toContain(`<span class="sr-only">${qualitySummary(quality)}</span>`);
    expect(qualitySummary(quality)).toBe('Near-lossless: q8_0 / q8_0 against f16, KL divergence 0.00098, top-1 agreement 98.7%.');
  });

  it('the lossy disk encoding, when measured: a row, and a sentence in the summary', () => {
    expect(render()).not.toContain('Lossy disk encoding');
    const withLossy: KvQuality = { ...quality, kType: 'q8_0', vType: 'f16', lossy: { klVsLossless: 0.001234, top1Agreement: 0.9921, positions: 256 } };
    expect(lossyText(withLossy)).toBe('Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%');
    const html = render({ quality: withLossy, loadedPair: { k: 'q8_0', v: 'f16' } });
    expect(html).toContain('<p class="text-sm tabular-nums">Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%</p>');
    expect(qualitySummary(withLossy)).toBe(
      'Near-lossless: q8_0 / f16 against f16, KL divergence 0.00098, top-1 agreement 98.7%. Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%.',
    );
    expect(lossyText({ ...withLossy, lossy: { klVsLossless: 0, top1Agreement: 1, positions: 256 } })).toBe('Lossy disk encoding: KL 0 vs lossless, top-1 100%');
  });

  it('f16/f16 is shown as the reference, never with a KL 0 or top-1 100% as if measured', () => {
    const reference: KvQuality = { kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1, verdict: 'near-lossless', positions: 512, measuredAt, reference: true };
    const html = render({ quality: reference, loadedPair: { k: 'f16', v: 'f16' } });
    expect(isReference(reference)).toBe(true);
    expect(html).toContain('<dd class="font-mono">f16 / f16, the reference</dd>');
    expect(html).toContain('Not measured: this is the pair the others are measured against.');
    expect(html).not.toContain('KL divergence</dt>');
    expect(html).not.toContain('Top-1 agreement</dt>');
    expect(html).not.toContain('Near-lossless');
    expect(html).not.toContain('100%');
    expect(qualitySummary(reference)).toBe(referenceText);
    // A result cached before the engine said `reference`: the pair alone makes it the reference.
    const { reference: _flag, ...cached } = reference;
    expect(isReference(cached)).toBe(true);
    expect(render({ quality: cached, loadedPair: { k: 'f16', v: 'f16' } })).not.toContain('KL divergence</dt>');
    // Its lossy figure is a real measurement and is shown.
    const withLossy: KvQuality = { ...reference, lossy: { klVsLossless: 0.001234, top1Agreement: 0.9921, positions: 256 } };
    const lossyHtml = render({ quality: withLossy, loadedPair: { k: 'f16', v: 'f16' } });
    expect(lossyHtml).toContain('Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%');
    expect(lossyHtml).toMatch(/Measured<\/dt><dd>[^<]*, the lossy disk encoding over 256 positions<\/dd>/);
    expect(qualitySummary(withLossy)).toBe(`${referenceText} Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%.`);
    expect(isReference(quality)).toBe(false);
  });

  it('busy while measuring: a status line and disabled buttons', () => {
    const html = render({ pending: true });
    expect(html).toContain('aria-busy="true"');
    expect(html).toMatch(/<p role="status" class="text-sm">Measuring quality… this takes a few seconds.<\/p>/);
    expect(html).toMatch(/<button type="button" disabled=""[^>]*>Measure quality<\/button>/);
    expect(html).toMatch(/<button type="button" disabled=""[^>]*>Measure again<\/button>/);
  });

  it('with no model loaded it says so and cannot measure; a result for another model is not shown', () => {
    const html = render({ loadedPath: null, loadedPair: null });
    expect(html).toContain('Load the model to measure its quality.');
    expect(html).toMatch(/<button type="button" disabled=""[^>]*>Measure quality<\/button>/);
    expect(html).not.toContain('KL divergence</dt>');
    expect(render({ qualityPath: '/m/other.gguf' })).not.toContain('KL divergence</dt>');
  });

  it('after the pair changed: the old result says so, and only "Measure quality" is offered', () => {
    const html = render({ loadedPair: { k: 'f16', v: 'q8_0' } });
    expect(html).toContain('The model now uses f16 / q8_0: measure to see that pair.');
    expect(html).not.toContain('Measure again');
  });

  it('errors as messages; other verdicts worded', () => {
    const html = render({ quality: null, error: { code: 'BUSY', message: 'A reply is being written.' } });
    expect(html).toContain('role="alert"');
    expect(html).toContain('The quality could not be measured.');
    expect(html).toContain('A reply is being written.');
    expect(render({ quality: { ...quality, verdict: 'noticeable' } })).toMatch(/text-red-700[^"]*">Noticeable loss</);
    expect(render({ quality: { ...quality, verdict: 'small' } })).toContain('>Small loss</dd>');
  });
});
