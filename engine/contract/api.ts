/**
 * The calls (renderer → host) and events (host → renderer) of Hearth. Both hosts, Electron's
 * IPC and the browser host's HTTP + WebSocket, are generated from these tables; nobody writes
 * a channel list by hand. Inputs are validated with these schemas where they enter a process.
 */
import { z } from 'zod';
import type {
  AppState,
  CachedChat,
  CacheEvent,
  CacheSnapshot,
  CacheTurn,
  Chat,
  ChatCache,
  ChatDetail,
  ChatExport,
  ChatSummary,
  DownloadProgress,
  EngineStatus,
  KvStatus,
  KvPlan,
  KvQuality,
  KvStoreInfo,
  KvVerifyReport,
  ModelProfileView,
  LocalModel,
  Message,
  ModelInfo,
  ModelProfile,
  ModelStatus,
  RecommendedModel,
  Settings,
} from './types.ts';
import type { Result } from './errors.ts';

/** Largest message a user may send, in characters. */
export const maxMessageChars = 200_000;
/** Largest system prompt, in characters. */
export const maxSystemPromptChars = 50_000;
/** Largest request body the browser host accepts, in bytes (above it: 413). */
export const maxBodyBytes = 1024 * 1024;

/** Ids are opaque, URL- and path-safe: they may not carry `/`, `.` or anything else. */
export const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid id');

export const samplingSchema = z.strictObject({
  temperature: z.number().min(0).max(2),
  topP: z.number().gt(0).max(1),
  maxTokens: z.number().int().min(1).max(32_768),
});

const messageTextSchema = z
  .string()
  .max(maxMessageChars, `a message may have at most ${maxMessageChars} characters`)
  .refine((s) => s.trim().length > 0, 'the message is empty');

const pathSchema = z.string().min(1, 'the path is empty').max(4096);

/** Disk encodings of stored KV (types.ts KvCompression). */
export const kvCompressions = ['off', 'lossless', 'lossy'] as const;

export const settingsPatchSchema = z.strictObject({
  threads: z.number().int().min(0).max(256).optional(),
  contextSize: z.number().int().min(0).max(1_048_576).optional(),
  theme: z.enum(['system', 'light', 'dark']).optional(),
  defaultSystemPrompt: z.string().max(maxSystemPromptChars).optional(),
  defaultSampling: samplingSchema.partial().optional(),
  kvPersistence: z.boolean().optional(),
  kvBudgetBytes: z.number().int().min(0).max(2 ** 50).optional(),
  kvChunkTokens: z.number().int().min(16).max(4096).optional(),
  kvSlots: z.number().int().min(1).max(8).optional(),
  kvCompression: z.enum(kvCompressions).optional(),
});

