/**
 * The memory planner on this machine: reads a model's GGUF metadata (a local file, or only the
 * header of a remote one), the device's memory, and feeds planner-core.ts with node-llama-cpp's
 * `estimateContextResourceRequirementsV2`. Serves the worker methods `plan`, `checkProfile` and
 * `fitRemote` (fit-core.ts's verdicts for a remote model's files), and the planned-vs-measured
 * pair of `ModelInfo.memory` (`contextMemory`).
 */
import { createHash } from 'node:crypto';
import { freemem, totalmem } from 'node:os';
import { stat } from 'node:fs/promises';
import { GgmlType, GgufInsights, readGgufFileInfo, type Llama, type LlamaContext, type LlamaModel } from 'node-llama-cpp';
import { err, ok, type DeviceMemory, type FileFit, type KvCacheType, type KvPlan, type ModelProfile, type Result, errorText } from '../contract/index.ts';
import type { WorkerMethods } from '../protocol.ts';
import { AUTO_CONTEXT_CAP } from './constants.ts';
import { deviceTotals, fileFit } from './fit-core.ts';
import { buildPlan, MAX_PLAN_CONTEXT, MAX_SLOTS, memoizeEstimator, type ContextEstimator, type ModelShape, type Reserve } from './planner-core.ts';
import { checkProfileCore, type ProfileCheck } from './profile-check.ts';
import type { WorkerHandlers } from './serve.ts';

/** node-llama-cpp's names of the contract's KV types. */
export const ggmlKvType: Readonly<Record<KvCacheType, GgmlType>> = {
  f16: GgmlType.F16,
  q8_0: GgmlType.Q8_0,
  q5_1: GgmlType.Q5_1,
  q5_0: GgmlType.Q5_0,
  q4_1: GgmlType.Q4_1,
  q4_0: GgmlType.Q4_0,
  iq4_nl: GgmlType.IQ4_NL,
};

/** The planner's facts about a model, from its metadata alone. */
export function readModelShape(insights: GgufInsights): ModelShape {
  const arch = insights.ggufFileInfo.architectureMetadata;
  const layers = arch.block_count ?? Math.max(0, insights.totalLayers - 1);
  const headCount = arch.attention?.head_count ?? 0;
  const kvHeads = arch.attention?.head_count_kv ?? headCount;
  const headCountKv = Array.from({ length: layers }, (_, layer) => (Array.isArray(kvHeads) ? (kvHeads[layer] ?? 0) : kvHeads));
  const embedding = arch.embedding_length ?? 0;
  const defaultHead = headCount > 0 ? Math.floor(embedding / headCount) : 0;
  return {
    layers,
    headCountKv,
    headDimK: arch.attention?.key_length ?? defaultHead,
    headDimV: arch.attention?.value_length ?? defaultHead,
    trainedContextLength: insights.trainContextSize ?? 0,
    flashAttentionSupported: insights.flashAttentionSupported,
    weightsBytes: insights.modelSize,
  };
}

/**
 * The V2 estimate of a context's memory (every buffer llama.cpp would allocate for it, weights
 * excluded), as the engine would create it: `batchSize` left to node-llama-cpp's default, as
 * model-load.ts leaves it.
 */
export function v2Estimator(insights: GgufInsights, gpuLayers: number): ContextEstimator {
  return async ({ contextSize, slots, pair, flashAttention }) => {
    const estimate = await insights.estimateContextResourceRequirementsV2({
      contextSize,
      sequences: slots,
      modelGpuLayers: gpuLayers,
      flashAttention,
      kvCacheKeyType: ggmlKvType[pair.kType],
      kvCacheValueType: ggmlKvType[pair.vType],
    });
    return estimate.cpuRam + estimate.gpuVram;
  };
}

/** What this engine holds now that a load would give back. */
export interface Reclaimable {
  readonly vramBytes: number;
  readonly ramBytes: number;
}

