/**
 * Malformed call payloads for the fuzz tests of every place a call enters a process: Electron's
 * IPC handler (electron/ipc.test.ts), the browser host over HTTP (server/fuzz.test.ts) and the
 * real engine service behind it (server/paths.model.test.ts). Seeded, so a failure reproduces.
 *
 * Every case here is INVALID for its call by construction (a wrong type, a missing required key,
 * an extra key, a value no schema allows, a structure that is not plain data), so a test can
 * assert INVALID_INPUT for each without asking the validator which ones are.
 */
import { callInputs, callNames, maxBodyBytes, type CallInput, type CallName } from '../../engine/contract/index.ts';
import { mulberry32 } from './gguf-writer.ts';

export { mulberry32 };

/** One valid input per call: the base each mutation breaks. Typed, so a new call must be added here. */
export const validInputs: { readonly [N in CallName]: CallInput<N> } = {
  'app.state': {},
  'settings.update': { threads: 2, theme: 'dark', defaultSampling: { temperature: 0.5 } },
  'models.list': {},
  'models.recommended': {},
  'models.load': { path: '/models/a.gguf' },
  'models.unload': {},
  'models.pick': {},
  'models.kvUsage': { path: '/models/a.gguf' },
  'models.delete': { path: '/models/a.gguf', deleteKv: true },
  'models.reveal': { path: '/models/a.gguf' },
  'hub.search': { query: 'llama', sort: 'downloads', limit: 20 },
  'hub.repo': { repo: 'owner/repo' },
  'hub.fit': { repo: 'owner/repo' },
  'hub.auth': {},
  'hub.setToken': { token: 'hf_abc' },
  'downloads.list': {},
  'downloads.start': { repo: 'owner/repo', file: 'model-Q4_K_M.gguf' },
  'downloads.pause': { downloadId: 'abc' },
  'downloads.resume': { downloadId: 'abc' },
  'downloads.cancel': { downloadId: 'abc' },
  'downloads.clear': {},
  'models.getProfile': { path: '/models/a.gguf' },
  'models.setProfile': { path: '/models/a.gguf', profile: { kType: 'q8_0', slots: 2 } },
  'models.plan': { path: '/models/a.gguf', contextSize: 4096 },
  'models.measureQuality': { fresh: true },
  'models.measureSpeed': { path: '/models/a.gguf' },
  'chats.list': {},
  'chats.create': { title: 'A chat', systemPrompt: 'Be brief.' },
  'chats.get': { chatId: 'abc' },
  'chats.rename': { chatId: 'abc', title: 'New title' },
  'chats.delete': { chatId: 'abc' },
  'chats.configure': { chatId: 'abc', systemPrompt: 'x', sampling: { temperature: 0, maxTokens: 8 } },
  'chats.send': { chatId: 'abc', text: 'hello' },
  'chats.edit': { chatId: 'abc', messageId: 'def', text: 'hello' },
  'chats.regenerate': { chatId: 'abc', messageId: 'def' },
  'chats.continue': { chatId: 'abc', messageId: 'def' },
  'chats.switchBranch': { chatId: 'abc', messageId: 'def' },
  'chats.stop': { chatId: 'abc' },
  'chats.export': { chatId: 'abc', format: 'markdown' },
  'chats.move': { chatId: 'abc', engine: { engineId: 'eng', model: 'org/model:q4' } },
  'chats.search': { query: 'hello' },
  'engines.list': {},
  'engines.add': { name: 'Box', baseUrl: 'http://127.0.0.1:9', kind: 'llama-server' },
  'engines.update': { engineId: 'eng', name: 'Box 2', apiKey: null },
  'engines.remove': { engineId: 'eng' },
  'engines.check': { engineId: 'eng' },
  'engines.test': { baseUrl: 'http://127.0.0.1:9', kind: 'vllm', apiKey: 'sk-1' },
  'engine.local': {},
  'engine.buildLocal': {},
  'engine.cancelBuild': {},
  'engine.removeLocal': {},
  'kv.stats': {},
  'kv.verify': { repair: true },
  'cache.watch': { engineId: 'eng' },
  'cache.overview': {},
  'cache.chat': { chatId: 'abc' },
  'cache.forget': { chatId: 'abc' },
  'server.state': {},
  'server.configure': { enabled: false, port: 4724, lan: false, corsOrigins: ['http://localhost:3000'] },
  'server.rotateKey': {},
};

/** A malformed payload and what it is, for the failure message. */
export interface FuzzCase {
  readonly label: string;
  readonly payload: unknown;
  /**
   * The payload as a JSON request body, when JSON can express what is wrong with it (a Map or
   * NaN cannot be sent as JSON: JSON.stringify would turn them into `{}` and `null`).
   */
  readonly json: string | null;
}

