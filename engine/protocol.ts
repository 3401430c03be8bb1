/**
 * The private protocol between the host (Electron's main process, or the browser host) and the
 * engine process. The host side lives in `host/`, the engine side in `worker/`. Nothing
 * outside `engine/` sees it: the renderer talks to the host through `contract/` only.
 *
 * Every request is answered with exactly one `result` message carrying a `Result`: the engine
 * process never answers with a thrown error. A request left unanswered when the process dies
 * is failed by the host with ENGINE_CRASHED.
 */
import type { CachedChat, CacheSlot, KvVerifyReport, KvCodecInfo, KvCompressionChoice, KvCompressionSetting, KvStateTransfer, DeviceMemory, FileFit, HearthError, ModelKvUsage, KvCacheType, KvPlan, KvQuality, MessageStats, ModelInfo, ModelProfile, OverflowPolicy, ProfileIssue, Result, Sampling, SpeedProfile, SpeedSettings, SpeedTrial, EngineBuildKind } from './contract/index.ts';

export type { SlotState } from './contract/index.ts';

/** A chat turn as the engine sees it: the history on the active branch, oldest first. */
export interface PromptMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly text: string;
  /**
   * An assistant message's function calls, each with its result, after its text (API clients'
   * tool calls: the host folds each tool message into the call it answers). One message for the
   * overflow policy, so a call and its result are kept or dropped together.
   */
  readonly calls?: readonly FunctionCallRecord[];
}

/** A function call the model made, and what the client answered. */
export interface FunctionCallRecord {
  readonly name: string;
  /** The call's arguments, as parsed JSON. */
  readonly params: unknown;
  /** The client's answer (a tool message's text); absent when it has not answered. */
  readonly result?: string;
}

/** A function the model may call (an API request's tools), node-llama-cpp's shape. */
export interface FunctionSpec {
  readonly description?: string;
  /** A JSON schema of the arguments (an object schema), or absent for none. */
  readonly params?: Readonly<Record<string, unknown>>;
}

/** Constrains a reply's text: any JSON value, or JSON that matches a schema. */
export type OutputFormat = { readonly type: 'json' } | { readonly type: 'json_schema'; readonly schema: Readonly<Record<string, unknown>> };

export interface GenerateInput {
  /** Chosen by the host; used by `abort` and by `token` events. */
  readonly requestId: string;
  /** The chat this reply belongs to (for slot bookkeeping). */
  readonly chatId: string;
  /**
   * The branch's leaf: the assistant message this reply goes into. With `chatId` it names the
   * branch's KV manifest (`<chatId>/<branchId>`). Optional: without it nothing is saved.
   */
  readonly branchId?: string;
  /**
   * The whole active branch up to and including the new user message. When the last message is
   * an assistant message, the reply continues it: its text so far is the start of the answer.
   */
  readonly messages: readonly PromptMessage[];
  readonly sampling: Sampling;
  /** The chat's own overflow policy; absent: the loaded model's. */
  readonly overflowPolicy?: OverflowPolicy;
  /**
   * Who waits: when a chat's and an API request's turns both wait for the engine, the chat's
   * runs first. Absent: `chat`.
   */
  readonly source?: 'chat' | 'api';
  /** Texts that end the reply where they appear (left out of the reply). At most 8, each 1..200 characters. */
  readonly stop?: readonly string[];
  /** The sampler's seed when temperature > 0 (absent: a random one); greedy ignores it. */
  readonly seed?: number;
  /** Grammar-constrained output (node-llama-cpp's JSON grammars). Not with `functions`. */
  readonly format?: OutputFormat;
  /** Functions the model may call (the chat wrapper's function-calling syntax). Not with `format`. */
  readonly functions?: Readonly<Record<string, FunctionSpec>>;
  /**
   * A raw completion: `messages` is exactly one user message whose text is the whole prompt,
   * tokenized as is (with the model's BOS), no chat template. The overflow policy still applies:
   * `drop-oldest` keeps the prompt's end.
   */
  readonly raw?: boolean;
  /**
   * Also report where the prompt diverged from the longest conversation the cache holds that
   * shares its start (stats.cacheMiss). Costs a look at the store's manifests, so API requests only.
   */
  readonly diagnose?: boolean;
}

