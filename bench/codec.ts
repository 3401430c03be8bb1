/**
 * `npm run bench -- codec`: compact KV snapshots: what each disk encoding (`off`, `lossless`,
 * `lossy`) stores, how fast it encodes and decodes with the native kernels and the TypeScript
 * fallback, what a 16,000-token restore costs against the floor of reading its files, and what
 * the lossy encoding does to the next-token distributions. It exists so the default encoding and
 * the lossy option are chosen on measured figures (docs/benchmarks.md); `runCodecBench` says
 * how each figure is measured.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextOptions, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import type { KvCacheType, KvCodecInfo, KvCompression, KvCompressionChoice } from '../engine/contract/index.ts';
import { defaultSettings } from '../engine/host/settings.ts';
import { bytesPerToken, cutChunks, parseStateFile, type ParsedState, type StateShape } from '../engine/kv/codec.ts';
import { chunkPath } from '../engine/kv/chunk-file.ts';
import { decodeChunk, encodeChunk, lossyApplies } from '../engine/kv/frame.ts';
import { fallbackKernels } from '../engine/kv/kernels-fallback.ts';
import { loadKernels, nativeKernels, nativeStatus } from '../engine/kv/kernels-load.ts';
import { q8_0Bytes, type CodecKernels } from '../engine/kv/kernels.ts';
import { expectedShape, KvCache, type KvProfile } from '../engine/worker/kv-cache.ts';
import { measureLossyQuality } from '../engine/worker/quality.ts';
import { StateTransfer } from '../engine/worker/state-transfer.ts';
import { repoRoot, tinyModelPath, trainedModelsDir } from '../test/support/models.ts';
import { markdownTable, type Column } from './table.ts';
import { evictFromPageCache, fsTypeOf, kvIndexFiles, machineInfo, median, readFilesFloor, round2, timed, writeReport, type MachineInfo } from './util.ts';
import { resolveCompression, type PageCache } from './resume.ts';

const CHUNK_TOKENS = 256;
/** Tokens of the next message in a restore request (the store restores at most all but the last). */
const NEXT_MESSAGE_TOKENS = 8;
const AUSTEN_MODEL = join(trainedModelsDir, 'austen-byte-6l.gguf');
const AUSTEN_TEXT = join(trainedModelsDir, 'austen-eval.txt');
const GENERATED = 'test model';
/** The shortest stretch one speed sample covers (`medianMs`). */
const SAMPLE_MS = 100;

export const codecModes: readonly KvCompression[] = ['off', 'lossless', 'lossy'];

export type CodecKvName = 'f16' | 'q8_0' | 'f16-fa-off';

interface KvConfig {
  readonly name: CodecKvName;
  readonly kvType: string;
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly k: 'F16' | 'Q8_0';
  readonly v: 'F16' | 'Q8_0';
  readonly flashAttention: boolean;
  /** Its 16k restore runs on the generated model under `--restore-on auto` (prefill too slow on the trained one). */
  readonly restoreOnGenerated: boolean;
}

export const codecKvConfigs: Readonly<Record<CodecKvName, KvConfig>> = {
  f16: { name: 'f16', kvType: 'f16/f16', kType: 'f16', vType: 'f16', k: 'F16', v: 'F16', flashAttention: true, restoreOnGenerated: false },
  q8_0: { name: 'q8_0', kvType: 'q8_0/q8_0', kType: 'q8_0', vType: 'q8_0', k: 'Q8_0', v: 'Q8_0', flashAttention: true, restoreOnGenerated: true },
  'f16-fa-off': { name: 'f16-fa-off', kvType: 'f16/f16', kType: 'f16', vType: 'f16', k: 'F16', v: 'F16', flashAttention: false, restoreOnGenerated: true },
};

export interface CodecBenchOptions {
  readonly jsonPath: string;
  /** KV source models (GGUF paths, or "test" for the generated model); empty: austen when present, else the generated model. */
  readonly models: readonly string[];
  readonly threads: number;
  /** Restore size (16,000). */
  readonly tokens: number;
  /** Tokens of the ratio/speed sample. */
  readonly sampleTokens: number;
  /** Tokens of the lossy KL stretch (half restored, half compared); 0 skips it. */
  readonly klTokens: number;
  readonly reps: number;
  readonly kv: readonly CodecKvName[];
  readonly pageCache: readonly PageCache[];
  /** Where the restores of q8_0 and flash-attention-off run (see the module comment). */
  readonly restoreOn: 'auto' | 'trained';
  /** MB of f16 data the transforms run over. */
  readonly transformMB: number;
  /** Where stores go (on the disk to measure). */
  readonly dir: string;
  /** KvCache scratch directory; default /dev/shm/hearth-codec-bench-<pid> where /dev/shm exists (as the app). */
  readonly scratchDir?: string;
  readonly log: (line: string) => void;
}

/** A figure per kernel set; null where that set is not available (no addon) or the mode has no transform. */
export interface PerKernels {
  readonly native: number | null;
  readonly fallback: number | null;
}

/** A figure per page-cache state; null where not measured. */
export interface PerPageCache {
  readonly warm: number | null;
  readonly cold: number | null;
}

