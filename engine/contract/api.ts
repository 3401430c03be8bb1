/**
 * The calls (renderer → host) and events (host → renderer) of Hearth. Both hosts, Electron's
 * IPC and the browser host's HTTP + WebSocket, are generated from these tables; nobody writes
 * a channel list by hand. Inputs are validated with these schemas where they enter a process.
 */
import { z } from 'zod';
import type { AppState, Chat, ChatDetail, ChatExport, ChatSummary, EngineStatus, Message, ModelInfo, ModelProfile, ModelProfileView, ModelStatus, RecommendedModel, Settings } from './types.ts';
import type { CachedChat, CacheEvent, CacheSnapshot, CacheTurn, ChatCache, KvPlan, KvQuality, KvStatus, KvStoreInfo, KvVerifyReport } from './kv-types.ts';
import type { Result } from './errors.ts';
import type { LocalEngineState, SpeedProfile } from './speed-types.ts';
import type { ApiRequestLog, ApiServerState } from './server-types.ts';
import { remoteEngineKinds, type ChatEngineRef, type ChatSearchHit, type RemoteCacheSample, type RemoteEngine, type RemoteEngineStatus } from './remote-types.ts';
import { isHubRepoId, type DownloadItem, type HubAuthState, type HubRepo, type HubRepoSummary, type ModelKvUsage, type ModelLibrary, type RepoFit } from './models-types.ts';

/** Largest message a user may send, in characters. */
export const maxMessageChars = 200_000;
/** Largest system prompt, in characters. */
export const maxSystemPromptChars = 50_000;
/** Largest request body the browser host accepts, in bytes (above it: 413). */
export const maxBodyBytes = 1024 * 1024;

/** Ids are opaque, URL- and path-safe: they may not carry `/`, `.` or anything else. */
export const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid id');

/** Sampling as a call carries it (types.ts Sampling, with its ranges). */
export const samplingSchema = z.strictObject({
  temperature: z.number().min(0).max(2),
  topP: z.number().gt(0).max(1),
  maxTokens: z.number().int().min(0).max(32_768),
});

const messageTextSchema = z
  .string()
  .max(maxMessageChars, `a message may have at most ${maxMessageChars} characters`)
  .refine((s) => s.trim().length > 0, 'the message is empty');

const pathSchema = z.string().min(1, 'the path is empty').max(4096);

/** A Hugging Face repository id, `owner/name` (models-types.ts isHubRepoId). */
export const hubRepoIdSchema = z.string().refine(isHubRepoId, 'not a Hugging Face repository id (owner/name)');

/** Disk encodings of stored KV (kv-types.ts KvCompression). */
export const kvCompressions = ['off', 'lossless', 'lossy'] as const;
/** Values of Settings.kvCompression (kv-types.ts KvCompressionSetting): `auto`, then the encodings. */
export const kvCompressionSettings = ['auto', ...kvCompressions] as const;

/** The Settings fields a `settings.update` may change; omitted fields keep their value. */
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
  kvCompression: z.enum(kvCompressionSettings).optional(),
  modelsDir: pathSchema.nullable().optional(),
});

/** Longest reason the engine may give for a KV decision (longer ones are refused, not cut). */
const maxReasonChars = 500;

/**
 * How the engine resolved Settings.kvCompression (kv-types.ts KvCompressionChoice), as it
 * answers `init`: the host checks it there, since it comes from another process.
 */
export const kvCompressionChoiceSchema = z.object({
  setting: z.enum(kvCompressionSettings),
  applied: z.enum(kvCompressions),
  reason: z.string().max(maxReasonChars).optional(),
  measured: z
    .object({
      decodeBytesPerSec: z.number().positive().finite(),
      readBytesPerSec: z.number().positive().finite(),
    })
    .optional(),
});

/** The loaded model's state transfer (kv-types.ts KvStateTransfer), as the engine's metrics carry it; checked by the host. */
export const kvStateTransferSchema = z.object({
  mode: z.enum(['memory', 'file']),
  reason: z.string().max(maxReasonChars).optional(),
});

