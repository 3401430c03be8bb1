/**
 * The contract's call table: each call of `HearthApi` mapped onto the part of the host that
 * answers it. Every handler runs inside `guard`, so a thrown error becomes a `Result` (a damaged
 * or locked database with its own advice), and a closing Hearth refuses new work.
 */
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { err, errorText, isApiConversation, ok, type CallName, type HearthApi, type LocalEngineState, type Result, type Settings } from '../contract/index.ts';
import type { ChatStore } from './chat-store.ts';
import { describeKvSettings, type CacheViewLog } from './cache-view-log.ts';
import type { CacheViewSampler } from './cache-view-sampler.ts';
import type { Conversations } from './conversations.ts';
import { databaseCallError } from './db.ts';
import type { DownloadQueue } from './downloads/queue.ts';
import type { HubService } from './hub-service.ts';
import type { ModelFiles } from './model-files.ts';
import { exportChat } from './export.ts';
import { planKvApply, type KvSettingsApplier } from './kv-apply.ts';
import { readKvStats, type AppliedKvCodec } from './kv-stats.ts';
import type { KvStatusTracker } from './kv-status.ts';
import { errorDetail, type Logger } from './logger.ts';
import type { ModelManager } from './model-manager.ts';
import { profileKey, type ModelProfiles } from './model-profiles.ts';
import { recommendedModels } from './models.ts';
import type { QualityMeter } from './quality-results.ts';
import { updateSettings } from './settings.ts';
import type { Supervisor } from './supervisor.ts';
import type { ApiServer } from './api/server.ts';
import { searchChats } from './chat-search.ts';
import type { RemoteEngines } from './remote/engines.ts';
import type { RemoteCacheWatch } from './remote/watch.ts';
import type { LocalEngine } from './local-engine/local-engine.ts';

/** The context 'models.plan' plans for when neither the call nor the profile names one. */
const PLAN_DEFAULT_CONTEXT = 4096;
/** A remote model's header comes over the network, and a large model's table takes a few seconds. */
const PLAN_TIMEOUT_MS = 60_000;
/** The Cache view's largest chats. */
const OVERVIEW_CHATS = 10;
/** The Cache view's reads: a badge or a list must not hang on a busy engine. */
const CACHE_CALL_TIMEOUT_MS = 2000;
/** Deleting manifests touches the store's index and files. */
const FORGET_TIMEOUT_MS = 10_000;
/** Reading every chunk of a large store takes a while (a 20 GB store at ~1 GB/s). */
const VERIFY_TIMEOUT_MS = 10 * 60_000;
/** `kv.stats` reads the engine's store figures; Settings must not hang on a busy engine. */
const KV_STATS_TIMEOUT_MS = 2000;

/** Everything the calls reach: the parts `startHearth` assembled. */
export interface CallDeps {
  readonly version: string;
  readonly host: 'electron' | 'browser';
  readonly dirs: { readonly root: string; readonly models: string };
  readonly db: DatabaseSync;
  readonly log: Logger;
  readonly store: ChatStore;
  readonly supervisor: Supervisor;
  readonly settings: () => Settings;
  readonly kvStatus: KvStatusTracker;
  /** The running engine's disk encoding: null until an engine answered `init`. */
  readonly appliedCodec: () => AppliedKvCodec | null;
  readonly viewLog: CacheViewLog;
  readonly sampler: CacheViewSampler;
  readonly kvApplier: KvSettingsApplier;
  readonly model: ModelManager;
  readonly profiles: ModelProfiles;
  readonly downloads: DownloadQueue;
  readonly modelFiles: ModelFiles;
  readonly hubService: HubService;
  /** Hearth's models folder now: Settings.modelsDir, or `dirs.models`. */
  readonly modelsDir: () => string;
  readonly chats: Conversations;
  readonly quality: QualityMeter;
  readonly apiServer: ApiServer;
  readonly engines: RemoteEngines;
  /** The engine built for this computer (local-engine/). */
  readonly engineBuild: LocalEngine;
  readonly remoteWatch: RemoteCacheWatch;
  /** Whether Hearth is closing: calls then answer ENGINE_UNAVAILABLE. */
  readonly closing: () => boolean;
}

type Guard = <I, O>(name: CallName, fn: (input: I) => Promise<Result<O>>) => (input: I) => Promise<Result<O>>;

function guardFor(deps: CallDeps): Guard {
  return (name, fn) => async (input) => {
    if (deps.closing()) return err('ENGINE_UNAVAILABLE', 'Hearth is shutting down.');
    try {
      return await fn(input);
    } catch (error) {
      deps.log('error', `${name} failed: ${errorDetail(error)}`);
      // A locked, full or damaged hearth.db is the user's to fix: say what to do (db.ts).
      const known = databaseCallError(error);
      if (known) return { ok: false, error: known };
      return err('INTERNAL', `${name} failed unexpectedly: ${errorText(error)}`);
    }
  };
}

