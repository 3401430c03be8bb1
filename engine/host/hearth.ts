/**
 * Assembles the host side of the engine behind the contract's `HearthApi`: the store, the
 * supervised engine process, the model, replies, the models library and downloads, metrics and
 * the Cache view.
 *
 * Every listener a part subscribes is kept in one `DisposableStore` and disposed with Hearth,
 * after the engine stopped, so the engine's final 'stopped' status still reaches the renderer
 * and nothing stays subscribed to a dead supervisor. The call table is in hearth-calls.ts.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { errorText, validateCall, type HearthApi, type HearthEvent, type MessageStats, type ModelProfile, type ReplyEngine, type Result, type Settings } from '../contract/index.ts';
import { DisposableStore } from '../base/disposable.ts';
import type { EngineMetrics, InitInput, InitOutput, SpawnEngine } from '../protocol.ts';
import { CacheViewLog, describeModelLoaded, describeProfileSaved, describeRestart, logTurnLimit } from './cache-view-log.ts';
import { CacheViewSampler } from './cache-view-sampler.ts';
import { ChatStore } from './chat-store.ts';
import { Conversations } from './conversations.ts';
import { databaseStartError, openDatabase } from './db.ts';
import { DownloadQueue } from './downloads/queue.ts';
import { Emitter } from '../base/emitter.ts';
import { Generations } from './generations.ts';
import { createCalls, type CallDeps } from './hearth-calls.ts';
import { KvSettingsApplier } from './kv-apply.ts';
import { appliedCompression, type AppliedKvCodec } from './kv-stats.ts';
import { KvStatusTracker } from './kv-status.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { ModelManager, type InspectGguf } from './model-manager.ts';
import { ModelProfiles } from './model-profiles.ts';
import { SpeedDefaults, SpeedStore } from './speed-profiles.ts';
import { QualityMeter, QualityResults } from './quality-results.ts';
import { readSettings, updateSettings } from './settings.ts';
import { Supervisor, type LogLevel } from './supervisor.ts';
import { fileSecretStore, type SecretStore } from './secrets.ts';
import { createBackend } from './api/backend.ts';
import { ApiRuns } from './api/runs.ts';
import { ApiServer, type ApiOverride } from './api/server.ts';
import { defaultHubEndpoint, HubClient } from './hub/client.ts';
import { checkHubEndpoint, HubService, HUB_TOKEN_SECRET } from './hub-service.ts';
import { ModelFiles } from './model-files.ts';
import { RemoteClient } from './remote/client.ts';
import { RemoteEngines } from './remote/engines.ts';
import { RemoteReplies } from './remote/replies.ts';
import { RemoteCacheWatch } from './remote/watch.ts';
import { defaultTrialSettings, LocalEngine, TRIAL_TIMEOUT_MS } from './local-engine/local-engine.ts';

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
   * Whether a model's first load on this device measures its speed and loads with the fastest
   * settings (default true; CLI --no-measure-speed). Off, a model loads with the defaults until
   * the Model profile's "Measure now"; stored measurements are used either way.
   */
  readonly measureSpeed?: boolean;
  /**
   * A model to load at start (CLI --model): `createHearth` then resolves once it is loaded or
   * has failed (status 'error', the app runs). Without it the remembered model
   * (settings.lastModelPath) loads in the background and `createHearth` does not wait.
   */
  readonly modelPath?: string;
  readonly logLevel?: LogLevel;
  /**
   * Where secrets (the API server's key) are kept. The desktop app passes one backed by
   * Electron's safeStorage; the default is 0600 files in `<dataDir>/secrets`.
   */
  readonly secrets?: SecretStore;
  /** The command line's API server settings for this run (`--api-port`, `--api-key`). */
  readonly api?: ApiOverride;
  /**
   * The Hugging Face endpoint; default the HEARTH_HF_ENDPOINT environment variable, else
   * https://huggingface.co (a mirror, or the tests' loopback emulator).
   */
  readonly hubEndpoint?: string;
  /**
   * Where other apps' models are looked for (LM Studio, Ollama, Jan, GPT4All): a home folder and
   * the environment their folders follow (OLLAMA_MODELS, XDG_DATA_HOME…); default the user's.
   */
  readonly otherApps?: { readonly home: string; readonly env: NodeJS.ProcessEnv };
}

