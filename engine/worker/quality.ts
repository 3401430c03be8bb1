/**
 * The quality meter: how far a quantized KV cache pair moves a model's next-token distributions
 * away from an F16 cache, so a user can see what a smaller cache costs before choosing it
 * (docs/decisions/kv-quality.md). Mean KL(P_f16 ‖ Q_pair) and top-1 agreement over a short
 * calibration text, both sides evaluated with the same model, flash attention, threads and batch.
 * F16/F16 is the reference itself, so the loaded-model entry point marks it `reference` instead
 * of reporting a KL 0 and top-1 1 that nothing measured.
 *
 * For the lossy disk encoding the meter compares a restore from lossy chunks with a bit-exact
 * restore of the same state, since that is the choice the setting makes.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { constants as fsConstants, accessSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgmlType, InsufficientMemoryError, type ControlledEvaluateIndexOutput, type ControlledEvaluateInputItem, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { err, kvCacheTypes, ok, type KvCacheType, type KvLossyQuality, type KvQuality, type Result, errorText } from '../contract/index.ts';
import { assembleStateFile, cutChunks, readStateFile } from '../kv/codec.ts';
import { decodeChunk, encodeChunk, lossyApplies } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { loadKernels } from '../kv/kernels-load.ts';
import type { WorkerMethods } from '../protocol.ts';
import { ggmlKvTypeName, kvTypeFromGgml } from './kv-types.ts';
import { denseDistribution, QualityTally, qualityVerdict } from './quality-math.ts';

/** Positions compared by default: a few seconds on a 1B-class model on a laptop CPU. */
export const DEFAULT_QUALITY_TOKENS = 512;

/** Tokens per evaluation (and the contexts' batch size): bounds the logits and Maps held at once. */
const CHUNK_TOKENS = 64;

/**
 * Tokens listed per distribution. The whole vocabulary is exact but cost ~165 ms a position at a
 * 152k vocabulary on a laptop CPU (the N-API array and the Map dominate); top-4096 ~11 ms. With a
 * vocabulary of at most TOP_K tokens (test and byte-level models) the KL is exact; with a larger
 * one it is the KL of the two top-TOP_K distributions, renormalized, the tokens only one side
 * lists lumped into one "rest" outcome (quality-math.ts): it leaves out the tail beyond the
 * 4096th token, a tiny share of a trained model's mass. Top-1 agreement is exact either way.
 */
export const TOP_K = 4096;

/**
 * Sampling options that leave the logits as they are and keep the TOP_K best candidates. The
 * seed only picks the sampled token, which the meter ignores.
 */
const listing = { probabilities: true, options: { temperature: 1, topK: TOP_K, topP: 1, minP: 0, seed: 0 } } as const;

/**
 * A one-sequence context for the meter's comparisons, sized for `tokens` tokens (+1 for the
 * prediction after the last) and batched by CHUNK_TOKENS; pushed onto `contexts`, which the
 * caller disposes.
 */
async function meterContext(
  model: LlamaModel,
  contexts: LlamaContext[],
  o: { readonly tokens: number; readonly threads: number; readonly flashAttention: boolean; readonly k: KvCacheType; readonly v: KvCacheType },
): Promise<LlamaContext> {
  const context = await model.createContext({
    contextSize: o.tokens + 1,
    sequences: 1,
    batchSize: CHUNK_TOKENS,
    threads: o.threads,
    flashAttention: o.flashAttention,
    experimentalKvCacheKeyType: ggmlKvTypeName(o.k),
    experimentalKvCacheValueType: ggmlKvTypeName(o.v),
  });
  contexts.push(context);
  return context;
}

/** The tokens the meter evaluates: BOS where the model wants one, then the text, capped. */
export function calibrationTokens(model: LlamaModel, text: string, maxTokens = DEFAULT_QUALITY_TOKENS): Token[] {
  const bos = model.tokens.bos;
  const tokens = model.tokenize(text, false);
  const all = bos !== null && model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
  return all.slice(0, Math.max(0, Math.floor(maxTokens)));
}

/**
 * Measures the K/V pair `options.kType`/`options.vType` against F16/F16 on `model` (a real
 * measurement, also for f16/f16: then it checks that the two contexts agree): mean
 * KL(P_f16 ‖ Q_pair) in nats and top-1 agreement over the calibration text's first tokens, and
 * the verdict (quality-math.ts). `text` is the calibration text (assets/calibration.txt);
 * `maxTokens` the positions to compare, its first tokens (default DEFAULT_QUALITY_TOKENS).
 * Creates and disposes two small contexts beside any the model already has (llama.cpp allows
 * several per model); keep other work off the model meanwhile only for stable timings. Failures are data: INVALID_INPUT for an empty text or a
 * quantized V without flash attention, OUT_OF_MEMORY when a context does not fit, INTERNAL else.
 */