/**
 * The device's memory, and what to keep free of it. Backend and GPU name from the Llama
 * instance; VRAM from `getVramState` (on Apple silicon Metal reports
 * `recommendedMaxWorkingSetSize` as the total: what Metal lets the process use; `unifiedSize` > 0
 * marks unified memory); RAM from node:os (free = MemAvailable on Linux). What this engine holds
 * now (the loaded model's VRAM, its context's RAM) counts as free, since a load replaces it. A
 * RAM or VRAM cap (`setRamCap`, RAM_CAP_ENV) caps both and is itself the budget; otherwise
 * node-llama-cpp's paddings are kept free.
 */
export async function readDevice(llama: Llama, reclaim: Reclaimable = { vramBytes: 0, ramBytes: 0 }): Promise<{ device: DeviceMemory; reserve: Reserve }> {
  const ramCap = llama.getRamCap();
  const ramTotal = ramCap === null ? totalmem() : Math.min(totalmem(), ramCap);
  const ramFree = Math.min(ramTotal, freemem() + reclaim.ramBytes);
  const ramReserve = ramCap === null ? llama.ramPaddingSize : 0;
  if (llama.gpu === false) {
    return {
      device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: ramTotal, ramFreeBytes: ramFree },
      reserve: { vramBytes: 0, ramBytes: ramReserve },
    };
  }
  const vram = await llama.getVramState();
  const vramCap = llama.getVramCap();
  const vramTotal = vramCap === null ? vram.total : Math.min(vram.total, vramCap);
  const names = await llama.getGpuDeviceNames().catch(() => []);
  return {
    device: {
      backend: llama.gpu,
      ...(names[0] ? { gpuName: names[0] } : {}),
      vramTotalBytes: vramTotal,
      vramFreeBytes: Math.min(vramTotal, vram.free + reclaim.vramBytes),
      unifiedMemory: vram.unifiedSize > 0,
      ramTotalBytes: ramTotal,
      ramFreeBytes: ramFree,
    },
    reserve: { vramBytes: vramCap === null ? llama.vramPaddingSize : 0, ramBytes: ramReserve },
  };
}

/**
 * The planner's estimate of a live context beside what llama.cpp allocated for it; null when the
 * estimate cannot be made. For `ModelInfo.memory`.
 * - planned: `estimateContextResourceRequirementsV2` for the context's own parameters. It loads
 *   the model's metadata into llama.cpp without allocating (no_alloc) and sets up a context the
 *   same way, then reads llama.cpp's memory breakdown (KV, compute and output buffers).
 * - measured: `LlamaContext.memoryUsage` (ram + vram): llama.cpp's memory breakdown of the live
 *   context, read by node-llama-cpp right after the buffers were allocated. Not used:
 *   `stateSize` (the serialized cells in use, not the allocation), and process RSS/VRAM deltas
 *   (allocator and driver overheads, other processes, lazily touched pages).
 * On the CPU the two are equal (planner.model.test.ts), since both run the same llama.cpp code;
 * on GPU backends the simulation can differ, which is what the comparison is for
 * (docs/decisions/memory-estimate.md).
 */
export async function contextMemory(model: LlamaModel, context: LlamaContext): Promise<{ plannedBytes: number; measuredBytes: number } | null> {
  try {
    const planned = await model.fileInsights.estimateContextResourceRequirementsV2({
      contextSize: context.contextSize,
      sequences: context.totalSequences,
      modelGpuLayers: model.gpuLayers,
      batchSize: context.batchSize,
      flashAttention: context.flashAttention,
      kvCacheKeyType: context.kvCacheKeyType,
      kvCacheValueType: context.kvCacheValueType,
    });
    const measured = context.memoryUsage;
    return { plannedBytes: planned.cpuRam + planned.gpuVram, measuredBytes: measured.ram + measured.vram };
  } catch {
    return null;
  }
}

/** How long reading a remote model's header may take. */
const REMOTE_HEADER_TIMEOUT_MS = 30_000;
/** Models whose metadata (and estimator) stay cached: the settings screen asks again and again. */
const INSIGHTS_CACHE_SIZE = 4;

