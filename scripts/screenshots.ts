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
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { chromium, type Locator, type Page } from 'playwright-core';
import { freePort, repoRoot, startHost, type Host } from '../test/support/host.ts';

const usage = `Usage: npm run screenshots -- --model FILE.gguf [--out DIR] [--threads N]

  --model FILE.gguf   the model to chat with (or HEARTH_SCREENSHOT_MODEL); a small trained model
  --out DIR           where the PNGs go (default docs/screenshots)
  --threads N         llama.cpp threads (default 2)

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  const model = values.model ?? process.env.HEARTH_SCREENSHOT_MODEL;
  if (model === undefined || model === '') fail('give the model: --model FILE.gguf or HEARTH_SCREENSHOT_MODEL');
  const threads = Number(values.threads ?? '2');
  if (!Number.isInteger(threads) || threads < 1) fail(`--threads must be a positive integer, not ${values.threads}`);
  const outDir = resolve(values.out ?? join(repoRoot, 'docs', 'screenshots'));
  await mkdir(outDir, { recursive: true });

  const dataDir = await mkdtemp(join(tmpdir(), 'hearth-screenshots-'));
  const hosts: Host[] = [];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
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
    process.stdout.write(`screenshots written to ${outDir}: chat-readout.png, server.png, cache-view.png, cache-settings.png, memory-planner.png\n`);
  } catch (e) {
    for (const host of hosts) process.stderr.write(host.output());
    throw e;
  } finally {
    await browser.close();
    for (const host of hosts) await host.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
