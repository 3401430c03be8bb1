/**
 * `npm run bench -- resume`: how fast a chat resumes from Hearth's KV store compared with what
 * other apps do (re-read the history, or load a whole-file state snapshot), and how close it gets
 * to the floor of reading the same bytes. It exists because resuming from disk is Hearth's reason
 * to be: the figures in docs/benchmarks.md come from it.
 *
 * Only ratios measured in the same run mean anything (the machine is shared and noisy), and
 * nothing here is a timed assertion. Each restore goes into a fresh context created outside the
 * timed part; restores are repeated `--reps` times after one discarded warm-up round and the
 * median is reported. `cold` evicts from the page cache everything the next timed step reads from
 * disk (the chunk files, and the KV index with its WAL), so it stands for a chat reopened after a
 * reboot; `warm` for one reopened minutes later. `measureSize` says what each figure covers.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { KvCodecInfo, KvCompression } from '../engine/contract/index.ts';
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextOptions, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { bytesPerToken, chunkPayloadSize, parseStateFile, type StateShape } from '../engine/kv/codec.ts';
import { chunkFileBytes, chunkPath } from '../engine/kv/chunk-file.ts';
import { loadKernels } from '../engine/kv/kernels-load.ts';
import { KvCache, type KvProfile } from '../engine/worker/kv-cache.ts';
import { repoRoot, tinyModelPath, trainedModelsDir } from '../test/support/models.ts';
import { markdownTable, type Column } from './table.ts';
import { deviceWriteBytes, evictFromPageCache, fsTypeOf, isMemoryFs, kvIndexFiles, machineInfo, median, readFilesFloor, round2, timed, type MachineInfo } from './util.ts';

/** Tokens of the next user message evaluated after a restore, before the first reply token. */
const NEXT_MESSAGE_TOKENS = 8;
/** One more turn on top of a chat, for `turnWriteBytes`. */
const TURN_TOKENS = 100;
const CHUNK_TOKENS = 256;

export type KvConfigName = 'f16' | 'q8_0' | 'f16-fa-off';

interface KvConfig {
  readonly name: KvConfigName;
  readonly kvType: string;
  readonly k: 'F16' | 'Q8_0';
  readonly v: 'F16' | 'Q8_0';
  readonly flashAttention: boolean;
  /** Q8_0 prefill is ~6× slower on one CPU thread: by default it runs at the largest size only. */
  readonly largestOnly: boolean;
}

export const kvConfigs: Readonly<Record<KvConfigName, KvConfig>> = {
  f16: { name: 'f16', kvType: 'f16/f16', k: 'F16', v: 'F16', flashAttention: true, largestOnly: false },
  q8_0: { name: 'q8_0', kvType: 'q8_0/q8_0', k: 'Q8_0', v: 'Q8_0', flashAttention: true, largestOnly: true },
  'f16-fa-off': { name: 'f16-fa-off', kvType: 'f16/f16', k: 'F16', v: 'F16', flashAttention: false, largestOnly: false },
};

export interface ResumeOptions {
  readonly jsonPath: string;
  /** Extra GGUF models (the generated test model always runs first). */
  readonly models: readonly string[];
  readonly threads: number;
  readonly sizes: readonly number[];
  readonly kv: readonly KvConfigName[];
  readonly reps: number;
  /** Where stores and native state files go (on a disk: that is what is measured). */
  readonly dir: string;
  /** KvCache scratch directory; default /dev/shm/hearth-bench-<pid> where /dev/shm exists (as the app). */
  readonly scratchDir?: string;
  /** Which page-cache states to measure restores in (default both, in the same run). */
  readonly pageCache: readonly PageCache[];
  /** Run every configuration at every size (Q8_0 runs at the largest only otherwise). */
  readonly allSizes: boolean;
  /** The store's disk encoding (KvCache `compression`); default `lossless`, the app's default. */
  readonly compression?: KvCompression;
  readonly log: (line: string) => void;
}

