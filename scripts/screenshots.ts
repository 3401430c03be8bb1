/**
 * `npm run screenshots -- --model FILE.gguf`: the README's screenshots, taken from a real session.
 *
 * It builds nothing: run `npm run build` first. It starts the browser host on a temporary data
 * folder, drives Chromium through two turns of a chat and one of a second chat, restarts the host
 * (a chat reopened later), asks the first chat once more so its reply restores its history from
 * disk, turns the local API server on and sends it an agent's two requests (the second with a
 * changed timestamp at the top of its system prompt, so it misses the cache), and photographs
 * the chat with that reply's readout, the Server screen, the Cache view, the cache settings and
 * the memory planner.
 *
 * Use a small trained model, so the text is readable: the generated test model writes noise.
 * The model comes from `--model` or HEARTH_SCREENSHOT_MODEL; Chromium from CHROMIUM_PATH or
 * /usr/bin/chromium. Replies are sampled, so each run's text differs.
 *
 * The Models screens need no model (`--only models`): a loopback Hugging Face
 * (test/support/hf-emulator.ts) hosts the recommended repositories, and a home folder holds
 * models of several apps. Their files are real models' headers (published shapes, llama.cpp's
 * quantization recipes) followed by a hole to the files' full sizes: the library's figures and the
 * planner's verdicts, computed by the real engine on the machine that runs this, are those of the
 * real files, without their weights on disk. It photographs first run's panel, the library, a
 * repository's page with its verdicts and the download queue with one download running (slowed
 * down) and one paused.
 *
 * The remote engine's screens need no model either (`--only remote`): a real llama-server (the
 * tests' build, test/support/llama-server.ts) serves the generated test model under the name
 * "tiny-llama", greedy and to a fixed length (`--ignore-eos`), so each run writes the same noise.
 * A host with no model adds it in Settings → Engines, runs a new chat on it for two turns, and it
 * photographs the engine's row, the chat with the second reply's readout (the server's prefix cache
 * held the first turn) and the Cache view of that engine.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { referenceModels } from '../engine/worker/fit-reference.ts';
import { startHubEmulator, type EmulatorRepo, type HubEmulator } from '../test/support/hf-emulator.ts';
import { freePort, repoRoot, startHost, type Host } from '../test/support/host.ts';
import { startLlamaServer, type LlamaServer } from '../test/support/llama-server.ts';
import { testModelPath } from '../test/support/models.ts';
import { LLAMA_3_2_3B, referenceGguf, writeSparseModel, type ReferenceGgufQuant, type ReferenceGgufShape } from '../test/support/reference-gguf.ts';

const usage = `Usage: npm run screenshots -- --model FILE.gguf [--out DIR] [--threads N] [--only chat|models|remote]

  --model FILE.gguf          the model to chat with (or HEARTH_SCREENSHOT_MODEL); a small trained
                             model (not needed with --only models or --only remote)
  --out DIR                  where the PNGs go (default docs/screenshots)
  --threads N                llama.cpp threads (default 2)
  --only chat|models|remote  take only the chat and cache screenshots, only the Models screens', or
                             only the remote engine's (llama-server is built first if need be)

Run \`npm run build\` first. Chromium: CHROMIUM_PATH, else /usr/bin/chromium.
`;

const viewport = { width: 1280, height: 800 };

/** The session: written in the manner the model was trained on, so its continuations read well. */
const firstChat = [
  'It was a fine morning at Longbourn, and Elizabeth walked out with her sister.',
  'What did Jane say of Mr. Bingley?',
  'And how did the evening at Netherfield end?',
];
const secondChat = ['Tell me of Captain Wentworth and Anne Elliot.'];

function fail(message: string): never {
  process.stderr.write(`screenshots: ${message}\n\n${usage}`);
  process.exit(2);
}

