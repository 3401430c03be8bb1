/**
 * The engine built for this computer, as the host owns it (`LocalEngineState`, the contract's
 * `engine.*` calls): whether one can be built here, the build in the background with its
 * progress, the comparison with the prebuilt engine on the loaded model (compare.ts), and which
 * engine the engine process starts with. The prebuilt engine is the default and the fallback:
 * the build is used only after it measured faster, the choice is kept in
 * `<dataDir>/engines/choice.json` for the next start, and a build that fails to load (an error
 * in the engine's `init`, or the process dying before it answered) is switched off for good
 * with the reason, so a broken build never becomes a crash loop.
 */
import os from 'node:os';
import path from 'node:path';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { err, errorText, hearthError, ok, type EngineBuildKind, type EngineStatus, type HearthError, type LocalEngineState, type ModelInfo, type ModelStatus, type Result, type SpeedSettings, type SpeedTrial } from '../../contract/index.ts';
import type { InitInput, InitOutput } from '../../protocol.ts';
import { settlesWithin } from '../../base/timeout.ts';
import { acquireBuildLock, BuildLockBusy } from './build-lock.ts';
import { BuildCancelled, buildEngine, BuildFailed } from './builder.ts';
import { compareEngines } from './compare.ts';
import { buildConfig } from './config.ts';
import { finishedBuilds, pruneBuilds, readChoice, writeChoice, type BuildTarget, type EngineChoice, type EngineManifest } from './manifest.ts';
import { spawnRunner, type CommandRunner } from './runner.ts';
import { findLlamaSource, type LlamaSource } from './source.ts';
import { detectBuildTools, type BuildTools } from './tools.ts';

/** How long a model may take to load again after an engine switch. */
const RELOAD_TIMEOUT_MS = 10 * 60_000;
/** How long one trial may take (a large model on a slow CPU). */
export const TRIAL_TIMEOUT_MS = 10 * 60_000;
/** Progress events at most this often: a compile prints thousands of lines. */
const PROGRESS_STEP = 0.01;
/** How often a comparison looks whether the replies it waits for have ended, and for how long at most. */
const IDLE_POLL_MS = 500;
const IDLE_WAIT_MS = 10 * 60_000;
/** How long closing Hearth waits for a comparison to notice (it restarts the engine, which closing stops anyway). */
const DISPOSE_WAIT_MS = 5000;

export interface LocalEngineDeps {
  /** `<dataDir>/engines`. */
  readonly root: string;
  readonly engine: {
    restart(): Promise<Result<void>>;
    measureTrial(settings: SpeedSettings): Promise<Result<SpeedTrial>>;
  };
  /** The model manager's status now. */
  readonly modelStatus: () => ModelStatus;
  /** Whether a reply or a load is running: a comparison restarts the engine, so it waits until nothing is. */
  readonly busy: () => boolean;
  /** The settings a comparison measures with where the loaded model does not report its own. */
  readonly defaults: () => SpeedSettings;
  readonly emit: (state: LocalEngineState) => void;
  readonly log: (level: 'error' | 'warn' | 'info' | 'debug', message: string) => void;
  readonly runner?: CommandRunner;
  /** Where the sources are (default: node-llama-cpp as installed beside Hearth). */
  readonly source?: () => { readonly source: LlamaSource } | { readonly reason: string };
  readonly detectTools?: () => Promise<BuildTools>;
  readonly jobs?: number;
  readonly platform?: NodeJS.Platform;
  readonly arch?: string;
}

type Status = LocalEngineState['status'];
type Availability = { readonly available: true } | { readonly available: false; readonly reason: string };

export class LocalEngine {
  readonly #deps: LocalEngineDeps;
  readonly #runner: CommandRunner;
  #choice: EngineChoice;
  /** The engine the running process loaded, and the backend it runs on. */
  #inUse: EngineBuildKind = 'prebuilt';
  #backend = 'cpu';
  #fallback: string | undefined;
  /** The build folder handed to the process starting now; cleared once it answered `init`. */
  #starting: string | null = null;
  #lastCrashAt: number | null = null;
  /** The engine the next process starts with. */
  #wanted: EngineBuildKind;
  #status: Status = 'idle';
  #progress: number | undefined;
  #step: string | undefined;
  #error: HearthError | undefined;
  #tools: Promise<BuildTools> | null = null;
  /** The tools once detected: events are snapshots taken when they happen, not after a wait. */
  #toolsFound: BuildTools | null = null;
  #abort: AbortController | null = null;
  #job: Promise<void> | null = null;
  /** Model loads seen to finish, so a switch waits for the reload after it, not an earlier one. */
  #readyCount = 0;
  #modelWaiters: Array<(status: ModelStatus) => void> = [];
  #disposed = false;

