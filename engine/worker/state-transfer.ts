/**
 * Moving a sequence's state between llama.cpp and Hearth through memory instead of a scratch
 * file (docs/decisions/state-through-memory.md). node-llama-cpp saves and loads sequence state
 * only through files; the native addon's state bridge (native/src/state_bridge.cc) calls
 * llama.cpp's `llama_state_seq_get_data`/`set_data` on the context node-llama-cpp created.
 *
 * That reaches into another library's internals, so it is guarded, and anything short of every
 * guard passing means the file path, with the reason (Settings → Cache shows it):
 * - `HEARTH_STATE_TRANSFER=file` is not set;
 * - the addon was built with the bridge, against the node-llama-cpp version and llama.cpp release
 *   installed now, which are also the ones it was tested with (`TESTED_WITH`), and node-llama-cpp
 *   runs its prebuilt binaries (a build from source may lay its objects out differently);
 * - the bridge finds the loaded libllama and proves node-llama-cpp's object layout on the live
 *   context (`check`);
 * - a probe on the context passes: a short sequence saved through memory and through node-llama-cpp's
 *   file gives identical bytes, and loading it back through memory gives the same state again.
 *
 * Both directions use one buffer laid out as a state file (header, tokens, then llama.cpp's
 * sequence data), so the codec (engine/kv/codec.ts) parses and assembles the same bytes whichever
 * path they took. Every call holds the two locks node-llama-cpp's own `saveStateToFile` holds
 * (the sequence's evaluation lock, the context's lock): a llama.cpp context is not thread-safe.
 */
import { createRequire } from 'node:module';
import { rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { acquireLock, isLockActive } from 'lifecycle-utils';
import type { Llama, LlamaContext, LlamaContextSequence, Token } from 'node-llama-cpp';
import { err, errorText, ok, type Result } from '../contract/index.ts';
import { allocateLarge, nativeStateBridge } from '../kv/kernels-load.ts';
import { STATE_MAGIC, STATE_VERSION } from '../kv/state-file.ts';

/** How a context's sequence state moves: `memory` (the native bridge) or `file` (node-llama-cpp's scratch files), with why. */
export interface StateTransferInfo {
  readonly mode: 'memory' | 'file';
  /** Why the file path is used (absent for `memory`). */
  readonly reason?: string;
}

/** `HEARTH_STATE_TRANSFER=file` forces the file path. */
export const STATE_TRANSFER_ENV = 'HEARTH_STATE_TRANSFER';
/**
 * Test-only: `mismatch` makes the probe see one changed byte in the memory copy, so the tests can
 * check that a failing probe falls back. Never set it otherwise.
 */
export const PROBE_FAULT_ENV = 'HEARTH_TEST_STATE_PROBE';

/** The versions the bridge was tested with; any other keeps the file path. */
export const TESTED_WITH = { nodeLlamaCpp: '3.21.1', llamaCpp: 'v0.4.0' } as const;

/** llama.cpp's prefix of in-memory sequence data: u32 magic (llama-context.cpp `io_magic`), then the i32 sequence id. */
const IO_MAGIC = 0xaf143cd8;
const IO_PREFIX_BYTES = 8;

/** What the addon's `stateBridge` export holds (native/src/state_bridge.cc). */
interface Bridge {
  readonly build: { readonly nodeLlamaCpp: string; readonly llamaCpp: string } | null;
  readonly reason?: string;
  open(): string;
  check(context: object, model: object, nCtx: number, nSeqMax: number): string;
  size(context: object, seq: number): number;
  get(context: object, seq: number, bytes: Uint8Array): Promise<number>;
  set(context: object, seq: number, bytes: Uint8Array): Promise<number>;
}

/** node-llama-cpp 3.21.1's private fields the bridge uses; `TESTED_WITH` pins the version that has them. */
interface ContextInternals {
  readonly _ctx: object & { getContextSize(): number };
  readonly _model: { readonly _model: object };
  readonly totalSequences: number;
}
interface SequenceInternals {
  readonly _sequenceId: number;
  readonly _lock: object;
  _contextTokens: Token[];
  _nextTokenIndex: number;
  readonly _loadedTokenPredictions: unknown[];
  _tokenPredictorOwner: object;
  _abortTokenPredictor(skipClearingPredictionsFromState?: boolean): Promise<void>;
}

/** The installed node-llama-cpp's version, or null. */
function installedNodeLlamaCpp(): string | null {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve('node-llama-cpp'));
    for (let up = 0; up < 4; up++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'node-llama-cpp') return String(pkg.version);
      } catch {
        // not the package's folder yet
      }
    }
  } catch {
    // not resolvable: reported as unknown
  }
  return null;
}