/** A contract call to the host with its token: setup that the pictures do not show. */
async function call(host: Host, name: string, payload: unknown = {}): Promise<unknown> {
  const response = await fetch(`${host.origin}/api/call/${name}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${host.token}` },
    body: JSON.stringify(payload),
  });
  const result = (await response.json()) as { ok: boolean; value?: unknown; error?: unknown };
  if (!result.ok) throw new Error(`${name} failed: ${JSON.stringify(result.error)}`);
  return result.value;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

const messageBox = (page: Page): Locator => page.getByRole('textbox', { name: 'Message' });
const appNav = (page: Page): Locator => page.getByRole('navigation', { name: 'App' });
const conversations = (page: Page): Locator => page.getByRole('navigation', { name: 'Conversations' });
const assistantMessages = (page: Page): Locator => page.getByRole('article', { name: /^Assistant/ });

async function openApp(page: Page, host: Host): Promise<void> {
  await page.goto(host.url);
  await conversations(page).waitFor();
}

async function newChat(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'New chat', exact: true }).click();
  await until('an empty chat', async () => (await assistantMessages(page).count()) === 0);
}

/** Sends `text` through the composer and waits until the reply has finished. */
async function send(page: Page, text: string): Promise<void> {
  const replies = await assistantMessages(page).count();
  await messageBox(page).waitFor();
  await until('the composer', () => messageBox(page).isEditable());
  await messageBox(page).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await until('the reply', async () => (await assistantMessages(page).count()) > replies);
  await page.getByRole('button', { name: 'Stop', exact: true }).waitFor({ state: 'detached', timeout: 600_000 });
  // The readout appears once the reply's figures are in.
  await assistantMessages(page).last().locator('details summary').waitFor();
}

/** Waits until every turn so far is in the KV store (saved just after each reply). */
async function waitSaved(host: Host): Promise<void> {
  await until('the KV store', async () => {
    const stats = (await call(host, 'kv.stats')) as { chunkCount: number };
    return stats.chunkCount > 0;
  });
  await new Promise((res) => setTimeout(res, 1000));
}

/**
 * An agent's two requests through the OpenAI client: the second sends the same conversation with
 * the clock in its system prompt moved on, which the cache cannot reuse past, so its log row
 * explains the miss.
 */
async function agentRequests(host: Host, model: string): Promise<void> {
  await call(host, 'server.configure', { enabled: true, port: await freePort() });
  const state = (await call(host, 'server.state')) as { url: string; key: string };
  const client = new OpenAI({ baseURL: state.url, apiKey: state.key, maxRetries: 0 });
  const system = (time: string): string => `You are a careful reader of novels. The time is ${time}. Answer in the manner of the book.`;
  const user = 'Describe the morning on which Emma Woodhouse first met Harriet Smith, and what Emma resolved to do for her friend that very day.';
  for (const time of ['10:31:02', '10:31:09']) {
    await client.chat.completions.create({ model, messages: [{ role: 'system', content: system(time) }, { role: 'user', content: user }], max_tokens: 48, temperature: 0.5 });
  }
}

/** What the page-side code below uses of a DOM element (this file is checked without the DOM types). */
interface PaneElement {
  readonly parentElement: PaneElement | null;
  readonly scrollHeight: number;
  readonly clientHeight: number;
  getBoundingClientRect(): { top: number };
  scrollIntoView(options: { block: 'start' }): void;
  scrollBy(x: number, y: number): void;
}

/** The height the window needs to show all of the scrolling pane that holds `inside`. */
async function paneHeight(inside: Locator): Promise<number> {
  return inside.evaluate((node) => {
    let pane = node as unknown as PaneElement;
    for (let up = pane.parentElement; up !== null && pane.scrollHeight <= pane.clientHeight; up = up.parentElement) pane = up;
    return Math.ceil(pane.getBoundingClientRect().top + pane.scrollHeight);
  });
}