export interface CodecRow {
  /** The model whose KV bytesRatio, speeds and KL come from. */
  readonly kvSource: string;
  readonly mode: KvCompression;
  /** "k/v". */
  readonly kvType: string;
  readonly flashAttention: boolean;
  readonly sampleTokens: number;
  /** sampleTokens × KV bytes per token. */
  readonly rawBytes: number;
  /** Chunk files + tail payload the sample's save wrote. */
  readonly storedBytes: number | null;
  readonly bytesRatio: number | null;
  readonly encodeMBps: PerKernels;
  readonly decodeMBps: PerKernels;
  /** The model the restore rows ran on (the KV source, or the generated model: see the module comment). */
  readonly restoreKvSource: string | null;
  readonly restoreTokens: number;
  /** The restore save's own ratio (restoreKvSource's KV at restoreTokens). */
  readonly restoreBytesRatio: number | null;
  readonly restoreMs: PerPageCache;
  readonly readFloorMs: PerPageCache;
  readonly restoreLoadMs: PerPageCache;
  /** Mean KL (nats) after a lossy vs a lossless restore (lossy rows where lossy applies). */
  readonly klVsLossless: number | null;
  readonly top1VsLossless: number | null;
  readonly klPositions: number | null;
  readonly samples: {
    readonly restoreMs: { readonly warm: readonly number[]; readonly cold: readonly number[] };
    readonly readFloorMs: { readonly warm: readonly number[]; readonly cold: readonly number[] };
    readonly restoreLoadMs: { readonly warm: readonly number[]; readonly cold: readonly number[] };
  };
  readonly notes: readonly string[];
}

export interface TransformRow {
  readonly transform: 'unshuffle16' | 'q8_0ToF16' | 'shuffle16' | 'f16ToQ8_0' | 'crc32c';
  /** F16 bytes per pass (the input, or the output for the inverse transforms). */
  readonly bytes: number;
  readonly nativeMBps: number | null;
  readonly fallbackMBps: number | null;
  /** native / fallback. */
  readonly speedup: number | null;
  /** Where the data came from. */
  readonly data: string;
}

export interface CodecAcceptanceLine {
  readonly check: string;
  readonly kvSource: string | null;
  readonly kvType: string | null;
  readonly flashAttention: boolean | null;
  readonly pageCache: PageCache | null;
  readonly pass: boolean | null;
  readonly detail: string;
}

export interface CodecReport {
  /** The KV source model(s), as named in the rows. */
  readonly kvSource: string;
  readonly rows: CodecRow[];
  readonly transforms: TransformRow[];
  readonly machine: MachineInfo & {
    readonly threads: number;
    readonly nodeLlamaCpp: string;
    readonly llamaCppRelease: string;
    /** The kernels the KvCache saves and restores ran with (the app's choice: the addon when it loads). */
    readonly codec: KvCodecInfo;
    /** The addon's instruction sets, or why it is not available. */
    readonly nativeKernels: string;
    readonly storeDir: string;
    readonly storeFs: string | null;
    readonly scratchDir: string;
    readonly scratchFs: string | null;
    readonly pageCache: readonly PageCache[];
    readonly reps: number;
    readonly chunkTokens: number;
  };
  readonly settings: { readonly tokens: number; readonly sampleTokens: number; readonly klTokens: number; readonly text: string; readonly restoreOn: string; readonly transformMB: number };
  readonly date: string;
  readonly acceptance: CodecAcceptanceLine[];
}

// --- Helpers -----------------------------------------------------------------------------------

/** `count` tokens of the eval text, repeated as needed (no BOS: a chat's middle). */
function textTokens(model: LlamaModel, text: string, count: number): Token[] {
  const once = model.tokenize(text, false);
  if (once.length === 0) throw new Error('the text tokenizes to nothing');
  const out: Token[] = [];
  while (out.length < count) out.push(...once.slice(0, count - out.length));
  return out;
}

interface LoadedModel {
  readonly model: LlamaModel;
  readonly path: string;
  readonly label: string;
  readonly trained: boolean;
}

function contextOptions(config: KvConfig, contextSize: number, threads: number): LlamaContextOptions {
  return { contextSize, sequences: 1, threads, flashAttention: config.flashAttention, experimentalKvCacheKeyType: config.k, experimentalKvCacheValueType: config.v };
}

/** The chunk files and tail bytes of manifest `id`: what the save wrote for it. */
async function storedFiles(cache: KvCache, id: string): Promise<{ files: string[]; bytes: number; largest: number } | string> {
  const manifest = cache.store.getManifest(id);
  if (!manifest.ok) return `manifest not readable: ${manifest.error.message}`;
  const files = manifest.value.chunks.map((key) => chunkPath(cache.store.root, key));
  let bytes = manifest.value.tail.bytes;
  let largest = 0;
  for (const file of files) {
    const size = (await stat(file)).size;
    bytes += size;
    largest = Math.max(largest, size);
  }
  return { files, bytes, largest };
}

/**
 * Median ms per pass of `fn` over `reps` samples, after one discarded sample: each sample repeats
 * `fn` until SAMPLE_MS have passed (a pass over a small sample takes about a millisecond, where a
 * shared 2-core machine's scheduling noise and the collector would otherwise dominate).
 */
function medianMs(reps: number, fn: () => void): number {
  const samples: number[] = [];
  for (let rep = -1; rep < reps; rep++) {
    const start = performance.now();
    let passes = 0;
    let elapsed: number;
    do {
      fn();
      passes++;
      elapsed = performance.now() - start;
    } while (elapsed < SAMPLE_MS);
    if (rep >= 0) samples.push(elapsed / passes);
  }
  return median(samples)!;
}

const mbps = (bytes: number, ms: number | null): number | null => (ms === null || ms <= 0 ? null : round2(bytes / 1e6 / (ms / 1000)));

