/**
 * The resume benchmark's measurements at one conversation size (bench/resume.ts runs them per
 * model and KV configuration; resume-report.ts defines the row). Context A prefills the
 * conversation and saves it twice (node-llama-cpp's whole state file, and through the KV store);
 * every restore then goes into a fresh context created outside the timed part, and every
 * context gets its own KV profile, as the app prepares one per context load: a profile's state
 * transfer belongs to the context it was made for.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { KvCompression } from '../engine/contract/index.ts';
import type { LlamaContext, LlamaContextOptions, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { bytesPerToken, chunkPayloadSize, parseStateFile, stateFileSize, type StateShape } from '../engine/kv/codec.ts';
import { chunkFileBytes, chunkPath } from '../engine/kv/chunk-file.ts';
import type { KvCache, KvProfile } from '../engine/worker/kv-cache.ts';
import { StateTransfer, type StateTransferInfo } from '../engine/worker/state-transfer.ts';
import type { PageCache, ResumeRow } from './resume-report.ts';
import { copyFloorSamples, deviceWriteBytes, evictFromPageCache, kvIndexFiles, median, readFilesFloor, readWholeFile, round2, timed, withPeakRssDelta } from './util.ts';

/** Tokens of the next user message evaluated after a restore, before the first reply token. */
export const NEXT_MESSAGE_TOKENS = 8;
/** One more turn on top of a chat, for `turnWriteBytes`. */
export const TURN_TOKENS = 100;
export const CHUNK_TOKENS = 256;

/** One KV configuration of a row (bench/resume.ts `kvConfigs`). */
export interface RowConfig {
  readonly kvType: string;
  readonly flashAttention: boolean;
}

/** Everything one size's measurement needs. */
export interface SizeRun {
  readonly model: LlamaModel;
  readonly modelPath: string;
  /** The model's name in rows. */
  readonly label: string;
  readonly config: RowConfig;
  readonly cache: KvCache;
  readonly compression: KvCompression;
  readonly contextOptions: LlamaContextOptions & { readonly threads: number };
  readonly conversation: readonly Token[];
  readonly tokens: number;
  readonly reps: number;
  readonly pageCache: readonly PageCache[];
  /** Where node-llama-cpp's whole state file goes (on the measured disk). */
  readonly workDir: string;
  readonly scratchDir: string;
  readonly scratchFs: string | null;
  /** The scratch directory is on a disk, not in memory: its writes count in turnWriteBytes. */
  readonly scratchOnDisk: boolean;
  readonly log: (line: string) => void;
}

async function firstGreedyToken(sequence: LlamaContextSequence, input: Token[]): Promise<Token | null> {
  for await (const token of sequence.evaluate(input, { temperature: 0 })) return token;
  return null;
}

/** A KV profile for `context`, whose state transfer is probed on its idle, empty `sequence` (left empty), outside any timing. */
async function contextProfile(s: SizeRun, context: LlamaContext, sequence: LlamaContextSequence): Promise<{ profile: KvProfile; transfer: StateTransfer }> {
  const transfer = await StateTransfer.forContext(context, sequence);
  const profile = await s.cache.prepare({ model: s.model, context, modelPath: s.modelPath, flashAttention: s.config.flashAttention, transfer });
  return { profile, transfer };
}

/** Runs `body` on the only sequence of a fresh context, disposed after (a gigabyte each at kv-shape-8b's 8k). */
async function inFreshContext<T>(s: SizeRun, body: (sequence: LlamaContextSequence, context: LlamaContext) => Promise<T>): Promise<T> {
  const context = await s.model.createContext(s.contextOptions);
  try {
    return await body(context.getSequence(), context);
  } finally {
    await context.dispose();
  }
}

/** What context A's first store save left: the chat's chunk files, its tail, and the store's bytes. */
interface FirstSave {
  readonly ok: boolean;
  readonly chunkKeys: readonly string[];
  readonly chunkFiles: readonly string[];
  readonly tailBytes: number | null;
  readonly storeBytes: number | null;
}

/** The samples of one page-cache state. */
interface Measured {
  nativeRestore: number[];
  storeRestore: number[];
  setData: number[];
  ttft: number[];
  floor: number[];
  storeRead: number[];
  tailReread: number[];
  tokensRestored: number | null;
  firstTokenMatches: boolean | null;
  notes: string[];
}

