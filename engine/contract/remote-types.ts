/**
 * Remote engines: OpenAI-compatible servers on other machines (llama-server, vLLM, SGLang, or
 * anything that speaks the API) that a chat can run on instead of this computer's engine. Hearth
 * keeps the chat itself (history, branches, exports, search) in its own database; the server
 * only generates. Their KV cache is the server's: the Cache view reads it from `/metrics`.
 */
import type { HearthError } from './errors.ts';

/** Which server software an engine runs: decides which `/metrics` names are read. */
export const remoteEngineKinds = ['llama-server', 'vllm', 'sglang', 'openai-compatible'] as const;
export type RemoteEngineKind = (typeof remoteEngineKinds)[number];

/** What a user calls each kind. */
export const remoteEngineKindNames: Readonly<Record<RemoteEngineKind, string>> = {
  'llama-server': 'llama-server',
  vllm: 'vLLM',
  sglang: 'SGLang',
  'openai-compatible': 'OpenAI-compatible',
};

/** A model a remote engine serves, from its `/v1/models`. */
export interface RemoteModel {
  /** The id requests name it by. */
  readonly id: string;
  /** The longest context the server runs it with, when it says (vLLM `max_model_len`, llama-server `meta.n_ctx_train`). */
  readonly contextLength?: number;
}

/** The last time Hearth asked an engine what it serves. */
export interface RemoteEngineStatus {
  /** `unknown`: not checked since start; `online`: its model list answered; `error`: see `error`. */
  readonly state: 'unknown' | 'online' | 'error';
  /** When it was checked (epoch ms); null before the first check. */
  readonly checkedAt: number | null;
  /** Why the check failed (state `error`): unreachable, wrong key, TLS, an unexpected answer. */
  readonly error?: HearthError;
  /** Its models, as of the last check that answered (kept through a failed one). */
  readonly models: readonly RemoteModel[];
  /** Whether its `/metrics` answered at the last check (the Cache view's figures need it). */
  readonly metrics: boolean;
}

/** A remote engine as the user added it. The API key never crosses the contract back. */
export interface RemoteEngine {
  /** Opaque (`idSchema`). */
  readonly id: string;
  /** The user's name for it, shown beside its models. */
  readonly name: string;
  /**
   * The server's root, without `/v1`: the OpenAI API is at `<baseUrl>/v1`, metrics at
   * `<baseUrl>/metrics`. http or https; no credentials, query or fragment.
   */
  readonly baseUrl: string;
  readonly kind: RemoteEngineKind;
  /** Whether an API key is stored for it (sent as `Authorization: Bearer`). */
  readonly hasApiKey: boolean;
  readonly createdAt: number;
  readonly status: RemoteEngineStatus;
}

/**
 * Where a chat's replies are generated: a remote engine and one of its models. A chat without
 * one (`Chat.engine` null) runs on this computer's engine, with whichever model is loaded.
 */
export interface ChatEngineRef {
  readonly engineId: string;
  /** The model id on that engine. */
  readonly model: string;
}

/** Where one reply was generated (its readout; and how a moved chat is recognised). */
export interface ReplyEngine {
  /** `local`, or the remote engine's id. */
  readonly id: string;
  /** "This computer", or the engine's name when the reply was written. */
  readonly name: string;
  /** The model: its file name here, its id on a remote engine. */
  readonly model: string;
  readonly kind: 'local' | RemoteEngineKind;
}

/** What a remote engine reported about one request's prompt. */
export interface ServerCacheStats {
  /** The prompt's tokens as the server counted them (`usage.prompt_tokens`). */
  readonly promptTokens: number;
  /**
   * Of those, the ones it took from its prefix cache (`usage.prompt_tokens_details.cached_tokens`,
   * or llama-server's `timings.cache_n`); null when the server did not say.
   */
  readonly cachedTokens: number | null;
}

/** An offload tier below a server's GPU KV cache (LMCache, SGLang's HiCache). */
export interface RemoteOffloadTier {
  /** "LMCache", "HiCache". */
  readonly name: string;
  /** Hits over lookups since the server started, 0..1; null when it does not say. */
  readonly hitRate: number | null;
  /** Bytes it holds, when it says (LMCache). */
  readonly usedBytes: number | null;
  /** Tokens it holds and can hold, when it counts in tokens (HiCache's host pool). */
  readonly usedTokens: number | null;
  readonly capacityTokens: number | null;
  /** Tokens its hits supplied since the server started, when it says. */
  readonly hitTokens: number | null;
}

/** One reading of a remote engine's `/metrics`, as the Cache view shows it. */
export interface RemoteCacheSample {
  readonly engineId: string;
  /** When it was read (epoch ms). */
  readonly at: number;
  /** Why nothing could be read (unreachable, no `/metrics`, refused): then every figure is null. */
  readonly error?: HearthError;
  /** The share of the server's KV cache in use, 0..1. */
  readonly kvUsage: number | null;
  /** Tokens the KV cache holds now, when the server says. */
  readonly kvTokens: number | null;
  /** Prefix-cache hits over lookups since the server started, 0..1. */
  readonly prefixHitRate: number | null;
  /** The same over the last interval (between this sample and the one before), when there were lookups. */
  readonly recentPrefixHitRate: number | null;
  /** Requests being generated now. */
  readonly requestsRunning: number | null;
  /** Requests queued behind them. */
  readonly requestsWaiting: number | null;
  /** The tier KV is offloaded to, where the server has one. */
  readonly offload: RemoteOffloadTier | null;
}

/** A chat found by `chats.search`. */
export interface ChatSearchHit {
  readonly chatId: string;
  /** The chat's title now. */
  readonly title: string;
  /** The message that matched; null when only the title did. */
  readonly messageId: string | null;
  /** Its role, when a message matched. */
  readonly role: 'user' | 'assistant' | null;
  /** Up to ~160 characters around the first match, on one line. */
  readonly snippet: string;
  /** The chat's last change (the list's order, newest first). */
  readonly updatedAt: number;
}
