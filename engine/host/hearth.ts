/**
 * Assembles the host side of the engine: the store, the supervised engine process, the model,
 * replies, downloads and metrics, behind the contract's `HearthApi`.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  err,
  ok,
  validateCall,
  type CallName,
  type HearthApi,
  type HearthEvent,
  type ModelProfile,
  type Result, errorText } from '../contract/index.ts';
import type { EngineMetrics, SpawnEngine } from '../protocol.ts';
import { CacheViewLog, describeKvSettings, describeModelLoaded, describeProfileSaved, describeRestart, logTurnLimit } from './cache-view-log.ts';
import { CacheViewSampler } from './cache-view-sampler.ts';
import { Conversations } from './conversations.ts';
import { databaseCallError, databaseStartError, openDatabase } from './db.ts';
import { Downloads } from './downloads.ts';
import { Emitter } from './emitter.ts';
import { exportChat } from './export.ts';
import { Generations } from './generations.ts';
import { KvSettingsApplier, planKvApply } from './kv-apply.ts';
import { readKvStats, type AppliedKvCodec } from './kv-stats.ts';
import { KvStatusTracker } from './kv-status.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { ModelManager, type InspectGguf } from './model-manager.ts';
import { ModelProfiles, profileKey } from './model-profiles.ts';
import { listModels, recommendedModels } from './models.ts';
import { QualityResults, QualityMeter } from './quality-results.ts';
import { readSettings, updateSettings } from './settings.ts';
import { ChatStore } from './chat-store.ts';
import { Supervisor, type LogLevel } from './supervisor.ts';

export interface HearthOptions {
  /** Where hearth.db, models/ and logs/ live; created if missing. */
  readonly dataDir: string;
  readonly host: 'electron' | 'browser';
  /** The app's version, reported by app.state. */
  readonly version: string;
  /** Starts the engine process; default: `forkEngine` (engine/spawn.ts). */
  readonly spawnEngine?: SpawnEngine;
  /** Overrides settings.threads (CLI --threads). */
  readonly threads?: number;
  /**
   * A model to load at start (CLI --model): `createHearth` then resolves once it is loaded or
   * has failed (status 'error', the app runs). Without it the remembered model
   * (settings.lastModelPath) loads in the background and `createHearth` does not wait.
   */
  readonly modelPath?: string;
  readonly logLevel?: LogLevel;
}

export interface Hearth {
  /** Validates name+payload against the contract, then runs the call. Never throws. */
  call(name: unknown, payload: unknown): Promise<Result<unknown>>;
  /** Typed access for in-process callers (inputs are trusted: not validated). Never throws. */
  readonly api: HearthApi;
  onEvent(listener: (event: HearthEvent) => void): () => void;
  /** Prometheus text for GET /metrics. */
  metricsText(): Promise<string>;
  /** The engine process's pid (tests kill it to inject a crash), or null while none runs. */
  readonly enginePid: number | null;
  /** Stops replies (saved as stopped, or incomplete), the engine process, and closes the database. */
  dispose(): Promise<void>;
}

/** A data directory Hearth cannot use: `message` and `hint` are for the user, not a stack trace. */
export class HearthStartError extends Error {
  readonly hint: string;

  constructor(message: string, hint: string) {
    super(message);
    this.name = 'HearthStartError';
    this.hint = hint;
  }
}

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

/** What engine/index.ts wires in, plus test seams that hosts never pass. */
export interface HearthWiring {
  readonly spawnEngine: SpawnEngine;
  /** The GGUF check before any load (engine/gguf/reader.ts `inspectGguf`). */
  readonly inspect: InspectGguf;
  readonly log?: Logger;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number; readonly stableMs: number };
  readonly flushIntervalMs?: number;
  /** How long dispose waits for the engine to stop replies before marking them incomplete. */
  readonly stopGraceMs?: number;
}

interface DataDirs {
  readonly root: string;
  readonly models: string;
  readonly logs: string;
  readonly db: string;
}

function prepareDataDir(dataDir: string): DataDirs {
  const root = path.resolve(dataDir);
  const dirs = { root, models: path.join(root, 'models'), logs: path.join(root, 'logs'), db: path.join(root, 'hearth.db') };
  try {
    for (const dir of [dirs.root, dirs.models, dirs.logs]) mkdirSync(dir, { recursive: true });
    accessSync(root, constants.W_OK);
  } catch (error) {
    throw new HearthStartError(
      `Hearth cannot write to its data directory ${root} (${describe(error)}).`,
      'Choose a writable directory (the browser host takes --data-dir DIR).',
    );
  }
  return dirs;
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = errorText(error);
  return code ? `${code}: ${message}` : message;
}

