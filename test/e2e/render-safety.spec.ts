/**
 * Rendering safety with the MODEL as the attacker: the `scripted-html`
 * test model answers every prompt with hostile HTML, `javascript:`/`data:`/`vbscript:` links,
 * markdown image beacons, an iframe, event-handler attributes, a stylesheet and a meta refresh
 * (test/support/models.ts `hostileScript`). The reply must render inert: its text shows
 * literally, no script runs (`window.__pwned` stays undefined, no dialog), no element from the
 * reply loads anything, and no request leaves the host's origin: while it streams, once it is
 * final, after a reload, when its parts are clicked and hovered, and when it is exported.
 *
 * The second describe turns the page's CSP off (Playwright's bypassCSP): the renderer must be
 * inert on its own, not only because the CSP blocks what it lets through.
 */
import { readFile } from 'node:fs/promises';
import type { Page, Request } from '@playwright/test';
import { beaconOrigin, hostileScript, testModelPath } from '../support/models.ts';
import { assistantMessages, call, chatIdOf, conversations, messageText, setDefaultSampling, startChat, waitIdle } from './app.ts';
import { expect, openApp, test, type Host } from './fixtures.ts';

/** The whole reply the model gives to any prompt. */
const hostileReply = hostileScript.join('');

/**
 * Also hostile: the user's own prompt. It becomes the chat's title whole (≤ 40 characters), and
 * so the export's file name: a path and markup.
 */
const hostilePrompt = '../<b onclick="window.__pwned=10">hi</b>';

/** Everything the page (any frame, any worker) asks the network for, and every console line about the CSP. */
function watch(page: Page, host: Host) {
  const requests: string[] = [];
  const sockets: string[] = [];
  const cspViolations: string[] = [];
  const popups: string[] = [];
  const onRequest = (request: Request) => requests.push(request.url());
  page.context().on('request', onRequest);
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
  page.on('popup', (popup) => popups.push(popup.url()));
  const ownOrigin = host.origin;
  const ownWs = ownOrigin.replace(/^http:/, 'ws:');
  return {
    /** Every request seen (the watcher works: the page's own loads are in it). */
    all: () => requests,
    /** Requests that left the host's origin (data: and blob: URLs never reach a network). */
    foreign: () => requests.filter((url) => !url.startsWith(`${ownOrigin}/`) && !url.startsWith('data:') && !url.startsWith('blob:')),
    foreignSockets: () => sockets.filter((url) => !url.startsWith(`${ownWs}/`)),
    toBeacon: () => requests.filter((url) => url.startsWith(beaconOrigin)),
    cspViolations,
    popups,
  };
}

type Watch = ReturnType<typeof watch>;