/** The whole table; every call is guarded. */
export function createCalls(deps: CallDeps): HearthApi {
  const guard = guardFor(deps);
  return {
    ...appCalls(deps, guard),
    ...modelCalls(deps, guard),
    ...hubCalls(deps, guard),
    ...downloadCalls(deps, guard),
    ...chatCalls(deps, guard),
    ...cacheCalls(deps, guard),
    ...serverCalls(deps, guard),
    ...engineCalls(deps, guard),
    ...engineBuildCalls(deps, guard),
  };
}

type Calls<N extends CallName> = Pick<HearthApi, N>;

function appCalls({ version, host, dirs, db, supervisor, model, settings, kvStatus, viewLog, kvApplier, modelsDir }: CallDeps, guard: Guard): Calls<'app.state' | 'settings.update'> {
  return {
    'app.state': guard('app.state', async () =>
      ok({ version, host, dataDir: dirs.root, modelsDir: modelsDir(), engine: supervisor.status, model: model.status, settings: settings(), kv: kvStatus.status }),
    ),
    /**
     * Threads and context size apply at the next model load. The disk KV settings apply now
     * (kv-apply.ts): a changed persistence, budget, chunk size or compression restarts the engine
     * and this answers once it runs again; a changed slot count reloads the loaded model. While
     * the engine is busy the change is saved, this answers at once, and it applies when idle.
     */
    'settings.update': guard('settings.update', async (patch) => {
      if (typeof patch.modelsDir === 'string') {
        const folder = await prepareModelsDir(patch.modelsDir);
        if (!folder.ok) return folder;
        patch = { ...patch, modelsDir: folder.value };
      }
      const before = settings();
      const after = updateSettings(db, patch);
      const changed = describeKvSettings(before, after);
      if (changed !== null) viewLog.record('settings', changed);
      await kvApplier.apply(planKvApply(before, after));
      return ok(after);
    }),
  };
}

type ModelCall = Extract<CallName, `models.${string}`>;

function modelCalls({ supervisor, model, profiles, modelFiles, quality }: CallDeps, guard: Guard): Calls<ModelCall> {
  return {
    'models.list': guard('models.list', async () => ok(await modelFiles.list())),
    'models.recommended': guard('models.recommended', async () => ok({ models: recommendedModels })),
    'models.load': guard('models.load', async ({ path: file }) => model.load(file)),
    'models.unload': guard('models.unload', async () => model.unload()),
    // Electron's host answers these with its native dialog and file manager; no other host can.
    'models.pick': guard('models.pick', async () => err('NOT_SUPPORTED', 'This host has no file dialog.', 'Type the path of a .gguf file instead.')),
    'models.reveal': guard('models.reveal', async ({ path: file }) => err('NOT_SUPPORTED', `This host cannot open a file manager. The file is ${file}`, 'Copy the path instead.')),
    'models.kvUsage': guard('models.kvUsage', async ({ path: file }) => modelFiles.kvUsage(file)),
    'models.delete': guard('models.delete', async ({ path: file, deleteKv }) => modelFiles.delete(file, deleteKv)),
    'models.getProfile': guard('models.getProfile', ({ path: file }) => profiles.get(file)),
    'models.setProfile': guard('models.setProfile', ({ path: file, profile }) => profiles.set(file, profile)),
    /**
     * A model defaults to its profile's context size and slots. An automatic context (0) is
     * planned at 4,096 tokens: the host does not read the trained length, and the table shows
     * the longest fit anyway.
     */
    'models.plan': guard('models.plan', async ({ path: file, contextSize, slots }) => {
      const defaults = profiles.profileOf(file);
      return supervisor.request(
        'plan',
        {
          path: profileKey(file),
          contextSize: contextSize ?? (defaults.contextSize > 0 ? defaults.contextSize : PLAN_DEFAULT_CONTEXT),
          slots: slots ?? defaults.slots,
        },
        { timeoutMs: PLAN_TIMEOUT_MS },
      );
    }),
    'models.measureQuality': guard('models.measureQuality', (input) => quality.measure(input)),
    'models.measureSpeed': guard('models.measureSpeed', ({ path: file }) => model.measureSpeed(file)),
  };
}

type HubCall = Extract<CallName, `hub.${string}`>;

function hubCalls({ hubService }: CallDeps, guard: Guard): Calls<HubCall> {
  return {
    'hub.search': guard('hub.search', async (input) => {
      const found = await hubService.search(input);
      return found.ok ? ok({ repos: found.value }) : found;
    }),
    'hub.repo': guard('hub.repo', ({ repo }) => hubService.repo(repo)),
    'hub.fit': guard('hub.fit', ({ repo }) => hubService.fit(repo)),
    'hub.auth': guard('hub.auth', async () => ok(hubService.auth())),
    'hub.setToken': guard('hub.setToken', async ({ token }) => ok(hubService.setToken(token))),
  };
}

