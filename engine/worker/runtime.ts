/**
 * The engine's runtime: the only code that drives node-llama-cpp. It owns llama.cpp's bindings,
 * the loaded model, its context and the context's N sequences, the slots (slots.ts: which chat
 * holds which, and the swaps between them).
 *
 * Decisions:
 * - One lock, `engine`, orders model changes, generations and KV saves (FIFO): decoding is
 *   serial, one slot at a time, even with several slots (concurrency across slots is a later
 *   issue). A model change first aborts the running generation, so a load never waits for a long
 *   reply.
 * - Slots: `contextSize` is per slot (node-llama-cpp allocates contextSize × sequences cells and
 *   llama.cpp gives each sequence its own stream of contextSize cells), so Settings' "context
 *   size per slot" holds. A chat keeps its slot until another chat needs it (slots.ts).
 * - Prompt reuse: one `LlamaChat` per slot. node-llama-cpp compares the new prompt's tokens
 *   with the tokens already in the sequence and evaluates only the rest, across turns, and across
 *   chats when a swapped-in chat shares a prefix (a system prompt) with the slot's previous one.
 *   The stats measure this the same way (see `measureReuse`).
 * - Context overflow follows the model profile's policy (issue 4, overflow.ts), and the readout
 *   says what was left out. `refuse` (the default): a conversation whose prompt (plus a few reply
 *   tokens) does not fit gets CONTEXT_OVERFLOW. `rebuild`: the oldest messages are left out and
 *   the kept window is read from a clean point, or restored. With both, a reply stops with
 *   `maxTokens` before it would fill the context. `streaming` (streaming.ts) and `shift`
 *   (node-llama-cpp's chat-level shift) may let a reply run on. node-llama-cpp's silent shift
 *   never runs unasked, and every erase or shift goes through the guard (overflow.ts): a shift
 *   with a quantized K cache crashes llama.cpp (facts.md).
 * - Disk KV (issue 3, kv-cache.ts): before LlamaChat evaluates, the longest stored prefix of the
 *   prompt is loaded when the store holds more than memory does; LlamaChat then finds those
 *   tokens in the sequence and evaluates only the rest. After each finished or stopped turn the
 *   new chunks are saved under the same lock, but the reply is answered first: the next
 *   generation waits for the save, the user does not. A slot whose save failed stays dirty and is
 *   saved again before a swap, a model change, or quit (`flush`).
 * - The Cache view (issue 5): `metrics` never takes the lock (it is sampled at 4 Hz, also while
 *   a reply streams) and reads only counters, except the device's memory and the store's totals,
 *   read at most once a second. "Forget cache" (`forgetChat` with `reread`) also makes the chat's
 *   next turn start from an empty sequence without a restore, so its readout shows a full re-read.
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
import { loadKernels } from '../kv/kernels-load.ts';
import { cachedFor, evictActivity, forgetActivity, saveActivity, summarizeIntegrity, uncheckedReport } from './kv-activity.ts';
import { kvUnavailableEvent, watchKvPersistence } from './kv-persistence.ts';
import { err, ok, type DeviceMemory, type MessageStats, type ModelInfo, type Result, errorText } from '../contract/index.ts';
import type { KvStoreStats } from '../kv/store.ts';
import type { EngineMetrics, GenerateInput, KvActivity, GenerateOutput, PromptMessage, ResolvedProfile, WorkerEvent, WorkerMethods } from '../protocol.ts';
import { AUTO_CONTEXT_CAP, MAX_CONTEXT_SIZE, MIN_REPLY_TOKENS, RAM_CAP_ENV, TOKEN_FLUSH_MS } from './constants.ts';
import { Downloads } from './download.ts';
import { Lock } from '../base/lock.ts';
import { checkResolvedProfile, ggmlKvTypeName, kvTypeFromGgml } from './kv-types.ts';
import { KvEditRefused, KvGuard, rebuildWindow, replyReserve, SINK_TOKENS, streamShiftSize, type StreamWindow } from './overflow.ts';
import { streamTurn } from './streaming.ts';
import { contextMemory, createPlanHandlers, readDevice, readModelShape } from './planner.ts';
import { kvBytesPerToken } from './planner-core.ts';
import { measureLoadedQuality } from './quality.ts';
import { classifyLoadFailure, LogRing, type LogLevel } from './logs.ts';
import type { WorkerHandlers } from './serve.ts';
import { SlotTable, type Slot } from './slots.ts';

/** How long a generation waits for the model's KV profile (its file hash) before going without. */
const KV_PROFILE_WAIT_MS = 1000;

/** The most slots a context gets (Settings.kvSlots). */
const MAX_SLOTS = 8;

/** How long an unload or model change may spend saving dirty slots first. */
const UNLOAD_SAVE_MS = 2000;

/**
 * How long `metrics` reuses the device's memory reading and the store's totals: the Cache view
 * asks 4 times a second, and neither needs to be fresher than that (a KV save, eviction or
 * forget reads the store again at once).
 */
const METRICS_CACHE_MS = 1000;

/** Chats whose cache was forgotten with `reread`, remembered until their next turn (oldest dropped first). */
const FORGOTTEN_MEMORY = 256;

/** The readout's reason for a turn after "Forget cache" (the e2e test matches /cache was forgotten/). */
export const FORGOTTEN_REASON = 'its cache was forgotten, so its history was read again';

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

/** What lives in a slot: its sequence and the LlamaChat that drives it. */
interface Resident {
  readonly sequence: LlamaContextSequence;
  readonly chat: LlamaChat;
}

interface Loaded {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly slots: SlotTable<Resident>;
  readonly info: ModelInfo;
  /** The profile the context was created with (defaults when the host sent none). */
  readonly profile: ResolvedProfile;
  /** Every erase and shift on this context's sequences goes through it (overflow.ts). */
  readonly guard: KvGuard;
  /** `streaming`: the window each rolled sequence holds (streaming.ts). */
  readonly streams: Map<LlamaContextSequence, StreamWindow>;
  /** The KV store's profile of this model+context; null when persistence is off. */
  readonly kvProfile: Promise<KvProfile> | null;
  /** K + V bytes of one cell (every layer) for the context's types, from the model's metadata. */
  readonly kvBytesPerCell: number;
  /** The weights' buffers as llama.cpp allocated them at load. */
  readonly weights: { readonly ramBytes: number; readonly vramBytes: number };
}