/** What must hold whenever the hostile reply is on screen. */
async function expectInert(page: Page, host: Host, watcher: Watch, when: string): Promise<void> {
  const reply = assistantMessages(page).last();
  // The text shows literally: the markup is visible as characters, the image as its alt text and URL.
  const text = await messageText(reply);
  for (const literal of [
    '<img src=x onerror="window.__pwned=1">',
    '<script>window.__pwned=2</script>',
    `<iframe src="${beaconOrigin}/frame.html"></iframe>`,
    '<b onclick="window.__pwned=4">bold</b>',
    '<svg onload="window.__pwned=5"></svg>',
    `<link rel="stylesheet" href="${beaconOrigin}/style.css">`,
    `<meta http-equiv="refresh" content="0;url=${beaconOrigin}/refresh">`,
    `[image: beacon] (${beaconOrigin}/beacon.png)`,
    `[image: ref beacon] (${beaconOrigin}/ref.png)`,
    '<img src=x onerror="window.__pwned=9">',
    'Hostile reply end.',
  ]) {
    expect(text, `${when}: shows ${literal} as text`).toContain(literal);
  }
  // The dangerous links are plain text; only a real http(s) link would be a link at all.
  for (const label of ['click', 'data', 'vb']) {
    await expect(reply.getByText(label, { exact: true }), `${when}: "${label}" is text, not a link`).toHaveCount(1);
    await expect(reply.getByRole('link', { name: label, exact: true }), `${when}: "${label}" is not a link`).toHaveCount(0);
  }

  expect(await page.evaluate('window.__pwned'), `${when}: no script ran`).toBeUndefined();
  expect(watcher.all().some((url) => url.startsWith(`${host.origin}/api/call/`)), `${when}: the watcher sees the page's own requests`).toBe(true);
  expect(watcher.foreign(), `${when}: no request left the host's origin`).toEqual([]);
  expect(watcher.toBeacon(), `${when}: no beacon was fetched`).toEqual([]);
  expect(watcher.foreignSockets(), `${when}: no foreign WebSocket`).toEqual([]);
  expect(watcher.popups, `${when}: no window opened`).toEqual([]);

  // No live element from the reply, in the reply or anywhere in the document.
  // A string, not a function: the tests are compiled without the DOM's types.
  const live = (await page.evaluate(`(() => {
    const beacon = ${JSON.stringify(beaconOrigin.replace(/^http:\/\//, ''))};
    const found = [];
    const active = 'script, img, iframe, frame, object, embed, link[rel], meta[http-equiv], style, base, form, video, audio, source, svg[onload]';
    for (const el of document.querySelectorAll('[aria-label="Assistant message"] *')) {
      if (el.matches(active)) found.push('reply: <' + el.tagName.toLowerCase() + '>');
      for (const attr of el.attributes) {
        if (/^on/i.test(attr.name)) found.push('reply: ' + el.tagName.toLowerCase() + '[' + attr.name + ']');
        if (/^(href|src|action|formaction|xlink:href|srcset|poster|data)$/i.test(attr.name) && !/^(https?:|mailto:|#)/i.test(attr.value.trim())) {
          found.push('reply: ' + el.tagName.toLowerCase() + '[' + attr.name + '=' + attr.value + ']');
        }
      }
    }
    for (const el of document.querySelectorAll('[src], [href], [srcset]')) {
      const url = el.getAttribute('src') ?? el.getAttribute('href') ?? el.getAttribute('srcset') ?? '';
      if (url.includes(beacon) && el.tagName !== 'A') found.push('document: <' + el.tagName.toLowerCase() + '> -> ' + url);
      if (/^\\s*(javascript|data|vbscript):/i.test(url) && el.tagName !== 'LINK') found.push('document: <' + el.tagName.toLowerCase() + '> -> ' + url);
    }
    return found;
  })()`)) as string[];
  expect(live, `${when}: no live element from the reply`).toEqual([]);

}

/** Clicks, hovers and double-clicks every part of the reply a user could touch. */
async function poke(page: Page): Promise<void> {
  const reply = assistantMessages(page).last();
  for (const label of ['click', 'data', 'vb', 'bold', 'raw anchor']) {
    const part = reply.getByText(label, { exact: false }).first();
    await part.hover();
    await part.click();
    await part.dblclick();
  }
  await reply.getByText('[image: beacon]', { exact: false }).click();
}

/** One hostile turn, checked while streaming is over, after pokes, and after a reload. */
async function hostileTurn(page: Page, host: Host, watcher: Watch): Promise<string> {
  await setDefaultSampling(host, { maxTokens: 64, temperature: 0 });
  await openApp(page, host);
  await startChat(page, hostilePrompt);
  await waitIdle(page);
  await expect(assistantMessages(page)).toHaveCount(1);
  await expect(assistantMessages(page).last()).toContainText('Hostile reply end.');

  // The model itself wrote the hostile reply, exactly (the scripted model's greedy output).
  const chatId = chatIdOf(page);
  const detail = await call<{ messages: Array<{ role: string; content: string; status: string }> }>(host, 'chats.get', { chatId });
  if (!detail.ok) throw new Error(JSON.stringify(detail.error));
  expect(detail.value.messages.filter((m) => m.role === 'assistant').map((m) => [m.content, m.status])).toEqual([[hostileReply, 'complete']]);

  await expectInert(page, host, watcher, 'after the reply streamed in');
  // The user's hostile prompt is text too.
  await expect(page.getByRole('article', { name: 'User message' })).toContainText(hostilePrompt);

  await poke(page);
  // Anything a click could have started has had time to start.
  await page.waitForTimeout(300);
  await expect(page).toHaveURL(new RegExp(`^${host.origin}/`));
  await expectInert(page, host, watcher, 'after clicking and hovering every part');

  // Reloaded from the store, the final (highlighted, non-streaming) rendering is inert too.
  await page.reload();
  await expect(assistantMessages(page)).toHaveCount(1);
  await expect(assistantMessages(page).last()).toContainText('Hostile reply end.');
  await expectInert(page, host, watcher, 'after a reload');
  return chatId;
}

