/**
 * The engine-process glue between node-llama-cpp sequences and the KV store (engine/kv/store.ts)
 * plus codec (engine/kv/codec.ts): issue 3's "When it runs" and "Restoring".
 *
 * Decisions:
 * - The state shape (layers, K/V types and row sizes, V transposition, stream count) is computed
 *   from the model's metadata and the context's options, not from a saved file, so a restore in a
 *   fresh process (a restart) works before anything was saved. Every save checks the computed
 *   shape against the parsed file; a mismatch (a memory layout this code does not model) turns
 *   persistence off for that profile with a reason, so wrong bytes are never stored or loaded.
 * - node-llama-cpp can only save a whole sequence state to a file. It goes to a scratch file,
 *   on a RAM-backed directory (/dev/shm) when there is one, so the full state never reaches the
 *   disk; only chunks the store lacks (and the small tail) are written to the store.
 * - A restore replaces the sequence's whole state (a sequence state cannot be appended to), so
 *   it only happens when the store holds more of the prompt than memory does.
 * - Chunks are stored encoded (issue 6, engine/kv/frame.ts) in the mode this cache was opened
 *   with; a restore decodes whatever mode each chunk was written in. `off` and `lossless` give
 *   bit-identical restores and share a fingerprint, so switching between them keeps every stored
 *   chat; `lossy` (when it changes anything: some K/V section is F16) adds `storage:
 *   'lossy-q8_0'` to the fingerprint, so lossy KV is never mixed into an exact chat or vice versa.
 */
import { access, mkdir, readdir, rm } from 'node:fs/promises';
import { constants as fsConstants, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { err, ok, type KvCompression, type Result, errorText } from '../contract/index.ts';
import {
  STATE_VERSION,
  chunkPayloadSize,
  cutChunks,
  readStateFile,
  sameShape,
  shapeKey,
  StateFileWriter,
  truncateChunk,
  writeStateFile,
  type StateLayerShape,
  type StateShape,
} from '../kv/codec.ts';
import { chunkKeys, fingerprint } from '../kv/fingerprint.ts';
import { decodeChunk, encodeChunk, lossyApplies } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { loadKernels } from '../kv/kernels-load.ts';
import { commonPrefix, type Manifest, type TailMatch } from '../kv/manifest.ts';
import { openKvStore, type EvictionReport, type KvStore, type KvStoreStats, type StoreLog } from '../kv/store.ts';
import { fullWhileFlag, ReusableBuffer } from '../kv/store-fs.ts';

export type { KvStoreStats } from '../kv/store.ts';

/**
 * Test-only: when set, it names a flag file; while that file exists, every KV chunk write fails
 * with ENOSPC (engine/kv/store-fs.ts `fullWhileFlag`). The fault suite's full-disk test uses it
 * where it cannot mount a small tmpfs (test/faults/disk.faults.test.ts). Never set it otherwise.
 */
export const FULL_DISK_FLAG_ENV = 'HEARTH_TEST_KV_FULL_FLAG';

export interface KvCacheOptions {
  /** The store's directory (`<dataDir>/kv`). */
  readonly root: string;
  /** Disk budget in bytes. */
  readonly budgetBytes: number;
  /** Tokens per chunk (default 256). */
  readonly chunkTokens?: number;
  /** llama.cpp release string, part of the fingerprint. */
  readonly llamaRelease: string;
  /** Where state files are saved/assembled (default: /dev/shm/hearth-kv-<uid> when usable, else <root>/scratch). */
  readonly scratchDir?: string;
  /** How new chunks and tails are encoded (default `lossless`); stored chunks of every mode are read. */
  readonly compression?: KvCompression;
  /** The codec kernels (default: `loadKernels()`, the native addon when it loads). */
  readonly kernels?: CodecKernels;
  /** Where the store says what it repaired by itself at open (engine/kv/store.ts `StoreLog`). */
  readonly log?: StoreLog;
  /** How long to wait for another process to let go of the store (default: the store's 5 s). */
  readonly lockWaitMs?: number;
}

/** What decides whether stored KV fits a context: computed once per loaded model+context. */
export interface KvProfile {
  /** null until known (see `fallbackReason`). */
  readonly fingerprint: string | null;
  /** Why persistence is off for this context (unsupported layout, hashing failed…). */
  readonly fallbackReason?: string;
}

export interface SaveReport {
  readonly tokens: number;
  readonly chunksWritten: number;
  readonly bytesWritten: number;
  readonly stateBytes: number;
  /** The raw (decoded) KV payload bytes of what was written: bytesWritten / rawBytes is this save's ratio. */
  readonly rawBytes: number;
  readonly ms: number;
  /** What the budget evicted after this save (absent when nothing was). */
  readonly evicted?: EvictionReport;
}

/** What `forget` deleted. */
export interface ForgetReport {
  /** Manifests (branches) deleted. */
  readonly manifests: number;
  /** Chunk files no other chat used, plus the branches' tails. */
  readonly bytesFreed: number;
}

export interface RestoreReport {
  readonly tokensRestored: number;
  readonly restoreMs: number;
  readonly bytesRead: number;
  readonly fallbackReason?: string;
}

/**
 * A state file assembled from the store (`assembleState`): what llama.cpp's loader would read.
 * Disposing it removes the scratch file.
 */
export interface AssembledState extends Disposable {
  /** The scratch state file. */
  readonly path: string;
  /** The tokens it holds: a prefix of the request. */
  readonly tokens: number;
  /** Chunk file and tail bytes read. */
  readonly bytesRead: number;
  /** Why it holds less than the store first offered (a damaged chunk or tail), when it does. */
  readonly fallbackReason?: string;
  /** The manifest whose tail it includes (marked used after a load). */
  readonly tailManifestId?: string;
}

/** `assembleState` found nothing to load: the store holds no more than `have`, or cannot be used (`reason`). */
export interface NotAssembled {
  readonly path: null;
  readonly bytesRead: number;
  readonly reason?: string;
}

/** GGML type id → [bytes per block, elements per block], for the K/V cache types llama.cpp allows. */
const ggmlBlocks: Readonly<Record<number, readonly [number, number]>> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
  20: [18, 32], // IQ4_NL
  30: [2, 1], // BF16
};

