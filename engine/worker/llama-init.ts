/**
 * `init`: llama.cpp's bindings (loaded once per process: node-llama-cpp's prebuilt ones, or the
 * build for this computer the host names, worker/local-llama.ts; never compiled here), the
 * KV codec's kernels, and the disk KV store when the host names its directory, with its
 * compression resolved first (`auto` is measured: compression-choice.ts). llama.cpp's
 * warnings are always captured for the log ring, because node-llama-cpp's own errors do not say
 * why a load failed (docs/decisions/state-through-scratch-file.md); the host's level only
 * filters what is forwarded as log events.
 */
import path from 'node:path';
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';
import { err, ok, type KvCompression, type KvCompressionChoice, type Result, errorText } from '../contract/index.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { loadKernels } from '../kv/kernels-load.ts';
import type { WorkerMethods } from '../protocol.ts';
import { chooseCompression, measureRestorePaths } from './compression-choice.ts';
import { RAM_CAP_ENV } from './constants.ts';
import { KvCache } from './kv-cache.ts';
import { kvUnavailableEvent, watchKvPersistence } from './kv-persistence.ts';
import type { LogLevel } from './logs.ts';
import { loadLocalLlama, LocalLlamaError } from './local-llama.ts';
import { levelRank, type RuntimeState } from './runtime-state.ts';
import { describeDevice } from './speed.ts';

type InitInput = WorkerMethods['init']['input'];
type InitOutput = WorkerMethods['init']['output'];

function toLlamaLogLevel(level: LogLevel): LlamaLogLevel {
  switch (level) {
    case 'error': return LlamaLogLevel.error;
    case 'warn': return LlamaLogLevel.warn;
    case 'info': return LlamaLogLevel.info;
    case 'debug': return LlamaLogLevel.debug;
  }
}

function fromLlamaLogLevel(level: LlamaLogLevel): LogLevel {
  switch (level) {
    case LlamaLogLevel.fatal:
    case LlamaLogLevel.error: return 'error';
    case LlamaLogLevel.warn: return 'warn';
    case LlamaLogLevel.info: return 'info';
    default: return 'debug';
  }
}

/** Warnings are always captured for the ring, whatever the host's level. */
const capturedLevel = (level: LogLevel): LlamaLogLevel => toLlamaLogLevel(levelRank[level] > levelRank.warn ? level : 'warn');

export class LlamaInit {
  readonly #state: RuntimeState;
  /** The one load of the bindings, shared by concurrent callers; cleared when it failed. */
  #initializing: Promise<Result<{ readonly build: string }>> | null = null;
  /** Which libraries the bindings came from (InitOutput.engine); a local build's folder name is part of the KV fingerprint. */
  #engine: InitOutput['engine'] & { readonly build?: string } = { kind: 'prebuilt', backend: 'cpu' };
  #codec: ReturnType<typeof loadKernels> | null = null;
  /** How the open store encodes new chunks: decided once, when it opened (a later `init` finds it open). */
  #compression: KvCompressionChoice | null = null;

  constructor(state: RuntimeState) {
    this.#state = state;
  }

  /** Loads the bindings once; opens the KV store when the host names its directory. */
  async init(input: InitInput): Promise<Result<InitOutput>> {
    const state = this.#state;
    const level = input.logLevel;
    if (level in levelRank) state.logLevel = level;
    const opened = await this.#initLlama(typeof input.engineDir === 'string' && input.engineDir !== '' ? input.engineDir : null);
    if (!opened.ok) return opened;
    const { kernels, info } = this.codecKernels();
    const kvDir = typeof input.kvDir === 'string' && input.kvDir !== '' ? input.kvDir : null;
    if (kvDir !== null && !state.kvCache && state.llama) {
      this.#compression = this.#chooseCompression(input.kvCompression, kvDir, kernels);
      await this.#openKvCache(state.llama, kvDir, input, kernels, this.#compression.applied);
    }
    return ok({
      build: opened.value.build,
      codec: info,
      compression: this.#compression ?? this.#chooseCompression(input.kvCompression, kvDir, kernels),
      device: state.device,
      engine: { kind: this.#engine.kind, backend: this.#engine.backend, ...(this.#engine.fallback ? { fallback: this.#engine.fallback } : {}) },
    });
  }

  /**
   * Settings.kvCompression as this process applies it, `auto` resolved by measuring this
   * machine (compression-choice.ts) in the store's directory. Without a store nothing is written,
   * so nothing is measured either.
   */
  #chooseCompression(setting: InitInput['kvCompression'], kvDir: string | null, kernels: CodecKernels): KvCompressionChoice {
    // The host's input is another process's: anything unknown is the protocol's default.
    const known = setting === 'auto' || setting === 'off' || setting === 'lossless' || setting === 'lossy' ? setting : 'lossless';
    if (known === 'auto' && kvDir === null) return { setting: known, applied: 'off', reason: 'disk KV persistence is off, so nothing was measured' };
    const started = performance.now();
    const choice = chooseCompression(known, () => measureRestorePaths(kvDir ?? '', kernels));
    if (known === 'auto') this.#state.log('info', `KV compression: ${choice.applied} (auto: ${choice.reason ?? ''}; measured in ${Math.round(performance.now() - started)} ms)`);
    return choice;
  }