/** What the per-mode restores share. */
interface RestoreInputs {
  readonly saved: FirstSave;
  readonly nativePath: string;
  /** node-llama-cpp's whole state file, read outside the timing; null unless the transfer is `memory`. */
  readonly nativeImage: Buffer | null;
  /** The uninterrupted context's first reply token. */
  readonly reference: Token | null;
}

/**
 * One page-cache state's restores: `reps` rounds after one discarded warm-up (JIT, SQLite
 * statements, allocator: the app is a long-running process, so a first-call-in-the-process
 * cost is not what a user waits for). Cold evicts what the next timed step reads just before it.
 */
async function measureRestores(s: SizeRun, mode: PageCache, input: RestoreInputs): Promise<Measured> {
  const { tokens, conversation, cache } = s;
  const { saved, nativePath, nativeImage, reference } = input;
  const withMessage = conversation.slice(0, tokens + NEXT_MESSAGE_TOKENS) as Token[];
  const chunkedTokens = saved.chunkKeys.length * CHUNK_TOKENS;
  const m: Measured = { nativeRestore: [], storeRestore: [], setData: [], ttft: [], floor: [], storeRead: [], tailReread: [], tokensRestored: null, firstTokenMatches: null, notes: [] };
  const evict = async (paths: readonly string[]): Promise<void> => {
    if (mode === 'cold' && !(await evictFromPageCache(paths))) throw new Error('cold reads need Linux with GNU dd (iflag=nocache); measure with --cache warm');
  };
  // What the store's reads touch: its chunk files and its index.
  const storeFiles = (): string[] => [...saved.chunkFiles, ...kvIndexFiles(cache.store.root)];
  // The floor's read buffer (+1: a read of 0 bytes at the end says the file is over).
  let largest = 0;
  for (const file of saved.chunkFiles) largest = Math.max(largest, (await stat(file)).size);
  const floorBuffer = Buffer.allocUnsafe(largest + 1);

  for (let rep = -1; rep < s.reps; rep++) {
    const keep = rep >= 0;
    // Native whole-file load.
    await inFreshContext(s, async (seq) => {
      await evict([nativePath]);
      const load = await timed(() => seq.loadStateFromFile(nativePath, { acceptRisk: true }));
      if (keep) m.nativeRestore.push(load.ms);
    });
    // llama.cpp's load of the same bytes from a buffer in memory.
    if (nativeImage !== null) {
      await inFreshContext(s, async (seq, context) => {
        const transfer = await StateTransfer.forContext(context, seq);
        if (transfer.info.mode !== 'memory') return void m.notes.push(`set data not measured: a fresh context's transfer is file (${transfer.info.reason ?? 'no reason given'})`);
        const written = await timed(() => transfer.write(seq, nativeImage));
        if (!written.value.ok) m.notes.push(`set data failed: ${written.value.error.message}`);
        else if (seq.nextTokenIndex !== tokens) m.notes.push(`set data left ${seq.nextTokenIndex} tokens, not ${tokens}`);
        else if (keep) m.setData.push(written.ms);
      });
    }
    if (!saved.ok) continue;
    // Store restore, then the next reply's first token.
    await inFreshContext(s, async (seq, context) => {
      const { profile } = await contextProfile(s, context, seq);
      await evict(storeFiles());
      const start = performance.now();
      const report = await cache.restore(profile, seq, withMessage);
      const restoredAt = performance.now();
      const first = await firstGreedyToken(seq, withMessage.slice(seq.nextTokenIndex));
      const firstAt = performance.now();
      m.tokensRestored = report.tokensRestored;
      if (report.tokensRestored !== tokens) {
        m.notes.push(`store restored ${report.tokensRestored} of ${tokens} tokens${report.fallbackReason ? `: ${report.fallbackReason}` : ''}`);
      } else if (keep) {
        m.storeRestore.push(restoredAt - start);
        m.ttft.push(firstAt - start);
      }
      m.firstTokenMatches = (m.firstTokenMatches ?? true) && reference !== null && first === reference;
    });
    // The tail's alternative: the full chunks from the store, then the tail re-read.
    if (tokens > chunkedTokens) {
      await inFreshContext(s, async (seq, context) => {
        const { profile } = await contextProfile(s, context, seq);
        await evict(storeFiles());
        const reread = await timed(async () => {
          const report = await cache.restore(profile, seq, withMessage.slice(0, chunkedTokens + 1));
          await seq.evaluateWithoutGeneratingNewTokens(withMessage.slice(seq.nextTokenIndex, tokens));
          return report.tokensRestored;
        });
        if (reread.value !== chunkedTokens) m.notes.push(`the tail re-read run restored ${reread.value} tokens, not ${chunkedTokens}`);
        else if (keep) m.tailReread.push(reread.ms);
      });
    }
    // The floor: the same chunk files, read plainly one after another with synchronous reads.
    // Async readFile pays a thread-pool round trip per open/read/close (milliseconds each on a
    // busy 2-core machine), which the store's restore path does not: the floor must be the
    // cheapest plain read, or the comparison flatters the store.
    if (saved.chunkFiles.length > 0) {
      await evict(saved.chunkFiles);
      const read = await timed(async () => readFilesFloor(saved.chunkFiles, floorBuffer));
      if (keep) m.floor.push(read.ms);
      // The store's verified read of the same chunks, without assembling or loading: splits
      // storeRestoreMs into "read + verify" and "assemble + llama.cpp load".
      await evict(storeFiles());
      const verified = await timed(() => cache.store.readChunks(saved.chunkKeys));
      if (keep && verified.value.error === null) m.storeRead.push(verified.ms);
    }
  }
  if (m.storeRestore.length > 0 && m.storeRestore.length < s.reps) m.notes.push('some store restores fell short; median over the full ones');
  return m;
}

