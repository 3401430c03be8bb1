/**
 * "Check the cache" in the Cache view's disk store: reads every stored chunk and checks the
 * index (`kv.verify`). When something is wrong it offers Repair, which drops only the damaged
 * cache (chats whose KV is dropped re-read their history once); conversations are never touched.
 */
import { useState } from 'react';
import type { HearthError, KvVerifyReport } from '../contract.ts';
import { useActions } from '../state/react.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

/** Each finding's name, singular and plural. */
const countLabels: ReadonlyArray<readonly [keyof KvVerifyReport, string, string]> = [
  ['missingChunks', 'missing chunk file', 'missing chunk files'],
  ['corruptChunks', 'damaged chunk file', 'damaged chunk files'],
  ['knownCorruptChunks', 'chunk found damaged at a restore', 'chunks found damaged at a restore'],
  ['danglingReferences', 'reference to an unknown chunk', 'references to unknown chunks'],
  ['inconsistentManifests', 'inconsistent chat entry', 'inconsistent chat entries'],
  ['corruptTails', 'damaged partial chunk', 'damaged partial chunks'],
  ['refcountMismatches', 'wrong reference count', 'wrong reference counts'],
  ['orphanFiles', 'unknown chunk file', 'unknown chunk files'],
  ['tempFiles', 'leftover of an interrupted write', 'leftovers of interrupted writes'],
];

/** One sentence for a report: what was checked, and what was found or fixed. */
export function verifyText(report: KvVerifyReport): string {
  if (!report.checked) return 'Nothing to check: chat caches are not kept on disk.';
  const checked = `Checked ${report.chunksVerified.toLocaleString('en-US')} chunks in ${report.ms.toLocaleString('en-US')} ms`;
  const found = countLabels.flatMap(([key, one, many]) => {
    const n = report[key];
    return typeof n === 'number' && n > 0 ? [`${n.toLocaleString('en-US')} ${n === 1 ? one : many}`] : [];
  });
  if (report.ok) return `${checked}: everything is intact.`;
  if (report.repaired) return `${checked}: repaired ${found.join(', ')}. The chats affected re-read their history once.`;
  return `${checked}: found ${found.join(', ')}.`;
}

export function CacheCheck() {
  const actions = useActions();
  const [busy, setBusy] = useState(false);
  const [report, setReport] = useState<KvVerifyReport | null>(null);
  const [error, setError] = useState<HearthError | null>(null);
  const run = async (repair: boolean) => {
    setBusy(true);
    setError(null);
    const result = await actions.verifyCache(repair);
    setBusy(false);
    if (result.ok) setReport(result.value);
    else setError(result.error);
  };
  return (
    <div className="space-y-2">
      <div className="flex flex-wrap items-center gap-2">
        <button type="button" className={buttonStyles.secondary} disabled={busy} onClick={() => void run(false)}>
          {busy ? 'Checking…' : 'Check the cache'}
        </button>
        {report && report.checked && !report.ok && !report.repaired && (
          <button type="button" className={buttonStyles.secondary} disabled={busy} onClick={() => void run(true)}>
            Repair
          </button>
        )}
      </div>
      <p role="status" className="text-sm">
        {report ? verifyText(report) : ''}
      </p>
      {error && <ErrorBox error={error} title="The cache could not be checked." />}
    </div>
  );
}
