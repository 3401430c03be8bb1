/**
 * Chatting through the browser host on the generated tiny model:
 * streaming and Stop, persistence across a host restart, regenerate branches, and model
 * output / user input never becoming live HTML.
 */
import {
  allMessages,
  assistantMessages,
  conversations,
  messageText,
  sendMessage,
  setDefaultSampling,
  startChat,
  stopButton,
  userMessages,
  waitForGrowth,
  waitIdle,
} from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

test('a new chat: the reply streams in and Stop stops it', async ({ page, host }) => {
  // Long enough to be still streaming when Stop is pressed (the tiny model makes ~1 token/ms).
  await setDefaultSampling(host, { maxTokens: 30_000, temperature: 1 });
  await openApp(page, host);

  await startChat(page, 'Tell me a long story.');
  await expect(userMessages(page)).toHaveCount(1);
  await expect(userMessages(page).first()).toContainText('Tell me a long story.');

  const reply = assistantMessages(page).last();
  await expect(stopButton(page)).toBeVisible();
  const first = await waitForGrowth(reply, 0);
  // Streams: the text keeps growing while the reply is in progress.
  await waitForGrowth(reply, first);

  await stopButton(page).click();
  await waitIdle(page);
  await expect(reply).toContainText(/stopped/i);

  // Stopped means stopped: the text no longer grows.
  const stopped = await messageText(reply);
  await page.waitForTimeout(500);
  expect(await messageText(reply)).toBe(stopped);
});

test('a restart of the host keeps the chat and all its messages', async ({ page, launchHost, modelPath }) => {
  const first = await launchHost({ model: modelPath });
  await setDefaultSampling(first, { maxTokens: 12 });
  await openApp(page, first);
  await startChat(page, 'Remember me.');
  await waitIdle(page);
  await sendMessage(page, 'And this too.');
  await waitIdle(page);
  await expect(allMessages(page)).toHaveCount(4);
  const before = await Promise.all((await allMessages(page).all()).map(messageText));
  const links = conversations(page).getByRole('link');
  await expect(links).toHaveCount(1);
  const title = (await links.first().textContent())?.trim() ?? '';
  expect(title).not.toBe('');
  await first.stop();

  const second = await launchHost({ model: modelPath });
  await openApp(page, second);
  const link = conversations(page).getByRole('link', { name: title });
  await expect(link).toHaveCount(1);
  await link.click();
  await expect(allMessages(page)).toHaveCount(4);
  const after = await Promise.all((await allMessages(page).all()).map(messageText));
  expect(after).toEqual(before);
  await expect(userMessages(page).first()).toContainText('Remember me.');
  await expect(userMessages(page).last()).toContainText('And this too.');
});

test('regenerate creates a branch and both branches can be viewed', async ({ page, host }) => {
  // Sampling at temperature 1 so that the two replies (almost surely) differ.
  await setDefaultSampling(host, { maxTokens: 16, temperature: 1 });
  await openApp(page, host);
  await startChat(page, 'Say something.');
  await waitIdle(page);
  const reply = assistantMessages(page).last();
  const firstText = await messageText(reply);

  await reply.getByRole('button', { name: 'Regenerate' }).click();
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  const regenerated = assistantMessages(page).last();
  const secondText = await messageText(regenerated);

  const previous = regenerated.getByRole('button', { name: 'Previous branch' });
  const next = regenerated.getByRole('button', { name: 'Next branch' });
  await expect(previous).toBeEnabled();
  await expect(next).toBeDisabled();

  await expect(regenerated).toContainText('2 / 2');

  await previous.click();
  await expect(assistantMessages(page).last()).toContainText('1 / 2');
  await expect.poll(async () => messageText(assistantMessages(page).last())).toBe(firstText);
  await expect(assistantMessages(page).last().getByRole('button', { name: 'Next branch' })).toBeEnabled();
  await expect(assistantMessages(page).last().getByRole('button', { name: 'Previous branch' })).toBeDisabled();

  await assistantMessages(page).last().getByRole('button', { name: 'Next branch' }).click();
  await expect(assistantMessages(page).last()).toContainText('2 / 2');
  await expect.poll(async () => messageText(assistantMessages(page).last())).toBe(secondText);
});

test('edit creates a branch of the user message', async ({ page, host }) => {
  await setDefaultSampling(host, { maxTokens: 8 });
  await openApp(page, host);
  await startChat(page, 'First version.');
  await waitIdle(page);

  const user = userMessages(page).last();
  await user.getByRole('button', { name: 'Edit' }).click();
  const editor = page.getByRole('textbox', { name: /edit/i });
  await editor.fill('Second version.');
  await editor.press('Enter');
  await waitIdle(page);

  await expect(userMessages(page)).toHaveCount(1);
  await expect(userMessages(page).last()).toContainText('Second version.');
  await expect(assistantMessages(page)).toHaveCount(1);
  await userMessages(page).last().getByRole('button', { name: 'Previous branch' }).click();
  await expect(userMessages(page).last()).toContainText('First version.');
});

test('HTML and script in a message are shown as text, never run', async ({ page, host }) => {
  await setDefaultSampling(host, { maxTokens: 8 });
  await openApp(page, host);
  const payload = '<img src=x onerror="alert(1)"><script>alert(2)</script><a href="javascript:alert(3)">click</a> **bold**';
  await startChat(page, payload);
  await waitIdle(page);

  const user = userMessages(page).last();
  await expect(user).toContainText('onerror');
  await expect(user.locator('img')).toHaveCount(0);
  await expect(user.locator('script')).toHaveCount(0);
  await expect(page.locator('a[href^="javascript:"]')).toHaveCount(0);
  const link = user.getByText('click');
  if ((await link.count()) > 0) await link.first().click();
  // The `noDialogs` fixture fails the test if any alert fired.
  await page.waitForTimeout(200);
});