/** Scrolls `target` to the top of its pane (as far as the pane scrolls), with a little room above it. */
async function scrollToTop(target: Locator): Promise<void> {
  await target.evaluate((node) => {
    const el = node as unknown as PaneElement;
    el.scrollIntoView({ block: 'start' });
    let pane = el;
    for (let up = pane.parentElement; up !== null && pane.scrollHeight <= pane.clientHeight; up = up.parentElement) pane = up;
    pane.scrollBy(0, -24);
  });
  await target.page().waitForTimeout(300);
}

/** The chat, the Server screen, the Cache view, the cache settings and the memory planner, from a real session with `model`. */
async function chatScreens(browser: Browser, model: string, threads: number, outDir: string): Promise<string[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hearth-screenshots-'));
  const hosts: Host[] = [];
  try {
    const page = await browser.newPage({ viewport, colorScheme: 'light' });

    // The first sitting: two turns of one chat, one of another.
    const first = await startHost({ dataDir, model: resolve(model), threads });
    hosts.push(first);
    await call(first, 'settings.update', { defaultSampling: { temperature: 0.5, topP: 0.9, maxTokens: 240 } });
    await openApp(page, first);
    await newChat(page);
    for (const text of firstChat.slice(0, 2)) await send(page, text);
    await newChat(page);
    for (const text of secondChat) await send(page, text);
    await waitSaved(first);
    await first.stop();

    // Later: a fresh host on the same data folder; the first chat answers from its stored KV.
    const later = await startHost({ dataDir, model: resolve(model), threads });
    hosts.push(later);
    await openApp(page, later);
    await conversations(page).getByRole('link').filter({ hasText: firstChat[0]?.slice(0, 20) ?? '' }).click();
    await until('the first chat', async () => (await assistantMessages(page).count()) === 2);
    await send(page, firstChat[2] ?? '');
    const readout = assistantMessages(page).last().locator('details');
    await readout.locator('summary').click();
    await readout.scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(outDir, 'chat-readout.png') });

    await agentRequests(later, basename(model).replace(/\.gguf$/i, ''));
    await appNav(page).getByRole('link', { name: 'Server' }).click();
    await page.getByTestId('server-cache-miss').first().locator('summary').click();
    // The whole screen, the log and its cache miss at the bottom: a window as tall as the view.
    await page.setViewportSize({ width: viewport.width, height: await paneHeight(page.getByTestId('server-screen')) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'server.png') });
    await page.setViewportSize(viewport);

    await appNav(page).getByRole('link', { name: 'Cache' }).click();
    await page.getByRole('region', { name: 'Recent turns', exact: true }).getByRole('table').waitFor();
    // A few seconds of live samples, so the memory chart has a line.
    await page.waitForTimeout(8000);
    // The view scrolls inside the window: a window as tall as the view shows all of it at once.
    await page.setViewportSize({ width: viewport.width, height: await paneHeight(page.getByRole('heading', { level: 1, name: 'Cache' })) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'cache-view.png') });
    await page.setViewportSize(viewport);

    await appNav(page).getByRole('link', { name: 'Settings' }).click();
    const cache = page.getByRole('group', { name: 'Cache' });
    await cache.getByText(/^Using /).waitFor();
    await scrollToTop(cache);
    await page.screenshot({ path: join(outDir, 'cache-settings.png') });

    const planner = page.getByRole('region', { name: 'Memory planner', exact: true });
    await planner.getByRole('table').first().waitFor();
    await scrollToTop(planner);
    await page.screenshot({ path: join(outDir, 'memory-planner.png') });
    return ['chat-readout.png', 'server.png', 'cache-view.png', 'cache-settings.png', 'memory-planner.png'];
  } catch (e) {
    for (const host of hosts) process.stderr.write(host.output());
    throw e;
  } finally {
    for (const host of hosts) await host.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The remote chat's two turns: the second resends the first, which the server's prefix cache holds. */
const remoteChat = ['Summarise last night\'s deploy log for the on-call channel.', 'And which services restarted?'];

/** Settings → Engines with the engine online, a chat on it, and the Cache view of its /metrics, against a real llama-server. */
async function remoteScreens(browser: Browser, outDir: string): Promise<string[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hearth-screenshots-'));
  let host: Host | null = null;
  let server: LlamaServer | null = null;
  try {
    const page = await browser.newPage({ viewport, colorScheme: 'light' });
    // The model id the server reports is the file's path unless it is given a name.
    server = await startLlamaServer({ model: await testModelPath(), extraArgs: ['--ignore-eos', '--alias', 'tiny-llama'] });
    host = await startHost({ dataDir });
    // Greedy and a fixed length: the random test model writes the same noise on every run.
    await call(host, 'settings.update', { defaultSampling: { temperature: 0, maxTokens: 40 } });
    await openApp(page, host);

    await appNav(page).getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Add engine' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add engine' });
    await dialog.getByLabel('Name').fill('GPU box');
    await dialog.getByLabel('Base URL').fill(server.baseUrl);
    await dialog.getByLabel('Kind').selectOption({ label: 'llama-server' });
    await dialog.getByRole('button', { name: 'Test' }).click();
    await dialog.getByTestId('engine-test-result').getByText(/model/).waitFor();
    await dialog.getByRole('button', { name: 'Save' }).click();
    const row = page.getByRole('listitem', { name: 'GPU box' });
    await row.getByTestId('engine-status').getByText(/^Online/).waitFor();
    await scrollToTop(page.getByRole('heading', { level: 2, name: 'Engines' }));
    await page.screenshot({ path: join(outDir, 'engines.png') });

    await page.getByRole('button', { name: 'New chat', exact: true }).click();
    await page.getByTestId('chat-engine').click();
    await page.getByRole('dialog', { name: 'Where this chat runs' }).getByRole('button', { name: /^GPU box · / }).click();
    await page.getByTestId('chat-engine').getByText(/^GPU box/).waitFor();
    for (const text of remoteChat) await send(page, text);
    const readout = assistantMessages(page).last().getByTestId('reply-readout');
    await readout.locator('summary').getByText(/Server cache: [1-9]/).waitFor();
    await readout.locator('summary').click();
    await readout.scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(outDir, 'remote-chat.png') });

    await appNav(page).getByRole('link', { name: 'Cache' }).click();
    await page.getByLabel('Engine').selectOption({ label: 'GPU box' });
    await page.getByTestId('remote-hit-rate').waitFor();
    // A few seconds of samples, so the chart has a line.
    await page.waitForTimeout(8000);
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, await paneHeight(page.getByRole('heading', { level: 1, name: 'Cache' }))) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'remote-cache.png') });
    return ['engines.png', 'remote-chat.png', 'remote-cache.png'];
  } catch (e) {
    if (host) process.stderr.write(host.output());
    if (server) process.stderr.write(server.log());
    throw e;
  } finally {
    await host?.stop();
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const reference = (name: string): ReferenceGgufShape => {
  const model = referenceModels.find((m) => m.name === name);
  if (!model) throw new Error(`no reference model ${name}`);
  return model;
};

/** The small recommended models, from their config.json on Hugging Face (both tie their embeddings). */
const smallShapes: Readonly<Record<string, ReferenceGgufShape>> = {
  'Qwen2.5-0.5B': {
    name: 'Qwen2.5-0.5B-Instruct',
    arch: 'qwen2',
    layers: 24,
    nEmbd: 896,
    nFf: 4864,
    nHead: 14,
    nHeadKv: 2,
    headDim: 64,
    nVocab: 151936,
    contextLength: 32768,
    ropeBase: 1e6,
    rmsEps: 1e-6,
    qkvBias: true,
    tiedEmbeddings: true,
  },
  'Llama-3.2-1B': {
    name: 'Llama-3.2-1B-Instruct',
    arch: 'llama',
    layers: 16,
    nEmbd: 2048,
    nFf: 8192,
    nHead: 32,
    nHeadKv: 8,
    headDim: 64,
    nVocab: 128256,
    contextLength: 131072,
    ropeBase: 500000,
    rmsEps: 1e-5,
    qkvBias: false,
    tiedEmbeddings: true,
  },
  'Llama-3.2-3B': { ...LLAMA_3_2_3B, name: 'Llama-3.2-3B-Instruct' },
};

type Quant = Extract<ReferenceGgufQuant, 'Q4_K_M' | 'Q5_K_M' | 'Q6_K' | 'Q8_0' | 'Q4_0'>;

/**
 * Writes `path` as a `quant` file of `shape`: the real header, then a hole as long as the weights
 * would be (a sparse file: its size is the real file's, its disk use the header's). Returns its size.
 */
async function writeShapeFile(path: string, shape: ReferenceGgufShape, quant: Quant, title: string): Promise<number> {
  const file = referenceGguf(shape, quant, { name: title });
  await writeSparseModel(path, file.header, file.fileBytes);
  return file.fileBytes;
}

/** The recommended repositories (engine/host/models.ts) with their Q4_K_M files' real names; the 7B one has more quantizations, for its page. */
async function hubRepos(dir: string): Promise<EmulatorRepo[]> {
  const repo = async (id: string, shape: ReferenceGgufShape, files: ReadonlyArray<readonly [string, Quant]>, downloads: number, likes: number, days: number): Promise<EmulatorRepo> => {
    const written = [];
    for (const [name, quant] of files) {
      const source = join(dir, id, name);
      await writeShapeFile(source, shape, quant, shape.name.replace(/-/g, ' '));
      written.push({ path: name, source });
    }
    return { id, files: written, license: id.startsWith('Qwen/') || id.includes('Qwen') ? 'apache-2.0' : 'llama3.2', downloads, likes, lastModified: new Date(Date.now() - days * 86_400_000).toISOString() };
  };
  const q7 = { ...reference('Qwen2.5-7B'), name: 'Qwen2.5-7B-Instruct' };
  return Promise.all([
    repo('Qwen/Qwen2.5-0.5B-Instruct-GGUF', smallShapes['Qwen2.5-0.5B']!, [['qwen2.5-0.5b-instruct-q4_k_m.gguf', 'Q4_K_M']], 61_204, 138, 240),
    repo('bartowski/Llama-3.2-1B-Instruct-GGUF', smallShapes['Llama-3.2-1B']!, [['Llama-3.2-1B-Instruct-Q4_K_M.gguf', 'Q4_K_M']], 148_770, 152, 200),
    repo('bartowski/Llama-3.2-3B-Instruct-GGUF', smallShapes['Llama-3.2-3B']!, [['Llama-3.2-3B-Instruct-Q4_K_M.gguf', 'Q4_K_M']], 201_355, 187, 200),
    repo(
      'bartowski/Qwen2.5-7B-Instruct-GGUF',
      q7,
      [
        ['Qwen2.5-7B-Instruct-Q4_K_M.gguf', 'Q4_K_M'],
        ['Qwen2.5-7B-Instruct-Q5_K_M.gguf', 'Q5_K_M'],
        ['Qwen2.5-7B-Instruct-Q8_0.gguf', 'Q8_0'],
      ],
      96_512,
      113,
      310,
    ),
    repo('bartowski/Meta-Llama-3.1-8B-Instruct-GGUF', { ...reference('Llama-3.1-8B'), name: 'Meta-Llama-3.1-8B-Instruct' }, [['Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf', 'Q4_K_M']], 183_904, 245, 290),
    repo('bartowski/Qwen2.5-14B-Instruct-GGUF', { ...reference('Qwen2.5-14B'), name: 'Qwen2.5-14B-Instruct' }, [['Qwen2.5-14B-Instruct-Q4_K_M.gguf', 'Q4_K_M']], 54_310, 96, 310),
  ]);
}

/** A home folder where LM Studio, Ollama and GPT4All left models, and Hearth's own folder beside it. */
async function showcaseHome(root: string): Promise<{ env: NodeJS.ProcessEnv; modelsDir: string }> {
  const home = join(root, 'home');
  const data = join(home, '.local', 'share');
  const modelsDir = join(home, 'Models');
  await writeShapeFile(join(modelsDir, 'Llama-3.2-3B-Instruct-Q4_K_M.gguf'), smallShapes['Llama-3.2-3B']!, 'Q4_K_M', 'Llama 3.2 3B Instruct');
  await writeShapeFile(join(modelsDir, 'qwen2.5-0.5b-instruct-q4_k_m.gguf'), smallShapes['Qwen2.5-0.5B']!, 'Q4_K_M', 'Qwen2.5 0.5B Instruct');
  await writeShapeFile(
    join(home, '.lmstudio', 'models', 'lmstudio-community', 'Meta-Llama-3.1-8B-Instruct-GGUF', 'Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf'),
    reference('Llama-3.1-8B'),
    'Q4_K_M',
    'Meta Llama 3.1 8B Instruct',
  );
  // Ollama: a manifest naming its blob by digest (of the header here: the blob has no weights to hash).
  const ollama = join(home, '.ollama', 'models');
  const digest = createHash('sha256').update('qwen2.5:14b').digest('hex');
  await writeShapeFile(join(ollama, 'blobs', `sha256-${digest}`), reference('Qwen2.5-14B'), 'Q4_K_M', 'Qwen2.5 14B Instruct');
  const manifest = join(ollama, 'manifests', 'registry.ollama.ai', 'library', 'qwen2.5', '14b');
  await mkdir(dirname(manifest), { recursive: true });
  await writeFile(manifest, JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: 1 }] }));
  await writeShapeFile(join(data, 'nomic.ai', 'GPT4All', 'Meta-Llama-3-8B-Instruct.Q4_0.gguf'), { ...reference('Llama-3.1-8B'), contextLength: 8192 }, 'Q4_0', 'Meta Llama 3 8B Instruct');
  return { env: { HOME: home, XDG_DATA_HOME: data, XDG_CONFIG_HOME: join(home, '.config'), OLLAMA_MODELS: '' }, modelsDir };
}