/** Encode and decode speeds of `mode` over `payloads` with `kernels` (null: a step failed, with the reason in notes). */
function codecSpeeds(shape: StateShape, payloads: readonly Uint8Array[], mode: KvCompression, kernels: CodecKernels, reps: number, notes: string[]): { encode: number | null; decode: number | null } {
  const raw = payloads.reduce((sum, p) => sum + p.byteLength, 0);
  const stored: Uint8Array[] = [];
  for (const payload of payloads) {
    const encoded = encodeChunk(shape, payload, mode, kernels);
    if (!encoded.ok) {
      notes.push(`${kernels.kind} encode failed: ${encoded.error.message}`);
      return { encode: null, decode: null };
    }
    stored.push(encoded.value);
  }
  const encodeMs = medianMs(reps, () => {
    for (const payload of payloads) encodeChunk(shape, payload, mode, kernels);
  });
  const out = Buffer.allocUnsafeSlow(Math.max(...payloads.map((p) => p.byteLength)));
  for (const [i, s] of stored.entries()) {
    const decoded = decodeChunk(shape, s, kernels, out);
    if (!decoded.ok) {
      notes.push(`${kernels.kind} decode failed: ${decoded.error.message}`);
      return { encode: mbps(raw, encodeMs), decode: null };
    }
    // Lossless must give the payload back bit for bit (lossy gives its q8_0 rounding).
    if (mode !== 'lossy' && Buffer.compare(decoded.value, payloads[i]!) !== 0) {
      notes.push(`${kernels.kind} decode did not give the payload back`);
      return { encode: mbps(raw, encodeMs), decode: null };
    }
  }
  const decodeMs = medianMs(reps, () => {
    for (const s of stored) decodeChunk(shape, s, kernels, out);
  });
  return { encode: mbps(raw, encodeMs), decode: mbps(raw, decodeMs) };
}

/** F16 K/V bytes of a parsed F16 state with flash attention on (layer 0's K on: K and V rows only, plus 12-byte layer headers). */
function f16Bytes(parsed: ParsedState, bytes: Uint8Array): Uint8Array | null {
  if (parsed.shape.vTrans || parsed.shape.layers.some((l) => l.kType !== 1 || l.vType !== 1)) return null;
  const first = parsed.layers[0]?.kOffset;
  if (first === undefined) return null;
  const data = bytes.subarray(first);
  return data.subarray(0, data.byteLength - (data.byteLength % 64));
}

/** Seeded finite f16 values (exponents of typical K/V magnitudes), when no real F16 KV was measured. */
function seededF16(bytes: number): Uint8Array {
  const out = new Uint16Array(bytes / 2);
  let s = 20261128;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const exponent = 9 + ((s >>> 24) % 8);
    out[i] = ((s & 1) << 15) | (exponent << 10) | ((s >>> 8) & 0x3ff);
  }
  return new Uint8Array(out.buffer);
}

function measureTransforms(source: Uint8Array, sourceName: string, megabytes: number, native: CodecKernels | null, reps: number): TransformRow[] {
  const size = Math.max(64, Math.floor((megabytes * 1e6) / 64) * 64);
  const f16 = new Uint8Array(size);
  for (let at = 0; at < size; at += source.byteLength) f16.set(source.subarray(0, Math.min(source.byteLength, size - at)), at);
  const lo = new Uint8Array(size / 2);
  const hi = new Uint8Array(size / 2);
  const dst = new Uint8Array(size);
  const q8 = new Uint8Array(q8_0Bytes(size / 2));
  fallbackKernels.shuffle16(f16, lo, hi);
  if (!fallbackKernels.f16ToQ8_0(f16, q8)) throw new Error('the transform data holds a NaN or an infinity');
  const ops: Record<TransformRow['transform'], (k: CodecKernels) => void> = {
    unshuffle16: (k) => k.unshuffle16(lo, hi, dst),
    q8_0ToF16: (k) => k.q8_0ToF16(q8, dst),
    shuffle16: (k) => k.shuffle16(f16, lo, hi),
    f16ToQ8_0: (k) => void k.f16ToQ8_0(f16, q8),
    crc32c: (k) => void k.crc32c(f16),
  };
  return (Object.keys(ops) as TransformRow['transform'][]).map((transform) => {
    const op = ops[transform];
    const fallbackMBps = mbps(size, medianMs(reps, () => op(fallbackKernels)));
    const nativeMBps = native === null ? null : mbps(size, medianMs(reps, () => op(native)));
    return { transform, bytes: size, nativeMBps, fallbackMBps, speedup: nativeMBps === null || fallbackMBps === null ? null : round2(nativeMBps / fallbackMBps), data: sourceName };
  });
}

// --- The sample: ratios, speeds, KL ------------------------------------------------------------

interface SampleResult {
  readonly shape: StateShape | null;
  readonly rawBytes: number;
  readonly stored: Map<KvCompression, number | null>;
  readonly speeds: Map<KvCompression, { encode: PerKernels; decode: PerKernels }>;
  readonly f16: Uint8Array | null;
  readonly notes: Map<KvCompression, string[]>;
}