/**
 * `warm`: every file read was just written, so it comes from the page cache (a chat reopened
 * minutes later). `cold`: the measured files are evicted from the page cache before each timed
 * read (`evictFromPageCache`), so they come from the device (a chat reopened after a reboot, or
 * days later).
 */
export type PageCache = 'warm' | 'cold';

export interface ResumeRow {
  readonly model: string;
  readonly tokens: number;
  readonly pageCache: PageCache;
  readonly kvType: string;
  readonly flashAttention: boolean;
  /** The store's disk encoding the row was measured with. */
  readonly compression: KvCompression;
  readonly prefillMs: number | null;
  readonly nativeRestoreMs: number | null;
  readonly storeRestoreMs: number | null;
  readonly readFloorMs: number | null;
  readonly ttftMs: number | null;
  /**
   * The same next message's first token in the uninterrupted context A (nothing restored): the
   * part of ttftMs that is decoding, not restoring. One sample (context A lives once).
   */
  readonly liveTtftMs: number | null;
  /** The store's verified read of the chunk files alone (readChunks: read + crc + key check), no assembly or load. */
  readonly storeReadMs: number | null;
  readonly storeBytes: number | null;
  readonly nativeBytes: number | null;
  readonly turnWriteBytes: number | null;
  readonly fullStateBytes: number | null;
  /** Parts of turnWriteBytes: the store's report, and the scratch state file (counted only when on a disk). */
  readonly turnStoreBytes: number | null;
  readonly turnScratchBytes: number | null;
  /**
   * What the turn's save sent to storage devices by Linux's account (/proc/self/io: written minus
   * cancelled bytes), scratch included: with `--scratch` on a disk file system (as on macOS and
   * Windows, which have no /dev/shm) it shows whether the short-lived state file reached the disk.
   */
  readonly turnDeviceWriteBytes: number | null;
  /** 1.2 × (100 tokens' KV + one chunk file): the acceptance limit for turnWriteBytes. */
  readonly turnLimitBytes: number | null;
  readonly tokensRestored: number | null;
  /**
   * The tail: the tokens after the last full chunk, which could be kept as a prefix of the next
   * chunk or as a small partial chunk; the choice is measured here. Hearth stores it as a partial chunk (its KV in the manifest row, `tailBytes`), and
   * storeRestoreMs includes loading it. `tailRereadMs` measures the alternative: restore only the
   * full chunks and re-read (prefill) the `tailTokens` after them.
   */
  readonly tailTokens: number | null;
  readonly tailBytes: number | null;
  readonly tailRereadMs: number | null;
  /** The first greedy reply token after the store restore equals the uninterrupted context's. */
  readonly firstTokenMatches: boolean | null;
  /** Every kept sample (ms) behind the medians: reading 16 MB into fresh buffers is bimodal here (~10 vs ~40 ms), so look at the spread. */
  readonly samples: {
    readonly nativeRestoreMs: readonly number[];
    readonly storeRestoreMs: readonly number[];
    readonly readFloorMs: readonly number[];
    readonly storeReadMs: readonly number[];
    readonly ttftMs: readonly number[];
    readonly tailRereadMs: readonly number[];
  };
  readonly notes: readonly string[];
}

export interface ResumeReport {
  readonly rows: ResumeRow[];
  readonly machine: MachineInfo & {
    readonly threads: number;
    readonly nodeLlamaCpp: string;
    readonly llamaCppRelease: string;
    readonly storeDir: string;
    readonly storeFs: string | null;
    readonly scratchDir: string;
    readonly scratchFs: string | null;
    readonly pageCache: readonly PageCache[];
    readonly reps: number;
    readonly chunkTokens: number;
    readonly compression: KvCompression;
    /** The codec kernels the store ran with. */
    readonly codec: KvCodecInfo;
  };
  readonly date: string;
  readonly acceptance: AcceptanceLine[];
}

export interface AcceptanceLine {
  readonly model: string;
  /** The page-cache state the restore was measured in; null for checks that do not depend on it. */
  readonly pageCache: PageCache | null;
  readonly kvType: string;
  readonly flashAttention: boolean;
  readonly tokens: number;
  readonly check: string;
  readonly pass: boolean | null;
  readonly detail: string;
}

