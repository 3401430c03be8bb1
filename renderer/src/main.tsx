import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './components/App.tsx';
import { applyTheme, bindHashRoute, bindShortcuts, navigateTo, rememberedTheme } from './hooks/browser.ts';
import { createActions } from './state/actions.ts';
import { bindEvents } from './state/events.ts';
import { HearthProvider } from './state/react.tsx';
import { createHearthStore } from './state/store.ts';
import { createTransport, stripTokenFromAddress } from './transport/index.ts';
import './styles.css';

stripTokenFromAddress();
// Paint in the last theme at once; the host's settings take over when they arrive.
applyTheme(rememberedTheme());

const transport = createTransport();
const store = createHearthStore();
const actions = createActions(transport, store, { navigate: navigateTo });
bindHashRoute(store);
bindShortcuts(store, actions, { newChatKey: transport.kind === 'browser' });
bindEvents(transport, store, actions);
// Electron's channel is open at once (bindEvents resynced already); the browser's WebSocket
// may take a moment or be refused, and the page should not wait for it to show the chats.
if (store.getState().connection !== 'open') void actions.resync();

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <HearthProvider store={store} actions={actions}>
        <App />
      </HearthProvider>
    </StrictMode>,
  );
}
