/**
 * Load through the browser host, with the real host, engine and disk KV store: many chats at once
 * and many turns in a row are where cross-talk between chats and a store that outgrows its budget
 * would show.
 *
 * - Six chats stream at once into two slots: the replies queue and swap slots through the disk
 *   store; every reply completes, and its deltas, concatenated, are exactly its final content and
 *   appear in no other chat.
 * - 200 sequential turns over 20 chats under a disk budget that holds only a few of them: the
 *   store's own accounting and the chunk files really on disk stay within the budget, and at the
 *   end the store passes its integrity check and every chat has every message it was sent.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheStoreStats, HearthEvent, Message } from '../../engine/contract/index.ts';
import { chunksDir } from '../../engine/kv/chunk-file.ts';
import type { HostClient } from '../support/host-client.ts';
import type { Host } from '../support/host.ts';
import { launch, sleep, type Session } from './store-support.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { recordFault } from './record.ts';


const SLOTS = 2;
const PARALLEL_CHATS = 6;
const CHATS = 20;
const TURNS = 200;
const CHECK_EVERY = 20;
/** Small chunks make eviction fine-grained; a budget of a few chats' worth makes it run often. */
const CHUNK_TOKENS = 64;
const BUDGET_BYTES = 1024 * 1024;
/**
 * Turns go to groups of chats in turn (40 turns cycling through 4 chats, then the next 4): within
 * a group a chat comes back after two others took the two slots, so it restores from disk, while
 * the budget holds about a group's worth and keeps evicting the least recently used.
 */
const GROUP = 4;

type Delta = Extract<HearthEvent, { type: 'message.delta' }>;
type Tick = Extract<HearthEvent, { type: 'cache.tick' }>;
type CacheEv = Extract<HearthEvent, { type: 'cache.event' }>;

/** Bytes of the chunk files under the store's chunk directory (temp files of a write in flight excluded). */
async function chunkFileBytes(kvRoot: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const top = chunksDir(kvRoot);
  const dirs = await readdir(top).catch(() => [] as string[]);
  for (const dir of dirs) {
    const names = await readdir(join(top, dir)).catch(() => [] as string[]);
    for (const name of names) {
      if (name.endsWith('.tmp')) continue;
      const s = await stat(join(top, dir, name)).catch(() => null);
      if (s?.isFile()) {
        bytes += s.size;
        files++;
      }
    }
  }
  return { bytes, files };
}

