/**
 * Compressed KV on disk: by default (Auto) the engine picks the encoding by measuring this
 * machine, and Settings → Cache says what it picked with both figures, and how the loaded
 * model's sequence state moves. With Lossless chosen, a chat's stored KV is encoded losslessly by
 * the native codec and the Cache view shows a compression ratio above 1; turning compression off
 * is saved and applied (the engine restarts), and the chat's next turn still restores the chunks
 * written compressed (a frame's header says how it was encoded, whatever the setting is now).
 */
import type { Locator, Page } from '@playwright/test';
import { assistantMessages, chatWithStoredKv, conversations, sendMessage, waitIdle, waitModelReady } from './app.ts';
import { expect, openApp, test, type Host } from './fixtures.ts';

const nav = (page: Page, name: string): Locator => page.getByRole('navigation', { name: 'App' }).getByRole('link', { name });

/** The value shown beside a label in the Cache view's "Disk store" figures. */
const figure = (page: Page, label: string): Locator =>
  page.getByRole('region', { name: 'Disk store', exact: true }).locator('dt', { hasText: label }).locator('xpath=following-sibling::dd');

/** Saves the settings form and waits for the engine restart that applies a cache change, and the model's reload. */
async function saveAndRestart(page: Page, host: Host): Promise<void> {
  const pidBefore = await host.enginePid();
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved.' })).toHaveText('Settings saved. The cache changes apply now.');
  await expect.poll(() => host.enginePid()).not.toBe(pidBefore);
  await waitModelReady(host);
}

test('Auto picks the encoding by measuring and says why; Lossless compresses stored KV, which stays readable after compression is turned off', async ({ page, host }) => {
  await openApp(page, host);
  await nav(page, 'Settings').click();
  const cache = page.getByRole('group', { name: 'Cache' });
  const compression = cache.getByRole('combobox', { name: 'Compression' });
  await expect(compression).toHaveValue('auto');
  // What this machine measured decides, so either outcome is right; the line must say it and why.
  await expect(cache.getByText(/^In use: (Off|Lossless) \(auto: decoding [\d.]+ GB\/s (is slower than|keeps up with) reading [\d.]+ GB\/s\)$/)).toBeVisible();
  await expect(cache.getByText(/^State transfer: (memory|file \(.+\))$/)).toBeVisible();
  // CI builds the addon from a clean clone: the engine must be running it, not the fallback.
  await expect(cache.getByText('Codec: native', { exact: true })).toBeVisible();

  await compression.selectOption({ label: 'Lossless' });
  await saveAndRestart(page, host);
  await expect(cache.getByText('In use: Lossless', { exact: true })).toBeVisible();

  // The tiny model reads about one token per character: several 256-token chunks.
  const prompt = Array.from({ length: 40 }, (_, i) => `Entry ${i}: the lighthouse keeper logs the weather.`).join(' ');
  const title = await chatWithStoredKv(page, host, prompt, 2);

  await nav(page, 'Cache').click();
  await expect(page.getByRole('heading', { level: 1, name: 'Cache' })).toBeVisible();
  const ratio = figure(page, 'Compression ratio');
  await expect(ratio).toHaveText(/^\d+\.\d\d× \(lossless\)$/);
  expect(Number.parseFloat((await ratio.textContent()) ?? '')).toBeGreaterThan(1.05);

  await nav(page, 'Settings').click();
  await compression.selectOption({ label: 'Off' });
  await saveAndRestart(page, host);
  await page.reload();
  await expect(page.getByRole('group', { name: 'Cache' }).getByRole('combobox', { name: 'Compression' })).toHaveValue('off');
  await expect(page.getByRole('group', { name: 'Cache' }).getByText('In use: Off', { exact: true })).toBeVisible();

  // A fresh engine holds nothing in memory: the next turn restores the chunks written compressed.
  await conversations(page).getByRole('link', { name: title }).click();
  await expect(assistantMessages(page)).toHaveCount(1);
  await sendMessage(page, 'And then?');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(2);
  await expect(assistantMessages(page).last()).toContainText(/restored [\d,]+ tokens from disk in \d+ ms · prefilled \d+/);
});
