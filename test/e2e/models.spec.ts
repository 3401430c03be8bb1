/**
 * The model screen: a broken GGUF gives a clear error in
 * the UI, the app keeps running, and a good model then loads and chats.
 */
import { join } from 'node:path';
import { brokenModelPath, testModelPath } from '../support/models.ts';
import { assistantMessages, setDefaultSampling, startChat, waitForGrowth, waitIdle, waitModelReady } from './app.ts';
import { expect, test } from './fixtures.ts';

test('a broken GGUF gives a clear error, the app keeps running, and a good model then works', async ({ page, launchHost, dataDir }) => {
  // No --model: a fresh data dir starts on the model screen.
  const host = await launchHost();
  await setDefaultSampling(host, { maxTokens: 8 });
  await page.goto(host.url);
  const pathBox = page.getByRole('textbox', { name: 'Model path' });
  const load = page.getByRole('button', { name: 'Load', exact: true });
  await expect(pathBox).toBeVisible();

  const broken: [string, RegExp][] = [
    [await brokenModelPath('truncated'), /truncated|incomplete|corrupt|not a (valid|usable)/i],
    [await brokenModelPath('notGguf'), /not a (valid |usable )?GGUF/i],
    [await brokenModelPath('directory'), /not a file|directory/i],
    [join(dataDir, 'does-not-exist.gguf'), /no file|not found|does not exist/i],
    [await testModelPath('unsupportedArch'), /architecture|not supported|unsupported/i],
  ];
  for (const [path, message] of broken) {
    await pathBox.fill(path);
    await load.click();
    const alert = page.getByRole('alert').filter({ hasText: message });
    await expect(alert, path).toBeVisible();
    // Still running: the host answers and the screen is still usable.
    await expect(pathBox).toBeEditable();
    expect(host.process.exitCode).toBeNull();
  }

  await pathBox.fill(await testModelPath());
  await load.click();
  await waitModelReady(host);
  await startChat(page, 'Hello after the errors.');
  await waitForGrowth(assistantMessages(page).last(), 0);
  await waitIdle(page);
});
