/**
 * The chat header's context meter: how much of the context the model's view fills, and how much
 * of the chat the disk store holds. The view comes from the newest reply's readout; the disk
 * figure from the chat's cache, which the header's cache badge keeps fresh.
 */
import { contextMeter, type ContextMeter as Meter } from '../lib/context-view.ts';
import { useHearth, useHearthShallow } from '../state/react.tsx';
import { selectChatCache, selectHasReplies, selectLatestView, selectLoadedModel } from '../state/selectors.ts';

export function ContextMeter({ chatId }: { chatId: string }) {
  const view = useHearth(selectLatestView(chatId));
  const cache = useHearthShallow(selectChatCache(chatId));
  const model = useHearth(selectLoadedModel);
  const hasReplies = useHearth(selectHasReplies(chatId));
  const meter = contextMeter({ view, cache, model, hasReplies });
  return meter ? <ContextMeterView meter={meter} /> : null;
}

/** The bar is an SVG (the page's CSP forbids inline styles; rect widths are attributes). */
export function ContextMeterView({ meter }: { meter: Meter }) {
  const whole = Math.max(1, meter.contextSize);
  const inView = Math.min(1, meter.tokens / whole) * 1000;
  // Drawn inside the view's part: the bar says how much of what the model sees is stored.
  const stored = meter.onDisk === null ? 0 : Math.min(meter.onDisk, meter.tokens, whole) / whole * 1000;
  return (
    <div
      role="meter"
      aria-label="Context"
      aria-valuemin={0}
      aria-valuemax={meter.contextSize}
      aria-valuenow={Math.min(meter.tokens, meter.contextSize)}
      aria-valuetext={meter.text}
      data-testid="context-meter"
      className="flex shrink-0 items-center gap-2 text-xs whitespace-nowrap text-stone-600 tabular-nums dark:text-stone-300"
    >
      <svg aria-hidden="true" viewBox="0 0 1000 10" preserveAspectRatio="none" className="h-1.5 w-16 overflow-hidden rounded-full">
        <rect x={0} y={0} width={1000} height={10} className="fill-stone-200 dark:fill-stone-700" />
        <rect x={0} y={0} width={inView} height={10} className="fill-amber-400 dark:fill-amber-600" />
        <rect x={0} y={0} width={stored} height={10} className="fill-sky-500 dark:fill-sky-400" />
      </svg>
      <span>{meter.text}</span>
    </div>
  );
}
