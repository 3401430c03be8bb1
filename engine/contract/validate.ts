import { callInputs, isCallName, type CallName } from './api.ts';
import { hearthError, type HearthError } from './errors.ts';

/** Deepest nesting a payload may have. Real inputs are three levels deep at most. */
export const maxPayloadDepth = 16;
/** Most values (objects, arrays and leaves together) one payload may hold. Real inputs hold a few dozen. */
export const maxPayloadValues = 10_000;

/** Keys that mean something to JavaScript's object model: no input has them, and a merge must never see them. */
const forbiddenKeys = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Why `payload` is not plain data (null when it is): only plain objects (or null-prototype
 * ones), arrays, strings, finite numbers, booleans, null and undefined, with data properties
 * only, at most `maxPayloadDepth` deep and `maxPayloadValues` values in all. JSON can only
 * produce these, but Electron's IPC (structured clone) carries Maps, Dates, typed arrays, NaN
 * and Infinity, and zod's object schemas accept a Map or a class instance as an object with no
 * keys. Checked before the schema so no schema ever walks a hostile structure.
 */
export function plainDataProblem(payload: unknown): string | null {
  try {
    return walk(payload);
  } catch {
    // Only an in-process caller can pass a Proxy or a getter that throws; IPC and JSON cannot.
    return 'the payload cannot be read as data';
  }
}

function walk(payload: unknown): string | null {
  let values = 0;
  const stack: Array<{ value: unknown; depth: number; where: string }> = [{ value: payload, depth: 0, where: 'the payload' }];
  while (stack.length > 0) {
    const { value, depth, where } = stack.pop()!;
    values += 1;
    if (values > maxPayloadValues) return `the payload holds more than ${maxPayloadValues} values`;
    if (value === null || value === undefined || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return `${where} is not a finite number`;
      continue;
    }
    if (typeof value !== 'object') return `${where} is a ${typeof value}, which is not data`;
    if (depth >= maxPayloadDepth) return `the payload is nested deeper than ${maxPayloadDepth} levels`;
    const proto: unknown = Object.getPrototypeOf(value);
    const isArray = Array.isArray(value) && proto === Array.prototype;
    if (!isArray && proto !== Object.prototype && proto !== null) return `${where} is not a plain object`;
    if (Object.getOwnPropertySymbols(value).length > 0) return `${where} has symbol keys`;
    for (const key of Object.getOwnPropertyNames(value)) {
      if (isArray && key === 'length') continue;
      if (forbiddenKeys.has(key)) return `${where} has the key "${key}"`;
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      if (descriptor === undefined || !('value' in descriptor)) return `${where} has an accessor property "${key.slice(0, 40)}"`;
      stack.push({ value: descriptor.value, depth: depth + 1, where: isArray ? `${where}[${key}]` : `"${key.slice(0, 40)}"` });
    }
  }
  return null;
}

/**
 * Checks an untrusted call (name + payload) against the contract. Used where payloads enter a
 * process: Electron's main, the browser host, and the engine process. Never throws. A missing
 * payload (`undefined`) means `{}`; anything else must be plain data (`plainDataProblem`) that
 * the call's schema accepts.
 */
export function validateCall(
  name: unknown,
  payload: unknown,
): { ok: true; name: CallName; input: unknown } | { ok: false; error: HearthError } {
  if (!isCallName(name)) {
    // String() of a symbol is fine, of a null-prototype object it throws: describe non-strings by type.
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : `of type ${name === null ? 'null' : typeof name}`;
    return { ok: false, error: hearthError('NOT_FOUND', `There is no call named ${shown}.`) };
  }
  const input = payload === undefined ? {} : payload;
  const problem = plainDataProblem(input);
  if (problem !== null) return { ok: false, error: hearthError('INVALID_INPUT', `Invalid input for ${name}: ${problem}.`) };
  const parsed = callInputs[name].safeParse(input);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
    return { ok: false, error: hearthError('INVALID_INPUT', `Invalid input for ${name}: ${where}${first?.message ?? 'bad payload'}.`) };
  }
  return { ok: true, name, input: parsed.data };
}