export interface GenerateOutput {
  /** The whole reply text (the `token` events carried it piecewise). */
  readonly text: string;
  /**
   * `eos`: the model ended its turn; `maxTokens`: hit the limit; `context`: reached the end of
   * the context before that (it can be continued); `aborted`: `abort` was called.
   */
  readonly stopReason: 'eos' | 'maxTokens' | 'context' | 'aborted' | 'stopSequence' | 'functionCalls';
  /** Which of `stop` ended it (stopReason `stopSequence`). */
  readonly stopSequence?: string;
  /** The calls the model made (stopReason `functionCalls`); `text` is what it wrote before them. */
  readonly functionCalls?: readonly { readonly name: string; readonly params: unknown }[];
  readonly stats: MessageStats;
}

/** One resident sequence (slot) of the loaded context: what the Cache view lists, as the engine reports it. */
export type SlotMetrics = CacheSlot;

/**
 * The loaded model's memory as llama.cpp allocated it (the model's and the context's buffer
 * breakdowns), split by where it lives, and the device it plans against (the Cache view).
 */
export interface MemoryMetrics {
  readonly device: DeviceMemory;
  /** Layers on the GPU (0 on CPU). */
  readonly gpuLayers: number;
  readonly weights: { readonly ramBytes: number; readonly vramBytes: number };
  /** The whole context: KV for every slot plus compute buffers. */
  readonly context: { readonly ramBytes: number; readonly vramBytes: number };
  /** KV bytes per cell (K + V, every layer) for the context's types. */
  readonly kvBytesPerCell: number;
}

/** The disk store's figures in a metrics sample. */
export interface StoreMetrics {
  readonly bytesOnDisk: number;
  readonly storedBytes: number;
  /** KV payload bytes in chunk files and tails (no headers or token lists). */
  readonly rawBytes: number;
  readonly chunkCount: number;
  readonly manifests: number;
  readonly logicalBytes: number;
  readonly budgetBytes: number;
  readonly freeBytes: number | null;
}

/**
 * Something the disk KV cache did, pushed as it happens, for the Cache view's event log. Restores
 * and fallbacks are not here: the host reads them from each turn's stats.
 */
export interface KvActivity {
  readonly kind: 'save' | 'evict' | 'forget';
  readonly chatId?: string;
  /** One line, e.g. "saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms". */
  readonly text: string;
  readonly tokens?: number;
  readonly bytes?: number;
  readonly ms?: number;
}

/** A snapshot of the engine's counters, sampled by the host. */
export interface EngineMetrics {
  /** Cells in use, summed over the slots. */
  readonly kvCellsUsed: number;
  /** Cells allocated for the whole context (every slot's). */
  readonly kvCellsCapacity: number;
  /** One row per slot, by index; empty without a model. */
  readonly slots: readonly SlotMetrics[];
  /** The disk KV store, when persistence is on. */
  readonly kvStore?: StoreMetrics;
  /** The loaded model's memory; absent without a model. */
  readonly memory?: MemoryMetrics;
  /**
   * How the loaded model's sequence state moves on saves and restores (decided at its load);
   * absent without a model, without a KV store, or while the model's KV profile is still being
   * prepared.
   */
  readonly stateTransfer?: KvStateTransfer;
}

/** A profile with every `auto` decided for this model on this machine (worker/planner.ts). */
export interface ResolvedProfile {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly flashAttention: boolean;
  /** Tokens per slot; 0 = automatic. */
  readonly contextSize: number;
  /** Layers on the GPU; 'auto' stays node-llama-cpp's own fitting. */
  readonly gpuLayers: number | 'auto';
  readonly slots: number;
  readonly overflowPolicy: ModelProfile['overflowPolicy'];
  /**
   * Not in the contract, for the overflow benchmark: the fraction of the context `drop-oldest`
   * cuts the view down to when it must move (default DROP_TARGET); 1 drops just enough.
   */
  readonly dropTarget?: number;
}

/** `init`'s input. */
export interface InitInput {
  readonly logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** The KV store's directory (`<dataDir>/kv`); null or absent turns disk KV persistence off. */
  readonly kvDir?: string | null;
  readonly kvBudgetBytes?: number;
  readonly kvChunkTokens?: number;
  /** How new chunks are encoded; `auto` is resolved by the engine (worker/compression-choice.ts); absent = `lossless`. */
  readonly kvCompression?: KvCompressionSetting;
  /**
   * A finished engine build for this computer (`<dataDir>/engines/<name>/`, host/local-engine/):
   * llama.cpp is loaded from it (worker/local-llama.ts). Null or absent: node-llama-cpp's
   * prebuilt binaries.
   */
  readonly engineDir?: string | null;
}