export interface Hearth {
  /** Validates name+payload against the contract, then runs the call. Never throws. */
  call(name: unknown, payload: unknown): Promise<Result<unknown>>;
  /** Typed access for in-process callers (inputs are trusted: not validated). Never throws. */
  readonly api: HearthApi;
  /**
   * Subscribes to every event; the returned function unsubscribes. A function, like the hosts'
   * and the renderer's `onEvent`, rather than a `Disposable`: it is what the hosts pass on.
   */
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
  /**
   * Receives a count of the listeners still subscribed to the supervisor and to Hearth's own
   * events: zero once Hearth is disposed.
   */
  readonly probe?: (listenerCount: () => number) => void;
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

/** "EACCES: permission denied…": the errno code leads, since it is what a user can search for. */
function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = errorText(error);
  return code ? `${code}: ${message}` : message;
}

/** Opens hearth.db; a database that cannot be used is a `HearthStartError` with advice. */
async function openStoreDatabase(file: string, log: Logger): Promise<DatabaseSync> {
  try {
    return openDatabase(file);
  } catch (error) {
    await log.close();
    const { message, hint } = databaseStartError(file, error);
    throw new HearthStartError(message, hint);
  }
}

/** What the supervisor reports to the rest of the host as each engine process starts. */
interface EngineHooks {
  /** A process is about to `init`, with or without disk KV persistence. */
  starting(kvPersistence: boolean): void;
  /** It answered `init` with the KV codec it runs and the compression it applies (null: not known). */
  applied(codec: AppliedKvCodec | null): void;
  /** Its llama.cpp build and device, what speed measurements are filed under (null: not said). */
  device(device: string | null): void;
  /** The engine build for this computer it starts with, if any (local-engine/), and which engine it loaded. */
  engineBuild(): Pick<InitInput, 'engineDir'>;
  engineStarted(input: InitInput, output: InitOutput): void;
}

function createSupervisor(options: HearthOptions, wiring: HearthWiring, dirs: DataDirs, db: DatabaseSync, log: Logger, hooks: EngineHooks): Supervisor {
  let warnedFallback = false;
  return new Supervisor({
    spawn: wiring.spawnEngine,
    logLevel: options.logLevel ?? 'info',
    log,
    ...(wiring.backoff ? { backoff: wiring.backoff } : {}),
    // Read at each engine start; `settings.update` restarts the engine when they change.
    initInput: () => {
      const s = readSettings(db);
      hooks.starting(s.kvPersistence);
      const kv = s.kvPersistence
        ? { kvDir: path.join(dirs.root, 'kv'), kvBudgetBytes: s.kvBudgetBytes, kvChunkTokens: s.kvChunkTokens, kvCompression: s.kvCompression }
        : { kvDir: null, kvCompression: s.kvCompression };
      return { ...kv, ...hooks.engineBuild() };
    },
    onInit: (input, output) => {
      const compression = appliedCompression(input.kvCompression ?? 'lossless', output.compression);
      if (compression === null) log('warn', 'the engine did not say which KV compression it chose');
      hooks.applied(compression ? { compression, codec: output.codec } : null);
      hooks.device(typeof output.device === 'string' && output.device !== '' ? `${output.build}; ${output.device}` : null);
      hooks.engineStarted(input, output);
      // Every restart answers the same: one line says it, not one per restart.
      if (output.codec.kernels === 'fallback' && !warnedFallback) {
        warnedFallback = true;
        log('warn', `the KV codec runs its TypeScript fallback (same bytes, slower): ${output.codec.reason ?? 'no reason given'}`);
      }
    },
  });
}

/** The engine built for this computer: its choice is read now, before the first engine process starts. */
function createEngineBuild(dirs: DataDirs, supervisor: Supervisor, model: ModelManager, busy: () => boolean, settings: () => Settings, emit: (event: HearthEvent) => void, log: Logger, subscriptions: DisposableStore, events: Emitter<HearthEvent>): LocalEngine {
  const engineBuild = new LocalEngine({
    root: path.join(dirs.root, 'engines'),
    engine: {
      restart: () => supervisor.restart(),
      measureTrial: (speedSettings) => supervisor.request('measureTrial', { settings: speedSettings }, { timeoutMs: TRIAL_TIMEOUT_MS }),
    },
    modelStatus: () => model.status,
    busy,
    defaults: () => defaultTrialSettings(settings().threads),
    emit: (state) => emit({ type: 'engine.local', payload: state }),
    log,
  });
  subscriptions.add(supervisor.onStatus((status) => engineBuild.onEngineStatus(status)));
  subscriptions.add(
    events.on((event) => {
      if (event.type === 'model.status') engineBuild.onModelStatus(event.payload);
    }),
  );
  return engineBuild;
}