/** The memory and scratch figures of one warm restore into a fresh context (outside the timed rounds). */
async function restoreFootprint(s: SizeRun, shape: StateShape | null, notes: string[]): Promise<{ peakDeltaBytes: number | null; scratchBytes: number; stateBytes: number | null }> {
  const withMessage = s.conversation.slice(0, s.tokens + NEXT_MESSAGE_TOKENS) as Token[];
  return inFreshContext(s, async (seq, context) => {
    // The profile and its probe come first: the context's KV buffer is resident before the reset.
    const { profile } = await contextProfile(s, context, seq);
    const scratchBefore = s.cache.scratchBytesWritten;
    const restored = await withPeakRssDelta(() => s.cache.restore(profile, seq, withMessage));
    const scratchBytes = s.cache.scratchBytesWritten - scratchBefore;
    const { tokensRestored } = restored.value;
    if (tokensRestored === 0) notes.push(`the footprint restore restored nothing${restored.value.fallbackReason ? `: ${restored.value.fallbackReason}` : ''}`);
    return { peakDeltaBytes: restored.peakDeltaBytes, scratchBytes, stateBytes: shape === null || tokensRestored === 0 ? null : stateFileSize(shape, tokensRestored) };
  });
}

/** One more 100-token turn on context A, saved under the same manifest: what it writes, costs and holds. */
interface TurnFigures {
  storeBytes: number | null;
  scratchBytes: number | null;
  fullStateBytes: number | null;
  deviceWriteBytes: number | null;
  saveMs: number | null;
  peakDeltaBytes: number | null;
}

const noTurn = (): TurnFigures => ({ storeBytes: null, scratchBytes: null, fullStateBytes: null, deviceWriteBytes: null, saveMs: null, peakDeltaBytes: null });

async function measureTurn(s: SizeRun, seqA: LlamaContextSequence, profile: KvProfile, manifestId: string, notes: string[]): Promise<TurnFigures> {
  const figures = noTurn();
  const have = seqA.contextTokens;
  const clean = have.length === s.tokens + NEXT_MESSAGE_TOKENS && have.every((t, i) => t === s.conversation[i]);
  if (!clean) {
    notes.push(`context A holds ${have.length} tokens after the reference token, not the expected ${s.tokens + NEXT_MESSAGE_TOKENS}: turn not measured`);
    return figures;
  }
  await seqA.evaluateWithoutGeneratingNewTokens(s.conversation.slice(s.tokens + NEXT_MESSAGE_TOKENS, s.tokens + TURN_TOKENS) as Token[]);
  const scratchBefore = s.cache.scratchBytesWritten;
  const before = deviceWriteBytes();
  const saved = await withPeakRssDelta(() => timed(() => s.cache.save(profile, seqA, manifestId)));
  const after = deviceWriteBytes();
  const turn = saved.value.value;
  if (!turn.ok) {
    notes.push(`turn save failed: ${turn.error.message}`);
    return figures;
  }
  return {
    storeBytes: turn.value.bytesWritten,
    scratchBytes: s.cache.scratchBytesWritten - scratchBefore,
    fullStateBytes: turn.value.stateBytes,
    deviceWriteBytes: before !== null && after !== null ? after - before : null,
    saveMs: saved.value.ms,
    peakDeltaBytes: saved.peakDeltaBytes,
  };
}

