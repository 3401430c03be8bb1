/**
 * What a remote engine's failures mean for the user: HTTP statuses, OpenAI-style error bodies
 * and network failures (refused, unresolved, timed out, TLS) turned into HearthErrors that name
 * the engine and say what to do. The engine's own message is kept, shortened, where it helps.
 */
import { errorText, hearthError, type HearthError } from '../../contract/index.ts';
import { codeOf } from '../http-read.ts';

/** Where the user fixes an engine's address or key, as the UI names it. */
const ENGINES_PLACE = 'Settings → Engines';

/** What a failed request was about, for the message. */
export interface RemoteFailureContext {
  /** The engine's name as the user gave it. */
  readonly name: string;
  /** Its root URL. */
  readonly baseUrl: string;
  /** Whether the request carried an API key. */
  readonly hadKey: boolean;
  /** The model asked for, for a request that named one. */
  readonly model?: string;
}

/** The server's own explanation from an OpenAI-style error body (`{error: {message}}`, `{error: "…"}`, `{message}`, `{detail}`), or null. */
export function serverMessage(body: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const record = parsed as Record<string, unknown>;
  const error = record.error;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null && typeof (error as Record<string, unknown>).message === 'string') return (error as { message: string }).message;
  if (typeof record.message === 'string') return record.message;
  if (typeof record.detail === 'string') return record.detail;
  return null;
}

/** One line of at most `max` characters: a server's message is shown, never trusted to be short. */
function shortened(text: string, max = 240): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

const contextOverflow = /context length|context size|context window|maximum context|too many tokens|exceeds? the (available )?context/i;
const unknownModel = /model/i;

/** The error for a failed HTTP answer from a remote engine. `body` is the error body's text (capped). */
export function remoteHttpError(status: number, body: string, context: RemoteFailureContext): HearthError {
  const said = serverMessage(body);
  const detail = said === null ? '' : `: ${shortened(said)}`;
  const { name } = context;
  if (status === 401 || status === 403) {
    return context.hadKey
      ? hearthError('AUTH_REQUIRED', `${name} refused the API key (HTTP ${status}).`, `Check the key in ${ENGINES_PLACE}.`)
      : hearthError('AUTH_REQUIRED', `${name} needs an API key (HTTP ${status}).`, `Add its key in ${ENGINES_PLACE}.`);
  }
  if (said !== null && contextOverflow.test(said)) {
    return hearthError('CONTEXT_OVERFLOW', `The conversation is longer than ${name} accepts${detail}.`, 'Start a new chat, or move this one to a model with a longer context.');
  }
  if ((status === 404 || status === 400) && context.model !== undefined && said !== null && unknownModel.test(said)) {
    return hearthError('NOT_FOUND', `${name} does not serve the model ${context.model}${detail}.`, 'It may have been removed or renamed on the server: move this chat to another model with the picker in its header.');
  }
  if (status === 404) {
    return hearthError('NOT_FOUND', `${name} has no OpenAI-compatible API at ${context.baseUrl}/v1 (HTTP 404).`, `Check its address in ${ENGINES_PLACE}: give the server's root, such as http://host:8000.`);
  }
  if (status === 429) return hearthError('BUSY', `${name} is limiting requests (HTTP 429)${detail}.`, 'Try again in a moment.');
  if (status === 503) return hearthError('ENGINE_UNAVAILABLE', `${name} is not ready (HTTP 503)${detail}.`, 'It may still be loading its model: try again in a moment.');
  if (status >= 500) return hearthError('NETWORK_ERROR', `${name} answered with an error (HTTP ${status})${detail}.`, 'Check the server\'s log.');
  return hearthError('NETWORK_ERROR', `${name} refused the request (HTTP ${status})${detail}.`);
}

/** TLS failures by the code Node gives them, in words. */
const tlsProblems: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a self-signed certificate this computer does not trust',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by an authority this computer trusts',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by an authority this computer trusts',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another host name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'it does not speak TLS on that port (is it http://?)',
  EPROTO: 'the secure connection could not be set up (is it http://?)',
};

/** The error for a request that got no answer (or lost it): refused, unresolved, timed out, TLS, cut. */
export function remoteNetworkError(error: unknown, context: RemoteFailureContext, timeoutMs: number): HearthError {
  const { name, baseUrl } = context;
  if (error instanceof Error && error.name === 'TimeoutError') {
    return hearthError('NETWORK_ERROR', `${name} did not answer within ${Math.ceil(timeoutMs / 1000)} s.`, 'Check that the server is running and not overloaded.');
  }
  const code = codeOf(error);
  const tls = code === null ? undefined : tlsProblems[code];
  if (tls !== undefined) {
    return hearthError('NETWORK_ERROR', `The secure connection to ${name} failed: ${tls} (${code}).`, `Give the server a certificate this computer trusts, or check the address in ${ENGINES_PLACE}.`);
  }
  switch (code) {
    case 'ECONNREFUSED':
      return hearthError('NETWORK_ERROR', `Could not reach ${name} at ${baseUrl}: the connection was refused.`, 'Check that the server is running and listens on that address and port.');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return hearthError('NETWORK_ERROR', `Could not reach ${name}: the host name in ${baseUrl} did not resolve.`, `Check the address in ${ENGINES_PLACE}, and your network.`);
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return hearthError('NETWORK_ERROR', `Could not reach ${name} at ${baseUrl} (${code}).`, 'Check that this computer can reach that network (VPN, firewall).');
    default:
      return hearthError('NETWORK_ERROR', `The connection to ${name} failed (${code ?? shortened(errorText(error), 120)}).`, 'Check that the server is running, and your network.');
  }
}

/** A reply whose stream ended before the engine said it was done. */
export function remoteCutError(name: string, detail: string | null): HearthError {
  return hearthError('NETWORK_ERROR', `The connection to ${name} was cut before the reply finished${detail === null ? '' : ` (${shortened(detail, 120)})`}.`, 'The text so far is kept: continue with Regenerate, or send again.');
}

/** An answer that is not what an OpenAI-compatible server sends. */
export function remoteMalformedError(name: string, what: string): HearthError {
  return hearthError('NETWORK_ERROR', `${name} sent ${what} that Hearth could not read.`, 'Check that its kind and address are right (an OpenAI-compatible API at <address>/v1).');
}
