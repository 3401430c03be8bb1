/**
 * The kill suite: SIGKILL the engine process, and in some runs the host process, at seeded random
 * moments during a chat's KV save, its KV restore and its generation, because a power cut or a
 * crash can land anywhere. After each kill every chat must open with every acknowledged message,
 * the KV store must pass its own integrity check, and the chat's next turn must either restore
 * exactly (greedy replies from the restored KV token-identical to replies from KV read again from
 * scratch, see `probe`) or fall back cleanly with a reason.
 *
 * The chats have ~2,500 tokens of system prompt and one KV slot, so after a kill every probe is a
 * restore from disk.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HearthEvent, Message } from '../../engine/contract/index.ts';
import { mulberry32 } from '../support/gguf-writer.ts';
import { HostClient } from '../support/host-client.ts';
import { isAlive, startHost, type Host } from '../support/host.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { fallbackClass, landing, openFindings, textKept } from './kill-checks.ts';
import { recordFault, type FaultRecord } from './record.ts';
import { lostMessages as lostMessagesOf, sleep } from './store-support.ts';

const RUNS = 40;
/** Every fourth run kills the host instead of the engine: 10 of 40, spread over the three phases. */
const HOST_KILL_EVERY = 4;
const CHATS = 3;
/** A killed host's engine flushes for at most 2 s, then exits; allow for a loaded machine. */
const ORPHAN_EXIT_MS = 6000;
const phases = ['save', 'restore', 'generation'] as const;
type Phase = (typeof phases)[number];


type KvEvent = Extract<HearthEvent, { type: 'cache.event' }>;

interface Acked {
  readonly chatId: string;
  readonly id: string;
  readonly role: Message['role'];
  /** User messages, and replies seen complete, must come back with exactly this text. */
  content?: string;
}

interface ProbeResult {
  readonly outcome: string;
  readonly detail?: string;
}