/** `init`'s answer. */
export interface InitOutput {
  /** The llama.cpp build, in words. */
  readonly build: string;
  /** The KV codec's kernels. */
  readonly codec: KvCodecInfo;
  /** How `kvCompression` was resolved: what new chunks are written with, and for `auto` why. */
  readonly compression: KvCompressionChoice;
  /** This computer and the backend llama.cpp runs on, in words (speed measurements are kept per device and build). */
  readonly device: string;
  /**
   * Which llama.cpp libraries run: `local` when `engineDir`'s build loaded, else `prebuilt`, with
   * `fallback` saying why the build asked for did not load (a sentence). `backend`: 'cpu',
   * 'metal', 'cuda' or 'vulkan'.
   */
  readonly engine: { readonly kind: EngineBuildKind; readonly backend: string; readonly fallback?: string };
}

/**
 * `loadModel`'s context settings: the ones measured before on this device (the host keeps
 * them), or a request to measure the candidates now and load with the fastest
 * (worker/speed-choice.ts).
 */
export interface SpeedRequest {
  /** Settings measured before: the context is created with them and nothing is measured. */
  readonly known?: SpeedSettings;
  /** The profile's flash attention setting (`checkProfile` resolved `auto` away). */
  readonly flashAttention: 'auto' | 'on' | 'off';
  /** Thread counts to try, the default first. */
  readonly threads: readonly number[];
}

/** Requests the host makes of the engine process: input and output of each. */
export interface WorkerMethods {
  /** Loads llama.cpp's bindings. Sent once, first. */
  init: { input: InitInput; output: InitOutput };
  /**
   * Loads a model (unloading any previous one) and creates its context. The host has already
   * validated the file with `gguf/` before asking: nothing unchecked reaches llama.cpp.
   * `contextSize` is per slot (0 = automatic); `slots` (1..8, default 1) is the number of resident
   * sequences, so the context holds contextSize × slots cells.
   */
  loadModel: {
    input: {
      readonly path: string;
      readonly contextSize: number;
      readonly threads: number;
      readonly slots?: number;
      /** The model's profile as `checkProfile` resolved it; without it, F16 K/V and the defaults. */
      readonly profile?: ResolvedProfile;
      /** Measured context settings, or a measurement to make; without it, `threads` and the defaults. */
      readonly speed?: SpeedRequest;
    };
    /** `speed`: the measurement made for this load, when one was. */
    output: ModelInfo & { readonly speed?: SpeedProfile };
  };
  /**
   * Validates a model's profile on this machine before anything is loaded: a quantized
   * V needs flash attention, the head size must suit the quantized block size, the backend must
   * support the pair, and the planner must say it fits. Resolves every `auto`. Errors in
   * `issues` mean the profile must not be loaded; `resolved` is then null.
   */
  checkProfile: {
    input: { readonly path: string; readonly profile: ModelProfile };
    output: { readonly issues: readonly ProfileIssue[]; readonly resolved: ResolvedProfile | null };
  };
  /** The planner: from a local file's GGUF metadata alone. */
  plan: {
    input: { readonly path: string; readonly contextSize: number; readonly slots: number };
    output: KvPlan;
  };
  /**
   * One speed measurement of the loaded model with its K/V pair and these settings, in a context
   * of its own (worker/speed.ts): comparing engines, and the speed benchmark.
   */
  measureTrial: {
    input: { readonly settings: SpeedSettings; readonly depth?: number; readonly decodeTokens?: number };
    output: SpeedTrial;
  };
  /** The quality meter: the loaded model's KV pair against F16 over `calibrationPath`'s text. */
  measureQuality: { input: { readonly calibrationPath: string }; output: KvQuality };
  unloadModel: { input: Record<string, never>; output: Record<string, never> };
  /**
   * The prompt's length in tokens as `generate` would render it (chat template, functions; or raw),
   * before any overflow policy. For the API's token counting and its context check.
   */
  countTokens: {
    input: { readonly messages: readonly PromptMessage[]; readonly raw?: boolean; readonly functions?: Readonly<Record<string, FunctionSpec>> };
    output: { readonly tokens: number; readonly contextSize: number };
  };
  /** Streams `token` events, then answers. One generation at a time; others wait their turn. */
  generate: { input: GenerateInput; output: GenerateOutput };
  /** Stops a generation; its `generate` then answers with stopReason `aborted`. */
  abort: { input: { readonly requestId: string }; output: { readonly aborted: boolean } };
  /**
   * Fit verdicts for the files of one model, from one file's GGUF header fetched over HTTP (only
   * the header's bytes): every file shares its architecture, so each verdict is the planner's
   * with that file's weights. Planned against this machine's memory totals (not what is free now).
   */
  fitRemote: {
    input: {
      /** The file whose header is read (a resolve URL), with the headers it needs (Authorization). */
      readonly url: string;
      readonly headers?: Readonly<Record<string, string>>;
      /** That file's bytes (all parts), to tell its header from its weights. */
      readonly sizeBytes: number;
      /** The files to judge: id and bytes (all parts). */
      readonly files: readonly { readonly id: string; readonly sizeBytes: number }[];
    };
    output: { readonly device: DeviceMemory; readonly fits: Readonly<Record<string, FileFit>> };
  };
  /** The stored KV computed with a model file (none when the file was never hashed by the store). */
  modelKv: { input: { readonly path: string }; output: ModelKvUsage };
  /** Deletes every stored KV manifest computed with a model file, and the chunks only they used. */
  forgetModel: { input: { readonly path: string }; output: { readonly bytesFreed: number } };
  metrics: { input: Record<string, never>; output: EngineMetrics };
  /**
   * Deletes a chat's stored KV manifests (every branch); shared chunks stay while others use them.
   * The chat also leaves its slot. With `reread`, its next turn does not reuse what the slot still
   * holds either, and its readout says the cache was forgotten (the Cache view's "Forget cache").
   */
  forgetChat: { input: { readonly chatId: string; readonly reread?: boolean }; output: { readonly bytesFreed: number } };
  /** The disk KV store's self-check (contract `kv.verify`); under the store's lock, so never mid-save. */
  kvVerify: { input: { readonly repair: boolean }; output: KvVerifyReport };
  /** The chats with the most stored KV, largest first. */
  kvChats: { input: { readonly limit: number }; output: { readonly chats: readonly CachedChat[] } };
  /** One chat's KV: the slot holding it (and its tokens) and what the store holds of it. */
  chatCache: {
    input: { readonly chatId: string };
    output: { readonly slot: number | null; readonly tokensInMemory: number; readonly tokensOnDisk: number; readonly bytesOnDisk: number };
  };
}

