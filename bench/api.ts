/**
 * `npm run bench -- api`: an agent-style loop through Hearth's local OpenAI-compatible API, with
 * the official `openai` client, as an agent would drive it: every request re-sends the whole
 * history (system prompt, then user and assistant turns) and the model's reply is appended for
 * the next. It measures what the disk KV store is worth to such a client: what each request
 * finds cached (usage.prompt_tokens_details.cached_tokens, and Hearth's own `hearth` object),
 * and the time to the first token as the client sees it, with persistence on, off, and across a
 * restart of the host.
 *
 * The restart is the point of the benchmark, so the loop is shaped around it: the first
 * `restartAfter` requests grow the history fast (long user messages), so that the first request
 * after the restart carries about `targetTokens` tokens (4,000 by default); the requests after
 * it add short follow-ups. Each mode runs on a fresh data directory with the real browser host
 * (`node server/main.ts --api-port 0 --api-key KEY`, test/support/host.ts); settings go through
 * the host's contract (`POST /api/call/<name>`, test/support/host-client.ts). The shared-prefix
 * measurement sends two clients' first requests with one long system prompt and weighs the KV
 * store's chunk files after each. bench/api-report.ts computes the figures and the lines.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { getLlama, LlamaLogLevel, readGgufFileInfo, type LlamaModel } from 'node-llama-cpp';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { apiModelId, errorText, type KvCodecInfo, type KvCompressionChoice } from '../engine/contract/index.ts';
import { startHost, type Host } from '../test/support/host.ts';
import { HostClient } from '../test/support/host-client.ts';
import { repoRoot, testModelPath, trainedModelsDir } from '../test/support/models.ts';
import { acceptanceLines, apiModes, formatReport, type ApiMode, type ApiReport, type EngineFigures, type HearthUsage, type ModeRun, type RequestRecord, type SharedClient, type SharedPrefixRun, type SkippedModel } from './api-report.ts';
import { KV_SHAPE_8B, kvShape8bModelPath } from './kv-shape-8b.ts';
import { filesUnder, machineInfo, procStatusBytes, procWriteBytes, totalSize, writeReport } from './util.ts';

export { formatReport, type ApiReport } from './api-report.ts';

/** The key every host of the run is started with (--api-key wants 16 or more characters). */
const API_KEY = 'hearth-bench-api-key-0123456789';

export interface ApiBenchOptions {
  readonly jsonPath: string;
  /** Extra GGUF models (--model); the generated test model always runs first. */
  readonly models: readonly string[];
  /** Also run the smallest GGUF of the trained-models folder, when there is one. */
  readonly trained: boolean;
  /** Also run the generated model with Llama-3-8B's KV shape (bench/kv-shape-8b.ts), last. */
  readonly shape8b: boolean;
  readonly threads: number;
  readonly requests: number;
  /** The host restarts after this many requests (the restart modes). */
  readonly restartAfter: number;
  /** The prompt size aimed at for the first request after the restart. */
  readonly targetTokens: number;
  readonly systemTokens: number;
  /** User messages after the restart. */
  readonly lateUserTokens: number;
  readonly maxTokens: number;
  /** The shared-prefix measurement's system prompt. */
  readonly sharedTokens: number;
  /** The context the model is loaded with must hold at least this (a smaller one is raised through the model's profile). */
  readonly minContext: number;
  readonly modes: readonly ApiMode[];
  /** Where the data directories go (one per run, removed after it). */
  readonly dir: string;
  readonly log: (line: string) => void;
}

interface Texts {
  readonly system: string;
  readonly systemTokens: number;
  readonly users: readonly string[];
  readonly earlyUserTokens: number;
  readonly sharedSystem: string;
  readonly sharedSystemTokens: number;
  readonly sharedUsers: readonly [string, string];
  readonly sharedUserTokens: number;
}

const seededWords = ['the', 'build', 'failed', 'again', 'because', 'a', 'test', 'timed', 'out', 'while', 'the', 'parser', 'read', 'one', 'more', 'file', 'than', 'it', 'should', 'have'];

/** Deterministic text of about `tokens` tokens by the model's tokenizer, starting with `head`. */
function textOf(model: LlamaModel, head: string, tokens: number, seed: number): string {
  let s = seed >>> 0;
  const words: string[] = [head];
  while (model.tokenize(words.join(' ')).length < tokens) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    words.push(seededWords[(s >>> 8) % seededWords.length]!);
  }
  return words.join(' ');
}