function rowBytes(type: number, width: number): number | null {
  const block = ggmlBlocks[type];
  if (!block || width % block[1] !== 0) return null;
  return (width / block[1]) * block[0];
}

/** Internal profile state, keyed by the profile object handed out. */
interface ProfileState {
  readonly shape: StateShape;
  /** New chunks are stored lossy (q8_0) and the fingerprint says so. */
  readonly lossy: boolean;
  /** What the fingerprint was computed from, to name other cache settings (`#otherSettings`). */
  readonly model: LlamaModel;
  readonly modelHash: string;
  /** Set when a save found the real layout differs from the computed one. */
  disabled?: string;
}

/** The cache settings a fingerprint depends on besides the model and llama.cpp (issue 4). */
interface CacheSettings {
  readonly kType: number;
  readonly vType: number;
  readonly flashAttention: boolean;
  readonly nStream: number;
  /** Stored with the lossy encoding (fingerprint `storage: 'lossy-q8_0'`). */
  readonly lossy: boolean;
}

/** GGML type ids of the KV cache types Hearth offers, with their names. */
const offeredTypes: readonly (readonly [number, string])[] = [[1, 'f16'], [8, 'q8_0'], [7, 'q5_1'], [6, 'q5_0'], [3, 'q4_1'], [2, 'q4_0'], [20, 'iq4_nl']];

function describeSettings(s: CacheSettings): string {
  const name = (type: number) => offeredTypes.find(([id]) => id === type)?.[1] ?? `type ${type}`;
  const storage = s.lossy ? ', stored lossy' : '';
  return `K/V ${name(s.kType)}/${name(s.vType)}, flash attention ${s.flashAttention ? 'on' : 'off'}, ${s.nStream} slot${s.nStream === 1 ? '' : 's'}${storage}`;
}

function perLayer(value: unknown, layers: number): number[] | null {
  if (typeof value === 'number') return Array.from({ length: layers }, () => value);
  if (Array.isArray(value) && value.length === layers && value.every((v) => typeof v === 'number')) return value as number[];
  return null;
}

/**
 * The state shape llama.cpp v0.4.0 writes for a plain (non-SWA, non-recurrent) KV cache of this
 * model and context, or the reason it cannot be computed.
 */
export function expectedShape(model: LlamaModel, context: LlamaContext, flashAttention: boolean): Result<StateShape> {
  return shapeFor(model, { kType: Number(context.kvCacheKeyType ?? 1), vType: Number(context.kvCacheValueType ?? 1), flashAttention, nStream: context.totalSequences });
}