async function measureSample(source: LoadedModel, config: KvConfig, text: string, options: CodecBenchOptions, kernels: CodecKernels, native: CodecKernels | null, release: string, scratchDir: string): Promise<SampleResult> {
  const { log } = options;
  const notes = new Map(codecModes.map((mode) => [mode, [] as string[]]));
  const stored = new Map<KvCompression, number | null>(codecModes.map((mode) => [mode, null]));
  const speeds = new Map<KvCompression, { encode: PerKernels; decode: PerKernels }>();
  const tokens = textTokens(source.model, text, options.sampleTokens);
  const context = await source.model.createContext(contextOptions(config, options.sampleTokens + 8, options.threads));
  const statePath = join(scratchDir, `sample-${process.pid}.bin`);
  try {
    const sequence = context.getSequence();
    const prefill = await timed(() => sequence.evaluateWithoutGeneratingNewTokens(tokens));
    log(`    sample: ${tokens.length} tokens prefilled in ${(prefill.ms / 1000).toFixed(1)} s`);
    await sequence.saveStateToFile(statePath);
    const bytes = await readFile(statePath);
    const parsed = parseStateFile(bytes);
    if (!parsed.ok) throw new Error(`the sample state does not parse: ${parsed.error.message}`);
    const shape = parsed.value.shape;
    const rawBytes = tokens.length * bytesPerToken(shape);
    const cut = cutChunks(parsed.value, CHUNK_TOKENS);
    if (!cut.ok) throw new Error(`the sample state does not cut: ${cut.error.message}`);
    const payloads = [...cut.value.chunks, ...(cut.value.tail ? [cut.value.tail] : [])].map((c) => c.payload);

    for (const mode of codecModes) {
      const root = join(options.dir, `codec-sample-${process.pid}-${mode}`);
      await rm(root, { recursive: true, force: true });
      const opened = await KvCache.open({ root, budgetBytes: 64 * 2 ** 30, chunkTokens: CHUNK_TOKENS, llamaRelease: release, scratchDir, compression: mode, kernels });
      if (!opened.ok) throw new Error(`KvCache.open failed: ${opened.error.message}`);
      const cache = opened.value;
      try {
        const profile = await cache.prepare({ model: source.model, context, modelPath: source.path, flashAttention: config.flashAttention });
        const saved = await cache.save(profile, sequence, 'sample');
        if (!saved.ok) notes.get(mode)!.push(`sample save failed: ${saved.error.message}`);
        else if (saved.value.tokens !== tokens.length) notes.get(mode)!.push(`the sample save stored ${saved.value.tokens} tokens, not ${tokens.length}`);
        else {
          const files = await storedFiles(cache, 'sample');
          if (typeof files === 'string') notes.get(mode)!.push(files);
          else stored.set(mode, files.bytes);
        }
      } finally {
        await cache.close();
        await rm(root, { recursive: true, force: true });
      }
      if (mode === 'off') {
        speeds.set(mode, { encode: { native: null, fallback: null }, decode: { native: null, fallback: null } });
        continue;
      }
      const modeNotes = notes.get(mode)!;
      if (mode === 'lossy' && !lossyApplies(shape)) modeNotes.push('lossy does not apply (no F16 section): stored as lossless');
      const fallback = codecSpeeds(shape, payloads, mode, fallbackKernels, options.reps, modeNotes);
      const nat = native === null ? { encode: null, decode: null } : codecSpeeds(shape, payloads, mode, native, options.reps, modeNotes);
      speeds.set(mode, { encode: { native: nat.encode, fallback: fallback.encode }, decode: { native: nat.decode, fallback: fallback.decode } });
    }
    return { shape, rawBytes, stored, speeds, f16: f16Bytes(parsed.value, bytes), notes };
  } finally {
    await context.dispose();
    await rm(statePath, { force: true });
  }
}

// --- The restore at --tokens ---------------------------------------------------------------------

interface RestoreResult {
  readonly bytesRatio: number | null;
  readonly restore: Record<PageCache, number[]>;
  readonly floor: Record<PageCache, number[]>;
  readonly restoreLoad: Record<PageCache, number[]>;
  readonly notes: string[];
}

async function measureRestore(
  target: LoadedModel,
  config: KvConfig,
  mode: KvCompression,
  context: LlamaContext,
  sequence: LlamaContextSequence,
  conversation: readonly Token[],
  options: CodecBenchOptions,
  kernels: CodecKernels,
  release: string,
  scratchDir: string,
): Promise<RestoreResult> {
  const notes: string[] = [];
  const empty = (): Record<PageCache, number[]> => ({ warm: [], cold: [] });
  const result = { bytesRatio: null as number | null, restore: empty(), floor: empty(), restoreLoad: empty(), notes };
  const tokens = options.tokens;
  const request = conversation.slice(0, tokens + NEXT_MESSAGE_TOKENS) as Token[];
  const root = join(options.dir, `codec-restore-${process.pid}-${mode}`);
  await rm(root, { recursive: true, force: true });
  const opened = await KvCache.open({ root, budgetBytes: 64 * 2 ** 30, chunkTokens: CHUNK_TOKENS, llamaRelease: release, scratchDir, compression: mode, kernels });
  if (!opened.ok) throw new Error(`KvCache.open failed: ${opened.error.message}`);
  const cache = opened.value;
  try {
    const profile: KvProfile = await cache.prepare({ model: target.model, context, modelPath: target.path, flashAttention: config.flashAttention });
    if (profile.fingerprint === null) {
      notes.push(`store unusable: ${profile.fallbackReason ?? 'no reason given'}`);
      return result;
    }
    const saved = await cache.save(profile, sequence, 'chat');
    if (!saved.ok) {
      notes.push(`save failed: ${saved.error.message}`);
      return result;
    }
    const files = await storedFiles(cache, 'chat');
    if (typeof files === 'string') {
      notes.push(files);
      return result;
    }
    const shape = expectedShape(target.model, context, config.flashAttention);
    if (shape.ok) result.bytesRatio = Math.round((files.bytes / (tokens * bytesPerToken(shape.value))) * 1e4) / 1e4;
    // +1: a read of 0 bytes at the end says the file is over.
    const floorBuffer = Buffer.allocUnsafe(files.largest + 1);
    for (const pageCache of options.pageCache) {
      // Cold: what the next timed step reads; a store restore also reads the KV index.
      const evict = async (withIndex = true): Promise<void> => {
        if (pageCache === 'cold' && !(await evictFromPageCache(withIndex ? [...files.files, ...kvIndexFiles(cache.store.root)] : files.files))) {
          throw new Error('cold reads need Linux with GNU dd (iflag=nocache); measure with --cache warm');
        }
      };
      const measureRound = async (keep: boolean, into: LlamaContextSequence, freshProfile: KvProfile): Promise<void> => {
        // restoreMs: from the request to the assembled state (an image in memory, or a scratch file).
        await evict();
        const start = performance.now();
        const assembled = await cache.assembleState(freshProfile, request, 0);
        const ms = performance.now() - start;
        if (assembled.source === null) {
          notes.push(`assembleState gave nothing${assembled.reason ? `: ${assembled.reason}` : ''}`);
        } else {
          try {
            if (assembled.tokens !== tokens) notes.push(`assembleState assembled ${assembled.tokens} tokens, not ${tokens}`);
            else if (keep) result.restore[pageCache].push(ms);
          } finally {
            assembled[Symbol.dispose]();
          }
        }
        // The floor: this mode's chunk files, read plainly one after another (util.ts readFilesFloor).
        await evict(false);
        const floor = await timed(async () => readFilesFloor(files.files, floorBuffer));
        if (keep) result.floor[pageCache].push(floor.ms);
        // restoreLoadMs: the full restore into the fresh context's empty sequence.
        await evict();
        const restored = await timed(() => cache.restore(freshProfile, into, request));
        if (restored.value.tokensRestored !== tokens) notes.push(`restore gave ${restored.value.tokensRestored} tokens, not ${tokens}${restored.value.fallbackReason ? `: ${restored.value.fallbackReason}` : ''}`);
        else if (keep) result.restoreLoad[pageCache].push(restored.ms);
      };
      for (let rep = -1; rep < options.reps; rep++) {
        const keep = rep >= 0;
        // A fresh context per round, with its own profile as the app makes one per context load
        // (a profile's state transfer belongs to its context), all outside the timings.
        const fresh = await target.model.createContext(contextOptions(config, tokens + NEXT_MESSAGE_TOKENS + 8, options.threads));
        try {
          const into = fresh.getSequence();
          const transfer = await StateTransfer.forContext(fresh, into);
          if (transfer.info.mode === 'file' && rep < 0) notes.push(`state through files: ${transfer.info.reason ?? ''}`);
          const freshProfile = await cache.prepare({ model: target.model, context: fresh, modelPath: target.path, flashAttention: config.flashAttention, transfer });
          await measureRound(keep, into, freshProfile);
        } finally {
          await fresh.dispose();
        }
      }
    }
    return result;
  } finally {
    await cache.close();
    await rm(root, { recursive: true, force: true });
  }
}

