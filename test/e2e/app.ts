/**
 * How the end-to-end tests reach the UI: only through accessible names, as a screen-reader
 * user would. Setup that is not under test (sampling settings)
 * goes through the host's API with the token instead.
 */
import type { Locator, Page } from '@playwright/test';
import type { Result } from '../../engine/contract/index.ts';
import { expect, openApp, type Host } from './fixtures.ts';

export const messageBox = (page: Page): Locator => page.getByRole('textbox', { name: 'Message' });
export const sendButton = (page: Page): Locator => page.getByRole('button', { name: 'Send', exact: true });
export const stopButton = (page: Page): Locator => page.getByRole('button', { name: 'Stop', exact: true });
export const conversations = (page: Page): Locator => page.getByRole('navigation', { name: 'Conversations' });
export const userMessages = (page: Page): Locator => page.getByRole('article', { name: /^User/ });
export const assistantMessages = (page: Page): Locator => page.getByRole('article', { name: /^Assistant/ });
export const allMessages = (page: Page): Locator => page.getByRole('article', { name: /^(User|Assistant)/ });

/** A contract call straight to the host, with the token (for setup, not for what is under test). */
export async function call<T = unknown>(host: Host, name: string, payload: unknown = {}): Promise<Result<T>> {
  const response = await fetch(`${host.origin}/api/call/${name}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${host.token}` },
    body: JSON.stringify(payload),
  });
  return (await response.json()) as Result<T>;
}

/** Sets the sampling new chats start with; fails the test if the host refuses. */
export async function setDefaultSampling(host: Host, sampling: { temperature?: number; topP?: number; maxTokens?: number }): Promise<void> {
  const result = await call(host, 'settings.update', { defaultSampling: sampling });
  expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
}

/** Waits until the model is loaded and the composer is usable. */
export async function waitReady(page: Page): Promise<void> {
  await expect(messageBox(page)).toBeVisible();
  await expect(messageBox(page)).toBeEditable();
}

/** Starts a new chat and sends `text` through the composer. */
export async function startChat(page: Page, text: string): Promise<void> {
  await page.getByRole('button', { name: 'New chat', exact: true }).click();
  await sendMessage(page, text);
}

/** Types `text` into the composer and presses Send. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  await waitReady(page);
  await messageBox(page).fill(text);
  await sendButton(page).click();
}

/** Waits until no reply is streaming: Stop is gone and Send is back. */
export async function waitIdle(page: Page, timeout = 30_000): Promise<void> {
  await expect(stopButton(page)).toHaveCount(0, { timeout });
  await expect(sendButton(page)).toBeVisible({ timeout });
}

/**
 * Opens the chat titled `title` (one reply so far), sends another message and checks that it is
 * answered: the chat goes on after whatever the test changed (settings, a reload).
 */
export async function expectChatGoesOn(page: Page, title: string): Promise<void> {
  await conversations(page).getByRole('link', { name: title }).click();
  await expect(assistantMessages(page)).toHaveCount(1);
  await sendMessage(page, 'And then?');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(2);
  await expect(assistantMessages(page).last()).toContainText(/first token \d+ ms/);
}

/**
 * The text of a message article as a reader sees it, without the names of its controls and
 * the branch position ("1 / 2"), which change when branches are added.
 */
export async function messageText(article: Locator): Promise<string> {
  const controls = new Set((await article.getByRole('button').allInnerTexts()).map((t) => t.trim()));
  return (await article.innerText())
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !controls.has(line) && !/^\d+ \/ \d+$/.test(line))
    .join('\n');
}

/** The id of the chat on screen, from the page's hash route (`#/chat/<id>`). */
export function chatIdOf(page: Page): string {
  const m = /#\/chat\/([^/?#]+)/.exec(page.url());
  if (!m?.[1]) throw new Error(`no chat on screen: ${page.url()}`);
  return decodeURIComponent(m[1]);
}

/** Changes the sampling of the chat on screen (setup: a long reply to stop, a short one to wait for). */
export async function configureChat(host: Host, page: Page, sampling: { temperature?: number; topP?: number; maxTokens?: number }): Promise<void> {
  const result = await call(host, 'chats.configure', { chatId: chatIdOf(page), sampling });
  expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
}

/** Waits until the host reports the model loaded (after a load or an engine restart). */
export async function waitModelReady(host: Host, timeout = 30_000): Promise<void> {
  await expect
    .poll(async () => {
      const state = await call<{ model: { status: string } }>(host, 'app.state');
      return state.ok ? state.value.model.status : state.error.code;
    }, { timeout })
    .toBe('ready');
}

/** Resolves once `article`'s text has grown past `minLength` characters. */
export async function waitForGrowth(article: Locator, minLength: number, timeout = 15_000): Promise<number> {
  let length = 0;
  await expect
    .poll(
      async () => {
        length = (await messageText(article)).length;
        return length;
      },
      { timeout },
    )
    .toBeGreaterThan(minLength);
  return length;
}

/**
 * Opens the app, starts a chat with `prompt` (greedy, 8-token replies), waits for its reply and
 * for its KV to reach the disk store (written just after the reply, off the critical path), and
 * returns the chat's title. Setup for the cache tests: the turn is not what they test.
 */
export async function chatWithStoredKv(page: Page, host: Host, prompt: string, minChunks = 1): Promise<string> {
  await setDefaultSampling(host, { maxTokens: 8, temperature: 0 });
  await openApp(page, host);
  await startChat(page, prompt);
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  const title = (await conversations(page).getByRole('link').first().textContent())?.trim() ?? '';
  await expect
    .poll(async () => {
      const stats = await call<{ chunkCount: number }>(host, 'kv.stats');
      return stats.ok ? stats.value.chunkCount : -1;
    })
    .toBeGreaterThanOrEqual(minChunks);
  return title;
}
