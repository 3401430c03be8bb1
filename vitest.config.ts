import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests, and model tests that run real inference on the generated
// GGUF. Model tests run in forked workers, one file at a time (style.md §8), because each
// loads llama.cpp and uses `threads: 1`.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{engine,server,electron,renderer,scripts}/**/*.test.{ts,tsx}'],
          exclude: ['**/*.model.test.ts', 'node_modules/**'],
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
    ],
  },
});