/** `expectedShape` for given cache settings, without a context. */
function shapeFor(model: LlamaModel, settings: Omit<CacheSettings, 'lossy'>): Result<StateShape> {
  const { kType, vType, flashAttention } = settings;
  const arch = model.fileInfo.architectureMetadata as Record<string, unknown>;
  const attention = (arch.attention ?? {}) as Record<string, unknown>;
  const unsupported = (why: string): Result<StateShape> => err('NOT_SUPPORTED', why);
  if (arch.ssm !== undefined || attention.sliding_window !== undefined || (arch.rope as Record<string, unknown> | undefined)?.dimension_sections !== undefined) {
    return unsupported('this model uses a sliding-window, recurrent or M-RoPE memory that the KV store does not handle yet');
  }
  const layers = Number(arch.block_count);
  const embd = Number(arch.embedding_length);
  if (!Number.isInteger(layers) || layers < 1 || !Number.isInteger(embd) || embd < 1) return unsupported('the model metadata lacks its layer count or width');
  const heads = perLayer(attention.head_count, layers);
  const kvHeads = perLayer(attention.head_count_kv ?? attention.head_count, layers);
  if (!heads || !kvHeads || heads.some((h) => h < 1)) return unsupported('the model metadata lacks its head counts');
  const shapeLayers: StateLayerShape[] = [];
  for (let i = 0; i < layers; i++) {
    const headDimK = typeof attention.key_length === 'number' ? attention.key_length : embd / heads[i]!;
    const headDimV = typeof attention.value_length === 'number' ? attention.value_length : embd / heads[i]!;
    const kWidth = kvHeads[i]! * headDimK;
    const vWidth = kvHeads[i]! * headDimV;
    const kRow = rowBytes(kType, kWidth);
    const vRow = rowBytes(vType, vWidth);
    if (kRow === null || vRow === null) return unsupported(`KV cache type ${kType}/${vType} is not one the KV store knows`);
    if (flashAttention) {
      shapeLayers.push({ kType, kRowBytes: kRow, vType, vRowBytes: vRow, vElementBytes: 0, vEmbd: 0 });
    } else {
      const block = ggmlBlocks[vType]!;
      if (block[1] !== 1) return unsupported('a quantized V cache needs flash attention');
      shapeLayers.push({ kType, kRowBytes: kRow, vType, vRowBytes: block[0] * vWidth, vElementBytes: block[0], vEmbd: vWidth });
    }
  }
  return ok({ stateVersion: STATE_VERSION, nStream: settings.nStream, vTrans: !flashAttention, layers: shapeLayers });
}

/** How many of `tokens` manifest `m` holds KV for: its chunks' hash chain, then its tail. */
function coverage(m: Manifest, tokens: readonly Token[]): number {
  const keys = chunkKeys(m.fingerprint, tokens.slice(0, m.chunks.length * m.chunkTokens), m.chunkTokens);
  let chunks = 0;
  while (chunks < keys.length && keys[chunks] === m.chunks[chunks]) chunks++;
  const covered = chunks * m.chunkTokens;
  return chunks === m.chunks.length ? covered + commonPrefix(m.tail.tokens, tokens, covered) : covered;
}

function widths(shape: StateShape, which: 'k' | 'v'): number[] {
  return shape.layers.map((l) => {
    const type = which === 'k' ? l.kType : l.vType;
    const bytes = which === 'k' ? l.kRowBytes : shape.vTrans ? l.vRowBytes : l.vRowBytes;
    const block = ggmlBlocks[type]!;
    return (bytes / block[0]) * block[1];
  });
}

async function ramScratch(): Promise<string | null> {
  if (process.platform !== 'linux') return null;
  try {
    await access('/dev/shm', fsConstants.W_OK);
    // One directory per user, shared by that user's engine processes (files carry the pid).
    return `/dev/shm/hearth-kv-${process.getuid?.() ?? 'user'}`;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes scratch files of engine processes that are gone: one killed mid-save (a SIGKILL at
 * quit, a crash) leaves its state file behind, and in /dev/shm that holds RAM.
 */
async function removeStaleScratch(scratchDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(scratchDir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^state-(\d+)-\d+\.bin$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) await rm(join(scratchDir, name), { force: true }).catch(() => undefined);
  }
}

/**
 * Removes a scratch state file without a thread-pool round trip: on the restore path it is one
 * unlink in RAM (/dev/shm), and the restore's time budget is a few milliseconds (issue 3).
 */
function removeScratchSync(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone; else removeStaleScratch sweeps it once this process is gone
  }
}

export class KvCache {
  readonly store: KvStore;
  /** The encoding of new chunks. */
  readonly compression: KvCompression;
  readonly kernels: CodecKernels;
  readonly #llamaRelease: string;
  readonly #scratchDir: string;
  readonly #profiles = new WeakMap<KvProfile, ProfileState>();
  /** Per sequence: tokens before this index are known clean (after a middle erase or shift). */
  readonly #cleanLimit = new WeakMap<LlamaContextSequence, number>();
  #scratchCounter = 0;
  /** The decoded chunk on the restore path (flash attention on), kept between restores: ReusableBuffer. */
  readonly #decodeBuffer = new ReusableBuffer();