/** The Cache view's history, seeded from the store and fed by engine restarts and KV activity. */
function createViewLog(store: ChatStore, supervisor: Supervisor, emit: (event: HearthEvent) => void, log: Logger, subscriptions: DisposableStore): CacheViewLog {
  const viewLog = new CacheViewLog({ emit });
  try {
    viewLog.seed(store.recentTurns(logTurnLimit));
  } catch (error) {
    log('warn', `could not read the recent turns for the Cache view: ${describe(error)}`);
  }
  let engineBefore = supervisor.status;
  subscriptions.add(
    supervisor.onStatus((status) => {
      const restart = describeRestart(engineBefore, status);
      engineBefore = status;
      if (restart !== null) viewLog.record('restart', restart);
    }),
  );
  subscriptions.add(
    supervisor.onEvent((event) => {
      if (event.type === 'kvActivity') viewLog.recordActivity(event.activity);
    }),
  );
  return viewLog;
}

/** The assembled host: what the calls reach, and what `dispose` stops. */
interface Parts extends CallDeps {
  readonly remoteReplies: RemoteReplies;
  readonly events: Emitter<HearthEvent>;
  readonly metrics: Metrics;
  readonly generations: Generations;
  readonly apiRuns: ApiRuns;
  /** Every listener subscribed to the supervisor or to `events`, by whichever part. */
  readonly subscriptions: DisposableStore;
}

/**
 * Creates and connects the parts. Subscriptions are made in a fixed order (the relay of the
 * engine's status first), which is the order listeners hear each status and event.
 */