/** Context A's first store save, and where its bytes went. */
async function firstSave(s: SizeRun, profile: KvProfile, seqA: LlamaContextSequence, manifestId: string, notes: string[]): Promise<FirstSave> {
  const saved = await s.cache.save(profile, seqA, manifestId);
  if (!saved.ok) {
    notes.push(`store save failed: ${saved.error.message}`);
    return { ok: false, chunkKeys: [], chunkFiles: [], tailBytes: null, storeBytes: null };
  }
  const manifest = s.cache.store.getManifest(manifestId);
  if (!manifest.ok) {
    notes.push(`manifest not readable: ${manifest.error.message}`);
    return { ok: true, chunkKeys: [], chunkFiles: [], tailBytes: null, storeBytes: null };
  }
  const chunkFiles = manifest.value.chunks.map((key) => chunkPath(s.cache.store.root, key));
  let storeBytes = manifest.value.tail.bytes;
  for (const file of chunkFiles) storeBytes += (await stat(file)).size;
  return { ok: true, chunkKeys: manifest.value.chunks, chunkFiles, tailBytes: manifest.value.tail.bytes, storeBytes };
}

/** What context A measured before it was disposed. */
interface ContextAFigures {
  readonly prefillMs: number;
  readonly liveTtftMs: number;
  readonly nativeBytes: number;
  readonly shape: StateShape | null;
  readonly transfer: StateTransferInfo;
  readonly saved: FirstSave;
  readonly measured: ReadonlyMap<PageCache, Measured>;
  readonly footprint: Awaited<ReturnType<typeof restoreFootprint>> | null;
  readonly turn: TurnFigures;
}

/** Context A's part (see the module comment); its gigabyte at kv-shape-8b's 8k is freed before the copy floor. */
async function withContextA(s: SizeRun, notes: string[]): Promise<ContextAFigures> {
  const manifestId = `bench-${s.tokens}`;
  const nativePath = join(s.workDir, `native-${s.tokens}.bin`);
  const contextA = await s.model.createContext(s.contextOptions);
  try {
    const seqA = contextA.getSequence();
    const { profile } = await contextProfile(s, contextA, seqA);
    if (profile.fingerprint === null) notes.push(`store unusable: ${profile.fallbackReason ?? 'no reason given'}`);
    const transfer = s.cache.transferOf(profile);
    const prefill = await timed(() => seqA.evaluateWithoutGeneratingNewTokens(s.conversation.slice(0, s.tokens) as Token[]));
    s.log(`    ${s.tokens} tokens: prefill ${prefill.ms.toFixed(0)} ms (state transfer ${transfer.mode}${transfer.reason ? `: ${transfer.reason}` : ''})`);

    const native = await seqA.saveStateToFile(nativePath);
    // Read whole outside every timing: the shape comes from it, and set data loads it from memory.
    let nativeImage: Buffer | null = readWholeFile(nativePath);
    const parsed = parseStateFile(nativeImage);
    const shape = parsed.ok ? parsed.value.shape : null;
    if (!parsed.ok) notes.push(`native state not parsed: ${parsed.error.message}`);
    if (transfer.mode !== 'memory') nativeImage = null;

    const saved = await firstSave(s, profile, seqA, manifestId, notes);
    // The uninterrupted reference for the first reply token (breaking out leaves the sampled token unevaluated).
    const live = await timed(() => firstGreedyToken(seqA, s.conversation.slice(s.tokens, s.tokens + NEXT_MESSAGE_TOKENS) as Token[]));

    const measured = new Map<PageCache, Measured>();
    const inputs: RestoreInputs = { saved, nativePath, nativeImage, reference: live.value };
    for (const mode of s.pageCache) measured.set(mode, await measureRestores(s, mode, inputs));
    // Its gigabyte (at kv-shape-8b's 8k) goes before the memory peaks are measured.
    nativeImage = null;
    const footprint = saved.ok ? await restoreFootprint(s, shape, notes) : null;
    const turn = saved.ok ? await measureTurn(s, seqA, profile, manifestId, notes) : noTurn();
    return { prefillMs: prefill.ms, liveTtftMs: live.ms, nativeBytes: native.fileSize, shape, transfer, saved, measured, footprint, turn };
  } finally {
    await contextA.dispose();
    await rm(nativePath, { force: true });
  }
}

