/**
 * The local API server from the user's side: turned on in the Server screen (on a free port typed
 * into its port field), called from this test process with the `openai` package using the address
 * and key read off the page, and the request then seen in the screen's live log and as an "API"
 * turn in the Cache view. A new key, once confirmed, shuts the old one out.
 */
import { basename } from 'node:path';
import type { Page } from '@playwright/test';
import OpenAI from 'openai';
import { freePort } from '../support/host.ts';
import { expect, openApp, test } from './fixtures.ts';

async function openScreen(page: Page, name: 'Server' | 'Cache'): Promise<void> {
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
}

test('the Server screen: on, called with the openai client, the request in its log and an API turn in the Cache view', async ({ page, host, modelPath }) => {
  await openApp(page, host);
  await openScreen(page, 'Server');
  await expect(page.getByTestId('server-screen')).toBeVisible();

  const toggle = page.getByRole('switch', { name: 'Serve the API' });
  await expect(toggle).toHaveAttribute('data-testid', 'server-toggle');
  // Off until the user turns it on.
  await expect(toggle).toHaveAttribute('aria-checked', 'false');
  await expect(page.getByTestId('server-status')).toHaveText('Off: nothing listens');

  const port = await freePort();
  const portField = page.getByRole('spinbutton', { name: 'Port' });
  await portField.fill(String(port));
  await portField.press('Enter');
  await toggle.click();
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await expect(page.getByTestId('server-status')).toHaveText('Listening');
  const url = page.getByTestId('server-url');
  await expect(url).toHaveText(`http://127.0.0.1:${port}/v1`);
  const baseURL = (await url.textContent()) ?? '';

  // The key is hidden until asked for.
  const keyField = page.getByTestId('server-key');
  await expect(keyField).toHaveText(/^•+hidden$/);
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await expect(keyField).not.toHaveText(/•/);
  const apiKey = ((await keyField.textContent()) ?? '').trim();
  expect(apiKey.length).toBeGreaterThanOrEqual(16);
  await expect(page.getByTestId('server-snippet-js')).toContainText(`new OpenAI({ baseURL: "${baseURL}", apiKey: "${apiKey}" })`);
  await expect(page.getByTestId('server-snippet-anthropic')).toContainText(`base_url="http://127.0.0.1:${port}"`);

  const model = basename(modelPath).replace(/\.gguf$/i, '');
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  const reply = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Name a colour.' }], max_tokens: 8 });
  expect(reply.choices).toHaveLength(1);
  expect(reply.usage?.prompt_tokens ?? 0).toBeGreaterThan(0);

  // The log gains the request's row, pushed by the host while the screen is open.
  const rows = page.getByTestId('server-request-row');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('POST /v1/chat/completions');
  await expect(rows.first()).toContainText('OpenAI/JS');
  await expect(rows.first().getByRole('cell').nth(4)).toHaveText('200');
  await expect(rows.first().getByRole('cell').nth(5)).toHaveText(String(reply.usage?.prompt_tokens));

  // The reply's turn in the Cache view: labelled API, and not a link to any chat.
  await openScreen(page, 'Cache');
  const turns = page.getByRole('region', { name: 'Recent turns', exact: true });
  const apiRow = turns.getByRole('row').filter({ hasText: 'API' });
  await expect(apiRow).toHaveCount(1);
  await expect(apiRow.getByText('API', { exact: true })).toBeVisible();
  await expect(apiRow.getByRole('link')).toHaveCount(0);

  // A new key, once confirmed: the old one is refused, the new one works.
  await openScreen(page, 'Server');
  await page.getByTestId('server-rotate-key').click();
  const dialog = page.getByRole('dialog', { name: 'Make a new key?' });
  await expect(dialog).toContainText('stop working');
  await dialog.getByRole('button', { name: 'Make a new key' }).click();
  await expect(dialog).toBeHidden();
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await expect(keyField).not.toHaveText(apiKey);
  const newKey = ((await keyField.textContent()) ?? '').trim();
  await expect(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Again.' }], max_tokens: 4 })).rejects.toMatchObject({ status: 401 });
  const renewed = new OpenAI({ baseURL, apiKey: newKey, maxRetries: 0 });
  const again = await renewed.chat.completions.create({ model, messages: [{ role: 'user', content: 'Again.' }], max_tokens: 4 });
  expect(again.choices).toHaveLength(1);
});
