import { defineConfig } from 'vitest/config';

// Three projects: fast unit tests; model tests that run real inference on the generated GGUF
// (forked workers, one file at a time (style.md §8), because each loads llama.cpp and uses
// `threads: 1`); and the fault suite (issue 7: kills, corruption, full disks, load), which drives
// real host and engine processes and prints its ledger as a table at the end. `npm test` runs
// the fault suite as its own step (`npm run test:faults`), so its time is visible.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{engine,server,electron,renderer,scripts}/**/*.test.{ts,tsx}', 'test/{support,faults,lint}/**/*.test.ts'],
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
    ],
  },
});
