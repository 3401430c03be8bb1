import { createStore } from 'zustand/vanilla';
import { createAppSlice } from './app-slice.ts';
import { createCacheSlice } from './cache-slice.ts';
import { createChatsSlice } from './chats-slice.ts';
import { createDownloadsSlice } from './downloads-slice.ts';
import { createEnginesSlice } from './engines-slice.ts';
import { createHubSlice } from './hub-slice.ts';
import { createMessagesSlice } from './messages-slice.ts';
import { createModelsSlice } from './models-slice.ts';
import { createProfileSlice } from './profile-slice.ts';
import { createServerSlice } from './server-slice.ts';
import type { HearthState } from './types.ts';
import { createUiSlice } from './ui-slice.ts';

export type { HearthState } from './types.ts';

/** The one store, made of typed slices. A factory, so that tests get a fresh one each. */
export function createHearthStore() {
  return createStore<HearthState>()((...a) => ({
    ...createAppSlice(...a),
    ...createCacheSlice(...a),
    ...createChatsSlice(...a),
    ...createDownloadsSlice(...a),
    ...createEnginesSlice(...a),
    ...createHubSlice(...a),
    ...createMessagesSlice(...a),
    ...createModelsSlice(...a),
    ...createProfileSlice(...a),
    ...createServerSlice(...a),
    ...createUiSlice(...a),
  }));
}

export type HearthStore = ReturnType<typeof createHearthStore>;