/**
 * The bridge when every process-wide guard passes, else why not. `installed` is injectable for
 * the tests of the version guard.
 */
export function openBridge(llama: Pick<Llama, 'buildType' | 'llamaCppRelease'>, installed: string | null = installedNodeLlamaCpp()): { bridge: Bridge } | { reason: string } {
  if (process.env[STATE_TRANSFER_ENV] === 'file') return { reason: `${STATE_TRANSFER_ENV}=file is set` };
  const loaded = nativeStateBridge();
  if ('reason' in loaded) return { reason: loaded.reason };
  const bridge = loaded.bridge as Bridge | undefined;
  if (!bridge || typeof bridge !== 'object') return { reason: 'the native addon predates the state bridge (npm run build:native)' };
  if (!bridge.build) return { reason: bridge.reason ?? 'the native addon was built without the state bridge' };
  const { build } = bridge;
  if (installed !== build.nodeLlamaCpp) return { reason: `the state bridge was built for node-llama-cpp ${build.nodeLlamaCpp}, and ${installed ?? 'an unknown version'} is installed (npm run build:native)` };
  if (build.nodeLlamaCpp !== TESTED_WITH.nodeLlamaCpp || build.llamaCpp !== TESTED_WITH.llamaCpp) {
    return { reason: `the state bridge is tested with node-llama-cpp ${TESTED_WITH.nodeLlamaCpp} (llama.cpp ${TESTED_WITH.llamaCpp}), not ${build.nodeLlamaCpp} (${build.llamaCpp})` };
  }
  if (llama.llamaCppRelease.release !== build.llamaCpp) return { reason: `llama.cpp ${llama.llamaCppRelease.release} is loaded, and the state bridge was built for ${build.llamaCpp}` };
  if (llama.buildType !== 'prebuilt') return { reason: `node-llama-cpp runs a ${llama.buildType} build of llama.cpp, and the state bridge is only tested with its prebuilt binaries` };
  const opened = bridge.open();
  return opened === '' ? { bridge } : { reason: opened };
}

/** Reads a state file image's header: its token count and where llama.cpp's data starts. */
function imageHead(file: Uint8Array): Result<{ tokens: number; head: number }> {
  if (file.byteLength < 12) return err('INVALID_INPUT', 'The state image is shorter than its header.');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (view.getUint32(0, true) !== STATE_MAGIC || view.getUint32(4, true) !== STATE_VERSION) return err('INVALID_INPUT', 'The state image has another magic or version.');
  const tokens = view.getUint32(8, true);
  const head = 12 + 4 * tokens;
  if (head + 4 > file.byteLength) return err('INVALID_INPUT', 'The state image is shorter than its token list.');
  return ok({ tokens, head });
}

export class StateTransfer {
  readonly info: StateTransferInfo;
  readonly #bridge: Bridge | null;
  readonly #context: LlamaContext;

  private constructor(info: StateTransferInfo, context: LlamaContext, bridge: Bridge | null) {
    this.info = info;
    this.#context = context;
    this.#bridge = bridge;
  }

  /** The file path for `context`, with why. */
  static file(context: LlamaContext, reason: string): StateTransfer {
    return new StateTransfer({ mode: 'file', reason }, context, null);
  }