// --- Report ------------------------------------------------------------------------------------

const ms = (v: number): string => `${v.toFixed(2)} ms`;

function acceptance(rows: readonly CodecRow[], transforms: readonly TransformRow[], trained: ReadonlySet<string>, pageCaches: readonly PageCache[], defaultMode: KvCompressionChoice): CodecAcceptanceLine[] {
  const lines: CodecAcceptanceLine[] = [];
  const base = (r: CodecRow, pageCache: PageCache | null = null) => ({ kvSource: r.kvSource, kvType: r.kvType, flashAttention: r.flashAttention, pageCache });
  const ratio = (r: CodecRow) => (r.bytesRatio === null ? 'not measured' : `${r.bytesRatio.toFixed(4)} (${r.storedBytes?.toLocaleString('en-US')} of ${r.rawBytes.toLocaleString('en-US')} B, ${r.sampleTokens.toLocaleString('en-US')} tokens)`);
  for (const r of rows) {
    const f16 = r.kvType === 'f16/f16';
    const isTrained = trained.has(r.kvSource);
    if (r.mode === 'lossless' && f16) {
      const check = 'lossless bytesRatio ≤ 0.85 on F16 KV of a trained model';
      lines.push({ ...base(r), check, pass: r.bytesRatio === null || !isTrained ? null : r.bytesRatio <= 0.85, detail: isTrained ? ratio(r) : `N/A: ${r.kvSource} is not a trained model; ${ratio(r)}` });
    }
    if (r.mode === 'lossless' && r.kvType === 'q8_0/q8_0') {
      lines.push({ ...base(r), check: 'lossless bytesRatio reported for q8_0', pass: r.bytesRatio !== null, detail: ratio(r) });
    }
    if (r.mode === 'lossy' && f16) {
      lines.push({ ...base(r), check: 'lossy bytesRatio ≤ 0.55 on F16 KV', pass: r.bytesRatio === null ? null : r.bytesRatio <= 0.55, detail: `${ratio(r)}${isTrained ? '' : ' (generated model)'}; KL vs lossless ${r.klVsLossless?.toExponential(2) ?? '—'}` });
    }
  }
  for (const name of ['unshuffle16', 'q8_0ToF16'] as const) {
    const t = transforms.find((x) => x.transform === name);
    const none = { kvSource: null, kvType: null, flashAttention: null, pageCache: null };
    lines.push(
      !t || t.speedup === null
        ? { ...none, check: `${name}: native ≥ 4× fallback`, pass: null, detail: t ? `native kernels not available; fallback ${t.fallbackMBps ?? '—'} MB/s` : 'not measured' }
        : { ...none, check: `${name}: native ≥ 4× fallback`, pass: t.speedup >= 4, detail: `native ${t.nativeMBps} MB/s, fallback ${t.fallbackMBps} MB/s: ${t.speedup}×` },
    );
  }
  for (const r of rows) {
    if (r.mode !== defaultMode.applied) continue;
    for (const pc of pageCaches) {
      const s = r.restoreMs[pc];
      const f = r.readFloorMs[pc];
      const check = `restoreMs ≤ readFloorMs × 1.5 + 10 ms at ${r.restoreTokens.toLocaleString('en-US')} tokens (default mode: ${defaultMode.setting} → ${defaultMode.applied})`;
      lines.push(
        s === null || f === null
          ? { ...base(r, pc), check, pass: null, detail: 'not measured' }
          : { ...base(r, pc), check, pass: s <= f * 1.5 + 10, detail: `${ms(s)} vs limit ${ms(f * 1.5 + 10)} (floor ${ms(f)}; with llama.cpp's load ${r.restoreLoadMs[pc] === null ? '—' : ms(r.restoreLoadMs[pc]!)}; on ${r.restoreKvSource})` },
      );
    }
  }
  return lines;
}

const fmtKl = (v: number | null) => (v === null ? null : v === 0 ? '0' : v.toExponential(2));

