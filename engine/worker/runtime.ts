/**
 * The engine's runtime: the only code that drives node-llama-cpp. It owns llama.cpp's bindings,
 * the loaded model, its context and the one context sequence (the slot) that chats share.
 *
 * Decisions:
 * - One lock, `engine`, orders model changes and generations (FIFO). A model change first aborts
 *   the running generation, so a load never waits for a long reply.
 * - Prompt reuse: one `LlamaChat` on the slot. node-llama-cpp compares the new prompt's tokens
 *   with the tokens already in the sequence and evaluates only the rest, across turns and across
 *   chats. The stats measure this the same way (see `measureReuse`).
 * - Context overflow is refused, never shifted: a conversation whose prompt (plus a few reply
 *   tokens) does not fit in the context gets CONTEXT_OVERFLOW, and a reply stops with
 *   `maxTokens` before it would fill the context. node-llama-cpp's silent context shift would
 *   drop messages without telling the user, and a shift with a quantized K cache crashes
 *   llama.cpp (facts.md). Later issues add explicit overflow policies.
 * - Disk KV (issue 3, kv-cache.ts): before LlamaChat evaluates, the longest stored prefix of the
 *   prompt is loaded when the store holds more than memory does; LlamaChat then finds those
 *   tokens in the sequence and evaluates only the rest. After each finished or stopped turn the
 *   new chunks are saved under the same lock, but the reply is answered first: the next
 *   generation (one sequence today) waits for the save, the user does not.
 */
import { basename, extname } from 'node:path';
import { randomInt } from 'node:crypto';
import { stat } from 'node:fs/promises';
import {
  getLlama,
  LlamaChat,
  LlamaLogLevel,
  type ChatHistoryItem,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import { KvCache, type KvProfile } from './kv-cache.ts';
import { kvUnavailableEvent, watchKvPersistence } from './kv-persistence.ts';
import { err, ok, type MessageStats, type ModelInfo, type Result } from '../contract/index.ts';
import type { EngineMetrics, GenerateInput, GenerateOutput, PromptMessage, WorkerEvent, WorkerMethods } from '../protocol.ts';
import { AUTO_CONTEXT_CAP, MAX_CONTEXT_SIZE, MIN_REPLY_TOKENS, RAM_CAP_ENV, TOKEN_FLUSH_MS } from './constants.ts';
import { Downloads } from './download.ts';
import { FifoLock } from './lock.ts';
import { classifyLoadFailure, LogRing, type LogLevel } from './logs.ts';
import { describeError, type WorkerHandlers } from './serve.ts';

/** How long a generation waits for the model's KV profile (its file hash) before going without. */
const KV_PROFILE_WAIT_MS = 1000;

const levelRank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

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

/** The chat history node-llama-cpp renders, ending with the empty model turn to generate. */
export function toChatHistory(messages: readonly PromptMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
    switch (message.role) {
      case 'system': return { type: 'system', text: message.text };
      case 'user': return { type: 'user', text: message.text };
      case 'assistant': return { type: 'model', response: [message.text] };
    }
  });
  history.push({ type: 'model', response: [] });
  return history;
}

/**
 * How much of `promptTokens` is already in the sequence. LlamaChat always evaluates the last
 * prompt token again (it needs that token's logits to sample), so at most length − 1 is reused.
 */
export function measureReuse(sequence: LlamaContextSequence, promptTokens: readonly Token[]): { reused: number; prefilled: number } {
  const { firstDifferentIndex } = sequence.compareContextTokens(promptTokens as Token[]);
  const reused = Math.max(0, Math.min(firstDifferentIndex, promptTokens.length - 1));
  return { reused, prefilled: promptTokens.length - reused };
}

interface Loaded {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly sequence: LlamaContextSequence;
  readonly chat: LlamaChat;
  readonly info: ModelInfo;
  /** The KV store's profile of this model+context; null when persistence is off. */
  readonly kvProfile: Promise<KvProfile> | null;
}

