/**
 * The engine-process glue between node-llama-cpp sequences and the KV store (engine/kv/store.ts)
 * plus codec (engine/kv/codec.ts): profiles, save (kv-save.ts), restore (kv-assemble.ts, then
 * llama.cpp's load here), forget. State moves through memory where the context's state bridge
 * passed its guards (state-transfer.ts), else through scratch files (kv-scratch.ts).
 * - A restore replaces the sequence's whole state (a sequence state cannot be appended to), so
 *   it only happens when the store holds more of the prompt than memory does.
 * - Chunks are stored encoded (engine/kv/frame.ts) in this cache's mode; a restore decodes any
 *   mode. `off` and `lossless` restore identical bytes and share a fingerprint; `lossy` (when some
 *   K/V section is F16) adds `storage: 'lossy-q8_0'` to it, so lossy KV never mixes with an exact
 *   chat (docs/decisions/lossy-only-f16.md).
 */
import { join } from 'node:path';
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { err, ok, type KvCompression, type Result, errorText } from '../contract/index.ts';
import { chunkKeys } from '../kv/fingerprint.ts';
import { lossyApplies } from '../kv/frame.ts';
import type { CodecKernels } from '../kv/kernels.ts';
import { loadKernels } from '../kv/kernels-load.ts';
import { commonPrefix, type Manifest } from '../kv/manifest.ts';
import { openKvStore, type KvStore, type KvStoreStats, type StoreLog } from '../kv/store.ts';
import { LargeBufferPool } from '../kv/large-buffer.ts';
import { fullWhileFlag, ReusableBuffer } from '../kv/store-fs.ts';
import { assembleState, type AssembledState, type NotAssembled } from './kv-assemble.ts';
import { StateTransfer, type StateTransferInfo } from './state-transfer.ts';
import { saveState, type SaveReport } from './kv-save.ts';
import { ScratchFiles } from './kv-scratch.ts';
import { describeSettings, expectedShape, settingsOf, shapeFingerprint, type CacheSettings, type ProfileState } from './kv-shape.ts';

export type { KvStoreStats } from '../kv/store.ts';
export type { AssembledState, NotAssembled, StateSource } from './kv-assemble.ts';
export type { StateTransferInfo } from './state-transfer.ts';
export type { SaveReport } from './kv-save.ts';
export { expectedShape } from './kv-shape.ts';

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

/** How many of `tokens` manifest `m` holds KV for: its chunks' hash chain, then its tail. */
function coverage(m: Manifest, tokens: readonly Token[]): number {
  const keys = chunkKeys(m.fingerprint, tokens.slice(0, m.chunks.length * m.chunkTokens), m.chunkTokens);
  let chunks = 0;
  while (chunks < keys.length && keys[chunks] === m.chunks[chunks]) chunks++;
  const covered = chunks * m.chunkTokens;
  return chunks === m.chunks.length ? covered + commonPrefix(m.tail.tokens, tokens, covered) : covered;
}

export class KvCache {
  readonly store: KvStore;
  /** The encoding of new chunks. */
  readonly compression: KvCompression;
  readonly kernels: CodecKernels;
  readonly #llamaRelease: string;
  readonly #scratch: ScratchFiles;
  readonly #profiles = new WeakMap<KvProfile, ProfileState>();
  /** Per sequence: tokens before this index are known clean (after a middle erase or shift). */
  readonly #cleanLimit = new WeakMap<LlamaContextSequence, number>();
  /** The decoded chunk on the restore path (flash attention on), kept between restores: ReusableBuffer. */
  readonly #decodeBuffer = new ReusableBuffer();
  /** Whole-state buffers of the memory path, one kept briefly for the next save or restore. */
  readonly #images = new LargeBufferPool();

  private constructor(store: KvStore, llamaRelease: string, scratch: ScratchFiles, compression: KvCompression, kernels: CodecKernels) {
    this.store = store;
    this.#llamaRelease = llamaRelease;
    this.#scratch = scratch;
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
    const scratch = await ScratchFiles.open(options.scratchDir, join(options.root, 'scratch'));
    if (!scratch.ok) {
      await store.value.close();
      return scratch;
    }
    return ok(new KvCache(store.value, options.llamaRelease, scratch.value, compression, kernels));
  }

