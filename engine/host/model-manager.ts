/**
 * The model's lifecycle on the host side: validate, load, unload, reload after an engine
 * restart, and the `{status, progress?, error?}` the UI mirrors. Loads and unloads run one at a
 * time under a lock.
 */
import { stat } from 'node:fs/promises';
import { DisposableStore, type Disposable } from '../base/disposable.ts';
import { Lock } from '../base/lock.ts';
import os from 'node:os';
import path from 'node:path';
import { err, errorText, hearthError, ok, type HearthError, type HearthEvent, type ModelInfo, type ModelProfile, type ModelStatus, type Result, type Settings, type SpeedProfile } from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';
import type { GgufSummary } from '../gguf/reader.ts';
import { describeIssues } from './model-profiles.ts';
import { physicalCoreCount } from './models.ts';
import type { SpeedDefaults } from './speed-profiles.ts';
import type { LogLevel, Supervisor } from './supervisor.ts';

/** The GGUF reader's check (engine/gguf/reader.ts `inspectGguf`). */
export type InspectGguf = (path: string) => Promise<Result<GgufSummary>>;

/** What the file's header says, shown while the model loads (contextSize stays 0 until loaded). */
export function previewOf(summary: GgufSummary): ModelInfo {
  return {
    path: summary.path,
    name: summary.name,
    sizeBytes: summary.fileSize,
    architecture: summary.architecture,
    trainedContextLength: summary.contextLength ?? 0,
    contextSize: 0,
    layerCount: summary.blockCount ?? 0,
  };
}

export interface ModelManagerDeps {
  readonly engine: Pick<Supervisor, 'request' | 'onEvent' | 'onStatus' | 'onRestart'>;
  readonly inspect: InspectGguf;
  readonly settings: () => Settings;
  /** The model's profile, stored or default (model-profiles.ts `ModelProfiles.profileOf`). */
  readonly profileOf: (path: string) => ModelProfile;
  readonly rememberModel: (path: string | null) => void;
  /** Stops every reply in progress (before the model under them goes away). */
  readonly stopReplies: () => Promise<void>;
  readonly emit: (event: HearthEvent) => void;
  /** HearthOptions.threads: overrides the setting (CLI --threads). */
  readonly threadsOverride?: number | undefined;
  /** Measured context settings (speed-profiles.ts); without it, loads use `threads()` and the defaults. */
  readonly speed?: SpeedDefaults;
  readonly log: (level: LogLevel, message: string) => void;
}

/** Resolves `~` and relative paths, then checks that a regular file is there. */
export async function resolveModelFile(input: string): Promise<Result<string>> {
  const expanded = input === '~' || input.startsWith('~/') ? path.join(os.homedir(), input.slice(1)) : input;
  const full = path.resolve(expanded);
  try {
    const info = await stat(full);
    if (info.isDirectory()) return err('MODEL_INVALID', `${full} is a folder, not a GGUF file.`, 'Choose a .gguf file.');
    if (!info.isFile()) return err('MODEL_INVALID', `${full} is not a regular file.`, 'Choose a .gguf file.');
    return ok(full);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return err('NOT_FOUND', `There is no file at ${full}.`, 'Check the path.');
    return err('MODEL_INVALID', `${full} cannot be read (${code ?? errorText(error)}).`);
  }
}

export class ModelManager implements Disposable {
  readonly #deps: ModelManagerDeps;
  readonly #subscriptions = new DisposableStore();
  #status: ModelStatus = { status: 'idle' };
  readonly #lock = new Lock('model');
  /** The model the user wants loaded: reloaded after an engine restart. */
  #wanted: string | null = null;
  #reloadAfterRestart = false;
  #lastProgress = -1;