export interface PlannerDeps {
  /** The engine's Llama instance (llama-init.ts `ensureLlama`). */
  readonly llama: () => Promise<Result<Llama>>;
  /** The loaded model's context, whose memory a load gives back; null when none is loaded. */
  readonly loadedContext: () => LlamaContext | null;
}

/** The planner of one engine process: `plan` and `checkProfile`, with the models' metadata cached. */
export class Planner {
  readonly #deps: PlannerDeps;
  readonly #insights = new Map<string, Promise<GgufInsights>>();

  constructor(deps: PlannerDeps) {
    this.#deps = deps;
  }

  /** The planner's table for a model (worker method `plan`). */
  async plan(input: WorkerMethods['plan']['input']): Promise<Result<KvPlan>> {
    const { path, contextSize, slots } = input ?? ({} as WorkerMethods['plan']['input']);
    if (typeof path !== 'string' || path === '') return err('INVALID_INPUT', 'plan needs a path.');
    if (!Number.isInteger(contextSize) || contextSize < 1 || contextSize > MAX_PLAN_CONTEXT) return err('INVALID_INPUT', `plan needs a contextSize from 1 to ${MAX_PLAN_CONTEXT}.`);
    if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) return err('INVALID_INPUT', `plan needs 1 to ${MAX_SLOTS} slots.`);
    const llama = await this.#deps.llama();
    if (!llama.ok) return llama;
    const insights = await this.#read(llama.value, { path });
    if (!insights.ok) return insights;
    try {
      const { device, reserve } = await readDevice(llama.value, await this.#reclaimable(llama.value));
      const gpuLayers = device.backend === 'cpu' ? 0 : insights.value.totalLayers;
      return ok(await buildPlan({ shape: readModelShape(insights.value), device, reserve, contextSize, slots, estimate: v2Estimator(insights.value, gpuLayers) }));
    } catch (error) {
      return err('INTERNAL', `The planner failed: ${errorText(error)}`);
    }
  }

  /** Validates a profile and resolves its "auto"s (worker method `checkProfile`, profile-check.ts `checkProfileCore`). */
  async checkProfile(input: WorkerMethods['checkProfile']['input']): Promise<Result<ProfileCheck>> {
    const { path, profile } = input ?? ({} as WorkerMethods['checkProfile']['input']);
    if (typeof path !== 'string' || path === '' || !isProfile(profile)) return err('INVALID_INPUT', 'checkProfile needs a path and a profile.');
    const llama = await this.#deps.llama();
    if (!llama.ok) return llama;
    const insights = await this.#read(llama.value, { path });
    if (!insights.ok) return ok({ issues: [{ field: 'model', severity: 'error', message: insights.error.message }], resolved: null });
    try {
      const { device, reserve } = await readDevice(llama.value, await this.#reclaimable(llama.value));
      const totalLayers = insights.value.totalLayers;
      const gpuLayers = device.backend === 'cpu' ? 0 : profile.gpuLayers === 'auto' ? totalLayers : Math.min(profile.gpuLayers, totalLayers);
      return ok(
        await checkProfileCore({
          shape: readModelShape(insights.value),
          device,
          reserve,
          profile,
          estimate: v2Estimator(insights.value, gpuLayers),
          totalLayers,
          autoContextCap: AUTO_CONTEXT_CAP,
        }),
      );
    } catch (error) {
      return err('INTERNAL', `The profile check failed: ${errorText(error)}`);
    }
  }

  /**
   * Fit verdicts for the files of one remote model (worker method `fitRemote`), from the header
   * of one of them: only the header's bytes are fetched. Each file's weights are its size less
   * the header file's overhead (its size less its tensors' bytes): files of one model share
   * metadata and vocabulary, so their headers are near enough the same size. One estimator
   * serves every file: llama.cpp's context memory (KV, compute and output buffers) depends on the
   * shape and the KV types, not on the weights' quantization (fit.model.test.ts measures it
   * equal on headers of one shape with Q4_K_M, Q8_0 and F16 tensors).
   */
  async fitRemote(input: WorkerMethods['fitRemote']['input']): Promise<Result<WorkerMethods['fitRemote']['output']>> {
    const invalid = fitRemoteInputProblem(input);
    if (invalid !== null) return err('INVALID_INPUT', invalid);
    const llama = await this.#deps.llama();
    if (!llama.ok) return llama;
    const insights = await this.#read(llama.value, { uri: input.url, headers: input.headers ?? {} });
    if (!insights.ok) return insights;
    try {
      const { device, reserve } = await readDevice(llama.value);
      const gpuLayers = device.backend === 'cpu' ? 0 : insights.value.totalLayers;
      const shape = readModelShape(insights.value);
      const estimate = memoizeEstimator(v2Estimator(insights.value, gpuLayers));
      const overhead = Math.max(0, input.sizeBytes - insights.value.modelSize);
      const fits: Record<string, FileFit> = {};
      for (const file of input.files) {
        fits[file.id] = await fileFit({ shape: { ...shape, weightsBytes: Math.max(0, file.sizeBytes - overhead) }, device, reserve, estimate });
      }
      return ok({ device: deviceTotals(device), fits });
    } catch (error) {
      return err('INTERNAL', `The fit verdicts failed: ${errorText(error)}`);
    }
  }

  async #reclaimable(llama: Llama): Promise<Reclaimable> {
    const context = this.#deps.loadedContext();
    if (!context) return { vramBytes: 0, ramBytes: 0 };
    // VRAM: everything this engine holds (the model and its context) goes with the next load.
    // RAM: the context's buffers; the weights are mmapped file pages, already counted as free.
    const usage = await llama.getLlamaMemoryUsage();
    return { vramBytes: usage.gpuVram, ramBytes: context.memoryUsage.ram };
  }