/** KV cache types (kv-types.ts KvCacheType). */
export const kvCacheTypes = ['f16', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0', 'iq4_nl'] as const;
/** What a chat does when it outgrows the context (types.ts OverflowPolicy). */
export const overflowPolicies = ['drop-oldest', 'streaming', 'stop'] as const;

/** The profile fields a `models.setProfile` sets; omitted fields keep their stored value. */
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
 * Settings' context size and slots, and a chat that outgrows the context drops its oldest messages.
 */
export function defaultModelProfile(settings: Pick<Settings, 'contextSize' | 'kvSlots'>): ModelProfile {
  return { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: settings.contextSize, gpuLayers: 'auto', slots: settings.kvSlots, overflowPolicy: 'drop-oldest' };
}

const empty = z.strictObject({});
const chatRef = z.strictObject({ chatId: idSchema });

/**
 * A remote engine's root URL (remote-types.ts RemoteEngine.baseUrl): http or https, with no
 * credentials, query or fragment (a key goes in `apiKey`, never in the URL, where logs and
 * screens would show it). The host normalizes it (no trailing `/` or `/v1`).
 */
export const remoteBaseUrlSchema = z
  .string()
  .trim()
  .max(2000)
  .refine((text) => {
    if (!URL.canParse(text)) return false;
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.search === '' && url.hash === '';
  }, 'not an http(s) address without credentials, query or fragment');

/** An engine's API key: printable ASCII without spaces, as Authorization headers carry it. */
const remoteApiKeySchema = z.string().trim().min(1).max(4096).regex(/^[\x21-\x7e]+$/, 'an API key is printable ASCII without spaces');
const remoteEngineNameSchema = z.string().trim().min(1).max(80);
/** A model id on a remote engine (`/v1/models` ids may hold slashes and colons). */
const remoteModelIdSchema = z.string().min(1).max(500).regex(/^[\x20-\x7e]+$/, 'a model id is printable ASCII');
/** Where a chat runs (remote-types.ts ChatEngineRef); null: this computer. */
export const chatEngineRefSchema = z.strictObject({ engineId: idSchema, model: remoteModelIdSchema }).nullable();

/** Input schema of every call. The key is the call's name. */
export const callInputs = {
  /** Everything the UI needs at start. */
  'app.state': empty,
  /**
   * Changes settings. Threads and context size apply at the next model load; a slots change
   * reloads the loaded model; KV persistence, budget, chunk size and compression restart the
   * engine. While the engine is busy the KV changes are saved and applied once it is idle.
   */
  'settings.update': settingsPatchSchema,

  /** The library: Hearth's models folder and the models other apps downloaded (LM Studio, Ollama, Jan, GPT4All). */
  'models.list': empty,
  /** Small instruct models that are known to work, for first run. */
  'models.recommended': empty,
  /** Validates and loads a GGUF; progress arrives as `model.status` events. */
  'models.load': z.strictObject({ path: pathSchema }),
  /** Stops any reply, then unloads the model; Hearth forgets it as the one to load at start. */
  'models.unload': empty,
  /** Electron only: the native file dialog. Other hosts answer NOT_SUPPORTED. */
  'models.pick': empty,
  /** The stored KV computed with a model, for the delete confirmation. */
  'models.kvUsage': z.strictObject({ path: pathSchema }),
  /**
   * Deletes a model in Hearth's folder (every part), and with `deleteKv` its stored KV. Other
   * apps' models are theirs: refused (FORBIDDEN). The loaded model is unloaded first.
   */
  'models.delete': z.strictObject({ path: pathSchema, deleteKv: z.boolean() }),
  /** Electron only: shows the file in the system's file manager. Other hosts answer NOT_SUPPORTED. */
  'models.reveal': z.strictObject({ path: pathSchema }),

  /** Searches Hugging Face for GGUF repositories. */
  'hub.search': z.strictObject({
    query: z.string().max(200),
    sort: z.enum(['downloads', 'recent', 'likes']),
    limit: z.number().int().min(1).max(100).optional(),
  }),
  /** A repository's GGUF files, grouped (multi-part files as one), with sizes and hashes. */
  'hub.repo': z.strictObject({ repo: hubRepoIdSchema }),
  /** The planner's verdict for every file of a repository, from the headers alone. */
  'hub.fit': z.strictObject({ repo: hubRepoIdSchema }),
  /** Whether a Hugging Face token is stored. */
  'hub.auth': empty,
  /** Stores (or with null, forgets) the Hugging Face token, in the OS keychain where there is one. */
  'hub.setToken': z.strictObject({ token: z.string().trim().min(1).max(500).regex(/^[\x21-\x7e]+$/, 'a token is printable ASCII without spaces').nullable() }),

  /** The download queue: running, queued, paused, and those that ended since start. */
  'downloads.list': empty,
  /**
   * Queues a download into the models folder: a file of a repository (`repo` + `file`, a
   * HubFile.id), or an address (`hf:owner/repo:QUANT`, `hf:owner/repo/file.gguf`, https URL).
   * The disk's free space is checked first. Progress arrives as `download.progress`.
   */
  'downloads.start': z.union([
    z.strictObject({ repo: hubRepoIdSchema, file: z.string().min(1).max(1000) }),
    z.strictObject({ uri: z.string().min(1).max(2048) }),
  ]),
  /** Pauses a download, keeping what arrived; it stays paused across restarts. */
  'downloads.pause': z.strictObject({ downloadId: idSchema }),
  /** Resumes a paused or failed download where it stopped (free space is checked again). */
  'downloads.resume': z.strictObject({ downloadId: idSchema }),
  /** Cancels a download and deletes what arrived. */
  'downloads.cancel': z.strictObject({ downloadId: idSchema }),
  /** Removes ended downloads (done, error, cancelled) from the list. */
  'downloads.clear': empty,

  /** A model's per-model settings (defaults where it has none) and what validation says of them. */
  'models.getProfile': z.strictObject({ path: pathSchema }),
  /**
   * Changes a model's profile. A profile with validation errors is refused (INVALID_INPUT, the
   * issues in the message) and nothing is saved; a valid one is saved and, when it is the loaded
   * model's, applied by reloading it (no chat is lost).
   */
  'models.setProfile': z.strictObject({ path: pathSchema, profile: modelProfilePatchSchema }),
  /**
   * The planner: every K/V pair's memory and longest fitting context on this machine, from a
   * local file's GGUF metadata alone (a file not downloaded yet gets `hub.fit`'s verdicts).
   */
  'models.plan': z.strictObject({
    path: pathSchema,
    contextSize: z.number().int().min(1).max(1_048_576).optional(),
    slots: z.number().int().min(1).max(8).optional(),
  }),
  /** The quality meter: the loaded model's KV pair against F16 (cached per model and pair unless `fresh`). */
  'models.measureQuality': z.strictObject({ fresh: z.boolean().optional() }),
  /**
   * Measures the model's speed on this computer again (flash attention, threads, batch size) and
   * loads it with the fastest settings: the model at `path` is loaded (again) for it, as a
   * profile change does. Progress arrives as `model.status` (`measuring`).
   */
  'models.measureSpeed': z.strictObject({ path: pathSchema }),

  /** Every chat, most recently updated first. */
  'chats.list': empty,
  /** A new empty chat with Settings' default sampling, and its default system prompt unless one is given. */
  'chats.create': z.strictObject({
    title: z.string().max(200).optional(),
    systemPrompt: z.string().max(maxSystemPromptChars).optional(),
    /** A remote engine and model to run on; default (null) this computer. */
    engine: chatEngineRefSchema.optional(),
  }),
  /** A chat with every message of every branch. */
  'chats.get': chatRef,
  /** Sets the title (trimmed, 1..200 characters); it is no longer derived from the first message. */
  'chats.rename': z.strictObject({ chatId: idSchema, title: z.string().trim().min(1).max(200) }),
  /** Deletes a chat and its messages, stops its reply, and (best effort) forgets its stored KV. */
  'chats.delete': chatRef,
  /** Per-chat system prompt, sampling and overflow policy (null: the model's). */
  'chats.configure': z.strictObject({
    chatId: idSchema,
    systemPrompt: z.string().max(maxSystemPromptChars).optional(),
    sampling: samplingSchema.partial().optional(),
    overflowPolicy: z.enum(overflowPolicies).nullable().optional(),
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
  /**
   * Writes more of the reply `messageId` (the active branch's last message), which stopped at
   * the end of the context, at its max tokens, or was stopped: the text goes on in the same
   * message, under the chat's overflow policy.
   */
  'chats.continue': z.strictObject({ chatId: idSchema, messageId: idSchema }),
  /** Shows the branch that contains `messageId` (its most recent leaf). */
  'chats.switchBranch': z.strictObject({ chatId: idSchema, messageId: idSchema }),
  /** Stops the chat's reply in progress; the text so far is kept. */
  'chats.stop': chatRef,
  /** The active branch as Markdown or JSON, with a safe file name; the UI offers it as a download. */
  'chats.export': z.strictObject({ chatId: idSchema, format: z.enum(['markdown', 'json']) }),
  /**
   * Runs the chat's next replies elsewhere: on a remote engine's model, or (null) on this
   * computer. Nothing is copied: the next reply's engine reads the history again, and its
   * readout says so. Refused while a reply is being written.
   */
  'chats.move': z.strictObject({ chatId: idSchema, engine: chatEngineRefSchema }),
  /** Chats whose title or messages (any branch) contain `query`, case-insensitively; newest first, at most 50. */
  'chats.search': z.strictObject({ query: z.string().trim().min(1).max(200) }),

  /** The remote engines, with what the last check of each found. */
  'engines.list': empty,
  /** Adds a remote engine, then checks it (its models, its `/metrics`): it is kept even when the check fails. */
  'engines.add': z.strictObject({ name: remoteEngineNameSchema, baseUrl: remoteBaseUrlSchema, kind: z.enum(remoteEngineKinds), apiKey: remoteApiKeySchema.optional() }),
  /** Changes an engine; `apiKey` null removes the stored key. Checks it again. */
  'engines.update': z.strictObject({
    engineId: idSchema,
    name: remoteEngineNameSchema.optional(),
    baseUrl: remoteBaseUrlSchema.optional(),
    kind: z.enum(remoteEngineKinds).optional(),
    apiKey: remoteApiKeySchema.nullable().optional(),
  }),
  /** Removes an engine and its key. Its chats keep their history and ask to be moved. */
  'engines.remove': z.strictObject({ engineId: idSchema }),
  /** Asks an engine again what it serves. */
  'engines.check': z.strictObject({ engineId: idSchema }),
  /** Checks an address before it is saved (the add dialog's Test button); `engineId` lends that engine's stored key. */
  'engines.test': z.strictObject({ baseUrl: remoteBaseUrlSchema, kind: z.enum(remoteEngineKinds), apiKey: remoteApiKeySchema.optional(), engineId: idSchema.optional() }),

  /** The engine built for this computer: whether one can be built, its build and its comparison. */
  'engine.local': empty,
  /**
   * Builds an engine for this computer in the background (progress as `engine.local`), then
   * compares it with the prebuilt one on the loaded model and uses it only if it is faster.
   */
  'engine.buildLocal': empty,
  /** Stops a build in progress; nothing changes. */
  'engine.cancelBuild': empty,
  /** Deletes the local build; the engine goes back to the prebuilt one. */
  'engine.removeLocal': empty,

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
  'cache.watch': z.strictObject({
    /** Also read this remote engine's `/metrics` (about 1 Hz) and send them as `cache.remote`. */
    engineId: idSchema.optional(),
  }),
  /** The Cache view's history: recent turns, the event log, and the chats with the most KV on disk. */
  'cache.overview': empty,
  /** One chat's cache: in a slot, on disk, or neither (the chat header's badge). */
  'cache.chat': chatRef,
  /**
   * Deletes a chat's stored KV (shared chunks stay while other chats use them) and drops it from
   * its slot: its next turn reads its history again, and its readout says why.
   */
  'cache.forget': chatRef,

  /** The local API server: settings, state, key and recent requests (the Server screen). */
  'server.state': empty,
  /** Changes the server's settings and starts, restarts or stops it to match. */
  'server.configure': z.strictObject({
    enabled: z.boolean().optional(),
    port: z.number().int().min(1).max(65_535).optional(),
    lan: z.boolean().optional(),
    corsOrigins: z.array(z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, 'an origin is scheme://host[:port]')).max(20).optional(),
  }),
  /** Replaces the API key: clients holding the old one are refused from now on. */
  'server.rotateKey': empty,
} as const;

export type CallName = keyof typeof callInputs;
export type CallInput<N extends CallName> = z.input<(typeof callInputs)[N]>;

/** What each call returns on success. */
export interface CallOutputs {
  /** Everything the UI needs at start. */
  'app.state': AppState;
  /** The settings as saved. */
  'settings.update': Settings;
  /** Newest first. */
  'models.list': ModelLibrary;
  /** A fixed list, smallest first. */
  'models.recommended': { readonly models: readonly RecommendedModel[] };
  /** The loaded model, with its context's real figures. */
  'models.load': ModelInfo;
  /** The model's status after the unload (`idle`). */
  'models.unload': ModelStatus;
  /** The chosen file; null when the user cancelled the dialog. */
  'models.pick': { readonly path: string | null };
  'models.kvUsage': ModelKvUsage;
  /** What was freed: the model's files, and its stored KV (0 unless `deleteKv`). */
  'models.delete': { readonly modelBytes: number; readonly kvBytes: number };
  'models.reveal': { readonly revealed: true };
  'hub.search': { readonly repos: readonly HubRepoSummary[] };
  'hub.repo': HubRepo;
  'hub.fit': RepoFit;
  'hub.auth': HubAuthState;
  'hub.setToken': HubAuthState;
  /** Oldest first. */
  'downloads.list': { readonly downloads: readonly DownloadItem[] };
  /** The queued download (its later changes arrive as `download.progress`). */
  'downloads.start': DownloadItem;
  'downloads.pause': DownloadItem;
  'downloads.resume': DownloadItem;
  'downloads.cancel': DownloadItem;
  'downloads.clear': { readonly removed: number };
  /** The profile, stored or default, and its issues here. */
  'models.getProfile': ModelProfileView;
  /** The profile as saved, with its (warning-only) issues. */
  'models.setProfile': ModelProfileView;
  /** One row per K/V pair. */
  'models.plan': KvPlan;
  /** The measurement, fresh or cached. */
  'models.measureQuality': KvQuality;
  /** The new measurement (the model is loaded with its choice). */
  'models.measureSpeed': SpeedProfile;
  /** Most recently updated first. */
  'chats.list': { readonly chats: readonly ChatSummary[] };
  /** The new chat. */
  'chats.create': Chat;
  /** The chat and all its messages. */
  'chats.get': ChatDetail;
  /** The renamed chat. */
  'chats.rename': Chat;
  /** False when there was no such chat. */
  'chats.delete': { readonly deleted: boolean };
  /** The chat as reconfigured. */
  'chats.configure': Chat;
  /** The committed user message, and the reply as it starts (`streaming`, empty). */
  'chats.send': { readonly userMessage: Message; readonly assistantMessage: Message };
  /** The new user message beside the edited one, and its reply as it starts. */
  'chats.edit': { readonly userMessage: Message; readonly assistantMessage: Message };
  /** The new reply as it starts. */
  'chats.regenerate': { readonly assistantMessage: Message };
  /** The reply going on, `streaming` again with its text so far. */
  'chats.continue': { readonly assistantMessage: Message };
  /** The chat with its new active leaf. */
  'chats.switchBranch': Chat;
  /** False when the chat had no reply in progress. */
  'chats.stop': { readonly stopped: boolean };
  /** The file to save. */
  'chats.export': ChatExport;
  'chats.move': Chat;
  'chats.search': { readonly hits: readonly ChatSearchHit[] };
  'engines.list': { readonly engines: readonly RemoteEngine[] };
  'engines.add': RemoteEngine;
  'engines.update': RemoteEngine;
  /** `chats`: how many chats were running on it (they keep their history). */
  'engines.remove': { readonly removed: boolean; readonly chats: number };
  'engines.check': RemoteEngine;
  'engines.test': RemoteEngineStatus;
  'engine.local': LocalEngineState;
  /** The state as the build starts. */
  'engine.buildLocal': LocalEngineState;
  'engine.cancelBuild': LocalEngineState;
  'engine.removeLocal': LocalEngineState;
  /** The store's figures now. */
  'kv.stats': KvStoreInfo;
  /** What the check found (and repaired). */
  'kv.verify': KvVerifyReport;
  /** The tick interval and the lease, in ms: renew before `leaseMs` runs out. */
  'cache.watch': { readonly intervalMs: number; readonly leaseMs: number };
  /** Turns oldest first, events oldest first, chats with the most bytes on disk first (at most 10). */
  'cache.overview': { readonly turns: readonly CacheTurn[]; readonly events: readonly CacheEvent[]; readonly chats: readonly CachedChat[] };
  /** Where the chat's KV is now. */
  'cache.chat': ChatCache;
  /** Disk bytes released (chunks still used by other chats are kept and not counted). */
  'cache.forget': { readonly bytesFreed: number };
  'server.state': ApiServerState;
  /** The state after the change (status `error` with the reason when it could not listen). */
  'server.configure': ApiServerState;
  'server.rotateKey': ApiServerState;
}

/** Everything the host pushes to the renderer. */
export interface EventPayloads {
  /** The engine process started, died, restarted or stopped. */
  'engine.status': EngineStatus;
  /** The model started loading, made progress, loaded, failed or was unloaded. */
  'model.status': ModelStatus;
  /** Text appended to a streaming message. */
  'message.delta': {
    /** The chat of the streaming message. */
    readonly chatId: string;
    /** The streaming assistant message. */
    readonly messageId: string;
    /** The new text, never empty; concatenated in order it is the message's content. */
    readonly delta: string;
  };
  /** A message was created or changed state (finished, stopped, failed, marked incomplete). */
  'message.updated': { readonly message: Message };
  /** A chat was created, renamed, reconfigured, got a message, or was deleted (then `chat` is null). */
  'chats.changed': {
    readonly chatId: string;
    /** The summary, and where the chat runs now (every window's header follows a move). */
    readonly chat: (ChatSummary & { readonly engine?: ChatEngineRef | null }) | null;
  };
  /** A download was queued, made progress, paused, resumed, ended or was cleared (then `removed`). */
  'download.progress': DownloadItem & { readonly removed?: true };
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
  /** One reading of the watched remote engine's `/metrics` (`cache.watch` with `engineId`). */
  'cache.remote': RemoteCacheSample;
  /** An engine was added, changed, checked or removed: every engine, as `engines.list` answers. */
  'engines.changed': { readonly engines: readonly RemoteEngine[] };
  /** The local engine's build or comparison made progress, ended, or it was removed. */
  'engine.local': LocalEngineState;
  /** The API server started, stopped, failed, or its key changed (the log is not resent: see `server.request`). */
  'server.state': Omit<ApiServerState, 'requests'>;
  /** An API request finished: a row for the Server screen's log. */
  'server.request': ApiRequestLog;
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
