/**
 * Why a prompt missed the cache: where it parted from a cached conversation, and the text on
 * each side of that point. Shown in the Server screen's request log and the Cache view's turns.
 * The texts are whatever a client sent, so they are only ever text: never HTML, never Markdown.
 */
import type { CacheMiss } from '../contract.ts';
import { formatCount } from '../lib/format.ts';

export function divergenceText(miss: CacheMiss): string {
  return `The prompt diverged from a cached conversation at token ${formatCount(miss.atToken)} of ${formatCount(miss.promptTokens)} (${formatCount(miss.storedTokens)} cached).`;
}

const marks: Readonly<Record<string, string>> = { ' ': '·', '\t': '→', '\n': '↵', '\r': '␍' };

/**
 * The text with its whitespace drawn (· space, → tab, ↵ line break): a difference of a space
 * or a line ending is the usual culprit, and would be invisible otherwise.
 */
export function VisibleText({ text }: { text: string }) {
  const parts = text.split(/([ \t\r\n])/);
  return (
    <>
      {parts.map((part, i) => {
        const mark = marks[part];
        if (mark === undefined) return part;
        return (
          <span key={i} className="text-stone-400 dark:text-stone-500">
            {mark}
            {part === '\n' ? '\n' : ''}
          </span>
        );
      })}
    </>
  );
}

const pre = 'mt-1 overflow-x-auto rounded bg-stone-100 px-2 py-1 font-mono text-xs whitespace-pre-wrap break-all dark:bg-stone-900';

/** The explanation, folded behind a "cache miss" marker. */
export function CacheMissDetails({ miss, testId }: { miss: CacheMiss; testId?: string }) {
  return (
    <details data-testid={testId} className="text-sm">
      <summary className="cursor-pointer rounded text-amber-800 select-none dark:text-amber-300">cache miss</summary>
      <div className="mt-1 space-y-2">
        <p>{divergenceText(miss)}</p>
        {miss.before !== '' && (
          <div>
            <p className="text-xs text-stone-500 dark:text-stone-400">Shared text before the difference</p>
            <pre className={pre}>
              …<VisibleText text={miss.before} />
            </pre>
          </div>
        )}
        <div className="grid gap-2 sm:grid-cols-2">
          <figure>
            <figcaption className="text-xs text-stone-500 dark:text-stone-400">Sent</figcaption>
            <pre className={pre} data-testid="cache-miss-sent">
              {miss.sent === '' ? <i>(the prompt ends here)</i> : <VisibleText text={miss.sent} />}
            </pre>
          </figure>
          <figure>
            <figcaption className="text-xs text-stone-500 dark:text-stone-400">Cached</figcaption>
            <pre className={pre} data-testid="cache-miss-cached">
              {miss.stored === '' ? <i>(the cached conversation ends here)</i> : <VisibleText text={miss.stored} />}
            </pre>
          </figure>
        </div>
        <p className="text-xs text-stone-500 dark:text-stone-400">· a space, → a tab, ↵ a line break.</p>
      </div>
    </details>
  );
}
