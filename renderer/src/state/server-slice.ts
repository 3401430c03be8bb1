import type { ApiRequestLog, ApiServerState, HearthError } from '../contract.ts';
import type { SliceCreator } from './types.ts';

/** The host keeps as many (ApiServerState.requests); more would only grow the page's memory. */
export const maxServerRequests = 200;

/** The server's state without its log: what a `server.state` event carries. */
export type ServerInfo = Omit<ApiServerState, 'requests'>;

/**
 * The local API server for the Server screen: its state as the host last told it, and the
 * request log, which the host sends once (`server.state`) and then one row at a time.
 */
export interface ServerSlice {
  /** null until `server.state` answered. */
  readonly server: ServerInfo | null;
  /** Oldest first, at most `maxServerRequests`. */
  readonly serverRequests: readonly ApiRequestLog[];
  /** The last `server.state` call failed. */
  readonly serverLoadError: HearthError | null;
  /** A call's answer: the state and the host's log, which replaces ours (it saw every request). */
  setServerState(state: ApiServerState): void;
  /** A `server.state` event: the log is not resent, so ours is kept. */
  applyServerState(info: ServerInfo): void;
  addServerRequest(row: ApiRequestLog): void;
  setServerLoadError(error: HearthError | null): void;
}

function bounded<T>(items: readonly T[]): readonly T[] {
  return items.length > maxServerRequests ? items.slice(items.length - maxServerRequests) : items;
}

export const createServerSlice: SliceCreator<ServerSlice> = (set) => ({
  server: null,
  serverRequests: [],
  serverLoadError: null,
  setServerState: ({ requests, ...info }) =>
    set((s) => {
      // Rows pushed while the call was answered are newer than the host's list: keep them.
      const newest = requests.at(-1)?.at ?? -Infinity;
      const later = s.serverRequests.filter((r) => r.at > newest && !requests.some((h) => h.id === r.id && h.at === r.at));
      return { server: info, serverRequests: bounded([...requests, ...later]), serverLoadError: null };
    }),
  applyServerState: (info) => set({ server: info }),
  addServerRequest: (row) =>
    set((s) => {
      // A row can arrive both live and in a state fetched meanwhile; ids restart with the host.
      if (s.serverRequests.some((r) => r.id === row.id && r.at === row.at)) return s;
      return { serverRequests: bounded([...s.serverRequests, row]) };
    }),
  setServerLoadError: (error) => set({ serverLoadError: error }),
});
