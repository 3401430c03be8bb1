import { defineConfig } from '@playwright/test';

/**
 * End-to-end tests: a real Chromium drives the real browser host (`server/main.ts`), which
 * runs the real engine process on the generated tiny model. The renderer must be built first
 * (`npm test` runs `npm run build` before `playwright test`).
 *
 * Debian's Chromium is used because `npx playwright install` cannot download on the build
 * machine (docs/decisions/testing-without-electron.md); CHROMIUM_PATH overrides it.
 */
export default defineConfig({
  testDir: 'test/e2e',
  // One engine process per test on a 2-core machine: run them one at a time.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  // Below test-results/, not it: Playwright empties its outputDir at start, and the fault
  // suite's summary (test-results/faults/) from the step before must survive it.
  outputDir: 'test-results/e2e',
  reporter: 'list',
  use: {
    browserName: 'chromium',
    headless: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
