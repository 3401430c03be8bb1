import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { CacheStoreStats } from '../contract.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { cacheSnapshot, cacheTurn, messageStats } from '../../../test/support/renderer/fixtures.ts';
import { CacheView, DiskStore, EventLog, forgotText, LargestChats, MemoryBar, persistenceText, SlotRow, TurnsTable } from './CacheView.tsx';
import { ChatCacheBadgeView } from './ChatCacheBadge.tsx';
import { StatsReadout } from './MessageItem.tsx';

function renderView(): string {
  const store = createHearthStore();
  const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
  return renderToStaticMarkup(
    <HearthProvider store={store} actions={actions}>
      <CacheView />
    </HearthProvider>,
  );
}

/** The inner markup of the region named by its heading. */
function region(html: string, name: string): string {
  const heading = new RegExp(`<h2 id="([^"]+)"[^>]*>${name}</h2>`).exec(html);
  expect(heading, name).not.toBeNull();
  const start = html.indexOf(`<section aria-labelledby="${heading?.[1]}"`);
  expect(start, name).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf('</section>', start));
}

const store: CacheStoreStats = cacheSnapshot().store as CacheStoreStats;

describe('CacheView', () => {
  it('has the heading, the settings link and the six named regions', () => {
    const html = renderView();
    expect(html).toMatch(/<h1[^>]*>Cache<\/h1>/);
    expect(html).toMatch(/<a href="#\/settings"[^>]*>Tune cache settings<\/a>/);
    for (const name of ['Device memory', 'Slots', 'Disk store', 'Largest chats', 'Recent turns', 'Event log']) region(html, name);
    expect(region(html, 'Slots')).toContain('Waiting for the first sample…');
    expect(region(html, 'Recent turns')).toContain('Hit ratio: no turns yet.');
    expect(region(html, 'Recent turns')).not.toContain('<table');
    expect(region(html, 'Event log')).toContain('role="log" aria-label="Cache events"');
  });

  // Server rendering reads a store's initial state only (see Banners.test.tsx): a tick's parts
  // are rendered through the components the sections hand it to.
  it('draws a tick: the memory bar, one meter per slot, the store meter and figures', () => {
    const tick = cacheSnapshot();
    const memory = renderToStaticMarkup(<MemoryBar memory={tick.memory!} />);
    expect(memory).toMatch(/<svg role="img" aria-label="Weights 1.00 GB, KV in use 100 MB, KV allocated \(unused\) 300 MB, Compute 100 MB, Other processes 6.50 GB, Free 8.00 GB, of 16.0 GB RAM"/);
    expect(memory).toContain('RAM · 16.0 GB');
    expect(memory.match(/<rect /g)).toHaveLength(6);
    for (const label of ['Weights', 'KV in use', 'KV allocated (unused)', 'Compute', 'Other processes', 'Free']) expect(memory).toContain(`</span>${label} <span`);

    const slots = renderToStaticMarkup(
      <table>
        <tbody>
          <SlotRow slot={tick.slots[0]!} title="Orchard" />
        </tbody>
      </table>,
    );
    expect(slots).toMatch(/role="meter" aria-label="Slot 0 cells" aria-valuemin="0" aria-valuemax="4096" aria-valuenow="123"/);
    expect(slots).toContain('>123 / 4,096</span>');
    expect(slots).toMatch(/<a href="#\/chat\/c1"[^>]*>Orchard<\/a>/);
    expect(slots).toContain('>f16 / f16</td>');
    expect(slots).toContain('>idle</td>');
    const free = renderToStaticMarkup(
      <table>
        <tbody>
          <SlotRow slot={{ ...tick.slots[0]!, chatId: null, cellsUsed: 0 }} title={undefined} />
        </tbody>
      </table>,
    );
    expect(free).toContain('>free</span>');
    // An API conversation holds the slot: the API badge, and no link to a chat that does not exist.
    const api = renderToStaticMarkup(
      <table>
        <tbody>
          <SlotRow slot={{ ...tick.slots[0]!, chatId: 'api-5f57c7af62bebc97' }} title={undefined} />
        </tbody>
      </table>,
    );
    expect(api).toContain('>API</span>');
    expect(api).toContain('api-5f57c7af62bebc97');
    expect(api).not.toContain('<a ');

    const disk = renderToStaticMarkup(<DiskStore store={store} kv={{ persistence: 'on' }} />);
    expect(disk).toMatch(new RegExp(`role="meter" aria-label="Disk store" aria-valuemin="0" aria-valuemax="${10 * 1024 ** 3}" aria-valuenow="${2 * 1024 ** 2}"`));
    expect(disk).toMatch(/Dedup ratio<\/dt><dd[^>]*>1.50×<\/dd>/);
    expect(disk).toMatch(/Compression ratio<\/dt><dd[^>]*>0.95× \(lossless\)<\/dd>/);
    expect(disk).toMatch(/Free disk<\/dt><dd[^>]*>50 GB<\/dd>/);
    expect(disk).toMatch(/Chunks<\/dt><dd[^>]*>3<\/dd>/);
    expect(disk).toMatch(/On disk<\/dt><dd[^>]*>2 MB<\/dd>/);
  });

  it('says when persistence is off or paused', () => {
    expect(persistenceText({ persistence: 'off' }, null)).toMatch(/^Saving chat memory to disk is off/);
    expect(persistenceText({ persistence: 'paused', reason: { code: 'DISK_FULL', message: 'The disk is full.' } }, store)).toBe(
      'Saving chat memory to disk is paused: The disk is full. Chats keep working.',
    );
    expect(persistenceText({ persistence: 'on' }, store)).toBeNull();
    expect(persistenceText({ persistence: 'on' }, null)).toBe('The disk store cannot be read right now.');
    const off = renderToStaticMarkup(<DiskStore store={null} kv={{ persistence: 'off' }} />);
    expect(off).not.toContain('role="meter"');
    expect(off).toContain('is off');
  });

  it('largest chats: a Forget button named after each chat, and the status text', () => {
    const html = renderToStaticMarkup(
      <LargestChats chats={[{ chatId: 'c1', tokens: 512, bytes: 1536, lastUsed: 1 }]} error={null} titleOf={() => 'Orchard'} onForget={() => undefined} now={1} />,
    );
    expect(html).toMatch(/<button type="button" aria-label="Forget cache: Orchard"[^>]*>Forget cache<\/button>/);
    expect(html).toContain('>512</td>');
    expect(html).toContain('>1.5 KB</td>');
    expect(forgotText(1536, 'Orchard')).toBe("Forgot 1.5 KB of Orchard's cache.");
    expect(renderToStaticMarkup(<LargestChats chats={[]} error={null} titleOf={() => ''} onForget={() => undefined} />)).toContain('No chat has memory saved on disk.');
    const api = renderToStaticMarkup(<LargestChats chats={[{ chatId: 'api-3100d0168edf19c1', tokens: 302, bytes: 466_000, lastUsed: 1 }]} error={null} titleOf={(id) => `API conversation ${id}`} onForget={() => undefined} now={1} />);
    expect(api).toContain('>API</span>');
    expect(api).not.toContain('href=');
    expect(api).toContain('aria-label="Forget cache: API conversation api-3100d0168edf19c1"');
    // The region's one status line is there before anything is forgotten, so it is announced.
    expect(region(renderView(), 'Largest chats').match(/role="status"/g)).toHaveLength(1);
  });

  it('recent turns: one row per turn, newest first', () => {
    const turns = [cacheTurn('m1', { tokensPrefilled: 30, ttftMs: 50 }, 1000), cacheTurn('m2', { tokensReused: 40, tokensPrefilled: 20, restoreMs: 9, cacheSource: 'memory' }, 2000)];
    const table = renderToStaticMarkup(<TurnsTable turns={turns} titleOf={() => 'Orchard'} />);
    expect(table.match(/<tr/g)).toHaveLength(3);
    expect(table.indexOf('>40</td>')).toBeLessThan(table.indexOf('>30</td>'));
    expect(table).toContain('<td class="px-2 py-1.5">9</td>');
    expect(table).toContain('>memory</td>');
    expect(table).toContain('>Orchard</td>');
    expect(renderToStaticMarkup(<TurnsTable turns={[]} titleOf={() => ''} />)).not.toContain('<table');
  });

  it('event log: newest first, each with its time, kind and text', () => {
    const html = renderToStaticMarkup(
      <EventLog
        events={[
          { id: 1, at: 1000, kind: 'save', text: 'saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms' },
          { id: 2, at: 2000, kind: 'forget', text: 'forgot 1.1 MB' },
        ]}
      />,
    );
    expect(html).toMatch(/^<div role="log" aria-label="Cache events"/);
    expect(html.indexOf('forgot 1.1 MB')).toBeLessThan(html.indexOf('saved 512 tokens'));
    expect(html).toMatch(/<time dateTime="1970-01-01T00:00:02.000Z"[^>]*>[^<]+<\/time> <span[^>]*>forget<\/span> <span[^>]*>forgot 1.1 MB<\/span>/);
  });
});

describe('chat cache readouts', () => {
  it('the badge is a status named "Chat cache"', () => {
    expect(renderToStaticMarkup(<ChatCacheBadgeView text="412 tokens cached · memory · 1.20 MB on disk" where="memory" />)).toMatch(
      /^<span role="status" aria-label="Chat cache" class="[^"]*">412 tokens cached · memory · 1.20 MB on disk<\/span>$/,
    );
  });

  it("the reply's readout keeps its one line as the summary and expands to every figure", () => {
    const html = renderToStaticMarkup(<StatsReadout stats={messageStats({ tokensPrefilled: 14, fallbackReason: 'its cache was forgotten, so its history was read again' })} />);
    expect(html).toMatch(/^<details[^>]*><summary[^>]*>reused 0 · prefilled 14 tokens · first token 35 ms · 5 generated · its cache was forgotten, so its history was read again<\/summary>/);
    expect(html).toMatch(/<dt>Time to first token<\/dt><dd[^>]*>35 ms<\/dd>/);
    expect(html).toMatch(/<dt>Fallback reason<\/dt><dd[^>]*>its cache was forgotten, so its history was read again<\/dd>/);
    expect(html).toMatch(/<dt>Cache source<\/dt><dd[^>]*>none<\/dd>/);
  });
});
