/**
 * A chat on a remote engine, end to end: a real llama-server (built from the llama.cpp source
 * node-llama-cpp ships, serving the generated test model with `--metrics`), added in Settings →
 * Engines, picked in a chat's header, chatted with, stopped, read in the Cache view, and killed
 * midway. The host here has no local model at all: the chat runs on the server alone.
 */
import type { Page } from '@playwright/test';
import { startLlamaServer, type LlamaServer } from '../support/llama-server.ts';
import { assistantMessages, call, messageText, sendMessage, stopButton, waitIdle, waitForGrowth } from './app.ts';
import { expect, openApp, test, type Host } from './fixtures.ts';

let llama: LlamaServer | null = null;

test.afterEach(async () => {
  await llama?.stop();
  llama = null;
});

/**
 * `--ignore-eos`: the random test model writes until max_tokens (30,000 tokens take the server
 * about 30 s here), so Stop and the kill land midway.
 */
async function startServer(modelPath: string): Promise<LlamaServer> {
  llama = await startLlamaServer({ model: modelPath, ctxSize: 32768, extraArgs: ['--ignore-eos'] });
  return llama;
}

async function go(page: Page, hash: string): Promise<void> {
  await page.evaluate((h) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = h;
  }, hash);
}

async function serverRequestsProcessing(server: LlamaServer): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  return Number(text.split('\n').find((line) => line.startsWith('llamacpp:requests_processing '))?.split(' ')[1]);
}

async function setChatSampling(host: Host, page: Page, sampling: { temperature?: number; maxTokens?: number }): Promise<void> {
  const chatId = new URL(page.url()).hash.replace('#/chat/', '');
  const result = await call(host, 'chats.configure', { chatId, sampling });
  expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
}

test('add a llama-server engine, chat on it, stop, and read its figures in the Cache view', async ({ page, launchHost, modelPath }) => {
  test.setTimeout(180_000);
  const server = await startServer(modelPath);
  const host = await launchHost();
  await openApp(page, host);

  // Settings → Engines: add it, test it first.
  await go(page, '#/settings/engines');
  await page.getByRole('button', { name: 'Add engine' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add engine' });
  await dialog.getByLabel('Name').fill('Lab server');
  await dialog.getByLabel('Base URL').fill(`${server.baseUrl}/v1`);
  await dialog.getByLabel('Kind').selectOption({ label: 'llama-server' });
  await dialog.getByRole('button', { name: 'Test' }).click();
  await expect(dialog.getByTestId('engine-test-result')).toContainText('1 model');
  await dialog.getByRole('button', { name: 'Save' }).click();
  const row = page.getByRole('listitem', { name: 'Lab server' });
  await expect(row.getByTestId('engine-status')).toContainText('Online · 1 model');

  // A new chat, moved to the server's model before its first message.
  await page.getByRole('button', { name: 'New chat', exact: true }).click();
  await page.getByTestId('chat-engine').click();
  const picker = page.getByRole('dialog', { name: 'Where this chat runs' });
  await picker.getByRole('button', { name: /^Lab server · / }).click();
  await expect(page.getByTestId('chat-engine')).toContainText('Lab server');
  await setChatSampling(host, page, { temperature: 0, maxTokens: 16 });

  await sendMessage(page, 'Tell me about the sea, the wind and the long grey shore.');
  await waitIdle(page);
  await sendMessage(page, 'And the birds?');
  await waitIdle(page);
  const second = assistantMessages(page).last();
  const readout = second.getByTestId('reply-readout').locator('summary');
  await expect(readout).toContainText('Lab server');
  // The server found the first turn in its prefix cache and said how much of the prompt that was.
  await expect(readout).toContainText(/Server cache: [1-9][\d,]* of [\d,]+ prompt tokens/);

  // Stop: the reply keeps its text, and the server stops generating.
  await setChatSampling(host, page, { maxTokens: 30000 });
  await sendMessage(page, 'Now write at length.');
  await waitForGrowth(assistantMessages(page).last(), 20);
  await stopButton(page).click();
  await waitIdle(page);
  await expect(assistantMessages(page).last()).toContainText('Stopped');
  await expect.poll(() => serverRequestsProcessing(server), { timeout: 10_000 }).toBe(0);

  // The Cache view, for this engine: its own figures, and plainly "not reported" where it has none.
  await go(page, '#/cache');
  await page.getByLabel('Engine').selectOption({ label: 'Lab server' });
  await expect(page.getByTestId('remote-running')).toContainText('0');
  await expect(page.getByTestId('remote-hit-rate')).toContainText('%');
  await expect(page.getByTestId('remote-kv-usage')).toContainText('not reported');
});

test('a server killed midway: the reply so far is kept, marked incomplete, with why', async ({ page, launchHost, modelPath }) => {
  test.setTimeout(180_000);
  const server = await startServer(modelPath);
  const host = await launchHost();
  // Setup through the API (what is under test is the kill).
  const added = await call<{ id: string; status: { models: { id: string }[] } }>(host, 'engines.add', { name: 'Lab server', baseUrl: server.baseUrl, kind: 'llama-server' });
  if (!added.ok) throw new Error(JSON.stringify(added));
  const created = await call<{ id: string }>(host, 'chats.create', { engine: { engineId: added.value.id, model: added.value.status.models[0]!.id } });
  if (!created.ok) throw new Error(JSON.stringify(created));
  await openApp(page, host);
  await go(page, `#/chat/${created.value.id}`);
  await setChatSampling(host, page, { temperature: 0, maxTokens: 30000 });

  await sendMessage(page, 'Write at length.');
  const reply = assistantMessages(page).last();
  await waitForGrowth(reply, 20);
  server.kill('SIGKILL');
  await waitIdle(page);
  await expect(reply).toContainText('Incomplete');
  await expect(reply).toContainText('The connection to Lab server was cut before the reply finished');
  const kept = await messageText(reply);
  expect(kept.length).toBeGreaterThan(20);

  // Reopened from the database, the text and the mark are still there.
  await page.reload();
  await expect(assistantMessages(page).last()).toContainText('Incomplete');
  expect((await messageText(assistantMessages(page).last())).length).toBe(kept.length);
});
