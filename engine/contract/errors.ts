/**
 * Errors are data: every expected failure crosses process and network boundaries as a
 * `HearthError`, never as a thrown exception. The set of codes is small and fixed so that every
 * layer can branch on it.
 */

/** Every error code that may cross the contract. */
export const errorCodes = [
  /** The payload failed schema validation, or a value is out of range. */
  'INVALID_INPUT',
  /** A chat, message, model file or download does not exist. */
  'NOT_FOUND',
  /** A request body exceeded the host's size limit. */
  'PAYLOAD_TOO_LARGE',
  /** The browser host's token is missing or wrong. */
  'UNAUTHORIZED',
  /** The request came from a foreign Origin or Host. */
  'FORBIDDEN',
  /** The file is not a usable GGUF (not a file, wrong magic, truncated, inconsistent). */
  'MODEL_INVALID',
  /** A well-formed GGUF that llama.cpp cannot run (unknown architecture, missing tensors). */
  'MODEL_UNSUPPORTED',
  /** A chat needs a model and none is loaded. */
  'MODEL_NOT_LOADED',
  /** The prompt does not fit in the context window. */
  'CONTEXT_OVERFLOW',
  /** The operation conflicts with one already running (e.g. a second send in one chat). */
  'BUSY',
  /** The engine process died while handling the request. */
  'ENGINE_CRASHED',
  /** The engine process is not running (starting or restarting). */
  'ENGINE_UNAVAILABLE',
  /** A model download failed. */
  'DOWNLOAD_FAILED',
  /** A remote service (Hugging Face) needs a token, or the stored one may not read this (gated or private repositories). */
  'AUTH_REQUIRED',
  /** A remote service could not be reached, refused for a while (rate limit) or answered with an error. */
  'NETWORK_ERROR',
  /** The user cancelled the operation. */
  'CANCELLED',
  /** The disk is full. */
  'DISK_FULL',
  /** The model or context does not fit in memory. */
  'OUT_OF_MEMORY',
  /** This host does not offer the call (e.g. a native file dialog in the browser host). */
  'NOT_SUPPORTED',
  /** A bug: something that should not happen. The message says what. */
  'INTERNAL',
] as const;

/** One of `errorCodes`. */
export type ErrorCode = (typeof errorCodes)[number];

/** A failure, as plain data. */
export interface HearthError {
  /** What kind of failure: callers branch on this, never on the message. */
  readonly code: ErrorCode;
  /** A sentence a user can read. */
  readonly message: string;
  /** What the user can do about it, when there is something. */
  readonly hint?: string;
}

/** The outcome of every contract call. Calls never throw across the contract. */
export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: HearthError };

/** A success. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** A failure; `hint` is left out when there is none. */
export function err<T = never>(code: ErrorCode, message: string, hint?: string): Result<T> {
  return { ok: false, error: hint === undefined ? { code, message } : { code, message, hint } };
}

/** The error alone, shaped as in `err`. */
export function hearthError(code: ErrorCode, message: string, hint?: string): HearthError {
  return hint === undefined ? { code, message } : { code, message, hint };
}

/** The HTTP status the browser host answers with for each code. */
export const httpStatusOf: Readonly<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  MODEL_INVALID: 422,
  MODEL_UNSUPPORTED: 422,
  MODEL_NOT_LOADED: 409,
  CONTEXT_OVERFLOW: 422,
  BUSY: 409,
  ENGINE_CRASHED: 503,
  ENGINE_UNAVAILABLE: 503,
  DOWNLOAD_FAILED: 502,
  AUTH_REQUIRED: 502,
  NETWORK_ERROR: 502,
  CANCELLED: 409,
  DISK_FULL: 507,
  OUT_OF_MEMORY: 507,
  NOT_SUPPORTED: 501,
  INTERNAL: 500,
};

/**
 * The text of anything thrown, for a message or a log line: an Error's message (or its name when
 * the message is empty), anything else as a string. Never throws.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  try {
    return String(error);
  } catch {
    return 'an unprintable error';
  }
}
