/**
 * Loading and unloading the model: its weights, one context whose `contextSize` is per slot
 * (node-llama-cpp allocates contextSize × sequences cells, each sequence its own llama.cpp
 * stream, so Settings' "context size per slot" holds), a sequence and LlamaChat per slot, and
 * the KV store's profile, hashed in the background. Dirty slots are saved before an unload, so
 * their chats restore with the next load.
 */
import { basename, extname } from 'node:path';
import { stat } from 'node:fs/promises';
import { LlamaChat, type ChatModelFunctions, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel } from 'node-llama-cpp';
import { err, ok, type ModelInfo, type Result, type SpeedProfile, type SpeedSettings, errorText } from '../contract/index.ts';
import type { ResolvedProfile, SpeedRequest, WorkerMethods } from '../protocol.ts';
import { AUTO_CONTEXT_CAP, MAX_CONTEXT_SIZE } from './constants.ts';
import { callItems, toChatHistory, ViewCosts, type ViewRenderer } from './context-view.ts';
import { checkResolvedProfile, ggmlKvTypeName, kvTypeFromGgml } from './kv-types.ts';
import { classifyLoadFailure } from './logs.ts';
import { KvGuard, SINK_TOKENS, streamShiftSize, type StreamWindow } from './overflow.ts';
import { contextMemory, readModelShape } from './planner.ts';
import { kvBytesPerToken, MAX_SLOTS } from './planner-core.ts';
import type { Loaded, Resident, RuntimeState } from './runtime-state.ts';
import { SlotTable } from './slots.ts';
import { saveResident } from './turn-kv.ts';
import { StateTransfer } from './state-transfer.ts';
import { measureSpeed } from './speed.ts';
import { allPositiveIntegers, isSpeedSettings, needsFlashAttention, speedSpace, trialCount } from './speed-choice.ts';

/** How long an unload or model change may spend saving dirty slots first. */
export const UNLOAD_SAVE_MS = 2000;

type LoadInput = WorkerMethods['loadModel']['input'];

/** A checked `loadModel` request. The profile, when there is one, decides the context size and slots. */
interface LoadRequest {
  readonly path: string;
  readonly threads: number;
  readonly requested: ResolvedProfile | undefined;
  readonly contextSize: number;
  readonly slotCount: number;
  readonly speed: SpeedRequest | undefined;
}

/** A checked `loadModel` speed request (it comes from another process), or why it is not one. */
function checkSpeed(speed: SpeedRequest | undefined): string | null {
  if (speed === undefined) return null;
  if (!['auto', 'on', 'off'].includes(speed.flashAttention) || !Array.isArray(speed.threads) || !allPositiveIntegers(speed.threads)) {
    return 'speed needs a flash attention setting and thread counts ≥ 1';
  }
  if (speed.known !== undefined && !isSpeedSettings(speed.known)) return "speed's known settings need flashAttention, threads ≥ 1 and batchSize ≥ 1";
  return null;
}

/** The flash attention a load has without a measurement: the profile's, else the model's default. */
function profileFlashAttention(model: LlamaModel, request: LoadRequest): boolean {
  return request.requested ? request.requested.flashAttention : model.defaultContextFlashAttention === true;
}

function checkLoadInput(input: LoadInput): Result<LoadRequest> {
  const { path, threads } = input;
  const requested = input.profile;
  if (requested !== undefined) {
    const problem = checkResolvedProfile(requested);
    if (problem !== null) return err('INVALID_INPUT', `loadModel's profile is invalid: ${problem}.`);
  }
  // The host sends both the same.
  const contextSize = requested?.contextSize ?? input.contextSize;
  const slotCount = requested?.slots ?? input.slots ?? 1;
  const speedProblem = checkSpeed(input.speed);
  if (speedProblem !== null) return err('INVALID_INPUT', `loadModel's ${speedProblem}.`);
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
  return ok({ path, threads, requested, contextSize, slotCount, speed: input.speed });
}

