/**
 * The fault suite's global setup and teardown (vitest `globalSetup`): the ledger starts empty,
 * and at the end the records are printed as one table (also written to
 * test-results/faults/summary.md, which the README's "Reliability" section quotes).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { faultLedgerPath, faultSummaryPath, type FaultRecord } from './record.ts';

/** Reads the ledger written by the suite's files. */
export function readLedger(path = faultLedgerPath): FaultRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as FaultRecord);
}

/** The ledger as a Markdown table: one row per area and fault, outcomes counted, then totals. */
export function summarize(records: readonly FaultRecord[], seconds: number): string {
  const rows = new Map<string, { area: string; fault: string; injected: number; outcomes: Map<string, number>; lost: number; destroyed: number; crashes: number }>();
  for (const r of records) {
    const key = `${r.area}\u0000${r.fault}`;
    let row = rows.get(key);
    if (!row) {
      row = { area: r.area, fault: r.fault, injected: 0, outcomes: new Map(), lost: 0, destroyed: 0, crashes: 0 };
      rows.set(key, row);
    }
    row.injected++;
    row.outcomes.set(r.outcome, (row.outcomes.get(r.outcome) ?? 0) + 1);
    row.lost += r.messagesLost;
    row.destroyed += r.messagesDestroyed ?? 0;
    row.crashes += r.hostCrashes;
  }
  const lines = ['| area | fault | injected | outcomes | messages lost | host crashes |', '|---|---|---:|---|---:|---:|'];
  for (const row of rows.values()) {
    const outcomes = [...row.outcomes].map(([outcome, n]) => `${outcome} ×${n}`).join('; ');
    const lost = row.destroyed > 0 ? `${row.lost}; ${row.destroyed} destroyed by the fault itself` : `${row.lost}`;
    lines.push(`| ${row.area} | ${row.fault} | ${row.injected} | ${outcomes} | ${lost} | ${row.crashes} |`);
  }
  const failed = records.filter((r) => r.outcome.startsWith('FAILED')).length;
  const lost = records.reduce((n, r) => n + r.messagesLost, 0);
  const crashes = records.reduce((n, r) => n + r.hostCrashes, 0);
  lines.push(`| **total** | | **${records.length}** | ${failed} failed | **${lost}** | **${crashes}** |`);
  const destroyed = records.reduce((n, r) => n + (r.messagesDestroyed ?? 0), 0);
  const gone = destroyed > 0 ? ` Messages destroyed by the injected fault itself (gone from the app; see those rows' outcomes): ${destroyed}.` : '';
  lines.push('', `Faults injected: ${records.length}. Failed outcomes: ${failed}. Messages lost: ${lost}.${gone} Host crashes: ${crashes}. Suite time: ${Math.round(seconds)} s.`);
  return lines.join('\n');
}

let started = 0;

export function setup(): void {
  started = performance.now();
  rmSync(faultLedgerPath, { force: true });
}

export function teardown(): void {
  const text = summarize(readLedger(), (performance.now() - started) / 1000);
  mkdirSync(dirname(faultSummaryPath), { recursive: true });
  writeFileSync(faultSummaryPath, text + '\n');
  process.stdout.write(`\nFault suite summary (${faultSummaryPath}):\n\n${text}\n\n`);
}
