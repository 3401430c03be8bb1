/**
 * The Cache view's calls through `hearth.call` with the fake engine: `cache.watch`,
 * `cache.overview`, `cache.chat`, `cache.forget`, and the event log the host keeps.
 */
import { describe, expect, it } from 'vitest';
import type { CacheEvent, CacheSnapshot, CacheTurn, CallInput, CallName, CallOutputs, HearthEvent, Result } from '../contract/index.ts';
import { FakeEngine, fakeMetrics } from '../../test/support/fake-engine.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

const ticks = (t: TestHearth, from = 0): CacheSnapshot[] =>
  t.events.slice(from).filter((e): e is Extract<HearthEvent, { type: 'cache.tick' }> => e.type === 'cache.tick').map((e) => e.payload);
const logged = (t: TestHearth): CacheEvent[] =>
  t.events.filter((e): e is Extract<HearthEvent, { type: 'cache.event' }> => e.type === 'cache.event').map((e) => e.payload);

async function chatWithReply(t: TestHearth, text = 'Hi') {
  const chat = value(await t.hearth.api['chats.create']({}));
  const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text }));
  await t.waitFor(finished(sent.assistantMessage.id));
  return { chat, messageId: sent.assistantMessage.id };
}

/** `hearth.call` (validated, as the hosts call it) with the contract's output type. */
async function call<N extends CallName>(t: TestHearth, name: N, input: CallInput<N>): Promise<Result<CallOutputs[N]>> {
  return (await t.hearth.call(name, input)) as Result<CallOutputs[N]>;
}

const unknownChat = '00000000-0000-4000-8000-000000000000';

describe('cache.watch', () => {
  it('answers the rate and lease, and ticks with the mapped memory, slots and store', async () => {
    const t = await start();
    expect(value(await call(t, 'cache.watch', {}))).toEqual({ intervalMs: 250, leaseMs: 5000 });
    await until(() => ticks(t).length >= 2, 3000);
    const [first, second] = ticks(t);
    expect(second!.seq).toBe(first!.seq + 1);
    expect(first).toMatchObject({
      memory: { kind: 'ram', deviceName: 'RAM', weightsBytes: 1_000_000, kvAllocatedBytes: 4096 * 1024, kvUsedBytes: 17 * 1024, computeBytes: 300_000 },
      slots: [{ index: 0, cellsUsed: 17, cellsCapacity: 4096, kType: 'f16', vType: 'f16', bytes: 17 * 1024, state: 'idle' }],
      store: { persistence: 'on', storedBytes: 36_864, chunkCount: 2, budgetBytes: 10 * 1024 ** 3, chunkTokens: 256, dedupRatio: 1 },
    });
    // Only while leased: dispose stops the sampling (the lease itself is unit-tested with fake timers).
    await t.hearth.dispose();
    const count = ticks(t).length;
    await new Promise((r) => setTimeout(r, 400));
    expect(ticks(t)).toHaveLength(count);
  });

  it('an engine without a model ticks with no memory and no slots', async () => {
    const engine = new FakeEngine();
    const { memory: _m, ...noModel } = fakeMetrics();
    engine.behaviour.metrics = { ...noModel, slots: [] };
    const t = await start({ engine, loadModel: false });
    value(await call(t, 'cache.watch', {}));
    await until(() => ticks(t).length >= 1);
    expect(ticks(t)[0]).toMatchObject({ memory: null, slots: [], store: { chunkCount: 2 } });
  });
});

