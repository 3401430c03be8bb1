/**
 * Hugging Face as the Models screen shows it: the last search, the repositories opened (their
 * files and the planner's verdicts, kept per repository for the session so that going back to
 * one is instant), and whether a token is stored. The token itself never reaches the page.
 */
import type { HearthError, HubAuthState, HubRepo, HubRepoSummary, HubSort, RepoFit } from '../contract.ts';
import type { SliceCreator } from './types.ts';

/** A value the page asked the host for: what it has, what went wrong, whether an answer is on its way. */
export interface Remote<T> {
  readonly value: T | null;
  readonly error: HearthError | null;
  readonly pending: boolean;
}

export const remoteIdle: Remote<never> = { value: null, error: null, pending: false };

/** The search the results belong to, and the results. */
export interface HubSearch {
  readonly query: string;
  readonly sort: HubSort;
  readonly repos: readonly HubRepoSummary[];
}

export interface HubSlice {
  /** What the search box holds; kept here so that coming back to Discover shows the same search. */
  readonly hubQuery: string;
  readonly hubSort: HubSort;
  readonly hubSearch: Remote<HubSearch>;
  /** By repository id. */
  readonly hubRepos: Readonly<Record<string, Remote<HubRepo>>>;
  /** By repository id: `hub.fit` reads every file's header, so it answers after `hub.repo`. */
  readonly hubFits: Readonly<Record<string, Remote<RepoFit>>>;
  /** null until `hub.auth` answered. */
  readonly hubAuth: HubAuthState | null;

  setHubQuery(query: string, sort: HubSort): void;
  setHubSearch(search: Remote<HubSearch>): void;
  setHubRepo(repo: string, entry: Remote<HubRepo>): void;
  setHubFit(repo: string, entry: Remote<RepoFit>): void;
  setHubAuth(auth: HubAuthState): void;
  /** A token was stored or forgotten: what was refused (or allowed) before may read otherwise now. */
  forgetHubRepos(): void;
}

export const createHubSlice: SliceCreator<HubSlice> = (set) => ({
  hubQuery: '',
  hubSort: 'downloads',
  hubSearch: remoteIdle,
  hubRepos: {},
  hubFits: {},
  hubAuth: null,
  setHubQuery: (hubQuery, hubSort) => set({ hubQuery, hubSort }),
  setHubSearch: (hubSearch) => set({ hubSearch }),
  setHubRepo: (repo, entry) => set((s) => ({ hubRepos: { ...s.hubRepos, [repo]: entry } })),
  setHubFit: (repo, entry) => set((s) => ({ hubFits: { ...s.hubFits, [repo]: entry } })),
  setHubAuth: (hubAuth) => set({ hubAuth }),
  forgetHubRepos: () => set({ hubRepos: {}, hubFits: {} }),
});