/**
 * The loop's texts. Request `restartAfter + 1` holds the system prompt, `restartAfter` early user
 * messages and as many replies (at most max_tokens each; a template costs a few tokens per
 * message), and its own short message: the early messages share what is left of `targetTokens`.
 */
async function textsFor(modelPath: string, options: ApiBenchOptions): Promise<Texts> {
  const llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  let model: LlamaModel | null = null;
  try {
    model = await llama.loadModel({ modelPath, vocabOnly: true });
    const perMessage = 8;
    const early = options.restartAfter;
    const left = options.targetTokens - options.systemTokens - early * (options.maxTokens + 2 * perMessage) - options.lateUserTokens - 2 * perMessage;
    const earlyUserTokens = Math.max(16, Math.floor(left / Math.max(1, early)));
    const users = Array.from({ length: options.requests }, (_, i) =>
      textOf(model!, `Step ${i + 1}: here is the next part of the log.`, i < early ? earlyUserTokens : options.lateUserTokens, 20_260_101 + i * 7919),
    );
    const system = textOf(model, 'You are a careful coding agent. Read the logs the user pastes and say what to fix.', options.systemTokens, 99);
    const sharedSystem = textOf(model, 'You are a shared agent persona with a long list of rules.', options.sharedTokens, 4242);
    const sharedUserTokens = 100;
    return {
      system,
      systemTokens: model.tokenize(system).length,
      users,
      earlyUserTokens,
      sharedSystem,
      sharedSystemTokens: model.tokenize(sharedSystem).length,
      sharedUsers: [textOf(model, 'Client A asks:', sharedUserTokens, 1), textOf(model, 'Client B wants:', sharedUserTokens, 2)],
      sharedUserTokens,
    };
  } finally {
    await model?.dispose();
    await llama.dispose();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits until the model is loaded and ready; returns its context size. */
async function modelReady(hc: HostClient, path: string): Promise<number> {
  return until('the model to be ready', 120_000, async () => {
    const state = await hc.call('app.state', {});
    if (!state.ok) return undefined;
    const model = state.value.model;
    if (model.status === 'error') throw new Error(`the model did not load: ${model.error?.message ?? 'unknown error'}`);
    return model.status === 'ready' && model.model?.path === path ? model.model.contextSize : undefined;
  });
}

/** Waits until kv.stats says `persistence` is as wanted. */
async function persistenceIs(hc: HostClient, wanted: 'on' | 'off'): Promise<void> {
  await until(`KV persistence ${wanted}`, 60_000, async () => {
    const stats = await hc.call('kv.stats', {});
    return stats.ok && stats.value.persistence === wanted ? true : undefined;
  });
}

interface StartedHost {
  readonly host: Host;
  readonly hc: HostClient;
  readonly client: OpenAI;
  readonly contextSize: number;
  readonly startMs: number;
}

/**
 * Starts the browser host with the API on and the model loaded, and makes sure the model's
 * context holds `minContext` tokens: a smaller one (the automatic context of a model trained on
 * fewer) is raised through the model's profile (models.setProfile), which reloads it and is kept
 * in the data directory for the starts after.
 */
async function start(dataDir: string, modelPath: string, options: ApiBenchOptions): Promise<StartedHost> {
  const began = performance.now();
  const host = await startHost({ dataDir, model: modelPath, threads: options.threads, api: { port: 0, key: API_KEY } });
  try {
    const hc = new HostClient(host.origin, host.token);
    let contextSize = await modelReady(hc, modelPath);
    if (contextSize < options.minContext) {
      await hc.must('models.setProfile', { path: modelPath, profile: { contextSize: options.minContext } });
      contextSize = await until(`a context of ${options.minContext}`, 120_000, async () => {
        const size = await modelReady(hc, modelPath);
        return size >= options.minContext ? size : undefined;
      });
    }
    const client = new OpenAI({ baseURL: host.apiUrl!, apiKey: API_KEY, maxRetries: 0, timeout: 600_000 });
    return { host, hc, client, contextSize, startMs: performance.now() - began };
  } catch (error) {
    await host.stop();
    throw error;
  }
}

/** Turns KV persistence off through the contract (the engine restarts to apply it) and waits until it has. */
async function persistenceOff(started: StartedHost, modelPath: string): Promise<void> {
  await started.hc.must('settings.update', { kvPersistence: false });
  await persistenceIs(started.hc, 'off');
  await modelReady(started.hc, modelPath);
}

/** One streamed request: TTFT at the first chunk with text, usage and `hearth` from the last ones. */
async function send(client: OpenAI, model: string, messages: readonly ChatCompletionMessageParam[], options: ApiBenchOptions, index: number, afterRestart: boolean): Promise<{ record: RequestRecord; reply: string }> {
  const began = performance.now();
  let ttftMs: number | null = null;
  let reply = '';
  let usage: OpenAI.CompletionUsage | null = null;
  let hearth: HearthUsage | null = null;
  let finishReason: string | null = null;
  let error: string | null = null;
  try {
    const stream = await client.chat.completions.create({ model, messages: [...messages], max_tokens: options.maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.delta.content ?? '';
      if (text !== '') {
        ttftMs ??= performance.now() - began;
        reply += text;
      }
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
      const extra = (chunk as unknown as { hearth?: HearthUsage }).hearth;
      if (extra) hearth = extra;
    }
  } catch (e) {
    error = errorText(e);
  }
  const record: RequestRecord = {
    index,
    afterRestart,
    messages: messages.length,
    promptTokens: usage?.prompt_tokens ?? null,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    completionTokens: usage?.completion_tokens ?? null,
    ttftMs,
    totalMs: performance.now() - began,
    hearth,
    finishReason,
    error,
  };
  return { record, reply };
}

/**
 * Chunk files (`.kvc`) and tail files (`.kvt`) of the store under a data directory, in bytes.
 * A file may go between the listing and its stat (a tail rewritten, a chunk evicted): it counts 0.
 */
async function storeBytes(dataDir: string): Promise<number> {
  const files = [...(await filesUnder(join(dataDir, 'kv', 'chunks'), '.kvc')), ...(await filesUnder(join(dataDir, 'kv', 'tails'), '.kvt'))];
  let total = 0;
  for (const path of files) total += await stat(path).then((s) => s.size, () => 0);
  return total;
}

/**
 * The store's size once the saves behind the last request are written: a turn's KV is saved
 * after its reply, so the size is read until it has not changed for a second (15 s at most).
 */
async function settledStore(dataDir: string, hc: HostClient): Promise<{ bytes: number; chunks: number; chunkTokens: number }> {
  let last = '';
  let stableSince = performance.now();
  const end = performance.now() + 15_000;
  for (;;) {
    const stats = await hc.must('kv.stats', {});
    const bytes = await storeBytes(dataDir);
    const key = `${bytes}/${stats.chunkCount}/${stats.bytesOnDisk}`;
    if (key !== last) {
      last = key;
      stableSince = performance.now();
    } else if (performance.now() - stableSince >= 1000 || performance.now() > end) {
      return { bytes, chunks: stats.chunkCount, chunkTokens: stats.chunkTokens };
    }
    await sleep(100);
  }
}

/**
 * The engine process's peak memory and the bytes it wrote (every save of the loop), read before
 * its host stops, once the store has settled (the last turn's save has landed).
 */
async function engineFigures(started: StartedHost, dataDir: string): Promise<EngineFigures> {
  await settledStore(dataDir, started.hc).catch(() => undefined);
  const pid = await started.host.enginePid();
  return { peakRssBytes: pid === null ? null : procStatusBytes('VmHWM', pid), writeBytes: pid === null ? null : procWriteBytes(pid) };
}

interface RunFacts {
  compression: KvCompressionChoice | null;
  codec: KvCodecInfo | null;
}

async function noteFacts(hc: HostClient, facts: RunFacts): Promise<string> {
  const stats = await hc.must('kv.stats', {});
  facts.compression ??= stats.compressionChoice;
  facts.codec ??= stats.codec;
  return stats.persistence;
}

/** One mode's loop on a fresh data directory. */
async function runMode(label: string, modelPath: string, mode: ApiMode, texts: Texts, options: ApiBenchOptions, index: number, facts: RunFacts): Promise<ModeRun> {
  const began = performance.now();
  const dataDir = join(resolve(options.dir), `api-${process.pid}-${index}`);
  await rm(dataDir, { recursive: true, force: true });
  const restartAfter = mode === 'restart' || mode === 'off-restart' ? options.restartAfter : null;
  const requests: RequestRecord[] = [];
  const hostStartMs: number[] = [];
  const engines: EngineFigures[] = [];
  const persistence: string[] = [];
  let contextSize: number | null = null;
  let failure: string | null = null;
  let current: StartedHost | null = null;
  try {
    current = await start(dataDir, modelPath, options);
    hostStartMs.push(current.startMs);
    contextSize = current.contextSize;
    if (mode === 'off' || mode === 'off-restart') await persistenceOff(current, modelPath);
    persistence.push(await noteFacts(current.hc, facts));
    const model = apiModelId(modelPath);
    const messages: ChatCompletionMessageParam[] = [{ role: 'system', content: texts.system }];
    for (let i = 1; i <= options.requests; i++) {
      const afterRestart = restartAfter !== null && i === restartAfter + 1;
      if (afterRestart) {
        engines.push(await engineFigures(current, dataDir));
        await current.host.stop();
        current = null;
        current = await start(dataDir, modelPath, options);
        hostStartMs.push(current.startMs);
        persistence.push(await noteFacts(current.hc, facts));
      }
      messages.push({ role: 'user', content: texts.users[i - 1]! });
      const { record, reply } = await send(current.client, model, messages, options, i, afterRestart);
      requests.push(record);
      if (record.error !== null) {
        failure = `request ${i}: ${record.error}`;
        break;
      }
      messages.push({ role: 'assistant', content: reply });
    }
  } catch (error) {
    failure = errorText(error);
  } finally {
    if (failure !== null && current !== null) failure += `\nhost output (tail):\n${current.host.output().slice(-2000)}`;
    if (failure === null && current !== null) engines.push(await engineFigures(current, dataDir));
    await current?.host.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return { model: label, mode, contextSize, restartAfter, persistence, hostStartMs, engines, requests, failure, wallMs: performance.now() - began };
}

/** Two clients' first requests with one long system prompt, on a fresh store: what each adds to it. */
async function runShared(label: string, modelPath: string, texts: Texts, options: ApiBenchOptions, index: number): Promise<SharedPrefixRun> {
  const dataDir = join(resolve(options.dir), `api-${process.pid}-${index}`);
  await rm(dataDir, { recursive: true, force: true });
  let current: StartedHost | null = null;
  const clients: SharedClient[] = [];
  let chunkTokens: number | null = null;
  let failure: string | null = null;
  try {
    current = await start(dataDir, modelPath, options);
    const model = apiModelId(modelPath);
    for (const [i, user] of texts.sharedUsers.entries()) {
      const before = await settledStore(dataDir, current.hc);
      chunkTokens = before.chunkTokens;
      const { record } = await send(current.client, model, [{ role: 'system', content: texts.sharedSystem }, { role: 'user', content: user }], options, i + 1, false);
      const after = await settledStore(dataDir, current.hc);
      clients.push({ request: record, bytesBefore: before.bytes, bytesAfter: after.bytes, chunksBefore: before.chunks, chunksAfter: after.chunks });
      if (record.error !== null) {
        failure = `client ${i === 0 ? 'A' : 'B'}: ${record.error}`;
        break;
      }
    }
  } catch (error) {
    failure = errorText(error);
  } finally {
    await current?.host.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return { model: label, systemTokens: texts.sharedSystemTokens, userTokens: texts.sharedUserTokens, chunkTokens, a: clients[0] ?? null, b: clients[1] ?? null, failure };
}

/** The smallest GGUF in the trained-models folder, or null when there is none. */
async function smallestTrained(): Promise<string | null> {
  const files = await filesUnder(trainedModelsDir, '.gguf');
  let best: { path: string; size: number } | null = null;
  for (const path of files) {
    const size = await totalSize([path]);
    if (best === null || size < best.size) best = { path, size };
  }
  return best?.path ?? null;
}

/** The context the GGUF was trained on, or null where the header does not say. */
async function trainedContext(path: string): Promise<number | null> {
  try {
    const info = await readGgufFileInfo(path, { readTensorInfo: false });
    const arch = info.metadata.general.architecture;
    const value = (info.metadata as unknown as Record<string, Record<string, unknown> | undefined>)[arch]?.context_length;
    return typeof value === 'number' ? value : null;
  } catch {
    return null;
  }
}

function describe(run: ModeRun): string {
  const after = run.requests.find((r) => r.afterRestart);
  const last = run.requests.at(-1);
  return [
    `${run.requests.length} requests`,
    last ? `last prompt ${last.promptTokens ?? '?'} (${last.cachedTokens ?? '?'} cached)` : null,
    after ? `after restart: prompt ${after.promptTokens ?? '?'}, cached ${after.cachedTokens ?? '?'}, TTFT ${after.ttftMs?.toFixed(0) ?? '?'} ms` : null,
    run.failure ? `FAILED: ${run.failure.split('\n')[0]}` : null,
    `${(run.wallMs / 1000).toFixed(1)} s`,
  ]
    .filter((s) => s !== null)
    .join(', ');
}

/** Runs the API benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runApiBench(options: ApiBenchOptions): Promise<ApiReport> {
  const { log } = options;
  const began = performance.now();
  await mkdir(resolve(options.dir), { recursive: true });
  const models: { label: string; path: string }[] = [{ label: 'test model', path: await testModelPath('default') }, ...options.models.map((p) => ({ label: basename(p), path: resolve(p) }))];
  const skipped: SkippedModel[] = [];
  if (options.trained) {
    const trained = await smallestTrained();
    if (trained !== null && !models.some((m) => m.path === trained)) {
      const trainedCtx = await trainedContext(trained);
      models.push({ label: basename(trained), path: trained });
      if (trainedCtx !== null && trainedCtx < options.minContext) {
        log(`${basename(trained)}: trained on ${trainedCtx} tokens; loaded with a context of ${options.minContext} (beyond its training: its replies degrade, the cache figures do not)`);
      }
    }
  }
  // Last: at real KV size a 4,000-token prefill takes most of a minute here.
  if (options.shape8b) models.push({ label: KV_SHAPE_8B, path: await kvShape8bModelPath(options.dir, options.minContext) });
  const facts: RunFacts = { compression: null, codec: null };
  const runs: ModeRun[] = [];
  const shared: SharedPrefixRun[] = [];
  let texts: Texts | null = null;
  let index = 0;
  for (const model of models) {
    log(`${model.label}: ${model.path}`);
    try {
      texts = await textsFor(model.path, options);
    } catch (error) {
      skipped.push({ model: model.label, path: model.path, reason: `its tokenizer could not be read: ${errorText(error)}` });
      continue;
    }
    for (const mode of options.modes) {
      const run = await runMode(model.label, model.path, mode, texts, options, index++, facts);
      log(`  ${mode}: ${describe(run)}`);
      runs.push(run);
    }
    const s = await runShared(model.label, model.path, texts, options, index++);
    log(`  shared prefix: ${s.failure ? `FAILED: ${s.failure}` : `A +${(s.a!.bytesAfter - s.a!.bytesBefore).toLocaleString('en-US')} B, B +${(s.b!.bytesAfter - s.b!.bytesBefore).toLocaleString('en-US')} B`}`);
    shared.push(s);
  }
  const version = async (pkg: string): Promise<string> => (JSON.parse(await readFile(join(repoRoot, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const report: ApiReport = {
    runs,
    shared,
    skipped,
    machine: {
      ...machineInfo(),
      threads: options.threads,
      nodeLlamaCpp: await version('node-llama-cpp'),
      openai: await version('openai'),
      requests: options.requests,
      restartAfter: options.restartAfter,
      maxTokens: options.maxTokens,
      targetTokens: options.targetTokens,
      systemTokens: texts?.systemTokens ?? options.systemTokens,
      earlyUserTokens: texts?.earlyUserTokens ?? 0,
      lateUserTokens: options.lateUserTokens,
      sharedSystemTokens: texts?.sharedSystemTokens ?? options.sharedTokens,
      minContext: options.minContext,
      compression: facts.compression,
      codec: facts.codec,
      wallMs: performance.now() - began,
    },
    date: new Date().toISOString(),
    acceptance: acceptanceLines(runs, shared),
  };
  await writeReport(options.jsonPath, report, formatReport(report));
  return report;
}

export { apiModes };