/** Longer than every string any schema allows (the longest, a message, is 200,000 characters). */
export const hugeString = 'x'.repeat(250_000);

/** `{"a":{"a":…}}` nested `depth` deep, built without recursion. */
export function deeplyNested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

/** An object with an OWN key named `key` (an object literal's `__proto__:` would set the prototype instead). */
function withOwnKey(base: object, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...base };
  Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}

/** JSON text when it says exactly what `payload` is, else null (also for structures too deep to stringify safely). */
function jsonOf(payload: unknown): string | null {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: payload, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number' && Number.isFinite(value)) continue;
    if (typeof value !== 'object' || depth > 1000) return null;
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== (Array.isArray(value) ? Array.prototype : Object.prototype)) return null;
    if (Object.getOwnPropertySymbols(value).length > 0) return null;
    for (const key of Object.keys(value)) {
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      if (!descriptor || !('value' in descriptor) || descriptor.value === undefined) return null;
      stack.push({ value: descriptor.value, depth: depth + 1 });
    }
  }
  return JSON.stringify(payload);
}

/** Whole-payload replacements: none of them is an object the schemas could accept. */
function notAnObject(valid: object): Array<[string, unknown]> {
  class Custom {
    constructor() {
      Object.assign(this, valid);
    }
  }
  const proto = { inherited: true };
  return [
    ['null', null],
    ['zero', 0],
    ['a number', 42],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['an empty string', ''],
    ['a string', 'chats.list'],
    ['a huge string', hugeString],
    ['true', true],
    ['false', false],
    ['an empty array', []],
    ['the valid input in an array', [valid]],
    ['a nested array', [[[]]]],
    ['a bigint', 1n],
    ['a symbol', Symbol('x')],
    ['a function', () => valid],
    ['a Date', new Date(0)],
    ['a Map of the valid input', new Map(Object.entries(valid))],
    ['a Set', new Set([1])],
    ['a RegExp', /x/],
    ['a Uint8Array', new Uint8Array([1, 2])],
    ['an ArrayBuffer', new ArrayBuffer(8)],
    ['an Error', new Error('x')],
    ['a class instance with the valid fields', new Custom()],
    ['an object with a non-Object prototype', Object.assign(Object.create(proto) as object, valid)],
    ['deep nesting (10,000 levels)', deeplyNested(10_000)],
  ];
}

/** Extra keys on the valid input: every schema is strict, and these keys mean things to JavaScript. */
function extraKeys(valid: object): Array<[string, unknown]> {
  const withSymbol: Record<string | symbol, unknown> = { ...valid };
  withSymbol[Symbol('x')] = 1;
  const withGetter = { ...valid };
  Object.defineProperty(withGetter, 'sneaky', { get: () => 1, enumerable: true });
  return [
    ['an extra key', { ...valid, extra: 1 }],
    ['an own __proto__ key', withOwnKey(valid, '__proto__', { polluted: true })],
    ['an own constructor key', withOwnKey(valid, 'constructor', { prototype: { polluted: true } })],
    ['an own prototype key', withOwnKey(valid, 'prototype', {})],
    ['a toString key', { ...valid, toString: 'x' }],
    ['a hasOwnProperty key', { ...valid, hasOwnProperty: 1 }],
    ['an empty key', { ...valid, '': 1 }],
    ['a 10,000-character key', { ...valid, ['k'.repeat(10_000)]: 1 }],
    ['a symbol key', withSymbol],
    ['an accessor property', withGetter],
    ['deep nesting under an extra key', { ...valid, extra: deeplyNested(5_000) }],
  ];
}

/** Values of the wrong type for a field whose valid value is `sample`. */
function wrongValues(sample: unknown): Array<[string, unknown]> {
  const always: Array<[string, unknown]> = [
    ['null', null],
    ['an array', [sample]],
    ['an empty array', []],
    ['a Map', new Map([['a', sample]])],
    ['a Date', new Date(0)],
    ['a nested object', deeplyNested(3)],
    ['deep nesting', deeplyNested(10_000)],
  ];
  if (typeof sample === 'string') {
    return [...always, ['a number', 42], ['NaN', NaN], ['true', true], ['an object', { value: sample }], ['a huge string', hugeString], ['a String object', Object(sample) as object]];
  }
  if (typeof sample === 'number') {
    return [
      ...always,
      ['a numeric string', String(sample)],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['-Infinity', -Infinity],
      ['1e308 * 10', 1e308 * 10],
      ['-1e300', -1e300],
      ['a boolean', true],
      ['a bigint', BigInt(Math.trunc(sample))],
      ['a Number object', Object(sample) as object],
    ];
  }
  if (typeof sample === 'boolean') return [...always, ['a string', 'true'], ['a number', 1], ['a Boolean object', Object(sample) as object]];
  if (typeof sample === 'object' && sample !== null) {
    return [
      ['null', null],
      ['a string', 'x'],
      ['a number', 1],
      ['an array', [sample]],
      ['an extra key inside', { ...sample, extra: 1 }],
      ['an own __proto__ key inside', withOwnKey(sample, '__proto__', { polluted: true })],
      ['a class instance', new (class Inner {})()],
      ['a Map', new Map(Object.entries(sample))],
      ['deep nesting', deeplyNested(10_000)],
    ];
  }
  return always;
}

