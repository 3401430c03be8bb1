/**
 * `npm run bench -- overflow`: what a chat costs once it has outgrown its context, under each
 * overflow policy. A chat must never end because it grew; the default policy (`drop-oldest`)
 * drops the oldest messages in one large step so that the turns after it extend one stable
 * prefix and reuse its KV. This measures that claim against dropping just enough every turn
 * (`naive`, dropTarget 1), StreamingLLM (`streaming`) and refusing (`stop`), and the size of the
 * step itself (the sweep): how much each turn re-reads, how much of the chat the model still
 * sees, and whether a restart in the middle of the chat resumes from the disk store.
 *
 * It drives real engine processes through engine/protocol.ts, as the host does: the whole branch
 * (system prompt, user and assistant turns) in every `generate`, a `chatId` and a `branchId` per
 * turn (the new reply's id, which names the stored KV manifest), the profile validated by
 * `checkProfile` and loaded as resolved, KV persistence on. Half way the engine is stopped the
 * host's way (SIGTERM, which flushes pending saves, SIGKILL after the grace) and a fresh one is
 * started on the same KV folder. bench/overflow-report.ts computes the figures and the lines.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { errorText, type KvCacheType, type KvCodecInfo, type KvCompressionChoice, type KvCompressionSetting, type ModelProfile, type OverflowPolicy } from '../engine/contract/index.ts';
import { defaultSettings } from '../engine/host/settings.ts';
import { defaultKillGraceMs } from '../engine/host/supervisor.ts';
import { DROP_TARGET } from '../engine/worker/context-view.ts';
import type { GenerateOutput, PromptMessage } from '../engine/protocol.ts';
import { startEngine, type EngineClient } from '../test/support/engine-client.ts';
import { repoRoot, testModelPath } from '../test/support/models.ts';
import { acceptanceLines, formatReport, policyLabel, summarizeTurns, type BenchPolicy, type OverflowReport, type OverflowRow, type TurnRecord } from './overflow-report.ts';
import { machineInfo, procStatusBytes, writeReport } from './util.ts';

export { formatReport, type OverflowReport, type OverflowRow } from './overflow-report.ts';

export const benchPolicies: readonly BenchPolicy[] = ['drop-oldest', 'streaming', 'stop', 'naive'];
export const overflowKvTypes = ['f16', 'q8_0'] as const;
export type OverflowKv = (typeof overflowKvTypes)[number];
export const engineLogLevels = ['error', 'warn', 'info', 'debug'] as const;
export type EngineLogLevel = (typeof engineLogLevels)[number];

const SYSTEM_PROMPT = 'You are a patient assistant. Answer in a few sentences.';

const STOP_POLICY_USER = 'a refused turn keeps its user message in the chat (as the host does: the failed reply is left out of the prompt) and the user goes on typing, so every later turn is refused too';

export interface OverflowOptions {
  readonly jsonPath: string;
  /** Extra GGUF models (the generated test model always runs first). */
  readonly models: readonly string[];
  readonly threads: number;
  readonly turns: number;
  readonly contexts: readonly number[];
  readonly kv: readonly OverflowKv[];
  readonly policies: readonly BenchPolicy[];
  /** dropTarget values of the step sweep (drop-oldest, generated model, f16); empty skips it. */
  readonly steps: readonly number[];
  /** Tokens per user message (the model's own tokenizer counts them). */
  readonly userTokens: number;
  /** sampling.maxTokens of every reply. */
  readonly maxTokens: number;
  /** The engine's log level; what it logs goes into each row's `engineLog` (warn: only what went wrong). */
  readonly engineLog: EngineLogLevel;
  /** Where the KV stores go (one per chat, removed after it). */
  readonly dir: string;
  readonly log: (line: string) => void;
}

/** One chat to run: a model, a context, a KV type and a policy (with its step). */
interface ChatPlan {
  readonly label: string;
  readonly modelPath: string;
  readonly contextSize: number;
  readonly kv: OverflowKv;
  readonly policy: BenchPolicy;
  readonly dropTarget: number | null;
  readonly userMessages: readonly string[];
}

/** What the engine's `init` said, the first time (every later init is given its resolved encoding). */
interface InitFacts {
  compression: KvCompressionChoice | null;
  codec: KvCodecInfo | null;
}

const seededWords = ['the', 'harbour', 'lights', 'came', 'on', 'one', 'by', 'one', 'as', 'rain', 'moved', 'over', 'quiet', 'streets', 'and', 'nobody', 'hurried', 'home', 'tonight', 'because'];