  /**
   * The model's metadata and estimator, cached by file identity (a changed file is read again;
   * a remote one by its address and headers). A remote source (fitRemote) is read with its
   * headers alone: node-llama-cpp would otherwise retry a refused Hugging Face request with a
   * token of its own finding (HF_TOKEN, the huggingface-cli token file), so a verdict could
   * succeed where Hearth's download, which uses Hearth's token, fails.
   */
  async #read(llama: Llama, source: { path: string } | { uri: string; headers: Readonly<Record<string, string>> }): Promise<Result<GgufInsights>> {
    let key: string;
    if ('path' in source) {
      try {
        const info = await stat(source.path);
        if (!info.isFile()) return err('MODEL_INVALID', `${source.path} is not a file.`);
        key = `path:${source.path}:${info.size}:${info.mtimeMs}`;
      } catch (error) {
        return err('NOT_FOUND', `The model file ${source.path} cannot be read: ${errorText(error)}`);
      }
    } else {
      // With headers, they are part of the key: a token added or removed reads the file again.
      key = `uri:${source.uri}#${createHash('sha256').update(JSON.stringify(Object.entries(source.headers).sort())).digest('hex')}`;
    }
    let pending = this.#insights.get(key);
    if (!pending) {
      pending = (async () => {
        const info =
          'path' in source
            ? await readGgufFileInfo(source.path, { sourceType: 'filesystem', logWarnings: false })
            : await readGgufFileInfo(source.uri, {
                logWarnings: false,
                signal: AbortSignal.timeout(REMOTE_HEADER_TIMEOUT_MS),
                fetchRetryOptions: { retries: 2 },
                sourceType: 'network',
                fetchHeaders: { ...source.headers },
                tokens: noFoundToken,
              });
        return GgufInsights.from(info, llama);
      })();
      this.#insights.set(key, pending);
      while (this.#insights.size > INSIGHTS_CACHE_SIZE) this.#insights.delete(this.#insights.keys().next().value!);
    }
    try {
      const insights = await pending;
      if (!insights.isSupportedByLlamaCpp) {
        const arch = String(insights.ggufFileInfo.metadata.general?.architecture ?? 'unknown');
        return err('MODEL_UNSUPPORTED', `llama.cpp does not support this model's architecture (${arch}).`);
      }
      return ok(insights);
    } catch (error) {
      this.#insights.delete(key);
      if ('path' in source) return err('MODEL_INVALID', `The GGUF header of ${source.path} cannot be read: ${errorText(error)}`);
      return remoteHeaderError(source.uri, error);
    }
  }
}

