/**
 * The planner before loading (it works from GGUF metadata alone, so it can be shown for a model
 * before downloading or loading it): on the Models screen, a local
 * file's memory plan opens from the keyboard and shows the device and figures while no model
 * is loaded. Remote plans need Hugging Face, which these tests cannot reach: unit tests cover them.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { call } from './app.ts';
import { expect, test } from './fixtures.ts';

test('Models: the memory plan of a local file shows before it is loaded, and again at once', async ({ page, launchHost, dataDir, modelPath }) => {
  await mkdir(join(dataDir, 'models'), { recursive: true });
  await copyFile(modelPath, join(dataDir, 'models', 'tiny.gguf'));
  // No --model: a fresh data dir starts on the model screen, with nothing loaded.
  const host = await launchHost();
  await page.goto(host.url);
  const localFiles = page.getByRole('region', { name: 'Local files' });
  const toggle = localFiles.getByRole('button', { name: 'Memory plan for tiny.gguf' });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');

  await toggle.focus();
  await page.keyboard.press('Enter');
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  const panel = localFiles.getByRole('region', { name: 'Memory plan for tiny.gguf' });
  await expect(panel.getByText(/^Device: CPU · RAM [\d.]+ (MB|GB) free of /)).toBeVisible();
  await expect(panel.getByText(/^Auto picks \w+ \/ \w+ at [\d,]+ tokens: KV [\d.]+ (B|KB|MB|GB), total [\d.]+ (B|KB|MB|GB)\. Fits\.$/)).toBeVisible();
  const f16 = panel.getByRole('table').getByRole('row', { name: /^f16 \/ f16/ });
  await expect(f16).toContainText(/in RAM [\d,]+/);
  const perToken = Number(((await f16.getByRole('cell').first().textContent()) ?? '').replace(/,/g, ''));
  expect(perToken).toBeGreaterThan(0);
  await expect(panel).not.toHaveAttribute('aria-busy', 'true');

  // Nothing was loaded to make it.
  const state = await call<{ model: { status: string } }>(host, 'app.state');
  expect(state.ok && state.value.model.status).toBe('idle');

  // Closed and opened again: the session's cached plan shows at once, with no busy state.
  await page.keyboard.press('Space');
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await expect(panel).toHaveCount(0);
  await toggle.click();
  await expect(panel.getByRole('table')).toBeVisible();
  await expect(panel.getByRole('status')).toHaveCount(0);
});