describe('kills during save, restore and generation', () => {
  let dataDir = '';
  let model = '';
  let host: Host;
  let client: HostClient;
  /** Set while the test itself kills or stops the host, so any other exit counts as a crash. */
  let hostExitExpected = false;
  let hostCrashes = 0;
  const acked = new Map<string, Acked>();
  const chatIds: string[] = [];
  const rng = mulberry32(7007);
  /**
   * Measured windows (ms), updated from turns that ran to the end; each kill lands at a uniformly
   * drawn point of its phase's window, timed from when the phase starts as the client sees it:
   * RESTORE from chats.send's answer over the engine's `restoreMs`; GENERATION from the first
   * token over the time to the final message; SAVE from the final message (the engine answers a
   * reply first, then saves) over the save's own `ms`. Where each kill landed goes into its
   * record's detail, so the ledger shows how many kills hit their phase.
   */
  const window: Record<Phase, number> = { save: 20, restore: 30, generation: 150 };

  const launch = async (): Promise<void> => {
    // The kills here are deliberate, one every few seconds: a short restart delay keeps the suite
    // in its time budget (the backoff and crash-loop policy are the crash suite's and supervisor.test.ts').
    const started = await startHost({ dataDir, model, env: { HEARTH_ENGINE_BACKOFF: '100,100,60000' } });
    host = started;
    hostExitExpected = false;
    started.process.once('exit', () => {
      if (!hostExitExpected && host === started) hostCrashes++;
    });
    client = await HostClient.connect(host);
    await untilReady();
  };

  /** Until the engine runs (after at least `restarts` restarts) with the model loaded. */
  const untilReady = async (restarts = 0, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await client.call('app.state', {});
      if (state.ok && state.value.engine.restarts >= restarts && state.value.engine.state === 'running' && state.value.model.status === 'ready') return;
      if (Date.now() > deadline) throw new Error(`the model was not ready within ${timeoutMs} ms: ${JSON.stringify(state)}\n${host.output().slice(-2000)}`);
      await sleep(50);
    }
  };

  const ack = (a: Acked): void => {
    acked.set(a.id, a);
  };

  const configure = (chatId: string, maxTokens: number) => client.must('chats.configure', { chatId, sampling: { temperature: 0, topP: 1, maxTokens } });

  /** Sends a message; once the host answers, the user message and the reply's id are acknowledged. */
  const post = async (chatId: string, text: string) => {
    const sent = await client.must('chats.send', { chatId, text });
    ack({ chatId, id: sent.userMessage.id, role: 'user', content: text });
    ack({ chatId, id: sent.assistantMessage.id, role: 'assistant' });
    return sent;
  };

  /** Waits for the message's final state; a complete reply's text becomes part of what must be kept. */
  const finished = async (messageId: string, from: number): Promise<Message> => {
    const done = await client.finalMessage(messageId, { from, timeoutMs: 60_000 });
    const a = acked.get(messageId);
    if (a && done.status === 'complete') a.content = done.content;
    return done;
  };

  /** The chat's KV save after the turn that started at event `from`, if one arrives in `timeoutMs`. */
  const saveAfter = (chatId: string, from: number, timeoutMs: number): Promise<KvEvent | null> =>
    client.waitFor((e): e is KvEvent => e.type === 'cache.event' && e.payload.kind === 'save' && e.payload.chatId === chatId, { from, timeoutMs }).catch(() => null);

  /** A turn that runs to the end; its timings set the kill windows (see the file comment). */
  const fullTurn = async (chatId: string, text: string, maxTokens = 8): Promise<Message> => {
    await configure(chatId, maxTokens);
    const from = client.events.length;
    const sent = await post(chatId, text);
    const firstDelta = client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from }).then(() => performance.now());
    const done = await finished(sent.assistantMessage.id, from);
    const doneAt = performance.now();
    const firstAt = await firstDelta.catch(() => doneAt);
    if (maxTokens >= 32) window.generation = Math.max(5, doneAt - firstAt);
    if (done.stats?.restoreMs !== undefined && done.stats.tokensRestored > 0) window.restore = Math.max(2, done.stats.restoreMs);
    const save = await saveAfter(chatId, from, 10_000);
    if (save?.payload.ms !== undefined) window.save = Math.max(2, save.payload.ms);
    return done;
  };

  const logFile = (): string => join(dataDir, 'logs', 'hearth.log');
  const logSize = async (): Promise<number> => (await stat(logFile()).catch(() => ({ size: 0 }))).size;
  /** The host's log from byte `offset` on (every host on the data directory appends to the same file). */
  const logSince = async (offset: number): Promise<string> => (await readFile(logFile()).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');

  /** Kills at once: the pids are looked up before the drawn moment, so the kill lands on it. */
  const kill = async (target: 'engine' | 'host', enginePid: number | null): Promise<void> => {
    if (target === 'engine') {
      if (enginePid === null) throw new Error('no engine process to kill');
      process.kill(enginePid, 'SIGKILL');
      return;
    }
    hostExitExpected = true;
    const exited = new Promise<void>((resolve) => host.process.once('exit', () => resolve()));
    host.process.kill('SIGKILL');
    await exited;
    client.close();
  };

  const lostMessages = () => lostMessagesOf(client, [...acked.values()]);

  /** Regenerates the reply `messageId` greedily and waits for it (and, if asked, for its KV save). */
  const regenerate = async (chatId: string, messageId: string, waitForSave: boolean): Promise<Message> => {
    const from = client.events.length;
    const again = await client.must('chats.regenerate', { chatId, messageId });
    ack({ chatId, id: again.assistantMessage.id, role: 'assistant' });
    const done = await finished(again.assistantMessage.id, from);
    if (waitForSave) await saveAfter(chatId, from, 10_000);
    return done;
  };

  /**
   * The probe turn: restored exactly, or a clean fallback with its reason.
   *
   * Exact means the restored KV behaves like KV read from scratch: greedy replies token-identical.
   * Two llama.cpp facts shape the comparison (measured on this model with flash attention, as the
   * engine runs it): a reply depends on how the prompt's last tokens were batched, and so do the
   * K/V bytes themselves (evaluating the same tokens in other batches changes bytes from layer 1
   * on), so this tiny random model's near-ties can flip without any fault. Hence:
   * 1. both sides are compared at the same split: each regenerates the probe's reply from KV in
   *    memory, which evaluates only the prompt's last token — over the restored prefix (A), and
   *    over the prefix read again from scratch after `cache.forget` (B). A = B: "restore exact".
   * 2. if A ≠ B, the difference may be the restored KV's own batching history (it was computed
   *    turn by turn, token by token). The re-check kills the engine again and restores B's KV,
   *    saved just now from memory, at the same split (C). C = B proves the disk round trip exact
   *    for this chat: "restore exact (re-checked)", with A's and B's texts in the detail.
   * The plain probe-vs-full-re-read comparison (the probe's reply and B's first regeneration) also
   * goes into the detail.
   */
  const probe = async (chatId: string, run: number): Promise<ProbeResult> => {
    const done = await fullTurn(chatId, `Probe ${run}: and then?`, 8);
    const stats = done.stats;
    if (done.status !== 'complete' || !stats) return { outcome: `FAILED: the probe reply ended ${done.status}`, ...(done.error ? { detail: done.error.message } : {}) };
    if (stats.tokensRestored > 0) {
      const a = await regenerate(chatId, done.id, false);
      await client.must('cache.forget', { chatId });
      const reread = await regenerate(chatId, done.id, false);
      if (reread.status !== 'complete' || reread.stats?.tokensRestored !== 0 || reread.stats.tokensReused !== 0) {
        return { outcome: 'FAILED: the reference was not a full re-read', detail: JSON.stringify(reread.stats) };
      }
      // Let the last save land before the next kill, so that run starts from a quiet engine.
      const b = await regenerate(chatId, done.id, true);
      if (a.status !== 'complete' || b.status !== 'complete' || !a.stats || !b.stats || a.stats.tokensReused === 0 || a.stats.tokensReused !== b.stats.tokensReused) {
        return { outcome: 'FAILED: the references were not read alike', detail: `${JSON.stringify(a.stats)} vs ${JSON.stringify(b.stats)}` };
      }
      const plain = reread.content === done.content ? 'the full re-read agrees' : `the full re-read differs (${JSON.stringify(done.content)} vs ${JSON.stringify(reread.content)})`;
      const same = (x: Message, y: Message): boolean => x.content === y.content && x.stats?.tokensGenerated === y.stats?.tokensGenerated;
      if (same(a, b)) return { outcome: 'restore exact', detail: `${stats.tokensRestored} tokens restored; ${plain}` };
      const differs = `from the restored KV ${JSON.stringify(a.content)}, from KV read again ${JSON.stringify(b.content)}; ${plain}`;
      const pid = await host.enginePid();
      const restarts = (await client.must('app.state', {})).engine.restarts;
      if (pid === null) return { outcome: 'FAILED: restore differs from a re-read', detail: differs };
      process.kill(pid, 'SIGKILL');
      await untilReady(restarts + 1);
      const c = await regenerate(chatId, done.id, true);
      if (c.stats?.tokensRestored !== b.stats.tokensReused) return { outcome: 'FAILED: restore differs from a re-read', detail: `${differs}; the re-check restored ${c.stats?.tokensRestored ?? 0} tokens, not ${b.stats.tokensReused}` };
      return same(c, b)
        ? { outcome: 'restore exact (re-checked)', detail: `${stats.tokensRestored} tokens restored; ${differs}; B's KV saved, engine killed, restored: ${JSON.stringify(c.content)}, identical` }
        : { outcome: 'FAILED: restore differs from a re-read', detail: `${differs}; B's KV restored gives ${JSON.stringify(c.content)}` };
    }
    const reason = stats.fallbackReason?.trim() ?? '';
    if (stats.cacheSource === 'none' && reason !== '') return { outcome: `clean fallback (${fallbackClass(reason)})`, detail: reason };
    return { outcome: 'FAILED: no restore and no reason', detail: JSON.stringify(stats) };
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-kill-'));
    model = await testModelPath();
    await launch();
    for (let c = 0; c < CHATS; c++) {
      // ~2,500 tokens of system prompt, so that saves and restores take long enough to be hit.
      const chat = await client.must('chats.create', { title: `Kill ${c}`, systemPrompt: `You are a helpful assistant. ${seededText(100 + c, 1200)}` });
      chatIds.push(chat.id);
      await fullTurn(chat.id, `Hello ${c}.`);
    }
    // More turns measure the generation and restore windows (one slot: alternating chats restore).
    await fullTurn(chatIds[0] as string, 'Tell me more.', 48);
    await fullTurn(chatIds[1] as string, 'Go on.');
    await fullTurn(chatIds[2] as string, 'Go on.');
  }, 180_000);

  afterAll(async () => {
    hostExitExpected = true;
    client?.close();
    await host?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** One seeded kill and every check after it; returns the record (not yet written). */
  const oneRun = async (run: number, phase: Phase, target: 'engine' | 'host'): Promise<Omit<FaultRecord, 'area' | 'fault' | 'hostCrashes'>> => {
    const chatId = chatIds[run % CHATS] as string;
    const other = chatIds[(run + 1) % CHATS] as string;

    // One slot: the previous run's probe (another chat's) usually took it, so this chat's next
    // turn restores from disk; if it is still resident, a turn of another chat moves it out.
    if (phase === 'restore' && (await client.must('cache.chat', { chatId })).where === 'memory') await fullTurn(other, `Meanwhile ${run}.`);
    const enginePid = await host.enginePid();
    const restartsBefore = (await client.must('app.state', {})).engine.restarts;
    await configure(chatId, phase === 'generation' ? 48 : 8);
    const logAt = await logSize();
    const from = client.events.length;
    const sent = await post(chatId, `Run ${run}: ${seededText(run, 24)}`);
    // The host hands the turn to the engine just before it answers chats.send: a restore starts then.
    if (phase === 'generation') await client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from });
    if (phase === 'save') await finished(sent.assistantMessage.id, from);
    const delay = rng() * window[phase];
    await sleep(delay);
    const clientAtKill = client;
    await kill(target, enginePid);
    const replyId = sent.assistantMessage.id;
    const notes: string[] = [];
    let orphanOutlived = false;
    if (target === 'engine') {
      // The host ends the cut reply as soon as it sees the engine die (it restarts it meanwhile).
      if (!(await client.finalMessage(replyId, { from, timeoutMs: 10_000 }).catch(() => null))) notes.push('the cut reply never got a final state');
    } else {
      // The orphaned engine notices its parent is gone and exits on its own after a bounded
      // flush; the new host starts at once, as a user relaunching the app would.
      const killedAt = Date.now();
      const orphanGone = (async (): Promise<number | null> => {
        if (enginePid === null) return 0;
        while (isAlive(enginePid) && Date.now() < killedAt + ORPHAN_EXIT_MS) await sleep(25);
        return isAlive(enginePid) ? null : Date.now() - killedAt;
      })();
      await launch();
      const goneAfter = await orphanGone;
      orphanOutlived = goneAfter === null;
      notes.push(goneAfter === null ? `the old engine still ran ${ORPHAN_EXIT_MS} ms after its host died` : `the old engine exited ${goneAfter} ms after its host`);
    }
    // What streamed before the kill: for an engine kill, every delta up to the cut reply's final
    // state (the host relays all the engine sent before it died); for a host kill, what the old socket carried.
    const streamed = clientAtKill.events.slice(from);

    // The conversation checks need only the host: after an engine kill they run while it restarts.
    const { lost, notes: lostNotes } = await lostMessages();
    notes.push(...lostNotes);
    // A cut reply is `incomplete` with its text kept (a killed host loses at most its last flush interval).
    const reply = (await client.must('chats.get', { chatId })).messages.find((m) => m.id === replyId);
    const kept = reply ? textKept(reply, streamed, target) : 'the reply is missing';
    if (kept !== null) notes.push(kept);

    // The host relays the engine's last events (a save it finished) before it reports the restart.
    if (target === 'engine') await untilReady(restartsBefore + 1);
    const where = landing(phase, clientAtKill.events.slice(from), replyId, chatId);

    const verified = await client.call('kv.verify', {});
    let result: ProbeResult;
    if (!verified.ok) result = { outcome: 'FAILED: kv.verify failed', detail: verified.error.message };
    else if (!verified.value.checked) result = { outcome: 'FAILED: kv.verify checked nothing', detail: verified.value.problems.join('; ') };
    else if (!verified.value.ok) result = { outcome: 'FAILED: the store failed its integrity check', detail: verified.value.problems.join('; ') };
    else result = await probe(chatId, run);

    // The store sweeps what a kill left when it opens, before kv.verify runs (both under its
    // lock), and logs it: debris of an interrupted write is expected; any other repair means a
    // kill broke the store's atomicity, which the clean check afterwards would hide. (Read after
    // the probe, so that the host's log stream has written the line.)
    const opened = openFindings(await logSince(logAt));
    if (opened.debris.length > 0) notes.push(`swept at open: ${opened.debris.join(', ')}`);
    if (opened.lockedOut) notes.push('the new engine found the KV root held by the old one');
    const damaged = opened.damage.length > 0 || opened.checkFailed;
    if (damaged) notes.push(`repaired at open: ${opened.damage.join(', ') || 'its check at open failed'}`);

    const outcome =
      lost > 0
        ? `FAILED: ${lost} messages lost`
        : orphanOutlived
          ? 'FAILED: the old engine outlived its host'
          : kept !== null
            ? 'FAILED: the cut reply lost its text'
            : damaged
              ? 'FAILED: the store needed repair at open'
              : result.outcome;
    const detail = [`${Math.round(delay)} ms in`, where, result.detail, ...notes].filter((d): d is string => d !== undefined && d !== '').join('; ');
    return { outcome, messagesLost: lost, detail };
  };

  it(`${RUNS} seeded kills: nothing acknowledged is lost, the store stays intact, every restore is exact or a clean fallback`, async () => {
    const failures: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const phase = phases[run % phases.length] as Phase;
      const target = run % HOST_KILL_EVERY === HOST_KILL_EVERY - 1 ? 'host' : 'engine';
      const fault = `SIGKILL ${target} during ${phase}`;
      const crashesBefore = hostCrashes;
      let record: Omit<FaultRecord, 'area' | 'fault' | 'hostCrashes'>;
      try {
        record = await oneRun(run, phase, target);
      } catch (error) {
        // A step that could not run (the host gone, a call refused) is a failure of this run;
        // the next run starts from a running host again.
        const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
        record = { outcome: 'FAILED: the run could not finish', messagesLost: 0, detail: message };
        if (host.process.exitCode !== null || host.process.signalCode !== null) {
          hostExitExpected = true;
          client.close();
          await launch();
        }
      }
      recordFault({ area: 'kill', fault, ...record, hostCrashes: hostCrashes - crashesBefore });
      if (record.outcome.startsWith('FAILED') || hostCrashes > crashesBefore) failures.push(`run ${run} (${fault}): ${record.outcome} — ${record.detail ?? ''}`);
    }
    const finalVerify = await client.must('kv.verify', {});
    expect(finalVerify.problems).toEqual([]);
    expect(finalVerify.ok).toBe(true);
    expect(failures).toEqual([]);
    expect(hostCrashes).toBe(0);
    // ~150 s on an idle 2-core machine; the limit only catches a hang (the suite's budget is
    // watched in its printed time, not by a timeout).
  }, 420_000);
});
