import type { HearthError, HearthEvent, Result } from '../contract.ts';

export const unreachable: HearthError = {
  code: 'ENGINE_UNAVAILABLE',
  message: 'Cannot reach Hearth',
  hint: 'Check that Hearth is still running, then try again.',
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Accepts what looks like a contract Result; anything else becomes an error Result. */
export function asResult<T>(value: unknown, what = 'Hearth sent a response the page does not understand.'): Result<T> {
  if (isObject(value) && value.ok === true && 'value' in value) return value as Result<T>;
  if (isObject(value) && value.ok === false && isObject(value.error) && typeof value.error.message === 'string') {
    return value as Result<T>;
  }
  return { ok: false, error: { code: 'INTERNAL', message: what } };
}

/** Events come from our own host, but a malformed one must not break the page. */
export function asEvent(value: unknown): HearthEvent | null {
  if (isObject(value) && typeof value.type === 'string' && isObject(value.payload)) return value as HearthEvent;
  return null;
}
