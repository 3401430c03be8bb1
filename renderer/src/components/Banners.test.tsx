import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { KvPauseAlert } from './Banners.tsx';

// The store decides whether the banner shows and its text (state/kv-banner.test.ts); server
// rendering reads a store's initial state only, so the alert itself is rendered here.
describe('KvPauseAlert', () => {
  it('is an alert with the text and a Dismiss button', () => {
    const html = renderToStaticMarkup(<KvPauseAlert text="Saving chat memory to disk is paused: full." onDismiss={() => undefined} />);
    expect(html).toMatch(/^<div role="alert"/);
    expect(html).toContain('Saving chat memory to disk is paused: full.');
    expect(html).toContain('>Dismiss</button>');
  });
});