describe('load through the browser host', () => {
  let dataDir = '';
  let session: Session | undefined;
  let host: Host;
  let client: HostClient;
  const hostCrashes = (): number => session?.crashes() ?? 0;

  const untilReady = async (timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await client.call('app.state', {});
      if (state.ok && state.value.engine.state === 'running' && state.value.model.status === 'ready') return;
      if (Date.now() > deadline) throw new Error(`the model was not ready within ${timeoutMs} ms: ${JSON.stringify(state)}\n${host.output().slice(-2000)}`);
      await sleep(50);
    }
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-load-'));
    session = await launch({ dataDir });
    ({ host, client } = session);
    // Settings first, with no model loaded: the budget and chunk size restart the engine (the
    // call answers once it runs again), and the slot count applies at the load that follows.
    await client.must('settings.update', { kvSlots: SLOTS, contextSize: 2048, kvBudgetBytes: BUDGET_BYTES, kvChunkTokens: CHUNK_TOKENS });
    const loaded = await client.call('models.load', { path: await testModelPath() });
    if (!loaded.ok) throw new Error(`models.load failed: ${loaded.error.message}\n${host.output().slice(-2000)}`);
    await untilReady();
  }, 120_000);

  afterAll(async () => {
    await session?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(`${PARALLEL_CHATS} chats stream at once into ${SLOTS} slots: every reply completes and reaches only its own chat`, async () => {
    const crashesBefore = hostCrashes();
    const state = await client.must('app.state', {});
    expect(state.model.status).toBe('ready');
    const chats: string[] = [];
    for (let c = 0; c < PARALLEL_CHATS; c++) {
      // Different system prompts: each chat's KV differs, so a slot swap that mixed them up would show.
      const chat = await client.must('chats.create', { title: `Parallel ${c}`, systemPrompt: `Assistant ${c}. ${seededText(500 + c, 150)}` });
      await client.must('chats.configure', { chatId: chat.id, sampling: { temperature: 0, topP: 1, maxTokens: 160 } });
      chats.push(chat.id);
    }
    const from = client.events.length;
    // All six sends in flight at once.
    const sent = await Promise.all(chats.map((chatId, c) => client.must('chats.send', { chatId, text: `Chat ${c}: ${seededText(c, 30)}` })));
    // Every send is answered (its reply committed as streaming) before the first reply ends: all six stream at once.
    const allSentAt = client.events.length;
    const finals = await Promise.all(sent.map((s) => client.finalMessage(s.assistantMessage.id, { from, timeoutMs: 60_000 })));
    const endedBeforeAllSent = client.events
      .slice(from, allSentAt)
      .filter((e) => e.type === 'message.updated' && e.payload.message.status !== 'streaming' && sent.some((s) => s.assistantMessage.id === e.payload.message.id)).length;

    const deltas = client.events.slice(from).filter((e): e is Delta => e.type === 'message.delta');
    const failures: string[] = [];
    for (let c = 0; c < PARALLEL_CHATS; c++) {
      const chatId = chats[c] as string;
      const s = sent[c]!;
      const final = finals[c] as Message;
      const mine = deltas.filter((d) => d.payload.messageId === s.assistantMessage.id);
      const wrongChat = mine.filter((d) => d.payload.chatId !== chatId).length;
      // Deltas tagged with this chat must all be this chat's reply.
      const strays = deltas.filter((d) => d.payload.chatId === chatId && d.payload.messageId !== s.assistantMessage.id).length;
      const streamed = mine.map((d) => d.payload.delta).join('');
      const stored = (await client.must('chats.get', { chatId })).messages;
      const storedReply = stored.find((m) => m.id === s.assistantMessage.id);
      // The other chats' messages must not be in this one.
      const foreign = stored.filter((m) => m.chatId !== chatId || sent.some((o, k) => k !== c && (o.assistantMessage.id === m.id || o.userMessage.id === m.id))).length;
      const problems: string[] = [];
      if (final.status !== 'complete') problems.push(`ended ${final.status}${final.error ? `: ${final.error.message}` : ''}`);
      if (mine.length === 0) problems.push('no deltas');
      if (wrongChat > 0) problems.push(`${wrongChat} deltas carry another chat's id`);
      if (strays > 0) problems.push(`${strays} deltas for this chat name another message`);
      if (streamed !== final.content) problems.push(`the deltas (${JSON.stringify(streamed.slice(0, 40))}) differ from the final content (${JSON.stringify(final.content.slice(0, 40))})`);
      if (storedReply?.content !== final.content) problems.push('the stored reply differs from the final one');
      if (stored.length !== 2) problems.push(`the chat holds ${stored.length} messages, not 2`);
      if (foreign > 0) problems.push(`${foreign} messages of other chats`);
      if (c === 0 && endedBeforeAllSent > 0) problems.push(`${endedBeforeAllSent} replies ended before all ${PARALLEL_CHATS} were sent: they did not stream at once`);
      // Six chats, two slots: at least the later replies swap through the disk store.
      const outcome = problems.length === 0 ? 'complete, own chat only' : `FAILED: ${problems.join('; ')}`;
      const lost = storedReply === undefined || !stored.some((m) => m.id === s.userMessage.id) ? 1 : 0;
      recordFault({
        area: 'load',
        fault: `${PARALLEL_CHATS} chats streaming at once, ${SLOTS} slots`,
        outcome,
        messagesLost: lost,
        hostCrashes: c === 0 ? hostCrashes() - crashesBefore : 0,
        detail: `${mine.length} deltas, ${final.stats?.cacheSource ?? 'no stats'}`,
      });
      if (problems.length > 0) failures.push(`chat ${c}: ${outcome}`);
    }
    expect(failures).toEqual([]);
    expect(hostCrashes()).toBe(crashesBefore);
  });

  it(`${TURNS} turns over ${CHATS} chats under a ${BUDGET_BYTES / 1024} KiB budget: the store stays within it and passes its integrity check`, async () => {
    const crashesBefore = hostCrashes();
    const kvRoot = join(dataDir, 'kv');
    await client.must('cache.watch', {});
    const chats: string[] = [];
    const sentTexts = new Map<string, { chatId: string; role: Message['role']; content: string | null }>();
    for (let c = 0; c < CHATS; c++) {
      const chat = await client.must('chats.create', { title: `Load ${c}`, systemPrompt: `You are assistant number ${c}. ${seededText(900 + c, 60)}` });
      await client.must('chats.configure', { chatId: chat.id, sampling: { temperature: 0, topP: 1, maxTokens: 6 } });
      chats.push(chat.id);
    }
    const startEvents = client.events.length;
    const checks: string[] = [];
    const failures: string[] = [];
    let worstStored = 0;
    let worstFiles = 0;
    for (let turn = 0; turn < TURNS; turn++) {
      const group = Math.floor(turn / (GROUP * (TURNS / CHATS)));
      const chatId = chats[group * GROUP + (turn % GROUP)] as string;
      const from = client.events.length;
      const text = `Turn ${turn}: ${seededText(turn, 12)}`;
      const sent = await client.must('chats.send', { chatId, text });
      sentTexts.set(sent.userMessage.id, { chatId, role: 'user', content: text });
      const final = await client.finalMessage(sent.assistantMessage.id, { from, timeoutMs: 30_000 });
      sentTexts.set(sent.assistantMessage.id, { chatId, role: 'assistant', content: final.status === 'complete' ? final.content : null });
      if (final.status !== 'complete') failures.push(`turn ${turn}: the reply ended ${final.status}${final.error ? `: ${final.error.message}` : ''}`);
      if ((turn + 1) % CHECK_EVERY !== 0) continue;

      // The turn's save (and the eviction after it) lands after the reply is answered.
      const save = await client
        .waitFor((e): e is CacheEv => e.type === 'cache.event' && e.payload.kind === 'save' && e.payload.chatId === chatId, { from, timeoutMs: 10_000 })
        .catch(() => null);
      if (save === null) failures.push(`turn ${turn}: no KV save after the reply`);
      // The engine re-reads the store's totals after every save and eviction; the second tick
      // after the save is sampled after that for certain.
      const afterSave = client.events.length;
      await client.must('cache.watch', {});
      let ticks = 0;
      const tick = await client.waitFor((e): e is Tick => e.type === 'cache.tick' && ++ticks === 2, { from: afterSave, timeoutMs: 10_000 });
      const store: CacheStoreStats | null = tick.payload.store;
      const files = await chunkFileBytes(kvRoot);
      if (store === null) {
        failures.push(`turn ${turn}: the tick has no store figures`);
        continue;
      }
      // `storedBytes` (chunk files plus the partial-chunk tails kept in the index) is exactly what
      // the budget governs (engine/kv `enforceBudget`); `kv.stats`' `bytesOnDisk` adds the index
      // and its WAL and leaves the tails out. The chunk files found on disk are summed as well, so
      // the accounting cannot hide a file it lost track of.
      worstStored = Math.max(worstStored, store.storedBytes);
      worstFiles = Math.max(worstFiles, files.bytes);
      checks.push(`${turn + 1}: stored ${store.storedBytes} B (${store.chunkCount} chunks, ${files.files} files ${files.bytes} B); last turn ${JSON.stringify(final.stats)}`);
      if (store.storedBytes > BUDGET_BYTES) failures.push(`after turn ${turn}: stored ${store.storedBytes} B > budget ${BUDGET_BYTES} B`);
      if (files.bytes > BUDGET_BYTES) failures.push(`after turn ${turn}: chunk files on disk ${files.bytes} B > budget ${BUDGET_BYTES} B`);
      if (store.persistence !== 'on') failures.push(`after turn ${turn}: persistence ${store.persistence}`);
    }
    const events = client.events.slice(startEvents);
    const evictions = events.filter((e) => e.type === 'cache.event' && e.payload.kind === 'evict').length;
    const restores = events.filter((e) => e.type === 'cache.event' && e.payload.kind === 'restore').length;

    const verify = await client.must('kv.verify', {});
    if (!verify.checked || !verify.ok) failures.push(`kv.verify: ${verify.problems.join('; ') || 'nothing checked'}`);

    // Every chat opens with every message it was sent, and every reply as it finished.
    let lost = 0;
    const listed = new Set((await client.must('chats.list', {})).chats.map((c) => c.id));
    for (const chatId of chats) {
      const mine = [...sentTexts.entries()].filter(([, m]) => m.chatId === chatId);
      const detail = listed.has(chatId) ? await client.call('chats.get', { chatId }) : null;
      if (!detail?.ok) {
        lost += mine.length;
        failures.push(`chat ${chatId} does not open`);
        continue;
      }
      const byId = new Map(detail.value.messages.map((m) => [m.id, m]));
      for (const [id, m] of mine) {
        const found = byId.get(id);
        if (!found || found.role !== m.role || (m.content !== null && found.content !== m.content)) lost++;
      }
    }
    if (lost > 0) failures.push(`${lost} messages lost`);
    if (evictions < 10) failures.push(`the budget evicted only ${evictions} times: not enough pressure to test it`);
    if (restores < 10) failures.push(`only ${restores} turns restored from disk: the store was not exercised`);

    const outcome = failures.length === 0 ? 'within budget, store intact' : `FAILED: ${failures[0]}`;
    recordFault({
      area: 'load',
      fault: `${TURNS} turns over ${CHATS} chats, ${BUDGET_BYTES / 1024} KiB KV budget`,
      outcome,
      messagesLost: lost,
      hostCrashes: hostCrashes() - crashesBefore,
      detail: `${evictions} evictions, ${restores} restores, peak stored ${worstStored} B, peak chunk files ${worstFiles} B, ${verify.chunksVerified} chunks verified`,
    });
    if (process.env.LOAD_DEBUG) console.log(checks.join('\n'), `\n${evictions} evictions, ${restores} restores`);
    expect(failures).toEqual([]);
    expect(hostCrashes()).toBe(crashesBefore);
  });
});
