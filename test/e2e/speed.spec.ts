/**
 * Speed by measurement, as a user meets it: the model's first load measures its settings on
 * this computer, Settings → Model shows what was chosen and every trial, "Measure again" measures
 * and reloads, and chats keep answering with the chosen settings.
 */
import type { SpeedProfile } from '../../engine/contract/index.ts';
import { assistantMessages, call, setDefaultSampling, startChat, waitIdle } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

test("the first load measures; Settings shows the choice and its trials; Measure again measures anew; the chat answers", async ({ page, launchHost, modelPath }) => {
  const host = await launchHost({ model: modelPath, measureSpeed: true });
  const measured = await call<{ speed: SpeedProfile | null }>(host, 'models.getProfile', { path: modelPath });
  if (!measured.ok || !measured.value.speed) throw new Error(`the first load measured nothing: ${JSON.stringify(measured)}`);
  const first = measured.value.speed;
  // The tests' host runs one thread: flash attention on and off, then the other batch size.
  expect(first.trials.map((trial) => trial.threads)).toEqual([1, 1, 1]);
  const state = await call<{ model: { model?: { flashAttention?: boolean; threads?: number; batchSize?: number } } }>(host, 'app.state');
  expect(state.ok && state.value.model.model).toMatchObject({ flashAttention: first.chosen.flashAttention, threads: 1, batchSize: first.chosen.batchSize });

  await openApp(page, host);
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Settings' }).click();
  const speed = page.getByRole('region', { name: 'Speed on this computer' });
  await expect(speed).toBeVisible();
  await expect(speed.getByTestId('speed-chosen')).toHaveText(new RegExp(`^Flash attention ${first.chosen.flashAttention ? 'on' : 'off'} · 1 thread · batch ${first.chosen.batchSize}$`));
  await expect(speed.getByTestId('speed-figures')).toHaveText(/^Prefill [\d,.]+ tok\/s · decode [\d,.]+ tok\/s$/);
  await expect(speed.getByTestId('speed-trial')).toHaveCount(3);
  await expect(speed.locator('[data-testid="speed-trial"][data-chosen]')).toHaveCount(1);

  await speed.getByRole('button', { name: 'Measure again' }).click();
  await expect(speed.getByRole('button', { name: 'Measure again' })).toBeEnabled({ timeout: 60_000 });
  const again = await call<{ speed: SpeedProfile | null }>(host, 'models.getProfile', { path: modelPath });
  expect(again.ok && again.value.speed && again.value.speed.measuredAt).toBeGreaterThan(first.measuredAt);
  await expect(speed.getByTestId('speed-trial')).toHaveCount(3);

  await setDefaultSampling(host, { maxTokens: 6, temperature: 0 });
  await startChat(page, 'Say something about the sea.');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  await expect(assistantMessages(page).first()).not.toHaveText('');
});