  /**
   * The transfer for `context`: memory when every guard passes and the probe passes on `probe`
   * (an idle, empty sequence of the context; it is left empty). Without `probe`, a sequence the
   * context has left is borrowed for the probe and given back; with none left, the file path is
   * used. Never throws.
   */
  static async forContext(context: LlamaContext, probe?: LlamaContextSequence): Promise<StateTransfer> {
    try {
      const opened = openBridge(context.model.llama);
      if ('reason' in opened) return StateTransfer.file(context, opened.reason);
      const internals = context as unknown as ContextInternals;
      const checked = opened.bridge.check(internals._ctx, internals._model._model, internals._ctx.getContextSize(), internals.totalSequences);
      if (checked !== '') return StateTransfer.file(context, checked);
      if (!probe && context.sequencesLeft === 0) return StateTransfer.file(context, 'no idle sequence to probe the state bridge with');
      const transfer = new StateTransfer({ mode: 'memory' }, context, opened.bridge);
      const sequence = probe ?? context.getSequence();
      let failed: string | null;
      try {
        failed = await transfer.#probe(sequence);
      } finally {
        // node-llama-cpp takes a disposed sequence's id back under the context lock, which is free.
        if (!probe) sequence.dispose();
      }
      return failed === null ? transfer : StateTransfer.file(context, `the state bridge's probe failed: ${failed}`);
    } catch (error) {
      return StateTransfer.file(context, `the state bridge failed: ${errorText(error)}`);
    }
  }