  private constructor(store: KvStore, llamaRelease: string, scratchDir: string, compression: KvCompression, kernels: CodecKernels) {
    this.store = store;
    this.#llamaRelease = llamaRelease;
    this.#scratchDir = scratchDir;
    this.compression = compression;
    this.kernels = kernels;
  }

  static async open(options: KvCacheOptions): Promise<Result<KvCache>> {
    const compression = options.compression ?? 'lossless';
    if (compression !== 'off' && compression !== 'lossless' && compression !== 'lossy') return err('INVALID_INPUT', `Unknown KV compression ${String(compression)}.`);
    const kernels = options.kernels ?? loadKernels().kernels;
    const store = await openKvStore({
      root: options.root,
      budgetBytes: options.budgetBytes,
      kernels,
      ...(options.chunkTokens !== undefined ? { chunkTokens: options.chunkTokens } : {}),
      ...(options.log !== undefined ? { log: options.log } : {}),
      ...(options.lockWaitMs !== undefined ? { lockWaitMs: options.lockWaitMs } : {}),
      ...(process.env[FULL_DISK_FLAG_ENV] ? { fs: fullWhileFlag(process.env[FULL_DISK_FLAG_ENV]) } : {}),
    });
    if (!store.ok) return store;
    const scratchDir = options.scratchDir ?? (await ramScratch()) ?? join(options.root, 'scratch');
    try {
      await mkdir(scratchDir, { recursive: true, mode: 0o700 });
      await removeStaleScratch(scratchDir);
    } catch (error) {
      await store.value.close();
      return err('INTERNAL', `The KV scratch directory ${scratchDir} cannot be created: ${errorText(error)}.`);
    }
    return ok(new KvCache(store.value, options.llamaRelease, scratchDir, compression, kernels));
  }

  #scratch(): string {
    return join(this.#scratchDir, `state-${process.pid}-${this.#scratchCounter++}.bin`);
  }

