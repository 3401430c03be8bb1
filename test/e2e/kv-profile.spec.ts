/**
 * The per-model KV settings: Settings shows the planner's table for the loaded model and the
 * quality meter; choosing q8_0/q8_0 changes the planner's figure before anything is applied;
 * Apply reloads the model with it, the chat keeps answering, and the Cache view shows the new
 * pair. A user picks a smaller cache on these figures, so they must be the ones that apply.
 */
import type { Page } from '@playwright/test';
import { assistantMessages, call, conversations, expectChatGoesOn, setDefaultSampling, startChat, waitIdle } from './app.ts';
import { expect, openApp, test, type Host } from './fixtures.ts';

/** "q8_0 / q8_0 at 4,096 tokens: KV 2.23 MB, total 4.00 MB. Fits." */
const figure = /^(\w+) \/ (\w+) at ([\d,]+) tokens: KV ([\d.]+) (B|KB|MB|GB), total ([\d.]+) (B|KB|MB|GB)\. Fits\.$/;
const unit: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 };

function kvBytes(text: string): number {
  const m = figure.exec(text);
  if (!m) throw new Error(`not a planner figure: ${text}`);
  return Number(m[4]) * (unit[m[5] ?? 'B'] ?? 1);
}

async function openSettings(page: Page) {
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Settings' }).click();
  const section = page.getByRole('region', { name: 'Model', exact: true });
  await expect(section).toBeVisible();
  return section;
}

/** The loaded model's path and what the host says its context uses (setup and checks, not under test). */
async function loadedModel(host: Host): Promise<{ path: string; kvType?: { k: string; v: string } }> {
  const state = await call<{ model: { status: string; model?: { path: string; kvType?: { k: string; v: string } } } }>(host, 'app.state');
  if (!state.ok || !state.value.model.model) throw new Error(`no model loaded: ${JSON.stringify(state)}`);
  return state.value.model.model;
}

test('Settings: the planner shows each pair; q8_0/q8_0 changes its figure before Apply, Apply reloads, and the chat answers', async ({ page, host }) => {
  await setDefaultSampling(host, { maxTokens: 8, temperature: 0 });
  await openApp(page, host);
  await startChat(page, 'Tell me about the tide.');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  const title = (await conversations(page).getByRole('link').first().textContent())?.trim() ?? '';
  const { path } = await loadedModel(host);

  const section = await openSettings(page);
  const planner = section.getByRole('region', { name: 'Memory planner' });
  const table = planner.getByRole('table');
  await expect(table).toBeVisible();
  await expect(planner.getByText(/^Device: CPU · RAM /)).toBeVisible();
  // The stored profile is the default, f16/f16: its row is the chosen one, with figures.
  await expect(section.getByRole('combobox', { name: 'K type' })).toHaveValue('f16');
  const f16Row = table.getByRole('row', { name: /^f16 \/ f16/ });
  await expect(f16Row).toContainText('(chosen)');
  await expect(f16Row).toContainText(/\d[\d.]* (B|KB|MB)/);
  const line = planner.getByText(figure);
  await expect(line).toHaveText(/^f16 \/ f16 at /);
  const f16Bytes = kvBytes((await line.textContent()) ?? '');
  expect(f16Bytes).toBeGreaterThan(0);

  // A quantized V with flash attention off is refused at once, beside the field, with no engine.
  await section.getByRole('combobox', { name: 'V type' }).selectOption('q8_0');
  await section.getByRole('combobox', { name: 'Flash attention' }).selectOption('off');
  await expect(section.getByText(/^A quantized V \(q8_0\) needs flash attention/)).toBeVisible();
  await expect(section.getByRole('combobox', { name: 'V type' })).toHaveAttribute('aria-invalid', 'true');
  await section.getByRole('combobox', { name: 'Flash attention' }).selectOption('auto');
  await expect(section.getByText(/^A quantized V \(q8_0\) needs flash attention/)).toHaveCount(0);

  // q8_0/q8_0: the planner's figure for the new pair shows before Apply, and it is smaller.
  await section.getByRole('combobox', { name: 'K type' }).selectOption('q8_0');
  await expect(line).toHaveText(/^q8_0 \/ q8_0 at /);
  const q8Bytes = kvBytes((await line.textContent()) ?? '');
  expect(q8Bytes).toBeLessThan(f16Bytes);
  await expect(table.getByRole('row', { name: /^q8_0 \/ q8_0/ })).toContainText('(chosen)');
  // Nothing is saved until Apply.
  const before = await call<{ profile: { kType: string; vType: string } }>(host, 'models.getProfile', { path });
  expect(before, JSON.stringify(before)).toMatchObject({ ok: true, value: { profile: { kType: 'f16', vType: 'f16' } } });

  await section.getByRole('button', { name: 'Apply' }).click();
  await expect(section.getByRole('status').filter({ hasText: /^Applied/ })).toHaveText('Applied to the loaded model. Chats are kept.', { timeout: 30_000 });
  const after = await call<{ profile: { kType: string; vType: string; flashAttention: string } }>(host, 'models.getProfile', { path });
  expect(after, JSON.stringify(after)).toMatchObject({ ok: true, value: { profile: { kType: 'q8_0', vType: 'q8_0', flashAttention: 'auto' } } });
  const loaded = await loadedModel(host);
  if (loaded.kvType) {
    // The host reports the pair the context was created with: the UI shows it.
    expect(loaded.kvType).toEqual({ k: 'q8_0', v: 'q8_0' });
    await expect(section.getByText(/^Loaded with q8_0 \/ q8_0, flash attention on/)).toBeVisible();
  }

  await expectChatGoesOn(page, title);
  await expect(page.getByRole('alert').filter({ hasText: 'stopped unexpectedly' })).toHaveCount(0);

  // The Cache view's slot row shows the pair the context now runs with, and its bytes.
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Cache' }).click();
  const slots = page.getByRole('region', { name: 'Slots', exact: true });
  await expect(slots.getByRole('meter', { name: 'Slot 0 cells' })).toBeVisible();
  await expect(slots.getByRole('row').nth(1)).toContainText('q8_0 / q8_0');
});

test('Settings: the quality meter shows the loaded f16/f16 as the reference (nothing measured), and checks again on request', async ({ page, host }) => {
  await openApp(page, host);
  const section = await openSettings(page);
  const meter = section.getByRole('region', { name: 'Quality meter' });
  await meter.getByRole('button', { name: 'Measure quality' }).click();
  await expect(meter.getByText('f16 / f16, the reference')).toBeVisible({ timeout: 30_000 });
  await expect(meter).toContainText('Not measured: this is the pair the others are measured against.');
  await expect(meter).not.toContainText('KL divergence');
  await expect(meter).not.toContainText('Top-1 agreement');
  // The lossy disk encoding does apply to f16 and is a real measurement.
  await expect(meter).toContainText(/Lossy disk encoding: KL [\d.]+ vs lossless, top-1 \d+(\.\d)?%/);
  await expect(meter).toContainText(/the lossy disk encoding over [\d,]+ positions/);

  await meter.getByRole('button', { name: 'Measure again' }).click();
  await expect(meter.getByRole('button', { name: 'Measure again' })).toBeEnabled({ timeout: 30_000 });
  await expect(meter.getByRole('alert')).toHaveCount(0);
});