type DownloadCall = Extract<CallName, `downloads.${string}`>;

function downloadCalls({ downloads }: CallDeps, guard: Guard): Calls<DownloadCall> {
  return {
    'downloads.list': guard('downloads.list', async () => ok({ downloads: downloads.list() })),
    'downloads.start': guard('downloads.start', (input) => downloads.start(input)),
    'downloads.pause': guard('downloads.pause', ({ downloadId }) => downloads.pause(downloadId)),
    'downloads.resume': guard('downloads.resume', ({ downloadId }) => downloads.resume(downloadId)),
    'downloads.cancel': guard('downloads.cancel', ({ downloadId }) => downloads.cancel(downloadId)),
    'downloads.clear': guard('downloads.clear', async () => downloads.clear()),
  };
}

/**
 * A models folder the user chose: absolute, created when missing, and writable (downloads go
 * there). Answers the resolved path.
 */
async function prepareModelsDir(input: string): Promise<Result<string>> {
  if (!path.isAbsolute(input)) return err('INVALID_INPUT', `The models folder must be an absolute path, not "${input}".`);
  const dir = path.resolve(input);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    if (!(await stat(dir)).isDirectory()) return err('INVALID_INPUT', `${dir} is not a folder.`);
  } catch (error) {
    return err('INVALID_INPUT', `Hearth cannot use ${dir} as its models folder (${errorText(error)}).`, 'Choose a folder you can write to.');
  }
  return ok(dir);
}

type ChatCall = Extract<CallName, `chats.${string}`>;

function chatCalls({ log, db, store, supervisor, chats }: CallDeps, guard: Guard): Calls<ChatCall> {
  return {
    'chats.list': guard('chats.list', () => chats.list()),
    'chats.create': guard('chats.create', (input) => chats.create(input)),
    'chats.get': guard('chats.get', (input) => chats.get(input)),
    'chats.rename': guard('chats.rename', (input) => chats.rename(input)),
    'chats.delete': guard('chats.delete', async (input) => {
      const result = await chats.delete(input);
      // Best effort: the chat's stored KV is only a cache, and LRU eviction reclaims it anyway.
      if (result.ok && result.value.deleted && supervisor.status.state === 'running') {
        void supervisor.request('forgetChat', { chatId: input.chatId }).then((forgot) => {
          if (!forgot.ok) log('warn', `could not forget the KV of chat ${input.chatId}: ${forgot.error.message}`);
        });
      }
      return result;
    }),
    'chats.configure': guard('chats.configure', (input) => chats.configure(input)),
    'chats.send': guard('chats.send', (input) => chats.send(input)),
    'chats.edit': guard('chats.edit', (input) => chats.edit(input)),
    'chats.regenerate': guard('chats.regenerate', (input) => chats.regenerate(input)),
    'chats.continue': guard('chats.continue', (input) => chats.continue(input)),
    'chats.switchBranch': guard('chats.switchBranch', (input) => chats.switchBranch(input)),
    'chats.stop': guard('chats.stop', (input) => chats.stop(input)),
    'chats.export': guard('chats.export', async ({ chatId, format }) => {
      const chat = store.getChat(chatId);
      if (!chat) return err('NOT_FOUND', `There is no chat with id ${chatId}.`);
      return ok(exportChat(chat, store.activePath(chatId), format));
    }),
    'chats.move': guard('chats.move', (input) => chats.move(input)),
    'chats.search': guard('chats.search', async ({ query }) => ok({ hits: searchChats(db, query) })),
  };
}

type EngineCall = Extract<CallName, `engines.${string}`>;

function engineCalls({ engines, store }: CallDeps, guard: Guard): Calls<EngineCall> {
  const gone = () => err('NOT_FOUND', 'There is no such engine: it may have been removed.');
  return {
    'engines.list': guard('engines.list', async () => ok({ engines: engines.list() })),
    'engines.add': guard('engines.add', (input) => engines.add(input)),
    'engines.update': guard('engines.update', ({ engineId, ...patch }) => engines.update(engineId, patch)),
    'engines.remove': guard('engines.remove', async ({ engineId }) => {
      const chats = store.chatsOnEngine(engineId);
      return ok({ removed: engines.remove(engineId), chats });
    }),
    'engines.check': guard('engines.check', async ({ engineId }) => {
      const engine = await engines.check(engineId);
      return engine ? ok(engine) : gone();
    }),
    'engines.test': guard('engines.test', async (input) => ok(await engines.test(input))),
  };
}

type EngineBuildCall = Extract<CallName, `engine.${string}`>;