  /** Runs the probe (see the module comment); null when it passed, else what went wrong. */
  async #probe(sequence: LlamaContextSequence): Promise<string | null> {
    const path = join(tmpdir(), `hearth-state-probe-${process.pid}-${Date.now()}.bin`);
    try {
      const tokens = sequence.model.tokenize('Hearth checks that state moves through memory exactly.', true).slice(0, 6);
      if (tokens.length < 2) return 'the model gave too few tokens to probe with';
      await sequence.evaluateWithoutGeneratingNewTokens(tokens);
      const saving = sequence.saveStateToFile(path);
      // node-llama-cpp takes the sequence's lock synchronously: if our lifecycle-utils saw it, the
      // locks the bridge takes are the ones node-llama-cpp honours (one copy of the library).
      const sharedLocks = isLockActive([(sequence as unknown as SequenceInternals)._lock, 'evaluate']);
      await saving;
      if (!sharedLocks) return 'node-llama-cpp uses another copy of lifecycle-utils, so its locks cannot be shared';
      const file = readFileSync(path);
      const read = await this.read(sequence);
      if (!read.ok) return read.error.message;
      if (process.env[PROBE_FAULT_ENV] === 'mismatch') read.value[read.value.byteLength - 1]! ^= 1;
      if (!file.equals(read.value)) return 'the state read through memory differs from the state file';
      await sequence.clearHistory();
      const written = await this.write(sequence, read.value);
      if (!written.ok) return written.error.message;
      const again = await this.read(sequence);
      if (!again.ok) return again.error.message;
      if (!again.value.equals(read.value) || sequence.nextTokenIndex !== tokens.length) return 'the state loaded through memory did not read back the same';
      return null;
    } finally {
      await sequence.clearHistory().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
    }
  }

  /** Runs `body` holding the locks node-llama-cpp's own state save holds. */
  async #locked<T>(sequence: LlamaContextSequence, body: (seq: SequenceInternals, bridge: Bridge) => Promise<Result<T>>): Promise<Result<T>> {
    const bridge = this.#bridge;
    if (!bridge) return err('NOT_SUPPORTED', this.info.reason ?? 'memory transfer is off');
    // The bridge calls llama.cpp on this transfer's context: another context's sequence id would
    // name a different (or no) sequence there.
    if (sequence.context !== this.#context) return err('INTERNAL', 'The sequence belongs to another context than its state transfer.');
    const seq = sequence as unknown as SequenceInternals;
    const evaluation = await acquireLock([seq._lock, 'evaluate']);
    try {
      const context = await acquireLock([this.#context, 'context']);
      try {
        if (sequence.disposed || this.#context.disposed) return err('INTERNAL', 'The sequence is disposed.');
        return await body(seq, bridge);
      } finally {
        context.dispose();
      }
    } catch (error) {
      return err('INTERNAL', `The sequence state could not be moved through memory: ${errorText(error)}`);
    } finally {
      evaluation.dispose();
    }
  }

  /**
   * The sequence's whole state as one version 3 state file image (header, tokens, llama.cpp's
   * data): the bytes `saveStateToFile` would write, held in memory only, in a buffer from
   * `allocate` (sized exactly, at offset 0 of its memory).
   */
  read(sequence: LlamaContextSequence, allocate: (size: number) => Buffer = allocateLarge): Promise<Result<Buffer>> {
    return this.#locked(sequence, async (seq, bridge) => {
      const ctx = (this.#context as unknown as ContextInternals)._ctx;
      const tokens = seq._contextTokens;
      const head = 12 + 4 * tokens.length;
      const size = bridge.size(ctx, seq._sequenceId);
      if (size < IO_PREFIX_BYTES) return err('INTERNAL', 'llama.cpp reported no sequence state.');
      // At offset 0 of its memory, so the token list below is 4-byte aligned.
      const image = allocate(head - IO_PREFIX_BYTES + size);
      // llama.cpp writes its 8-byte prefix right before the data, over the last 8 bytes of the
      // header: the header is written after it.
      await bridge.get(ctx, seq._sequenceId, image.subarray(head - IO_PREFIX_BYTES));
      if (image.readUInt32LE(head - IO_PREFIX_BYTES) !== IO_MAGIC) return err('INTERNAL', 'llama.cpp wrote sequence state with an unknown prefix.');
      image.writeUInt32LE(STATE_MAGIC, 0);
      image.writeUInt32LE(STATE_VERSION, 4);
      image.writeUInt32LE(tokens.length, 8);
      new Int32Array(image.buffer, image.byteOffset + 12, tokens.length).set(tokens);
      return ok(image);
    });
  }

  /**
   * Loads a version 3 state file image into the sequence, replacing what it held, and tells
   * node-llama-cpp which tokens it now holds (as its `loadStateFromFile` does). The image's 8
   * bytes before llama.cpp's data are borrowed during the call and put back. On failure the
   * sequence is left empty.
   */
  write(sequence: LlamaContextSequence, file: Uint8Array): Promise<Result<void>> {
    return this.#locked(sequence, async (seq, bridge) => {
      const parsed = imageHead(file);
      if (!parsed.ok) return parsed;
      const { tokens, head } = parsed.value;
      if (tokens > sequence.contextSize) return err('INVALID_INPUT', `The state holds ${tokens} tokens, more than the context's ${sequence.contextSize}.`);
      // A plain loop: Array.from over a typed array goes through the iterator protocol, ~1 ms per
      // 10,000 tokens, on a path whose budget is a few milliseconds.
      const tokenView = new DataView(file.buffer, file.byteOffset + 12, 4 * tokens);
      const tokenList = new Array<Token>(tokens);
      for (let i = 0; i < tokens; i++) tokenList[i] = tokenView.getInt32(4 * i, true) as Token;
      seq._tokenPredictorOwner = {};
      await seq._abortTokenPredictor(true);
      seq._loadedTokenPredictions.length = 0;
      seq._nextTokenIndex = 0;
      seq._contextTokens = [];
      const prefix = file.subarray(head - IO_PREFIX_BYTES, head);
      const borrowed = Buffer.from(prefix);
      const view = new DataView(file.buffer, file.byteOffset + head - IO_PREFIX_BYTES, IO_PREFIX_BYTES);
      view.setUint32(0, IO_MAGIC, true);
      view.setInt32(4, seq._sequenceId, true);
      let read: number;
      try {
        read = await bridge.set((this.#context as unknown as ContextInternals)._ctx, seq._sequenceId, file.subarray(head - IO_PREFIX_BYTES));
      } finally {
        prefix.set(borrowed);
      }
      if (read !== file.byteLength - head + IO_PREFIX_BYTES) return err('INVALID_INPUT', `llama.cpp read ${read} of ${file.byteLength - head + IO_PREFIX_BYTES} bytes of the state.`);
      seq._contextTokens = tokenList;
      seq._nextTokenIndex = tokenList.length;
      return ok(undefined);
    });
  }
}