  constructor(deps: ModelManagerDeps) {
    this.#deps = deps;
    this.#subscriptions.add(
      deps.engine.onEvent((event) => {
        if (event.type === 'loadProgress' && this.#status.status === 'loading') this.#progress(event.progress);
        if (event.type === 'speedProgress' && this.#status.status === 'loading') this.#set({ ...this.#status, measuring: { done: event.done, total: event.total } });
      }),
    );
    this.#subscriptions.add(
      deps.engine.onStatus((engine) => {
        if (engine.state === 'restarting') this.#onEngineDown();
      }),
    );
    this.#subscriptions.add(deps.engine.onRestart(() => this.#onEngineBack()));
  }

  /** Stops following the engine: no more progress, and no reload after a restart. */
  dispose(): void {
    this.#subscriptions.dispose();
  }

  get status(): ModelStatus {
    return this.#status;
  }

  get ready(): boolean {
    return this.#status.status === 'ready';
  }

  /**
   * Validates the file with the GGUF reader (nothing unchecked reaches llama.cpp) and the model's
   * profile with the engine (`checkProfile`: types, flash attention, head size, fit), then loads
   * it with the thread count in force now and the profile as the engine resolved it (context size
   * per slot, slots, K/V types…). Replies in progress are stopped first. A file or profile that
   * fails validation leaves a loaded model loaded.
   */
  async load(input: string): Promise<Result<ModelInfo>> {
    const loaded = await this.#load(input, false);
    return loaded.ok ? ok(loaded.value.info) : loaded;
  }

  /**
   * Loads the model at `input` (again) and measures its speed on this computer first, even when
   * a measurement is stored: the Model profile's "Measure again".
   */
  async measureSpeed(input: string): Promise<Result<SpeedProfile>> {
    const loaded = await this.#load(input, true);
    if (!loaded.ok) return loaded;
    return loaded.value.speed ? ok(loaded.value.speed) : err('INTERNAL', 'The engine loaded the model without measuring its speed.');
  }

