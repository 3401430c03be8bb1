/**
 * First run and the keyboard: a fresh data folder, no model, a home folder where no other app
 * left one, and a loopback Hugging Face (test/support/hf-emulator.ts) hosting most of the
 * recommended repositories, each with a small generated model under its real file's name.
 *
 * - The first screen (the library, with nothing loaded) and Home show the onboarding panel: each
 *   hosted entry has this machine's verdict, one is marked as the recommendation, the entries
 *   whose repository is missing say so each on its own, and "Download and chat" downloads, loads
 *   and opens a chat that answers.
 * - A Hub answering 5xx gives the panel (and Discover's search) a retry that works once it recovers.
 * - The Models screens by keyboard alone: Discover, a search, a result opened with Enter, a
 *   file's Download button, and the delete dialog closed with Escape, focus back on its button.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { recommendedModels } from '../../engine/host/models.ts';
import { makeFakeHome } from '../support/fake-homes.ts';
import { startHubEmulator, type EmulatorRepo, type HubEmulator } from '../support/hf-emulator.ts';
import { testModelPath, tinyModelPath } from '../support/models.ts';
import { assistantMessages, call, sendMessage, setDefaultSampling, waitIdle, waitModelReady } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

/** The recommended repositories the emulator hosts, with their files' real names; the others are missing. */
const hosted: Readonly<Record<string, string>> = {
  'Qwen/Qwen2.5-0.5B-Instruct-GGUF': 'qwen2.5-0.5b-instruct-q4_k_m.gguf',
  'bartowski/Llama-3.2-1B-Instruct-GGUF': 'Llama-3.2-1B-Instruct-Q4_K_M.gguf',
  'bartowski/Llama-3.2-3B-Instruct-GGUF': 'Llama-3.2-3B-Instruct-Q4_K_M.gguf',
  'bartowski/Qwen2.5-7B-Instruct-GGUF': 'Qwen2.5-7B-Instruct-Q4_K_M.gguf',
};
const missing = recommendedModels.filter((m) => !(m.repo in hosted));

/** A model's info (not its tree, not a search): what a repository's page and the panel read first. */
const modelInfo = /^\/api\/models\/[^/?]+\/[^/?]+$/;

interface Setup {
  readonly hub: HubEmulator;
  /** HOME and XDG folders that hold no model. */
  readonly env: NodeJS.ProcessEnv;
}

const it = test.extend<{ setup: Setup }>({
  // eslint-disable-next-line no-empty-pattern -- Playwright requires the destructuring form.
  setup: async ({}, use) => {
    const root = await mkdtemp(join(tmpdir(), 'hearth-e2e-first-run-'));
    const home = join(root, 'home');
    await mkdir(home);
    const repos: EmulatorRepo[] = [];
    for (const [id, file] of Object.entries(hosted)) {
      // Loadable llama models, each named after its repository.
      const source = await tinyModelPath({ name: id.split('/')[1]!.replace(/-GGUF$/, '') }, 'onboarding');
      repos.push({ id, files: [{ path: file, source }], license: 'apache-2.0' });
    }
    const hub = await startHubEmulator({ repos });
    // OLLAMA_MODELS empty: the host's own environment must not point at a real folder.
    const env = { HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), XDG_CONFIG_HOME: join(home, '.config'), OLLAMA_MODELS: '', HEARTH_HF_ENDPOINT: hub.endpoint };
    await use({ hub, env });
    await hub.close();
    await rm(root, { recursive: true, force: true });
  },
});

const onboarding = (page: Page): Locator => page.getByTestId('onboarding');
const entry = (page: Page, name: string): Locator => onboarding(page).getByRole('listitem', { name: new RegExp(`^${name.replace(/\./g, '\\.')}(,|$)`) });