  /** Call after a model+context load. Hashes the model file (cached by path/size/mtime). */
  async prepare(input: { model: LlamaModel; context: LlamaContext; modelPath: string; flashAttention: boolean }): Promise<KvProfile> {
    const shape = expectedShape(input.model, input.context, input.flashAttention);
    if (!shape.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: ${shape.error.message}.` };
    const hash = await this.store.modelContentHash(input.modelPath);
    if (!hash.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: the model file could not be hashed (${hash.error.message}).` };
    const lossy = this.compression === 'lossy' && lossyApplies(shape.value);
    const fp = this.#fingerprintOf(shape.value, hash.value, lossy);
    if (!fp.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: ${fp.error.message}` };
    const profile: KvProfile = { fingerprint: fp.value };
    this.#profiles.set(profile, { shape: shape.value, lossy, model: input.model, modelHash: hash.value });
    return profile;
  }

  /**
   * `lossy`: the chunks are stored lossy, so a restore does not give llama.cpp's bytes back. Only
   * then does the fingerprint change: `off` and `lossless` restore the same bytes.
   */
  #fingerprintOf(s: StateShape, modelHash: string, lossy: boolean): Result<string> {
    return fingerprint({
      llamaCppRelease: this.#llamaRelease,
      stateFormatVersion: STATE_VERSION,
      modelHash,
      kType: s.layers[0]!.kType,
      vType: s.layers[0]!.vType,
      flashAttention: !s.vTrans,
      nStream: s.nStream,
      layers: s.layers.length,
      kWidths: widths(s, 'k'),
      vWidths: widths(s, 'v'),
      extra: { shape: shapeKey(s), ...(lossy ? { storage: 'lossy-q8_0' } : {}) },
    });
  }

  /**
   * The cache settings (K/V types, flash attention, slots, lossy storage) under which this model
   * would have fingerprint `other`, or null when none does (another model file or llama.cpp
   * build). Tries every combination Hearth offers: under 1,600 hashes, and only when a chat's
   * stored KV has another fingerprint.
   */
  #settingsOf(state: ProfileState, other: string): CacheSettings | null {
    for (const [kType] of offeredTypes) {
      for (const [vType] of offeredTypes) {
        for (const flashAttention of [true, false]) {
          for (let nStream = 1; nStream <= 8; nStream++) {
            const shape = shapeFor(state.model, { kType, vType, flashAttention, nStream });
            if (!shape.ok) continue;
            for (const lossy of lossyApplies(shape.value) ? [false, true] : [false]) {
              const fp = this.#fingerprintOf(shape.value, state.modelHash, lossy);
              if (fp.ok && fp.value === other) return { kType, vType, flashAttention, nStream, lossy };
            }
          }
        }
      }
    }
    return null;
  }

  /**
   * Why a chat re-reads what the store holds of it under another fingerprint (issue 4: "Chats
   * whose saved KV has another fingerprint re-read on their next turn, and the readout says
   * why"): among the manifests named `manifestPrefix…`, the one that covers the most of `tokens`
   * beyond `have` tokens. undefined when none does.
   */
  #otherSettings(state: ProfileState, fp: string, manifestPrefix: string, tokens: readonly Token[], have: number): string | undefined {
    const ids = this.store.manifestIds(manifestPrefix);
    if (!ids.ok) return undefined;
    let best: { manifest: Manifest; covered: number } | null = null;
    for (const id of ids.value) {
      const m = this.store.getManifest(id);
      if (!m.ok || m.value.fingerprint === fp || m.value.totalTokens <= have) continue;
      const covered = Math.min(coverage(m.value, tokens), tokens.length - 1);
      if (covered > have && (best === null || covered > best.covered)) best = { manifest: m.value, covered };
    }
    if (best === null) return undefined;
    const then = this.#settingsOf(state, best.manifest.fingerprint);
    if (then === null) return `the stored KV (${best.covered} tokens) was saved for another model file or llama.cpp build; re-read`;
    const layer = state.shape.layers[0]!;
    const current: CacheSettings = { kType: layer.kType, vType: layer.vType, flashAttention: !state.shape.vTrans, nStream: state.shape.nStream, lossy: state.lossy };
    if (then.kType === current.kType && then.vType === current.vType && then.flashAttention === current.flashAttention && then.nStream === current.nStream) {
      // Only the storage differs: say that, in the Compression setting's words.
      const was = then.lossy ? 'lossy compression (F16 K/V stored as q8_0)' : 'exact storage (compression off or lossless)';
      return `the stored KV (${best.covered} tokens) was saved with ${was}, and compression is now ${this.compression}; re-read`;
    }
    return `the stored KV (${best.covered} tokens) was saved with other cache settings (then ${describeSettings(then)}; now ${describeSettings(current)}); re-read`;
  }

  /**
   * Tells the cache that the sequence's cells from `index` on no longer form a clean prefix (a
   * middle erase or a context shift): later saves store at most `index` tokens until
   * `markClean` (after the sequence was cleared or reloaded).
   */
  markFragmented(sequence: LlamaContextSequence, index: number): void {
    const current = this.#cleanLimit.get(sequence);
    this.#cleanLimit.set(sequence, current === undefined ? index : Math.min(current, index));
  }

  markClean(sequence: LlamaContextSequence): void {
    this.#cleanLimit.delete(sequence);
  }

  #usable(profile: KvProfile): { fp: string; state: ProfileState } | { reason: string } {
    const state = this.#profiles.get(profile);
    if (profile.fingerprint === null || !state) return { reason: profile.fallbackReason ?? 'KV persistence is off for this model.' };
    if (state.disabled) return { reason: state.disabled };
    return { fp: profile.fingerprint, state };
  }

  /**
   * Writes the new chunks of the sequence's clean prefix (only what is new) and the manifest.
   * `replaces` names manifests (e.g. the chat's other branches) to delete when the new one extends
   * them: older leaves of a growing branch would otherwise pile up. Others are kept.
   */
  async save(
    profile: KvProfile,
    sequence: LlamaContextSequence,
    manifestId: string,
    options: { replaces?: string | readonly string[] } = {},
  ): Promise<Result<SaveReport>> {
    const started = performance.now();
    const usable = this.#usable(profile);
    if ('reason' in usable) return err('NOT_SUPPORTED', usable.reason);
    const { fp, state } = usable;
    const scratch = this.#scratch();
    try {
      let stateBytes: number;
      try {
        stateBytes = (await sequence.saveStateToFile(scratch)).fileSize;
      } catch (error) {
        return err('INTERNAL', `The sequence state could not be saved: ${errorText(error)}`);
      }
      const parsed = await readStateFile(scratch);
      if (!parsed.ok) return parsed;
      if (!sameShape(parsed.value.shape, state.shape)) {
        state.disabled = 'KV persistence is off: this model\'s memory layout differs from what the KV store expects.';
        return err('NOT_SUPPORTED', state.disabled);
      }
      const size = this.store.chunkTokens;
      const limit = this.#cleanLimit.get(sequence);
      const probe = cutChunks(parsed.value, size, 0, limit === undefined ? {} : { limit });
      if (!probe.ok) return probe;
      const cleanLength = probe.value.cleanLength;
      const tokens = parsed.value.tokens.subarray(0, cleanLength);
      const fullChunks = Math.floor(cleanLength / size);
      const tail = probe.value.tail;
      // Only what the store lacks is encoded: the callback runs for those chunks alone.
      let rawBytes = 0;
      const encode = (payload: Uint8Array): Uint8Array => {
        rawBytes += payload.byteLength;
        const stored = encodeChunk(state.shape, payload, this.compression, this.kernels);
        // Cannot happen for a payload cutChunks made; the raw payload is a valid stored form anyway.
        return stored.ok ? stored.value : payload;
      };
      const put = await this.store.putManifest(manifestId, {
        fingerprint: fp,
        tokens,
        chunks: (index) => {
          const chunk = probe.value.chunks[index];
          return chunk && encode(chunk.payload);
        },
        ...(tail !== null && cleanLength > fullChunks * size ? { tailPayload: encode(tail.payload) } : {}),
      });
      if (!put.ok) return put;
      const replaces = typeof options.replaces === 'string' ? [options.replaces] : (options.replaces ?? []);
      if (replaces.length > 0) {
        const mine = this.store.getManifest(manifestId);
        if (mine.ok) for (const id of replaces) if (id !== manifestId) await this.#dropIfPrefix(id, mine.value.chunks, tokens);
      }
      const budget = await this.store.enforceBudget();
      const evicted = budget.ok && (budget.value.chunksRemoved > 0 || budget.value.bytesFreed > 0 || budget.value.deleted.length > 0 || budget.value.truncated.length > 0) ? budget.value : null;
      return ok({
        tokens: cleanLength,
        chunksWritten: put.value.chunksWritten,
        bytesWritten: put.value.bytesWritten + put.value.tailBytes,
        stateBytes,
        rawBytes,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(evicted ? { evicted } : {}),
      });
    } finally {
      await rm(scratch, { force: true }).catch(() => undefined);
    }
  }

  /**
   * Deletes manifest `id` when it is a prefix of the manifest just saved (`keys`, `tokens`): it
   * adds nothing. Chunk keys are a hash chain, so equal keys mean equal tokens before them.
   */
  async #dropIfPrefix(id: string, keys: readonly string[], tokens: Int32Array): Promise<void> {
    const old = this.store.getManifest(id);
    if (!old.ok) return;
    const m = old.value;
    if (m.totalTokens > tokens.length || m.chunkTokens !== this.store.chunkTokens || m.chunks.length > keys.length) return;
    if (m.chunks.some((key, i) => key !== keys[i])) return;
    const start = m.chunks.length * m.chunkTokens;
    for (let i = 0; i < m.tail.tokens.length; i++) if (m.tail.tokens[i] !== tokens[start + i]) return;
    await this.store.deleteManifest(id);
  }

  /**
   * If the store holds a longer prefix of `tokens` than the sequence already has in memory,
   * loads it into the sequence (always leaving ≥ 1 token to evaluate). Never loads unverified
   * bytes or a mismatched fingerprint. tokensRestored 0 + fallbackReason when nothing was loaded
   * for a reason the user should see (corrupt chunk, other model, …).
   */
  async restore(profile: KvProfile, sequence: LlamaContextSequence, tokens: readonly Token[], options: { manifestPrefix?: string } = {}): Promise<RestoreReport> {
    const started = performance.now();
    const elapsed = (): number => Math.round((performance.now() - started) * 10) / 10;
    const inMemory = tokens.length < 2 ? 0 : Math.min(sequence.compareContextTokens(tokens as Token[]).firstDifferentIndex, tokens.length - 1);
    const state = await this.assembleState(profile, tokens, inMemory, options);
    if (state.path === null) return { tokensRestored: 0, restoreMs: elapsed(), bytesRead: state.bytesRead, ...(state.reason !== undefined ? { fallbackReason: state.reason } : {}) };
    try {
      return await this.#load(sequence, state.path, tokens, state.tokens, state.bytesRead, state.fallbackReason, state.tailManifestId, elapsed);
    } finally {
      state[Symbol.dispose]();
    }
  }

  /**
   * Everything a restore does before llama.cpp's load: finds the longest stored prefix of
   * `tokens` (less the last token, which a restore always leaves to evaluate), reads and verifies
   * its chunks and tail, decodes them, and writes the state file `loadStateFromFile` would read.
   * Only when the store holds more than `have` tokens (what the sequence already has); otherwise
   * `path: null`, with a reason when the user should see one (a damaged chunk, KV stored under
   * other settings). Dispose the result to remove the file. Never throws.
   *
   * With flash attention on, each chunk is decoded into one reused buffer and written to its
   * place in the file before the next is read: one chunk is in memory at a time. With it off (V
   * transposed), every chunk is decoded into its own buffer and the file is written from all of
   * them (a transposed V dimension interleaves every chunk).
   */
  async assembleState(profile: KvProfile, tokens: readonly Token[], have: number, options: { manifestPrefix?: string } = {}): Promise<AssembledState | NotAssembled> {
    const usable = this.#usable(profile);
    if ('reason' in usable) return { path: null, bytesRead: 0, reason: usable.reason };
    const { fp, state } = usable;
    if (tokens.length < 2) return { path: null, bytesRead: 0 };
    const wanted = tokens.slice(0, tokens.length - 1);
    const match = this.store.findLongestPrefix(fp, wanted);
    if (!match.ok) return { path: null, bytesRead: 0, reason: `The KV store could not be searched: ${match.error.message}` };
    const { shape } = state;
    const size = this.store.chunkTokens;
    const reasons: string[] = [];
    if (match.value.stop === 'corrupt') reasons.push(`chunk ${match.value.chunks.length} is damaged; re-read from token ${match.value.chunkedTokens}`);
    if (match.value.stop === 'dangling') {
      reasons.push(`chunk ${match.value.chunks.length} is listed by a manifest but missing from the KV index (dangling reference); re-read from token ${match.value.chunkedTokens}`);
    }
    const reason = (): string | undefined => (reasons.length > 0 ? reasons.join('; ') : undefined);
    if (match.value.tokens <= have) {
      // The chat's own KV may be stored under another fingerprint (its cache settings changed): say so.
      const other = options.manifestPrefix === undefined ? undefined : this.#otherSettings(state, fp, options.manifestPrefix, tokens, have);
      if (other !== undefined) reasons.push(other);
      return { path: null, bytesRead: 0, ...(reason() !== undefined ? { reason: reason()! } : {}) };
    }
    const tail = this.#decodedTail(shape, match.value.tail);
    const tailManifestId = match.value.tail?.manifestId;
    let keys = match.value.chunks;
    /** Set when a chunk failed: the chunks before it still hold, and the general path restores them. */
    let fault: string | null = null;

    if (!shape.vTrans) {
      const usableTail = 'payload' in tail ? tail : null;
      const total = keys.length * size + (usableTail?.tokens ?? 0);
      if (total > have) {
        const scratch = this.#scratch();
        let keep = false;
        try {
          const writer = StateFileWriter.open(scratch, shape, total);
          if (writer.ok) {
            let placed = true;
            let undecodable: { index: number; key: string; message: string } | null = null;
            const buffer = this.#decodeBuffer.get(chunkPayloadSize(shape, size));
            const read = await this.store.forEachChunk(keys, (chunk, index) => {
              const raw = decodeChunk(shape, chunk.payload, this.kernels, buffer);
              if (!raw.ok) {
                undecodable = { index, key: chunk.key, message: raw.error.message };
                return false;
              }
              return (placed = writer.value.put(raw.value).ok);
            });
            const failed = undecodable as { index: number; key: string; message: string } | null;
            if (read.error === null && failed === null && placed && read.count === keys.length) {
              const finished = usableTail === null ? writer.value.finish() : writer.value.put(usableTail.payload).ok ? writer.value.finish() : null;
              if (finished?.ok) {
                if ('failed' in tail) reasons.push(`${tail.failed}; re-read from token ${keys.length * size}`);
                keep = true;
                return this.#assembled(scratch, total, read.bytes + (usableTail?.bytes ?? 0), reason(), usableTail ? tailManifestId : undefined);
              }
            }
            writer.value.close();
            if (read.error !== null) {
              fault = `chunk ${read.count} failed verification (${read.error.reason})`;
              keys = keys.slice(0, read.count);
            } else if (failed !== null) {
              await this.store.recordDamage(failed.key, failed.message);
              fault = `chunk ${failed.index} could not be decoded (${failed.message})`;
              keys = keys.slice(0, failed.index);
            }
          }
        } finally {
          if (!keep) removeScratchSync(scratch);
        }
      }
    }

    const read = await this.store.readChunks(keys);
    let bytesRead = read.chunks.reduce((sum, c) => sum + c.bytes, 0);
    // read.error, when set, is the earliest fault (it stops before `fault`'s chunk).
    if (read.error !== null) fault = `chunk ${read.chunks.length} failed verification (${read.error.reason})`;
    const payloads: Uint8Array[] = [];
    for (const chunk of read.chunks) {
      const raw = decodeChunk(shape, chunk.payload, this.kernels);
      if (!raw.ok) {
        await this.store.recordDamage(chunk.key, raw.error.message);
        fault = `chunk ${payloads.length} could not be decoded (${raw.error.message})`;
        break;
      }
      payloads.push(raw.value);
    }
    let total = payloads.length * size;
    let tailPayload: Uint8Array | null = null;
    if (fault !== null) {
      reasons.push(`${fault}; re-read from token ${total}`);
    } else if ('payload' in tail) {
      tailPayload = tail.payload;
      total += tail.tokens;
      bytesRead += tail.bytes;
    } else if ('failed' in tail) {
      reasons.push(`${tail.failed}; re-read from token ${total}`);
    }
    if (total <= have) return { path: null, bytesRead, ...(reason() !== undefined ? { reason: reason()! } : {}) };

    const scratch = this.#scratch();
    const written = await writeStateFile(scratch, shape, payloads, tailPayload);
    if (!written.ok) {
      removeScratchSync(scratch);
      return { path: null, bytesRead, reason: `The stored KV could not be assembled: ${written.error.message}` };
    }
    return this.#assembled(scratch, total, bytesRead, reason(), tailPayload ? tailManifestId : undefined);
  }

  #assembled(path: string, tokens: number, bytesRead: number, fallbackReason: string | undefined, tailManifestId: string | undefined): AssembledState {
    return {
      path,
      tokens,
      bytesRead,
      ...(fallbackReason !== undefined ? { fallbackReason } : {}),
      ...(tailManifestId !== undefined ? { tailManifestId } : {}),
      [Symbol.dispose]: () => removeScratchSync(path),
    };
  }

  /**
   * The matched tail's verified, decoded payload, cut to the tokens that match; `{}` without a
   * tail; `failed` (the restore says why) when it cannot be used.
   */
  #decodedTail(shape: StateShape, match: TailMatch | null): { payload: Uint8Array; tokens: number; bytes: number } | { failed: string } | Record<string, never> {
    if (match === null) return {};
    const tail = this.store.readTail(match.manifestId);
    if (!tail.ok) return { failed: 'the last partial chunk failed verification' };
    if (!tail.value.payload) return {};
    const raw = decodeChunk(shape, tail.value.payload, this.kernels);
    if (!raw.ok) return { failed: `the last partial chunk could not be decoded (${raw.error.message})` };
    const cut = match.tokens === match.storedTokens ? ok(raw.value) : truncateChunk(shape, raw.value, match.tokens);
    if (!cut.ok) return { failed: `the last partial chunk could not be cut (${cut.error.message})` };
    return { payload: cut.value, tokens: match.tokens, bytes: tail.value.payload.byteLength };
  }

  /** Loads the assembled state file into the sequence and checks that it holds the expected tokens. */
  async #load(
    sequence: LlamaContextSequence,
    scratch: string,
    tokens: readonly Token[],
    total: number,
    bytesRead: number,
    fallbackReason: string | undefined,
    tailManifest: string | undefined,
    elapsed: () => number,
  ): Promise<RestoreReport> {
    try {
      // llama.cpp's load replaces the sequence's cells itself; node-llama-cpp's clearHistory costs
      // ~1.5 ms at 16k tokens even on an empty sequence (a restart's case), so skip it then.
      if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
      this.markClean(sequence);
      await sequence.loadStateFromFile(scratch, { acceptRisk: true });
    } catch (error) {
      // A failed load can leave partial cells behind: start from an empty sequence instead.
      await sequence.clearHistory().catch(() => undefined);
      return {
        tokensRestored: 0,
        restoreMs: elapsed(),
        bytesRead,
        fallbackReason: `llama.cpp refused the stored KV (${errorText(error)}); re-read from the start`,
      };
    }
    const loaded = sequence.compareContextTokens(tokens as Token[]).firstDifferentIndex;
    if (loaded < total) {
      await sequence.clearHistory().catch(() => undefined);
      return { tokensRestored: 0, restoreMs: elapsed(), bytesRead, fallbackReason: 'the restored tokens did not match the chat; re-read from the start' };
    }
    if (tailManifest !== undefined) await this.store.touch(tailManifest);
    return { tokensRestored: total, restoreMs: elapsed(), bytesRead, ...(fallbackReason ? { fallbackReason } : {}) };
  }

  /** Deletes every manifest whose id starts with `manifestIdPrefix` (a chat's branches). */
  async forget(manifestIdPrefix: string): Promise<Result<ForgetReport>> {
    const ids = this.store.manifestIds(manifestIdPrefix);
    if (!ids.ok) return ids;
    let manifests = 0;
    let bytesFreed = 0;
    for (const id of ids.value) {
      const deleted = await this.store.deleteManifest(id);
      if (!deleted.ok) return deleted;
      if (deleted.value.deleted) manifests++;
      bytesFreed += deleted.value.bytesFreed;
    }
    return ok({ manifests, bytesFreed });
  }

  stats(): Promise<Result<KvStoreStats>> {
    return this.store.stats();
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
