import { describe, expect, it } from 'vitest';
import { hearthError, type HearthEvent, type KvStatus } from '../contract/index.ts';
import type { WorkerEvent } from '../protocol.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { finished, until, useTestHearths, value, type TestHearth } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

const diskFull = hearthError('DISK_FULL', 'The KV store cannot write: ENOSPC: no space left on device.');
const paused: WorkerEvent = { type: 'kvPersistence', paused: true, reason: diskFull };
const resumed: WorkerEvent = { type: 'kvPersistence', paused: false };

function kvEvents(t: TestHearth): KvStatus[] {
  return t.events.filter((e): e is Extract<HearthEvent, { type: 'kv.status' }> => e.type === 'kv.status').map((e) => e.payload);
}

async function kvState(t: TestHearth): Promise<KvStatus | undefined> {
  return value(await t.hearth.api['app.state']({})).kv;
}

describe('kv.status', () => {
  it('relays a pause once, keeps chats working while paused, and relays the resume', async () => {
    const t = await start();
    expect(await kvState(t)).toEqual({ persistence: 'on' });

    t.engine.event(paused);
    t.engine.event(paused); // every failed save reports again: the UI hears it once
    await t.waitFor((e) => e.type === 'kv.status');
    expect(kvEvents(t)).toEqual([{ persistence: 'paused', reason: diskFull }]);
    expect(await kvState(t)).toEqual({ persistence: 'paused', reason: diskFull });

    const chat = value(await t.hearth.api['chats.create']({}));
    const sent = value(await t.hearth.api['chats.send']({ chatId: chat.id, text: 'Still there?' }));
    expect((await t.waitFor(finished(sent.assistantMessage.id))).payload.message.status).toBe('complete');

    t.engine.event(resumed);
    await until(() => kvEvents(t).length === 2);
    expect(kvEvents(t)[1]).toEqual({ persistence: 'on' });
    expect(await kvState(t)).toEqual({ persistence: 'on' });
    expect(t.log.lines.some((l) => l.startsWith('warn KV persistence paused'))).toBe(true);
  });

  it('reports a store that could not be opened at start as paused', async () => {
    const engine = new FakeEngine();
    const unusable = hearthError('INTERNAL', 'The KV store directory /d/kv is not usable: EACCES.');
    engine.behaviour.initEvents = [{ type: 'kvPersistence', paused: true, reason: unusable }];
    const t = await start({ engine });
    expect(await kvState(t)).toEqual({ persistence: 'paused', reason: unusable });
  });

  it('after an engine restart: a pause the new process repeats does not flicker; one it does not repeat is cleared', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    engine.event(paused);
    await t.waitFor((e) => e.type === 'kv.status');

    // The disk is still full: the new process reports the same pause during init.
    engine.behaviour.initEvents = [paused];
    engine.crash();
    await t.waitFor((e) => e.type === 'engine.status' && e.payload.state === 'running' && e.payload.restarts === 1);
    expect(kvEvents(t)).toHaveLength(1);
    expect(await kvState(t)).toEqual({ persistence: 'paused', reason: diskFull });

    // Space was freed: the next process reports that it persists again.
    engine.behaviour.initEvents = [resumed];
    engine.crash();
    await t.waitFor((e) => e.type === 'engine.status' && e.payload.state === 'running' && e.payload.restarts === 2);
    expect(kvEvents(t)).toEqual([{ persistence: 'paused', reason: diskFull }, { persistence: 'on' }]);

    // A process that says nothing does not inherit an old pause either.
    engine.event(paused);
    await until(() => kvEvents(t).length === 3);
    engine.behaviour.initEvents = [];
    engine.crash();
    await t.waitFor((e) => e.type === 'engine.status' && e.payload.state === 'running' && e.payload.restarts === 3);
    expect(kvEvents(t).at(-1)).toEqual({ persistence: 'on' });
  });

  it('is "off" as soon as the settings turn persistence off (the engine restarts to apply it)', async () => {
    const engine = new FakeEngine();
    const t = await start({ engine });
    value(await t.hearth.api['settings.update']({ kvPersistence: false }));
    // settings.update answers once the restarted engine runs: its init said "no store".
    expect(await kvState(t)).toEqual({ persistence: 'off' });
    expect(kvEvents(t)).toEqual([{ persistence: 'off' }]);
    expect(engine.callsOf('init').at(-1)).toMatchObject({ kvDir: null });
    engine.event(paused); // nothing is persisted, so nothing can pause
    engine.crash();
    await t.waitFor((e) => e.type === 'engine.status' && e.payload.state === 'running' && e.payload.restarts === 1);
    expect(await kvState(t)).toEqual({ persistence: 'off' });
    expect(kvEvents(t)).toEqual([{ persistence: 'off' }]);
  });
});