/** Starts Hearth: see `createHearth` in engine/index.ts. */
export async function startHearth(options: HearthOptions, wiring: HearthWiring): Promise<Hearth> {
  const dirs = prepareDataDir(options.dataDir);
  const log = wiring.log ?? createLogger(dirs.logs, options.logLevel ?? 'info');
  let db;
  try {
    db = openDatabase(dirs.db);
  } catch (error) {
    await log.close();
    const { message, hint } = databaseStartError(dirs.db, error);
    throw new HearthStartError(message, hint);
  }
  const store = new ChatStore(db, { onError: (error) => log('error', `a reply's end could not be saved: ${describe(error)}`) });
  const interrupted = store.markInterrupted();
  if (interrupted > 0) log('warn', `${interrupted} reply(s) were cut off when Hearth last stopped: marked incomplete`);

  const events = new Emitter<HearthEvent>((error) => log('error', `an event listener threw: ${describe(error)}`));
  const emit = (event: HearthEvent): void => events.emit(event);
  /** The running engine's disk encoding (kv.stats, the Cache view): kept across restarts until the next init answers. */
  let appliedCodec: AppliedKvCodec | null = null;
  let warnedFallback = false;
  const supervisor = new Supervisor({
    spawn: wiring.spawnEngine,
    logLevel: options.logLevel ?? 'info',
    log,
    ...(wiring.backoff ? { backoff: wiring.backoff } : {}),
    // Read at each engine start; `settings.update` restarts the engine when they change.
    initInput: () => {
      const s = readSettings(db);
      // initInput first runs at supervisor.start() below, once kvStatus exists.
      kvStatus.engineStarting(s.kvPersistence);
      return s.kvPersistence
        ? { kvDir: path.join(dirs.root, 'kv'), kvBudgetBytes: s.kvBudgetBytes, kvChunkTokens: s.kvChunkTokens, kvCompression: s.kvCompression }
        : { kvDir: null, kvCompression: s.kvCompression };
    },
    onInit: (input, output) => {
      appliedCodec = { compression: input.kvCompression ?? 'lossless', codec: output.codec };
      // Every restart answers the same: one line says it, not one per restart.
      if (output.codec.kernels === 'fallback' && !warnedFallback) {
        warnedFallback = true;
        log('warn', `the KV codec runs its TypeScript fallback (same bytes, slower): ${output.codec.reason ?? 'no reason given'}`);
      }
    },
  });
  supervisor.onStatus((status) => emit({ type: 'engine.status', payload: status }));
  const journal = new CacheViewLog({ emit });
  try {
    journal.seed(store.recentTurns(logTurnLimit));
  } catch (error) {
    log('warn', `could not read the recent turns for the Cache view: ${describe(error)}`);
  }
  let engineBefore = supervisor.status;
  supervisor.onStatus((status) => {
    const restart = describeRestart(engineBefore, status);
    engineBefore = status;
    if (restart !== null) journal.record('restart', restart);
  });
  supervisor.onEvent((event) => {
    if (event.type === 'kvActivity') journal.recordActivity(event.activity);
  });
  const kvStatus = new KvStatusTracker({ engine: supervisor, emit, log, enabled: readSettings(db).kvPersistence });
  const metrics = new Metrics();
  const generations = new Generations({
    store,
    engine: supervisor,
    emit,
    metrics,
    log,
    onTurn: (chatId, messageId, stats) => void journal.recordTurn(chatId, messageId, stats),
    ...(wiring.flushIntervalMs ? { flushIntervalMs: wiring.flushIntervalMs } : {}),
  });
  const settings = () => readSettings(db);
  const profiles: ModelProfiles = new ModelProfiles({
    db,
    settings,
    engine: supervisor,
    loadedModel: (): string | null => (model.status.status === 'ready' ? (model.status.model?.path ?? null) : null),
    reload: (file) => model.load(file),
    log,
    onSaved: (key, before, after) => void journal.record('settings', describeProfileSaved(key, before, after)),
  });
  const model: ModelManager = new ModelManager({
    engine: supervisor,
    inspect: wiring.inspect,
    settings,
    profileOf: (file): ModelProfile => profiles.profileOf(file),
    rememberModel: (file) => void updateSettings(db, { lastModelPath: file }),
    stopReplies: async () => void (await Promise.all(generations.activeChatIds.map((id) => generations.stop(id)))),
    emit,
    threadsOverride: options.threads,
    log,
  });
  const downloads = new Downloads({ engine: supervisor, modelsDir: dirs.models, emit });
  const chats = new Conversations({ store, generations, model, settings, emit });
  const kvApplier = new KvSettingsApplier({
    busy: () => generations.activeChatIds.length > 0 || model.status.status === 'loading' || downloads.active.length > 0,
    restartEngine: () => supervisor.restart(),
    loadedModel: () => (model.status.status === 'ready' ? (model.status.model?.path ?? null) : null),
    loadModel: (file) => model.load(file),
    log,
  });
  // Every reply end, load end and download end is an event: a queued KV change runs after it.
  events.on(() => kvApplier.poke());
  events.on((event) => {
    if (event.type !== 'model.status' || event.payload.status !== 'ready' || !event.payload.model) return;
    const loaded = event.payload.model;
    journal.record('model', describeModelLoaded(loaded, profiles.profileOf(loaded.path).slots));
  });
  const monitor = new CacheViewSampler({
    metrics: (timeoutMs) => supervisor.request('metrics', {}, { timeoutMs }),
    settings,
    kvStatus: () => kvStatus.status,
    applied: () => appliedCodec,
    emit,
    log,
  });
  const kvDir = path.join(dirs.root, 'kv');
  const quality = new QualityMeter({
    engine: supervisor,
    loadedModel: () => (model.status.status === 'ready' ? (model.status.model ?? null) : null),
    cache: new QualityResults(db),
  });

  let disposed: Promise<void> | null = null;
  const guard = <I, O>(name: CallName, fn: (input: I) => Promise<Result<O>>) =>
    async (input: I): Promise<Result<O>> => {
      if (disposed) return err('ENGINE_UNAVAILABLE', 'Hearth is shutting down.');
      try {
        return await fn(input);
      } catch (error) {
        log('error', `${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        // A locked, full or damaged hearth.db is the user's to fix: say what to do (db.ts).
        const known = databaseCallError(error);
        if (known) return { ok: false, error: known };
        return err('INTERNAL', `${name} failed unexpectedly: ${errorText(error)}`);
      }
    };

  const api: HearthApi = {
    'app.state': guard('app.state', async () =>
      ok({
        version: options.version,
        host: options.host,
        dataDir: dirs.root,
        modelsDir: dirs.models,
        engine: supervisor.status,
        model: model.status,
        settings: settings(),
        kv: kvStatus.status,
      }),
    ),
    /**
     * Threads and context size apply at the next model load, not to the loaded model. The disk
     * KV settings apply now (kv-apply.ts): a changed persistence, budget, chunk size or
     * compression restarts the engine gracefully and this answers once it runs again; a changed
     * slot count reloads the loaded model. While the engine is busy (a reply streams, a model loads, a download
     * runs) the change is saved, this answers at once, and it applies when the engine is idle.
     */
    'settings.update': guard('settings.update', async (patch) => {
      const before = settings();
      const after = updateSettings(db, patch);
      const changed = describeKvSettings(before, after);
      if (changed !== null) journal.record('settings', changed);
      await kvApplier.apply(planKvApply(before, after));
      return ok(after);
    }),
    'models.list': guard('models.list', async () => ok({ models: await listModels(dirs.models) })),
    'models.recommended': guard('models.recommended', async () => ok({ models: recommendedModels })),
    'models.load': guard('models.load', async ({ path: file }) => model.load(file)),
    'models.unload': guard('models.unload', async () => model.unload()),
    // Electron's host answers this with its native dialog; no other host can.
    'models.pick': guard('models.pick', async () => err('NOT_SUPPORTED', 'This host has no file dialog.', 'Type the path of a .gguf file instead.')),
    'models.download': guard('models.download', async ({ uri }) => downloads.start(uri)),
    'models.cancelDownload': guard('models.cancelDownload', async ({ downloadId }) => downloads.cancel(downloadId)),
    'models.getProfile': guard('models.getProfile', ({ path: file }) => profiles.get(file)),
    'models.setProfile': guard('models.setProfile', ({ path: file, profile }) => profiles.set(file, profile)),
    /**
     * The contract validated the input. A local model defaults to its profile's context size and
     * slots; a remote one (no profile yet) to Settings'. An automatic context (0) is planned at
     * 4,096 tokens: the host does not read the trained length, and the table shows the longest fit anyway.
     */
    'models.plan': guard('models.plan', async ({ path: file, uri, contextSize, slots }) => {
      const defaults = file !== undefined ? profiles.profileOf(file) : { contextSize: settings().contextSize, slots: settings().kvSlots };
      return supervisor.request(
        'plan',
        {
          ...(file !== undefined ? { path: profileKey(file) } : { uri: uri! }),
          contextSize: contextSize ?? (defaults.contextSize > 0 ? defaults.contextSize : PLAN_DEFAULT_CONTEXT),
          slots: slots ?? defaults.slots,
        },
        { timeoutMs: PLAN_TIMEOUT_MS },
      );
    }),
    'models.measureQuality': guard('models.measureQuality', (input) => quality.measure(input)),
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
    'chats.switchBranch': guard('chats.switchBranch', (input) => chats.switchBranch(input)),
    'chats.stop': guard('chats.stop', (input) => chats.stop(input)),
    'chats.export': guard('chats.export', async ({ chatId, format }) => {
      const chat = store.getChat(chatId);
      if (!chat) return err('NOT_FOUND', `There is no chat with id ${chatId}.`);
      return ok(exportChat(chat, store.activePath(chatId), format));
    }),
    'kv.stats': guard('kv.stats', async () =>
      ok(
        await readKvStats({
          metrics: () => supervisor.request('metrics', {}, { timeoutMs: 2000 }),
          settings,
          kvStatus: () => kvStatus.status,
          applied: () => appliedCodec,
          diskPaths: [kvDir, dirs.root],
        }),
      ),
    ),
    'kv.verify': guard('kv.verify', async ({ repair }) => {
      if (supervisor.status.state !== 'running') return err('ENGINE_UNAVAILABLE', 'The engine is not running, so the cache cannot be checked now.', 'Wait until the engine has started, then check again.');
      return supervisor.request('kvVerify', { repair: repair ?? false }, { timeoutMs: VERIFY_TIMEOUT_MS });
    }),
    'cache.watch': guard('cache.watch', async () => ok(monitor.watch())),
    /** Chats whose records are gone (nothing left to forget them by) are left out of the largest chats. */
    'cache.overview': guard('cache.overview', async () => {
      // An engine that is down or slow leaves the list empty: the history is the host's and still shows.
      const listed = await supervisor.request('kvChats', { limit: OVERVIEW_CHATS }, { timeoutMs: CACHE_CALL_TIMEOUT_MS });
      const chats = listed.ok ? listed.value.chats.filter((chat) => store.getChat(chat.chatId) !== undefined) : [];
      return ok({ turns: journal.turns, events: journal.events, chats });
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
      if (!store.getChat(chatId)) return err('NOT_FOUND', `There is no chat with id ${chatId}.`);
      return supervisor.request('forgetChat', { chatId, reread: true }, { timeoutMs: FORGET_TIMEOUT_MS });
    }),
  };

  await supervisor.start();
  if (options.modelPath !== undefined) await model.loadAtStart(options.modelPath);
  else void model.loadAtStart(undefined).catch((error: unknown) => log('error', `loading the remembered model failed: ${describe(error)}`));

  return {
    api,
    async call(name, payload) {
      const checked = validateCall(name, payload);
      if (!checked.ok) return { ok: false, error: checked.error };
      const run = api[checked.name] as (input: unknown) => Promise<Result<unknown>>;
      return run(checked.input);
    },
    onEvent: (listener) => events.on(listener),
    async metricsText() {
      let kv: EngineMetrics = { kvCellsUsed: 0, kvCellsCapacity: 0, slots: [] };
      if (!disposed && model.ready && supervisor.status.state === 'running') {
        const sampled = await supervisor.request('metrics', {}, { timeoutMs: 1000 });
        if (sampled.ok) kv = sampled.value;
      }
      return metrics.render({ ...kv, engineRestarts: supervisor.status.restarts, modelLoaded: model.ready });
    },
    get enginePid() {
      return supervisor.pid;
    },
    dispose() {
      disposed ??= (async () => {
        monitor.dispose();
        kvApplier.dispose();
        await generations.stopAll(wiring.stopGraceMs ?? 2000);
        await supervisor.dispose();
        // Replies' ends a locked database deferred (store.ts): written now if the lock is gone.
        if (store.flushPending() > 0) log('warn', `${store.pendingFinishes} reply(s) could not be saved whole: the database is still locked by another process`);
        db.close();
        events.clear();
        await log.close();
      })();
      return disposed;
    },
  };
}