  /**
   * Call after a model+context load. Hashes the model file (cached by path/size/mtime).
   * `transfer` says how the context's state moves (default: decided here, probing on a sequence
   * the context has left; with none left, the file path).
   */
  async prepare(input: { model: LlamaModel; context: LlamaContext; modelPath: string; flashAttention: boolean; transfer?: StateTransfer }): Promise<KvProfile> {
    const shape = expectedShape(input.model, input.context, input.flashAttention);
    if (!shape.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: ${shape.error.message}.` };
    const hash = await this.store.modelContentHash(input.modelPath);
    if (!hash.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: the model file could not be hashed (${hash.error.message}).` };
    const lossy = this.compression === 'lossy' && lossyApplies(shape.value);
    const fp = shapeFingerprint(this.#llamaRelease, shape.value, hash.value, lossy);
    if (!fp.ok) return { fingerprint: null, fallbackReason: `KV persistence is off: ${fp.error.message}` };
    // So the model's stored KV can be found and forgotten when the model is deleted (the
    // fingerprint cannot be reversed to its model). A failure is ignored: it only leaves this
    // fingerprint's manifests unattributed (they still restore, and leave by eviction), which is
    // no reason to turn persistence off; the next load records it again.
    this.store.recordFingerprint(fp.value, hash.value);
    const profile: KvProfile = { fingerprint: fp.value };
    const transfer = input.transfer ?? (await StateTransfer.forContext(input.context));
    this.#profiles.set(profile, { shape: shape.value, lossy, model: input.model, modelHash: hash.value, transfer });
    return profile;
  }

  /** The content hash of the model file `profile` was prepared for; null when persistence is off for it. */
  modelHashOf(profile: KvProfile): string | null {
    return this.#profiles.get(profile)?.modelHash ?? null;
  }

  /** How `profile`'s context moves sequence state (memory, or files with why). */
  transferOf(profile: KvProfile): StateTransferInfo {
    const state = this.#profiles.get(profile);
    return state ? state.transfer.info : { mode: 'file', reason: profile.fallbackReason ?? 'KV persistence is off for this model' };
  }

  /** Bytes this cache wrote to scratch state files so far (0 while state moves through memory). */
  get scratchBytesWritten(): number {
    return this.#scratch.bytesWritten;
  }

  /**
   * Why a chat re-reads what the store holds of it under another fingerprint (the readout says
   * why a chat whose cache settings changed reads its history again): among the manifests named
   * `manifestPrefix…`, the one that covers the most of `tokens` beyond `have` tokens. undefined
   * when none does.
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
    const then = settingsOf(this.#llamaRelease, state, best.manifest.fingerprint);
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
    const replaces = typeof options.replaces === 'string' ? [options.replaces] : (options.replaces ?? []);
    const parts = { store: this.store, compression: this.compression, kernels: this.kernels, scratch: this.#scratch, images: this.#images };
    return saveState(parts, { ...usable, sequence, manifestId, cleanLimit: this.#cleanLimit.get(sequence), replaces }, started);
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
    if (state.source === null) return { tokensRestored: 0, restoreMs: elapsed(), bytesRead: state.bytesRead, ...(state.reason !== undefined ? { fallbackReason: state.reason } : {}) };
    try {
      return await this.#load(this.#profiles.get(profile)!.transfer, sequence, state, tokens, elapsed);
    } finally {
      state[Symbol.dispose]();
    }
  }

  /**
   * Everything a restore does before llama.cpp's load (kv-assemble.ts), only when the store holds
   * more than `have` tokens (what the sequence already has); otherwise `source: null`, with a reason
   * when the user should see one (a damaged chunk, KV stored under other settings). The state is
   * an image in memory when the context's transfer is `memory`, else a scratch file. Dispose the
   * result to remove the file or give the image's memory back. Never throws.
   */
  async assembleState(profile: KvProfile, tokens: readonly Token[], have: number, options: { manifestPrefix?: string } = {}): Promise<AssembledState | NotAssembled> {
    const usable = this.#usable(profile);
    if ('reason' in usable) return { source: null, bytesRead: 0, reason: usable.reason };
    const { fp, state } = usable;
    const prefix = options.manifestPrefix;
    return assembleState(
      { store: this.store, kernels: this.kernels, scratch: this.#scratch, target: state.transfer.info.mode, images: this.#images, decodeBuffer: this.#decodeBuffer },
      { fp, shape: state.shape, tokens, have, ...(prefix !== undefined ? { otherSettings: () => this.#otherSettings(state, fp, prefix, tokens, have) } : {}) },
    );
  }

  /** Loads the assembled state into the sequence and checks that it holds the expected tokens. */
  async #load(transfer: StateTransfer, sequence: LlamaContextSequence, state: AssembledState, tokens: readonly Token[], elapsed: () => number): Promise<RestoreReport> {
    const { bytesRead, source } = state;
    try {
      // llama.cpp's load replaces the sequence's cells itself; node-llama-cpp's clearHistory costs
      // ~1.5 ms at 16k tokens even on an empty sequence (a restart's case), so skip it then.
      if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
      this.markClean(sequence);
      if ('image' in source) {
        const written = await transfer.write(sequence, source.image);
        if (!written.ok) throw new Error(written.error.message);
      } else {
        await sequence.loadStateFromFile(source.file, { acceptRisk: true });
      }
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
    if (loaded < state.tokens) {
      await sequence.clearHistory().catch(() => undefined);
      return { tokensRestored: 0, restoreMs: elapsed(), bytesRead, fallbackReason: 'the restored tokens did not match the chat; re-read from the start' };
    }
    // Recency for eviction only: the chat does not wait for the index write (store calls run in
    // order, so the next save or eviction sees it).
    if (state.tailManifestId !== undefined) void this.store.touch(state.tailManifestId);
    return { tokensRestored: state.tokens, restoreMs: elapsed(), bytesRead, ...(state.fallbackReason ? { fallbackReason: state.fallbackReason } : {}) };
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

  /** Bytes of whole-state memory kept for the next save or restore (large-buffer.ts says why). */
  get retainedBytes(): number {
    return this.#images.heldBytes;
  }

  /** Lets go of memory kept for reuse (a model unload). */
  releaseMemory(): void {
    this.#images.clear();
  }

  async close(): Promise<void> {
    this.#images.clear();
    await this.store.close();
  }
}
