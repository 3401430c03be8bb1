/**
 * The fault suite's ledger. Every injected fault is recorded with what came of it; the suite's
 * global teardown (summary.ts) prints the totals as one table and writes it where the README's
 * "Reliability" section copies it from. Records go to a JSON-lines file because the suite's
 * files run in separate worker processes.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from '../support/host.ts';

export const faultLedgerPath = join(repoRoot, 'test-results', 'faults', 'ledger.jsonl');
export const faultSummaryPath = join(repoRoot, 'test-results', 'faults', 'summary.md');

export interface FaultRecord {
  /** The suite section: "kill", "corruption", "database", "disk", "crash", "load". */
  readonly area: string;
  /** What was injected, e.g. "SIGKILL engine during save". */
  readonly fault: string;
  /**
   * What came of it, e.g. "restore exact", "clean fallback", "refused with a clear error". A
   * record whose outcome starts with "FAILED" is a failure (the test that wrote it fails too).
   */
  readonly outcome: string;
  /**
   * Messages (user messages, and replies the UI was told about) that Hearth had before the fault
   * and did not have, or had changed, afterwards: counted, never assumed.
   */
  readonly messagesLost: number;
  /**
   * Messages the injection itself destroyed (a database overwritten with garbage): no program
   * could keep them, so they are not Hearth's loss, but they are gone from the app and the ledger
   * says so rather than counting them as kept. `outcome` says what the user still has.
   */
  readonly messagesDestroyed?: number;
  /** Times the host process died without being killed by the test. */
  readonly hostCrashes: number;
  /** Optional detail for the log (a fallback reason, an error message). */
  readonly detail?: string;
}

/** Appends one record to the ledger. */
export function recordFault(record: FaultRecord): void {
  mkdirSync(dirname(faultLedgerPath), { recursive: true });
  appendFileSync(faultLedgerPath, JSON.stringify(record) + '\n');
}
