/**
 * Database damage: the conversations database (hearth.db) and the KV index (kv/index.db), through
 * the real browser host and engine, because a crash mid-write, another program holding a lock,
 * or a damaged file must never cost an acknowledged message. Every row counts the messages before
 * and after its fault.
 *
 * - Torn WAL (after a SIGKILL): everything committed before the torn frame is there at restart.
 *   Each restart checks two faults, one per database file (separate files, separate processes).
 * - A write-locked hearth.db while sending, streaming and starting: wait and succeed, or fail
 *   with an error that says what to do.
 * - A damaged hearth.db: a clear start error, the file untouched; moved aside, Hearth starts empty.
 *   A damaged kv/index.db (only cache) is moved aside and rebuilt at start, and the log says so.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatDetail, HearthEvent, Message } from '../../engine/contract/index.ts';
import { mulberry32 } from '../support/gguf-writer.ts';
import { ChatStore } from '../../engine/host/chat-store.ts';
import { openDatabase } from '../../engine/host/db.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { recordFault } from './record.ts';
import { allMessages, holdWriteLock, launch, lostMessages, messagesInFile, missingFrom, sleep, tearLastFrame, turn, walFrames, type Acked, type Session } from './store-support.ts';
import { errorText } from '../../engine/contract/index.ts';

const rng = mulberry32(9001);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

type Shape = Pick<Message, 'id' | 'role' | 'content' | 'status'>;
const shapes = (detail: ChatDetail): Shape[] => detail.messages.map((m) => ({ id: m.id, role: m.role, content: m.content, status: m.status }));

/** What differs between the messages acknowledged (`before`) and those found (`after`). */
function differences(before: readonly Shape[], after: readonly Shape[]): string[] {
  const found = new Map(after.map((m) => [m.id, m]));
  const out: string[] = [];
  for (const m of before) {
    const now = found.get(m.id);
    if (!now) out.push(`${m.role} message ${m.id} is missing`);
    else if (now.content !== m.content || now.status !== m.status || now.role !== m.role) out.push(`${m.role} message ${m.id} changed: ${now.status} ${JSON.stringify(now.content.slice(0, 40))}`);
  }
  for (const m of after) if (!before.some((b) => b.id === m.id)) out.push(`an unexpected ${m.role} message ${m.id}`);
  return out;
}

type Delta = Extract<HearthEvent, { type: 'message.delta' }>;

