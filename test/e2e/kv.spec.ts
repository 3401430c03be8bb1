/**
 * Disk-backed KV: a chat reopened after a restart of the host resumes
 * from its stored KV instead of re-reading its history, the readout says so, and /metrics
 * counts the restored tokens.
 */
import { allMessages, assistantMessages, call, conversations, sendMessage, setDefaultSampling, startChat, waitIdle } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1).trim().split(' ')[0]);
}

test('a chat reopened after a restart restores its KV from disk', async ({ page, launchHost, modelPath }) => {
  const first = await launchHost({ model: modelPath });
  await setDefaultSampling(first, { maxTokens: 12, temperature: 0 });
  await openApp(page, first);
  // The tiny model's vocabulary is bytes: ~1 token per character, so this is several chunks.
  const long = Array.from({ length: 120 }, (_, i) => `line ${i} of a long story about the sea.`).join(' ');
  await startChat(page, long);
  await waitIdle(page);
  await sendMessage(page, 'And then?');
  await waitIdle(page);
  await expect(allMessages(page)).toHaveCount(4);
  const title = (await conversations(page).getByRole('link').first().textContent())?.trim() ?? '';
  // The turn's KV is saved right after the reply; a settings read round-trips the host meanwhile.
  expect(await call(first, 'app.state')).toMatchObject({ ok: true });
  await first.stop();

  const second = await launchHost({ model: modelPath });
  await openApp(page, second);
  await conversations(page).getByRole('link', { name: title }).click();
  await expect(allMessages(page)).toHaveCount(4);
  await sendMessage(page, 'Go on.');
  await waitIdle(page);
  await expect(allMessages(page)).toHaveCount(6);
  await expect(assistantMessages(page).last()).toContainText(/restored [\d,]+ tokens from disk in \d+ ms · prefilled \d+/);

  const metrics = await (await fetch(`${second.origin}/metrics?token=${second.token}`)).text();
  expect(sample(metrics, 'hearth_prompt_tokens_total{source="restored"}')).toBeGreaterThan(1000);
  expect(sample(metrics, 'hearth_kv_store_chunks')).toBeGreaterThan(0);
  expect(sample(metrics, 'hearth_kv_store_bytes')).toBeGreaterThan(0);
  expect(sample(metrics, 'hearth_restore_seconds_count')).toBe(1);
});