/** Whether `key` may be left out of `name`'s input (read from the schema's shape, not by validating cases). */
function isOptional(name: CallName, key: string): boolean {
  const shape = (callInputs[name] as unknown as { shape?: Record<string, { safeParse(v: unknown): { success: boolean } }> }).shape;
  const field = shape?.[key];
  return field === undefined || field.safeParse(undefined).success;
}

/** Whether `key` of `name`'s input may be null (read from the schema's shape): null is then no wrong value for it. */
function acceptsNull(name: CallName, key: string): boolean {
  const shape = (callInputs[name] as unknown as { shape?: Record<string, { safeParse(v: unknown): { success: boolean } }> }).shape;
  return shape?.[key]?.safeParse(null).success ?? false;
}

/** Every field of the valid input (nested ones too), with a setter that puts another value there. */
function fields(valid: object): Array<{ path: string; sample: unknown; set(value: unknown): unknown; remove(): unknown; nested: boolean }> {
  const out: Array<{ path: string; sample: unknown; set(value: unknown): unknown; remove(): unknown; nested: boolean }> = [];
  for (const [key, sample] of Object.entries(valid)) {
    out.push({
      path: key,
      sample,
      set: (value) => ({ ...valid, [key]: value }),
      remove: () => Object.fromEntries(Object.entries(valid).filter(([k]) => k !== key)),
      nested: false,
    });
    if (typeof sample === 'object' && sample !== null) {
      for (const [inner, innerSample] of Object.entries(sample)) {
        out.push({
          path: `${key}.${inner}`,
          sample: innerSample,
          set: (value) => ({ ...valid, [key]: { ...sample, [inner]: value } }),
          remove: () => valid,
          nested: true,
        });
      }
    }
  }
  return out;
}

/**
 * Values that are the right type but outside what the field allows, per field name: ids that
 * would be path traversal, out-of-range numbers, values outside an enum.
 */
const outOfRange: Readonly<Record<string, readonly unknown[]>> = {
  chatId: ['', '../x', '..', 'a/b', 'a\\b', 'a.b', '%2e%2e', 'x\0', ' abc', 'é', 'a'.repeat(65), 'a b'],
  messageId: ['', '../x', 'a/b', 'x\0', 'a'.repeat(65)],
  downloadId: ['', '../x', 'a/b', 'a'.repeat(65)],
  path: ['', 'x'.repeat(5000)],
  uri: ['', 'x'.repeat(3000)],
  text: ['', '   ', '\n\t', 'x'.repeat(200_001)],
  title: ['x'.repeat(201)],
  systemPrompt: ['x'.repeat(50_001)],
  format: ['html', 'MARKDOWN', '../markdown', ''],
  threads: [-1, 1.5, 257],
  theme: ['neon', ''],
  temperature: [-0.1, 2.1],
  maxTokens: [-1, 1.5, 32_769],
  kType: ['f32', 'q2_k', ''],
  slots: [0, 9, 1.5],
  contextSize: [-1, 0.5, 2 ** 40],
  repo: ['', 'owner', 'a/b/c', '../x', 'a/..', 'a/b..c', 'a/b c', '/a/b', 'a\\b/c', `a/${'x'.repeat(200)}`],
  file: ['', 'x'.repeat(1001)],
  token: ['', '   ', 'hf abc', 'hf_\u00e9', 'x'.repeat(501)],
  query: ['x'.repeat(201)],
  sort: ['popular', 'DOWNLOADS', ''],
  limit: [0, 101, 1.5],
};