/** Thrown by the context-shift strategy: the prompt is never shifted (see the module comment). */
class ContextShiftRefused extends Error {}

export interface Runtime {
  readonly handlers: WorkerHandlers;
  /** Frees llama.cpp's resources (tests; the process normally just exits). */
  dispose(): Promise<void>;
  /** Resolves once the work queued so far (a turn's KV save included) is done, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
}

export function createRuntime(emit: (event: WorkerEvent) => void): Runtime {
  let llama: Llama | null = null;
  let initializing: Promise<Result<{ readonly build: string }>> | null = null;
  let build = '';
  let logLevel: LogLevel = 'warn';
  let loaded: Loaded | null = null;
  const logRing = new LogRing(50);
  const lock = new FifoLock('engine');
  /** Generations queued or running, by request id. */
  const generations = new Map<string, AbortController>();
  let runningRequestId: string | null = null;
  const downloads = new Downloads(emit);
  let kvCache: KvCache | null = null;
  /** Why disk KV is off for this process (the store could not be opened), shown in the readout. */
  let kvOffReason: string | null = null;
  /** Stops forwarding the store's persistence changes as `kvPersistence` events. */
  let unwatchKv: (() => void) | null = null;

  const log = (level: LogLevel, message: string): void => {
    if (levelRank[level] <= levelRank[logLevel]) emit({ type: 'log', level, message });
  };

  async function ensureLlama(): Promise<Result<Llama>> {
    if (llama) return ok(llama);
    const result = await handlers.init({ logLevel });
    if (!result.ok) return result;
    return llama ? ok(llama) : err('INTERNAL', 'llama.cpp did not initialize.');
  }

  async function disposeLoaded(): Promise<void> {
    const current = loaded;
    loaded = null;
    if (!current) return;
    current.chat.dispose({ disposeSequence: true });
    await current.context.dispose();
    await current.model.dispose();
  }

  function abortRunning(): void {
    if (runningRequestId !== null) generations.get(runningRequestId)?.abort(new Error('aborted'));
  }

  async function loadModel(input: WorkerMethods['loadModel']['input']): Promise<Result<ModelInfo>> {
    const { path, contextSize, threads } = input;
    if (typeof path !== 'string' || !Number.isInteger(contextSize) || contextSize < 0 || !Number.isInteger(threads) || threads < 0) {
      return err('INVALID_INPUT', 'loadModel needs a path, a contextSize ≥ 0 and threads ≥ 0.');
    }
    if (contextSize > MAX_CONTEXT_SIZE) {
      return err('INVALID_INPUT', `A context of ${contextSize} tokens is more than the ${MAX_CONTEXT_SIZE} Hearth supports.`, 'Lower the context size in Settings.');
    }
    const bindings = await ensureLlama();
    if (!bindings.ok) return bindings;
    const llamaInstance = bindings.value;
    abortRunning();
    return lock.run(async () => {
      await disposeLoaded();
      let fileSize: number;
      try {
        const info = await stat(path);
        if (!info.isFile()) return err('MODEL_INVALID', `${path} is not a file.`);
        fileSize = info.size;
      } catch (error) {
        return err('NOT_FOUND', `The model file ${path} cannot be read: ${describeError(error)}`);
      }

      const mark = logRing.mark();
      let model: LlamaModel | null = null;
      let context: LlamaContext | null = null;
      try {
        let lastProgress = -1;
        emit({ type: 'loadProgress', progress: 0 });
        model = await llamaInstance.loadModel({
          modelPath: path,
          onLoadProgress: (progress) => {
            // Whole percents are plenty for a progress bar, and keep IPC quiet on big files.
            const rounded = Math.floor(progress * 100) / 100;
            if (rounded > lastProgress) {
              lastProgress = rounded;
              emit({ type: 'loadProgress', progress: rounded });
            }
          },
        });
        const trained = model.trainContextSize;
        // A file without a trained length (0) gets the cap: llama.cpp would read 0 as "the trained length".
        const size = contextSize !== 0 ? contextSize : trained > 0 ? Math.min(trained, AUTO_CONTEXT_CAP) : AUTO_CONTEXT_CAP;
        context = await model.createContext({
          contextSize: size,
          sequences: 1,
          threads: threads === 0 ? llamaInstance.cpuMathCores : threads,
          // Explicit, never "auto": the stored KV layout depends on it (kv-cache.ts).
          flashAttention: model.defaultContextFlashAttention === true,
        });
        const sequence = context.getSequence();
        const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
        const metadataName = model.fileInfo.metadata.general?.name;
        const info: ModelInfo = {
          path,
          name: typeof metadataName === 'string' && metadataName.trim() !== '' ? metadataName : basename(path, extname(path)),
          sizeBytes: fileSize,
          architecture: String(model.fileInfo.metadata.general?.architecture ?? 'unknown'),
          trainedContextLength: trained,
          contextSize: context.contextSize,
          layerCount: Number(model.fileInfo.architectureMetadata.block_count ?? model.fileInsights.totalLayers - 1),
        };
        // Hashing a large model file takes a while the first time (cached after): it runs in
        // the background and the first generation waits for it.
        const kvProfile = kvCache ? kvCache.prepare({ model, context, modelPath: path, flashAttention: context.flashAttention === true }) : null;
        loaded = { model, context, sequence, chat, info, kvProfile };
        emit({ type: 'loadProgress', progress: 1 });
        return ok(info);
      } catch (error) {
        await context?.dispose().catch(() => undefined);
        await model?.dispose().catch(() => undefined);
        // llama.cpp's log reaches JS through a thread-safe callback, so the line that explains
        // the failure can arrive after the rejection; give it a moment before reading the ring.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const failure = classifyLoadFailure(error, logRing.since(mark), build);
        return { ok: false, error: failure };
      }
    });
  }

