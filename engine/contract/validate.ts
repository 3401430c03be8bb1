import { callInputs, isCallName, type CallName } from './api.ts';
import { hearthError, type HearthError } from './errors.ts';

/**
 * Checks an untrusted call (name + payload) against the contract. Used where payloads enter a
 * process: Electron's main, the browser host, and the engine process. Never throws.
 */
export function validateCall(
  name: unknown,
  payload: unknown,
): { ok: true; name: CallName; input: unknown } | { ok: false; error: HearthError } {
  if (!isCallName(name)) {
    return { ok: false, error: hearthError('NOT_FOUND', `There is no call named ${JSON.stringify(String(name)).slice(0, 80)}.`) };
  }
  const parsed = callInputs[name].safeParse(payload ?? {});
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
    return { ok: false, error: hearthError('INVALID_INPUT', `Invalid input for ${name}: ${where}${first?.message ?? 'bad payload'}.`) };
  }
  return { ok: true, name, input: parsed.data };
}