export async function measureKvQuality(
  model: LlamaModel,
  options: { kType: KvCacheType; vType: KvCacheType; flashAttention: boolean; threads: number; text: string; maxTokens?: number },
): Promise<Result<KvQuality>> {
  const { kType, vType, flashAttention, threads } = options;
  if (!kvCacheTypes.includes(kType) || !kvCacheTypes.includes(vType)) return err('INVALID_INPUT', `Unknown KV cache type pair ${String(kType)}/${String(vType)}.`);
  if (vType !== 'f16' && !flashAttention) {
    // llama.cpp refuses the context ("quantized V cache requires flash_attn").
    return err('INVALID_INPUT', `A ${vType} V cache needs flash attention.`, 'Turn flash attention on, or keep V at f16.');
  }
  const tokens = calibrationTokens(model, options.text, options.maxTokens);
  if (tokens.length < 2) return err('INVALID_INPUT', 'The calibration text has too few tokens to measure.');

  const contexts: LlamaContext[] = [];
  try {
    const create = (k: KvCacheType, v: KvCacheType): Promise<LlamaContext> => meterContext(model, contexts, { tokens: tokens.length, threads, flashAttention, k, v });
    let reference: LlamaContext;
    let candidate: LlamaContext;
    try {
      reference = await create('f16', 'f16');
      candidate = await create(kType, vType);
    } catch (error) {
      if (error instanceof InsufficientMemoryError) {
        return err('OUT_OF_MEMORY', `There is not enough memory for the quality meter's two ${tokens.length}-token contexts.`, 'Unload other programs, or lower the context size.');
      }
      return err('INTERNAL', `The quality meter could not create a ${kType}/${vType} context: ${errorText(error)}`);
    }
    const tally = new QualityTally();
    const compared = await compareSequences(reference.getSequence(), candidate.getSequence(), tokens, tally);
    if (!compared.ok) return compared;
    const klDivergence = tally.meanKl;
    const top1Agreement = tally.top1Agreement;
    return ok({
      kType,
      vType,
      klDivergence,
      top1Agreement,
      verdict: qualityVerdict(klDivergence, top1Agreement),
      positions: tally.positions,
      measuredAt: Date.now(),
    });
  } catch (error) {
    return err('INTERNAL', `The quality meter failed: ${errorText(error)}`);
  } finally {
    for (const context of contexts) await context.dispose().catch(() => undefined);
  }
}

/**
 * Evaluates `tokens` in both sequences, in chunks that alternate between them, and adds each
 * position's pair of next-token distributions to `tally` (`reference` is P). Alternating chunks
 * bound memory: only one chunk's reference distributions are held at a time (64 × 4 bytes ×
 * vocabulary, ~39 MB at a 152k vocabulary).
 */
async function compareSequences(reference: LlamaContextSequence, candidate: LlamaContextSequence, tokens: readonly Token[], tally: QualityTally): Promise<Result<void>> {
  for (let start = 0; start < tokens.length; start += CHUNK_TOKENS) {
    const input: ControlledEvaluateInputItem[] = tokens.slice(start, start + CHUNK_TOKENS).map((token) => [token, { generateNext: listing }]);
    const referenceDistributions: Float32Array[] = [];
    await reference.controlledEvaluate(input, {
      onTokenResult: (index, result) => {
        const dense = takeDistribution(result);
        if (dense) referenceDistributions[index] = dense;
      },
    });
    let missing = 0;
    await candidate.controlledEvaluate(input, {
      onTokenResult: (index, result) => {
        const dense = takeDistribution(result);
        const p = referenceDistributions[index];
        if (dense && p) tally.add(p, dense);
        else missing++;
      },
    });
    if (missing > 0) return err('INTERNAL', `The quality meter got no distribution for ${missing} positions.`);
  }
  return ok(undefined);
}

/**
 * Converts a result's Map to a dense array and removes it from the result: `controlledEvaluate`
 * also returns every result in an array, which would otherwise keep a chunk's Maps alive.
 */
function takeDistribution(result: ControlledEvaluateIndexOutput): Float32Array | null {
  const map = result.next.probabilities;
  delete result.next.probabilities;
  return map ? denseDistribution(map) : null;
}

/** Tokens per chunk the lossy measurement cuts the state into: the KV store's default chunk size. */
const LOSSY_CHUNK_TOKENS = 256;