  async function generate(input: GenerateInput): Promise<Result<GenerateOutput>> {
    const requestedAt = performance.now();
    const { requestId, messages } = input;
    if (typeof requestId !== 'string' || !Array.isArray(messages) || messages.length === 0) {
      return err('INVALID_INPUT', 'generate needs a requestId and at least one message.');
    }
    if (generations.has(requestId)) return err('BUSY', `A generation with id ${requestId} is already running.`);
    const controller = new AbortController();
    generations.set(requestId, controller);
    try {
      return await new Promise<Result<GenerateOutput>>((resolve, reject) => {
        void lock.run(async () => {
          let result: Result<GenerateOutput>;
          try {
            result = await runGeneration(input, controller, requestedAt);
          } catch (error) {
            reject(error);
            return;
          }
          resolve(result);
          // Still under the lock: the sequence holds exactly this turn's tokens.
          if (result.ok) await saveTurn(input);
        });
      });
    } finally {
      generations.delete(requestId);
    }
  }

  async function saveTurn(input: GenerateInput): Promise<void> {
    const current = loaded;
    if (!kvCache || !current?.kvProfile || typeof input.branchId !== 'string' || input.branchId === '') return;
    const profile = await current.kvProfile;
    if (profile.fingerprint === null) return;
    const manifestId = `${input.chatId}/${input.branchId}`;
    // The chat's other manifests that the new one extends (its previous turns, also those saved
    // before a restart) are dropped; other branches stay.
    const siblings = kvCache.store.manifestIds(`${input.chatId}/`);
    try {
      const saved = await kvCache.save(profile, current.sequence, manifestId, siblings.ok ? { replaces: siblings.value } : {});
      if (!saved.ok) {
        log('warn', `KV save of ${manifestId} failed: ${saved.error.message}`);
        return;
      }
      const r = saved.value;
      log('debug', `KV saved ${manifestId}: ${r.tokens} tokens, ${r.chunksWritten} new chunks, ${r.bytesWritten} bytes written of a ${r.stateBytes}-byte state, ${r.ms} ms`);
    } catch (error) {
      log('warn', `KV save of ${manifestId} failed: ${describeError(error)}`);
    }
  }