/** Unloads the current model (aborting its running reply), then loads this one, under the lock. */
export async function loadModel(state: RuntimeState, ensureLlama: () => Promise<Result<Llama>>, input: LoadInput): Promise<Result<WorkerMethods['loadModel']['output']>> {
  const request = checkLoadInput(input);
  if (!request.ok) return request;
  const bindings = await ensureLlama();
  if (!bindings.ok) return bindings;
  state.abortRunning();
  return state.lock.run(async () => {
    await disposeLoaded(state, UNLOAD_SAVE_MS);
    let fileSize: number;
    try {
      const info = await stat(request.value.path);
      if (!info.isFile()) return err('MODEL_INVALID', `${request.value.path} is not a file.`);
      fileSize = info.size;
    } catch (error) {
      return err('NOT_FOUND', `The model file ${request.value.path} cannot be read: ${errorText(error)}`);
    }
    return loadUnderLock(state, bindings.value, request.value, fileSize);
  });
}

/** Call under the lock. Dirty slots are saved first (the chats then restore with the next model load). */
export async function disposeLoaded(state: RuntimeState, saveTimeoutMs: number): Promise<void> {
  const current = state.loaded;
  if (!current) return;
  await current.slots.saveDirty(performance.now() + saveTimeoutMs);
  state.loaded = null;
  for (const slot of current.slots.slots) slot.resident.chat.dispose({ disposeSequence: true });
  await current.context.dispose();
  await current.model.dispose();
  // The state buffer kept for the next save or restore was sized for this model.
  state.kvCache?.releaseMemory();
}

