/**
 * Fixtures for the end-to-end tests: the real browser host (`node server/main.ts`) as a child
 * process on a temporary data directory, and the page opened on the address it prints.
 *
 * The host serves `out/renderer/`, so the renderer must be built before these tests run:
 * `npm test` runs `npm run build` before `playwright test`; when running Playwright by hand,
 * run `npm run build` first.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as base, expect, type Page } from '@playwright/test';
import { startHost, type Host, type HostOptions } from '../support/host.ts';
import { testModelPath } from '../support/models.ts';

export { expect };
export { repoRoot, startHost, type Host, type HostOptions } from '../support/host.ts';

/** Opens the app on a host: the `?token=` page load sets the cookie the page's own requests use. */
export async function openApp(page: Page, host: Host): Promise<void> {
  await page.goto(host.url);
  // The sidebar is on every screen once the app has booted.
  await expect(page.getByRole('navigation', { name: 'Conversations' })).toBeVisible();
}

interface Fixtures {
  /** A fresh data directory, removed after the test. */
  dataDir: string;
  /** The generated tiny test model. */
  modelPath: string;
  /** Starts hosts on demand (several in turn for restart tests); all are stopped after the test. */
  launchHost: (options?: Partial<HostOptions>) => Promise<Host>;
  /** A host with the test model loaded at start (`--model`). */
  host: Host;
  /** Fails the test if the page shows an alert/confirm/prompt dialog (an injection firing). */
  noDialogs: void;
}

export const test = base.extend<Fixtures>({
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  dataDir: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'hearth-e2e-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  modelPath: async ({}, use) => {
    await use(await testModelPath());
  },
  launchHost: async ({ dataDir }, use, testInfo) => {
    const hosts: Host[] = [];
    await use(async (options = {}) => {
      const host = await startHost({ dataDir, ...options });
      hosts.push(host);
      return host;
    });
    for (const host of hosts) await host.stop();
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const [i, host] of hosts.entries()) await testInfo.attach(`host-${i}.log`, { body: host.output(), contentType: 'text/plain' });
    }
  },
  host: async ({ launchHost, modelPath }, use) => {
    await use(await launchHost({ model: modelPath }));
  },
  noDialogs: [
    async ({ page }, use) => {
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(`${dialog.type()}: ${dialog.message()}`);
        void dialog.dismiss();
      });
      await use();
      expect(dialogs, 'no dialog may fire').toEqual([]);
    },
    { auto: true },
  ],
});