describe('cache.overview', () => {
  it("turns, the event log, and the engine's largest chats that still exist", async () => {
    const t = await start();
    const { chat, messageId } = await chatWithReply(t);
    t.engine.behaviour.cachedChats = [
      { chatId: chat.id, tokens: 40, bytes: 40_960, lastUsed: 5 },
      { chatId: unknownChat, tokens: 10, bytes: 10_240, lastUsed: 4 },
    ];
    const overview = value(await call(t, 'cache.overview', {}));
    expect(overview.turns).toEqual([{ at: expect.any(Number), chatId: chat.id, messageId, stats: expect.objectContaining({ tokensReused: 3 }) }]);
    expect(overview.chats).toEqual([{ chatId: chat.id, tokens: 40, bytes: 40_960, lastUsed: 5 }]);
    expect(t.engine.callsOf('kvChats')).toEqual([{ limit: 10 }]);
    // The model load is the first line of the log.
    expect(overview.events.map((e) => [e.kind, e.text])).toEqual([['model', 'Loaded fake model: 4,096 tokens × 1 slot']]);
    // The turn was pushed as it happened, before its message's final state.
    const turnAt = t.events.findIndex((e) => e.type === 'cache.turn');
    expect(turnAt).toBeGreaterThan(-1);
    expect(turnAt).toBeLessThan(t.events.findIndex(finished(messageId)));
  });

  it('with the engine down: the history still, and no chats rather than an error', async () => {
    const t = await start();
    await chatWithReply(t);
    t.engine.behaviour.cachedChats = [{ chatId: unknownChat, tokens: 1, bytes: 1, lastUsed: 1 }];
    t.engine.behaviour.silent = true; // the restarted process never comes up
    t.engine.crash();
    await until(() => t.events.some((e) => e.type === 'engine.status' && e.payload.state === 'restarting'));
    const overview = value(await call(t, 'cache.overview', {}));
    expect(overview.chats).toEqual([]);
    expect(overview.turns).toHaveLength(1);
    expect(overview.events.at(-1)).toMatchObject({ kind: 'restart', text: 'Engine crashed (signal SIGKILL); restarting it' });
  });

  it('the timeline survives a restart of the app: turns are seeded from the database', async () => {
    const first = await start();
    const { messageId } = await chatWithReply(first);
    await first.hearth.dispose();
    const second = await start({ dataDir: first.dataDir });
    const turns: readonly CacheTurn[] = value(await call(second, 'cache.overview', {})).turns;
    expect(turns.map((turn) => turn.messageId)).toEqual([messageId]);
  });
});

describe('restores and fallbacks in the log', () => {
  it("a reply's restore and fallback become events after its turn", async () => {
    const t = await start();
    t.engine.behaviour.stats = { tokensReused: 0, tokensRestored: 2048, restoreMs: 12, cacheSource: 'disk', fallbackReason: 'its cache was forgotten, so its history was read again' };
    const { chat } = await chatWithReply(t);
    expect(logged(t).slice(-2)).toEqual([
      expect.objectContaining({ kind: 'restore', chatId: chat.id, text: 'restored 2,048 tokens from disk in 12 ms', tokens: 2048, ms: 12 }),
      expect.objectContaining({ kind: 'fallback', chatId: chat.id, text: 'its cache was forgotten, so its history was read again' }),
    ]);
  });

  it("the engine's KV activity is logged as it comes", async () => {
    const t = await start();
    t.engine.event({ type: 'kvActivity', activity: { kind: 'save', chatId: 'x', text: 'saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms', tokens: 512 } });
    await until(() => logged(t).some((e) => e.kind === 'save'));
    expect(logged(t).at(-1)).toMatchObject({ kind: 'save', chatId: 'x', text: 'saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms', tokens: 512 });
  });
});

describe('cache.chat', () => {
  it('memory when a slot holds it, disk when only the store does, none otherwise', async () => {
    const t = await start();
    const { chat } = await chatWithReply(t);
    const other = value(await t.hearth.api['chats.create']({}));
    const third = value(await t.hearth.api['chats.create']({}));
    const metrics = fakeMetrics();
    t.engine.behaviour.metrics = { ...metrics, slots: [{ ...metrics.slots[0]!, chatId: chat.id, cellsUsed: 412 }] };
    t.engine.behaviour.cachedChats = [
      { chatId: chat.id, tokens: 400, bytes: 1_200_000, lastUsed: 2 },
      { chatId: other.id, tokens: 90, bytes: 90_000, lastUsed: 1 },
    ];
    expect(value(await call(t, 'cache.chat', { chatId: chat.id }))).toEqual({
      chatId: chat.id,
      where: 'memory',
      slot: 0,
      tokensInMemory: 412,
      tokensOnDisk: 400,
      bytesOnDisk: 1_200_000,
    });
    expect(value(await call(t, 'cache.chat', { chatId: other.id }))).toMatchObject({ where: 'disk', slot: null, tokensInMemory: 0, tokensOnDisk: 90 });
    expect(value(await call(t, 'cache.chat', { chatId: third.id }))).toMatchObject({ where: 'none', slot: null, tokensOnDisk: 0, bytesOnDisk: 0 });
  });

  it('an unknown chat is NOT_FOUND; with the engine down, nothing is known to be cached', async () => {
    const t = await start();
    const { chat } = await chatWithReply(t);
    const missing = await call(t, 'cache.chat', { chatId: unknownChat });
    expect(missing.ok ? null : missing.error.code).toBe('NOT_FOUND');
    const invalid = await t.hearth.call('cache.chat', { chatId: 'not an id' });
    expect(invalid.ok).toBe(false);
    t.engine.behaviour.silent = true;
    t.engine.crash();
    await until(() => t.events.some((e) => e.type === 'engine.status' && e.payload.state === 'restarting'));
    expect(value(await call(t, 'cache.chat', { chatId: chat.id }))).toEqual({
      chatId: chat.id,
      where: 'none',
      slot: null,
      tokensInMemory: 0,
      tokensOnDisk: 0,
      bytesOnDisk: 0,
    });
  });
});