  async function runGeneration(input: GenerateInput, controller: AbortController, requestedAt: number): Promise<Result<GenerateOutput>> {
    const { requestId, messages, sampling } = input;
    const emptyStats = (): MessageStats => ({
      tokensReused: 0,
      tokensRestored: 0,
      tokensPrefilled: 0,
      tokensGenerated: 0,
      ttftMs: 0,
      cacheSource: 'none',
    });
    if (controller.signal.aborted) return ok({ text: '', stopReason: 'aborted', stats: emptyStats() });
    if (!loaded) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Open or download a model first.');
    const { chat, sequence, model } = loaded;
    runningRequestId = requestId;
    try {
      const history = toChatHistory(messages);
      const promptTokens = chat.chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer);
      const contextSize = sequence.contextSize;
      const maxTokens = Math.max(1, Math.floor(sampling.maxTokens));
      const reserve = Math.min(MIN_REPLY_TOKENS, maxTokens);
      if (promptTokens.length + reserve > contextSize) {
        return err(
          'CONTEXT_OVERFLOW',
          `The conversation is ${promptTokens.length} tokens long, but the context holds ${contextSize} tokens (and the reply needs room too).`,
          'Start a new chat, shorten the message, or raise the context size in Settings.',
        );
      }
      // LlamaChat shifts the context once the sequence reaches contextSize − 1 tokens; stop
      // the reply just before that instead (see the module comment).
      const roomLeft = contextSize - promptTokens.length - 2;
      const effectiveMaxTokens = Math.max(1, Math.min(maxTokens, roomLeft));

      let restored = 0;
      let restoreMs: number | undefined;
      let fallbackReason: string | undefined = kvOffReason ?? undefined;
      const kvProfile = loaded.kvProfile;
      if (kvCache && kvProfile) {
        // A model seen before has its hash cached (milliseconds). A first hash of a large file
        // takes seconds, and nothing can be stored for an unhashed model yet: do not wait.
        let timer: NodeJS.Timeout | undefined;
        const profile = await Promise.race([kvProfile, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), KV_PROFILE_WAIT_MS)))]);
        clearTimeout(timer);
        if (profile === null) {
          fallbackReason = 'the model file is still being hashed, so its stored KV cannot be checked yet';
        } else if (profile.fingerprint !== null) {
          const report = await kvCache.restore(profile, sequence, promptTokens);
          restored = report.tokensRestored;
          if (restored > 0) restoreMs = report.restoreMs;
          fallbackReason = report.fallbackReason;
        } else {
          fallbackReason = profile.fallbackReason;
        }
      }
      const { reused: inMemory, prefilled } = measureReuse(sequence, promptTokens);
      const reused = restored > 0 ? 0 : inMemory;
      const inputTokensBefore = sequence.tokenMeter.usedInputTokens;
      const evaluationStart = performance.now();
      let firstTokenAt: number | null = null;
      let tokensGenerated = 0;
      let streamed = '';
      let pending = '';
      let lastFlush = 0;
      let flushTimer: NodeJS.Timeout | null = null;
      const flush = (): void => {
        if (flushTimer) {
          clearTimeout(flushTimer);
          flushTimer = null;
        }
        if (pending === '') return;
        emit({ type: 'token', requestId, delta: pending });
        streamed += pending;
        pending = '';
        lastFlush = performance.now();
      };

      let stopReason: GenerateOutput['stopReason'];
      let text: string;
      try {
        const response = await chat.generateResponse(history, {
          signal: controller.signal,
          stopOnAbortSignal: true,
          maxTokens: effectiveMaxTokens,
          temperature: sampling.temperature > 0 ? sampling.temperature : 0,
          ...(sampling.temperature > 0 && sampling.topP > 0 && sampling.topP < 1 ? { topP: sampling.topP } : {}),
          // node-llama-cpp's default seed is the time in whole seconds, so replies sampled
          // within one second would repeat each other.
          ...(sampling.temperature > 0 ? { seed: randomInt(2 ** 31) } : {}),
          contextShift: {
            strategy: () => {
              throw new ContextShiftRefused('The reply reached the end of the context.');
            },
          },
          onToken: (tokens) => {
            if (firstTokenAt === null) firstTokenAt = performance.now();
            tokensGenerated += tokens.length;
          },
          onTextChunk: (chunk) => {
            pending += chunk;
            const now = performance.now();
            if (now - lastFlush >= TOKEN_FLUSH_MS) flush();
            else flushTimer ??= setTimeout(flush, TOKEN_FLUSH_MS - (now - lastFlush));
          },
        });
        flush();
        text = response.response;
        // Text the wrapper held back (a possible stop trigger) and released at the end is
        // streamed too, so the deltas always add up to the reply.
        if (text.startsWith(streamed) && text.length > streamed.length) {
          emit({ type: 'token', requestId, delta: text.slice(streamed.length) });
          streamed = text;
        } else if (!text.startsWith(streamed)) {
          log('warn', `The reply differs from the streamed text (${text.length} vs ${streamed.length} characters); keeping the streamed text.`);
          text = streamed;
        }
        const reason = response.metadata.stopReason;
        stopReason = reason === 'abort' ? 'aborted' : reason === 'maxTokens' ? 'maxTokens' : 'eos';
      } catch (error) {
        flush();
        if (controller.signal.aborted) {
          // Aborted before any text: LlamaChat throws the signal's reason instead of returning.
          text = streamed;
          stopReason = 'aborted';
        } else if (error instanceof ContextShiftRefused) {
          return err('CONTEXT_OVERFLOW', `The reply reached the end of the context (${contextSize} tokens).`, 'Start a new chat, or raise the context size in Settings.');
        } else {
          throw error;
        }
      }
      if (controller.signal.aborted) stopReason = 'aborted';
      // Each generated token but the last is fed back as input: anything beyond that and the
      // prefill means LlamaChat did not reuse what was in the sequence (the stats would lie).
      const evaluated = sequence.tokenMeter.usedInputTokens - inputTokensBefore;
      if (evaluated > prefilled + tokensGenerated) {
        log('warn', `The prompt needed ${evaluated - tokensGenerated} evaluated tokens where ${prefilled} were expected (${restored} restored, ${reused} reused).`);
      }
      const ttftMs = firstTokenAt === null ? performance.now() - requestedAt : firstTokenAt - requestedAt;
      const stats: MessageStats = {
        tokensReused: reused,
        tokensRestored: restored,
        tokensPrefilled: prefilled,
        tokensGenerated,
        ttftMs: Math.round(ttftMs * 10) / 10,
        prefillMs: Math.round(((firstTokenAt ?? performance.now()) - evaluationStart) * 10) / 10,
        cacheSource: restored > 0 ? 'disk' : reused > 0 ? 'memory' : 'none',
        ...(restoreMs !== undefined ? { restoreMs } : {}),
        ...(fallbackReason !== undefined ? { fallbackReason } : {}),
      };
      return ok({ text, stopReason, stats });
    } finally {
      runningRequestId = null;
    }
  }

  /** Loads the bindings once; opens the KV store when the host names its directory. */
  async function initHandler(input: WorkerMethods['init']['input']): Promise<Result<{ readonly build: string }>> {
    {
      const level = input.logLevel;
      if (level in levelRank) logLevel = level;
      const opened = await initLlama();
      if (!opened.ok) return opened;
      if (typeof input.kvDir === 'string' && input.kvDir !== '' && !kvCache && llama) {
        const cache = await KvCache.open({
          root: input.kvDir,
          budgetBytes: typeof input.kvBudgetBytes === 'number' && input.kvBudgetBytes >= 0 ? input.kvBudgetBytes : 10 * 1024 ** 3,
          ...(typeof input.kvChunkTokens === 'number' && input.kvChunkTokens > 0 ? { chunkTokens: input.kvChunkTokens } : {}),
          // The backend is part of it: GPU kernels may compute other K/V bytes than the CPU's.
          llamaRelease: `${llama.llamaCppRelease.release}/${llama.gpu === false ? 'cpu' : llama.gpu}`,
        });
        if (cache.ok) {
          kvCache = cache.value;
          kvOffReason = null;
          unwatchKv = watchKvPersistence(kvCache.store, emit);
        } else {
          kvOffReason = `KV persistence is off: ${cache.error.message}`;
          log('error', kvOffReason);
          emit(kvUnavailableEvent(cache.error));
        }
      }
      return opened;
    }
  }

  async function initLlama(): Promise<Result<{ readonly build: string }>> {
    {
      if (llama) {
        llama.logLevel = toLlamaLogLevel(levelRank[logLevel] > levelRank.warn ? logLevel : 'warn');
        return ok({ build });
      }
      initializing ??= (async (): Promise<Result<{ readonly build: string }>> => {
        try {
          const instance = await getLlama({
            gpu: 'auto',
            // Never compile llama.cpp on a user's machine: a prebuilt binary or a clear error.
            build: 'never',
            progressLogs: false,
            // Warnings are always captured for the ring (error messages need them); the host's
            // level only filters what is forwarded as log events.
            logLevel: toLlamaLogLevel(levelRank[logLevel] > levelRank.warn ? logLevel : 'warn'),
            logger: (llamaLevel, message) => {
              const level = fromLlamaLogLevel(llamaLevel);
              const line = message.trimEnd();
              if (line === '') return;
              if (levelRank[level] <= levelRank.warn) logRing.add(line);
              log(level, line);
            },
          });
          const ramCap = Number(process.env[RAM_CAP_ENV]);
          if (Number.isFinite(ramCap) && ramCap > 0) await instance.setRamCap(ramCap);
          llama = instance;
          const { release } = instance.llamaCppRelease;
          build = `llama.cpp ${release} (${instance.gpu === false ? 'cpu' : instance.gpu}, ${instance.buildType})`;
          return ok({ build });
        } catch (error) {
          initializing = null;
          return err('INTERNAL', `llama.cpp could not be loaded: ${describeError(error)}`);
        }
      })();
      return initializing;
    }
  }

  const handlers: WorkerHandlers = {
    init: (input) => initHandler(input),

    loadModel,

    async unloadModel() {
      abortRunning();
      await lock.run(disposeLoaded);
      return ok({});
    },

    generate,

    async abort({ requestId }) {
      const controller = generations.get(requestId);
      if (!controller || controller.signal.aborted) return ok({ aborted: false });
      controller.abort(new Error('aborted'));
      return ok({ aborted: true });
    },

    download: (input) => downloads.download(input),

    cancelDownload: ({ downloadId }) => downloads.cancel(downloadId),

    async forgetChat({ chatId }) {
      if (typeof chatId !== 'string' || chatId === '') return err('INVALID_INPUT', 'forgetChat needs a chatId.');
      if (!kvCache) return ok({});
      const forgotten = await kvCache.forget(`${chatId}/`);
      return forgotten.ok ? ok({}) : forgotten;
    },

    async metrics() {
      let kvStore: EngineMetrics['kvStore'];
      if (kvCache) {
        const stats = await kvCache.stats();
        if (stats.ok) kvStore = { bytesOnDisk: stats.value.bytesOnDisk, chunkCount: stats.value.chunkCount, logicalBytes: stats.value.logicalBytes };
      }
      return ok({
        kvCellsUsed: loaded ? loaded.sequence.nextTokenIndex : 0,
        kvCellsCapacity: loaded ? loaded.context.getAllocatedContextSize() : 0,
        ...(kvStore ? { kvStore } : {}),
      });
    },
  };

  return {
    handlers,
    async flush(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([lock.run(async () => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    },
    async dispose() {
      abortRunning();
      await downloads.cancelAll();
      await lock.run(disposeLoaded);
      unwatchKv?.();
      unwatchKv = null;
      await kvCache?.close();
      kvCache = null;
      await llama?.dispose();
      llama = null;
    },
  };
}
