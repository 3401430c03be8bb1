import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { KvVerifyReport } from '../contract.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { CacheCheck, verifyText } from './CacheCheck.tsx';

const clean: KvVerifyReport = {
  checked: true,
  ok: true,
  chunksVerified: 1234,
  missingChunks: 0,
  corruptChunks: 0,
  knownCorruptChunks: 0,
  orphanFiles: 0,
  tempFiles: 0,
  refcountMismatches: 0,
  danglingReferences: 0,
  inconsistentManifests: 0,
  corruptTails: 0,
  repaired: false,
  problems: [],
  ms: 87,
};

describe('Check the cache', () => {
  it('says what was checked and what was found or repaired', () => {
    expect(verifyText(clean)).toBe('Checked 1,234 chunks in 87 ms: everything is intact.');
    expect(verifyText({ ...clean, ok: false, missingChunks: 2, corruptChunks: 1, problems: ['x'] })).toBe('Checked 1,234 chunks in 87 ms: found 2 missing chunk files, 1 damaged chunk file.');
    expect(verifyText({ ...clean, ok: false, repaired: true, tempFiles: 1 })).toBe(
      'Checked 1,234 chunks in 87 ms: repaired 1 leftover of an interrupted write. The chats affected re-read their history once.',
    );
    expect(verifyText({ ...clean, checked: false })).toBe('Nothing to check: chat caches are not kept on disk.');
  });

  it('renders its button and an empty live status', () => {
    const store = createHearthStore();
    const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
    const html = renderToStaticMarkup(
      <HearthProvider store={store} actions={actions}>
        <CacheCheck />
      </HearthProvider>,
    );
    expect(html).toMatch(/<button[^>]*>Check the cache<\/button>/);
    expect(html).toContain('role="status"');
  });
});