/** Deterministic conversation text: a small trained model's held-out text when present, else a seeded word mix. */
async function conversationText(minChars: number): Promise<{ text: string; source: string }> {
  const austen = join(trainedModelsDir, 'austen-eval.txt');
  let base: string;
  let source: string;
  if (existsSync(austen)) {
    base = await readFile(austen, 'utf8');
    source = austen;
  } else {
    const words = ['the', 'letter', 'was', 'read', 'twice', 'before', 'she', 'could', 'say', 'whether', 'it', 'pleased', 'her', 'and', 'then', 'walked', 'out'];
    let s = 20261127;
    const out: string[] = [];
    let size = 0;
    while (size < minChars) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const word = words[(s >>> 8) % words.length]!;
      out.push(word);
      size += word.length + 1;
    }
    base = out.join(' ');
    source = 'seeded word mix';
  }
  let text = base;
  while (text.length < minChars) text += `\n\n${base}`;
  return { text, source };
}

async function conversationTokens(model: LlamaModel, needed: number, log: (line: string) => void): Promise<Token[]> {
  // Byte-level test models give ~1 token per character; real tokenizers fewer, so grow until enough.
  let chars = needed + 1024;
  for (;;) {
    const { text, source } = await conversationText(chars);
    const tokens = model.tokenize(text);
    if (tokens.length >= needed) {
      log(`  conversation: ${source}, ${needed.toLocaleString('en-US')} tokens`);
      return tokens.slice(0, needed);
    }
    chars = Math.ceil((chars * needed * 1.1) / Math.max(1, tokens.length));
  }
}

async function firstGreedyToken(sequence: LlamaContextSequence, input: Token[]): Promise<Token | null> {
  for await (const token of sequence.evaluate(input, { temperature: 0 })) return token;
  return null;
}

interface ModelRun {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly modelPath: string;
  readonly label: string;
}

interface Measured {
  nativeRestore: number[];
  storeRestore: number[];
  ttft: number[];
  floor: number[];
  storeRead: number[];
  tailReread: number[];
  tokensRestored: number | null;
  firstTokenMatches: boolean | null;
  notes: string[];
}

/**
 * One row per page-cache mode for a conversation of `tokens` tokens. Context A prefills them
 * (`prefillMs`), saves node-llama-cpp's whole state file (`nativeBytes`) and saves through
 * `KvCache.save` (`storeBytes`: chunk files + tail payload). `nativeRestoreMs` times
 * `loadStateFromFile`; `storeRestoreMs` times `KvCache.restore` of the chat plus an 8-token next
 * message; `ttftMs` goes on from the same start to the first greedy token, checked against the
 * uninterrupted context (`firstTokenMatches`), and `liveTtftMs` is that step in context A.
 * `readFloorMs` reads the same chunk files plainly (util.ts `readFilesFloor`; the tail payload in
 * index.db is not in it, which flatters the floor slightly). `tailRereadMs` restores only the full
 * chunks and re-reads the tail tokens, the alternative to the partial chunk Hearth stores.
 * `turnWriteBytes`: one more 100-token turn saved under the same manifest, plus the scratch state
 * file when the scratch directory is on a disk (/dev/shm, the default, is RAM).
 */