async function loadUnderLock(state: RuntimeState, llama: Llama, request: LoadRequest, fileSize: number): Promise<Result<WorkerMethods['loadModel']['output']>> {
  const { path, requested } = request;
  const mark = state.logRing.mark();
  let model: LlamaModel | null = null;
  let context: LlamaContext | null = null;
  try {
    let lastProgress = -1;
    state.emit({ type: 'loadProgress', progress: 0 });
    model = await llama.loadModel({
      modelPath: path,
      // A model option, not a context one: the layers are placed when the weights load.
      ...(typeof requested?.gpuLayers === 'number' ? { gpuLayers: requested.gpuLayers } : {}),
      onLoadProgress: (progress) => {
        // Whole percents are plenty for a progress bar, and keep IPC quiet on big files.
        const rounded = Math.floor(progress * 100) / 100;
        if (rounded > lastProgress) {
          lastProgress = rounded;
          state.emit({ type: 'loadProgress', progress: rounded });
        }
      },
    });
    const { settings, speed } = await contextSettings(state, llama, model, request);
    context = await createContextFalling(state, llama, model, request, settings);
    state.loaded = await assemble(state, model, context, request, fileSize);
    state.emit({ type: 'loadProgress', progress: 1 });
    return ok(speed ? { ...state.loaded.info, speed } : state.loaded.info);
  } catch (error) {
    await context?.dispose().catch(() => undefined);
    await model?.dispose().catch(() => undefined);
    // llama.cpp's log reaches JS through a thread-safe callback, so the line that explains
    // the failure can arrive after the rejection; give it a moment before reading the ring.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const failure = classifyLoadFailure(error, state.logRing.since(mark), state.build);
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
}

/** The context's settings: without a speed request, `threads` and the profile's; else measured before, or measured now. */
async function contextSettings(state: RuntimeState, llama: Llama, model: LlamaModel, request: LoadRequest): Promise<{ settings: ContextSettings; speed?: SpeedProfile }> {
  const { requested, speed } = request;
  const vType = requested?.vType ?? 'f16';
  if (speed === undefined) return { settings: { flashAttention: profileFlashAttention(model, request), threads: request.threads === 0 ? llama.cpuMathCores : request.threads } };
  // Whatever the request says.
  if (speed.known) return { settings: { ...speed.known, flashAttention: speed.known.flashAttention || needsFlashAttention(vType) } };
  const space = speedSpace({ setting: speed.flashAttention, supported: readModelShape(model.fileInsights).flashAttentionSupported, vType, threads: speed.threads });
  state.emit({ type: 'speedProgress', done: 0, total: trialCount(space) });
  const profile = await measureSpeed(model, {
    kType: requested?.kType ?? 'f16',
    vType,
    engine: llama.buildType === 'localBuild' ? 'local' : 'prebuilt',
    device: state.device,
    space,
    onTrial: (trial, done, total) => {
      if (trial.error !== undefined) state.log('warn', `speed measurement: flash attention ${trial.flashAttention ? 'on' : 'off'}, ${trial.threads} threads, batch ${trial.batchSize} could not run: ${trial.error}`);
      state.emit({ type: 'speedProgress', done, total });
    },
  });
  state.log('info', `speed measured in ${profile.durationMs} ms: flash attention ${profile.chosen.flashAttention ? 'on' : 'off'}, ${profile.chosen.threads} threads, batch ${profile.chosen.batchSize}`);
  return { settings: profile.chosen, speed: profile };
}

/** What a context is created with besides its size and K/V types; no batch size is node-llama-cpp's default. */
type ContextSettings = Omit<SpeedSettings, 'batchSize'> & { readonly batchSize?: number };

/**
 * The context with measured settings; if llama.cpp refuses them at the full context size (the
 * measurement's small context fitted where this one does not, say with flash attention off and
 * its larger compute buffer), with the profile's own flash attention and the default batch.
 */
async function createContextFalling(state: RuntimeState, llama: Llama, model: LlamaModel, request: LoadRequest, settings: ContextSettings): Promise<LlamaContext> {
  const plain: ContextSettings = { flashAttention: profileFlashAttention(model, request), threads: settings.threads };
  if (request.speed === undefined || (settings.flashAttention === plain.flashAttention && settings.batchSize === undefined)) return createContext(model, request, settings);
  try {
    return await createContext(model, request, settings);
  } catch (error) {
    state.log('warn', `the context could not be created with the measured settings (${errorText(error)}); using flash attention ${plain.flashAttention ? 'on' : 'off'} and the default batch size`);
    return createContext(model, request, plain);
  }
}

function createContext(model: LlamaModel, request: LoadRequest, settings: ContextSettings): Promise<LlamaContext> {
  const { contextSize, requested } = request;
  const trained = model.trainContextSize;
  // A file without a trained length (0) gets the cap: llama.cpp would read 0 as "the trained length".
  const size = contextSize !== 0 ? contextSize : trained > 0 ? Math.min(trained, AUTO_CONTEXT_CAP) : AUTO_CONTEXT_CAP;
  return model.createContext({
    // Per sequence: every slot holds a whole conversation of `size` tokens (see the module comment).
    contextSize: size,
    sequences: request.slotCount,
    threads: settings.threads,
    ...(settings.batchSize !== undefined ? { batchSize: Math.min(settings.batchSize, size * request.slotCount) } : {}),
    // Explicit, never "auto": the stored KV layout depends on it (kv-shape.ts: V is transposed without it).
    flashAttention: settings.flashAttention,
    experimentalKvCacheKeyType: ggmlKvTypeName(requested?.kType ?? 'f16'),
    experimentalKvCacheValueType: ggmlKvTypeName(requested?.vType ?? 'f16'),
  });
}

/** The loaded model's slots, guard, profile and description, once its context exists. */
async function assemble(state: RuntimeState, model: LlamaModel, context: LlamaContext, request: LoadRequest, fileSize: number): Promise<Loaded> {
  const { path, requested, slotCount } = request;
  const kType = kvTypeFromGgml(context.kvCacheKeyType);
  const vType = kvTypeFromGgml(context.kvCacheValueType);
  const profile: ResolvedProfile = {
    kType: kType ?? requested?.kType ?? 'f16',
    vType: vType ?? requested?.vType ?? 'f16',
    flashAttention: context.flashAttention === true,
    contextSize: request.contextSize,
    gpuLayers: requested?.gpuLayers ?? 'auto',
    slots: slotCount,
    overflowPolicy: requested?.overflowPolicy ?? 'drop-oldest',
    ...(requested?.dropTarget !== undefined ? { dropTarget: requested.dropTarget } : {}),
  };
  // The K type the context really has decides; one Hearth does not know counts as quantized.
  const guard = new KvGuard({
    kType: kType ?? 'q8_0',
    onFragmented: (sequence, from) => state.kvCache?.markFragmented(sequence as LlamaContextSequence, from),
  });
  const residents = createResidents(context, guard, slotCount);
  const metadataName = model.fileInfo.metadata.general?.name;
  const memory = await contextMemory(model, context);
  const info: ModelInfo = {
    path,
    name: typeof metadataName === 'string' && metadataName.trim() !== '' ? metadataName : basename(path, extname(path)),
    sizeBytes: fileSize,
    architecture: String(model.fileInfo.metadata.general?.architecture ?? 'unknown'),
    trainedContextLength: model.trainContextSize,
    contextSize: context.contextSize,
    layerCount: Number(model.fileInfo.architectureMetadata.block_count ?? model.fileInsights.totalLayers - 1),
    ...(kType && vType ? { kvType: { k: kType, v: vType } } : {}),
    flashAttention: context.flashAttention === true,
    gpuLayers: model.gpuLayers,
    threads: context.currentThreads,
    batchSize: context.batchSize,
    ...(memory ? { memory } : {}),
  };
  // Hashing a large model file takes a while the first time (cached after): it runs in the
  // background and the first generation waits for it.
  // The probe borrows the first slot's sequence before any chat can use it.
  const transfer = state.kvCache ? await StateTransfer.forContext(context, residents[0]?.sequence) : null;
  const kvProfile = state.kvCache && transfer ? state.kvCache.prepare({ model, context, modelPath: path, flashAttention: context.flashAttention === true, transfer }) : null;
  const slots = new SlotTable<Resident>({
    residents,
    tokens: (resident) => resident.sequence.nextTokenIndex,
    save: (resident, manifestId, chatId) => saveResident(state, kvProfile, resident, manifestId, chatId),
  });
  // Once per load: metrics multiplies it by the cells in use four times a second.
  const kvBytesPerCell = kvBytesPerToken(readModelShape(model.fileInsights), { kType: profile.kType, vType: profile.vType });
  const weights = { ramBytes: model.memoryUsage.ram, vramBytes: model.memoryUsage.vram };
  const streams = new Map<LlamaContextSequence, StreamWindow>();
  const view = viewRenderer(model, residents[0]!.chat);
  return { model, context, slots, info, kvProfile, profile, guard, streams, view, viewCosts: new ViewCosts(view), kvBytesPerCell, weights };
}

/**
 * Prompts rendered with the chat template LlamaChat resolved for the model, and texts tokenized.
 * With `functions`, the template also documents them (in the system prompt, for most wrappers)
 * exactly as LlamaChat's generateResponse does when it is given them: same functions, and
 * `documentFunctionParams` left to the wrapper's default as the turn leaves it, so the tokens the
 * overflow policy fits are the tokens LlamaChat evaluates.
 */
export function viewRenderer(model: LlamaModel, chat: LlamaChat, functions?: ChatModelFunctions): ViewRenderer {
  const wrapper = chat.chatWrapper;
  return {
    render: (messages) => wrapper.generateContextState({ chatHistory: toChatHistory(messages), ...(functions ? { availableFunctions: functions } : {}) }).contextText.tokenize(model.tokenizer),
    tokenize: (text) => model.tokenize(text).length,
    calls: (calls) => wrapper.generateModelResponseText(callItems(calls)).tokenize(model.tokenizer).length,
  };
}

/**
 * A sequence and LlamaChat per slot. node-llama-cpp's own context shift goes through the guard
 * too, and is refused: no policy lets it run (streaming.ts passes its own per turn).
 */
function createResidents(context: LlamaContext, guard: KvGuard, slotCount: number): Resident[] {
  const residents: Resident[] = [];
  for (let i = 0; i < slotCount; i++) {
    const sequence = context.getSequence({
      contextShift: {
        size: streamShiftSize(context.contextSize),
        strategy: guard.shiftStrategy({ keep: SINK_TOKENS, allowed: false }),
      },
    });
    residents.push({ sequence, chat: new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false }) });
  }
  return residents;
}