function assemble(options: HearthOptions, wiring: HearthWiring, dirs: DataDirs, db: DatabaseSync, log: Logger, closing: () => boolean): Parts {
  const store = new ChatStore(db, { onError: (error) => log('error', `a reply's end could not be saved: ${describe(error)}`) });
  const interrupted = store.markInterrupted();
  if (interrupted > 0) log('warn', `${interrupted} reply(s) were cut off when Hearth last stopped: marked incomplete`);

  const subscriptions = new DisposableStore();
  const events = new Emitter<HearthEvent>((error) => log('error', `an event listener threw: ${describe(error)}`));
  const emit = (event: HearthEvent): void => events.emit(event);
  const settings = () => readSettings(db);
  /** The running engine's disk encoding (kv.stats, the Cache view): kept across restarts until the next init answers. */
  let appliedCodec: AppliedKvCodec | null = null;
  // initInput first runs at supervisor.start(), once kvStatus exists.
  let engineDevice: string | null = null;
  const hooks: EngineHooks = { starting: (on) => kvStatus.engineStarting(on), applied: (codec) => (appliedCodec = codec), device: (device) => (engineDevice = device), engineBuild: () => engineBuild.initInput(), engineStarted: (input, output) => engineBuild.onInit(input, output) };
  const supervisor = createSupervisor(options, wiring, dirs, db, log, hooks);
  subscriptions.add(supervisor.onStatus((status) => emit({ type: 'engine.status', payload: status })));
  const viewLog = createViewLog(store, supervisor, emit, log, subscriptions);
  const kvStatus = subscriptions.add(new KvStatusTracker({ engine: supervisor, emit, log, enabled: settings().kvPersistence }));
  const metrics = new Metrics();
  const onTurn = (chatId: string, messageId: string, stats: MessageStats) => void viewLog.recordTurn(chatId, messageId, stats);
  const secrets = options.secrets ?? fileSecretStore(path.join(dirs.root, 'secrets'));
  const remoteClient = new RemoteClient();
  const engines = new RemoteEngines({ db, secrets, client: remoteClient, emit, log });
  const remoteReplies = new RemoteReplies({ engines, client: remoteClient });
  const remoteWatch = new RemoteCacheWatch({
    client: remoteClient,
    engine: (id) => engines.target(id),
    emit,
    log,
  });
  const localEngine = (): ReplyEngine | null => {
    const loaded = model.status.status === 'ready' ? model.status.model : undefined;
    // The file, not general.name: two quantizations of one model share a name but not their KV.
    return loaded ? { id: 'local', name: 'This computer', model: path.basename(loaded.path), kind: 'local' } : null;
  };
  const generations = subscriptions.add(
    new Generations({ store, engine: supervisor, remote: remoteReplies, localEngine, emit, metrics, log, onTurn, ...(wiring.flushIntervalMs ? { flushIntervalMs: wiring.flushIntervalMs } : {}) }),
  );
  const loadedPath = (): string | null => (model.status.status === 'ready' ? (model.status.model?.path ?? null) : null);
  const speed = new SpeedDefaults({
    store: new SpeedStore(db),
    device: () => engineDevice,
    fixedThreads: () => options.threads ?? (settings().threads > 0 ? settings().threads : null),
    measureOnFirstLoad: options.measureSpeed ?? true,
  });
  const profiles: ModelProfiles = new ModelProfiles({
    db,
    settings,
    speed,
    engine: supervisor,
    loadedModel: loadedPath,
    reload: (file) => model.load(file),
    log,
    onSaved: (key, before, after) => void viewLog.record('settings', describeProfileSaved(key, before, after)),
  });
  const model: ModelManager = subscriptions.add(
    new ModelManager({
      engine: supervisor,
      inspect: wiring.inspect,
      settings,
      profileOf: (file): ModelProfile => profiles.profileOf(file),
      rememberModel: (file) => void updateSettings(db, { lastModelPath: file }),
      stopReplies: async () => void (await Promise.all(generations.activeChatIds.map((id) => generations.stop(id)))),
      emit,
      threadsOverride: options.threads,
      speed,
      log,
    }),
  );
  const engineBuild = createEngineBuild(dirs, supervisor, model, () => generations.activeChatIds.length > 0, settings, emit, log, subscriptions, events);
  const modelsDir = (): string => settings().modelsDir ?? dirs.models;
  // Checked by startHearth before anything opened.
  const hub = new HubClient({ endpoint: options.hubEndpoint ?? defaultHubEndpoint, token: async () => secrets.read(HUB_TOKEN_SECRET) });
  const hubService = new HubService({ hub, secrets, engine: supervisor });
  const downloads = new DownloadQueue({ db, modelsDir, hub, emit, log });
  const otherApps = options.otherApps ?? { home: os.homedir(), env: process.env };
  const modelFiles = new ModelFiles({ modelsDir, ...otherApps, platform: process.platform, engine: supervisor, model });
  const chats = new Conversations({ store, generations, model, settings, emit, engines });
  const kvApplier = new KvSettingsApplier({
    busy: () => generations.activeChatIds.length > 0 || model.status.status === 'loading',
    restartEngine: () => supervisor.restart(),
    loadedModel: loadedPath,
    loadModel: (file) => model.load(file),
    log,
  });
  // Every reply end and load end is an event: a queued KV change runs after it.
  subscriptions.add(events.on(() => kvApplier.poke()));
  subscriptions.add(
    events.on((event) => {
      if (event.type !== 'model.status' || event.payload.status !== 'ready' || !event.payload.model) return;
      const loaded = event.payload.model;
      viewLog.record('model', describeModelLoaded(loaded, profiles.profileOf(loaded.path).slots));
    }),
  );
  const kvState = () => kvStatus.status;
  const applied = () => appliedCodec;
  const sampler = new CacheViewSampler({ metrics: (timeoutMs) => supervisor.request('metrics', {}, { timeoutMs }), settings, kvStatus: kvState, applied, emit, log });
  const quality = new QualityMeter({ engine: supervisor, loadedModel: () => (model.status.status === 'ready' ? (model.status.model ?? null) : null), cache: new QualityResults(db) });
  const apiRuns = subscriptions.add(
    new ApiRuns({
      engine: supervisor,
      onTurn: (conversationId, requestId, stats) => {
        metrics.record(stats);
        viewLog.recordTurn(conversationId, requestId, stats, 'api');
      },
    }),
  );
  const backend = createBackend({ engine: supervisor, runs: apiRuns, model, listModels: async () => (await modelFiles.list()).models, chatsBusy: () => generations.activeChatIds.length > 0 });
  const apiServer = new ApiServer({
    db,
    secrets,
    backend,
    emit,
    log,
    ...(options.api ? { override: options.api } : {}),
  });
  const { version, host } = options;
  return { version, host, dirs, db, log, store, supervisor, settings, kvStatus, appliedCodec: applied, viewLog, sampler, kvApplier, model, profiles, downloads, modelFiles, hubService, modelsDir, chats, quality, apiServer, engines, engineBuild, remoteWatch, remoteReplies, closing, events, metrics, generations, apiRuns, subscriptions };
}