async function measureSize(
  run: ModelRun,
  config: KvConfig,
  cache: KvCache,
  profile: KvProfile,
  contextOptions: LlamaContextOptions,
  conversation: Token[],
  tokens: number,
  options: ResumeOptions,
  scratchOnDisk: boolean,
  workDir: string,
): Promise<ResumeRow[]> {
  const { log } = options;
  const prefix = conversation.slice(0, tokens);
  const message = conversation.slice(tokens, tokens + NEXT_MESSAGE_TOKENS);
  const withMessage = conversation.slice(0, tokens + NEXT_MESSAGE_TOKENS);
  const notes: string[] = [];
  const manifestId = `bench-${tokens}`;
  const nativePath = join(workDir, `native-${tokens}.bin`);

  const contextA = await run.model.createContext(contextOptions);
  try {
    const seqA = contextA.getSequence();
    const prefill = await timed(() => seqA.evaluateWithoutGeneratingNewTokens(prefix));
    log(`    ${tokens} tokens: prefill ${prefill.ms.toFixed(0)} ms`);

    const native = await seqA.saveStateToFile(nativePath);
    const parsed = parseStateFile(await readFile(nativePath));
    let shape: StateShape | null = null;
    if (parsed.ok) shape = parsed.value.shape;
    else notes.push(`native state not parsed: ${parsed.error.message}`);

    let storeBytes: number | null = null;
    const saved = await cache.save(profile, seqA, manifestId);
    let chunkFiles: string[] = [];
    let chunkKeys: readonly string[] = [];
    let tailBytes: number | null = null;
    if (!saved.ok) {
      notes.push(`store save failed: ${saved.error.message}`);
    } else {
      const manifest = cache.store.getManifest(manifestId);
      if (manifest.ok) {
        chunkKeys = manifest.value.chunks;
        chunkFiles = manifest.value.chunks.map((key) => chunkPath(cache.store.root, key));
        tailBytes = manifest.value.tail.bytes;
        let bytes = tailBytes;
        for (const file of chunkFiles) bytes += (await stat(file)).size;
        storeBytes = bytes;
      } else {
        notes.push(`manifest not readable: ${manifest.error.message}`);
      }
    }

    // The floor's read buffer (+1: a read of 0 bytes at the end says the file is over).
    let largest = 0;
    for (const file of chunkFiles) largest = Math.max(largest, (await stat(file)).size);
    const floorBuffer = Buffer.allocUnsafe(largest + 1);

    // The uninterrupted reference for the first reply token (breaking out leaves the sampled token unevaluated).
    const live = await timed(() => firstGreedyToken(seqA, message));
    const reference = live.value;
    const chunkedTokens = chunkKeys.length * CHUNK_TOKENS;
    const tailTokens = saved.ok ? tokens - chunkedTokens : null;

    const measured = new Map<PageCache, Measured>();
    for (const mode of options.pageCache) {
      const m: Measured = { nativeRestore: [], storeRestore: [], ttft: [], floor: [], storeRead: [], tailReread: [], tokensRestored: null, firstTokenMatches: null, notes: [] };
      measured.set(mode, m);
      // Cold: the files the next timed step reads are evicted just before it (and nothing else).
      const evict = (paths: readonly string[]): void => {
        if (mode === 'cold' && !evictFromPageCache(paths)) throw new Error('cold reads need Linux with GNU dd (iflag=nocache); measure with --cache warm');
      };
      // What the store's reads touch: its chunk files and its index.
      const storeFiles = (): string[] => [...chunkFiles, ...kvIndexFiles(cache.store.root)];
      // Rep -1 warms up (JIT, SQLite statements, allocator) and is discarded: the app is a
      // long-running process, so a first-call-in-the-process cost is not what a user waits for.
      for (let rep = -1; rep < options.reps; rep++) {
        const keep = rep >= 0;
        // Native whole-file load.
        {
          const ctx = await run.model.createContext(contextOptions);
          try {
            const seq = ctx.getSequence();
            evict([nativePath]);
            const load = await timed(() => seq.loadStateFromFile(nativePath, { acceptRisk: true }));
            if (keep) m.nativeRestore.push(load.ms);
          } finally {
            await ctx.dispose();
          }
        }
        // Store restore, then the next reply's first token.
        if (saved.ok) {
          const ctx = await run.model.createContext(contextOptions);
          try {
            const seq = ctx.getSequence();
            evict(storeFiles());
            const start = performance.now();
            const report = await cache.restore(profile, seq, withMessage);
            const restoredAt = performance.now();
            const rest = withMessage.slice(seq.nextTokenIndex);
            const first = await firstGreedyToken(seq, rest);
            const firstAt = performance.now();
            m.tokensRestored = report.tokensRestored;
            if (report.tokensRestored !== tokens) {
              m.notes.push(`store restored ${report.tokensRestored} of ${tokens} tokens${report.fallbackReason ? `: ${report.fallbackReason}` : ''}`);
            } else if (keep) {
              m.storeRestore.push(restoredAt - start);
              m.ttft.push(firstAt - start);
            }
            const matches = reference !== null && first === reference;
            m.firstTokenMatches = (m.firstTokenMatches ?? true) && matches;
          } finally {
            await ctx.dispose();
          }
        }
        // The tail's alternative: the full chunks from the store, then the tail re-read.
        if (saved.ok && tailTokens !== null && tailTokens > 0) {
          const ctx = await run.model.createContext(contextOptions);
          try {
            const seq = ctx.getSequence();
            evict(storeFiles());
            const reread = await timed(async () => {
              const report = await cache.restore(profile, seq, withMessage.slice(0, chunkedTokens + 1));
              await seq.evaluateWithoutGeneratingNewTokens(withMessage.slice(seq.nextTokenIndex, tokens));
              return report.tokensRestored;
            });
            if (reread.value !== chunkedTokens) m.notes.push(`the tail re-read run restored ${reread.value} tokens, not ${chunkedTokens}`);
            else if (keep) m.tailReread.push(reread.ms);
          } finally {
            await ctx.dispose();
          }
        }
        // The floor: the same chunk files, read plainly one after another with synchronous reads.
        // Async readFile pays a thread-pool round trip per open/read/close (milliseconds each on a
        // busy 2-core machine), which the store's restore path does not: the floor must be the
        // cheapest plain read, or the comparison flatters the store.
        if (chunkFiles.length > 0) {
          evict(chunkFiles);
          const read = await timed(async () => readFilesFloor(chunkFiles, floorBuffer));
          if (keep) m.floor.push(read.ms);
          // The store's verified read of the same chunks, without assembling or loading: splits
          // storeRestoreMs into "read + verify" and "assemble + llama.cpp load".
          evict(storeFiles());
          const verified = await timed(() => cache.store.readChunks(chunkKeys));
          if (keep && verified.value.error === null) m.storeRead.push(verified.ms);
        }
      }
      if (m.storeRestore.length > 0 && m.storeRestore.length < options.reps) m.notes.push('some store restores fell short; median over the full ones');
    }

    // One more 100-token turn on top of the chat: what does saving it write?
    let turnStoreBytes: number | null = null;
    let turnScratchBytes: number | null = null;
    let fullStateBytes: number | null = null;
    let turnDeviceWriteBytes: number | null = null;
    const have = seqA.contextTokens;
    const clean = have.length === tokens + NEXT_MESSAGE_TOKENS && have.every((t, i) => t === conversation[i]);
    if (!clean) {
      notes.push(`context A holds ${have.length} tokens after the reference token, not the expected ${tokens + NEXT_MESSAGE_TOKENS}: turn not measured`);
    } else if (saved.ok) {
      await seqA.evaluateWithoutGeneratingNewTokens(conversation.slice(tokens + NEXT_MESSAGE_TOKENS, tokens + TURN_TOKENS));
      const before = deviceWriteBytes();
      const turn = await cache.save(profile, seqA, manifestId);
      const after = deviceWriteBytes();
      if (before !== null && after !== null) turnDeviceWriteBytes = after - before;
      if (turn.ok) {
        turnStoreBytes = turn.value.bytesWritten;
        turnScratchBytes = turn.value.stateBytes;
        fullStateBytes = turn.value.stateBytes;
      } else {
        notes.push(`turn save failed: ${turn.error.message}`);
      }
    }
    const turnWriteBytes = turnStoreBytes === null || turnScratchBytes === null ? null : turnStoreBytes + (scratchOnDisk ? turnScratchBytes : 0);
    const turnLimitBytes = shape === null ? null : Math.floor(1.2 * (TURN_TOKENS * bytesPerToken(shape) + chunkFileBytes(CHUNK_TOKENS, chunkPayloadSize(shape, CHUNK_TOKENS))));

    return [...measured].map(([mode, m]) => ({
      model: run.label,
      tokens,
      pageCache: mode,
      kvType: config.kvType,
      flashAttention: config.flashAttention,
      compression: options.compression ?? 'lossless',
      prefillMs: round2(prefill.ms),
      nativeRestoreMs: round2(median(m.nativeRestore)),
      storeRestoreMs: round2(median(m.storeRestore)),
      readFloorMs: round2(median(m.floor)),
      ttftMs: round2(median(m.ttft)),
      storeReadMs: round2(median(m.storeRead)),
      liveTtftMs: round2(live.ms),
      storeBytes,
      nativeBytes: native.fileSize,
      turnWriteBytes,
      fullStateBytes,
      turnStoreBytes,
      turnScratchBytes,
      turnDeviceWriteBytes,
      turnLimitBytes,
      tokensRestored: m.tokensRestored,
      tailTokens,
      tailBytes,
      tailRereadMs: round2(median(m.tailReread)),
      firstTokenMatches: m.firstTokenMatches,
      samples: {
        nativeRestoreMs: m.nativeRestore.map((v) => round2(v) as number),
        storeRestoreMs: m.storeRestore.map((v) => round2(v) as number),
        readFloorMs: m.floor.map((v) => round2(v) as number),
        storeReadMs: m.storeRead.map((v) => round2(v) as number),
        ttftMs: m.ttft.map((v) => round2(v) as number),
        tailRereadMs: m.tailReread.map((v) => round2(v) as number),
      },
      notes: [...notes, ...m.notes],
    }));
  } finally {
    await contextA.dispose();
    await rm(nativePath, { force: true });
  }
}