/** Deterministic user messages of about `tokens` tokens each by the model's own tokenizer (a byte-level model: about one per character). */
async function userMessages(modelPath: string, count: number, tokens: number): Promise<string[]> {
  const llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  let model: LlamaModel | null = null;
  try {
    model = await llama.loadModel({ modelPath, vocabOnly: true });
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      let s = 20_270_101 + i * 7919;
      const words: string[] = [`Turn ${i + 1}:`];
      while (model.tokenize(words.join(' ')).length < tokens) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        words.push(seededWords[(s >>> 8) % seededWords.length]!);
      }
      out.push(words.join(' '));
    }
    return out;
  } finally {
    await model?.dispose();
    await llama.dispose();
  }
}

/** Forks an engine process and sends `init` with the KV store on, as the host does; its log lines go to `logs`. */
async function startKvEngine(kvDir: string, compression: KvCompressionSetting, facts: InitFacts, logLevel: EngineLogLevel, logs: string[]): Promise<EngineClient> {
  const client = await startEngine({ logLevel, init: { kvDir, kvBudgetBytes: defaultSettings.kvBudgetBytes, kvChunkTokens: defaultSettings.kvChunkTokens, kvCompression: compression } });
  for (const event of client.events) if (event.type === 'log') logs.push(`${event.level}: ${event.message}`);
  client.onEvent((event) => {
    if (event.type === 'log') logs.push(`${event.level}: ${event.message}`);
  });
  facts.compression ??= client.initOutput!.compression;
  facts.codec ??= client.initOutput!.codec;
  return client;
}

/**
 * Stops an engine the way the host does (supervisor.ts): SIGTERM, on which it flushes its pending
 * KV saves and exits; SIGKILL if it is still there after the grace. Says whether it left by itself.
 */
async function stopEngine(client: EngineClient): Promise<boolean> {
  client.port.kill('SIGTERM');
  const gone = await Promise.race([client.exited.then(() => true), new Promise<false>((done) => setTimeout(() => done(false), defaultKillGraceMs))]);
  if (!gone) {
    client.port.kill('SIGKILL');
    await client.exited;
  }
  return gone;
}

function profileOf(plan: ChatPlan): ModelProfile {
  const kType: KvCacheType = plan.kv;
  const overflowPolicy: OverflowPolicy = plan.policy === 'naive' ? 'drop-oldest' : plan.policy;
  return { kType, vType: kType, flashAttention: 'auto', contextSize: plan.contextSize, gpuLayers: 'auto', slots: 1, overflowPolicy };
}

/** checkProfile, then loadModel with what it resolved (and the step, for drop-oldest); why, when the profile is refused. */
async function loadChecked(client: EngineClient, plan: ChatPlan, threads: number): Promise<{ refused: string } | { flashAttention: boolean }> {
  const checked = await client.must('checkProfile', { path: plan.modelPath, profile: profileOf(plan) });
  const errors = checked.issues.filter((issue) => issue.severity === 'error');
  if (checked.resolved === null || errors.length > 0) return { refused: errors.map((e) => `${e.field}: ${e.message}`).join(' ') || 'no resolved profile' };
  const dropTarget = plan.policy === 'naive' ? 1 : plan.dropTarget;
  const profile = dropTarget === null ? checked.resolved : { ...checked.resolved, dropTarget };
  await client.must('loadModel', { path: plan.modelPath, contextSize: profile.contextSize, threads, slots: profile.slots, profile });
  return { flashAttention: profile.flashAttention };
}

function record(turn: number, firstAfterRestart: boolean, messagesSent: number, result: Awaited<ReturnType<EngineClient['call']>>): TurnRecord {
  const base = { turn, firstAfterRestart, messagesSent };
  if (!result.ok) {
    const refused = result.error.code === 'CONTEXT_OVERFLOW';
    return { ...base, outcome: refused ? 'refused' : 'error', errorCode: result.error.code, errorMessage: result.error.message, tokensReused: 0, tokensRestored: 0, tokensPrefilled: 0, tokensGenerated: 0, ttftMs: 0, viewTokens: null, droppedMessages: null, droppedNow: null, stopReason: null, cacheSource: null, fallbackReason: null };
  }
  const { stats, stopReason } = result.value as GenerateOutput;
  return {
    ...base,
    outcome: 'answered',
    errorCode: null,
    errorMessage: null,
    tokensReused: stats.tokensReused,
    tokensRestored: stats.tokensRestored,
    tokensPrefilled: stats.tokensPrefilled,
    tokensGenerated: stats.tokensGenerated,
    ttftMs: stats.ttftMs,
    viewTokens: stats.view?.tokens ?? null,
    droppedMessages: stats.view?.droppedMessages ?? null,
    droppedNow: stats.view?.droppedNow ?? null,
    stopReason: stats.stopReason ?? stopReason,
    cacheSource: stats.cacheSource,
    fallbackReason: stats.fallbackReason ?? null,
  };
}

