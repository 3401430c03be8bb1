import { describe, expect, it } from 'vitest';
import type { HearthEvent, MessageStats, ModelProfile } from '../contract/index.ts';
import {
  CacheViewLog,
  describeKvSettings,
  describeModelLoaded,
  describeProfileSaved,
  describeRestart,
} from './cache-view-log.ts';
import { defaultSettings } from './settings.ts';

const warm: MessageStats = { tokensReused: 400, tokensRestored: 0, tokensPrefilled: 12, tokensGenerated: 30, ttftMs: 20, cacheSource: 'memory' };

function viewLog(limits: { turnLimit?: number; eventLimit?: number } = {}) {
  const emitted: HearthEvent[] = [];
  let now = 1000;
  const j = new CacheViewLog({ emit: (event) => void emitted.push(event), now: () => now++, ...limits });
  return { j, emitted };
}

describe('CacheViewLog', () => {
  it('records a turn and pushes it; a warm turn adds no event', () => {
    const { j, emitted } = viewLog();
    const turn = j.recordTurn('chat', 'msg', warm);
    expect(turn).toEqual({ at: 1000, chatId: 'chat', messageId: 'msg', stats: warm });
    expect(j.turns).toEqual([turn]);
    expect(j.events).toEqual([]);
    expect(emitted).toEqual([{ type: 'cache.turn', payload: turn }]);
  });

  it('a restore and a fallback become events after their turn', () => {
    const { j, emitted } = viewLog();
    j.recordTurn('c1', 'm1', { ...warm, tokensReused: 0, tokensRestored: 3840, restoreMs: 41.6, cacheSource: 'disk' });
    j.recordTurn('c2', 'm2', { ...warm, tokensReused: 0, tokensPrefilled: 900, cacheSource: 'none', fallbackReason: 'its cache was forgotten, so its history was read again' });
    expect(emitted.map((e) => e.type)).toEqual(['cache.turn', 'cache.event', 'cache.turn', 'cache.event']);
    expect(j.events).toEqual([
      { id: 1, at: 1001, kind: 'restore', chatId: 'c1', text: 'restored 3,840 tokens from disk in 42 ms', tokens: 3840, ms: 42 },
      { id: 2, at: 1003, kind: 'fallback', chatId: 'c2', text: 'its cache was forgotten, so its history was read again', tokens: 900 },
    ]);
  });

  it("passes the engine's KV activity on as events", () => {
    const { j, emitted } = viewLog();
    j.recordActivity({ kind: 'save', chatId: 'c', text: 'saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms', tokens: 512, bytes: 1_100_000, ms: 14 });
    j.recordActivity({ kind: 'evict', text: 'evicted 3 chunks (2 MB)', bytes: 2_000_000 });
    expect(j.events).toEqual([
      { id: 1, at: 1000, kind: 'save', chatId: 'c', text: 'saved 512 tokens (2 new chunks, 1.1 MB written) in 14 ms', tokens: 512, bytes: 1_100_000, ms: 14 },
      { id: 2, at: 1001, kind: 'evict', text: 'evicted 3 chunks (2 MB)', bytes: 2_000_000 },
    ]);
    expect(emitted).toEqual(j.events.map((payload) => ({ type: 'cache.event', payload })));
  });

  it('keeps the last N turns and events, oldest first, with ids that go on', () => {
    const { j } = viewLog({ turnLimit: 3, eventLimit: 2 });
    for (let i = 0; i < 5; i++) j.recordTurn('c', `m${i}`, warm);
    for (let i = 0; i < 5; i++) j.record('settings', `change ${i}`);
    expect(j.turns.map((t) => t.messageId)).toEqual(['m2', 'm3', 'm4']);
    expect(j.events.map((e) => [e.id, e.text])).toEqual([
      [4, 'change 3'],
      [5, 'change 4'],
    ]);
  });

  it('a seed fills the timeline silently, bounded, and live turns follow it', () => {
    const { j, emitted } = viewLog({ turnLimit: 3 });
    j.seed([1, 2, 3, 4].map((i) => ({ at: i, chatId: 'c', messageId: `old${i}`, stats: warm })));
    expect(emitted).toEqual([]);
    expect(j.turns.map((t) => t.messageId)).toEqual(['old2', 'old3', 'old4']);
    j.recordTurn('c', 'new', warm);
    expect(j.turns.map((t) => t.messageId)).toEqual(['old3', 'old4', 'new']);
  });

  it('hands out copies', () => {
    const { j } = viewLog();
    j.recordTurn('c', 'm', warm);
    (j.turns as unknown[]).length = 0;
    expect(j.turns).toHaveLength(1);
  });
});

describe('describing host events', () => {
  it('names each changed disk KV setting, old → new; null when none changed', () => {
    const after = { ...defaultSettings, kvPersistence: false, kvBudgetBytes: 2 * 1024 ** 3, kvChunkTokens: 1024, kvSlots: 3 };
    expect(describeKvSettings(defaultSettings, after)).toBe('Cache settings: persistence on → off, budget 10 GB → 2 GB, chunk 256 → 1,024 tokens, slots 1 → 3');
    expect(describeKvSettings(defaultSettings, { ...defaultSettings, kvCompression: 'lossy' })).toBe('Cache settings: compression auto → lossy');
    expect(describeKvSettings({ ...defaultSettings, kvCompression: 'off' }, { ...defaultSettings, kvChunkTokens: 128 })).toBe(
      'Cache settings: chunk 256 → 128 tokens, compression off → auto',
    );
    expect(describeKvSettings(defaultSettings, { ...defaultSettings, theme: 'dark', threads: 4 })).toBeNull();
  });

  it('a saved profile names its changes', () => {
    const before: ModelProfile = { kType: 'auto', vType: 'auto', flashAttention: 'auto', contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' };
    expect(describeProfileSaved('/models/tiny.gguf', before, { ...before, kType: 'q8_0', vType: 'q8_0', contextSize: 8192 })).toBe(
      'Saved the profile of tiny.gguf: K auto → q8_0, V auto → q8_0, context auto → 8,192',
    );
    expect(describeProfileSaved('C:\\m\\x.gguf', before, before)).toBe('Saved the profile of x.gguf: unchanged');
  });

  it('a loaded model: its K/V types, context and slots', () => {
    const model = { path: '/m/tiny.gguf', name: 'tiny', sizeBytes: 1, architecture: 'llama', trainedContextLength: 8192, contextSize: 4096, layerCount: 2 };
    expect(describeModelLoaded({ ...model, kvType: { k: 'f16', v: 'q8_0' } }, 2)).toBe('Loaded tiny: K/V f16 / q8_0, 4,096 tokens × 2 slots');
    expect(describeModelLoaded(model, 1)).toBe('Loaded tiny: 4,096 tokens × 1 slot');
  });

  it('restarts: a crash with its reason, or the graceful restart; nothing else', () => {
    const running = { state: 'running', restarts: 0 } as const;
    expect(describeRestart(running, { state: 'restarting', restarts: 1, lastCrash: { at: 1, reason: 'signal SIGKILL' } })).toBe(
      'Engine crashed (signal SIGKILL); restarting it',
    );
    expect(describeRestart(running, { state: 'restarting', restarts: 0 })).toBe('Engine restarting to apply the Cache settings');
    expect(describeRestart({ state: 'restarting', restarts: 0 }, running)).toBeNull();
    expect(describeRestart({ state: 'starting', restarts: 0 }, running)).toBeNull();
  });
});