  async #load(input: string, measure: boolean): Promise<Result<{ readonly info: ModelInfo; readonly speed?: SpeedProfile }>> {
    const file = await resolveModelFile(input);
    if (!file.ok) return this.#rejected(file.error);
    const checked = await this.#deps.inspect(file.value);
    if (!checked.ok) return this.#rejected(checked.error);
    return this.#lock.run(async () => {
      // Checked here, in turn with other loads, so it sees the profile as it is when this load runs.
      // The stored profile, read once: what the engine resolves and what the speed plan keys on.
      const stored = this.#deps.profileOf(file.value);
      const profile = await this.#resolveProfile(file.value, stored, checked.value.name);
      if (!profile.ok) {
        // 'loading' here is the placeholder of a reload after an engine restart: show why it failed.
        if (this.#status.status === 'loading') this.#set({ status: 'error', error: profile.error });
        return this.#rejected(profile.error);
      }
      await this.#deps.stopReplies();
      this.#wanted = file.value;
      this.#reloadAfterRestart = false;
      this.#lastProgress = -1;
      this.#set({ status: 'loading', progress: 0, model: { ...previewOf(checked.value), path: file.value } });
      const resolved = profile.value;
      const speed = await this.#deps.speed?.plan(file.value, stored, resolved, measure);
      const result = await this.#deps.engine.request('loadModel', {
        path: file.value,
        contextSize: resolved.contextSize,
        threads: this.threads(),
        slots: resolved.slots,
        profile: resolved,
        ...(speed ? { speed: speed.request } : {}),
      });
      if (!result.ok) {
        // A model whose load kills the engine must not be reloaded in a loop.
        if (result.error.code === 'ENGINE_CRASHED') this.#wanted = null;
        this.#deps.log('warn', `model load failed: ${result.error.message}`);
        this.#set({ status: 'error', error: result.error });
        return result;
      }
      const { speed: measured, ...info } = result.value;
      this.#deps.speed?.record(speed, measured);
      this.#set({ status: 'ready', model: info });
      this.#deps.rememberModel(file.value);
      return ok(measured ? { info, speed: measured } : { info });
    });
  }

  /** Unloads the model; the app then starts without one too. */
  async unload(): Promise<Result<ModelStatus>> {
    return this.#lock.run(async () => {
      await this.#deps.stopReplies();
      this.#wanted = null;
      this.#reloadAfterRestart = false;
      if (this.#status.status === 'ready') {
        const result = await this.#deps.engine.request('unloadModel', {});
        if (!result.ok && result.error.code !== 'ENGINE_CRASHED') return result;
      }
      this.#set({ status: 'idle' });
      this.#deps.rememberModel(null);
      return ok(this.#status);
    });
  }

  /** The llama.cpp thread count for the next load: the override, else the setting, 0 = physical cores. */
  threads(): number {
    const chosen = this.#deps.threadsOverride ?? this.#deps.settings().threads;
    return chosen > 0 ? chosen : physicalCoreCount();
  }

  /** The model's profile as the engine resolved it, or why it must not be loaded. */
  async #resolveProfile(file: string, profile: ModelProfile, name: string): Promise<Result<ResolvedProfile>> {
    const checked = await this.#deps.engine.request('checkProfile', { path: file, profile }, { timeoutMs: 15_000 });
    if (!checked.ok) return checked;
    const { issues, resolved } = checked.value;
    if (resolved === null || issues.some((issue) => issue.severity === 'error')) {
      const why = describeIssues(issues) || 'the engine could not resolve its settings';
      return err('INVALID_INPUT', `${name} cannot be loaded with its settings: ${why}.`, "Change the model's KV settings and load it again.");
    }
    return ok(resolved);
  }

  #rejected(error: HearthError): Result<never> {
    if (this.#status.status !== 'ready' && this.#status.status !== 'loading') this.#set({ status: 'error', error });
    return { ok: false, error };
  }

  #set(status: ModelStatus): void {
    this.#status = status;
    this.#deps.emit({ type: 'model.status', payload: status });
  }

  #progress(progress: number): void {
    const clamped = Math.min(1, Math.max(0, progress));
    // llama.cpp reports per tensor; the UI needs percent steps, not thousands of events.
    if (clamped < 1 && clamped - this.#lastProgress < 0.01) return;
    this.#lastProgress = clamped;
    this.#set({ ...this.#status, progress: clamped });
  }

  #onEngineDown(): void {
    if (this.#status.status !== 'ready') return;
    // The model died with the process: show it as loading again rather than as missing.
    this.#reloadAfterRestart = this.#wanted !== null;
    this.#lastProgress = -1;
    const model = this.#status.model;
    this.#set(model ? { status: 'loading', progress: 0, model } : { status: 'loading', progress: 0 });
  }

  #onEngineBack(): void {
    const wanted = this.#wanted;
    if (!this.#reloadAfterRestart || wanted === null) return;
    this.#reloadAfterRestart = false;
    this.#deps.log('info', `engine restarted: reloading ${wanted}`);
    void this.load(wanted).then(
      (result) => {
        if (!result.ok) this.#deps.log('error', `reload after restart failed: ${result.error.message}`);
      },
      (error: unknown) => this.#deps.log('error', `reload after restart failed: ${errorText(error)}`),
    );
  }

  /** For app start: a failed load leaves status 'error' and the app running. */
  async loadAtStart(explicitPath: string | undefined): Promise<void> {
    const candidate = explicitPath ?? this.#deps.settings().lastModelPath;
    if (!candidate) return;
    if (explicitPath === undefined) {
      // A remembered model that was moved or deleted since is simply forgotten, not an error.
      const exists = await stat(candidate).then((s) => s.isFile(), () => false);
      if (!exists) return;
    }
    const result = await this.load(candidate);
    if (!result.ok) this.#deps.log('warn', `could not load ${candidate} at start: ${result.error.message}`);
  }

  /** An error for calls that need a model. */
  notReadyError(): HearthError {
    return this.#status.status === 'loading'
      ? hearthError('MODEL_NOT_LOADED', 'The model is still loading.', 'Wait until it is ready, then send again.')
      : hearthError('MODEL_NOT_LOADED', 'No model is loaded.', 'Load or download a model first.');
  }
}