describe('database damage: torn WALs, locks, damaged files', () => {
  let dataDir = '';
  let model = '';
  let db = '';
  let index = '';
  let session: Session | null = null;
  const acked: Acked[] = [];
  let crashes = 0;

  const start = async (): Promise<Session> => {
    session = await launch({ dataDir, model });
    return session;
  };
  const end = async (how: 'stop' | 'kill'): Promise<void> => {
    if (!session) return;
    crashes += session.crashes();
    await (how === 'stop' ? session.stop() : session.kill());
    session = null;
  };
  const current = (): Session => {
    if (!session) throw new Error('no host running');
    return session;
  };
  /** A start that must fail: the host's own words (its output), or "the host started". */
  const failedStart = (): Promise<string> =>
    launch({ dataDir, model }).then(
      async (s) => {
        await s.stop();
        return 'the host started';
      },
      (error: unknown) => (errorText(error)),
    );
  const appendGarbage = (wal: string): void => {
    const { pageSize, frames } = walFrames(wal);
    const last = frames.at(-1);
    // A frame whose header carries the WAL's own salts but whose checksum cannot match, then noise.
    const fake = Buffer.alloc(24 + pageSize);
    for (let i = 0; i < fake.length; i++) fake[i] = Math.floor(rng() * 256);
    if (last) readFileSync(wal).copy(fake, 8, last.offset + 8, last.offset + 16);
    appendFileSync(wal, Buffer.concat([fake, Buffer.from(Array.from({ length: 3000 }, () => Math.floor(rng() * 256)))]));
  };
  const garbage = (path: string, bytes: number): void => {
    // The file and its WAL: a WAL left beside it would still hold its newest pages.
    for (const suffix of ['-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    writeFileSync(path, Buffer.from(Array.from({ length: bytes }, () => Math.floor(rng() * 256))));
  };
  const streamedText = (client: Session['client'], from: number, messageId: string): string =>
    client.events
      .slice(from)
      .filter((e): e is Delta => e.type === 'message.delta' && e.payload.messageId === messageId)
      .map((e) => e.payload.delta)
      .join('');

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-database-'));
    model = await testModelPath();
    db = join(dataDir, 'hearth.db');
    index = join(dataDir, 'kv', 'index.db');
  }, 60_000);

  afterAll(async () => {
    await end('stop');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('hearth.db write-locked by another process while the host starts: it waits for a short lock', async () => {
    // A chat written before the host first starts, so the row has messages to count.
    const seed = openDatabase(db);
    try {
      const store = new ChatStore(seed);
      const chat = store.createChat({ title: 'Written before the lock', systemPrompt: '', sampling: { temperature: 0, topP: 1, maxTokens: 6 } });
      const written = store.insertTurn({ chatId: chat.id, user: { parentId: null, text: 'Kept through a locked start?' } });
      store.finishMessage(written.assistantMessage.id, { status: 'complete', content: 'A reply written before the lock.' });
    } finally {
      seed.close();
    }
    const before = messagesInFile(db);
    const holder = await holdWriteLock(db, 2500);
    const t0 = performance.now();
    await start();
    const startedMs = performance.now() - t0;
    await holder.release();
    const state = await current().client.call('app.state', {});
    const { lost, notes } = await lostMessages(current().client, before);
    const after = (await allMessages(current().client)).length;
    recordFault({
      area: 'database',
      fault: 'hearth.db write-locked 2.5 s by another process while the host starts',
      outcome: state.ok && lost === 0 ? 'waited, then started' : `FAILED: ${JSON.stringify(state)} ${notes.join('; ')}`,
      messagesLost: lost,
      hostCrashes: current().crashes(),
      detail: `started in ${Math.round(startedMs)} ms; messages: ${before.length} before, ${after} after`,
    });
    expect(state.ok).toBe(true);
    expect(before.length).toBe(2);
    expect(notes).toEqual([]);
  });

  it('a SIGKILL after acknowledged turns, then garbage after the last WAL frame of hearth.db and a torn last frame of kv/index.db', async () => {
    const { client } = current();
    const chat = await client.must('chats.create', { title: 'Crash after turns', systemPrompt: seededText(1, 150) });
    for (const text of ['Hello.', 'And then?']) {
      const { message } = await turn(client, chat.id, text, { acked });
      expect(message.status).toBe('complete');
    }
    await client.must('chats.rename', { chatId: chat.id, title: 'Renamed just before the crash' });
    const before = shapes(await client.must('chats.get', { chatId: chat.id }));
    const everything = await allMessages(client);
    await end('kill');
    appendGarbage(`${db}-wal`);
    const indexTear = tearLastFrame(`${index}-wal`);
    expect(indexTear).not.toBeNull();

    const { client: after } = await start();
    const detail = await after.must('chats.get', { chatId: chat.id });
    const diff = differences(before, shapes(detail));
    if (detail.chat.title !== 'Renamed just before the crash') diff.push(`the last commit (a rename) is gone: ${detail.chat.title}`);
    recordFault({
      area: 'database',
      fault: 'garbage appended to the WAL of hearth.db',
      outcome: diff.length === 0 ? 'every commit kept' : `FAILED: ${diff.join('; ')}`,
      messagesLost: diff.filter((d) => d.includes('missing') || d.includes('changed')).length,
      hostCrashes: crashes,
      detail: 'a frame with the WAL\'s salts and a wrong checksum, then 3,000 random bytes',
    });
    expect(diff).toEqual([]);

    // The KV index lost its last commit: the store must check clean at start, and the chat go on.
    const verify = await after.must('kv.verify', {});
    const next = await turn(after, chat.id, 'Still there?', { acked });
    const counted = await lostMessages(after, [...everything, ...acked]);
    const ok = verify.ok && next.message.status === 'complete' && counted.lost === 0;
    recordFault({
      area: 'database',
      fault: 'torn WAL of kv/index.db (last frame cut mid-way)',
      outcome: ok ? 'index recovered, kv.verify ok, chat continues' : `FAILED: kv.verify ${verify.problems.join('; ')}; reply ${next.message.status}; ${counted.notes.join('; ')}`,
      messagesLost: counted.lost,
      hostCrashes: crashes,
      detail: `${indexTear?.tornFrames} of ${indexTear?.frames} frames torn; next turn: ${next.message.stats?.cacheSource ?? '?'}, ${next.message.stats?.tokensRestored ?? 0} tokens restored; messages: ${everything.length} before, ${(await allMessages(after)).length} after the next turn`,
    });
    expect(verify.problems).toEqual([]);
    expect(next.message.status).toBe('complete');
    expect(counted.notes).toEqual([]);
  });

  it('a SIGKILL while a reply streams, then a torn last WAL frame of hearth.db and a garbage kv/index.db', async () => {
    const { client } = current();
    const chat = await client.must('chats.create', { title: 'Crash mid-reply', systemPrompt: seededText(2, 150) });
    await turn(client, chat.id, 'Hello.', { acked });
    const before = shapes(await client.must('chats.get', { chatId: chat.id }));
    await client.must('chats.configure', { chatId: chat.id, sampling: { temperature: 0, topP: 1, maxTokens: 600 } });
    const from = client.events.length;
    const text = 'Tell me a long story.';
    const sent = await client.must('chats.send', { chatId: chat.id, text });
    acked.push({ chatId: chat.id, id: sent.userMessage.id, role: 'user', content: text }, { chatId: chat.id, id: sent.assistantMessage.id, role: 'assistant' });
    // A few of the host's 250 ms flushes of streamed text land in the WAL before the crash.
    await client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from });
    await sleep(800);
    const streamed = streamedText(client, from, sent.assistantMessage.id);
    await end('kill');
    const tear = tearLastFrame(`${db}-wal`);
    garbage(index, 64 * 1024);

    const { client: after } = await start();
    const found = shapes(await after.must('chats.get', { chatId: chat.id }));
    const problems = differences(before, found.filter((m) => before.some((b) => b.id === m.id)));
    const user = found.find((m) => m.id === sent.userMessage.id);
    const reply = found.find((m) => m.id === sent.assistantMessage.id);
    if (user?.content !== text) problems.push('the acknowledged user message is missing or changed');
    if (!reply) problems.push('the reply is missing');
    else {
      if (reply.status !== 'incomplete') problems.push(`the cut reply is ${reply.status}, not incomplete`);
      if (!(streamed.startsWith(reply.content) || reply.content.startsWith(streamed))) problems.push('the kept reply text is not what was streamed');
    }
    recordFault({
      area: 'database',
      fault: 'torn WAL of hearth.db while a reply streams (last frame cut mid-way)',
      outcome: problems.length === 0 ? 'committed kept, reply incomplete with its text so far' : `FAILED: ${problems.join('; ')}`,
      messagesLost: problems.length,
      hostCrashes: crashes,
      detail: `${tear?.tornFrames} of ${tear?.frames} frames torn; the reply kept ${reply?.content.length ?? 0} of ${streamed.length}+ streamed characters`,
    });
    expect(problems).toEqual([]);

    // kv/index.db was garbage: moved aside and rebuilt (only cache), said in the log; chats intact, the chat saves again.
    const verify = await after.must('kv.verify', {});
    const next = await turn(after, chat.id, 'After the index was rebuilt.', { acked });
    const { lost, notes } = await lostMessages(after, acked);
    const log = readdirSync(join(dataDir, 'logs'))
      .map((f) => readFileSync(join(dataDir, 'logs', f), 'utf8'))
      .join('\n');
    const line = log.split('\n').find((l) => l.includes('moved aside to')) ?? '';
    const ok = line !== '' && existsSync(`${index}.damaged`) && verify.ok && lost === 0 && next.message.status === 'complete' && next.saved;
    recordFault({
      area: 'database',
      fault: 'kv/index.db overwritten with garbage',
      outcome: ok ? 'moved aside and rebuilt (logged), chats intact' : `FAILED: logged ${line !== ''}, kv.verify ${verify.problems.join('; ')}, ${notes.join('; ')}, reply ${next.message.status}, saved ${next.saved}`,
      messagesLost: lost,
      hostCrashes: crashes,
      detail: line.replace(/^\S+\s+\S+\s+/, ''),
    });
    expect(ok).toBe(true);
  });

  it('hearth.db write-locked by another process while a message is sent and while a reply streams: it waits, or refuses clearly; nothing lost', async () => {
    const { client } = current();
    const chat = await client.must('chats.create', { title: 'Locked', systemPrompt: seededText(4, 100) });

    // Held for 1 s, less than the 5 s the host waits for a lock: the send waits, then succeeds.
    {
      const before = await allMessages(client);
      const holder = await holdWriteLock(db, 1000);
      const t0 = performance.now();
      const { message } = await turn(client, chat.id, 'Sent while locked briefly.', { acked, waitSave: false });
      const waited = performance.now() - t0;
      await holder.release();
      const { lost, notes } = await lostMessages(client, [...before, ...acked]);
      recordFault({
        area: 'database',
        fault: 'hearth.db write-locked 1 s by another process during a send',
        outcome: message.status === 'complete' && lost === 0 ? 'waited, then sent' : `FAILED: the reply ended ${message.status}; ${notes.join('; ')}`,
        messagesLost: lost,
        hostCrashes: current().crashes(),
        detail: `the send and its reply took ${Math.round(waited)} ms; messages: ${before.length} before, ${(await allMessages(client)).length} after`,
      });
      expect(message.status).toBe('complete');
      expect(notes).toEqual([]);
    }

    // Taken while a reply streams: the host's flushes and its final write wait; the reply is saved whole.
    {
      const before = await allMessages(client);
      await client.must('chats.configure', { chatId: chat.id, sampling: { temperature: 0, topP: 1, maxTokens: 200 } });
      const from = client.events.length;
      const text = 'Stream while locked.';
      const sent = await client.must('chats.send', { chatId: chat.id, text });
      acked.push({ chatId: chat.id, id: sent.userMessage.id, role: 'user', content: text }, { chatId: chat.id, id: sent.assistantMessage.id, role: 'assistant' });
      await client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from });
      const holder = await holdWriteLock(db, 1000);
      const final = await client.finalMessage(sent.assistantMessage.id, { from, timeoutMs: 60_000 });
      await holder.exited;
      const streamed = streamedText(client, from, sent.assistantMessage.id);
      const stored = (await client.must('chats.get', { chatId: chat.id })).messages.find((m) => m.id === sent.assistantMessage.id);
      const ok = final.status === 'complete' && stored?.status === 'complete' && stored.content === streamed;
      // The reply counts as kept only with every streamed character.
      const { lost } = await lostMessages(client, [...before, ...acked, { chatId: chat.id, id: sent.assistantMessage.id, role: 'assistant', content: streamed }]);
      recordFault({
        area: 'database',
        fault: 'hearth.db write-locked 1 s by another process while a reply streams',
        outcome: ok ? 'waited, reply saved whole' : `FAILED: reply ${final.status}, stored ${stored?.status} (${stored?.content.length} of ${streamed.length} characters)`,
        messagesLost: lost,
        hostCrashes: current().crashes(),
        detail: `messages: ${before.length} before, ${(await allMessages(client)).length} after`,
      });
      expect(ok).toBe(true);
    }

    // Held on for longer than the host waits for a lock: a reply that ends meanwhile is shown whole
    // at once and written once the lock is gone; a send is refused with what to do, nothing
    // half-saved; afterwards a send works.
    {
      const kept = await allMessages(client);
      await client.must('chats.configure', { chatId: chat.id, sampling: { temperature: 0, topP: 1, maxTokens: 40 } });
      const from = client.events.length;
      const text = 'A reply that ends while locked.';
      const sent = await client.must('chats.send', { chatId: chat.id, text });
      acked.push({ chatId: chat.id, id: sent.userMessage.id, role: 'user', content: text }, { chatId: chat.id, id: sent.assistantMessage.id, role: 'assistant' });
      await client.waitFor((e) => e.type === 'message.delta' && e.payload.messageId === sent.assistantMessage.id, { from });
      const holder = await holdWriteLock(db, 60_000);
      const final = await client.finalMessage(sent.assistantMessage.id, { from, timeoutMs: 60_000 });
      const streamed = streamedText(client, from, sent.assistantMessage.id);
      const before = (await client.must('chats.get', { chatId: chat.id })).messages.length;
      const t0 = performance.now();
      const refused = await client.call('chats.send', { chatId: chat.id, text: 'Sent while locked for long.' });
      const waited = performance.now() - t0;
      const duringLock = (await client.must('chats.get', { chatId: chat.id })).messages.length;
      await holder.release();
      // The deferred end is retried every second.
      let row: { status: string; content: string } | undefined;
      for (let i = 0; i < 30 && row?.status !== 'complete'; i++) {
        await sleep(100);
        const reader = new DatabaseSync(db, { readOnly: true });
        row = reader.prepare('SELECT status, content FROM messages WHERE id = ?').get(sent.assistantMessage.id) as typeof row;
        reader.close();
      }
      const retried = await turn(client, chat.id, 'Sent while locked for long.', { acked, maxTokens: 6, waitSave: false });
      const clear = !refused.ok && refused.error.code === 'BUSY' && /locked by another process/.test(refused.error.message) && /Close it and try again/.test(refused.error.hint ?? '');
      const deferred = final.status === 'complete' && final.content === streamed && row?.status === 'complete' && row.content === streamed;
      const ok = clear && deferred && duringLock === before && retried.message.status === 'complete';
      const { lost } = await lostMessages(client, [...kept, ...acked, { chatId: chat.id, id: sent.assistantMessage.id, role: 'assistant', content: streamed }]);
      recordFault({
        area: 'database',
        fault: 'hearth.db write-locked (held on) by another process as a reply ends and a message is sent',
        outcome: ok
          ? 'reply shown whole at once and saved after the lock; the send refused with a clear error (BUSY), then sent'
          : `FAILED: reply ${final.status}, stored ${row?.status} ${row?.content.length}/${streamed.length}; ${JSON.stringify(refused)}; ${duringLock - before} messages half-saved`,
        messagesLost: lost,
        hostCrashes: current().crashes(),
        detail: `refused after ${Math.round(waited)} ms: ${refused.ok ? '' : `${refused.error.message} ${refused.error.hint ?? ''}`}; messages: ${kept.length} before, ${(await allMessages(client)).length} after`,
      });
      expect(ok).toBe(true);
    }
    const { lost, notes } = await lostMessages(client, acked);
    expect(notes).toEqual([]);
    expect(lost).toBe(0);
    expect(current().crashes()).toBe(0);
  });

  it('hearth.db write-locked by another process for longer than the host waits at start: a start error that says what to do', async () => {
    await end('stop');
    const before = messagesInFile(db);
    const holder = await holdWriteLock(db, 60_000);
    const failure = await failedStart();
    await holder.release();
    const after = messagesInFile(db);
    const { lost, notes } = missingFrom(before, after);
    const clear = /locked by another process/.test(failure) && /Close that program and start Hearth again/.test(failure);
    recordFault({
      area: 'database',
      fault: 'hearth.db write-locked (held on) by another process while the host starts',
      outcome: clear && lost === 0 ? 'refused to start with a clear error' : `FAILED: ${failure.slice(0, 300)} ${notes.join('; ')}`,
      messagesLost: lost,
      hostCrashes: 0,
      detail: `${failure.split('\n').filter((l) => /locked|Close/.test(l)).join(' ')}; messages in hearth.db: ${before.length} before, ${after.length} after`,
    });
    expect(clear).toBe(true);
    expect(notes).toEqual([]);
  });

  it('a garbage hearth.db: a clear start error, the file untouched, and Hearth starts again once it is moved aside', async () => {
    // Every message the file held is destroyed by the garbage itself: no program could keep them.
    const before = messagesInFile(db);
    garbage(db, 96 * 1024);
    const damaged = sha256(db);
    const failure = await failedStart();
    const untouched = sha256(db) === damaged;
    const clear = failure.includes(`database ${db} is damaged`) && /Hearth has not changed it/.test(failure) && /move it aside/.test(failure);
    recordFault({
      area: 'database',
      fault: 'hearth.db overwritten with garbage',
      outcome:
        clear && untouched
          ? `refused to start with a clear error; the user keeps the damaged file untouched (for a recovery tool), its ${before.length} messages gone from the app`
          : `FAILED: untouched ${untouched}: ${failure.slice(0, 300)}`,
      // Nothing Hearth held survived the injection, so nothing is left for Hearth to lose: the
      // messages are counted as destroyed, not as kept.
      messagesLost: 0,
      messagesDestroyed: before.length,
      hostCrashes: 0,
      detail: `${failure.split('\n').filter((l) => /damaged|aside/.test(l)).join(' ')}; messages: ${before.length} in hearth.db before, none readable after`,
    });
    expect(before.length).toBeGreaterThan(0);
    expect(untouched).toBe(true);
    expect(clear).toBe(true);

    // What the error says to do: move it aside, and start again.
    renameSync(db, `${db}.damaged`);
    const { client } = await start();
    const list = await client.must('chats.list', {});
    const after = await allMessages(client);
    const gone = missingFrom(before, after).lost;
    recordFault({
      area: 'database',
      fault: 'hearth.db overwritten with garbage, then moved aside as the error says',
      outcome:
        list.chats.length === 0
          ? `started with an empty chat list; the user keeps the damaged file as hearth.db.damaged, the ${gone} messages it held gone from the app`
          : `FAILED: ${list.chats.length} chats listed`,
      // All `gone` were destroyed by the injection (counted in the row above, once).
      messagesLost: gone - before.length,
      hostCrashes: crashes,
      detail: `messages: ${before.length} before the garbage, ${after.length} in the app after`,
    });
    expect(list.chats).toEqual([]);
    expect(sha256(`${db}.damaged`)).toBe(damaged);
    expect(crashes).toBe(0);
  });
});