/**
 * Where the lossy measurement's state files go: a RAM file system when there is one (they are
 * scratch, read back at once), else the system's temporary directory.
 */
function defaultScratchRoot(): string {
  if (process.platform === 'linux') {
    try {
      accessSync('/dev/shm', fsConstants.W_OK);
      return '/dev/shm';
    } catch {
      // no usable RAM file system
    }
  }
  return tmpdir();
}

export interface LossyQualityOptions {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly flashAttention: boolean;
  readonly threads: number;
  /** The tokens: the first half (rounded down) is restored, the rest compared. */
  readonly tokens: readonly Token[];
  readonly kernels: CodecKernels;
  /** The directory the two scratch state files go under (default /dev/shm where writable, else the temp directory). */
  readonly scratchDir?: string;
  /** Tokens per chunk the state is cut into (default 256, the KV store's). */
  readonly chunkTokens?: number;
}

/**
 * The lossy disk encoding against a bit-exact restore. The first half of `tokens` is evaluated
 * with the pair and its state saved, cut into the store's chunks and assembled twice: as it is
 * (what a lossless restore loads) and with every chunk through `encodeChunk(…, 'lossy')` and
 * `decodeChunk`; each is loaded into a fresh sequence and the second half's distributions are
 * compared, the lossless restore as P. ok(null) when
 * lossy does not apply to the pair (no F16 side: lossy stores a quantized cache losslessly).
 * Creates and disposes two contexts sized for the tokens, and two scratch files. Never throws.
 */
