/**
 * Killing the engine process mid-reply (issue 2, "Acceptance"): the host restarts it, the UI
 * says so, the partial reply is kept and marked incomplete, and the next message works.
 */
import { assistantMessages, configureChat, messageText, sendMessage, setDefaultSampling, startChat, waitForGrowth, waitIdle, waitModelReady } from './app.ts';
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