const samples = (values: readonly number[]): number[] => values.map((v) => round2(v) as number);

/**
 * One row per page-cache mode for a conversation of `tokens` tokens; resume-report.ts says what
 * each field covers. `readFloorMs` reads the same chunk files plainly (util.ts `readFilesFloor`;
 * the tail payload in index.db is not in it, which flatters the floor slightly). `turnWriteBytes`:
 * one more 100-token turn saved under the same manifest, plus what it wrote to scratch files when
 * the scratch directory is on a disk (/dev/shm, the default for the test model, is RAM).
 */
export async function measureSize(s: SizeRun): Promise<ResumeRow[]> {
  const notes: string[] = [];
  const a = await withContextA(s, notes);
  const { turn, saved, shape, footprint } = a;
  const copyFloor = turn.fullStateBytes === null ? [] : copyFloorSamples(turn.fullStateBytes, s.reps);
  const turnWriteBytes = turn.storeBytes === null || turn.scratchBytes === null ? null : turn.storeBytes + (s.scratchOnDisk ? turn.scratchBytes : 0);
  const turnLimitBytes = shape === null ? null : Math.floor(1.2 * (TURN_TOKENS * bytesPerToken(shape) + chunkFileBytes(CHUNK_TOKENS, chunkPayloadSize(shape, CHUNK_TOKENS))));
  const chunkedTokens = saved.chunkKeys.length * CHUNK_TOKENS;
  return [...a.measured].map(([mode, m]) => ({
    model: s.label,
    tokens: s.tokens,
    pageCache: mode,
    kvType: s.config.kvType,
    flashAttention: s.config.flashAttention,
    threads: s.contextOptions.threads,
    compression: s.compression,
    scratchDir: s.scratchDir,
    scratchFs: s.scratchFs,
    stateTransfer: a.transfer.mode,
    stateTransferReason: a.transfer.reason ?? null,
    prefillMs: round2(a.prefillMs),
    nativeRestoreMs: round2(median(m.nativeRestore)),
    storeRestoreMs: round2(median(m.storeRestore)),
    readFloorMs: round2(median(m.floor)),
    setDataMs: round2(median(m.setData)),
    ttftMs: round2(median(m.ttft)),
    storeReadMs: round2(median(m.storeRead)),
    liveTtftMs: round2(a.liveTtftMs),
    storeBytes: saved.storeBytes,
    nativeBytes: a.nativeBytes,
    turnWriteBytes,
    fullStateBytes: turn.fullStateBytes,
    turnStoreBytes: turn.storeBytes,
    turnScratchBytes: turn.scratchBytes,
    turnDeviceWriteBytes: turn.deviceWriteBytes,
    turnLimitBytes,
    saveMs: round2(turn.saveMs),
    copyFloorMs: round2(median(copyFloor)),
    scratchBytes: turn.scratchBytes === null || footprint === null ? null : turn.scratchBytes + footprint.scratchBytes,
    savePeakRssDeltaBytes: turn.peakDeltaBytes,
    restorePeakRssDeltaBytes: footprint?.peakDeltaBytes ?? null,
    restoredStateBytes: footprint?.stateBytes ?? null,
    tokensRestored: m.tokensRestored,
    tailTokens: saved.ok ? s.tokens - chunkedTokens : null,
    tailBytes: saved.tailBytes,
    tailRereadMs: round2(median(m.tailReread)),
    firstTokenMatches: m.firstTokenMatches,
    samples: {
      nativeRestoreMs: samples(m.nativeRestore),
      storeRestoreMs: samples(m.storeRestore),
      readFloorMs: samples(m.floor),
      setDataMs: samples(m.setData),
      storeReadMs: samples(m.storeRead),
      ttftMs: samples(m.ttft),
      tailRereadMs: samples(m.tailReread),
      copyFloorMs: samples(copyFloor),
    },
    notes: [...notes, ...m.notes],
  }));
}