test.describe('model output renders inert', () => {
  test.describe.configure({ timeout: 90_000 });

  test('hostile HTML, links and beacons from the model: no script, no request, literal text', async ({ page, launchHost }) => {
    const host = await launchHost({ model: await testModelPath('scripted-html') });
    const watcher = watch(page, host);
    await hostileTurn(page, host, watcher);
    expect(watcher.cspViolations, 'nothing even tried to load for the CSP to block').toEqual([]);
  });

  test('"Export chat" saves the conversation as Markdown and JSON files with a safe name, fetching nothing', async ({ page, launchHost }) => {
    const host = await launchHost({ model: await testModelPath('scripted-html') });
    const watcher = watch(page, host);
    const chatId = await hostileTurn(page, host, watcher);

    const expected = await call<{ fileName: string; content: string }>(host, 'chats.export', { chatId, format: 'markdown' });
    if (!expected.ok) throw new Error(JSON.stringify(expected.error));
    // The title (the hostile prompt) lost every path and markup character in the name.
    await expect(conversations(page).getByRole('link', { name: hostilePrompt })).toHaveCount(1);
    expect(expected.value.fileName).toMatch(/^[^./\\<>:"|?*][^/\\<>:"|?*]*\.md$/);
    expect(expected.value.fileName).toContain('onclick=_window.__pwned=10__hi');

    await page.getByRole('button', { name: 'Export chat' }).click();
    const dialog = page.getByRole('dialog', { name: 'Export chat' });
    await expect(dialog).toBeVisible();
    for (const [button, extension] of [['Download Markdown', 'md'], ['Download JSON', 'json']] as const) {
      const downloading = page.waitForEvent('download');
      await dialog.getByRole('button', { name: button }).click();
      const download = await downloading;
      expect(download.suggestedFilename()).toBe(expected.value.fileName.replace(/\.md$/, `.${extension}`));
      expect(download.url()).toMatch(/^blob:/);
      const path = await download.path();
      const content = await readFile(path, 'utf8');
      if (extension === 'md') {
        expect(content).toBe(expected.value.content);
        expect(content).toContain(hostileReply);
      } else {
        const parsed = JSON.parse(content) as { chat: { id: string }; messages: Array<{ role: string; content: string }> };
        expect(parsed.chat.id).toBe(chatId);
        expect(parsed.messages.map((m) => m.content)).toEqual([hostilePrompt, hostileReply]);
      }
      await expect(dialog.getByRole('status')).toHaveText(`Saved as ${download.suggestedFilename()}.`);
    }
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expectInert(page, host, watcher, 'after exporting');
  });
});

test.describe('model output renders inert without the CSP', () => {
  // The CSP is the second wall: with it off, the renderer alone must keep the reply inert.
  test.use({ bypassCSP: true });

  test('the same hostile reply with the page CSP bypassed: still no script and no request', async ({ page, launchHost }) => {
    test.setTimeout(90_000);
    const host = await launchHost({ model: await testModelPath('scripted-html') });
    const watcher = watch(page, host);
    await hostileTurn(page, host, watcher);
  });
});
