/**
 * The quality meter: on demand, the loaded model's K/V pair against f16 over the calibration
 * text shipped with the app (KL divergence, top-1 agreement, a verdict), so the user can see what
 * a smaller cache costs. f16/f16 is the reference itself: it is shown as such, never with a KL 0
 * and top-1 100% that nothing measured. The host caches a result per model and pair; with an F16
 * side it also measures the lossy disk encoding against a bit-exact restore.
 */
import type { HearthError, KvCacheType, KvQuality } from '../contract.ts';
import { formatTime } from '../lib/format.ts';
import { agreementText, klText, pairText, verdictText } from '../lib/kv.ts';
import { buttonStyles, ErrorBox } from './ui.tsx';

export interface QualityMeterProps {
  readonly quality: KvQuality | null;
  /** The model `quality` was measured on. */
  readonly qualityPath: string | null;
  readonly pending: boolean;
  readonly error: HearthError | null;
  /** The loaded model, or null when none is ready (the meter needs one). */
  readonly loadedPath: string | null;
  /** The loaded context's pair, when the host reports it. */
  readonly loadedPair: { readonly k: KvCacheType; readonly v: KvCacheType } | null;
  readonly onMeasure: (fresh: boolean) => void;
  /** For tests: "now" for the measured-at time. */
  readonly now?: number;
}

/** "Lossy disk encoding: KL 0.0012 vs lossless, top-1 99.2%", or null when it was not measured. */
export function lossyText(q: KvQuality): string | null {
  if (!q.lossy) return null;
  return `Lossy disk encoding: KL ${klText(q.lossy.klVsLossless)} vs lossless, top-1 ${agreementText(q.lossy.top1Agreement)}`;
}

/**
 * Whether `q` is the reference pair rather than a measurement. A result cached before the engine
 * said `reference` has only the pair to go by; f16/f16 against f16 is the reference either way.
 */
export function isReference(q: KvQuality): boolean {
  return q.reference === true || (q.kType === 'f16' && q.vType === 'f16');
}

/** The reference's line in place of figures. */
export const referenceText = 'f16 / f16 is the reference the meter compares other pairs against: nothing to measure.';

/** "Near-lossless: q8_0 / q8_0 against f16" and the figures, as one sentence for the tests and screen readers. */
export function qualitySummary(q: KvQuality): string {
  const lossy = lossyText(q);
  if (isReference(q)) return `${referenceText}${lossy ? ` ${lossy}.` : ''}`;
  return `${verdictText[q.verdict]}: ${pairText(q.kType, q.vType)} against f16, KL divergence ${klText(q.klDivergence)}, top-1 agreement ${agreementText(q.top1Agreement)}.${lossy ? ` ${lossy}.` : ''}`;
}

const verdictTone: Readonly<Record<KvQuality['verdict'], string>> = {
  'near-lossless': 'text-green-700 dark:text-green-400',
  small: 'text-amber-800 dark:text-amber-300',
  noticeable: 'text-red-700 dark:text-red-400',
};

export function QualityMeter(props: QualityMeterProps) {
  const { loadedPath, loadedPair, pending } = props;
  const quality = props.quality && props.qualityPath !== null && props.qualityPath === loadedPath ? props.quality : null;
  const stale = quality !== null && loadedPair !== null && (quality.kType !== loadedPair.k || quality.vType !== loadedPair.v);
  const lossy = quality ? lossyText(quality) : null;
  const reference = quality !== null && isReference(quality);

  return (
    <section aria-labelledby="kv-quality-heading" aria-busy={pending || undefined} className="space-y-2">
      <h3 id="kv-quality-heading" className="text-sm font-semibold">
        Quality meter
      </h3>
      <p className="text-xs text-stone-500 dark:text-stone-400">
        How far the loaded K/V pair moves the model&apos;s next-token predictions from f16, over a short calibration text. It takes a few seconds.
      </p>
      {loadedPath === null && <p className="text-sm text-stone-600 dark:text-stone-300">Load the model to measure its quality.</p>}
      {quality && reference && (
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-0.5 text-sm">
          <dt className="text-stone-500">Pair</dt>
          <dd className="font-mono">{pairText(quality.kType, quality.vType)}, the reference</dd>
          <dt className="text-stone-500">Quality</dt>
          <dd>Not measured: this is the pair the others are measured against.</dd>
          {quality.lossy && (
            <>
              <dt className="text-stone-500">Measured</dt>
              <dd>
                {formatTime(quality.measuredAt, props.now)}, the lossy disk encoding over {quality.lossy.positions.toLocaleString('en-US')} positions
              </dd>
            </>
          )}
        </dl>
      )}
      {quality && !reference && (
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-0.5 text-sm">
          <dt className="text-stone-500">Pair</dt>
          <dd className="font-mono">{pairText(quality.kType, quality.vType)} against f16</dd>
          <dt className="text-stone-500">KL divergence</dt>
          <dd className="tabular-nums">{klText(quality.klDivergence)}</dd>
          <dt className="text-stone-500">Top-1 agreement</dt>
          <dd className="tabular-nums">{agreementText(quality.top1Agreement)}</dd>
          <dt className="text-stone-500">Verdict</dt>
          <dd className={`font-medium ${verdictTone[quality.verdict]}`}>{verdictText[quality.verdict]}</dd>
          <dt className="text-stone-500">Measured</dt>
          <dd>
            {formatTime(quality.measuredAt, props.now)}, over {quality.positions.toLocaleString('en-US')} positions
          </dd>
        </dl>
      )}
      {lossy && <p className="text-sm tabular-nums">{lossy}</p>}
      {stale && loadedPair && (
        <p className="text-xs text-amber-800 dark:text-amber-300">
          The model now uses {pairText(loadedPair.k, loadedPair.v)}: measure to see that pair.
        </p>
      )}
      <div className="flex flex-wrap items-center gap-2">
        <button type="button" disabled={pending || loadedPath === null} onClick={() => props.onMeasure(false)} className={buttonStyles.secondary}>
          Measure quality
        </button>
        {quality && !stale && (
          <button type="button" disabled={pending} onClick={() => props.onMeasure(true)} className={buttonStyles.ghost}>
            Measure again
          </button>
        )}
        <p role="status" className="text-sm">
          {pending ? 'Measuring quality… this takes a few seconds.' : quality ? <span className="sr-only">{qualitySummary(quality)}</span> : ''}
        </p>
      </div>
      {props.error && !pending && <ErrorBox error={props.error} alert title="The quality could not be measured." />}
    </section>
  );
}