/** First run's panel, the library, a repository's page and the download queue. */
async function modelsScreens(browser: Browser, threads: number, outDir: string): Promise<string[]> {
  // A short name: the library shows the paths.
  const root = await mkdtemp(join(tmpdir(), 'hearth-'));
  const hosts: Host[] = [];
  let hub: HubEmulator | null = null;
  try {
    const page = await browser.newPage({ viewport, colorScheme: 'light' });
    hub = await startHubEmulator({ repos: [] });
    // The emulator hashes every file (its holes too): the repositories side by side.
    await Promise.all((await hubRepos(join(root, 'hub'))).map((repo) => hub!.addRepo(repo)));
    const hubEnv = { HEARTH_HF_ENDPOINT: hub.endpoint };

    // First run: a home with no model anywhere.
    const emptyHome = join(root, 'empty-home');
    await mkdir(emptyHome);
    const first = await startHost({ dataDir: join(root, 'data-first'), threads, env: { ...hubEnv, HOME: emptyHome, XDG_DATA_HOME: join(emptyHome, '.local', 'share'), XDG_CONFIG_HOME: join(emptyHome, '.config'), OLLAMA_MODELS: '' } });
    hosts.push(first);
    await openApp(page, first);
    const onboarding = page.getByTestId('onboarding');
    await until('every verdict', async () => (await onboarding.getByTestId(/^onboarding-verdict-/).count()) === 6, 180_000);
    await onboarding.getByTestId('recommended-marker').waitFor();
    // Boot leads to the library when nothing is loaded: the screen down to the panel's end.
    const panel = (await onboarding.boundingBox())!;
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, Math.ceil(panel.y + panel.height) + 24) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'onboarding.png') });
    await page.setViewportSize(viewport);
    await first.stop();

    // Later: models of several apps on disk.
    const home = await showcaseHome(root);
    const later = await startHost({ dataDir: join(root, 'data-later'), threads, env: { ...hubEnv, ...home.env } });
    hosts.push(later);
    await call(later, 'settings.update', { modelsDir: home.modelsDir });
    await openApp(page, later);
    await page.goto(`${later.origin}/#/models`);
    const library = page.getByRole('region', { name: 'Local files' });
    await library.getByRole('region', { name: 'Ollama models' }).waitFor();
    await page.getByTestId('model-folders').waitFor();
    // The whole tab at once: a window as tall as it.
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, await paneHeight(library)) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'models-library.png') });
    await page.setViewportSize(viewport);

    const repo = 'bartowski/Qwen2.5-7B-Instruct-GGUF';
    await page.goto(`${later.origin}/#/models/repo/${repo}`);
    await until('the verdicts', async () => (await page.getByTestId(/^verdict-/).count()) === 3, 120_000);
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, await paneHeight(page.getByTestId('hub-device'))) });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outDir, 'models-repo.png') });
    await page.setViewportSize(viewport);

    // Two downloads, slowed down so they are under way: one paused after a few seconds, then the other.
    hub.setRate(2 * 1024 * 1024);
    await page.getByRole('button', { name: 'Download Qwen2.5-7B-Instruct-Q8_0' }).click();
    await page.getByRole('navigation', { name: 'Models' }).getByRole('link', { name: /Downloads/ }).click();
    const paused = page.getByRole('listitem', { name: 'Qwen2.5-7B-Instruct-Q8_0.gguf' });
    await paused.getByText(/^Downloading/).waitFor();
    await page.waitForTimeout(4000);
    await paused.getByRole('button', { name: /^Pause / }).click();
    await paused.getByText('Paused').waitFor();
    await page.goto(`${later.origin}/#/models/repo/${repo}`);
    await page.getByRole('button', { name: 'Download Qwen2.5-7B-Instruct-Q4_K_M' }).click();
    await page.getByRole('navigation', { name: 'Models' }).getByRole('link', { name: /Downloads/ }).click();
    await page.getByRole('listitem', { name: 'Qwen2.5-7B-Instruct-Q4_K_M.gguf' }).getByText(/^Downloading/).waitFor();
    // A few seconds more, so the running one shows its speed and time left.
    await page.waitForTimeout(4000);
    await page.screenshot({ path: join(outDir, 'models-downloads.png') });
    return ['onboarding.png', 'models-library.png', 'models-repo.png', 'models-downloads.png'];
  } catch (e) {
    for (const host of hosts) process.stderr.write(host.output());
    throw e;
  } finally {
    for (const host of hosts) await host.stop();
    await hub?.close();
    await rm(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  const only = values.only;
  if (only !== undefined && only !== 'chat' && only !== 'models' && only !== 'remote') fail(`--only takes chat, models or remote, not ${only}`);
  const model = values.model ?? process.env.HEARTH_SCREENSHOT_MODEL;
  const wants = (part: 'chat' | 'models' | 'remote'): boolean => only === undefined || only === part;
  if (wants('chat') && (model === undefined || model === '')) fail('give the model: --model FILE.gguf or HEARTH_SCREENSHOT_MODEL');
  const threads = Number(values.threads ?? '2');
  if (!Number.isInteger(threads) || threads < 1) fail(`--threads must be a positive integer, not ${values.threads}`);
  const outDir = resolve(values.out ?? join(repoRoot, 'docs', 'screenshots'));
  await mkdir(outDir, { recursive: true });

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  try {
    const written: string[] = [];
    if (wants('chat')) written.push(...(await chatScreens(browser, model!, threads, outDir)));
    if (wants('models')) written.push(...(await modelsScreens(browser, threads, outDir)));
    if (wants('remote')) written.push(...(await remoteScreens(browser, outDir)));
    process.stdout.write(`screenshots written to ${outDir}: ${written.join(', ')}\n`);
  } finally {
    await browser.close();
  }
}

await main();