/** The acceptance checks of one row; `withTurn` adds the turn-write check (the same for every page-cache row). */
function acceptanceFor(row: ResumeRow, withTurn: boolean): AcceptanceLine[] {
  const base = { model: row.model, pageCache: row.pageCache, kvType: row.kvType, flashAttention: row.flashAttention, tokens: row.tokens };
  const lines: AcceptanceLine[] = [];
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  const { storeRestoreMs: s, readFloorMs: f, prefillMs: p, nativeRestoreMs: n, turnWriteBytes: w, turnLimitBytes: l } = row;
  lines.push(
    s === null || f === null
      ? { ...base, check: 'storeRestoreMs ≤ 2 × readFloorMs + 10 ms', pass: null, detail: 'not measured' }
      : {
          ...base,
          check: 'storeRestoreMs ≤ 2 × readFloorMs + 10 ms',
          pass: s <= 2 * f + 10,
          // The lower bound of any store that must hand llama.cpp a file (node-llama-cpp 3.21.1
          // loads sequence state from files only): read the bytes once, then llama.cpp's load.
          detail: `${ms(s)} vs limit ${ms(2 * f + 10)} (floor ${ms(f)}${n === null ? '' : `; reading once plus llama.cpp's own file load, floor + native restore, is ${ms(f + n)}`})`,
        },
  );
  lines.push(
    s === null || p === null
      ? { ...base, check: 'storeRestoreMs ≤ prefillMs / 10', pass: null, detail: 'not measured' }
      : { ...base, check: 'storeRestoreMs ≤ prefillMs / 10', pass: s <= p / 10, detail: `${ms(s)} vs limit ${ms(p / 10)} (prefill ${ms(p)}; ${(p / s).toFixed(1)}× faster)` },
  );
  if (!withTurn) return lines;
  const turn = { ...base, pageCache: null };
  lines.push(
    w === null || l === null
      ? { ...turn, check: 'turnWriteBytes ≤ 1.2 × (100 tokens’ KV + one chunk)', pass: null, detail: 'not measured' }
      : { ...turn, check: 'turnWriteBytes ≤ 1.2 × (100 tokens’ KV + one chunk)', pass: w <= l, detail: `${w.toLocaleString('en-US')} B vs limit ${l.toLocaleString('en-US')} B (full state ${row.fullStateBytes?.toLocaleString('en-US') ?? '—'} B)` },
  );
  return lines;
}

