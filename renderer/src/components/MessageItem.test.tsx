import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { chat, messageStats, msg } from '../../../test/support/renderer/fixtures.ts';
import type { ChatEngineRef } from '../contract.ts';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { MessageItem } from './MessageItem.tsx';

/** A chat whose last reply stopped at its max tokens, on `engine`, rendered as that reply. */
function lastReply(engine: ChatEngineRef | null): string {
  const store = createHearthStore();
  const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
  store.getState().setChat(chat('c1', { activeLeafId: 'a1', engine }));
  store.getState().setChatMessages('c1', [msg('u1', null), msg('a1', 'u1', 'assistant', { stats: messageStats({ stopReason: 'maxTokens' }) })]);
  // Server rendering reads a store's initial state: this one's initial state is the state now.
  const served = { ...store, getInitialState: store.getState };
  return renderToStaticMarkup(
    <HearthProvider store={served} actions={actions}>
      <MessageItem chatId="c1" messageId="a1" />
    </HearthProvider>,
  );
}

describe('a reply cut short at its max tokens', () => {
  it('offers Continue on this computer', () => {
    const html = lastReply(null);
    expect(html).toContain('data-testid="continue-reply"');
    expect(html).toContain('Stopped at the reply');
  });

  it('offers no Continue on a remote engine, which refuses it; Regenerate stays', () => {
    const html = lastReply({ engineId: 'e1', model: 'tiny-llama' });
    expect(html).not.toContain('data-testid="continue-offer"');
    expect(html).toContain('>Regenerate</button>');
  });
});
