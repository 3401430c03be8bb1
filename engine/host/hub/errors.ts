/**
 * What the Hub's failures mean for a user: HTTP statuses, the Hub's `X-Error-Code` header and
 * network failures turned into HearthErrors with a message and a hint to act on. Shared by the
 * client's own calls and by anything else that talks to the Hub (downloads follow `resolve` URLs
 * and must explain a gated file in the same words).
 */
import { errorText, hearthError, type HearthError } from '../../contract/index.ts';
import { codeOf } from '../http-read.ts';

/** Where the user manages the token, as the UI names it. */
const TOKEN_PLACE = 'Models → Hugging Face token';

/** What a failed request was about, for the message. */
export interface HubFailureContext {
  /** The Hub's address, for the page to request access on (`https://huggingface.co`). */
  readonly endpoint: string;
  /** The repository, when the request was about one. */
  readonly repo?: string;
  /** The file within it, for a missing entry. */
  readonly path?: string;
  /** The revision asked for, for a missing revision. */
  readonly revision?: string;
  /** Whether the request carried a token. */
  readonly hadToken: boolean;
  /** The repository's gate when known (from its info): a 401/403 on a gated repository is about access. */
  readonly gated?: false | 'auto' | 'manual';
}

/** The repository's page as people type it: `huggingface.co/owner/name`. */
export function repoPage(endpoint: string, repo: string): string {
  return `${endpoint.replace(/^https?:\/\//, '').replace(/\/+$/, '')}/${repo}`;
}

/** The Hub's own explanation: the `X-Error-Message` header, else the body's `error`, else null. */
function hubMessage(headers: Headers, body: string): string | null {
  const header = headers.get('x-error-message');
  if (header) return header;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed && typeof parsed.error === 'string') return parsed.error;
  } catch {
    // Not JSON (an HTML error page from a proxy): there is no message to show.
  }
  return null;
}

/** Seconds from a Retry-After header (seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+$/.test(value.trim())) return Math.max(1, Number(value.trim()));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - now) / 1000));
}

/** 401 and 403: which of "gated", "private or missing" and "bad token" it is. */
function authError(status: number, code: string | null, message: string | null, context: HubFailureContext): HearthError {
  const { repo, hadToken } = context;
  const page = repo === undefined ? null : repoPage(context.endpoint, repo);
  const tokenRejected = status === 401 && hadToken && code !== 'GatedRepo' && code !== 'RepoNotFound' && /invalid|expired|revoked|credentials|password/i.test(message ?? '');
  if (tokenRejected || (repo === undefined && hadToken)) {
    return hearthError('AUTH_REQUIRED', 'Hugging Face refused the stored token: it may be mistyped, revoked or expired.', `Replace it in ${TOKEN_PLACE}, or remove it to use public models.`);
  }
  if (repo === undefined || page === null) {
    return hearthError('AUTH_REQUIRED', 'Hugging Face needs a token for this.', `Add a token with read access in ${TOKEN_PLACE}.`);
  }
  const gated = code === 'GatedRepo' || (code !== 'RepoNotFound' && context.gated !== undefined && context.gated !== false);
  if (gated) {
    const approval = context.gated === 'manual' ? ' (its authors approve requests by hand, which can take a while)' : '';
    if (!hadToken) {
      return hearthError(
        'AUTH_REQUIRED',
        `${repo} is a gated repository: Hugging Face lets only accounts that were granted access download it.`,
        `Request access on ${page}${approval}, then add a token with read access in ${TOKEN_PLACE}.`,
      );
    }
    return hearthError(
      'AUTH_REQUIRED',
      `Your Hugging Face token may not download ${repo}: access to this gated repository has not been granted to its account (yet).`,
      `Request access on ${page}${approval} with the account the token belongs to, and check that the token has read access.`,
    );
  }
  if (!hadToken) {
    return hearthError('AUTH_REQUIRED', `${repo} is private or does not exist.`, `If it was shared with you, add a token with read access in ${TOKEN_PLACE}.`);
  }
  return hearthError('AUTH_REQUIRED', `${repo} does not exist, or your Hugging Face token may not read it.`, `Check the name, or use a token of an account that may read this repository (${TOKEN_PLACE}).`);
}

/**
 * The error for a failed HTTP answer from the Hub (or its CDN). `body` is the error body's text
 * (a few KB at most are needed; pass '' when it was not read).
 */
export function hubHttpError(status: number, headers: Headers, body: string, context: HubFailureContext): HearthError {
  const code = headers.get('x-error-code');
  const message = hubMessage(headers, body);
  if (status === 401 || status === 403) return authError(status, code, message, context);
  if (status === 404) {
    if (code === 'RevisionNotFound' && context.repo !== undefined) return hearthError('NOT_FOUND', `${context.repo} has no revision "${context.revision ?? '?'}" on Hugging Face.`);
    if (code === 'EntryNotFound' && context.repo !== undefined && context.path !== undefined) return hearthError('NOT_FOUND', `${context.repo} has no file ${context.path}.`, 'It may have been renamed or removed: reopen the repository to see its files.');
    if (context.repo !== undefined) return hearthError('NOT_FOUND', `${context.repo} was not found on Hugging Face.`, 'Check the name (owner/name); it may have been renamed or removed.');
    return hearthError('NOT_FOUND', 'Hugging Face has no such page.');
  }
  if (status === 429) {
    const seconds = retryAfterSeconds(headers.get('retry-after'));
    return hearthError('NETWORK_ERROR', 'Hugging Face is limiting requests from this address for a moment.', seconds === null ? 'Try again in a minute.' : `Try again in ${seconds} s.`);
  }
  if (status >= 500) {
    return hearthError('NETWORK_ERROR', `Hugging Face answered with an error (HTTP ${status}).`, 'It may be down or busy: try again later.');
  }
  const detail = message === null ? '' : `: ${message.slice(0, 200)}`;
  return hearthError('NETWORK_ERROR', `Hugging Face refused the request (HTTP ${status}${detail}).`);
}

/** The error for a request that got no answer: a timeout, a refused connection, a name that did not resolve. */
export function hubNetworkError(error: unknown, timeoutMs: number): HearthError {
  if (error instanceof Error && error.name === 'TimeoutError') {
    return hearthError('NETWORK_ERROR', `Hugging Face did not answer within ${Math.ceil(timeoutMs / 1000)} s.`, 'Check your internet connection, or try again later.');
  }
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  const code = codeOf(error);
  return hearthError('NETWORK_ERROR', `Could not reach Hugging Face (${code ?? errorText(cause)}).`, 'Check your internet connection, proxy or firewall.');
}

/** The error for an answer that is not what the Hub sends: not JSON, the wrong shape, or far too large. */
export function hubMalformedError(what: string): HearthError {
  return hearthError('NETWORK_ERROR', `Hugging Face sent ${what} that Hearth could not read.`, 'A proxy or captive portal may be in the way; try again later.');
}
