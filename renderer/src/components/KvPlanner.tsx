/**
 * The planner beside the model's settings, so the memory each choice needs shows before Apply: for
 * each K/V pair its bytes per token, KV and total memory at the context being typed, the longest
 * context that fits, and whether it fits, on the device the host reports.
 */
import { useState } from 'react';
import type { HearthError, KvCacheType, KvPlan, KvPlanRow } from '../contract.ts';
import { formatBytes } from '../lib/format.ts';
import { chosenLine, deviceLine, findRow, fitText, longestText, maxContextText, pairText, planContextText } from '../lib/kv.ts';
import { buttonStyles, ErrorBox } from './ui.tsx';

type Pair = { readonly kType: KvCacheType; readonly vType: KvCacheType };

const same = (a: Pair | null, r: KvPlanRow) => a !== null && a.kType === r.kType && a.vType === r.vType;

/**
 * The rows shown before "Show all": each K with an f16 V and each type for both (the pairs
 * people pick: quantize V first, then both), plus the chosen pair and the auto pick wherever
 * they are. All of the plan's rows when `all`.
 */
/** The planner tables' header row: the pair and "Fits" read left, figures right. */
function PlanTableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr className="border-b border-stone-300 dark:border-stone-600">
        {columns.map((title, i) => (
          <th key={title} scope="col" className={i === 0 || title === 'Fits' ? 'px-2 py-1 text-left' : 'px-2 py-1 text-right'}>
            {title}
          </th>
        ))}
      </tr>
    </thead>
  );
}

export function shownRows(plan: KvPlan, chosen: Pair | null, all: boolean): KvPlanRow[] {
  if (all) return [...plan.rows];
  return plan.rows.filter((r) => r.kType === 'f16' || r.kType === r.vType || same(chosen, r) || same(plan.auto, r));
}

const summaryPairs: readonly Pair[] = [
  { kType: 'f16', vType: 'f16' },
  { kType: 'q8_0', vType: 'q8_0' },
  { kType: 'q4_0', vType: 'q4_0' },
];

/**
 * The rows of the compact plan (the Models screen): full precision, the two common quantized
 * pairs, and the auto pick when it is none of them; each once, in that order.
 */
export function summaryRows(plan: KvPlan): KvPlanRow[] {
  const rows = summaryPairs.map((p) => findRow(plan, p)).filter((r) => r !== undefined);
  const auto = findRow(plan, plan.auto);
  if (auto && !rows.includes(auto)) rows.push(auto);
  return rows;
}

export interface KvPlannerProps {
  readonly plan: KvPlan | null;
  readonly pending: boolean;
  readonly error: HearthError | null;
  /** The pair the form stands for here (see lib/kv.ts chosenPair); null when auto finds none. */
  readonly chosen: Pair | null;
  /** Both K and V are on auto: the chosen pair is the planner's pick. */
  readonly auto: boolean;
}

const cell = 'px-2 py-1 text-right tabular-nums';

