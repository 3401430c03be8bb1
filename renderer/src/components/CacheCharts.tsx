/**
 * The Cache view's two charts, drawn by uPlot: the lightest chart library measured for this page
 * (+52 kB minified, 22 kB gzip, against +146 kB for visx and +334 kB for recharts), and one
 * that draws on a canvas with an imperative `setData`. Each chart is created once per mount, fed
 * at most once per animation frame, and destroyed on unmount, so a 4 Hz tick re-renders no React
 * component through it.
 */
import { useEffect, useRef, type RefObject } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { CacheSnapshot, CacheTurn, RemoteCacheSample } from '../contract.ts';
import { clockText, memorySeries, turnSeries } from '../lib/cache.ts';
import { remoteSeries } from '../lib/engines.ts';
import { formatBytes } from '../lib/format.ts';
import { measured } from '../lib/measure.ts';
import { cacheRingCapacity, remoteRingCapacity, type Ring } from '../lib/ring.ts';

/** Mid-tone colours that read on both the light and the dark theme (a canvas takes no CSS classes). */
export const chartColors = {
  weights: '#78716c',
  kvUsed: '#f59e0b',
  kvAllocated: '#b45309',
  restored: '#22c55e',
  prefilled: '#0ea5e9',
  ttft: '#a8a29e',
  hitRate: '#22c55e',
  axis: '#78716c',
  grid: 'rgba(120, 113, 108, 0.2)',
} as const;

const height = 160;
/** The ring's span: 240 ticks at 4 Hz. */
const windowSeconds = (cacheRingCapacity * 250) / 1000;

function axis(extra: uPlot.Axis = {}): uPlot.Axis {
  return { stroke: chartColors.axis, grid: { stroke: chartColors.grid, width: 1 }, ticks: { stroke: chartColors.grid, width: 1 }, ...extra };
}

const bytesAxis = axis({ size: 64, values: (_u, splits) => splits.map((v) => formatBytes(v)) });

function memoryOptions(width: number): uPlot.Options {
  return {
    width,
    height,
    // The legend is ours (a uPlot legend is a table, and the page's tables are its data).
    legend: { show: false },
    cursor: { show: false },
    // A window as long as the ring, sliding with the newest tick, so the time axis keeps its scale.
    scales: { x: { time: true, range: (_u, _min, max) => [max - windowSeconds, max] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [axis({ space: 80, values: (_u, splits) => splits.map((v) => clockText(v * 1000)) }), bytesAxis],
    series: [
      {},
      { label: 'KV in use', stroke: chartColors.kvUsed, fill: 'rgba(245, 158, 11, 0.15)', width: 1.5, points: { show: false } },
      { label: 'KV allocated', stroke: chartColors.kvAllocated, dash: [4, 3], width: 1.5, points: { show: false } },
      { label: 'Weights', stroke: chartColors.weights, width: 1.5, points: { show: false } },
    ],
  };
}

/** The remote ring's span: about one sample a second. */
const remoteWindowSeconds = remoteRingCapacity;

function remoteOptions(width: number): uPlot.Options {
  return {
    width,
    height,
    legend: { show: false },
    cursor: { show: false },
    // Shares from 0 to 100%, whatever the samples hold, so a rise reads as a rise.
    scales: { x: { time: true, range: (_u, _min, max) => [max - remoteWindowSeconds, max] }, y: { range: () => [0, 1] } },
    axes: [axis({ space: 80, values: (_u, splits) => splits.map((v) => clockText(v * 1000)) }), axis({ size: 48, values: (_u, splits) => splits.map((v) => `${Math.round(v * 100)}%`) })],
    series: [
      {},
      { label: 'KV usage', stroke: chartColors.kvUsed, fill: 'rgba(245, 158, 11, 0.15)', width: 1.5, points: { show: false } },
      { label: 'Prefix-cache hit rate', stroke: chartColors.hitRate, width: 1.5, points: { show: false } },
      // Null between lookups: points, so a lone interval still shows.
      { label: 'Recent hit rate', stroke: chartColors.prefilled, dash: [4, 3], width: 1, points: { show: true, size: 3 } },
    ],
  };
}

function turnsOptions(width: number): uPlot.Options {
  const bars = uPlot.paths.bars?.({ size: [0.7, 32] });
  return {
    width,
    height,
    legend: { show: false },
    cursor: { show: false },
    // Half a turn of room at each end, so the first and last bars are not cut in half.
    scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] }, ms: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      axis({ values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')) }),
      axis({ size: 56, values: (_u, splits) => splits.map((v) => v.toLocaleString('en-US')) }),
      axis({ scale: 'ms', side: 1, size: 56, grid: { show: false }, values: (_u, splits) => splits.map((v) => `${v} ms`) }),
    ],
    // Drawn in order, each bar over the one before: all prompt tokens (the prefilled top), then
    // reused + restored, then reused, so the three read as one stacked bar.
    series: [
      {},
      { label: 'Prefilled', fill: chartColors.prefilled, stroke: chartColors.prefilled, paths: bars, points: { show: false } },
      { label: 'Restored', fill: chartColors.restored, stroke: chartColors.restored, paths: bars, points: { show: false } },
      { label: 'Reused', fill: chartColors.kvUsed, stroke: chartColors.kvUsed, paths: bars, points: { show: false } },
      { label: 'TTFT', scale: 'ms', stroke: chartColors.ttft, width: 1.5, points: { show: true, size: 4 } },
    ],
  };
}

/** Creates the chart on mount, keeps its width with the container's, destroys it on unmount. */
function usePlot(options: (width: number) => uPlot.Options, data: () => uPlot.AlignedData, subscribe: (redraw: () => void) => () => void) {
  const ref = useRef<HTMLDivElement>(null);
  const latest = useRef({ options, data, subscribe });
  useEffect(() => {
    latest.current = { options, data, subscribe };
  });
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const { options: makeOptions, data: read, subscribe: listen } = latest.current;
    const plot = new uPlot(makeOptions(el.clientWidth || 600), read(), el);
    let frame = 0;
    const draw = () => {
      frame = 0;
      measured('hearth:cache:chart', () => plot.setData(latest.current.data()));
    };
    const off = listen(() => {
      if (frame === 0) frame = requestAnimationFrame(draw);
    });
    let width = el.clientWidth;
    const resize = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(() => {
      if (el.clientWidth > 0 && el.clientWidth !== width) {
        width = el.clientWidth;
        plot.setSize({ width, height });
      }
    });
    resize?.observe(el);
    return () => {
      off();
      if (frame !== 0) cancelAnimationFrame(frame);
      resize?.disconnect();
      plot.destroy();
    };
  }, []);
  return ref;
}