export async function measureLossyQuality(model: LlamaModel, options: LossyQualityOptions): Promise<Result<KvLossyQuality | null>> {
  const { kType, vType, flashAttention, threads, tokens, kernels } = options;
  // Cheap first answer from the pair; lossyApplies on the saved file's shape decides below.
  if (kType !== 'f16' && vType !== 'f16') return ok(null);
  if (vType !== 'f16' && !flashAttention) return err('INVALID_INPUT', `A ${vType} V cache needs flash attention.`);
  const half = Math.floor(tokens.length / 2);
  if (half < 1 || tokens.length - half < 1) return err('INVALID_INPUT', 'The calibration text has too few tokens to measure the lossy encoding.');
  let dir: string | null = null;
  const contexts: LlamaContext[] = [];
  try {
    dir = await mkdtemp(join(options.scratchDir ?? defaultScratchRoot(), 'hearth-lossy-'));
    const create = (): Promise<LlamaContext> => meterContext(model, contexts, { tokens: tokens.length, threads, flashAttention, k: kType, v: vType });
    let reference: LlamaContext;
    let candidate: LlamaContext;
    try {
      reference = await create();
      candidate = await create();
    } catch (error) {
      if (error instanceof InsufficientMemoryError) return err('OUT_OF_MEMORY', `There is not enough memory for two ${tokens.length}-token contexts.`);
      return err('INTERNAL', `Could not create a ${kType}/${vType} context: ${errorText(error)}`);
    }
    const referenceSequence = reference.getSequence();
    const candidateSequence = candidate.getSequence();
    const prefix = tokens.slice(0, half);
    await referenceSequence.evaluateWithoutGeneratingNewTokens(prefix as Token[]);
    const savedPath = join(dir, 'saved.bin');
    await referenceSequence.saveStateToFile(savedPath);
    const parsed = await readStateFile(savedPath);
    if (!parsed.ok) return parsed;
    const shape = parsed.value.shape;
    if (!lossyApplies(shape)) return ok(null);
    const cut = cutChunks(parsed.value, options.chunkTokens ?? LOSSY_CHUNK_TOKENS);
    if (!cut.ok) return cut;
    if (cut.value.cleanLength !== half) return err('INTERNAL', `The saved state holds a clean prefix of ${cut.value.cleanLength} tokens, not ${half}.`);
    const lossless = [...cut.value.chunks, ...(cut.value.tail ? [cut.value.tail] : [])].map((chunk) => chunk.payload);
    const lossy: Uint8Array[] = [];
    for (const payload of lossless) {
      const stored = encodeChunk(shape, payload, 'lossy', kernels);
      if (!stored.ok) return stored;
      const decoded = decodeChunk(shape, stored.value, kernels);
      if (!decoded.ok) return decoded;
      lossy.push(decoded.value);
    }
    const files: [string, Uint8Array[]][] = [
      [join(dir, 'lossless.bin'), lossless],
      [join(dir, 'lossy.bin'), lossy],
    ];
    for (const [path, payloads] of files) {
      const assembled = assembleStateFile(shape, payloads);
      if (!assembled.ok) return assembled;
      await writeFile(path, assembled.value);
    }
    // The reference sequence holds the evaluated prefix; it is replaced by the restored one, so
    // both sides are restores (a load followed by evaluation, as in the app).
    await referenceSequence.clearHistory();
    await referenceSequence.loadStateFromFile(files[0]![0], { acceptRisk: true });
    await candidateSequence.loadStateFromFile(files[1]![0], { acceptRisk: true });
    for (const sequence of [referenceSequence, candidateSequence]) {
      if (sequence.nextTokenIndex !== half) return err('INTERNAL', `A restored sequence holds ${sequence.nextTokenIndex} tokens, not ${half}.`);
    }
    const tally = new QualityTally();
    const compared = await compareSequences(referenceSequence, candidateSequence, tokens.slice(half), tally);
    if (!compared.ok) return compared;
    return ok({ klVsLossless: tally.meanKl, top1Agreement: tally.top1Agreement, positions: tally.positions });
  } catch (error) {
    return err('INTERNAL', `The lossy measurement failed: ${errorText(error)}`);
  } finally {
    for (const context of contexts) await context.dispose().catch(() => undefined);
    if (dir !== null) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The kernels the meter uses when its caller passes none: loaded once (kernels-load.ts). */
let defaultKernels: CodecKernels | null = null;

export interface LoadedQualityOptions {
  /** The codec kernels (the worker's, loaded at init); default `loadKernels()`'s. */
  readonly kernels?: CodecKernels;
  /** Where the lossy measurement's scratch files go (see `measureLossyQuality`). */
  readonly scratchDir?: string;
  /** Says why the lossy figure is missing when its measurement failed (default: console.warn). */
  readonly log?: (message: string) => void;
}

/**
 * The `measureQuality` worker handler's work (runtime.ts calls it under the engine lock, so it
 * never overlaps a generation): the loaded context's own pair, flash attention and threads.
 * With F16/F16 loaded nothing is measured for the main figures: the pair is the reference, so
 * the result says `reference: true` and its KL 0 and agreement 1 are definitions, not
 * measurements (a measurement on CPU gives exactly that, test-checked); `positions` is what a
 * measurement would have compared.
 * When the pair has an F16 side, `lossy` is added (`measureLossyQuality` over the same
 * calibration tokens); when that measurement fails, `lossy` is left out and `log` says why: the
 * main figures still stand.
 */
export async function measureLoadedQuality(model: LlamaModel, context: LlamaContext, input: WorkerMethods['measureQuality']['input'], options: LoadedQualityOptions = {}): Promise<Result<KvQuality>> {
  const path = input?.calibrationPath;
  if (typeof path !== 'string' || path === '') return err('INVALID_INPUT', 'measureQuality needs a calibrationPath.');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return err('NOT_FOUND', `The calibration text ${path} cannot be read: ${errorText(error)}`, 'Reinstall Hearth: the file ships with it.');
  }
  const kType = kvTypeFromGgml(context.kvCacheKeyType);
  const vType = kvTypeFromGgml(context.kvCacheValueType);
  if (kType === null || vType === null) {
    return err('NOT_SUPPORTED', `The loaded context's KV cache types (${GgmlType[context.kvCacheKeyType]}/${GgmlType[context.kvCacheValueType]}) are not ones the quality meter compares.`);
  }
  const flashAttention = context.flashAttention === true;
  const threads = context.currentThreads;
  const tokens = calibrationTokens(model, text);
  const main: Result<KvQuality> =
    kType === 'f16' && vType === 'f16'
      ? ok({ kType, vType, klDivergence: 0, top1Agreement: 1, verdict: 'near-lossless', positions: tokens.length, measuredAt: Date.now(), reference: true })
      : await measureKvQuality(model, { kType, vType, flashAttention, threads, text });
  if (!main.ok || (kType !== 'f16' && vType !== 'f16')) return main;
  const log = options.log ?? ((message: string) => console.warn(message));
  let kernels = options.kernels ?? defaultKernels;
  if (kernels === null) {
    try {
      kernels = defaultKernels = loadKernels().kernels;
    } catch (error) {
      log(`The quality meter's lossy figure is missing: the codec kernels did not load (${errorText(error)}).`);
      return main;
    }
  }
  const lossy = await measureLossyQuality(model, { kType, vType, flashAttention, threads, tokens, kernels, ...(options.scratchDir !== undefined ? { scratchDir: options.scratchDir } : {}) });
  if (!lossy.ok) {
    log(`The quality meter's lossy figure is missing: ${lossy.error.message}`);
    return main;
  }
  return lossy.value === null ? main : ok({ ...main.value, lossy: lossy.value });
}
