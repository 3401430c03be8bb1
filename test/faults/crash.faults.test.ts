/**
 * Native crashes of the engine process: the signals llama.cpp dies of (SIGSEGV, SIGABRT, SIGBUS),
 * sent to the real engine of a real browser host while a reply streams and while it is idle,
 * because a native crash must cost the user neither text nor cache. After each: the host
 * restarted the engine and says why (`lastCrash.reason`), a cut reply is `incomplete` with the
 * text it streamed, nothing acknowledged is lost, and the next turn restores its KV from disk.
 *
 * Then a crash loop: the supervisor must back off and report the loop with a clear error; once an
 * engine survives, the chat goes on with its cache. Restart delays are shortened
 * (HEARTH_ENGINE_BACKOFF, test-only); the policy itself is unit-tested in
 * engine/host/supervisor.test.ts.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineStatus, HearthEvent, Message } from '../../engine/contract/index.ts';
import type { HostClient } from '../support/host-client.ts';
import { repoRoot, type Host } from '../support/host.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { recordFault } from './record.ts';
import { launch, lostMessages as lostMessagesOf, sleep, type Session } from './store-support.ts';


/** initialMs, maxMs, stableMs: the defaults' shape (doubling, capped, reset after a stable minute), scaled down. */
const BACKOFF = { initialMs: 50, maxMs: 400, stableMs: 60_000 };

type Delta = Extract<HearthEvent, { type: 'message.delta' }>;
type StatusEvent = Extract<HearthEvent, { type: 'engine.status' }>;
type CacheEv = Extract<HearthEvent, { type: 'cache.event' }>;

interface Acked {
  readonly chatId: string;
  readonly role: Message['role'];
  content?: string;
}

const crashes: readonly { signal: NodeJS.Signals; phase: 'generation' | 'idle' }[] = [
  { signal: 'SIGSEGV', phase: 'generation' },
  { signal: 'SIGSEGV', phase: 'idle' },
  { signal: 'SIGABRT', phase: 'generation' },
  { signal: 'SIGBUS', phase: 'idle' },
];

