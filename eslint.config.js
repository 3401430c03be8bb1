// Lint, and the one place where every folder's allowed imports are written down
// (docs/architecture.md explains the layers). Imports flow one way:
//
//   engine/base       small pure helpers (lock, timeout, disposables, emitter): nothing
//   engine/contract   the typed API: zod and itself only
//   engine/gguf       GGUF reading: contract
//   engine/kv         the KV store and codec: contract, gguf, engine/sqlite.ts
//   engine/worker     the engine process: contract, gguf, kv, protocol.ts; the only importer of node-llama-cpp
//   engine/host       the host side of the engine: contract, gguf, protocol.ts, sqlite.ts, spawn.ts
//   engine/*.ts       shared plumbing (protocol, sqlite, spawn) and the public entry index.ts
//   electron, server  the two hosts: engine/index.ts and engine/contract only, never each other
//   renderer          the UI: engine/contract only (plus UI libraries), no Node, no Electron
//   test/support      test fixtures; production code may never import them (tests may)
//   bench, scripts    tools that measure or build the engine from outside: anything
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import reactHooks from 'eslint-plugin-react-hooks';

const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'http', 'https', 'net', 'crypto', 'worker_threads'];
const llama = ['node-llama-cpp', 'node-llama-cpp/*'];
const ui = ['react', 'react-dom', 'react-dom/*', '**/renderer/**'];
const hosts = ['electron', '**/electron/**', '**/server/**'];
const testCode = { group: ['**/test/**', '**/test-support/**'], message: 'Test fixtures live in test/support; production code never imports them.' };
const tests = ['**/*.test.ts', '**/*.test.tsx'];

/** One layer: its files, what it may not import (with why), and whether its tests may use fixtures. */
const layers = [
  {
    files: ['engine/base/**/*.ts'],
    deny: [{ group: ['../*', '../**', ...nodeBuiltins, ...hosts, ...ui, ...llama], message: 'engine/base is the bottom layer: it imports nothing.' }],
  },
  {
    files: ['engine/contract/**/*.ts'],
    deny: [{ group: [...nodeBuiltins, '../*', ...hosts, ...ui, ...llama], message: 'The contract is pure TypeScript: it imports zod and itself only.' }],
  },
  {
    files: ['engine/gguf/**/*.ts'],
    deny: [{ group: ['../kv/**', '../worker/**', '../host/**', '../*.ts', ...hosts, ...ui, ...llama], message: 'engine/gguf reads files; it imports engine/contract only.' }],
  },
  {
    files: ['engine/kv/**/*.ts'],
    deny: [{ group: ['../worker/**', '../host/**', '../protocol.ts', '../spawn.ts', '../index.ts', ...hosts, ...ui, ...llama], message: 'engine/kv is the storage layer: contract, gguf and sqlite.ts only.' }],
  },
  {
    files: ['engine/worker/**/*.ts'],
    deny: [
      { group: ['../host/**', '../spawn.ts', '../index.ts'], message: 'The engine process reaches the host through protocol.ts, never by import.' },
      { group: [...hosts, ...ui], message: 'The engine knows nothing of its hosts or the UI.' },
    ],
    allowLlama: true,
  },
  {
    files: ['engine/host/**/*.ts'],
    deny: [
      { group: ['../worker/**', '../kv/**'], message: 'The host side reaches the engine process through protocol.ts, never by import.' },
      { group: [...hosts, ...ui, ...llama], message: 'The engine knows nothing of its hosts or the UI, and only engine/worker runs llama.cpp.' },
    ],
  },
  {
    files: ['engine/*.ts'],
    deny: [{ group: ['./worker/**', './kv/**', ...hosts, ...ui, ...llama], message: 'engine/*.ts is shared plumbing and the public entry: no runtime, hosts or UI.' }],
  },
  {
    files: ['electron/**/*.ts'],
    deny: [
      { group: ['**/engine/**', '!**/engine/index.ts', '!**/engine/contract', '!**/engine/contract/**'], message: 'Hosts import the engine through engine/index.ts and engine/contract only.' },
      { group: ['**/server/**', ...ui, ...llama], message: 'The desktop host does not import the browser host, the UI or the runtime.' },
    ],
  },
  {
    files: ['server/**/*.ts'],
    deny: [
      { group: ['**/engine/**', '!**/engine/index.ts', '!**/engine/contract', '!**/engine/contract/**'], message: 'Hosts import the engine through engine/index.ts and engine/contract only.' },
      { group: ['electron', '**/electron/**', ...ui, ...llama], message: 'The browser host does not import Electron, the UI or the runtime.' },
    ],
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    deny: [
      { group: [...nodeBuiltins, 'electron', 'ws', ...llama], message: 'The renderer runs in a sandboxed page: no Node, Electron or engine modules.' },
      { group: ['**/engine/**', '!**/engine/contract', '!**/engine/contract/**', '**/server/**', '**/electron/**'], message: 'The renderer imports only engine/contract.' },
    ],
  },
];

const llamaOnlyInWorker = { group: llama, message: 'Only engine/worker/ may import node-llama-cpp.' };

export default tseslint.config(
  { ignores: ['node_modules/', 'out/', 'dist/', '.cache/', 'test-results/', 'playwright-report/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': ['error', { patterns: [llamaOnlyInWorker] }],
    },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  // Production files: their layer's rules plus "no test fixtures".
  ...layers.map(({ files, deny, allowLlama }) => ({
    files,
    ignores: tests,
    rules: { 'no-restricted-imports': ['error', { patterns: [...deny, ...(allowLlama ? [] : [llamaOnlyInWorker]), testCode] }] },
  })),
  // Tests beside the code they test: the same layer rules, and fixtures from test/support.
  ...layers.map(({ files, deny, allowLlama }) => ({
    files: files.map((f) => f.replace(/\*\.(\{ts,tsx\}|ts)$/, '*.test.$1')),
    rules: { 'no-restricted-imports': ['error', { patterns: [...deny, ...(allowLlama ? [] : [llamaOnlyInWorker])] }] },
  })),
  {
    // Size limits keep the engine readable: a module past 600 lines or a function past 120 is
    // split by concern (docs/architecture.md lists the modules).
    files: ['engine/**/*.ts'],
    ignores: tests,
    rules: {
      'max-lines': ['error', { max: 600 }],
      'max-lines-per-function': ['error', { max: 120, IIFEs: true }],
    },
  },
  {
    // Benchmarks, build scripts and the test suites measure and drive the engine from outside.
    files: ['bench/**/*.ts', 'scripts/**/*.ts', 'test/**/*.{ts,tsx}'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