describe('cache.forget', () => {
  it("forgets the chat's KV with a re-read, answers the bytes freed, and the log says so", async () => {
    const t = await start();
    const { chat } = await chatWithReply(t);
    const metrics = fakeMetrics();
    t.engine.behaviour.metrics = { ...metrics, slots: [{ ...metrics.slots[0]!, chatId: chat.id }] };
    t.engine.behaviour.cachedChats = [{ chatId: chat.id, tokens: 400, bytes: 1_200_000, lastUsed: 2 }];
    expect(value(await call(t, 'cache.forget', { chatId: chat.id }))).toEqual({ bytesFreed: 1_200_000 });
    expect(t.engine.callsOf('forgetChat')).toEqual([{ chatId: chat.id, reread: true }]);
    await until(() => logged(t).some((e) => e.kind === 'forget'));
    expect(logged(t).at(-1)).toMatchObject({ kind: 'forget', chatId: chat.id, bytes: 1_200_000 });
    expect(value(await call(t, 'cache.chat', { chatId: chat.id }))).toMatchObject({ where: 'none', tokensOnDisk: 0 });
    expect(value(await call(t, 'cache.overview', {})).chats).toEqual([]);
  });

  it("an API conversation's KV is listed and can be forgotten, though no chat record names it", async () => {
    const t = await start();
    const conversation = 'api-5f57c7af62bebc97';
    t.engine.behaviour.cachedChats = [{ chatId: conversation, tokens: 302, bytes: 466_000, lastUsed: 3 }];
    expect(value(await call(t, 'cache.overview', {})).chats).toEqual([{ chatId: conversation, tokens: 302, bytes: 466_000, lastUsed: 3 }]);
    expect(value(await call(t, 'cache.forget', { chatId: conversation }))).toEqual({ bytesFreed: 466_000 });
    expect(t.engine.callsOf('forgetChat')).toEqual([{ chatId: conversation, reread: true }]);
  });

  it('an unknown chat is NOT_FOUND and reaches no engine; deleting a chat forgets without a re-read', async () => {
    const t = await start();
    const missing = await call(t, 'cache.forget', { chatId: unknownChat });
    expect(missing.ok ? null : missing.error.code).toBe('NOT_FOUND');
    expect(t.engine.callsOf('forgetChat')).toEqual([]);
    const { chat } = await chatWithReply(t);
    value(await call(t, 'chats.delete', { chatId: chat.id }));
    await until(() => t.engine.callsOf('forgetChat').length === 1);
    expect(t.engine.callsOf('forgetChat')).toEqual([{ chatId: chat.id }]);
  });
});

describe("the host's own events", () => {
  it('a disk KV setting change, then the graceful restart that applies it, then the reload', async () => {
    const t = await start();
    const mark = logged(t).length;
    value(await call(t, 'settings.update', { kvBudgetBytes: 2 * 1024 ** 3, theme: 'dark' }));
    await until(() => logged(t).length >= mark + 3);
    expect(logged(t).slice(mark).map((e) => [e.kind, e.text])).toEqual([
      ['settings', 'Cache settings: budget 10 GB → 2 GB'],
      ['restart', 'Engine restarting to apply the Cache settings'],
      ['model', 'Loaded fake model: 4,096 tokens × 1 slot'],
    ]);
    // Settings that are not the cache's are not logged.
    value(await call(t, 'settings.update', { theme: 'light' }));
    await new Promise((r) => setTimeout(r, 20));
    expect(logged(t)).toHaveLength(mark + 3);
  });

  it('a saved model profile is logged before the reload that applies it', async () => {
    const t = await start();
    const mark = logged(t).length;
    value(await call(t, 'models.setProfile', { path: t.modelFile, profile: { kType: 'q8_0', vType: 'q8_0' } }));
    await until(() => logged(t).length >= mark + 2);
    expect(logged(t).slice(mark).map((e) => [e.kind, e.text])).toEqual([
      ['settings', 'Saved the profile of fake.gguf: K f16 → q8_0, V f16 → q8_0'],
      ['model', 'Loaded fake model: 4,096 tokens × 1 slot'],
    ]);
  });

  it('ids increase by one per event', async () => {
    const t = await start();
    value(await call(t, 'settings.update', { kvChunkTokens: 128 }));
    await until(() => logged(t).length >= 4);
    const ids = logged(t).map((e) => e.id);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
  });
});