  constructor(deps: LocalEngineDeps) {
    this.#deps = deps;
    this.#runner = deps.runner ?? spawnRunner;
    this.#choice = readChoice(deps.root);
    const build = this.#usableBuild();
    this.#wanted = this.#choice.use === 'local' && this.#choice.disabled === undefined && build !== null && build.name === this.#choice.build ? 'local' : 'prebuilt';
    if (this.#choice.disabled !== undefined) this.#error = hearthError('ENGINE_UNAVAILABLE', this.#choice.disabled);
  }

  /** The source this app would build from, or why none. */
  #source(): { readonly source: LlamaSource } | { readonly reason: string } {
    return (this.#deps.source ?? (() => findLlamaSource()))();
  }

  #target(): BuildTarget | null {
    const found = this.#source();
    return 'source' in found ? { nodeLlamaCpp: found.source.version, release: found.source.release, commit: found.source.commit } : null;
  }

  /** The newest finished build that runs with the installed node-llama-cpp. */
  #usableBuild(): EngineManifest | null {
    const target = this.#target();
    if (target === null) return null;
    const builds = finishedBuilds(this.#deps.root, target);
    return builds.find((build) => build.name === this.#choice.build) ?? builds[0] ?? null;
  }

  // ---- the engine process's start (the supervisor's init input and answer) ----

  /** What the next engine process's `init` gets: the build's folder when the local engine is chosen. */
  initInput(): Pick<InitInput, 'engineDir'> {
    const build = this.#wanted === 'local' ? this.#usableBuild() : null;
    if (build === null) {
      this.#starting = null;
      return {};
    }
    this.#starting = path.join(this.#deps.root, build.name);
    return { engineDir: this.#starting };
  }

  /** The process answered `init`: which engine runs. A build asked for that did not load is switched off. */
  onInit(input: InitInput, output: InitOutput): void {
    this.#starting = null;
    const engine = output.engine;
    const before = this.#inUse;
    this.#inUse = engine?.kind === 'local' ? 'local' : 'prebuilt';
    this.#backend = engine?.backend ?? 'cpu';
    this.#fallback = engine?.fallback;
    if (typeof input.engineDir === 'string' && this.#inUse !== 'local') this.#disable(engine?.fallback ?? 'the engine process did not load it');
    // Only a change is news: most starts run the prebuilt engine, as before.
    else if (this.#inUse !== before) this.#emit();
  }

  /** The supervisor's status: a process that died while starting with the build does not get it again. */
  onEngineStatus(status: EngineStatus): void {
    const crash = status.lastCrash;
    if (crash === undefined || crash.at === this.#lastCrashAt) return;
    this.#lastCrashAt = crash.at;
    if (this.#starting !== null && status.state === 'restarting') {
      this.#starting = null;
      this.#disable(`the engine process stopped while loading it (${crash.reason})`);
    }
  }

  /** The model manager's status: counts finished loads and wakes a switch waiting for one. */
  onModelStatus(status: ModelStatus): void {
    if (status.status === 'ready') this.#readyCount++;
    for (const waiter of this.#modelWaiters.splice(0)) waiter(status);
  }

  #disable(reason: string): void {
    const message = `The engine built for this computer is not used: ${reason}. The prebuilt engine runs.`;
    this.#deps.log('warn', message);
    this.#wanted = 'prebuilt';
    this.#choice = { ...this.#choice, use: 'prebuilt', disabled: message };
    this.#error = hearthError('ENGINE_UNAVAILABLE', message, 'Build it again, or remove it.');
    this.#persist();
    this.#emit();
  }

  #persist(): void {
    try {
      writeChoice(this.#deps.root, this.#choice);
    } catch (error) {
      this.#deps.log('error', `could not save which engine to use: ${errorText(error)}`);
    }
  }

  // ---- state ----

  async #availability(): Promise<Availability> {
    this.#tools ??= (this.#deps.detectTools ?? (() => detectBuildTools({ runner: this.#runner, ...(this.#deps.platform ? { platform: this.#deps.platform } : {}) })))();
    this.#toolsFound = await this.#tools;
    return this.#availabilityWith(this.#toolsFound);
  }

  #availabilityWith(tools: BuildTools): Availability {
    const found = this.#source();
    if ('reason' in found) return { available: false, reason: `An engine cannot be built: ${found.reason}.` };
    if (this.#backend !== 'cpu' && this.#backend !== 'metal') {
      return { available: false, reason: `llama.cpp runs on the GPU here (${this.#backend}); Hearth builds CPU engines only, which would not be faster.` };
    }
    return tools.available ? { available: true } : { available: false, reason: tools.reason };
  }

  /** The state now (tools are detected once, on the first call). */
  async state(): Promise<LocalEngineState> {
    const availability = await this.#availability();
    return this.#snapshot(availability);
  }

  #snapshot(availability: Availability): LocalEngineState {
    const build = this.#usableBuild();
    const comparison = this.#choice.comparison;
    return {
      available: availability.available,
      ...(availability.available ? {} : { unavailable: availability.reason }),
      status: this.#status === 'idle' && build !== null ? 'ready' : this.#status,
      ...(this.#progress !== undefined ? { progress: this.#progress } : {}),
      ...(this.#step !== undefined ? { step: this.#step } : build !== null && comparison === undefined && this.#status === 'idle' ? { step: 'Built; not compared yet: load a model and build again to compare it with the prebuilt engine' } : {}),
      ...(this.#error !== undefined ? { error: this.#error } : {}),
      ...(build !== null ? { build: { release: build.release, builtAt: build.builtAt, sizeBytes: build.sizeBytes } } : {}),
      ...(comparison !== undefined && build !== null && comparison && this.#choice.build === build.name ? { comparison } : {}),
      inUse: this.#inUse,
    };
  }

  #emit(): void {
    if (this.#disposed) return;
    if (this.#toolsFound !== null) {
      this.#deps.emit(this.#snapshot(this.#availabilityWith(this.#toolsFound)));
      return;
    }
    void this.state().then(
      (state) => this.#deps.emit(state),
      (error: unknown) => this.#deps.log('error', `the local engine's state could not be read: ${errorText(error)}`),
    );
  }

  #set(status: Status, step?: string, progress?: number): void {
    this.#status = status;
    this.#step = step;
    this.#progress = progress;
    this.#emit();
  }

  // ---- calls ----

  /**
   * Builds in the background unless a finished build for this app is there, then compares it
   * with the prebuilt engine when a model is loaded. Answers the state as the work starts.
   */
  async build(): Promise<Result<LocalEngineState>> {
    if (this.#job !== null) return err('BUSY', this.#status === 'measuring' ? 'The engines are being compared.' : 'An engine is being built already.');
    const availability = await this.#availability();
    if (!availability.available) return err('NOT_SUPPORTED', availability.reason);
    const tools = await this.#tools!;
    const found = this.#source();
    if (!tools.available || 'reason' in found) return err('NOT_SUPPORTED', 'The build tools or sources went away.');
    const config = buildConfig(found.source, tools, this.#deps.platform, this.#deps.arch);
    const existing = this.#usableBuild();
    const rebuild = existing === null || existing.name !== config.name;
    if (!rebuild && this.#deps.modelStatus().status !== 'ready') {
      return err('MODEL_NOT_LOADED', 'The engine for this computer is built; a model must be loaded to compare it with the prebuilt engine.', 'Load a model, then try again.');
    }
    let lock: Awaited<ReturnType<typeof acquireBuildLock>> | null = null;
    if (rebuild) {
      await mkdir(this.#deps.root, { recursive: true });
      try {
        lock = await acquireBuildLock(path.join(this.#deps.root, '.build.lock'), { waitMs: 0, label: 'engine build', log: (line) => this.#deps.log('info', line) });
      } catch (error) {
        if (error instanceof BuildLockBusy) return err('BUSY', 'Another Hearth is building an engine in this data folder.', 'Wait until it has finished.');
        throw error;
      }
    }
    this.#error = undefined;
    this.#abort = new AbortController();
    this.#status = rebuild ? 'building' : 'measuring';
    this.#step = rebuild ? 'Starting' : 'Comparing with the prebuilt engine';
    this.#progress = rebuild ? 0 : undefined;
    const started = this.#snapshot(availability);
    this.#deps.emit(started);
    this.#job = this.#run(rebuild ? { source: found.source, tools, config, lock: lock! } : null).finally(() => {
      lock?.release();
      this.#job = null;
      this.#abort = null;
    });
    return ok(started);
  }

  async #run(build: { source: LlamaSource; tools: Extract<BuildTools, { available: true }>; config: ReturnType<typeof buildConfig>; lock: { setChild(pid: number | undefined): void } } | null): Promise<void> {
    if (build !== null) {
      const built = await this.#compile(build);
      if (!built) return;
    }
    if (this.#deps.modelStatus().status !== 'ready') {
      this.#set('idle');
      return;
    }
    await this.compare();
  }

  /** Runs the build; answers whether it finished. */
  async #compile(build: { source: LlamaSource; tools: Extract<BuildTools, { available: true }>; config: ReturnType<typeof buildConfig> }): Promise<boolean> {
    const logFile = path.join(this.#deps.root, 'build.log');
    let logging = writeFile(logFile, `Engine build ${build.config.name} from llama.cpp ${build.source.release} (${build.source.commit}), ${new Date().toISOString()}\n`).catch(() => undefined);
    const started = Date.now();
    try {
      const manifest = await buildEngine({
        source: build.source,
        tools: build.tools,
        config: build.config,
        root: this.#deps.root,
        runner: this.#runner,
        signal: this.#abort!.signal,
        ...(this.#deps.jobs !== undefined ? { jobs: this.#deps.jobs } : {}),
        ...(this.#deps.platform !== undefined ? { platform: this.#deps.platform } : {}),
        ...(this.#deps.arch !== undefined ? { arch: this.#deps.arch } : {}),
        onProgress: ({ fraction, step }) => {
          const moved = this.#progress === undefined || fraction - this.#progress >= PROGRESS_STEP || fraction === 1;
          if (!moved && step.replace(/ \(.*/, '') === (this.#step ?? '').replace(/ \(.*/, '')) return;
          this.#set('building', step, fraction);
        },
        onOutput: (line) => {
          logging = logging.then(() => appendFile(logFile, `${line}\n`)).catch(() => undefined);
        },
      });
      await logging;
      this.#deps.log('info', `engine for this computer built in ${Math.round((Date.now() - started) / 1000)} s: ${manifest.name} (${(manifest.sizeBytes / 1e6).toFixed(1)} MB)`);
      // One build is kept: the one just made, and the one the engine runs until the comparison decides.
      pruneBuilds(this.#deps.root, [manifest.name, ...(this.#inUse === 'local' && this.#choice.build ? [this.#choice.build] : [])]);
      return true;
    } catch (error) {
      await logging;
      if (error instanceof BuildCancelled) {
        this.#deps.log('info', 'engine build cancelled');
        this.#set('idle');
        return false;
      }
      const message = error instanceof BuildFailed ? error.message : `The build failed: ${errorText(error)}`;
      this.#deps.log('error', `engine build failed: ${message}`);
      this.#error = hearthError('INTERNAL', message, `The full log is ${logFile}.`);
      this.#set('failed');
      return false;
    }
  }

  /** Compares the finished build with the prebuilt engine on the loaded model and keeps the faster. */
  async compare(): Promise<void> {
    const build = this.#usableBuild();
    if (build === null) return;
    if (this.#deps.busy()) this.#set('measuring', 'Waiting for replies in progress to finish');
    if (!(await this.#idle())) {
      this.#error = hearthError('BUSY', 'The engines were not compared: replies kept running for ten minutes.', 'Build again when Hearth is idle; the build is kept.');
      this.#set('failed');
      return;
    }
    if (this.#step !== 'Comparing with the prebuilt engine') this.#set('measuring', 'Comparing with the prebuilt engine');
    const result = await compareEngines({
      loaded: () => this.#loadedModel(),
      switchTo: (kind) => this.#switchTo(kind),
      measure: (settings) => this.#deps.engine.measureTrial(settings),
      inUse: () => this.#inUse,
      onStep: (step) => this.#set('measuring', step),
      defaults: this.#deps.defaults(),
    });
    if (!result.ok) {
      this.#error = result.error;
      this.#deps.log('error', `comparing the engines failed: ${result.error.message}`);
      this.#set('failed');
      return;
    }
    const comparison = result.value;
    this.#choice = { use: comparison.faster ? 'local' : 'prebuilt', build: build.name, comparison };
    this.#wanted = this.#choice.use;
    this.#persist();
    // The build the engine ran before this one, if any, is not needed any more.
    pruneBuilds(this.#deps.root, [build.name]);
    this.#deps.log('info', `engine comparison on ${comparison.model}: prebuilt ${comparison.prebuilt.turnSeconds ?? '—'} s, local ${comparison.local.turnSeconds ?? '—'} s per turn; ${comparison.faster ? 'the local build is used' : 'the prebuilt engine stays'}`);
    this.#set('idle');
  }

  #loadedModel(): ModelInfo | null {
    const status = this.#deps.modelStatus();
    return status.status === 'ready' ? (status.model ?? null) : null;
  }

  /** Restarts the engine process with `kind` and waits for the model's reload after it. */
  async #switchTo(kind: EngineBuildKind): Promise<Result<{ running: EngineBuildKind; fallback?: string; model: ModelInfo }>> {
    this.#wanted = kind;
    const readyBefore = this.#readyCount;
    const restarted = await this.#deps.engine.restart();
    if (!restarted.ok && kind === 'prebuilt') return restarted;
    const model = await this.#modelReady(readyBefore);
    if (!model.ok) return model;
    // A build that did not load: the worker's reason, or why the process died loading it (#disable).
    const fallback = this.#fallback ?? (kind === 'local' && this.#inUse !== 'local' ? this.#error?.message : undefined);
    return ok({ running: this.#inUse, ...(fallback !== undefined ? { fallback } : {}), model: model.value });
  }

  /** The model once a load after `readyBefore` finished; an error when it failed or was unloaded. */
  #modelReady(readyBefore: number): Promise<Result<ModelInfo>> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(err('ENGINE_UNAVAILABLE', 'The model did not load again after the engine restarted.')), RELOAD_TIMEOUT_MS);
      const finish = (result: Result<ModelInfo>): void => {
        clearTimeout(timer);
        resolve(result);
      };
      const check = (status: ModelStatus): void => {
        if (this.#readyCount > readyBefore && status.status === 'ready' && status.model) return finish(ok(status.model));
        if (status.status === 'error') return finish({ ok: false, error: status.error ?? hearthError('INTERNAL', 'The model did not load again.') });
        if (status.status === 'idle') return finish(err('MODEL_NOT_LOADED', 'The model was unloaded during the comparison.'));
        this.#modelWaiters.push(check);
      };
      check(this.#deps.modelStatus());
    });
  }

  /** Stops a build in progress; a comparison runs to its end (it restarts the engine). */
  cancel(): Result<void> {
    if (this.#status === 'building') this.#abort?.abort();
    return ok(undefined);
  }

  /** Deletes the build(s) and goes back to the prebuilt engine (restarting the engine when it ran the build). */
  async remove(): Promise<Result<void>> {
    if (this.#status === 'measuring') return err('BUSY', 'The engines are being compared; remove the build once that has finished.');
    this.#abort?.abort();
    await this.#job;
    const wasLocal = this.#inUse === 'local';
    this.#choice = { use: 'prebuilt' };
    this.#wanted = 'prebuilt';
    this.#error = undefined;
    this.#persist();
    if (wasLocal) {
      const restarted = await this.#deps.engine.restart();
      if (!restarted.ok) this.#deps.log('warn', `the engine did not restart onto the prebuilt engine: ${restarted.error.message}`);
    }
    pruneBuilds(this.#deps.root, []);
    await rm(path.join(this.#deps.root, 'build.log'), { force: true });
    this.#set('idle');
    return ok(undefined);
  }

  /** Whether nothing runs that a restart would cut off, waiting for it up to IDLE_WAIT_MS. */
  async #idle(): Promise<boolean> {
    const deadline = Date.now() + IDLE_WAIT_MS;
    while (this.#deps.busy()) {
      if (this.#disposed || Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS));
    }
    return !this.#disposed;
  }

  /** Stops a build (its work folder stays for the next one) and releases a comparison waiting for a reload. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    this.#abort?.abort();
    for (const waiter of this.#modelWaiters.splice(0)) waiter({ status: 'idle' });
    if (this.#job) await settlesWithin(this.#job, DISPOSE_WAIT_MS);
  }
}

/** The settings a comparison falls back to: all cores, node-llama-cpp's default batch, flash attention off. */
export function defaultTrialSettings(threads: number): SpeedSettings {
  return { flashAttention: false, threads: threads > 0 ? threads : Math.max(1, os.availableParallelism()), batchSize: 512 };
}