/** One scripted chat in its own KV store, with the restart after `restartAfter` turns. */
async function runChat(plan: ChatPlan, index: number, options: OverflowOptions, compression: { setting: KvCompressionSetting }, facts: InitFacts): Promise<OverflowRow> {
  const started = performance.now();
  const kvDir = join(resolve(options.dir), `overflow-kv-${process.pid}-${index}`);
  await rm(kvDir, { recursive: true, force: true });
  const restartAfter = Math.floor(options.turns / 2);
  const chatId = `overflow-${index}`;
  const turns: TurnRecord[] = [];
  const logs: string[] = [];
  let client = await startKvEngine(kvDir, compression.setting, facts, options.engineLog, logs);
  // Every later process gets the encoding the first one resolved: `auto` measures the disk at
  // each init, which would cost every restart time the app pays once per start anyway.
  if (facts.compression !== null) compression.setting = facts.compression.applied;
  let peak: number | null = null;
  let stoppedGracefully: boolean | null = null;
  let crashed = false;
  let flashAttention: boolean | null = null;
  let failure: string | null = null;
  const notAllowed = (reason: string): OverflowRow => ({
    model: plan.label, contextSize: plan.contextSize, kvType: `${plan.kv}/${plan.kv}`, policy: plan.policy, dropTarget: plan.dropTarget,
    allowed: false, notAllowedReason: reason, flashAttention: null, crashed: false, failure: null, peakRssBytes: null, stoppedGracefully: null, wallMs: performance.now() - started, perTurn: [], engineLog: logs,
    ...summarizeTurns(plan.policy, plan.contextSize, []),
  });
  try {
    const loaded = await loadChecked(client, plan, options.threads);
    if ('refused' in loaded) return notAllowed(loaded.refused);
    flashAttention = loaded.flashAttention;
    const messages: PromptMessage[] = [{ role: 'system', text: SYSTEM_PROMPT }];
    for (let turn = 1; turn <= options.turns; turn++) {
      const firstAfterRestart = turn === restartAfter + 1;
      if (firstAfterRestart) {
        peak = Math.max(peak ?? 0, (client.port.pid === undefined ? null : procStatusBytes('VmHWM', client.port.pid)) ?? 0) || null;
        stoppedGracefully = await stopEngine(client);
        client = await startKvEngine(kvDir, compression.setting, facts, options.engineLog, logs);
        const again = await loadChecked(client, plan, options.threads);
        if ('refused' in again) throw new Error(`the profile was refused after the restart: ${again.refused}`);
      }
      messages.push({ role: 'user', text: plan.userMessages[turn - 1]! });
      const result = await client.call('generate', {
        requestId: `${chatId}-r${turn}`,
        chatId,
        branchId: `${chatId}-a${turn}`,
        messages: [...messages],
        sampling: { temperature: 0, topP: 1, maxTokens: options.maxTokens },
      });
      const rec = record(turn, firstAfterRestart, messages.length, result);
      turns.push(rec);
      // As the host's buildPrompt: a failed or empty reply is left out of the next prompt.
      if (result.ok && (result.value as GenerateOutput).text.trim() !== '') messages.push({ role: 'assistant', text: (result.value as GenerateOutput).text });
      if (!result.ok && result.error.code === 'ENGINE_CRASHED') {
        crashed = true;
        failure = result.error.message;
        break;
      }
    }
  } catch (error) {
    // A failed start or load (after the restart too) ends this chat, not the benchmark.
    crashed = true;
    failure = errorText(error);
  } finally {
    peak = Math.max(peak ?? 0, (client.port.pid === undefined ? null : procStatusBytes('VmHWM', client.port.pid)) ?? 0) || null;
    await stopEngine(client);
    await rm(kvDir, { recursive: true, force: true });
  }
  return {
    model: plan.label,
    contextSize: plan.contextSize,
    kvType: `${plan.kv}/${plan.kv}`,
    policy: plan.policy,
    dropTarget: plan.dropTarget,
    allowed: true,
    notAllowedReason: null,
    flashAttention,
    crashed,
    failure,
    peakRssBytes: peak,
    stoppedGracefully,
    wallMs: performance.now() - started,
    perTurn: turns,
    engineLog: logs,
    ...summarizeTurns(plan.policy, plan.contextSize, turns),
  };
}

