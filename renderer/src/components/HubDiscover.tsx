/**
 * The Models screen's Discover tab: Hugging Face's GGUF repositories, searched as the user types
 * (debounced; Enter searches at once) in the chosen order. A result opens its repository page.
 */
import { useEffect, useState } from 'react';
import type { HubRepoSummary, HubSort } from '../contract.ts';
import { routeHash } from '../lib/route.ts';
import { compactCount, relativeTime } from '../lib/models.ts';
import type { HubSearch, Remote } from '../state/hub-slice.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectHubQuery, selectHubSearch, selectHubSort } from '../state/selectors.ts';
import { HubTokenSection } from './HubAuth.tsx';
import { AccessBadges, Badge } from './ModelBits.tsx';
import { buttonStyles, ErrorBox, inputStyles } from './ui.tsx';

/** How long typing must pause before a search goes out. */
export const searchDebounceMs = 400;

export const sortLabels: Readonly<Record<HubSort, string>> = {
  downloads: 'Most downloaded',
  recent: 'Recently updated',
  likes: 'Most liked',
};

export function HubDiscover() {
  const actions = useActions();
  const storedQuery = useHearth(selectHubQuery);
  const sort = useHearth(selectHubSort);
  const search = useHearth(selectHubSearch);
  const [query, setQuery] = useState(storedQuery);

  // Typing searches once it pauses; an unchanged search (coming back to the tab) is not repeated.
  useEffect(() => {
    const shown = search.value;
    if (shown && shown.query === query.trim() && shown.sort === sort) return;
    if (search.pending && storedQuery === query.trim()) return;
    const timer = setTimeout(() => void actions.searchHub(query.trim(), sort), shown === null && !search.pending ? 0 : searchDebounceMs);
    return () => clearTimeout(timer);
    // Only the inputs start a search; the answer arriving must not start another.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query, sort, actions]);

  return (
    <div className="space-y-4">
      <form
        role="search"
        aria-label="Hugging Face"
        onSubmit={(e) => {
          e.preventDefault();
          void actions.searchHub(query.trim(), sort);
        }}
        className="flex flex-wrap items-end gap-2"
      >
        <div className="min-w-48 flex-1">
          <label htmlFor="hub-query" className="mb-1 block text-sm font-medium">
            Search Hugging Face
          </label>
          <input
            id="hub-query"
            type="search"
            value={query}
            maxLength={200}
            onChange={(e) => setQuery(e.target.value)}
            placeholder="e.g. qwen, llama 3.1 8b, gemma"
            spellCheck={false}
            autoComplete="off"
            className={inputStyles}
          />
        </div>
        <div>
          <label htmlFor="hub-sort" className="mb-1 block text-sm font-medium">
            Sort
          </label>
          <select
            id="hub-sort"
            value={sort}
            onChange={(e) => void actions.searchHub(query.trim(), e.target.value as HubSort)}
            className={`${inputStyles} w-auto`}
          >
            {(Object.keys(sortLabels) as HubSort[]).map((key) => (
              <option key={key} value={key}>
                {sortLabels[key]}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" className={buttonStyles.primary}>
          Search
        </button>
      </form>
      <SearchResults search={search} onRetry={() => void actions.searchHub(query.trim(), sort)} />
      <HubTokenSection />
    </div>
  );
}

const muted = 'text-sm text-stone-500 dark:text-stone-400';

/** The results, or why there are none. Old results stay (dimmed) while a new search runs, so nothing jumps. */
export function SearchResults(props: { search: Remote<HubSearch>; onRetry: () => void; now?: number }) {
  const { search } = props;
  const repos = search.value?.repos ?? null;
  return (
    <section aria-labelledby="hub-results-heading" aria-busy={search.pending || undefined} className="space-y-2">
      <h2 id="hub-results-heading" className="sr-only">
        Results
      </h2>
      {search.error && (
        <ErrorBox error={search.error} alert title="Hugging Face could not be searched.">
          <button type="button" onClick={props.onRetry} className={`${buttonStyles.secondary} mt-3`}>
            Try again
          </button>
        </ErrorBox>
      )}
      {repos === null ? (
        !search.error && <p className={muted}>Searching…</p>
      ) : repos.length === 0 ? (
        <p className={muted}>{search.value?.query ? `No GGUF repositories match “${search.value.query}”.` : 'No GGUF repositories found.'}</p>
      ) : (
        <ul data-testid="hub-results" className={`divide-y divide-stone-200 rounded-lg border border-stone-200 transition-opacity dark:divide-stone-800 dark:border-stone-800 ${search.pending ? 'opacity-60' : ''}`}>
          {repos.map((repo) => (
            <ResultRow key={repo.id} repo={repo} now={props.now} />
          ))}
        </ul>
      )}
    </section>
  );
}

function ResultRow(props: { repo: HubRepoSummary; now?: number }) {
  const { repo } = props;
  return (
    <li>
      <a href={routeHash({ name: 'models', tab: 'repo', repo: repo.id })} className="block px-3 py-2.5 hover:bg-stone-100 focus-visible:bg-stone-100 dark:hover:bg-stone-800 dark:focus-visible:bg-stone-800">
        <span className="flex flex-wrap items-center gap-2">
          <span className="font-medium break-all">{repo.id}</span>
          <AccessBadges repo={repo} />
        </span>
        <span className="mt-0.5 flex flex-wrap gap-x-3 text-xs text-stone-500 tabular-nums dark:text-stone-400">
          <span>{compactCount(repo.downloads)} downloads</span>
          <span>{compactCount(repo.likes)} likes</span>
          <span>updated {relativeTime(repo.lastModified, props.now)}</span>
          {repo.license ? <span>{repo.license}</span> : <Badge>no licence given</Badge>}
        </span>
      </a>
    </li>
  );
}
