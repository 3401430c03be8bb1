import { describe, expect, it } from 'vitest';
import type { AppState, HearthError, KvStatus } from '../contract.ts';
import { appState } from '../../../test/support/renderer/fixtures.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { createActions } from './actions.ts';
import { nextKvBannerDismissed } from './app-slice.ts';
import { bindEvents } from './events.ts';
import { selectKvPauseBanner } from './selectors.ts';
import { createHearthStore } from './store.ts';

const diskFull: HearthError = { code: 'DISK_FULL', message: 'The KV store cannot write: ENOSPC: no space left on device.' };
const paused: KvStatus = { persistence: 'paused', reason: diskFull };
const expected =
  'Saving chat memory to disk is paused: The KV store cannot write: ENOSPC: no space left on device. Chats keep working; they will re-read their history when reopened.';

const appStateWith = (kv?: KvStatus): AppState => appState(kv ? { kv } : {});

function setup() {
  const transport = fakeTransport();
  const store = createHearthStore();
  const actions = createActions(transport, store, { navigate: (route) => store.getState().setRoute(route) });
  bindEvents(transport, store, actions, (cb) => cb());
  const banner = () => selectKvPauseBanner(store.getState());
  const kv = (payload: KvStatus) => transport.emit({ type: 'kv.status', payload });
  return { store, transport, banner, kv };
}

describe('the KV persistence banner', () => {
  it('shows on a pause with its reason, and goes away when persistence resumes', () => {
    const t = setup();
    t.store.getState().setAppState(appStateWith({ persistence: 'on' }));
    expect(t.banner()).toBeNull();
    t.kv(paused);
    expect(t.banner()).toBe(expected);
    t.kv({ persistence: 'on' });
    expect(t.banner()).toBeNull();
    expect(t.store.getState().kv).toEqual({ persistence: 'on' });
  });

  it('stays dismissed while the same pause lasts, and comes back on a new pause', () => {
    const t = setup();
    t.kv(paused);
    t.store.getState().dismissKvBanner();
    expect(t.banner()).toBeNull();
    // The host reports the pause again (a new reason, or a resync): still the same pause.
    t.kv({ persistence: 'paused', reason: { code: 'INTERNAL', message: 'EIO on fsync' } });
    t.store.getState().setAppState(appStateWith(paused));
    expect(t.banner()).toBeNull();
    t.kv({ persistence: 'on' });
    t.kv(paused);
    expect(t.banner()).toBe(expected);
  });

  it('shows a pause learnt from app.state (at boot or after a reconnect), never for "off"', () => {
    const t = setup();
    t.store.getState().setAppState(appStateWith(paused));
    expect(t.banner()).toBe(expected);
    t.store.getState().setAppState(appStateWith({ persistence: 'off' }));
    expect(t.banner()).toBeNull();
    t.store.getState().setAppState(appStateWith());
    expect(t.store.getState().kv).toBeNull();
    t.kv({ persistence: 'paused' });
    expect(t.banner()).toBe(
      'Saving chat memory to disk is paused: the disk cannot be written to. Chats keep working; they will re-read their history when reopened.',
    );
  });

  it('nextKvBannerDismissed keeps a dismissal only from one paused state to the next', () => {
    expect(nextKvBannerDismissed(true, paused, paused)).toBe(true);
    expect(nextKvBannerDismissed(true, { persistence: 'on' }, paused)).toBe(false);
    expect(nextKvBannerDismissed(true, paused, { persistence: 'on' })).toBe(false);
    expect(nextKvBannerDismissed(true, paused, null)).toBe(false);
    expect(nextKvBannerDismissed(false, paused, paused)).toBe(false);
  });
});