  /** The bindings, loaded at the host's current log level when they are not yet. */
  async ensureLlama(): Promise<Result<Llama>> {
    const state = this.#state;
    if (state.llama) return ok(state.llama);
    const result = await this.init({ logLevel: state.logLevel });
    if (!result.ok) return result;
    return state.llama ? ok(state.llama) : err('INTERNAL', 'llama.cpp did not initialize.');
  }

  /**
   * The KV codec's kernels, chosen once per process (the native addon, else the TypeScript
   * fallback with the reason, which is logged once as a warning).
   */
  codecKernels(): ReturnType<typeof loadKernels> {
    if (this.#codec) return this.#codec;
    const codec = loadKernels();
    this.#codec = codec;
    if (codec.info.kernels === 'fallback') this.#state.log('warn', `The KV codec uses its TypeScript fallback (slower, same output): ${codec.info.reason ?? 'the native addon did not load'}.`);
    return codec;
  }

  async #openKvCache(llama: Llama, root: string, input: InitInput, kernels: CodecKernels, compression: KvCompression): Promise<void> {
    const state = this.#state;
    const cache = await KvCache.open({
      root,
      budgetBytes: typeof input.kvBudgetBytes === 'number' && input.kvBudgetBytes >= 0 ? input.kvBudgetBytes : 10 * 1024 ** 3,
      ...(typeof input.kvChunkTokens === 'number' && input.kvChunkTokens > 0 ? { chunkTokens: input.kvChunkTokens } : {}),
      // The backend is part of it: GPU kernels may compute other K/V bytes than the CPU's; so is a
      // build for this computer, whose CPU kernels do too (docs/decisions/local-engine-build.md).
      llamaRelease: `${llama.llamaCppRelease.release}/${llama.gpu === false ? 'cpu' : llama.gpu}${this.#engine.build ? `/local-${this.#engine.build}` : ''}`,
      compression,
      kernels,
      log: state.log,
    });
    if (cache.ok) {
      state.kvCache = cache.value;
      state.kvOffReason = null;
      state.kvWatch = watchKvPersistence(cache.value.store, state.emit);
    } else {
      state.kvOffReason = `KV persistence is off: ${cache.error.message}`;
      state.log('error', state.kvOffReason);
      state.emit(kvUnavailableEvent(cache.error));
    }
  }

  async #initLlama(engineDir: string | null): Promise<Result<{ readonly build: string }>> {
    const state = this.#state;
    if (state.llama) {
      state.llama.logLevel = capturedLevel(state.logLevel);
      return ok({ build: state.build });
    }
    this.#initializing ??= this.#loadBindings(engineDir);
    return this.#initializing;
  }

  async #loadBindings(engineDir: string | null): Promise<Result<{ readonly build: string }>> {
    const state = this.#state;
    const logging = {
      logLevel: capturedLevel(state.logLevel),
      logger: (llamaLevel: LlamaLogLevel, message: string) => {
        const level = fromLlamaLogLevel(llamaLevel);
        const line = message.trimEnd();
        if (line === '') return;
        if (levelRank[level] <= levelRank.warn) state.logRing.add(line);
        state.log(level, line);
      },
    };
    try {
      const local = engineDir === null ? null : await this.#loadLocal(engineDir, logging);
      if (local !== null && !local.ok) return local;
      const instance =
        local?.value ??
        (await getLlama({
          gpu: 'auto',
          // Never compile llama.cpp on a user's machine here: a prebuilt binary or a clear error.
          build: 'never',
          progressLogs: false,
          ...logging,
        }));
      this.#engine = { ...this.#engine, backend: instance.gpu === false ? 'cpu' : instance.gpu };
      const ramCap = Number(process.env[RAM_CAP_ENV]);
      if (Number.isFinite(ramCap) && ramCap > 0) await instance.setRamCap(ramCap);
      state.llama = instance;
      const { release } = instance.llamaCppRelease;
      state.build = `llama.cpp ${release} (${instance.gpu === false ? 'cpu' : instance.gpu}, ${instance.buildType})`;
      state.device = describeDevice(instance.gpu, instance.gpu === false ? [] : await instance.getGpuDeviceNames().catch(() => []));
      return ok({ build: state.build });
    } catch (error) {
      this.#initializing = null;
      return err('INTERNAL', `llama.cpp could not be loaded: ${errorText(error)}`);
    }
  }

  /**
   * llama.cpp from the build for this computer in `engineDir`, or null to load the prebuilt
   * binaries instead (`#engine.fallback` says why). A failure after the build's native code was
   * loaded is an error: the prebuilt libraries must not be loaded beside it, so the host restarts
   * the engine without the build (worker/local-llama.ts).
   */
  async #loadLocal(engineDir: string, logging: Parameters<typeof loadLocalLlama>[1]): Promise<Result<Llama> | null> {
    try {
      const llama = await loadLocalLlama(engineDir, logging);
      this.#engine = { kind: 'local', backend: 'cpu', build: path.basename(engineDir) };
      return ok(llama);
    } catch (error) {
      const reason = errorText(error);
      if (error instanceof LocalLlamaError && error.loaded) return err('INTERNAL', `The engine built for this computer did not load: ${reason}. Hearth starts the engine again with the prebuilt one.`);
      this.#state.log('warn', `The engine built for this computer did not load (${reason}); the prebuilt engine runs instead.`);
      this.#engine = { kind: 'prebuilt', backend: 'cpu', fallback: reason };
      return null;
    }
  }
}