const columns: Column<ResumeRow>[] = [
  { title: 'model', value: (r) => r.model },
  { title: 'tokens', value: (r) => r.tokens, numeric: true },
  { title: 'page cache', value: (r) => r.pageCache },
  { title: 'KV', value: (r) => `${r.kvType}${r.flashAttention ? '' : ' (FA off)'}` },
  { title: 'compression', value: (r) => r.compression },
  { title: 'prefill ms', value: (r) => r.prefillMs, numeric: true },
  { title: 'native restore ms', value: (r) => r.nativeRestoreMs, numeric: true },
  { title: 'store restore ms', value: (r) => r.storeRestoreMs, numeric: true },
  { title: 'read floor ms', value: (r) => r.readFloorMs, numeric: true },
  { title: 'tail re-read ms', value: (r) => r.tailRereadMs, numeric: true },
  { title: 'store read ms', value: (r) => r.storeReadMs, numeric: true },
  { title: 'TTFT ms', value: (r) => r.ttftMs, numeric: true },
  { title: 'live TTFT ms', value: (r) => r.liveTtftMs, numeric: true },
  { title: 'store bytes', value: (r) => r.storeBytes, numeric: true },
  { title: 'native bytes', value: (r) => r.nativeBytes, numeric: true },
  { title: 'turn write bytes', value: (r) => r.turnWriteBytes, numeric: true },
  { title: 'turn device bytes', value: (r) => r.turnDeviceWriteBytes, numeric: true },
  { title: 'full state bytes', value: (r) => r.fullStateBytes, numeric: true },
];