const rowColumns: Column<CodecRow>[] = [
  { title: 'KV source', value: (r) => r.kvSource },
  { title: 'mode', value: (r) => r.mode },
  { title: 'KV', value: (r) => `${r.kvType}${r.flashAttention ? '' : ' (FA off)'}` },
  { title: 'bytes ratio', value: (r) => (r.bytesRatio === null ? null : r.bytesRatio.toFixed(3)), numeric: true },
  { title: 'enc MB/s native', value: (r) => r.encodeMBps.native, numeric: true },
  { title: 'enc MB/s fallback', value: (r) => r.encodeMBps.fallback, numeric: true },
  { title: 'dec MB/s native', value: (r) => r.decodeMBps.native, numeric: true },
  { title: 'dec MB/s fallback', value: (r) => r.decodeMBps.fallback, numeric: true },
  { title: 'restore KV', value: (r) => r.restoreKvSource },
  { title: 'restore ratio', value: (r) => (r.restoreBytesRatio === null ? null : r.restoreBytesRatio.toFixed(3)), numeric: true },
  { title: 'restore ms warm', value: (r) => r.restoreMs.warm, numeric: true },
  { title: 'floor ms warm', value: (r) => r.readFloorMs.warm, numeric: true },
  { title: '+load ms warm', value: (r) => r.restoreLoadMs.warm, numeric: true },
  { title: 'restore ms cold', value: (r) => r.restoreMs.cold, numeric: true },
  { title: 'floor ms cold', value: (r) => r.readFloorMs.cold, numeric: true },
  { title: '+load ms cold', value: (r) => r.restoreLoadMs.cold, numeric: true },
  { title: 'KL vs lossless', value: (r) => fmtKl(r.klVsLossless) },
  { title: 'top-1 vs lossless', value: (r) => (r.top1VsLossless === null ? null : r.top1VsLossless.toFixed(3)) },
];

const transformColumns: Column<TransformRow>[] = [
  { title: 'transform', value: (t) => t.transform },
  { title: 'MB per pass', value: (t) => Math.round(t.bytes / 1e5) / 10, numeric: true },
  { title: 'native MB/s', value: (t) => t.nativeMBps, numeric: true },
  { title: 'fallback MB/s', value: (t) => t.fallbackMBps, numeric: true },
  { title: 'native / fallback', value: (t) => (t.speedup === null ? null : `${t.speedup.toFixed(1)}×`), numeric: true },
];