function describe(row: OverflowRow): string {
  if (!row.allowed) return `not allowed (${row.notAllowedReason ?? ''})`;
  const p = row.prefilledPerTurnAfterOverflow;
  return [
    `${row.turns} turns`,
    row.refusedTurns > 0 ? `${row.refusedTurns} refused` : null,
    row.errorTurns > 0 ? `${row.errorTurns} failed` : null,
    row.crashed ? `FAILED: ${row.failure ?? ''}` : null,
    row.firstOverflowTurn === null ? 'no overflow' : `overflow at ${row.firstOverflowTurn}`,
    p === null ? null : `prefill ${p.toFixed(3)} × ctx/turn`,
    row.restoredAfterRestart === null ? null : `restart ${row.restoredAfterRestart ? 'restored' : 'did not restore'}`,
    `${(row.wallMs / 1000).toFixed(1)} s`,
  ]
    .filter((s) => s !== null)
    .join(', ');
}

/** Runs the overflow benchmark, writes the JSON (and a .md beside it) and returns the report. */
export async function runOverflow(options: OverflowOptions): Promise<OverflowReport> {
  const { log } = options;
  const started = performance.now();
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  // The default test model: trained context 8192, so 4,096-token contexts are within it.
  const testModel = await testModelPath('default');
  const models = [{ label: 'test model', path: testModel }, ...options.models.map((p) => ({ label: basename(p), path: resolve(p) }))];
  const facts: InitFacts = { compression: null, codec: null };
  const compression = { setting: defaultSettings.kvCompression };
  const rows: OverflowRow[] = [];
  const sweep: OverflowRow[] = [];
  let index = 0;
  for (const model of models) {
    const texts = await userMessages(model.path, options.turns, options.userTokens);
    log(`${model.label}: ${model.path}`);
    for (const contextSize of options.contexts) {
      for (const kv of options.kv) {
        for (const policy of options.policies) {
          const plan: ChatPlan = { label: model.label, modelPath: model.path, contextSize, kv, policy, dropTarget: null, userMessages: texts };
          const row = await runChat(plan, index++, options, compression, facts);
          log(`  ${contextSize} ${kv}/${kv} ${policyLabel(row)}: ${describe(row)}`);
          rows.push(row);
        }
      }
      if (model.path !== testModel) continue;
      for (const step of options.steps) {
        // The engine's own step is the default row's: run once.
        const same = rows.find((r) => r.model === model.label && r.contextSize === contextSize && r.kvType === 'f16/f16' && r.policy === 'drop-oldest' && r.dropTarget === null);
        if (step === DROP_TARGET && same !== undefined) {
          sweep.push(same);
          continue;
        }
        const plan: ChatPlan = { label: model.label, modelPath: model.path, contextSize, kv: 'f16', policy: 'drop-oldest', dropTarget: step, userMessages: texts };
        const row = await runChat(plan, index++, options, compression, facts);
        log(`  ${contextSize} f16/f16 sweep ${policyLabel(row)}: ${describe(row)}`);
        sweep.push(row);
      }
    }
  }

  const nodeLlamaCpp = (JSON.parse(await readFile(join(repoRoot, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  const report: OverflowReport = {
    rows,
    sweep,
    machine: {
      ...machineInfo(),
      threads: options.threads,
      nodeLlamaCpp,
      turns: options.turns,
      restartAfterTurn: Math.floor(options.turns / 2),
      userTokens: options.userTokens,
      maxTokens: options.maxTokens,
      stopPolicyUser: STOP_POLICY_USER,
      compression: facts.compression,
      codec: facts.codec,
      storeDir: dir,
      defaultDropTarget: DROP_TARGET,
      wallMs: performance.now() - started,
    },
    date: new Date().toISOString(),
    acceptance: acceptanceLines(rows),
  };
  await writeReport(options.jsonPath, report, formatReport(report));
  return report;
}
