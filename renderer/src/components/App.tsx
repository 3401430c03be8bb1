import { useEffect } from 'react';
import { useTheme } from '../hooks/browser.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectBootError, selectBooted, selectChatTitle, selectRoute, selectTheme } from '../state/selectors.ts';
import { Banners } from './Banners.tsx';
import { CacheView } from './CacheView.tsx';
import { ChatView } from './ChatView.tsx';
import { HomeView } from './HomeView.tsx';
import { ModelScreen } from './ModelScreen.tsx';
import { ServerScreen } from './ServerScreen.tsx';
import { SettingsScreen } from './SettingsScreen.tsx';
import { Sidebar } from './Sidebar.tsx';
import { buttonStyles, ErrorBox } from './ui.tsx';

export function App() {
  useTheme(useHearth(selectTheme));
  const booted = useHearth(selectBooted);
  const bootError = useHearth(selectBootError);
  if (!booted) return bootError ? <BootError /> : <p className="mt-24 text-center text-sm text-stone-500">Connecting to Hearth…</p>;
  return (
    <div className="flex h-full">
      <Sidebar />
      <main className="flex min-w-0 flex-1 flex-col">
        <Banners />
        <Screen />
      </main>
    </div>
  );
}

const screenTitles = { models: 'Models', settings: 'Settings', cache: 'Cache', server: 'Server' } as const;

function Screen() {
  const route = useHearth(selectRoute);
  const chatTitle = useHearth(selectChatTitle(route.name === 'chat' ? route.chatId : ''));
  const title = route.name === 'chat' ? chatTitle : route.name === 'home' ? undefined : screenTitles[route.name];
  useEffect(() => {
    document.title = title ? `${title} — Hearth` : 'Hearth';
  }, [title]);
  switch (route.name) {
    case 'chat':
      return <ChatView key={route.chatId} chatId={route.chatId} />;
    case 'models':
      return <ModelScreen />;
    case 'settings':
      return <SettingsScreen />;
    case 'cache':
      return <CacheView />;
    case 'server':
      return <ServerScreen />;
    case 'home':
      return <HomeView />;
  }
}

function BootError() {
  const actions = useActions();
  const error = useHearth(selectBootError);
  if (!error) return null;
  return (
    <div className="mx-auto mt-24 max-w-md px-4">
      <ErrorBox error={error} alert title="Hearth cannot start the page.">
        <button type="button" onClick={() => void actions.resync()} className={`${buttonStyles.secondary} mt-3`}>
          Try again
        </button>
      </ErrorBox>
    </div>
  );
}