/** The markdown tables and the acceptance lines, as printed. */
export function formatCodecReport(report: CodecReport): string {
  const m = report.machine;
  const s = report.settings;
  const lines = [
    `## KV codec: one row per mode × KV type (KV source ${report.kvSource})`,
    '',
    markdownTable(report.rows, rowColumns),
    '',
    `bytes ratio and MB/s (of raw payload) over the first ${s.sampleTokens.toLocaleString('en-US')} tokens of ${s.text}; restores at ${s.tokens.toLocaleString('en-US')} tokens ("restore" = KvCache.assembleState: lookup, reads, checksums, decode, scratch state file; "floor" = plain reads of the same chunk files; "+load" = KvCache.restore into a fresh sequence, llama.cpp's load included); KL over ${s.klTokens.toLocaleString('en-US')} tokens (half restored, half compared).`,
    `${m.cpu}, ${m.cores} cores, ${m.threads} thread(s); node-llama-cpp ${m.nodeLlamaCpp} (llama.cpp ${m.llamaCppRelease}); KvCache kernels ${m.codec.kernels}${m.codec.reason ? ` (${m.codec.reason})` : ''}; native: ${m.nativeKernels}; page cache ${m.pageCache.join(' and ')}; median of ${m.reps}; store on ${m.storeFs ?? '?'} (${m.storeDir}), scratch on ${m.scratchFs ?? '?'} (${m.scratchDir}).`,
    '',
    `## Transforms alone (${report.transforms[0]?.data ?? '—'})`,
    '',
    markdownTable(report.transforms, transformColumns),
    '',
    '## Acceptance',
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.kvSource ? `${a.kvSource} ${a.kvType}${a.flashAttention === false ? ' FA off' : ''}${a.pageCache ? ` (${a.pageCache})` : ''}: ` : ''}${a.check}: ${a.detail}`),
  ];
  const notes = report.rows.flatMap((r) => r.notes.map((n) => `note: ${r.kvSource} ${r.mode} ${r.kvType}${r.flashAttention ? '' : ' FA off'}: ${n}`));
  return [...lines, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

// --- Run ---------------------------------------------------------------------------------------

/**
 * Runs the codec benchmark, writes the JSON (and a .md beside it) and returns the report.
 *
 * Method (one run; the machine is shared and noisy, so only ratios measured in the same run mean
 * anything, and nothing here is a timed assertion):
 * - KV source: each `--models` GGUF, by default a small trained model when present (bytesRatio
 *   on trained KV is what matters), else the generated test model. Text: that model's held-out
 *   text when present, else assets/calibration.txt, repeated as needed. Every row names its
 *   model (`kvSource`).
 * - KV types (`--kv`): f16/f16 and q8_0/q8_0 with flash attention on, f16/f16 with it off (V
 *   transposed). One row per mode × KV type.
 * - Sample (`--sample-tokens`, default 4,096): the text's first tokens, evaluated once per KV
 *   type in one context. `bytesRatio` = (the chunk files + tail payload a `KvCache.save` of that
 *   sequence writes, with the mode as its `compression`) / (tokens × KV bytes per token). The
 *   chunk files include their headers and the tokens, so `off` is slightly above 1.
 *   `encodeMBps` and `decodeMBps`: frame.ts `encodeChunk` / `decodeChunk` (into one reused
 *   buffer, as a restore decodes) over every 256-token chunk payload of that sequence, per
 *   kernel set, MB (10^6 bytes) of raw payload per second; the median of `--reps` passes after
 *   one discarded pass. `off` stores the payload itself: no speed.
 * - `klVsLossless`, `top1VsLossless` (lossy rows): the quality meter's lossy measurement
 *   (engine/worker/quality.ts `measureLossyQuality`) over the text's first `--kl-tokens` tokens
 *   (default 1,024, the trained model's context): the first half restored from the lossless and
 *   from the lossy encoding of its chunks into two fresh sequences, the second half's next-token
 *   distributions compared (mean KL in nats, the lossless restore as the reference). Where lossy
 *   does not apply (no F16 side), the restore is the lossless one and the figures are null.
 * - Restore at `--tokens` (default 16,000) tokens, warm and cold page cache (as bench/resume.ts:
 *   cold evicts what each timed step reads from the page cache before it, nothing else: the
 *   chunk files, and the KV index for the restores). A context prefills the tokens once per KV type; a `KvCache` per mode saves it. Then,
 *   `--reps` times after one discarded round, each against its own mode's files:
 *   - `restoreMs`: `KvCache.assembleState(profile, tokens, 0)` — everything Hearth does from the
 *     request to the state file llama.cpp would load: prefix lookup, chunk reads, checksums,
 *     decoding, writing the scratch state file (on /dev/shm by default, as the app). Removing
 *     the scratch file afterwards is not timed. node-llama-cpp loads sequence state from files
 *     only, so llama.cpp's own load of that file is outside the codec: see restoreLoadMs.
 *   - `readFloorMs`: the same chunk files (this mode's, so compressed files make the floor
 *     smaller), read plainly one after another (util.ts `readFilesFloor`: positioned reads into
 *     one reused buffer, the cheapest plain read measured here); the tail lives in index.db and
 *     is not in the floor (as bench/resume.ts).
 *   - `restoreLoadMs`: the full `KvCache.restore` into a fresh sequence (the context is created
 *     outside the timed part): restoreMs plus llama.cpp's load.
 *   The medians are reported, the samples kept in the JSON. The acceptance line
 *   `restoreMs ≤ readFloorMs × 1.5 + 10 ms` is checked on the app's default mode as the engine
 *   resolves it on this machine (`auto`: measured), warm and cold separately.
 * - Restore model: prefilling 16,000 tokens on one thread took, on a 2-core VM, 28 s
 *   (austen, f16/f16), 150 s (austen, q8_0/q8_0) and 68 s (austen, f16/f16 flash attention off);
 *   so with `--restore-on auto` (default) the q8_0 and flash-attention-off restores run on the
 *   generated test model (4 layers, much faster), and their rows say so (`restoreKvSource`).
 *   `--restore-on trained` runs them all on the KV source model.
 * - Transforms alone: the kernels over `--transform-mb` MB of real F16 KV (the f16 sample's K/V
 *   bytes, repeated; seeded random finite f16 values when f16 is not measured), native vs
 *   fallback MB/s (of f16 bytes, in or out) and their ratio. `unshuffle16` and `q8_0ToF16` are
 *   the acceptance's; shuffle16, f16ToQ8_0 and crc32c are reported beside them.
 * - Threads are explicit (`--threads`, default 1: timings are comparable between runs).
 */
export async function runCodecBench(options: CodecBenchOptions): Promise<CodecReport> {
  const { log } = options;
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const scratchDir = resolve(options.scratchDir ?? (existsSync('/dev/shm') ? `/dev/shm/hearth-codec-bench-${process.pid}` : join(dir, 'scratch')));
  await mkdir(scratchDir, { recursive: true });
  const scratchFs = await fsTypeOf(scratchDir);
  const textPath = existsSync(AUSTEN_TEXT) ? AUSTEN_TEXT : join(repoRoot, 'assets', 'calibration.txt');
  const text = await readFile(textPath, 'utf8');
  const generatedPath = await tinyModelPath({ contextLength: Math.max(16_384, Math.ceil((options.tokens + 64) / 1024) * 1024) }, 'bench-long');
  const sourcePaths = options.models.length > 0 ? options.models.map((p) => (p === 'test' ? generatedPath : resolve(p))) : [existsSync(AUSTEN_MODEL) ? AUSTEN_MODEL : generatedPath];

  const selected = loadKernels();
  const native = nativeKernels();
  const status = nativeStatus();
  const llama: Llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  const release = llama.llamaCppRelease.release;
  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const loaded = new Map<string, LoadedModel>();
  const load = async (path: string): Promise<LoadedModel> => {
    const known = loaded.get(path);
    if (known) return known;
    const model = await llama.loadModel({ modelPath: path });
    const entry = { model, path, label: path === generatedPath ? GENERATED : basename(path), trained: path !== generatedPath };
    loaded.set(path, entry);
    return entry;
  };

  const rows: CodecRow[] = [];
  let transformSource: { data: Uint8Array; name: string } | null = null;
  try {
    for (const sourcePath of sourcePaths) {
      const source = await load(sourcePath);
      log(`${source.label}: ${sourcePath}`);
      if (source.model.trainContextSize > 0 && source.model.trainContextSize < options.sampleTokens) log(`  note: trained context ${source.model.trainContextSize} < sample ${options.sampleTokens}: the KV beyond it is the model's, extrapolated`);
      for (const name of options.kv) {
        const config = codecKvConfigs[name];
        log(`  ${config.kvType}${config.flashAttention ? '' : ' (FA off)'}`);
        const sample = await measureSample(source, config, text, options, selected.kernels, native, release, scratchDir);
        if (transformSource === null && sample.f16 !== null) transformSource = { data: sample.f16, name: `${source.label} f16/f16 KV, ${options.sampleTokens.toLocaleString('en-US')} tokens, repeated` };

        // The lossy stretch: once per KV type (null where lossy does not apply).
        let lossy: { kl: number; top1: number; positions: number } | null = null;
        const lossyNotes: string[] = [];
        if (options.klTokens >= 2) {
          const measured = await measureLossyQuality(source.model, { kType: config.kType, vType: config.vType, flashAttention: config.flashAttention, threads: options.threads, tokens: textTokens(source.model, text, options.klTokens), kernels: selected.kernels });
          if (!measured.ok) lossyNotes.push(`KL not measured: ${measured.error.message}`);
          else if (measured.value === null) lossyNotes.push('KL: lossy does not apply; a lossy restore is the lossless one');
          else lossy = { kl: measured.value.klVsLossless, top1: measured.value.top1Agreement, positions: measured.value.positions };
          if (lossy) log(`    lossy: KL ${lossy.kl.toExponential(2)}, top-1 ${lossy.top1.toFixed(3)} over ${lossy.positions} positions`);
        }

        // The restore at --tokens, on the KV source or the generated model.
        const target = options.restoreOn === 'auto' && config.restoreOnGenerated && source.trained ? await load(generatedPath) : source;
        const restoreNote = target !== source ? `restore figures on the generated model (--restore-on auto: prefilling 16,000 tokens of ${config.kvType}${config.flashAttention ? '' : ' FA off'} on ${source.label} takes minutes on one thread; --restore-on trained forces it)` : null;
        const restores = new Map<KvCompression, RestoreResult>();
        const conversation = textTokens(target.model, text, options.tokens + NEXT_MESSAGE_TOKENS);
        const context = await target.model.createContext(contextOptions(config, options.tokens + NEXT_MESSAGE_TOKENS + 8, options.threads));
        try {
          const sequence = context.getSequence();
          const prefill = await timed(() => sequence.evaluateWithoutGeneratingNewTokens(conversation.slice(0, options.tokens)));
          log(`    restore: ${options.tokens} tokens prefilled on ${target.label} in ${(prefill.ms / 1000).toFixed(1)} s`);
          for (const mode of codecModes) {
            const r = await measureRestore(target, config, mode, context, sequence, conversation, options, selected.kernels, release, scratchDir);
            restores.set(mode, r);
            const w = median(r.restore.warm);
            const f = median(r.floor.warm);
            log(`    ${mode}: restore ratio ${r.bytesRatio ?? '—'}, warm restore ${w?.toFixed(1) ?? '—'} ms vs floor ${f?.toFixed(1) ?? '—'} ms, cold restore ${median(r.restore.cold)?.toFixed(1) ?? '—'} ms vs floor ${median(r.floor.cold)?.toFixed(1) ?? '—'} ms`);
          }
        } finally {
          await context.dispose();
        }

        for (const mode of codecModes) {
          const stored = sample.stored.get(mode) ?? null;
          const speed = sample.speeds.get(mode) ?? { encode: { native: null, fallback: null }, decode: { native: null, fallback: null } };
          const r = restores.get(mode)!;
          const pc = (values: Record<PageCache, number[]>): PerPageCache => ({ warm: round2(median(values.warm)), cold: round2(median(values.cold)) });
          const samples = (values: Record<PageCache, number[]>) => ({ warm: values.warm.map((v) => round2(v)!), cold: values.cold.map((v) => round2(v)!) });
          const isLossy = mode === 'lossy';
          rows.push({
            kvSource: source.label,
            mode,
            kvType: config.kvType,
            flashAttention: config.flashAttention,
            sampleTokens: options.sampleTokens,
            rawBytes: sample.rawBytes,
            storedBytes: stored,
            bytesRatio: stored === null ? null : Math.round((stored / sample.rawBytes) * 1e4) / 1e4,
            encodeMBps: speed.encode,
            decodeMBps: speed.decode,
            restoreKvSource: target.label,
            restoreTokens: options.tokens,
            restoreBytesRatio: r.bytesRatio,
            restoreMs: pc(r.restore),
            readFloorMs: pc(r.floor),
            restoreLoadMs: pc(r.restoreLoad),
            klVsLossless: isLossy && lossy ? lossy.kl : null,
            top1VsLossless: isLossy && lossy ? lossy.top1 : null,
            klPositions: isLossy && lossy ? lossy.positions : null,
            samples: { restoreMs: samples(r.restore), readFloorMs: samples(r.floor), restoreLoadMs: samples(r.restoreLoad) },
            notes: [...(sample.notes.get(mode) ?? []), ...(restoreNote ? [restoreNote] : []), ...r.notes, ...(isLossy ? lossyNotes : [])],
          });
        }
      }
    }
  } finally {
    for (const entry of loaded.values()) await entry.model.dispose();
    await llama.dispose();
    await rm(scratchDir, { recursive: true, force: true }).catch(() => undefined);
  }

  log('transforms');
  const source = transformSource ?? { data: seededF16(1 << 20), name: 'seeded random f16 values' };
  const transforms = measureTransforms(source.data, source.name, options.transformMB, native, options.reps);
  const trained = new Set([...loaded.values()].filter((m) => m.trained).map((m) => m.label));
  const report: CodecReport = {
    kvSource: [...new Set(rows.map((r) => r.kvSource))].join(', '),
    rows,
    transforms,
    machine: {
      ...machineInfo(),
      threads: options.threads,
      nodeLlamaCpp,
      llamaCppRelease: release,
      codec: selected.info,
      nativeKernels: 'features' in status ? `loaded (${status.features})` : `not available: ${status.reason}`,
      storeDir: dir,
      storeFs: await fsTypeOf(dir),
      scratchDir,
      scratchFs,
      pageCache: options.pageCache,
      reps: options.reps,
      chunkTokens: CHUNK_TOKENS,
    },
    settings: { tokens: options.tokens, sampleTokens: options.sampleTokens, klTokens: options.klTokens, text: basename(textPath), restoreOn: options.restoreOn, transformMB: options.transformMB },
    date: new Date().toISOString(),
    acceptance: acceptance(rows, transforms, trained, options.pageCache, resolveCompression(defaultSettings.kvCompression, dir, selected.kernels)),
  };
  await writeReport(options.jsonPath, report, formatCodecReport(report));
  return report;
}
