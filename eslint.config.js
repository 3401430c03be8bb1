// Lint, including the import directions of ../shared/docs/style.md ("Imports flow one way"):
//   renderer  -> engine/contract only (plus UI libraries)
//   electron, server -> engine/index.ts and engine/contract only
//   engine/contract -> zod only
//   engine/worker is the only place that may import node-llama-cpp
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import reactHooks from 'eslint-plugin-react-hooks';

const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'http', 'https', 'net', 'crypto', 'worker_threads'];
const restrict = (...patterns) => ['error', { patterns }];

export default tseslint.config(
  { ignores: ['node_modules/', 'out/', 'dist/', '.cache/', 'test-results/', 'playwright-report/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': restrict({ group: ['node-llama-cpp', 'node-llama-cpp/*'], message: 'Only engine/worker/ may import node-llama-cpp.' }),
    },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      'no-restricted-imports': restrict(
        { group: [...nodeBuiltins, 'electron', 'node-llama-cpp', 'ws'], message: 'The renderer runs in a sandboxed page: no Node, Electron or engine modules.' },
        { group: ['**/engine/**', '!**/engine/contract', '!**/engine/contract/**'], message: 'The renderer imports only engine/contract.' },
        { group: ['**/server/**', '**/electron/**'], message: 'The renderer imports only engine/contract.' },
      ),
    },
  },
  {
    files: ['engine/contract/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict({ group: [...nodeBuiltins, '../*', 'electron', 'react', 'node-llama-cpp'], message: 'The contract is pure TypeScript: it imports zod and itself only.' }),
    },
  },
  {
    files: ['engine/**/*.ts'],
    ignores: ['engine/contract/**', 'engine/worker/**'],
    rules: {
      'no-restricted-imports': restrict(
        { group: ['electron', 'react', 'react-dom', '**/renderer/**', '**/server/**', '**/electron/**'], message: 'The engine knows nothing of its hosts or the UI.' },
        { group: ['node-llama-cpp', 'node-llama-cpp/*'], message: 'Only engine/worker/ may import node-llama-cpp.' },
        { group: ['**/worker/**'], message: 'The host side reaches the engine process through protocol.ts, never by import.' },
      ),
    },
  },
  {
    files: ['engine/worker/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        { group: ['electron', 'react', 'react-dom', '**/renderer/**', '**/server/**', '**/electron/**'], message: 'The engine knows nothing of its hosts or the UI.' },
        { group: ['**/service/**'], message: 'The engine process reaches the host through protocol.ts, never by import.' },
      ),
    },
  },
  {
    files: ['server/**/*.ts', 'electron/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        { group: ['**/engine/**', '!**/engine/index.ts', '!**/engine/contract', '!**/engine/contract/**'], message: 'Hosts import the engine through engine/index.ts and engine/contract only.' },
        { group: ['node-llama-cpp', 'node-llama-cpp/*', 'react', 'react-dom', '**/renderer/**'], message: 'Hosts do not import the engine runtime or the UI.' },
      ),
    },
  },
  {
    // Benchmarks measure the engine from outside, through node-llama-cpp and the engine's internals.
    files: ['bench/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['server/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        { group: ['**/engine/**', '!**/engine/index.ts', '!**/engine/contract', '!**/engine/contract/**'], message: 'Hosts import the engine through engine/index.ts and engine/contract only.' },
        { group: ['electron', '**/electron/**', 'node-llama-cpp', 'react', '**/renderer/**'], message: 'The browser host does not import Electron, the runtime or the UI.' },
      ),
    },
  },
);
