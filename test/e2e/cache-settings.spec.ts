/**
 * The cache settings (the disk budget is a setting, shown with the free disk): after a
 * turn, Settings shows the store's size and the free disk; a new disk budget is saved, survives
 * a reload of the page, is applied at once (the engine restarts gracefully, no crash banner),
 * and the chat keeps answering.
 */
import { call, chatWithStoredKv, expectChatGoesOn } from './app.ts';
import { expect, test } from './fixtures.ts';

const usage = /^Using (\d[\d.]*) (B|KB|MB|GB) of ([\d.]+ GB) · [\d.]+ (B|KB|MB|GB|TB) free on disk$/;

test('Settings shows the cache size and free disk; a new disk budget is saved, applied, and the chat goes on', async ({ page, host }) => {
  // The tiny model reads about one token per character: this fills more than one 256-token chunk.
  const prompt = Array.from({ length: 12 }, (_, i) => `Note ${i}: the tide comes in twice a day.`).join(' ');
  const title = await chatWithStoredKv(page, host, prompt);

  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Settings' }).click();
  const cache = page.getByRole('group', { name: 'Cache' });
  const line = cache.getByText(usage);
  await expect(line).toBeVisible();
  const shown = usage.exec((await line.textContent()) ?? '');
  expect(Number(shown?.[1])).toBeGreaterThan(0);
  expect(shown?.[3]).toBe('10 GB');
  await expect(cache.getByRole('checkbox', { name: 'Keep chat caches on disk' })).toBeChecked();
  await expect(cache.getByRole('combobox', { name: 'Chunk size' })).toHaveValue('256');
  await expect(cache.getByRole('spinbutton', { name: 'Slots' })).toHaveValue('1');

  const budget = cache.getByRole('spinbutton', { name: 'Disk budget (GB)' });
  await expect(budget).toHaveValue('10');
  await budget.fill('-1');
  await expect(cache.getByText('The disk budget must be 0 GB or more.')).toBeVisible();
  await expect(budget).toHaveAttribute('aria-invalid', 'true');
  await budget.fill('2.5');
  await expect(cache.getByText('The disk budget must be 0 GB or more.')).toHaveCount(0);

  const pidBefore = await host.enginePid();
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved.' })).toHaveText('Settings saved. The cache changes apply now.');
  await expect(cache.getByText(usage)).toContainText('of 2.5 GB');
  // Applied now: a fresh engine process, and no crash banner for it.
  await expect.poll(() => host.enginePid()).not.toBe(pidBefore);
  await expect(page.getByRole('alert').filter({ hasText: 'stopped unexpectedly' })).toHaveCount(0);
  const state = await call<{ settings: { kvBudgetBytes: number }; engine: { restarts: number } }>(host, 'app.state');
  expect(state.ok && state.value.settings.kvBudgetBytes).toBe(2.5 * 1024 ** 3);
  expect(state.ok && state.value.engine.restarts).toBe(0);

  await page.reload();
  await expect(page.getByRole('group', { name: 'Cache' }).getByRole('spinbutton', { name: 'Disk budget (GB)' })).toHaveValue('2.5');

  await expectChatGoesOn(page, title);
});