/**
 * Stops in dependency order: no new samples or KV changes, replies stopped and saved, the
 * engine stopped (its 'stopped' status still relayed), then every listener, the database, the
 * host's own listeners and the log.
 */
async function disposeParts(parts: Parts, stopGraceMs: number): Promise<void> {
  const { sampler, kvApplier, generations, supervisor, subscriptions, store, log, db, events, apiServer, downloads, remoteWatch, remoteReplies, engineBuild } = parts;
  // No new API requests; those running are stopped with the engine below.
  await apiServer.dispose();
  // Transfers stop, their rows and partial files kept: the next start resumes them.
  await downloads.dispose();
  sampler.dispose();
  remoteWatch.dispose();
  kvApplier.dispose();
  await generations.stopAll(stopGraceMs);
  // Anything stopAll did not reach (a reply that finished meanwhile has nothing to abort).
  remoteReplies.abortAll();
  // A build in progress stops (its work folder stays for the next one).
  await engineBuild.dispose();
  await supervisor.dispose();
  subscriptions.dispose();
  // Replies' ends a locked database deferred (chat-store.ts): written now if the lock is gone.
  if (store.flushPending() > 0) log('warn', `${store.pendingFinishes} reply(s) could not be saved whole: the database is still locked by another process`);
  db.close();
  events.dispose();
  await log.close();
}

/** Prometheus text for GET /metrics: KV figures only while a model runs, zeros otherwise. */
async function renderMetrics({ supervisor, model, metrics }: Parts, closing: boolean): Promise<string> {
  let kv: EngineMetrics = { kvCellsUsed: 0, kvCellsCapacity: 0, slots: [] };
  if (!closing && model.ready && supervisor.status.state === 'running') {
    const sampled = await supervisor.request('metrics', {}, { timeoutMs: 1000 });
    if (sampled.ok) kv = sampled.value;
  }
  return metrics.render({ ...kv, engineRestarts: supervisor.status.restarts, modelLoaded: model.ready });
}

/** Starts Hearth: see `createHearth` in engine/index.ts. */
export async function startHearth(options: HearthOptions, wiring: HearthWiring): Promise<Hearth> {
  const endpoint = checkHubEndpoint(options.hubEndpoint ?? (process.env.HEARTH_HF_ENDPOINT || defaultHubEndpoint));
  if (!endpoint.ok) throw new HearthStartError(endpoint.error.message, endpoint.error.hint ?? '');
  const dirs = prepareDataDir(options.dataDir);
  const log = wiring.log ?? createLogger(dirs.logs, options.logLevel ?? 'info');
  const db = await openStoreDatabase(dirs.db, log);
  let disposed: Promise<void> | null = null;
  const parts = assemble({ ...options, hubEndpoint: endpoint.value }, wiring, dirs, db, log, () => disposed !== null);
  const api = createCalls(parts);
  wiring.probe?.(() => parts.supervisor.listenerCount + parts.events.size);

  await parts.supervisor.start();
  if (options.modelPath !== undefined) await parts.model.loadAtStart(options.modelPath);
  else void parts.model.loadAtStart(undefined).catch((error: unknown) => log('error', `loading the remembered model failed: ${describe(error)}`));
  // Listening (when on) before createHearth resolves: the command line prints its address next.
  await parts.apiServer.start();
  // Downloads a quit or crash cut off go on where they stopped; paused ones wait for the user.
  parts.downloads.restore();
  // What each remote engine serves now, for the picker; in the background (a server may be slow or away).
  parts.engines.checkAll();

  return {
    api,
    async call(name, payload) {
      const checked = validateCall(name, payload);
      if (!checked.ok) return { ok: false, error: checked.error };
      const run = api[checked.name] as (input: unknown) => Promise<Result<unknown>>;
      return run(checked.input);
    },
    onEvent(listener) {
      const subscription = parts.events.on(listener);
      return () => subscription.dispose();
    },
    metricsText: () => renderMetrics(parts, disposed !== null),
    get enginePid() {
      return parts.supervisor.pid;
    },
    dispose() {
      disposed ??= disposeParts(parts, wiring.stopGraceMs ?? 2000);
      return disposed;
    },
  };
}