const asData = (columns: readonly (readonly (number | null)[])[]) => columns as unknown as uPlot.AlignedData;

/** KV in use, KV allocated and the weights over the ring's last minute. */
export function MemoryChart({ ring }: { ring: Ring<CacheSnapshot> }) {
  const ref = usePlot(memoryOptions, () => asData(memorySeries(ring)), (redraw) => ring.subscribe(redraw));
  return (
    <ChartFigure
      plotRef={ref}
      label="Memory over the last minute: KV in use, KV allocated and weights"
      legend={[
        ['bg-amber-500', 'KV in use'],
        ['border-t-2 border-dashed border-amber-700 bg-transparent', 'KV allocated'],
        ['bg-stone-500', 'Weights'],
      ]}
    />
  );
}

/** A remote engine's KV usage and prefix-cache hit rates over the last minutes, from its ring. */
export function RemoteCacheChart({ ring }: { ring: Ring<RemoteCacheSample> }) {
  const ref = usePlot(remoteOptions, () => asData(remoteSeries(ring)), (redraw) => ring.subscribe(redraw));
  return (
    <ChartFigure
      plotRef={ref}
      label="KV usage and prefix-cache hit rate over the last minutes"
      legend={[
        ['bg-amber-500', 'KV usage'],
        ['bg-green-500', 'Prefix-cache hit rate (since start)'],
        ['border-t-2 border-dashed border-sky-500 bg-transparent', 'Hit rate (recent)'],
      ]}
    />
  );
}

/** Reused, restored and prefilled prompt tokens per turn (stacked), with the time to first token. */
export function TurnsChart({ turns }: { turns: readonly CacheTurn[] }) {
  const listeners = useRef(new Set<() => void>());
  const ref = usePlot(turnsOptions, () => asData(turnSeries(turns)), (redraw) => {
    listeners.current.add(redraw);
    return () => listeners.current.delete(redraw);
  });
  // Turns arrive seldom (one per reply): each new list schedules one redraw.
  useEffect(() => {
    for (const redraw of listeners.current) redraw();
  }, [turns]);
  return (
    <ChartFigure
      plotRef={ref}
      label="Prompt tokens per turn (reused, restored, prefilled) and time to first token"
      legend={[
        ['bg-amber-500', 'Reused'],
        ['bg-green-500', 'Restored'],
        ['bg-sky-500', 'Prefilled'],
        ['bg-stone-400', 'Time to first token (right axis)'],
      ]}
    />
  );
}

/** A chart with its legend: each line's colour class and name. */
function ChartFigure({ plotRef, label, legend }: { plotRef: RefObject<HTMLDivElement | null>; label: string; legend: readonly (readonly [color: string, name: string])[] }) {
  return (
    <figure className="space-y-1">
      <div ref={plotRef} role="img" aria-label={label} className="w-full overflow-hidden" />
      <figcaption className="flex flex-wrap gap-x-4 text-xs text-stone-600 dark:text-stone-300">
        {legend.map(([color, name]) => (
          <LegendLine key={name} color={color} label={name} />
        ))}
      </figcaption>
    </figure>
  );
}

function LegendLine({ color, label }: { color: string; label: string }) {
  return (
    <span className="inline-flex items-center gap-1.5">
      <span aria-hidden="true" className={`inline-block h-0.5 w-3 ${color}`} />
      {label}
    </span>
  );
}
