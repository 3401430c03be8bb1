/**
 * Killing the engine process mid-reply: the host restarts it, the UI
 * says so, the partial reply is kept and marked incomplete, and the next message works.
 *
 * A native crash: SIGSEGV, as llama.cpp dies, mid-reply. The banner names the engine
 * and the signal, and the chat continues with its cache: the next reply's readout shows its
 * history restored from disk (the slot died with the process).
 */
import { assistantMessages, chatWithStoredKv, configureChat, messageText, sendMessage, setDefaultSampling, startChat, waitForGrowth, waitIdle, waitModelReady } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

test('killing the engine mid-reply: banner, partial reply marked incomplete, next message works', async ({ page, host }) => {
  await setDefaultSampling(host, { maxTokens: 30_000, temperature: 1 });
  await openApp(page, host);
  await startChat(page, 'Keep talking.');
  const reply = assistantMessages(page).last();
  await waitForGrowth(reply, 20);

  const pid = await host.enginePid();
  expect(pid, 'the engine process is a child of the host running engine/worker/main.ts').not.toBeNull();
  process.kill(pid ?? 0, 'SIGKILL');

  await expect(page.getByRole('alert').filter({ hasText: /engine/i })).toBeVisible();
  await waitIdle(page);
  await expect(reply).toContainText(/incomplete/i);
  const partial = await messageText(reply);
  expect(partial.length).toBeGreaterThan(0);

  // A new engine process replaced the old one.
  await expect.poll(() => host.enginePid()).not.toBeNull();
  expect(await host.enginePid()).not.toBe(pid);

  // The host reloads the model into the new engine; the UI says so until it is ready.
  await waitModelReady(host);
  await configureChat(host, page, { maxTokens: 8 });
  await sendMessage(page, 'Are you back?');
  await expect(assistantMessages(page)).toHaveCount(2);
  await waitForGrowth(assistantMessages(page).last(), 0, 30_000);
  await waitIdle(page);
  await expect(assistantMessages(page).last()).not.toContainText(/incomplete|error/i);
  // The partial reply is still there, unchanged.
  expect(await messageText(assistantMessages(page).first())).toBe(partial);
});

test('a native crash (SIGSEGV) mid-reply: a banner names the engine and the signal, the chat continues from its cache on disk', async ({ page, host }) => {
  // The tiny model's vocabulary is bytes: ~1 token per character, a few stored chunks.
  const long = Array.from({ length: 60 }, (_, i) => `line ${i} of a long story about the sea.`).join(' ');
  await chatWithStoredKv(page, host, long);
  await configureChat(host, page, { maxTokens: 30_000, temperature: 1 });
  await sendMessage(page, 'Keep talking.');
  const reply = assistantMessages(page).last();
  await waitForGrowth(reply, 20);

  const pid = await host.enginePid();
  expect(pid, 'the engine process is a child of the host running engine/worker/main.ts').not.toBeNull();
  process.kill(pid ?? 0, 'SIGSEGV');

  const banner = page.getByRole('alert').filter({ hasText: /engine/i });
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('SIGSEGV');
  await waitIdle(page);
  await expect(reply).toContainText(/incomplete/i);
  const partial = await messageText(reply);
  expect(partial.length).toBeGreaterThan(0);
  await expect.poll(() => host.enginePid()).not.toBeNull();
  expect(await host.enginePid()).not.toBe(pid);

  await waitModelReady(host);
  await configureChat(host, page, { maxTokens: 8, temperature: 0 });
  await sendMessage(page, 'Are you back?');
  await expect(assistantMessages(page)).toHaveCount(3);
  await waitIdle(page);
  const next = assistantMessages(page).last();
  await expect(next).not.toContainText(/incomplete|error/i);
  await expect(next).toContainText(/restored [\d,]+ tokens from disk in \d+ ms/);
  // Nothing was lost: the cut reply is still there, unchanged.
  expect(await messageText(assistantMessages(page).nth(1))).toBe(partial);
});