/** The markdown table and the acceptance lines, as printed. */
export function formatReport(report: ResumeReport): string {
  const m = report.machine;
  const lines = [
    markdownTable(report.rows, columns),
    '',
    `${m.cpu}, ${m.cores} cores, ${m.threads} thread(s); node-llama-cpp ${m.nodeLlamaCpp} (llama.cpp ${m.llamaCppRelease}); page cache ${m.pageCache.join(' and ')} (cold: the measured chunk files and the KV index evicted before each timed read); median of ${m.reps}; store compression ${m.compression}, ${m.codec.kernels} kernels${m.codec.reason ? ` (${m.codec.reason})` : ''}; store on ${m.storeFs ?? '?'} (${m.storeDir}), scratch on ${m.scratchFs ?? '?'} (${m.scratchDir}).`,
    '',
    ...report.acceptance.map((a) => `${a.pass === null ? 'N/A ' : a.pass ? 'PASS' : 'FAIL'}  ${a.model} ${a.kvType}${a.flashAttention ? '' : ' FA off'} @ ${a.tokens.toLocaleString('en-US')}${a.pageCache ? ` (${a.pageCache})` : ''}: ${a.check}: ${a.detail}`),
  ];
  const notes = report.rows.flatMap((r) => r.notes.map((n) => `note: ${r.model} ${r.kvType} @ ${r.tokens} (${r.pageCache}): ${n}`));
  const mismatches = report.rows.filter((r) => r.firstTokenMatches === false).map((r) => `WARNING: ${r.model} ${r.kvType} @ ${r.tokens} (${r.pageCache}): the first reply token after the store restore differs from the uninterrupted one`);
  return [...lines, ...notes, ...mismatches].join('\n');
}

