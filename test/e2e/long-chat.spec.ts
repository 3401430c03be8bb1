/**
 * A long chat never hits a wall: on a model trained for 512 tokens, with default settings (the
 * automatic context is then 512, replies get an eighth of it, and the overflow policy is
 * drop-oldest), a chat goes ten turns past its context. Every turn is answered, the divider
 * shows where the model's view begins with the older messages still on screen, the meter reads
 * the view against 512, a reply says what it dropped, the export holds the whole history, and a
 * message above the divider can still be edited.
 */
import { readFile } from 'node:fs/promises';
import type { Locator, Page } from '@playwright/test';
import { tinyModelPath } from '../support/models.ts';
import { allMessages, assistantMessages, call, chatIdOf, messageText, sendMessage, startChat, userMessages, waitIdle } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

/**
 * The default tiny model trained for 512 tokens: the automatic context is the trained length,
 * so a few turns of byte-level tokens fill it with no setting changed.
 */
const model512 = () => tinyModelPath({ contextLength: 512, name: 'Hearth tiny llama 512' }, 'ctx512');

/** Turns after the first one that left messages outside the view. */
const turnsPast = 10;
/** A bound on the turns it may take to fill the context, so a policy that never drops fails fast. */
const maxTurnsToFill = 12;

const words = ['amber', 'birch', 'cobalt', 'delta', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper', 'kestrel', 'lantern', 'meadow', 'nickel', 'orchid'];

/** A short message of a dozen words that no other turn repeats (the turn number and its own words). */
function messageFor(turn: number): string {
  const pick = (k: number) => words[(turn * 7 + k * 3) % words.length];
  return `Message ${turn}: the ${pick(0)} ${pick(1)} crossed a ${pick(2)} ${pick(3)} near the ${pick(4)} gate today.`;
}

const divider = (page: Page): Locator => page.getByRole('separator', { name: "Earlier messages are outside the model's view" });
const meter = (page: Page): Locator => page.getByRole('meter', { name: 'Context' });

/** A reply's own text: the article without its readout, its Continue line and its controls. */
async function replyText(article: Locator): Promise<string> {
  const aside = new Set<string>();
  for (const line of await article.locator('summary').allInnerTexts()) aside.add(line.trim());
  for (const line of await article.getByTestId('continue-offer').allInnerTexts()) for (const part of line.split('\n')) aside.add(part.trim());
  return (await messageText(article))
    .split('\n')
    .filter((line) => !aside.has(line))
    .join('\n')
    .trim();
}

interface StoredMessage {
  readonly id: string;
  readonly parentId: string | null;
  readonly role: 'user' | 'assistant' | 'system';
  readonly content: string;
  readonly status: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly stats?: {
    readonly stopReason?: 'eos' | 'maxTokens' | 'context';
    readonly view?: { readonly contextSize: number; readonly tokens: number; readonly droppedMessages: number; readonly firstMessageId?: string };
  };
}

/** What the host stored of the chat: a cross-check that nothing failed where the DOM cannot say why. */
async function storedMessages(host: Parameters<typeof call>[0], chatId: string): Promise<StoredMessage[]> {
  const detail = await call<{ messages: StoredMessage[] }>(host, 'chats.get', { chatId });
  if (!detail.ok) throw new Error(JSON.stringify(detail.error));
  return detail.value.messages;
}

/**
 * Waits until the reply on screen is written out, in the page and in the store: Send comes back
 * a moment before a sent message's reply shows, so an idle composer alone does not say it is done.
 */
async function settled(page: Page, host: Parameters<typeof call>[0], count: number): Promise<void> {
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(count);
  await expect(assistantMessages(page).last()).not.toHaveAttribute('aria-busy', 'true');
  const chatId = chatIdOf(page);
  await expect.poll(async () => (await storedMessages(host, chatId)).filter((m) => m.status === 'streaming').length).toBe(0);
}

test('a chat goes ten turns past its context: every reply, the divider, the meter, the readout, the export, an edit above the divider', async ({
  page,
  launchHost,
}) => {
  // Up to ~25 turns of 64 tokens each, one engine on a small machine.
  test.setTimeout(120_000);
  const host = await launchHost({ model: await model512() });
  await openApp(page, host);

  const sent: string[] = [];
  let firstDividerTurn = 0;
  for (let turn = 1; firstDividerTurn === 0 || turn <= firstDividerTurn + turnsPast; turn++) {
    const text = messageFor(turn);
    sent.push(text);
    if (turn === 1) await startChat(page, text);
    else await sendMessage(page, text);
    await settled(page, host, turn);
    await expect(userMessages(page)).toHaveCount(turn);
    // The reply finished: no failure, and nothing asks what to do about a full context.
    await expect(page.getByTestId('stop-and-ask')).toHaveCount(0);
    await expect(assistantMessages(page).last()).not.toContainText('The reply failed');
    if (firstDividerTurn === 0 && (await divider(page).count()) > 0) firstDividerTurn = turn;
    expect(firstDividerTurn > 0 || turn < maxTurnsToFill, `no divider after ${turn} turns of a 512-token context`).toBe(true);
  }
  const turns = sent.length;
  expect(turns).toBe(firstDividerTurn + turnsPast);

  // Every turn is on screen, in order: each message sent, then a reply with text of its own.
  const articles = allMessages(page);
  await expect(articles).toHaveCount(2 * turns);
  for (let i = 0; i < turns; i++) {
    await expect(articles.nth(2 * i)).toHaveAttribute('aria-label', 'User message');
    expect(await messageText(articles.nth(2 * i))).toBe(sent[i]);
    await expect(articles.nth(2 * i + 1)).toHaveAttribute('aria-label', 'Assistant message');
    expect(await replyText(articles.nth(2 * i + 1)), `reply ${i + 1}`).not.toBe('');
  }
  const chatId = chatIdOf(page);
  const stored = await storedMessages(host, chatId);
  const failed = stored.filter((m) => m.status === 'error' || m.status === 'incomplete');
  expect(failed, 'no reply failed').toEqual([]);
  expect(stored.filter((m) => m.role === 'assistant' && m.content.trim() === ''), 'no empty reply').toEqual([]);

  // The divider: one, above a message that is not the first, with the older ones still there.
  await expect(divider(page)).toHaveCount(1);
  await expect(divider(page)).toBeVisible();
  const above = divider(page).locator('xpath=preceding-sibling::article');
  const below = divider(page).locator('xpath=following-sibling::article');
  const aboveCount = await above.count();
  expect(aboveCount, 'messages above the divider').toBeGreaterThan(0);
  expect(aboveCount + (await below.count())).toBe(2 * turns);
  await above.first().scrollIntoViewIfNeeded();
  await expect(above.first()).toBeVisible();
  expect(await messageText(above.first())).toBe(sent[0]);
  // It sits where the host says the view begins: above it, exactly the messages left out.
  const lastView = stored.filter((m) => m.role === 'assistant').at(-1)?.stats?.view;
  expect(lastView, 'the last reply reports its view').toBeDefined();
  expect(aboveCount).toBe(lastView?.droppedMessages);
  const firstInView = stored.find((m) => m.id === lastView?.firstMessageId);
  if (firstInView?.role === 'user') expect(await messageText(below.first())).toBe(firstInView.content);

  // The meter: the view against the 512-token context.
  await expect(meter(page)).toBeVisible();
  await expect(meter(page)).toHaveAttribute('aria-valuemax', '512');
  const now = Number(await meter(page).getAttribute('aria-valuenow'));
  expect(now).toBeGreaterThan(0);
  expect(now).toBeLessThanOrEqual(512);
  await expect(meter(page)).toContainText(/^[\d,]+ \/ 512 tokens in view/);
  expect(now).toBe(lastView?.tokens);

  // A reply that moved the view says so in its readout.
  const readouts = (await assistantMessages(page).locator('summary').allInnerTexts()).map((t) => t.trim());
  expect(readouts.filter((t) => /^dropped [\d,]+ older messages? · re-read [\d,]+ tokens/.test(t)), readouts.join('\n')).not.toEqual([]);

  // The export holds the whole history, not only the model's view: every message, from the first.
  await page.getByRole('button', { name: 'Export chat' }).click();
  const dialog = page.getByRole('dialog', { name: 'Export chat' });
  await expect(dialog).toBeVisible();
  const downloading = page.waitForEvent('download');
  await dialog.getByRole('button', { name: 'Download JSON' }).click();
  const exported = JSON.parse(await readFile(await (await downloading).path(), 'utf8')) as { messages: Array<{ role: string; content: string }> };
  expect(exported.messages.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(sent);
  expect(exported.messages.filter((m) => m.role === 'assistant')).toHaveLength(turns);
  const downloadingMd = page.waitForEvent('download');
  await dialog.getByRole('button', { name: 'Download Markdown' }).click();
  const markdown = await readFile(await (await downloadingMd).path(), 'utf8');
  let from = 0;
  for (const text of sent) {
    const at = markdown.indexOf(text, from);
    expect(at, `"${text}" in the Markdown export, after the one before it`).toBeGreaterThanOrEqual(0);
    from = at + text.length;
  }
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Editing a message above the divider: the last user message the model no longer sees, whose
  // branch holds more than the model can read (if the chat had outgrown it by then).
  const aboveUsers = divider(page).locator('xpath=preceding-sibling::article[@aria-label="User message"]');
  const editIndex = (await aboveUsers.count()) - 1;
  expect(editIndex).toBeGreaterThanOrEqual(0);
  const target = aboveUsers.nth(editIndex);
  await target.scrollIntoViewIfNeeded();
  await target.getByRole('button', { name: 'Edit' }).click();
  const editor = page.getByRole('textbox', { name: 'Edit message' });
  const edited = `Message ${editIndex + 1}, edited: the lantern meadow stayed quiet all afternoon long.`;
  await editor.fill(edited);
  await editor.press('Enter');

  // The new branch: the messages before the edited one, the edited one, and a new reply.
  await expect(userMessages(page)).toHaveCount(editIndex + 1);
  await settled(page, host, editIndex + 1);
  const editedArticle = userMessages(page).last();
  await expect(editedArticle).toContainText(edited);
  await expect(editedArticle).toContainText('2 / 2');
  const newReply = assistantMessages(page).last();
  expect(await replyText(newReply), 'the reply to the edited message').not.toBe('');
  await expect(page.getByTestId('stop-and-ask')).toHaveCount(0);
  for (let i = 0; i < editIndex; i++) expect(await messageText(userMessages(page).nth(i))).toBe(sent[i]);
  const afterEdit = await storedMessages(host, chatId);
  const editedStored = afterEdit.find((m) => m.role === 'user' && m.content === edited);
  expect(editedStored, 'the edited message is stored').toBeDefined();
  const replyStored = afterEdit.filter((m) => m.parentId === editedStored?.id);
  expect(replyStored.map((m) => [m.role, m.status, m.error?.code ?? null])).toEqual([['assistant', 'complete', null]]);
  expect(replyStored[0]?.content.trim()).not.toBe('');
  // The old branch is still there, all of it.
  expect(afterEdit.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(expect.arrayContaining(sent));
  // The new branch too holds more than the context, and its own divider and meter say so.
  await expect(divider(page)).toHaveCount(1);
  expect(await divider(page).locator('xpath=preceding-sibling::article').count()).toBeGreaterThan(0);
  await expect(meter(page)).toHaveAttribute('aria-valuemax', '512');
  expect(Number(await meter(page).getAttribute('aria-valuenow'))).toBeLessThanOrEqual(512);

  // Continue: a reply cut short at its automatic max tokens (64 here) writes on in the same
  // message. The model may end a reply itself, and then nothing is offered.
  const offers = page.getByTestId('continue-offer');
  if (replyStored[0]?.stats?.stopReason === 'eos') {
    await expect(offers).toHaveCount(0);
  } else {
    // Only the branch's last reply can be continued.
    await expect(offers).toHaveCount(1);
    await expect(newReply.getByTestId('continue-offer')).toBeVisible();
    const before = replyStored[0]?.content ?? '';
    const beforeStats = JSON.stringify(replyStored[0]?.stats);
    const beforeOnScreen = await replyText(newReply);
    await newReply.getByTestId('continue-reply').click();
    await settled(page, host, editIndex + 1);
    // The continuation's own readout replaces the first one once it is done.
    const continuedReply = async () => (await storedMessages(host, chatId)).find((m) => m.id === replyStored[0]?.id);
    await expect.poll(async () => JSON.stringify((await continuedReply())?.stats)).not.toBe(beforeStats);
    const continued = await continuedReply();
    expect([continued?.status, continued?.error?.code ?? null]).toEqual(['complete', null]);
    expect(continued?.content.startsWith(before), 'the continuation extends the reply').toBe(true);
    // Grown, unless the model ended it at once.
    if (continued?.stats?.stopReason !== 'eos') {
      expect(continued?.content.length).toBeGreaterThan(before.length);
      // The page shows the longer reply (rendered as Markdown, so not compared letter for letter).
      await expect.poll(async () => replyText(newReply)).not.toBe(beforeOnScreen);
    }
    await expect(page.getByTestId('stop-and-ask')).toHaveCount(0);
  }
});