/** The engine built for this computer: each call answers the state after it (progress follows as `engine.local` events). */
function engineBuildCalls({ engineBuild }: CallDeps, guard: Guard): Calls<EngineBuildCall> {
  const after = async <T>(done: Result<T>): Promise<Result<LocalEngineState>> => (done.ok ? ok(await engineBuild.state()) : done);
  return {
    'engine.local': guard('engine.local', async () => ok(await engineBuild.state())),
    'engine.buildLocal': guard('engine.buildLocal', () => engineBuild.build()),
    'engine.cancelBuild': guard('engine.cancelBuild', async () => after(engineBuild.cancel())),
    'engine.removeLocal': guard('engine.removeLocal', async () => after(await engineBuild.remove())),
  };
}

type CacheCall = Extract<CallName, `kv.${string}` | `cache.${string}`>;

/** Settings' KV calls and the Cache view's. */
function cacheCalls({ dirs, store, supervisor, settings, kvStatus, appliedCodec, viewLog, sampler, engines, remoteWatch }: CallDeps, guard: Guard): Calls<CacheCall> {
  const diskPaths = [path.join(dirs.root, 'kv'), dirs.root];
  return {
    'kv.stats': guard('kv.stats', async () =>
      ok(
        await readKvStats({
          metrics: () => supervisor.request('metrics', {}, { timeoutMs: KV_STATS_TIMEOUT_MS }),
          settings,
          kvStatus: () => kvStatus.status,
          applied: appliedCodec,
          diskPaths,
        }),
      ),
    ),
    'kv.verify': guard('kv.verify', async ({ repair }) => {
      if (supervisor.status.state !== 'running') return err('ENGINE_UNAVAILABLE', 'The engine is not running, so the cache cannot be checked now.', 'Wait until the engine has started, then check again.');
      return supervisor.request('kvVerify', { repair: repair ?? false }, { timeoutMs: VERIFY_TIMEOUT_MS });
    }),
    'cache.watch': guard('cache.watch', async ({ engineId }) => {
      if (engineId !== undefined && !engines.has(engineId)) return err('NOT_FOUND', 'There is no such engine: it may have been removed.');
      const lease = sampler.watch();
      if (engineId !== undefined) remoteWatch.watch(engineId, lease.leaseMs);
      return ok(lease);
    }),
    /**
     * Chats whose records are gone (nothing left to forget them by) are left out of the largest
     * chats; API conversations have no record and stay.
     */
    'cache.overview': guard('cache.overview', async () => {
      // An engine that is down or slow leaves the list empty: the history is the host's and still shows.
      const listed = await supervisor.request('kvChats', { limit: OVERVIEW_CHATS }, { timeoutMs: CACHE_CALL_TIMEOUT_MS });
      const chats = listed.ok ? listed.value.chats.filter((chat) => isApiConversation(chat.chatId) || store.getChat(chat.chatId) !== undefined) : [];
      return ok({ turns: viewLog.turns, events: viewLog.events, chats });
    }),
    'cache.chat': guard('cache.chat', async ({ chatId }) => {
      if (!store.getChat(chatId)) return err('NOT_FOUND', `There is no chat with id ${chatId}.`);
      const answered = await supervisor.request('chatCache', { chatId }, { timeoutMs: CACHE_CALL_TIMEOUT_MS });
      // Without an engine nothing is known to be cached: "none", not an error, for a badge.
      const known = answered.ok ? answered.value : { slot: null, tokensInMemory: 0, tokensOnDisk: 0, bytesOnDisk: 0 };
      const where = known.tokensInMemory > 0 ? 'memory' : known.tokensOnDisk > 0 ? 'disk' : 'none';
      return ok({ chatId, where, slot: known.slot, tokensInMemory: known.tokensInMemory, tokensOnDisk: known.tokensOnDisk, bytesOnDisk: known.bytesOnDisk });
    }),
    /** The chat's next turn reads its history again (`reread`), unlike a deleted chat's forget. */
    'cache.forget': guard('cache.forget', async ({ chatId }) => {
      if (!isApiConversation(chatId) && !store.getChat(chatId)) return err('NOT_FOUND', `There is no chat with id ${chatId}.`);
      return supervisor.request('forgetChat', { chatId, reread: true }, { timeoutMs: FORGET_TIMEOUT_MS });
    }),
  };
}

function serverCalls({ apiServer }: CallDeps, guard: Guard): Calls<'server.state' | 'server.configure' | 'server.rotateKey'> {
  return {
    'server.state': guard('server.state', async () => ok(apiServer.state())),
    'server.configure': guard('server.configure', async (patch) => apiServer.configure(patch)),
    'server.rotateKey': guard('server.rotateKey', async () => apiServer.rotateKey()),
  };
}