describe('native crashes of the engine', () => {
  let dataDir = '';
  let session: Session | undefined;
  let host: Host;
  let client: HostClient;
  const hostCrashes = (): number => session?.crashes() ?? 0;
  let chatId = '';
  let model = '';
  const acked = new Map<string, Acked>();
  let coresBefore = new Set<string>();

  const appState = () => client.must('app.state', {});

  /** Until the engine runs (a different process than `oldPid`) and the model is loaded. */
  const untilBack = async (oldPid: number | null, timeoutMs = 30_000): Promise<EngineStatus> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await client.call('app.state', {});
      const pid = await host.enginePid();
      if (state.ok && state.value.engine.state === 'running' && state.value.model.status === 'ready' && pid !== null && pid !== oldPid) return state.value.engine;
      if (Date.now() > deadline) throw new Error(`the engine did not come back within ${timeoutMs} ms: ${JSON.stringify(state)}\n${host.output().slice(-3000)}`);
      await sleep(25);
    }
  };

  const saveAfter = (from: number): Promise<CacheEv | null> =>
    client
      .waitFor((e): e is CacheEv => e.type === 'cache.event' && e.payload.kind === 'save' && e.payload.chatId === chatId, { from, timeoutMs: 10_000 })
      .catch(() => null);

  /** A turn to the end, and its KV save: the state every crash starts from. */
  const turn = async (text: string): Promise<Message> => {
    await client.must('chats.configure', { chatId, sampling: { temperature: 0, topP: 1, maxTokens: 8 } });
    const from = client.events.length;
    const sent = await client.must('chats.send', { chatId, text });
    acked.set(sent.userMessage.id, { chatId, role: 'user', content: text });
    acked.set(sent.assistantMessage.id, { chatId, role: 'assistant' });
    const done = await client.finalMessage(sent.assistantMessage.id, { from, timeoutMs: 30_000 });
    if (done.status === 'complete') (acked.get(done.id) as Acked).content = done.content;
    await saveAfter(from);
    return done;
  };

  /** Acknowledged messages missing or changed (store-support.ts). */
  const lostMessages = () => lostMessagesOf(client, [...acked].map(([id, a]) => ({ ...a, id })));

  /** The turn after a crash: complete, and its history restored from disk. */
  const probe = async (label: string): Promise<string[]> => {
    const done = await turn(`${label}: are you back?`);
    const problems: string[] = [];
    if (done.status !== 'complete') problems.push(`the next turn ended ${done.status}${done.error ? `: ${done.error.message}` : ''}`);
    else if (!done.stats || done.stats.tokensRestored <= 0 || done.stats.cacheSource !== 'disk') problems.push(`the next turn did not restore from disk: ${JSON.stringify(done.stats)}`);
    return problems;
  };

  beforeAll(async () => {
    coresBefore = new Set((await readdir(repoRoot)).filter((n) => /^core(\.\d+)?$/.test(n)));
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-crash-'));
    session = await launch({
      dataDir,
      model: (model = await testModelPath()),
      env: { HEARTH_ENGINE_BACKOFF: `${BACKOFF.initialMs},${BACKOFF.maxMs},${BACKOFF.stableMs}` },
    });
    ({ host, client } = session);
    // ~600 tokens of history (the test model's vocabulary is bytes) that the store must keep.
    const chat = await client.must('chats.create', { title: 'Crash', systemPrompt: `You are a helpful assistant. ${seededText(77, 300)}` });
    chatId = chat.id;
    const first = await turn('Hello there.');
    if (first.status !== 'complete') throw new Error(`the first turn ended ${first.status}`);
  }, 120_000);

  afterAll(async () => {
    await session?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    // Where the machine dumps cores into the working directory, the killed engines' cores are ours.
    for (const name of await readdir(repoRoot)) if (/^core(\.\d+)?$/.test(name) && !coresBefore.has(name)) await rm(join(repoRoot, name), { force: true });
  });

  it('a crash loop backs off with a clear error instead of spinning, then the chat goes on with its cache', async () => {
    const crashesBefore = hostCrashes();
    const before = (await appState()).engine.restarts;
    const from = client.events.length;
    const problems: string[] = [];
    // Kill the running engine, then each fresh one as soon as it appears: three crashes in a row.
    let pid = await host.enginePid();
    const killedAt: number[] = [];
    const spawnedAt: number[] = [];
    for (let k = 0; k < 3; k++) {
      if (pid === null) throw new Error('no engine process');
      process.kill(pid, 'SIGSEGV');
      killedAt.push(performance.now());
      if (k === 2) break;
      const old = pid;
      const deadline = Date.now() + 10_000;
      for (;;) {
        pid = await host.enginePid();
        if (pid !== null && pid !== old) break;
        if (Date.now() > deadline) throw new Error('no engine was restarted');
        await sleep(2);
      }
      spawnedAt.push(performance.now());
    }
    // The third crash's status: restarting, in a crash loop, with a clear error.
    const looped = (await client.waitFor(
      (e): e is StatusEvent => e.type === 'engine.status' && e.payload.restarts === before + 3,
      { from, timeoutMs: 10_000 },
    )) as StatusEvent;
    const loop = looped.payload.crashLoop;
    if (!loop) problems.push(`no crash loop reported: ${JSON.stringify(looped.payload)}`);
    else {
      if (loop.crashes < 3) problems.push(`the loop counts ${loop.crashes} crashes`);
      if (!/keeps stopping unexpectedly/.test(loop.error.message) || !/signal SIGSEGV/.test(loop.error.message)) problems.push(`unclear loop error: ${loop.error.message}`);
      if (!loop.error.hint) problems.push('the loop error has no hint');
      // A call made during the loop answers its error, not "try again in a moment".
      // (A fresh engine takes a second or more to start: the loop is still on here.)
      const refused = await client.call('models.plan', { path: model });
      if (refused.ok || !/keeps stopping unexpectedly/.test(refused.error.message)) problems.push(`a call during the loop answered ${JSON.stringify(refused)}`);
    }
    // Backoff: the waits before the restarts grew (the delays double: 50, 100 ms, then 200).
    const waits = spawnedAt.map((t, i) => t - (killedAt[i] ?? 0));
    if (waits.length !== 2 || (waits[0] ?? 0) < BACKOFF.initialMs * 0.9 || (waits[1] ?? 0) < BACKOFF.initialMs * 2 * 0.9) problems.push(`the restarts did not back off: waited ${waits.map(Math.round).join(', ')} ms`);
    const nextTry = loop ? loop.retryAt - (looped.payload.lastCrash?.at ?? 0) : 0;
    if (loop && nextTry < BACKOFF.initialMs * 4) problems.push(`the next try after the 3rd crash is only ${nextTry} ms away`);

    const status = await untilBack(pid);
    if (status.crashLoop) problems.push('the running engine still reports a crash loop');
    if (status.restarts !== before + 3) problems.push(`restarts ${status.restarts}, expected ${before + 3}`);
    if (status.lastCrash?.reason !== 'signal SIGSEGV') problems.push(`lastCrash.reason is ${status.lastCrash?.reason}`);
    const { lost, notes: lostNotes } = await lostMessages();
    problems.push(...(await probe('after the loop')), ...lostNotes);

    const outcome = problems.length === 0 ? 'backed off with a clear error, then restored from disk' : `FAILED: ${problems[0]}`;
    recordFault({ area: 'crash', fault: 'crash loop: 3 SIGSEGVs in a row', outcome, messagesLost: lost, hostCrashes: hostCrashes() - crashesBefore, detail: `waits ${waits.map(Math.round).join(', ')} ms` });
    expect(problems).toEqual([]);
    expect(hostCrashes()).toBe(crashesBefore);
  });

  it.each(crashes)('$signal of the engine while $phase: restarted with the signal reported, nothing lost, the cache restored from disk', async ({ signal, phase }) => {
    const crashesBefore = hostCrashes();
    const before = (await appState()).engine.restarts;
    const pid = await host.enginePid();
    if (pid === null) throw new Error('no engine process');
    const from = client.events.length;
    let cut: string | null = null;
    if (phase === 'generation') {
      // A long greedy reply, crashed once it streams.
      await client.must('chats.configure', { chatId, sampling: { temperature: 0, topP: 1, maxTokens: 4000 } });
      const sent = await client.must('chats.send', { chatId, text: `Tell me a long story (${signal}).` });
      acked.set(sent.userMessage.id, { chatId, role: 'user', content: `Tell me a long story (${signal}).` });
      acked.set(sent.assistantMessage.id, { chatId, role: 'assistant' });
      cut = sent.assistantMessage.id;
      await client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from });
      await sleep(20);
    }
    const t0 = performance.now();
    process.kill(pid, signal);
    const problems: string[] = [];
    const status = await untilBack(pid);
    const t1 = performance.now();
    if (status.restarts !== before + 1) problems.push(`restarts ${status.restarts}, expected ${before + 1}`);
    if (status.lastCrash?.reason !== `signal ${signal}`) problems.push(`lastCrash.reason is ${JSON.stringify(status.lastCrash?.reason)}, not "signal ${signal}"`);
    // What the UI's banner reads: a 'restarting' status with the crash and its cause.
    const seen = client.events.slice(from).filter((e): e is StatusEvent => e.type === 'engine.status');
    if (!seen.some((e) => e.payload.state === 'restarting' && e.payload.restarts === before + 1 && e.payload.lastCrash?.reason === `signal ${signal}`)) problems.push('no restarting status with the crash was pushed');

    let kept = '';
    if (cut !== null) {
      const final = await client.finalMessage(cut, { from, timeoutMs: 10_000 });
      const streamed = client.events
        .slice(from)
        .filter((e): e is Delta => e.type === 'message.delta' && e.payload.messageId === cut)
        .map((e) => e.payload.delta)
        .join('');
      kept = `${final.content.length} chars kept`;
      if (final.status === 'complete') {
        // The reply beat the crash (it can on a fast machine): it must then be kept whole.
        (acked.get(cut) as Acked).content = final.content;
        kept += ' (the reply completed before the crash)';
      } else {
        if (final.status !== 'incomplete') problems.push(`the cut reply is ${final.status}, not incomplete`);
        if (final.content === '' || final.content !== streamed) problems.push(`the cut reply kept ${final.content.length} chars of the ${streamed.length} streamed`);
        (acked.get(cut) as Acked).content = final.content;
      }
    }
    const { lost, notes: lostNotes } = await lostMessages();
    const t2 = performance.now();
    problems.push(...lostNotes, ...(await probe(`after ${signal}`)));
    if (process.env.CRASH_DEBUG) console.log(signal, phase, 'back', Math.round(t1 - t0), 'checks', Math.round(t2 - t1), 'probe', Math.round(performance.now() - t2));

    const outcome = problems.length === 0 ? 'restarted, restored from disk' : `FAILED: ${problems[0]}`;
    recordFault({ area: 'crash', fault: `${signal} engine while ${phase}`, outcome, messagesLost: lost, hostCrashes: hostCrashes() - crashesBefore, ...(kept ? { detail: kept } : {}) });
    expect(problems).toEqual([]);
    expect(hostCrashes()).toBe(crashesBefore);
  });
});