/** Runs the resume benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runResume(options: ResumeOptions): Promise<ResumeReport> {
  const { log } = options;
  const maxSize = Math.max(...options.sizes);
  const needed = maxSize + TURN_TOKENS;
  const contextSize = needed + 64;
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const scratchDir = resolve(options.scratchDir ?? (existsSync('/dev/shm') ? `/dev/shm/hearth-bench-${process.pid}` : join(dir, 'scratch')));
  await mkdir(scratchDir, { recursive: true });
  const scratchFs = await fsTypeOf(scratchDir);
  const scratchOnDisk = !isMemoryFs(scratchFs);

  const testModel = await tinyModelPath({ contextLength: Math.max(16_384, Math.ceil(contextSize / 1024) * 1024) }, 'bench-long');
  const modelPaths = [testModel, ...options.models.map((p) => resolve(p))];
  const llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  const release = llama.llamaCppRelease.release;
  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const compression = options.compression ?? 'lossless';
  const codec = loadKernels();
  log(`store compression ${compression}, kernels ${codec.info.kernels}${codec.info.reason ? ` (${codec.info.reason})` : ''}`);
  const rows: ResumeRow[] = [];
  try {
    for (const modelPath of modelPaths) {
      const label = modelPath === testModel ? 'test model' : basename(modelPath);
      log(`${label}: ${modelPath}`);
      const model = await llama.loadModel({ modelPath });
      try {
        if (model.trainContextSize > 0 && model.trainContextSize < contextSize) log(`  note: trained context ${model.trainContextSize} < ${contextSize}; timings are still valid, output quality is not`);
        const conversation = await conversationTokens(model, needed, log);
        const run: ModelRun = { llama, model, modelPath, label };
        for (const name of options.kv) {
          const config = kvConfigs[name];
          const sizes = config.largestOnly && !options.allSizes ? [maxSize] : [...options.sizes].sort((a, b) => a - b);
          log(`  ${config.kvType}${config.flashAttention ? '' : ' (FA off)'}: sizes ${sizes.join(', ')}`);
          const contextOptions: LlamaContextOptions = {
            contextSize,
            sequences: 1,
            threads: options.threads,
            flashAttention: config.flashAttention,
            experimentalKvCacheKeyType: config.k,
            experimentalKvCacheValueType: config.v,
          };
          const root = join(dir, `store-${rows.length}-${name}`);
          await rm(root, { recursive: true, force: true });
          const opened = await KvCache.open({ root, budgetBytes: 64 * 2 ** 30, chunkTokens: CHUNK_TOKENS, llamaRelease: release, scratchDir, compression, kernels: codec.kernels });
          if (!opened.ok) throw new Error(`KvCache.open failed: ${opened.error.message}`);
          const cache = opened.value;
          try {
            // One profile per configuration, as the app prepares once per model+context load.
            const probe: LlamaContext = await model.createContext(contextOptions);
            let profile: KvProfile;
            try {
              profile = await cache.prepare({ model, context: probe, modelPath, flashAttention: config.flashAttention });
            } finally {
              await probe.dispose();
            }
            if (profile.fingerprint === null) log(`  store unusable: ${profile.fallbackReason ?? 'no reason given'}`);
            for (const tokens of sizes) {
              rows.push(...(await measureSize(run, config, cache, profile, contextOptions, conversation, tokens, options, scratchOnDisk, dir)));
            }
          } finally {
            await cache.close();
            await rm(root, { recursive: true, force: true });
          }
        }
      } finally {
        await model.dispose();
      }
    }
  } finally {
    await llama.dispose();
    await rm(scratchDir, { recursive: true, force: true }).catch(() => undefined);
  }

  const largest = rows.filter((r) => r.tokens === maxSize);
  const acceptance = largest.flatMap((r, i) => acceptanceFor(r, largest.findIndex((o) => o.model === r.model && o.kvType === r.kvType && o.flashAttention === r.flashAttention) === i));
  const report: ResumeReport = {
    rows,
    machine: {
      ...machineInfo(),
      threads: options.threads,
      nodeLlamaCpp,
      llamaCppRelease: release,
      storeDir: dir,
      storeFs: await fsTypeOf(dir),
      scratchDir,
      scratchFs,
      pageCache: options.pageCache,
      reps: options.reps,
      chunkTokens: CHUNK_TOKENS,
      compression,
      codec: codec.info,
    },
    date: new Date().toISOString(),
    acceptance,
  };
  const jsonPath = resolve(options.jsonPath);
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(jsonPath.replace(/(\.json)?$/, '.md'), `${formatReport(report)}\n`);
  return report;
}
