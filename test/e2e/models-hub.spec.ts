/**
 * The Models screens against a loopback Hugging Face (test/support/hf-emulator.ts) and a home
 * folder where other apps left models (test/support/fake-homes.ts): search, a repository's
 * verdicts, a download with progress, pause and resume, then load and chat; a model of Ollama's
 * loaded in place; and a Hearth model deleted with its stored KV.
 *
 * The host reads the Hub's address from HEARTH_HF_ENDPOINT and the other apps' folders from the
 * fake home's environment.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFakeHome, type FakeHome } from '../support/fake-homes.ts';
import { startHubEmulator, type HubEmulator } from '../support/hf-emulator.ts';
import { testModelPath } from '../support/models.ts';
import { assistantMessages, call, chatWithStoredKv, sendMessage, setDefaultSampling, waitIdle, waitModelReady } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

const repoId = 'hearth-test/tiny-GGUF';
const fileName = 'tiny-Q8_0.gguf';

interface Setup {
  readonly hub: HubEmulator;
  readonly home: FakeHome;
}

const it = test.extend<{ setup: Setup }>({
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  setup: async ({}, use) => {
    const root = await mkdtemp(join(tmpdir(), 'hearth-e2e-home-'));
    const home = await makeFakeHome(root);
    const hub = await startHubEmulator({
      repos: [{ id: repoId, files: [{ path: fileName, source: await testModelPath() }], license: 'apache-2.0', downloads: 4_321, likes: 12 }],
    });
    await use({ hub, home });
    await hub.close();
    await rm(root, { recursive: true, force: true });
  },
});

it('search, a repository and its verdicts, a download paused and resumed, then load and chat', async ({ page, launchHost, setup }) => {
  const host = await launchHost({ env: { ...setup.home.env, HEARTH_HF_ENDPOINT: setup.hub.endpoint } });
  await setDefaultSampling(host, { maxTokens: 8, temperature: 0 });
  await openApp(page, host);
  await page.goto(`${host.origin}/#/models/discover`);

  const search = page.getByRole('searchbox', { name: 'Search Hugging Face' });
  await search.fill('tiny');
  await search.press('Enter');
  await page.getByRole('link', { name: new RegExp(repoId) }).click();
  await expect(page).toHaveURL(new RegExp(`#/models/repo/${repoId}$`));

  // The verdict for this machine, the contexts per KV type and the device they were planned for.
  const row = page.getByTestId(`hub-file-${fileName}`);
  await expect(row.getByTestId(`verdict-${fileName}`)).toHaveText(/^(Runs on GPU|Partly on GPU|Runs in RAM)$/);
  await expect(row.getByRole('list', { name: 'Longest context per KV type' })).toContainText('(default)');
  await expect(page.getByTestId('hub-device')).toHaveText(/^Planned for /);

  // Slow enough to pause while it runs.
  setup.hub.setRate(16 * 1024);
  await row.getByRole('button', { name: 'Download tiny-Q8_0' }).click();
  await page.getByRole('navigation', { name: 'Models' }).getByRole('link', { name: /Downloads/ }).click();
  const item = page.getByRole('listitem', { name: fileName });
  await expect(item.getByRole('progressbar')).toBeVisible();
  await expect(item).toContainText(/Downloading[\d.]+ (B|KB|MB) of [\d.]+ MB/);
  await expect(page.getByTestId('downloads-badge')).toBeVisible();

  await item.getByRole('button', { name: `Pause ${fileName}` }).click();
  await expect(item).toContainText('Paused');
  setup.hub.setRate(0);
  await item.getByRole('button', { name: `Resume ${fileName}` }).click();
  await expect(item).toContainText('Done', { timeout: 30_000 });
  // The resumed download asked for the rest, not the whole file again.
  expect(setup.hub.requests.some((r) => r.server === 'cdn' && r.range !== undefined && !r.range.startsWith('bytes=0-'))).toBe(true);
  await expect(page.getByTestId('downloads-badge')).toHaveCount(0);

  await item.getByRole('button', { name: `Load ${fileName} and chat` }).click();
  await waitModelReady(host);
  await expect(page).toHaveURL(/#\/chat\//);
  await sendMessage(page, 'Hello from a downloaded model.');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);

  // It is in the library now, as Hearth's own.
  await page.goto(`${host.origin}/#/models`);
  await expect(page.getByRole('region', { name: 'Hearth models' }).getByText(fileName)).toBeVisible();
});

it("a model from Ollama's folder is listed, loads in place, and chats", async ({ page, launchHost, setup }) => {
  const ollama = setup.home.expected.find((m) => m.source === 'ollama' && !m.problem);
  expect(ollama, 'the fake home has an Ollama model').toBeDefined();
  const host = await launchHost({ env: { ...setup.home.env, HEARTH_HF_ENDPOINT: setup.hub.endpoint } });
  await setDefaultSampling(host, { maxTokens: 8, temperature: 0 });
  await openApp(page, host);
  await page.goto(`${host.origin}/#/models`);

  const group = page.getByRole('region', { name: 'Ollama models' });
  await expect(group.getByText(ollama!.displayName, { exact: true })).toBeVisible();
  // Other apps' models are theirs: no Delete.
  await expect(group.getByRole('button', { name: /^Delete / })).toHaveCount(0);
  await expect(page.getByTestId('model-folders')).toContainText('Ollama');

  const sizeBefore = (await stat(ollama!.path)).size;
  await group.getByRole('button', { name: /^Load / }).first().click();
  await waitModelReady(host);
  const state = await call<{ model: { model?: { path: string } } }>(host, 'app.state');
  // Loaded where Ollama keeps it, not copied.
  expect(state.ok && state.value.model.model?.path).toBe(ollama!.path);
  expect((await stat(ollama!.path)).size).toBe(sizeBefore);

  await page.getByRole('button', { name: 'New chat', exact: true }).click();
  await sendMessage(page, 'Hello from an Ollama model.');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
});

it('a Hearth model is deleted with its stored KV', async ({ page, launchHost, setup }) => {
  const host = await launchHost({ env: { ...setup.home.env, HEARTH_HF_ENDPOINT: setup.hub.endpoint } });
  // Small chunks, so that one short turn leaves KV on disk (a chunk is stored once full).
  const settings = await call(host, 'settings.update', { modelsDir: setup.home.modelsDir, kvChunkTokens: 16 });
  expect(settings.ok, JSON.stringify(settings)).toBe(true);
  await expect.poll(async () => (await call<{ engine: { state: string } }>(host, 'app.state')).ok).toBe(true);
  const mine = setup.home.expected.find((m) => m.source === 'hearth' && !m.problem);
  expect(mine, 'the fake home has a model in Hearth’s folder').toBeDefined();
  const loaded = await call(host, 'models.load', { path: mine!.path });
  expect(loaded.ok, JSON.stringify(loaded)).toBe(true);
  await chatWithStoredKv(page, host, 'Remember this conversation, every word of it, for it is the one whose memory goes with the model.');
  const usage = await call<{ conversations: number; bytes: number }>(host, 'models.kvUsage', { path: mine!.path });
  expect(usage.ok && usage.value.conversations).toBeGreaterThanOrEqual(1);

  await page.goto(`${host.origin}/#/models`);
  const fileLabel = mine!.path.split('/').at(-1)!;
  await page.getByRole('region', { name: 'Hearth models' }).getByRole('button', { name: `Delete ${fileLabel}` }).click();
  const dialog = page.getByRole('dialog');
  const kv = dialog.getByRole('checkbox', { name: /Also delete its stored KV \(1 conversation, / });
  await expect(kv).not.toBeChecked();
  await kv.check();
  await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(dialog).toBeHidden();

  await expect(page.getByRole('region', { name: 'Local files' }).getByText(fileLabel)).toHaveCount(0);
  await expect(stat(mine!.path)).rejects.toThrow();
  const after = await call<{ conversations: number }>(host, 'models.kvUsage', { path: mine!.path });
  expect(after.ok ? after.value.conversations : 0).toBe(0);
  // The chat itself stays.
  await expect(page.getByRole('navigation', { name: 'Conversations' }).getByRole('link')).toHaveCount(1);
});
