import { defineConfig } from 'vitest/config';

// Four projects: fast unit tests; model tests that run real inference on the generated GGUF
// (forked workers, one file at a time, because each loads llama.cpp and uses `threads: 1`:
// docs/decisions/threads.md); the fault suite (kills, corruption, full disks, load), which drives
// real host and engine processes and prints its ledger as a table at the end; and the package
// check, which needs `npm run build` first. `npm test` runs the last two as their own steps
// (`npm run test:faults`, `npm run test:package`), so their time is visible.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{engine,server,electron,renderer,scripts,bench}/**/*.test.{ts,tsx}', 'test/{support,faults,lint}/**/*.test.ts'],
          exclude: ['**/*.model.test.ts', '**/*.faults.test.ts', 'node_modules/**'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'model',
          include: ['{engine,server,test}/**/*.model.test.ts'],
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.faults.test.ts'],
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 120_000,
          globalSetup: ['test/faults/summary.ts'],
        },
      },
      {
        test: {
          name: 'package',
          include: ['test/packaging/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
