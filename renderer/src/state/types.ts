import type { StateCreator } from 'zustand/vanilla';
import type { AppSlice } from './app-slice.ts';
import type { CacheSlice } from './cache-slice.ts';
import type { ChatsSlice } from './chats-slice.ts';
import type { DownloadsSlice } from './downloads-slice.ts';
import type { EnginesSlice } from './engines-slice.ts';
import type { HubSlice } from './hub-slice.ts';
import type { MessagesSlice } from './messages-slice.ts';
import type { ModelsSlice } from './models-slice.ts';
import type { ProfileSlice } from './profile-slice.ts';
import type { ServerSlice } from './server-slice.ts';
import type { UiSlice } from './ui-slice.ts';

export type HearthState = AppSlice & CacheSlice & ChatsSlice & DownloadsSlice & EnginesSlice & HubSlice & MessagesSlice & ModelsSlice & ProfileSlice & ServerSlice & UiSlice;

/** A slice sees (and may set) the whole store, so cross-slice updates stay one `set`. */
export type SliceCreator<T> = StateCreator<HearthState, [], [], T>;