/** Every deterministic malformed case for `name`. */
export function malformedCases(name: CallName): FuzzCase[] {
  const valid = validInputs[name] as object;
  const cases: Array<[string, unknown]> = [];
  for (const [label, payload] of notAnObject(valid)) cases.push([`payload is ${label}`, payload]);
  for (const [label, payload] of extraKeys(valid)) cases.push([label, payload]);
  for (const field of fields(valid)) {
    for (const [label, value] of wrongValues(field.sample)) {
      if (value === null && !field.nested && acceptsNull(name, field.path)) continue;
      cases.push([`${field.path} is ${label}`, field.set(value)]);
    }
    for (const value of outOfRange[field.path.split('.').at(-1) ?? ''] ?? []) {
      cases.push([`${field.path} is out of range (${JSON.stringify(value).slice(0, 30)})`, field.set(value)]);
    }
    if (!field.nested && !isOptional(name, field.path)) cases.push([`${field.path} is missing`, field.remove()]);
  }
  return cases.map(([label, payload]) => ({ label, payload, json: jsonOf(payload) }));
}

/**
 * `count` random malformed payloads for `name`: each applies one to three of the deterministic
 * mutations in turn (every one of them breaks validity, and none repairs another), choosing
 * values with the seeded `random`.
 */
export function randomCases(name: CallName, random: () => number, count: number): FuzzCase[] {
  const pool = malformedCases(name);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const out: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const first = pick(pool);
    let payload = first.payload;
    const labels = [first.label];
    const more = Math.floor(random() * 3);
    for (let m = 0; m < more; m++) {
      // Only a plain object can take a second mutation; adding a key keeps it invalid.
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || Object.getPrototypeOf(payload) !== Object.prototype) break;
      const key = pick(['extra', 'x', '__proto__', 'constructor', 'chatId', 'text', 'path']);
      const value = pick<unknown>([null, 1, 'x', NaN, [], {}, hugeString.slice(0, 1000), true, deeplyNested(50)]);
      // An existing valid key keeps its broken sibling: never overwrite the mutated field.
      if (Object.hasOwn(payload, key) && key !== '__proto__' && key !== 'constructor') continue;
      payload = withOwnKey(payload, key, value);
      labels.push(`+${key}`);
    }
    out.push({ label: `random #${i}: ${labels.join(' ')}`, payload, json: jsonOf(payload) });
  }
  return out;
}

/** Names that are not calls: typos, prototype members, encodings, junk, non-strings. */
export function unknownNames(random: () => number, count: number): unknown[] {
  const fixed: unknown[] = [
    '', ' ', 'chats', 'chats.', '.list', 'chats.list ', ' chats.list', 'CHATS.LIST', 'chats/list', 'chats.list\0', 'chats%2Elist',
    '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__',
    '../chats.list', 'chats.list/../app.state', 'x'.repeat(10_000), '\u202echats.list', 'ｃhats.list',
    null, undefined, 0, 1, NaN, true, {}, [], ['chats.list'], { toString: () => 'chats.list' }, Object.create(null), Symbol('chats.list'), 1n,
  ];
  const alphabet = 'abcdefghijklmnopqrstuvwxyz._-/%\\\0 ';
  const random_: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + Math.floor(random() * 24);
    let s = '';
    for (let c = 0; c < length; c++) s += alphabet[Math.floor(random() * alphabet.length)];
    if (!(callNames as readonly string[]).includes(s)) random_.push(s);
  }
  return [...fixed, ...random_];
}

/** Request bodies that are not valid JSON, or JSON that is not a valid payload for any call. */
export function malformedBodies(random: () => number, count: number): Array<string | Buffer> {
  const fixed: Array<string | Buffer> = [
    '{',
    '}',
    '{"chatId":}',
    '{"chatId":"abc",}',
    "{'chatId':'abc'}",
    '{chatId:"abc"}',
    'NaN',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":1e999}',
    '{"a":-1e999}',
    'undefined',
    'null',
    '"a string"',
    '42',
    'true',
    '[]',
    '[{}]',
    '{"__proto__":{"polluted":true}}',
    '{"constructor":{"prototype":{"polluted":true}}}',
    '{"chatId":"abc","chatId":"../x"}',
    '\uFEFF{}',
    '{"a":"\\ud800"}',
    '{"a":"\\u0000"}',
    '['.repeat(100_000),
    '['.repeat(5_000) + ']'.repeat(5_000),
    '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000),
    Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
    Buffer.from([0x7b, 0xc3, 0x28, 0x7d]),
    Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]),
    Buffer.from([0x7b, 0x00, 0x7d]),
    ' ',
    '\n',
    '{}garbage',
    '{}{}',
    `{"title":"${'x'.repeat(maxBodyBytes - 100)}"`,
  ];
  const alphabet = '{}[]":,0123456789.eE+-nultrfasx\\ \n\u00e9';
  const random_: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + Math.floor(random() * 64);
    let s = '';
    for (let c = 0; c < length; c++) s += alphabet[Math.floor(random() * alphabet.length)];
    random_.push(s);
  }
  return [...fixed, ...random_];
}