/**
 * node-llama-cpp's "no token of its own" (its source: a Hugging Face token given as null is not
 * looked up in HF_TOKEN or the token file); its type says string only.
 */
const noFoundToken = { huggingFace: null } as unknown as { huggingFace?: string };

/**
 * Why a remote header could not be read, as the contract's codes. node-llama-cpp's reader throws
 * plain errors, so the kind is told from the message: "Failed to fetch byte range: <status>" for
 * an HTTP refusal, 416 or "exceeds the file size" when the file ends inside its header, undici's
 * "fetch failed" (or an abort) when the server is not reached; anything else is the parser's,
 * a file that is not a GGUF.
 */
function remoteHeaderError(url: string, error: unknown): Result<never> {
  const text = errorText(error);
  const status = /Failed to fetch byte range: (\d{3})/.exec(text)?.[1];
  if (status === '401' || status === '403') {
    return err('AUTH_REQUIRED', `The server refused to send the header of ${url} (HTTP ${status}).`, 'The repository may be gated or private: add a Hugging Face token that may read it, or accept its terms on Hugging Face.');
  }
  if (status === '404') return err('NOT_FOUND', `There is no file at ${url} (HTTP 404).`);
  // 416: the range asked for starts past the end, so the file ends inside its header (or is empty).
  if (status === '416' || /exceeds the file size/.test(text)) return err('MODEL_INVALID', `The file at ${url} ends before its GGUF header does.`);
  if (status !== undefined) return err('NETWORK_ERROR', `The server answered HTTP ${status} for the header of ${url}.`, 'Try again later.');
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError' || name === 'TimeoutError' || /fetch failed|ECONN|ENOTFOUND|EAI_AGAIN|socket/i.test(text)) {
    return err('NETWORK_ERROR', `The header of ${url} could not be fetched: ${text}`, 'Check the network connection.');
  }
  return err('MODEL_INVALID', `The file at ${url} is not a GGUF model: ${text}`);
}

/** Why a `fitRemote` input is malformed, or null. */
function fitRemoteInputProblem(input: WorkerMethods['fitRemote']['input'] | undefined): string | null {
  if (typeof input !== 'object' || input === null) return 'fitRemote needs an input.';
  if (typeof input.url !== 'string' || !/^https?:\/\//.test(input.url)) return 'fitRemote needs an http(s) url.';
  if (input.headers !== undefined && (typeof input.headers !== 'object' || input.headers === null || Object.values(input.headers).some((value) => typeof value !== 'string'))) {
    return 'fitRemote headers must be strings.';
  }
  const isSize = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (!isSize(input.sizeBytes)) return 'fitRemote needs the file\'s sizeBytes.';
  if (!Array.isArray(input.files) || input.files.some((file) => typeof file?.id !== 'string' || file.id === '' || !isSize(file.sizeBytes))) {
    return 'fitRemote needs files, each with an id and sizeBytes.';
  }
  return null;
}

function isProfile(value: unknown): value is ModelProfile {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return ['kType', 'vType', 'flashAttention', 'overflowPolicy'].every((key) => typeof p[key] === 'string') &&
    typeof p.contextSize === 'number' && typeof p.slots === 'number' && (p.gpuLayers === 'auto' || typeof p.gpuLayers === 'number');
}

/** The worker handlers `plan`, `checkProfile` and `fitRemote` (runtime.ts spreads them into its handlers). */
export function createPlanHandlers(deps: PlannerDeps): Pick<WorkerHandlers, 'plan' | 'checkProfile' | 'fitRemote'> {
  const planner = new Planner(deps);
  return {
    plan: (input) => planner.plan(input),
    checkProfile: (input) => planner.checkProfile(input),
    fitRemote: (input) => planner.fitRemote(input),
  };
}