it('first run: verdicts for this machine, one recommended, then Download and chat downloads, loads, opens a chat that answers', async ({ page, launchHost, setup }) => {
  const host = await launchHost({ env: setup.env });
  await setDefaultSampling(host, { maxTokens: 8, temperature: 0 });
  await openApp(page, host);
  // With nothing loaded, boot leads to the library, which shows the panel; Home shows it too.
  await expect(page).toHaveURL(/#\/models$/);
  await expect(onboarding(page)).toBeVisible();
  await page.goto(`${host.origin}/#/`);
  await expect(page.getByRole('heading', { level: 1, name: 'Hearth' })).toBeVisible();

  const panel = onboarding(page);
  await expect(panel.getByRole('heading', { name: 'Get a model to chat with' })).toBeVisible();
  for (const model of recommendedModels.filter((m) => m.repo in hosted)) {
    await expect(entry(page, model.name).getByTestId(`onboarding-verdict-${model.id}`)).toHaveText(/^(Runs on GPU|Partly on GPU|Runs in RAM)$/);
  }
  // A missing repository is that entry's problem, said there; the others are unaffected.
  for (const model of missing) {
    const row = entry(page, model.name);
    await expect(row).toContainText(/not found|does not exist|no .*repository/i);
    await expect(row.getByRole('button', { name: `Download ${model.name} and chat` })).toBeDisabled();
  }
  await expect(panel.getByText('Some details could not be fetched from Hugging Face.')).toHaveCount(0);

  await expect(panel.getByTestId('recommended-marker')).toHaveCount(1);
  await expect(panel.getByTestId('recommended-marker')).toHaveText('Recommended for this machine');
  const best = panel.getByRole('listitem', { name: /, recommended for this machine$/ });
  const bestName = (await best.getAttribute('aria-label'))!.replace(/, recommended for this machine$/, '');
  expect(recommendedModels.find((m) => m.name === bestName)?.repo ?? '', 'a hosted model is recommended').toMatch(new RegExp(Object.keys(hosted).map((r) => r.replace(/\./g, '\\.')).join('|')));

  // Slow enough to see it going.
  setup.hub.setRate(16 * 1024);
  await best.getByRole('button', { name: `Download ${bestName} and chat` }).click();
  await expect(best.getByRole('progressbar', { name: `Download of ${bestName}` })).toBeVisible();
  await expect(best).toContainText('A new chat opens when it is done.');
  await expect(best).toContainText(/Downloading[\d.]+ (B|KB|MB) of [\d.]+ MB/);
  setup.hub.setRate(0);

  await waitModelReady(host);
  await expect(page).toHaveURL(/#\/chat\//);
  await sendMessage(page, 'Hello from the first model.');
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  const state = await call<{ model: { model?: { path: string } } }>(host, 'app.state');
  expect(state.ok && state.value.model.model?.path).toMatch(new RegExp(`${hosted[recommendedModels.find((m) => m.name === bestName)!.repo]!.replace(/\./g, '\\.')}$`));
});

it('a Hub answering 5xx: the panel and the search offer a retry, which works once the Hub recovers', async ({ page, launchHost, setup }) => {
  // Every recommended repository's info fails once: the first round of the panel's reads.
  setup.hub.failNext(modelInfo, { status: 503, count: recommendedModels.length });
  const host = await launchHost({ env: setup.env });
  await openApp(page, host);

  const panel = onboarding(page);
  await expect(panel.getByText('Some details could not be fetched from Hugging Face.')).toBeVisible();
  await expect(entry(page, recommendedModels[0]!.name)).toContainText('HTTP 503');
  await expect(panel.getByTestId('recommended-marker')).toHaveCount(0);
  // The fault is spent: every repository was asked once.
  expect(setup.hub.requests.filter((r) => modelInfo.test(r.path)).length).toBe(recommendedModels.length);

  await panel.getByRole('button', { name: 'Try again' }).click();
  await expect(panel.getByText('Some details could not be fetched from Hugging Face.')).toHaveCount(0);
  await expect(panel.getByTestId('recommended-marker')).toHaveCount(1);
  for (const model of recommendedModels.filter((m) => m.repo in hosted)) {
    await expect(entry(page, model.name).getByTestId(`onboarding-verdict-${model.id}`)).toBeVisible();
  }

  // The same for a search.
  setup.hub.failNext(/^\/api\/models\?/, { status: 502 });
  await page.goto(`${host.origin}/#/models/discover`);
  const alert = page.getByRole('alert').filter({ hasText: 'Hugging Face could not be searched.' });
  await expect(alert).toContainText('HTTP 502');
  await alert.getByRole('button', { name: 'Try again' }).click();
  await expect(alert).toHaveCount(0);
  await expect(page.getByRole('link', { name: /bartowski\/Llama-3\.2-1B-Instruct-GGUF/ })).toBeVisible();
});

/** Presses Tab (or Shift+Tab) until `target` has the focus; fails after `max` presses. */
async function tabTo(page: Page, target: Locator, options: { back?: boolean; max?: number } = {}): Promise<void> {
  const key = options.back ? 'Shift+Tab' : 'Tab';
  for (let i = 0; i < (options.max ?? 80); i++) {
    // `:focus` on the target itself (this file is checked without the DOM types).
    if (await target.evaluate((el) => (el as unknown as { matches(selector: string): boolean }).matches(':focus')).catch(() => false)) return;
    await page.keyboard.press(key);
  }
  await expect(target, `reachable with ${key}`).toBeFocused({ timeout: 1 });
}

it('the Models screens by keyboard: Discover, a search, a result, its Download button, and the delete dialog closed with Escape', async ({ page, launchHost, setup }) => {
  const root = await mkdtemp(join(tmpdir(), 'hearth-e2e-keys-'));
  try {
    const fake = await makeFakeHome(root);
    await setup.hub.addRepo({ id: 'hearth-test/tiny-GGUF', files: [{ path: 'tiny-Q8_0.gguf', source: await testModelPath() }] });
    const host = await launchHost({ env: { ...fake.env, HEARTH_HF_ENDPOINT: setup.hub.endpoint } });
    expect(await call(host, 'settings.update', { modelsDir: fake.modelsDir })).toMatchObject({ ok: true });
    await openApp(page, host);
    await page.goto(`${host.origin}/#/models`);
    const tabs = page.getByRole('navigation', { name: 'Models' });
    await expect(page.getByRole('region', { name: 'Hearth models' })).toBeVisible();

    await tabTo(page, tabs.getByRole('link', { name: 'Discover' }));
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/#\/models\/discover$/);

    const search = page.getByRole('searchbox', { name: 'Search Hugging Face' });
    await tabTo(page, search);
    await page.keyboard.type('tiny');
    await page.keyboard.press('Enter');
    const result = page.getByRole('link', { name: /hearth-test\/tiny-GGUF/ });
    await expect(page.getByTestId('hub-results').getByRole('link')).toHaveCount(1);
    await tabTo(page, result);
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/#\/models\/repo\/hearth-test\/tiny-GGUF$/);

    const download = page.getByRole('button', { name: 'Download tiny-Q8_0' });
    await expect(download).toBeVisible();
    await tabTo(page, download);

    // Back to the library the way it came, then to a Hearth model's Delete.
    await tabTo(page, tabs.getByRole('link', { name: 'Library' }), { back: true });
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/#\/models$/);
    const remove = page.getByRole('region', { name: 'Hearth models' }).getByRole('button', { name: 'Delete hearth-own.gguf' });
    await expect(remove).toBeVisible();
    await tabTo(page, remove);
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: /^Delete / });
    await expect(dialog).toBeVisible();
    // The focus moved into the dialog.
    await expect(dialog.locator(':focus')).toHaveCount(1);
    await page.keyboard.press('Escape');
    await expect(dialog).toBeHidden();
    await expect(remove).toBeFocused();
    // Nothing was deleted.
    await expect(remove).toBeVisible();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
