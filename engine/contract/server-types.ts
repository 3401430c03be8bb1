/**
 * The local API server as the renderer sees it (the Server screen): its settings, its state,
 * and the request log. The HTTP endpoints themselves are the OpenAI and Anthropic wire formats,
 * served by engine/host/api/; none of their shapes belong to this contract.
 */
import type { HearthError } from './errors.ts';

/**
 * The id the API knows a model by: its file name without `.gguf` (what `GET /v1/models` lists and
 * requests name). Either path separator, since the renderer gets the host's paths as text.
 */
export function apiModelId(file: string): string {
  return (file.split(/[\\/]/).pop() ?? '').replace(/\.gguf$/i, '');
}

/**
 * API requests' KV is filed under conversation ids with this prefix, where a chat's is under its
 * id (a UUID, which never starts so): slots, stored chats and turns name either.
 */
export const apiConversationPrefix = 'api-';

export function isApiConversation(chatId: string): boolean {
  return chatId.startsWith(apiConversationPrefix);
}

/** What the user sets on the Server screen (saved with the settings). */
export interface ApiServerSettings {
  /** Off by default: nothing listens until the user turns it on. */
  readonly enabled: boolean;
  /** 1..65535; the default is 4724. */
  readonly port: number;
  /** Listen on every interface (other machines on the network can call it), not only 127.0.0.1. */
  readonly lan: boolean;
  /** Origins that may call it from a web page (CORS); empty: none. */
  readonly corsOrigins: readonly string[];
}

/**
 * Where the server diverged from what the cache holds: the prompt shares a stored or resident
 * conversation's start, then differs at `atToken` (a timestamp or a changed header, say).
 */
export interface CacheMiss {
  /** The first differing token's index in the prompt: tokens before it are shared. */
  readonly atToken: number;
  /** The prompt's length in tokens. */
  readonly promptTokens: number;
  /** The length of the stored (or resident) conversation it was compared with. */
  readonly storedTokens: number;
  /** The shared text just before the difference (at most ~60 characters). */
  readonly before: string;
  /** What the prompt has from the difference on (at most ~60 characters). */
  readonly sent: string;
  /** What the stored conversation has there (at most ~60 characters). */
  readonly stored: string;
}

/** One request in the Server screen's live log. */
export interface ApiRequestLog {
  /** +1 per request since the host started. */
  readonly id: number;
  /** When the request arrived (epoch ms). */
  readonly at: number;
  /** The client, from its User-Agent (e.g. "OpenAI/JS 7.60.0"), or "unknown". */
  readonly client: string;
  /** e.g. "POST /v1/chat/completions". */
  readonly endpoint: string;
  readonly model: string | null;
  /** The HTTP status answered. */
  readonly status: number;
  readonly promptTokens: number | null;
  /** Prompt tokens reused from memory or restored from disk. */
  readonly cachedTokens: number | null;
  readonly ttftMs: number | null;
  readonly tokensPerSecond: number | null;
  /** Why it failed, for a 4xx or 5xx. */
  readonly error?: string;
  /** Why its prompt missed the cache, when it shares a stored conversation's start but diverges. */
  readonly cacheMiss?: CacheMiss;
}

export type ApiServerStatus = 'off' | 'listening' | 'error';

export interface ApiServerState {
  readonly settings: ApiServerSettings;
  readonly status: ApiServerStatus;
  /** The base URL clients use, e.g. `http://127.0.0.1:4724/v1`; null while off. */
  readonly url: string | null;
  /** The bearer key clients send (`Authorization: Bearer KEY` or `x-api-key: KEY`). */
  readonly key: string;
  /** Why it is not listening (port taken, …), when status is `error`. */
  readonly error: HearthError | null;
  /** Set from the command line for this run (`--api-port`): the screen says settings do not apply. */
  readonly overridden: boolean;
  /** The endpoints served, e.g. "POST /v1/chat/completions". */
  readonly endpoints: readonly string[];
  /** The most recent requests, oldest first (at most 200). */
  readonly requests: readonly ApiRequestLog[];
}