/** KV cache types (types.ts KvCacheType). */
export const kvCacheTypes = ['f16', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0', 'iq4_nl'] as const;
export const overflowPolicies = ['refuse', 'rebuild', 'streaming', 'shift'] as const;

export const modelProfilePatchSchema = z.strictObject({
  kType: z.enum([...kvCacheTypes, 'auto']).optional(),
  vType: z.enum([...kvCacheTypes, 'auto']).optional(),
  flashAttention: z.enum(['auto', 'on', 'off']).optional(),
  contextSize: z.number().int().min(0).max(1_048_576).optional(),
  gpuLayers: z.union([z.literal('auto'), z.number().int().min(0).max(4096)]).optional(),
  slots: z.number().int().min(1).max(8).optional(),
  overflowPolicy: z.enum(overflowPolicies).optional(),
});

/**
 * The profile of a model that has none: F16 K/V, automatic flash attention and GPU layers,
 * Settings' context size and slots, refuse on overflow.
 */
export function defaultModelProfile(settings: Pick<Settings, 'contextSize' | 'kvSlots'>): ModelProfile {
  return { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: settings.contextSize, gpuLayers: 'auto', slots: settings.kvSlots, overflowPolicy: 'refuse' };
}

const empty = z.strictObject({});
const chatRef = z.strictObject({ chatId: idSchema });

/** Input schema of every call. The key is the call's name. */
export const callInputs = {
  /** Everything the UI needs at start. */
  'app.state': empty,
  /**
   * Changes settings. Threads, context size and slots apply at the next model load (a slots change
   * reloads the loaded model); KV persistence, budget and chunk size restart the engine to apply.
   */
  'settings.update': settingsPatchSchema,

  /** GGUF files in the models directory. */
  'models.list': empty,
  /** Small instruct models that are known to work, for first run. */
  'models.recommended': empty,
  /** Validates and loads a GGUF; progress arrives as `model.status` events. */
  'models.load': z.strictObject({ path: pathSchema }),
  'models.unload': empty,
  /** Electron only: the native file dialog. Other hosts answer NOT_SUPPORTED. */
  'models.pick': empty,
  /** Starts a download into the models directory; progress arrives as `download.progress`. */
  'models.download': z.strictObject({ uri: z.string().min(1).max(2048) }),
  'models.cancelDownload': z.strictObject({ downloadId: idSchema }),
  /** A model's per-model settings (defaults where it has none) and what validation says of them. */
  'models.getProfile': z.strictObject({ path: pathSchema }),
  /**
   * Changes a model's profile. A profile with validation errors is refused (INVALID_INPUT, the
   * issues in the message) and nothing is saved; a valid one is saved and, when it is the loaded
   * model's, applied by reloading it (no chat is lost).
   */
  'models.setProfile': z.strictObject({ path: pathSchema, profile: modelProfilePatchSchema }),
  /**
   * The planner: every K/V pair's memory and longest fitting context on this machine, from GGUF
   * metadata alone (a local file, or a model's download address before downloading it).
   */
  'models.plan': z
    .strictObject({
      path: pathSchema.optional(),
      uri: z.string().min(1).max(2048).optional(),
      contextSize: z.number().int().min(1).max(1_048_576).optional(),
      slots: z.number().int().min(1).max(8).optional(),
    })
    .refine((v) => (v.path === undefined) !== (v.uri === undefined), 'give either a path or a uri'),
  /** The quality meter: the loaded model's KV pair against F16 (cached per model and pair unless `fresh`). */
  'models.measureQuality': z.strictObject({ fresh: z.boolean().optional() }),

  'chats.list': empty,
  'chats.create': z.strictObject({
    title: z.string().max(200).optional(),
    systemPrompt: z.string().max(maxSystemPromptChars).optional(),
  }),
  'chats.get': chatRef,
  'chats.rename': z.strictObject({ chatId: idSchema, title: z.string().trim().min(1).max(200) }),
  'chats.delete': chatRef,
  /** Per-chat system prompt and sampling. */
  'chats.configure': z.strictObject({
    chatId: idSchema,
    systemPrompt: z.string().max(maxSystemPromptChars).optional(),
    sampling: samplingSchema.partial().optional(),
  }),
  /**
   * Appends a user message and starts the reply. The user message is durable before
   * generation starts. `parentId` defaults to the chat's active leaf.
   */
  'chats.send': z.strictObject({
    chatId: idSchema,
    text: messageTextSchema,
    parentId: idSchema.nullable().optional(),
  }),
  /** A new user message beside `messageId` (a branch) and its reply. */
  'chats.edit': z.strictObject({ chatId: idSchema, messageId: idSchema, text: messageTextSchema }),
  /** A new reply beside the assistant message `messageId` (a branch). */
  'chats.regenerate': z.strictObject({ chatId: idSchema, messageId: idSchema }),
  /** Shows the branch that contains `messageId` (its most recent leaf). */
  'chats.switchBranch': z.strictObject({ chatId: idSchema, messageId: idSchema }),
  /** Stops the chat's reply in progress; the text so far is kept. */
  'chats.stop': chatRef,
  /** The active branch as Markdown or JSON, with a safe file name; the UI offers it as a download. */
  'chats.export': z.strictObject({ chatId: idSchema, format: z.enum(['markdown', 'json']) }),

  /** The disk KV store's size, budget and the free disk beside it. */
  'kv.stats': empty,
  /**
   * Reads and verifies every stored chunk against the index, and the index against itself.
   * With `repair`, also makes them agree again: only cache is dropped, never a conversation.
   */
  'kv.verify': z.strictObject({ repair: z.boolean().optional() }),

  /**
   * Keeps `cache.tick` events coming (about 4 Hz) for `leaseMs`: a visible Cache view calls it
   * again before the lease runs out, and a hidden or closed one simply stops, so nothing samples
   * for a view nobody sees.
   */
  'cache.watch': empty,
  /** The Cache view's history: recent turns, the event log, and the chats with the most KV on disk. */
  'cache.overview': empty,
  /** One chat's cache: in a slot, on disk, or neither (the chat header's badge). */
  'cache.chat': chatRef,
  /**
   * Deletes a chat's stored KV (shared chunks stay while other chats use them) and drops it from
   * its slot: its next turn reads its history again, and its readout says why.
   */
  'cache.forget': chatRef,
} as const;

export type CallName = keyof typeof callInputs;
export type CallInput<N extends CallName> = z.input<(typeof callInputs)[N]>;

/** What each call returns on success. */
export interface CallOutputs {
  'app.state': AppState;
  'settings.update': Settings;
  'models.list': { readonly models: readonly LocalModel[] };
  'models.recommended': { readonly models: readonly RecommendedModel[] };
  'models.load': ModelInfo;
  'models.unload': ModelStatus;
  'models.pick': { readonly path: string | null };
  'models.download': { readonly downloadId: string };
  'models.cancelDownload': { readonly cancelled: boolean };
  'models.getProfile': ModelProfileView;
  'models.setProfile': ModelProfileView;
  'models.plan': KvPlan;
  'models.measureQuality': KvQuality;
  'chats.list': { readonly chats: readonly ChatSummary[] };
  'chats.create': Chat;
  'chats.get': ChatDetail;
  'chats.rename': Chat;
  'chats.delete': { readonly deleted: boolean };
  'chats.configure': Chat;
  'chats.send': { readonly userMessage: Message; readonly assistantMessage: Message };
  'chats.edit': { readonly userMessage: Message; readonly assistantMessage: Message };
  'chats.regenerate': { readonly assistantMessage: Message };
  'chats.switchBranch': Chat;
  'chats.stop': { readonly stopped: boolean };
  'chats.export': ChatExport;
  'kv.stats': KvStoreInfo;
  'kv.verify': KvVerifyReport;
  'cache.watch': { readonly intervalMs: number; readonly leaseMs: number };
  'cache.overview': { readonly turns: readonly CacheTurn[]; readonly events: readonly CacheEvent[]; readonly chats: readonly CachedChat[] };
  'cache.chat': ChatCache;
  'cache.forget': { readonly bytesFreed: number };
}

/** Everything the host pushes to the renderer. */
export interface EventPayloads {
  'engine.status': EngineStatus;
  'model.status': ModelStatus;
  /** Text appended to a streaming message. */
  'message.delta': { readonly chatId: string; readonly messageId: string; readonly delta: string };
  /** A message changed state (finished, stopped, failed, marked incomplete). */
  'message.updated': { readonly message: Message };
  /** A chat was created, renamed, reconfigured or deleted (then `chat` is null). */
  'chats.changed': { readonly chatId: string; readonly chat: ChatSummary | null };
  'download.progress': DownloadProgress;
  /** A menu command from the desktop shell (Electron's app menu); the browser host never sends it. */
  'app.command': { readonly command: 'newChat' | 'openSettings' | 'openModels' };
  /** Disk KV persistence changed: paused (with its reason), resumed, or turned off. */
  'kv.status': KvStatus;
  /** One Cache view sample, while a view watches (`cache.watch`). */
  'cache.tick': CacheSnapshot;
  /** A reply finished with stats: a row for the timeline. */
  'cache.turn': CacheTurn;
  /** A line for the Cache view's event log. */
  'cache.event': CacheEvent;
}

export type EventName = keyof EventPayloads;
export type HearthEvent = { [K in EventName]: { readonly type: K; readonly payload: EventPayloads[K] } }[EventName];

/** The API as the renderer sees it, whichever host serves it. */
export type HearthApi = {
  readonly [N in CallName]: (input: CallInput<N>) => Promise<Result<CallOutputs[N]>>;
};

export const callNames = Object.keys(callInputs) as CallName[];

export function isCallName(name: unknown): name is CallName {
  return typeof name === 'string' && Object.hasOwn(callInputs, name);
}