export type WorkerMethod = keyof WorkerMethods;

/** Pushed by the engine process at any time. */
export type WorkerEvent =
  | { readonly type: 'loadProgress'; readonly progress: number }
  /** A load's speed measurement finished a candidate (`done` of `total`). */
  | { readonly type: 'speedProgress'; readonly done: number; readonly total: number }
  | { readonly type: 'token'; readonly requestId: string; readonly delta: string }
  | { readonly type: 'log'; readonly level: 'error' | 'warn' | 'info' | 'debug'; readonly message: string }
  /**
   * Disk KV persistence paused (writes fail: full disk, permissions, I/O) or resumed. Also sent
   * with `paused: true` during `init` when the KV store could not be opened at all, and once
   * after it opened, with its initial state.
   */
  | { readonly type: 'kvPersistence'; readonly paused: boolean; readonly reason?: HearthError }
  /** A KV save, a budget eviction or a forgotten chat (the Cache view's event log). */
  | { readonly type: 'kvActivity'; readonly activity: KvActivity };

export type HostToWorker = {
  [M in WorkerMethod]: { readonly kind: 'call'; readonly id: number; readonly method: M; readonly input: WorkerMethods[M]['input'] };
}[WorkerMethod];

export type WorkerToHost =
  | { readonly kind: 'ready' }
  | { readonly kind: 'result'; readonly id: number; readonly result: Result<unknown> }
  | { readonly kind: 'event'; readonly event: WorkerEvent };

/**
 * One running engine process, whatever started it: Electron's utilityProcess in the app, or
 * `child_process.fork` under the browser host and in tests.
 */
export interface EnginePort {
  readonly pid: number | undefined;
  send(message: HostToWorker): void;
  onMessage(listener: (message: WorkerToHost) => void): void;
  /** Called once when the process is gone, however it went. */
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts a fresh engine process. */
export type SpawnEngine = () => EnginePort;