export function KvPlanner(props: KvPlannerProps) {
  const { plan, chosen } = props;
  const [all, setAll] = useState(false);
  const rows = plan ? shownRows(plan, chosen, all) : [];
  const gpu = plan !== null && plan.device.vramTotalBytes !== null;

  return (
    <section aria-labelledby="kv-planner-heading" aria-busy={props.pending || undefined} className="space-y-2">
      <h3 id="kv-planner-heading" className="text-sm font-semibold">
        Memory planner
      </h3>
      <p className="text-xs text-stone-500 dark:text-stone-400">What each K/V pair needs on this machine, worked out from the model file before anything is loaded.</p>
      {plan && <p className="text-sm">Device: {deviceLine(plan.device)}</p>}
      <p id="kv-planner-chosen" aria-live="polite" className="text-sm font-medium">
        {plan ? chosenLine(plan, findRow(plan, chosen), props.auto) : props.pending ? 'Planning…' : ''}
      </p>
      {props.pending && plan && <p className="text-xs text-stone-500 dark:text-stone-400">Updating the plan…</p>}
      {props.error && <ErrorBox error={props.error} title="The planner could not run." />}
      {plan && (
        <div className="overflow-x-auto">
          <table className="w-full border-collapse text-xs">
            <caption className="mb-1 text-left text-xs text-stone-600 dark:text-stone-300">
              Memory per K/V pair at {planContextText(plan)} (weights {formatBytes(plan.weightsBytes)})
            </caption>
            <PlanTableHead columns={['K / V', 'Bytes per token', 'KV memory', 'Total memory', 'Longest context, full GPU', gpu ? 'Longest context, partial offload' : 'Longest context in RAM', 'Fits']} />
            <tbody>
              {rows.map((row) => {
                const isChosen = same(chosen, row);
                const isAuto = same(plan.auto, row);
                const tone = isChosen ? 'bg-amber-100 font-semibold dark:bg-amber-950' : isAuto ? 'bg-stone-100 dark:bg-stone-800' : '';
                return (
                  <tr key={`${row.kType}/${row.vType}`} aria-current={isChosen ? 'true' : undefined} className={`border-b border-stone-200 dark:border-stone-800 ${tone}`}>
                    <th scope="row" className="whitespace-nowrap px-2 py-1 text-left font-mono font-normal">
                      {pairText(row.kType, row.vType)}
                      {isChosen && <span className="ml-1 font-sans text-amber-800 dark:text-amber-300">(chosen)</span>}
                      {isAuto && <span className="ml-1 font-sans text-stone-600 dark:text-stone-300">(auto pick)</span>}
                    </th>
                    <td className={cell}>{row.kvBytesPerToken.toLocaleString('en-US')}</td>
                    <td className={cell}>{formatBytes(row.kvBytes)}</td>
                    <td className={cell}>{formatBytes(row.totalBytes)}</td>
                    <td className={cell}>{maxContextText(row.maxContextFullGpu)}</td>
                    <td className={cell}>{maxContextText(row.maxContextPartial)}</td>
                    <td className={`px-2 py-1 ${row.fits && !row.refused ? '' : 'text-red-700 dark:text-red-400'}`}>{fitText(row)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {plan.rows.length > rows.length || all ? (
            <button type="button" onClick={() => setAll(!all)} aria-expanded={all} className={`${buttonStyles.ghost} mt-1`}>
              {all ? 'Show the usual pairs' : `Show all ${plan.rows.length} pairs`}
            </button>
          ) : null}
        </div>
      )}
    </section>
  );
}

/**
 * The planner at a glance, for a model not loaded yet (the Models screen): the device, what auto
 * picks at the default context, and a few pairs' figures. The full table is in Settings.
 */
export function KvPlanSummary({ plan }: { readonly plan: KvPlan }) {
  const rows = summaryRows(plan);
  const gpu = plan.device.vramTotalBytes !== null;
  return (
    <div className="space-y-1 text-xs">
      <p>Device: {deviceLine(plan.device)}</p>
      <p className="text-sm font-medium">{chosenLine(plan, findRow(plan, plan.auto), true)}</p>
      <div className="overflow-x-auto">
        <table className="w-full border-collapse">
          <caption className="mb-1 text-left text-stone-600 dark:text-stone-300">
            Memory at {planContextText(plan)} (weights {formatBytes(plan.weightsBytes)})
          </caption>
          <PlanTableHead columns={['K / V', 'Bytes per token', 'KV memory', 'Total memory', gpu ? 'Longest context' : 'Longest context in RAM']} />
          <tbody>
            {rows.map((row) => {
              const isAuto = same(plan.auto, row);
              return (
                <tr key={`${row.kType}/${row.vType}`} className={`border-b border-stone-200 dark:border-stone-800 ${isAuto ? 'bg-stone-100 dark:bg-stone-800' : ''}`}>
                  <th scope="row" className="whitespace-nowrap px-2 py-1 text-left font-mono font-normal">
                    {pairText(row.kType, row.vType)}
                    {isAuto && <span className="ml-1 font-sans text-stone-600 dark:text-stone-300">(auto pick)</span>}
                  </th>
                  <td className={cell}>{row.kvBytesPerToken.toLocaleString('en-US')}</td>
                  <td className={cell}>{formatBytes(row.kvBytes)}</td>
                  <td className={cell}>{formatBytes(row.totalBytes)}</td>
                  <td className={`${cell} ${row.refused ? 'text-red-700 dark:text-red-400' : ''}`}>{longestText(row, plan.device)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