/** Reasons for the readout, in order, joined with "; ". */
function joinReasons(first: string, rest: string | undefined): string {
  return rest === undefined ? first : `${first}; ${rest}`;
}

/** Thrown by the context-shift strategy: the prompt is never shifted (see the module comment). */
class ContextShiftRefused extends Error {}

export interface Runtime {
  readonly handlers: WorkerHandlers;
  /**
   * Saves dirty slots (none is started after `saveTimeoutMs`, default 2 s), then frees llama.cpp's
   * resources (tests; the process normally just exits, after `flush`).
   */
  dispose(saveTimeoutMs?: number): Promise<void>;
  /**
   * Resolves once the work queued so far (a turn's KV save included) and a save of every dirty
   * slot are done, or after `timeoutMs`, whichever comes first (quit).
   */
  flush(timeoutMs: number): Promise<void>;
}

export function createRuntime(emit: (event: WorkerEvent) => void): Runtime {
  let llama: Llama | null = null;
  let initializing: Promise<Result<{ readonly build: string }>> | null = null;
  let build = '';
  let logLevel: LogLevel = 'warn';
  let loaded: Loaded | null = null;
  const logRing = new LogRing(50);
  const lock = new Lock('engine');
  /** Generations queued or running, by request id. */
  const generations = new Map<string, AbortController>();
  let runningRequestId: string | null = null;
  const downloads = new Downloads(emit);
  let kvCache: KvCache | null = null;
  let codec: ReturnType<typeof loadKernels> | null = null;
  /** Why disk KV is off for this process (the store could not be opened), shown in the readout. */
  let kvOffReason: string | null = null;
  /** Stops forwarding the store's persistence changes as `kvPersistence` events. */
  let unwatchKv: (() => void) | null = null;
  /** Chats forgotten with `reread`: their next turn starts from an empty sequence (see forgetChat). */
  const forgotten = new Set<string>();
  const device = cachedFor<DeviceMemory | null>(METRICS_CACHE_MS, async () => (llama ? (await readDevice(llama)).device : null));
  const storeStats = cachedFor<Result<KvStoreStats> | null>(METRICS_CACHE_MS, async () => (kvCache ? kvCache.stats() : null));
  /** A KV save, eviction or forget: the store's totals changed. */
  const kvActivity = (activity: KvActivity): void => {
    storeStats.invalidate();
    emit({ type: 'kvActivity', activity });
  };

  const log = (level: LogLevel, message: string): void => {
    if (levelRank[level] <= levelRank[logLevel]) emit({ type: 'log', level, message });
  };

  async function ensureLlama(): Promise<Result<Llama>> {
    if (llama) return ok(llama);
    const result = await handlers.init({ logLevel });
    if (!result.ok) return result;
    return llama ? ok(llama) : err('INTERNAL', 'llama.cpp did not initialize.');
  }

  /** Call under the lock. Dirty slots are saved first (the chats then restore with the next model load). */
  async function disposeLoaded(saveTimeoutMs: number): Promise<void> {
    const current = loaded;
    if (!current) return;
    await current.slots.saveDirty(performance.now() + saveTimeoutMs);
    loaded = null;
    for (const slot of current.slots.slots) slot.resident.chat.dispose({ disposeSequence: true });
    await current.context.dispose();
    await current.model.dispose();
  }

  /**
   * The slot table's save: the resident's clean prefix under `manifestId`, replacing the chat's
   * manifests that it extends (its previous turns, also those saved before a restart; other
   * branches stay). Resolves to the tokens stored, or null.
   */
  async function saveResident(kvProfile: Promise<KvProfile> | null, resident: Resident, manifestId: string, chatId: string): Promise<number | null> {
    const cache = kvCache;
    if (!cache || !kvProfile) return null;
    try {
      const profile = await kvProfile;
      if (profile.fingerprint === null) return null;
      const siblings = cache.store.manifestIds(`${chatId}/`);
      const saved = await cache.save(profile, resident.sequence, manifestId, siblings.ok ? { replaces: siblings.value } : {});
      if (!saved.ok) {
        log('warn', `KV save of ${manifestId} failed: ${saved.error.message}`);
        return null;
      }
      const r = saved.value;
      log('debug', `KV saved ${manifestId}: ${r.tokens} tokens, ${r.chunksWritten} new chunks, ${r.bytesWritten} bytes written of a ${r.stateBytes}-byte state, ${r.ms} ms`);
      kvActivity(saveActivity(chatId, r));
      if (r.evicted) kvActivity(evictActivity(r.evicted));
      return r.tokens;
    } catch (error) {
      log('warn', `KV save of ${manifestId} failed: ${errorText(error)}`);
      return null;
    }
  }

  function abortRunning(): void {
    if (runningRequestId !== null) generations.get(runningRequestId)?.abort(new Error('aborted'));
  }

  async function loadModel(input: WorkerMethods['loadModel']['input']): Promise<Result<ModelInfo>> {
    const { path, threads } = input;
    const requested = input.profile;
    if (requested !== undefined) {
      const problem = checkResolvedProfile(requested);
      if (problem !== null) return err('INVALID_INPUT', `loadModel's profile is invalid: ${problem}.`);
    }
    // The profile, when there is one, decides the context size and slots (the host sends both the same).
    const contextSize = requested?.contextSize ?? input.contextSize;
    const slotCount = requested?.slots ?? input.slots ?? 1;
    if (typeof path !== 'string' || !Number.isInteger(contextSize) || contextSize < 0 || !Number.isInteger(threads) || threads < 0) {
      return err('INVALID_INPUT', 'loadModel needs a path, a contextSize ≥ 0 and threads ≥ 0.');
    }
    if (!Number.isInteger(slotCount) || slotCount < 1 || slotCount > MAX_SLOTS) {
      return err('INVALID_INPUT', `loadModel needs 1 to ${MAX_SLOTS} slots, not ${String(slotCount)}.`);
    }
    if (contextSize * slotCount > MAX_CONTEXT_SIZE) {
      return err(
        'INVALID_INPUT',
        `A context of ${contextSize} tokens${slotCount > 1 ? ` for each of ${slotCount} slots` : ''} is more than the ${MAX_CONTEXT_SIZE} Hearth supports.`,
        slotCount > 1 ? 'Lower the context size or the number of slots in Settings.' : 'Lower the context size in Settings.',
      );
    }
    const bindings = await ensureLlama();
    if (!bindings.ok) return bindings;
    const llamaInstance = bindings.value;
    abortRunning();
    return lock.run(async () => {
      await disposeLoaded(UNLOAD_SAVE_MS);
      let fileSize: number;
      try {
        const info = await stat(path);
        if (!info.isFile()) return err('MODEL_INVALID', `${path} is not a file.`);
        fileSize = info.size;
      } catch (error) {
        return err('NOT_FOUND', `The model file ${path} cannot be read: ${errorText(error)}`);
      }

      const mark = logRing.mark();
      let model: LlamaModel | null = null;
      let context: LlamaContext | null = null;
      try {
        let lastProgress = -1;
        emit({ type: 'loadProgress', progress: 0 });
        model = await llamaInstance.loadModel({
          modelPath: path,
          // A model option, not a context one: the layers are placed when the weights load.
          ...(typeof requested?.gpuLayers === 'number' ? { gpuLayers: requested.gpuLayers } : {}),
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
          // Per sequence: node-llama-cpp allocates contextSize × sequences cells (its KV cache is
          // not unified: each sequence is its own llama.cpp stream of contextSize cells), so
          // every slot holds a whole conversation of `size` tokens (Settings: "per slot").
          contextSize: size,
          sequences: slotCount,
          threads: threads === 0 ? llamaInstance.cpuMathCores : threads,
          // Explicit, never "auto": the stored KV layout depends on it (kv-cache.ts).
          flashAttention: requested ? requested.flashAttention : model.defaultContextFlashAttention === true,
          experimentalKvCacheKeyType: ggmlKvTypeName(requested?.kType ?? 'f16'),
          experimentalKvCacheValueType: ggmlKvTypeName(requested?.vType ?? 'f16'),
        });
        const kType = kvTypeFromGgml(context.kvCacheKeyType);
        const vType = kvTypeFromGgml(context.kvCacheValueType);
        const profile: ResolvedProfile = {
          kType: kType ?? requested?.kType ?? 'f16',
          vType: vType ?? requested?.vType ?? 'f16',
          flashAttention: context.flashAttention === true,
          contextSize,
          gpuLayers: requested?.gpuLayers ?? 'auto',
          slots: slotCount,
          overflowPolicy: requested?.overflowPolicy ?? 'refuse',
        };
        // The K type the context really has decides; one Hearth does not know counts as quantized.
        const guard = new KvGuard({
          kType: kType ?? 'q8_0',
          onFragmented: (sequence, from) => kvCache?.markFragmented(sequence as LlamaContextSequence, from),
        });
        const streams = new Map<LlamaContextSequence, StreamWindow>();
        const residents: Resident[] = [];
        for (let i = 0; i < slotCount; i++) {
          // node-llama-cpp's own context shift goes through the guard too: refused unless the
          // policy shifts (and K is F16); streaming.ts passes its own per turn.
          const sequence = context.getSequence({
            contextShift: {
              size: streamShiftSize(context.contextSize),
              strategy: guard.shiftStrategy({ keep: SINK_TOKENS, allowed: profile.overflowPolicy === 'streaming' || profile.overflowPolicy === 'shift' }),
            },
          });
          residents.push({ sequence, chat: new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false }) });
        }
        const metadataName = model.fileInfo.metadata.general?.name;
        const memory = await contextMemory(model, context);
        const info: ModelInfo = {
          path,
          name: typeof metadataName === 'string' && metadataName.trim() !== '' ? metadataName : basename(path, extname(path)),
          sizeBytes: fileSize,
          architecture: String(model.fileInfo.metadata.general?.architecture ?? 'unknown'),
          trainedContextLength: trained,
          contextSize: context.contextSize,
          layerCount: Number(model.fileInfo.architectureMetadata.block_count ?? model.fileInsights.totalLayers - 1),
          ...(kType && vType ? { kvType: { k: kType, v: vType } } : {}),
          flashAttention: context.flashAttention === true,
          gpuLayers: model.gpuLayers,
          ...(memory ? { memory } : {}),
        };
        // Hashing a large model file takes a while the first time (cached after): it runs in
        // the background and the first generation waits for it.
        const kvProfile = kvCache ? kvCache.prepare({ model, context, modelPath: path, flashAttention: context.flashAttention === true }) : null;
        const slots = new SlotTable<Resident>({
          residents,
          tokens: (resident) => resident.sequence.nextTokenIndex,
          save: (resident, manifestId, chatId) => saveResident(kvProfile, resident, manifestId, chatId),
        });
        // Once per load: metrics multiplies it by the cells in use four times a second.
        const kvBytesPerCell = kvBytesPerToken(readModelShape(model.fileInsights), { kType: profile.kType, vType: profile.vType });
        const weights = { ramBytes: model.memoryUsage.ram, vramBytes: model.memoryUsage.vram };
        loaded = { model, context, slots, info, kvProfile, profile, guard, streams, kvBytesPerCell, weights };
        emit({ type: 'loadProgress', progress: 1 });
        return ok(info);
      } catch (error) {
        await context?.dispose().catch(() => undefined);
        await model?.dispose().catch(() => undefined);
        // llama.cpp's log reaches JS through a thread-safe callback, so the line that explains
        // the failure can arrive after the rejection; give it a moment before reading the ring.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const failure = classifyLoadFailure(error, logRing.since(mark), build);
        // A context llama.cpp refused for the profile's settings (a K/V pair it cannot run): say which.
        if (requested && model !== null && context === null && failure.code !== 'OUT_OF_MEMORY') {
          return err(
            'INVALID_INPUT',
            `llama.cpp could not create a context with K ${requested.kType}, V ${requested.vType} and flash attention ${requested.flashAttention ? 'on' : 'off'}: ${failure.message.replace(/^llama\.cpp could not load the model: /, '')}`,
            "Choose another K/V pair in the model's settings (a quantized V needs flash attention on), or go back to F16.",
          );
        }
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
          const taken: { slot: Slot<Resident> | null; unsaved: boolean } = { slot: null, unsaved: false };
          let result: Result<GenerateOutput>;
          try {
            result = await runGeneration(input, controller, requestedAt, taken);
          } catch (error) {
            // The slot holds part of a turn that never finished: nothing to save under a name.
            if (taken.slot) await saveTurn(input, taken.slot, false);
            reject(error);
            return;
          }
          resolve(result);
          // Still under the lock: the slot holds exactly this turn's tokens.
          if (taken.slot) await saveTurn(input, taken.slot, result.ok && !taken.unsaved);
        });
      });
    } finally {
      generations.delete(requestId);
    }
  }

  /**
   * After a turn, under the lock: binds the slot's tokens to the turn's manifest and saves them.
   * A failed turn (or one without a branch) leaves nothing to save: its tokens are not a turn.
   */
  async function saveTurn(input: GenerateInput, slot: Slot<Resident>, succeeded: boolean): Promise<void> {
    const current = loaded;
    // The model changed, or the chat was deleted while it generated: nothing to keep.
    if (!current || !current.slots.slots.includes(slot) || slot.chatId !== input.chatId) return;
    const named = succeeded && typeof input.branchId === 'string' && input.branchId !== '';
    current.slots.turnDone(slot, named ? `${input.chatId}/${input.branchId}` : null);
    if (named) await current.slots.save(slot);
  }

  /**
   * Runs one turn under the lock; `taken.slot` is the slot it ran in (left null when it took none).
   * `taken.unsaved` is set when what the slot holds now must not be saved as the chat's prefix (a
   * sequence rolled by `streaming`).
   */
  async function runGeneration(
    input: GenerateInput,
    controller: AbortController,
    requestedAt: number,
    taken: { slot: Slot<Resident> | null; unsaved: boolean },
  ): Promise<Result<GenerateOutput>> {
    const { requestId, sampling } = input;
    let messages = input.messages;
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
    const current = loaded;
    const { model, context, slots } = current;
    const policy = current.profile.overflowPolicy;
    runningRequestId = requestId;
    try {
      // Every slot's LlamaChat resolved the same wrapper for this model: any renders the prompt.
      const wrapper = slots.slots[0]!.resident.chat.chatWrapper;
      const render = (list: readonly PromptMessage[]): Token[] =>
        wrapper.generateContextState({ chatHistory: toChatHistory(list) }).contextText.tokenize(model.tokenizer);
      let history = toChatHistory(messages);
      let promptTokens = render(messages);
      const contextSize = context.contextSize;
      const maxTokens = Math.max(1, Math.floor(sampling.maxTokens));
      const reserve = Math.min(MIN_REPLY_TOKENS, maxTokens);
      // What the overflow policies keep free for the reply (overflow.ts `replyReserve`).
      const roomy = replyReserve(contextSize, maxTokens, MIN_REPLY_TOKENS);
      const overflow = (length: number) =>
        err<GenerateOutput>(
          'CONTEXT_OVERFLOW',
          `The conversation is ${length} tokens long, but the context holds ${contextSize} tokens (and the reply needs room too).`,
          'Start a new chat, shorten the message, or raise the context size in Settings.',
        );
      /** Why older messages are not in this turn's prompt (the readout). */
      let overflowNote: string | undefined;
      if (policy === 'refuse' && promptTokens.length + reserve > contextSize) return overflow(promptTokens.length);
      if (policy === 'rebuild' && promptTokens.length + roomy > contextSize) {
        // Drop the oldest messages until the rest plus the reply's room fits; the kept window is
        // then read from a clean point (LlamaChat erases only the tail after what the sequence
        // shares with it), or restored from the store when it holds it. Nothing is shifted.
        const fits = (room: number) => (list: readonly PromptMessage[]) => render(list).length + room <= contextSize;
        const window = rebuildWindow(messages, fits(roomy)) ?? rebuildWindow(messages, fits(reserve));
        if (!window) return overflow(promptTokens.length);
        if (window.dropped > 0) {
          overflowNote = `the conversation (${promptTokens.length} tokens) outgrew the context (${contextSize} tokens), so its oldest ${window.dropped} messages were left out (the system prompt kept)`;
          messages = window.messages;
          history = toChatHistory(messages);
          promptTokens = render(messages);
        }
      }
      const fitsContext = promptTokens.length + reserve <= contextSize;
      // LlamaChat shifts the context once the sequence reaches contextSize − 1 tokens; stop
      // the reply just before that instead (see the module comment). `shift` lets it shift.
      const roomLeft = contextSize - promptTokens.length - 2;
      const effectiveMaxTokens = policy === 'shift' ? maxTokens : Math.max(1, Math.min(maxTokens, roomLeft));

      // Only a prompt that fits (or that a policy makes fit) takes a slot: a refused one must not
      // swap another chat out.
      const { slot, took, lost } = await slots.acquire(input.chatId);
      taken.slot = slot;
      const { sequence, chat } = slot.resident;
      if (took !== null) log('debug', `slot ${slot.index}: ${input.chatId} takes it from ${took}`);
      // The user forgot this chat's cache (forgetChat with reread): nothing the sequence still
      // holds is reused, and nothing is restored, so the turn reads its whole history again.
      const wasForgotten = forgotten.delete(input.chatId);
      if (wasForgotten) {
        current.streams.delete(sequence);
        if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
        kvCache?.markClean(sequence);
      }
      const rolled = current.streams.get(sequence);
      // `streaming` rolls the window whenever the prompt or the reply may reach the end of the context.
      if (policy === 'streaming' && (promptTokens.length + Math.max(roomy, maxTokens + 1) > contextSize || rolled?.chatId === input.chatId)) {
        return await runStreamTurn(input, controller, requestedAt, taken, slot, promptTokens, history, roomy, wasForgotten);
      }
      if (rolled) {
        // A sequence rolled by `streaming` is no prefix of any prompt LlamaChat renders: start empty.
        current.streams.delete(sequence);
        await sequence.clearHistory();
        kvCache?.markClean(sequence);
      }
      if (sequence.nextTokenIndex > 0 && sequence.compareContextTokens(promptTokens).firstDifferentIndex === 0) {
        // Nothing in it is this prompt's (another chat's tokens, an edited first message): start
        // empty. A shared prefix (a system prompt) is kept instead, and LlamaChat erases only the
        // tail after it. A cleared sequence is a clean prefix again for the KV store.
        await sequence.clearHistory();
        kvCache?.markClean(sequence);
      }

      // A prompt longer than the context (`shift` compresses it inside LlamaChat) cannot be restored.
      const fromStore =
        fitsContext && !wasForgotten ? await restoreFromStore(current, slot, input.chatId, promptTokens) : { restored: 0, restoreMs: undefined, fallbackReason: kvOffReason ?? undefined };
      const restored = fromStore.restored;
      const restoreMs = fromStore.restoreMs;
      let fallbackReason = wasForgotten ? joinReasons(FORGOTTEN_REASON, fromStore.fallbackReason) : fromStore.fallbackReason;
      const { reused: inMemory, prefilled } = measureReuse(sequence, promptTokens);
      const reused = restored > 0 ? 0 : inMemory;
      // What the store holds of the sequence from now on: a restore replaced it; else LlamaChat
      // keeps the first `inMemory` tokens and evaluates the rest anew.
      if (restored > 0) slots.restored(slot, restored);
      else slots.kept(slot, inMemory);
      // A chat that lost its slot and got back less than it had (and this prompt still shares)
      // re-read the rest: say why, unless the store already said.
      const reread = Math.min(lost, promptTokens.length - 1) - reused - restored;
      if (reread > 0 && (fallbackReason === undefined || !kvCache)) {
        const paused = kvCache?.store.persistencePaused;
        const why = !kvCache
          ? 'KV persistence is off'
          : paused
            ? `KV persistence was paused (${paused.reason.message})`
            : 'the store did not hold all of it';
        const swap = `this chat's slot went to another chat and ${why}, so ${reread} tokens of its history were read again`;
        fallbackReason = fallbackReason === undefined ? swap : `${fallbackReason}; ${swap}`;
      }
      if (overflowNote !== undefined) {
        const how = restored > 0 ? `; the kept ${restored} tokens were restored from disk` : prefilled > 1 ? `; ${prefilled} tokens of the kept messages were read` : '';
        fallbackReason = fallbackReason === undefined ? `${overflowNote}${how}` : `${overflowNote}${how}; ${fallbackReason}`;
      }
      const inputTokensBefore = sequence.tokenMeter.usedInputTokens;
      const evaluationStart = performance.now();
      let firstTokenAt: number | null = null;
      let tokensGenerated = 0;
      const stream = tokenStream(requestId);

      let stopReason: GenerateOutput['stopReason'];
      let text: string;
      let shifted = false;
      try {
        const response = await slots.during(slot, 'generating', () => chat.generateResponse(history, {
          signal: controller.signal,
          stopOnAbortSignal: true,
          maxTokens: effectiveMaxTokens,
          temperature: sampling.temperature > 0 ? sampling.temperature : 0,
          ...(sampling.temperature > 0 && sampling.topP > 0 && sampling.topP < 1 ? { topP: sampling.topP } : {}),
          // node-llama-cpp's default seed is the time in whole seconds, so replies sampled
          // within one second would repeat each other.
          ...(sampling.temperature > 0 ? { seed: randomInt(2 ** 31) } : {}),
          // `shift`: node-llama-cpp's chat-level shift (drop the first messages, keep the system
          // prompt, re-read the rest: tail erases only). The others never get there.
          ...(policy === 'shift'
            ? {}
            : {
                contextShift: {
                  strategy: () => {
                    throw new ContextShiftRefused('The reply reached the end of the context.');
                  },
                },
              }),
          onToken: (tokens) => {
            if (firstTokenAt === null) firstTokenAt = performance.now();
            tokensGenerated += tokens.length;
          },
          onTextChunk: (chunk) => stream.push(chunk),
        }));
        stream.flush();
        shifted = response.lastEvaluation.contextShiftMetadata != null;
        text = stream.settle(response.response);
        const reason = response.metadata.stopReason;
        stopReason = reason === 'abort' ? 'aborted' : reason === 'maxTokens' ? 'maxTokens' : 'eos';
      } catch (error) {
        stream.flush();
        if (controller.signal.aborted) {
          // Aborted before any text: LlamaChat throws the signal's reason instead of returning.
          text = stream.text;
          stopReason = 'aborted';
        } else if (error instanceof ContextShiftRefused) {
          return err('CONTEXT_OVERFLOW', `The reply reached the end of the context (${contextSize} tokens).`, 'Start a new chat, or raise the context size in Settings.');
        } else if (error instanceof KvEditRefused) {
          return err('CONTEXT_OVERFLOW', error.message, error.hint);
        } else if (policy === 'shift' && error instanceof Error && /context shift strategy|context size is too small/i.test(error.message)) {
          return overflow(promptTokens.length);
        } else {
          throw error;
        }
      }
      if (controller.signal.aborted) stopReason = 'aborted';
      // Each generated token but the last is fed back as input: anything beyond that and the
      // prefill means LlamaChat did not reuse what was in the sequence (the stats would lie).
      const evaluated = sequence.tokenMeter.usedInputTokens - inputTokensBefore;
      let statsReused = reused;
      let statsPrefilled = prefilled;
      if (shifted || !fitsContext) {
        // node-llama-cpp's shift rendered a shorter history than `promptTokens`: count what it evaluated.
        statsReused = 0;
        statsPrefilled = Math.max(0, evaluated - Math.max(0, tokensGenerated - 1));
        const note = 'the conversation outgrew the context, so node-llama-cpp\'s context shift left out its oldest messages (the system prompt kept) and read the rest again';
        fallbackReason = fallbackReason === undefined ? note : `${note}; ${fallbackReason}`;
      } else if (evaluated > prefilled + tokensGenerated) {
        log('warn', `The prompt needed ${evaluated - tokensGenerated} evaluated tokens where ${prefilled} were expected (${restored} restored, ${reused} reused).`);
      }
      const ttftMs = firstTokenAt === null ? performance.now() - requestedAt : firstTokenAt - requestedAt;
      const stats: MessageStats = {
        tokensReused: statsReused,
        tokensRestored: restored,
        tokensPrefilled: statsPrefilled,
        tokensGenerated,
        ttftMs: Math.round(ttftMs * 10) / 10,
        prefillMs: Math.round(((firstTokenAt ?? performance.now()) - evaluationStart) * 10) / 10,
        cacheSource: restored > 0 ? 'disk' : statsReused > 0 ? 'memory' : 'none',
        ...(restoreMs !== undefined ? { restoreMs } : {}),
        ...(fallbackReason !== undefined ? { fallbackReason } : {}),
      };
      return ok({ text, stopReason, stats });
    } finally {
      runningRequestId = null;
    }
  }

  /**
   * Loads the longest prefix of `promptTokens` the KV store holds beyond what the slot's sequence
   * already has (KvCache.restore), and says why not when it cannot.
   */
  async function restoreFromStore(
    current: Loaded,
    slot: Slot<Resident>,
    chatId: string,
    promptTokens: Token[],
  ): Promise<{ restored: number; restoreMs: number | undefined; fallbackReason: string | undefined }> {
    let restored = 0;
    let restoreMs: number | undefined;
    let fallbackReason: string | undefined = kvOffReason ?? undefined;
    const kvProfile = current.kvProfile;
    if (kvCache && kvProfile) {
      // A model seen before has its hash cached (milliseconds). A first hash of a large file
      // takes seconds, and nothing can be stored for an unhashed model yet: do not wait.
      let timer: NodeJS.Timeout | undefined;
      const profile = await Promise.race([kvProfile, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), KV_PROFILE_WAIT_MS)))]);
      clearTimeout(timer);
      if (profile === null) {
        fallbackReason = 'the model file is still being hashed, so its stored KV cannot be checked yet';
      } else if (profile.fingerprint !== null) {
        const cache = kvCache;
        const sequence = slot.resident.sequence;
        const report = await current.slots.during(slot, 'restoring', () => cache.restore(profile, sequence, promptTokens, { manifestPrefix: `${chatId}/` }));
        restored = report.tokensRestored;
        if (restored > 0) restoreMs = report.restoreMs;
        fallbackReason = report.fallbackReason;
      } else {
        fallbackReason = profile.fallbackReason;
      }
    }
    return { restored, restoreMs, fallbackReason };
  }

  /**
   * `token` events for one reply, batched (at most one per TOKEN_FLUSH_MS; the first at once).
   * `settle` reconciles the final text with what was streamed, so the deltas add up to the reply.
   */
  function tokenStream(requestId: string) {
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
    return {
      get text(): string {
        return streamed;
      },
      flush,
      push(chunk: string): void {
        pending += chunk;
        const now = performance.now();
        if (now - lastFlush >= TOKEN_FLUSH_MS) flush();
        else flushTimer ??= setTimeout(flush, TOKEN_FLUSH_MS - (now - lastFlush));
      },
      /** The reply's final text: text the wrapper held back (a possible stop trigger) is streamed too. */
      settle(final: string): string {
        flush();
        if (final.startsWith(streamed) && final.length > streamed.length) {
          emit({ type: 'token', requestId, delta: final.slice(streamed.length) });
          streamed = final;
          return final;
        }
        if (!final.startsWith(streamed)) {
          log('warn', `The reply differs from the streamed text (${final.length} vs ${streamed.length} characters); keeping the streamed text.`);
          return streamed;
        }
        return final;
      },
    };
  }

  /**
   * A `streaming` turn (streaming.ts): the slot's sequence keeps 4 sink tokens plus a recent
   * window, evicting older cells through the guard instead of reading the history again. What a
   * rolled sequence holds is not a prefix of the chat, so it is never saved as one.
   */
  async function runStreamTurn(
    input: GenerateInput,
    controller: AbortController,
    requestedAt: number,
    taken: { unsaved: boolean },
    slot: Slot<Resident>,
    promptTokens: Token[],
    history: ChatHistoryItem[],
    roomy: number,
    wasForgotten: boolean,
  ): Promise<Result<GenerateOutput>> {
    const current = loaded!;
    const { sequence, chat } = slot.resident;
    const { sampling, requestId } = input;
    const contextSize = current.context.contextSize;
    const rolled = current.streams.get(sequence);
    const window = rolled?.chatId === input.chatId ? rolled : null;
    if (rolled && window === null) {
      // Another chat's window: nothing of it is this chat's (its sinks included, as far as the store knows).
      current.streams.delete(sequence);
      await current.guard.truncate(sequence, 0);
      kvCache?.markClean(sequence);
    }
    // A sequence that is not rolled is a plain prefix: the store may hold more of the prompt.
    const fromStore =
      window === null && !wasForgotten && promptTokens.length + MIN_REPLY_TOKENS <= contextSize
        ? await restoreFromStore(current, slot, input.chatId, promptTokens)
        : { restored: 0, restoreMs: undefined, fallbackReason: wasForgotten ? joinReasons(FORGOTTEN_REASON, kvOffReason ?? undefined) : (kvOffReason ?? undefined) };
    const stream = tokenStream(requestId);
    const evaluationStart = performance.now();
    let firstTokenAt: number | null = null;
    let out;
    try {
      out = await current.slots.during(slot, 'generating', () =>
        streamTurn({
          chatId: input.chatId,
          sequence,
          model: current.model,
          guard: current.guard,
          window,
          prompt: promptTokens,
          budget: contextSize - roomy,
          shiftSize: streamShiftSize(contextSize),
          maxTokens: Math.max(1, Math.floor(sampling.maxTokens)),
          temperature: sampling.temperature > 0 ? sampling.temperature : 0,
          ...(sampling.temperature > 0 && sampling.topP > 0 && sampling.topP < 1 ? { topP: sampling.topP } : {}),
          ...(sampling.temperature > 0 ? { seed: randomInt(2 ** 31) } : {}),
          signal: controller.signal,
          stopTriggers: chat.chatWrapper.generateContextState({ chatHistory: history }).stopGenerationTriggers,
          onClear: () => kvCache?.markClean(sequence),
          onToken: () => {
            firstTokenAt ??= performance.now();
          },
          onText: (delta) => stream.push(delta),
        }),
      );
    } catch (error) {
      stream.flush();
      current.streams.delete(sequence);
      if (error instanceof KvEditRefused) return err('CONTEXT_OVERFLOW', error.message, error.hint);
      throw error;
    }
    const text = stream.settle(out.text);
    if (out.outside > 0 && out.window) {
      current.streams.set(sequence, out.window);
      taken.unsaved = true;
    } else {
      current.streams.delete(sequence);
      if (out.outside > 0) {
        // What the sequence holds is not known exactly: start the next turn from empty.
        await current.guard.truncate(sequence, 0);
        kvCache?.markClean(sequence);
        taken.unsaved = true;
      }
    }
    // Restored cells are the store's; kept ones (from a restore or an earlier turn) are in memory.
    const restored = Math.min(fromStore.restored, out.reused);
    if (restored > 0) current.slots.restored(slot, restored);
    else current.slots.kept(slot, out.reused);
    let fallbackReason = fromStore.fallbackReason;
    if (out.outside > 0) {
      const how = out.skipped > 0 ? `; ${out.skipped} of them were not read this turn` : out.evicted > 0 ? `; ${out.evicted} were evicted this turn without reading anything again` : '';
      const note = `the conversation outgrew the context (${contextSize} tokens): StreamingLLM keeps its first ${SINK_TOKENS} tokens and the most recent ones, so ${out.outside} older tokens are no longer seen${how}`;
      fallbackReason = fallbackReason === undefined ? note : `${note}; ${fallbackReason}`;
    }
    const ttftMs = firstTokenAt === null ? performance.now() - requestedAt : firstTokenAt - requestedAt;
    const stats: MessageStats = {
      tokensReused: out.reused - restored,
      tokensRestored: restored,
      tokensPrefilled: out.prefilled,
      tokensGenerated: out.tokensGenerated,
      ttftMs: Math.round(ttftMs * 10) / 10,
      prefillMs: Math.round(((firstTokenAt ?? performance.now()) - evaluationStart) * 10) / 10,
      cacheSource: restored > 0 ? 'disk' : out.reused > 0 ? 'memory' : 'none',
      ...(fromStore.restoreMs !== undefined && restored > 0 ? { restoreMs: fromStore.restoreMs } : {}),
      ...(fallbackReason !== undefined ? { fallbackReason } : {}),
    };
    return ok({ text, stopReason: controller.signal.aborted ? 'aborted' : out.stopReason, stats });
  }

  /**
   * The KV codec's kernels, chosen once per process (the native addon, else the TypeScript
   * fallback with the reason, which is logged once as a warning).
   */
  function codecKernels(): ReturnType<typeof loadKernels> {
    if (codec) return codec;
    codec = loadKernels();
    if (codec.info.kernels === 'fallback') log('warn', `The KV codec uses its TypeScript fallback (slower, same output): ${codec.info.reason ?? 'the native addon did not load'}.`);
    return codec;
  }

  /** Loads the bindings once; opens the KV store when the host names its directory. */
  async function initHandler(input: WorkerMethods['init']['input']): Promise<Result<WorkerMethods['init']['output']>> {
    {
      const level = input.logLevel;
      if (level in levelRank) logLevel = level;
      const opened = await initLlama();
      if (!opened.ok) return opened;
      const { kernels, info } = codecKernels();
      if (typeof input.kvDir === 'string' && input.kvDir !== '' && !kvCache && llama) {
        const cache = await KvCache.open({
          root: input.kvDir,
          budgetBytes: typeof input.kvBudgetBytes === 'number' && input.kvBudgetBytes >= 0 ? input.kvBudgetBytes : 10 * 1024 ** 3,
          ...(typeof input.kvChunkTokens === 'number' && input.kvChunkTokens > 0 ? { chunkTokens: input.kvChunkTokens } : {}),
          // The backend is part of it: GPU kernels may compute other K/V bytes than the CPU's.
          llamaRelease: `${llama.llamaCppRelease.release}/${llama.gpu === false ? 'cpu' : llama.gpu}`,
          compression: input.kvCompression === 'off' || input.kvCompression === 'lossy' ? input.kvCompression : 'lossless',
          kernels,
          log,
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
      return ok({ build: opened.value.build, codec: info });
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
          return err('INTERNAL', `llama.cpp could not be loaded: ${errorText(error)}`);
        }
      })();
      return initializing;
    }
  }

  const handlers: WorkerHandlers = {
    init: (input) => initHandler(input),

    // Not under the lock: the planner reads metadata and simulates contexts without allocating,
    // so the settings screen answers while a reply streams.
    ...createPlanHandlers({ llama: ensureLlama, loadedContext: () => loaded?.context ?? null }),

    loadModel,

    async unloadModel() {
      abortRunning();
      await lock.run(() => disposeLoaded(UNLOAD_SAVE_MS));
      return ok({});
    },

    generate,

    // Under the lock: it queues behind a running reply instead of sharing the CPU with it.
    measureQuality: (input) =>
      lock.run(async () => (loaded ? measureLoadedQuality(loaded.model, loaded.context, input, { kernels: codecKernels().kernels, log: (message) => log('warn', message) }) : err('MODEL_NOT_LOADED', 'No model is loaded.', 'Load a model to measure its KV cache quality.'))),

    async abort({ requestId }) {
      const controller = generations.get(requestId);
      if (!controller || controller.signal.aborted) return ok({ aborted: false });
      controller.abort(new Error('aborted'));
      return ok({ aborted: true });
    },

    download: (input) => downloads.download(input),

    cancelDownload: ({ downloadId }) => downloads.cancel(downloadId),

    async forgetChat({ chatId, reread }) {
      if (typeof chatId !== 'string' || chatId === '') return err('INVALID_INPUT', 'forgetChat needs a chatId.');
      // Not under the lock: a queued swap or quit must not save the forgotten chat back.
      loaded?.slots.release(chatId);
      if (reread === true) {
        // The slot may still hold the chat's tokens (release only unbinds it): the next turn
        // clears them instead of reusing them (runGeneration).
        forgotten.delete(chatId);
        forgotten.add(chatId);
        if (forgotten.size > FORGOTTEN_MEMORY) forgotten.delete(forgotten.values().next().value!);
      } else {
        forgotten.delete(chatId);
      }
      const cache = kvCache;
      if (!cache) return ok({ bytesFreed: 0 });
      const result = await cache.forget(`${chatId}/`);
      // A save of it already running or queued (its last turn's) would write it back: forget
      // again once that is done.
      void lock.run(() => cache.forget(`${chatId}/`)).catch(() => undefined);
      if (!result.ok) return result;
      if (result.value.manifests > 0 || reread === true) kvActivity(forgetActivity(chatId, result.value));
      return ok({ bytesFreed: result.value.bytesFreed });
    },

    // Under the engine lock, so the check never sees a save halfway (the store's own lock would
    // also serialise it, but a turn's save spans several store calls).
    async kvVerify({ repair }) {
      if (typeof repair !== 'boolean') return err('INVALID_INPUT', 'kvVerify needs repair: boolean.');
      const cache = kvCache;
      if (!cache) return ok(uncheckedReport);
      return lock.run(async () => {
        const started = performance.now();
        const report = await cache.store.checkIntegrity({ verify: true, repair });
        return report.ok ? ok(summarizeIntegrity(report.value, performance.now() - started)) : report;
      });
    },

    async kvChats({ limit }) {
      if (!Number.isInteger(limit) || limit < 0) return err('INVALID_INPUT', 'kvChats needs a whole-number limit ≥ 0.');
      if (!kvCache) return ok({ chats: [] });
      const usage = kvCache.store.chatUsage({ limit });
      return usage.ok ? ok({ chats: usage.value }) : usage;
    },

    async chatCache({ chatId }) {
      if (typeof chatId !== 'string' || chatId === '') return err('INVALID_INPUT', 'chatCache needs a chatId.');
      const slot = loaded?.slots.slots.find((s) => s.chatId === chatId) ?? null;
      let tokensOnDisk = 0;
      let bytesOnDisk = 0;
      if (kvCache) {
        const usage = kvCache.store.chatUsage({ chatId });
        if (!usage.ok) return usage;
        tokensOnDisk = usage.value[0]?.tokens ?? 0;
        bytesOnDisk = usage.value[0]?.bytes ?? 0;
      }
      return ok({ slot: slot?.index ?? null, tokensInMemory: slot?.resident.sequence.nextTokenIndex ?? 0, tokensOnDisk, bytesOnDisk });
    },

    // Never under the lock, and cheap: the Cache view asks four times a second, also while a
    // reply streams. Only the device reading and the store's totals take I/O, at most once a second.
    async metrics() {
      const current = loaded;
      const [deviceNow, stats] = await Promise.all([current ? device.get().catch(() => null) : null, storeStats.get().catch(() => null)]);
      let kvStore: EngineMetrics['kvStore'];
      if (stats?.ok) {
        const v = stats.value;
        kvStore = {
          bytesOnDisk: v.bytesOnDisk,
          storedBytes: v.storedBytes,
          rawBytes: v.rawBytes,
          chunkCount: v.chunkCount,
          manifests: v.manifests,
          logicalBytes: v.logicalBytes,
          budgetBytes: v.budget,
          freeBytes: v.freeBytes,
        };
      }
      // The model may have changed while the device was read: describe the one loaded now.
      const now = loaded === current ? current : null;
      const slots: EngineMetrics['slots'] = now
        ? now.slots.slots.map((slot) => {
            const cellsUsed = slot.resident.sequence.nextTokenIndex;
            return {
              index: slot.index,
              chatId: slot.chatId,
              cellsUsed,
              cellsCapacity: now.context.contextSize,
              state: slot.state,
              kType: now.profile.kType,
              vType: now.profile.vType,
              bytes: cellsUsed * now.kvBytesPerCell,
            };
          })
        : [];
      let memory: EngineMetrics['memory'];
      if (now && deviceNow) {
        const usage = now.context.memoryUsage;
        memory = {
          device: deviceNow,
          gpuLayers: now.model.gpuLayers,
          weights: now.weights,
          context: { ramBytes: usage.ram, vramBytes: usage.vram },
          kvBytesPerCell: now.kvBytesPerCell,
        };
      }
      return ok({
        kvCellsUsed: slots.reduce((sum, slot) => sum + slot.cellsUsed, 0),
        kvCellsCapacity: now ? now.context.getAllocatedContextSize() : 0,
        slots,
        ...(kvStore ? { kvStore } : {}),
        ...(memory ? { memory } : {}),
      });
    },
  };

  return {
    handlers,
    async flush(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        lock.run(async () => loaded?.slots.saveDirty(deadline)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    },
    async dispose(saveTimeoutMs = UNLOAD_SAVE_MS) {
      abortRunning();
      await downloads.cancelAll();
      await lock.run(() => disposeLoaded(saveTimeoutMs));
      unwatchKv?.();
      unwatchKv = null;
      await kvCache?.close();
      kvCache = null;
      await llama?.dispose();
      llama = null;
    },
  };
}
