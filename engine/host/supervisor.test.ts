import { afterEach, describe, expect, it } from 'vitest';
import type { EngineStatus } from '../contract/index.ts';
import { FakeEngine } from '../../test/support/fake-engine.ts';
import { backoffFromEnv, crashLoopError, describeExit, Supervisor } from './supervisor.ts';
import { until } from '../../test/support/host-fixture.ts';

const supervisors: Supervisor[] = [];

function makeSupervisor(engine: FakeEngine, extra: Partial<ConstructorParameters<typeof Supervisor>[0]> = {}) {
  const statuses: EngineStatus[] = [];
  const supervisor = new Supervisor({
    spawn: engine.spawn,
    logLevel: 'warn',
    backoff: { initialMs: 10, maxMs: 40, stableMs: 60_000 },
    ...extra,
  });
  supervisor.onStatus((s) => statuses.push(s));
  supervisors.push(supervisor);
  return { supervisor, statuses };
}

afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.dispose()));
});

describe('Supervisor', () => {
  it('waits for ready, sends init first, then serves typed requests', async () => {
    const engine = new FakeEngine();
    const { supervisor, statuses } = makeSupervisor(engine);
    expect(supervisor.status.state).toBe('starting');
    await supervisor.start();
    expect(supervisor.status).toEqual({ state: 'running', restarts: 0 });
    expect(statuses.map((s) => s.state)).toEqual(['running']);
    expect(engine.calls[0]).toMatchObject({ method: 'init', input: { logLevel: 'warn' } });
    expect(supervisor.pid).toBe(engine.current?.pid);
    const metrics = await supervisor.request('metrics', {});
    // No kvDir in this init: the fake then has no disk store (nor a state transfer), like the real engine.
    const { kvStore: _none, stateTransfer: _noTransfer, ...withoutStore } = engine.behaviour.metrics;
    expect(metrics).toEqual({ ok: true, value: withoutStore });
  });

  it("hands each init answer, with the input it answered, to onInit before the status says 'running'", async () => {
    const engine = new FakeEngine();
    engine.behaviour.codec = { kernels: 'fallback', reason: 'not built' };
    const seen: string[] = [];
    let chunk = 128;
    const { supervisor } = makeSupervisor(engine, {
      initInput: () => ({ kvDir: '/kv', kvChunkTokens: chunk, kvCompression: 'lossy' }),
      onInit: (input, output) => seen.push(`${input.kvChunkTokens} ${input.kvCompression} ${output.codec.kernels} ${output.codec.reason} ${supervisor.status.state}`),
    });
    await supervisor.start();
    expect(seen).toEqual(['128 lossy fallback not built starting']);
    chunk = 64;
    engine.behaviour.codec = { kernels: 'native' };
    expect((await supervisor.restart()).ok).toBe(true);
    expect(seen).toEqual(['128 lossy fallback not built starting', '64 lossy native undefined restarting']);
  });

  it('on a crash: fails pending requests with ENGINE_CRASHED, restarts, re-inits and notifies', async () => {
    const engine = new FakeEngine();
    engine.behaviour.pauseAfter = 1;
    const { supervisor, statuses } = makeSupervisor(engine);
    let restarted = 0;
    supervisor.onRestart(() => restarted++);
    await supervisor.start();
    await supervisor.request('loadModel', { path: '/m.gguf', contextSize: 0, threads: 1 });
    const tokens: string[] = [];
    supervisor.onEvent((e) => e.type === 'token' && tokens.push(e.delta));
    const pending = supervisor.request('generate', {
      requestId: 'r1',
      chatId: 'c1',
      messages: [{ role: 'user', text: 'hi' }],
      sampling: { temperature: 0, topP: 1, maxTokens: 8 },
    });
    await until(() => tokens.length === 1);
    const firstPid = supervisor.pid;
    engine.crash('SIGSEGV');
    const result = await pending;
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('ENGINE_CRASHED');
      expect(result.error.message).toContain('SIGSEGV');
    }
    expect(supervisor.status).toMatchObject({ state: 'restarting', restarts: 1, lastCrash: { reason: 'signal SIGSEGV' } });
    // While restarting, requests are refused rather than queued.
    expect((await supervisor.request('metrics', {})).ok).toBe(false);
    await until(() => supervisor.status.state === 'running');
    expect(restarted).toBe(1);
    expect(supervisor.pid).not.toBe(firstPid);
    expect(engine.ports).toHaveLength(2);
    expect(engine.callsOf('init')).toHaveLength(2);
    expect(statuses.map((s) => s.state)).toEqual(['running', 'restarting', 'running']);
    expect(statuses.at(-1)?.restarts).toBe(1);
  });

  it('backs off between restarts of an engine that keeps failing', async () => {
    const engine = new FakeEngine();
    engine.behaviour.initError = { code: 'INTERNAL', message: 'bindings failed' };
    const spawnedAt: number[] = [];
    const { supervisor } = makeSupervisor(engine, {
      spawn: () => {
        spawnedAt.push(Date.now());
        return engine.spawn();
      },
    });
    await supervisor.start(); // resolves after the first failed try
    expect(supervisor.status.state).toBe('restarting');
    expect(supervisor.status.lastCrash?.reason).toContain('init failed: bindings failed');
    await until(() => spawnedAt.length >= 5, 3000);
    const gaps = spawnedAt.slice(1).map((t, i) => t - (spawnedAt[i] ?? 0));
    // 10, 20, 40, 40 ms of backoff (plus the fake's start-up), capped at maxMs.
    expect(gaps[1]).toBeGreaterThanOrEqual(18);
    expect(gaps[2]).toBeGreaterThanOrEqual(38);
    expect(gaps[3]).toBeLessThan(200);
    engine.behaviour.initError = null;
    await until(() => supervisor.status.state === 'running', 3000);
  });

  it('kills and restarts an engine that never says ready', async () => {
    const engine = new FakeEngine();
    engine.behaviour.silent = true;
    const { supervisor } = makeSupervisor(engine, { startTimeoutMs: 30 });
    void supervisor.start();
    await until(() => supervisor.status.state === 'restarting');
    expect(supervisor.status.lastCrash?.reason).toMatch(/did not start within 30 ms/);
    engine.behaviour.silent = false;
    await until(() => supervisor.status.state === 'running');
  });

  it('dispose is not a crash: no restart, pending requests fail, status stopped', async () => {
    const engine = new FakeEngine();
    engine.behaviour.pauseAfter = 0;
    const { supervisor, statuses } = makeSupervisor(engine);
    await supervisor.start();
    await supervisor.request('loadModel', { path: '/m.gguf', contextSize: 0, threads: 1 });
    const pending = supervisor.request('generate', {
      requestId: 'r1',
      chatId: 'c1',
      messages: [],
      sampling: { temperature: 0, topP: 1, maxTokens: 8 },
    });
    await new Promise((r) => setTimeout(r, 10));
    await supervisor.dispose();
    const result = await pending;
    expect(result.ok || result.error.code).toBe('ENGINE_UNAVAILABLE');
    expect(supervisor.status.state).toBe('stopped');
    expect(supervisor.status.restarts).toBe(0);
    expect(statuses.map((s) => s.state)).toEqual(['running', 'stopped']);
    await new Promise((r) => setTimeout(r, 50));
    expect(engine.ports).toHaveLength(1);
    expect(engine.ports[0]?.dead).toBe(true);
    expect((await supervisor.request('metrics', {})).ok).toBe(false);
  });

  it('restart is graceful and not a crash: SIGTERM, a fresh process with fresh init input, onRestart, no crash counted', async () => {
    const engine = new FakeEngine();
    const signals: (NodeJS.Signals | undefined)[] = [];
    let budget = 100;
    const { supervisor, statuses } = makeSupervisor(engine, {
      spawn: () => {
        const port = engine.spawn();
        const kill = port.kill.bind(port);
        port.kill = (signal) => {
          signals.push(signal);
          kill(signal);
        };
        return port;
      },
      initInput: () => ({ kvDir: '/kv', kvBudgetBytes: budget }),
    });
    let restarted = 0;
    supervisor.onRestart(() => restarted++);
    await supervisor.start();
    engine.behaviour.pauseAfter = 0;
    await supervisor.request('loadModel', { path: '/m.gguf', contextSize: 0, threads: 1 });
    const pending = supervisor.request('generate', { requestId: 'r1', chatId: 'c1', messages: [], sampling: { temperature: 0, topP: 1, maxTokens: 8 } });
    const firstPid = supervisor.pid;
    budget = 200;
    const result = await supervisor.restart();
    expect(result).toEqual({ ok: true, value: undefined });
    expect(signals).toEqual(['SIGTERM']);
    const cut = await pending;
    expect(cut.ok || cut.error.code).toBe('ENGINE_UNAVAILABLE');
    expect(supervisor.status).toEqual({ state: 'running', restarts: 0 });
    expect(statuses.map((s) => s.state)).toEqual(['running', 'restarting', 'running']);
    expect(statuses.every((s) => s.restarts === 0 && s.lastCrash === undefined)).toBe(true);
    expect(restarted).toBe(1);
    expect(supervisor.pid).not.toBe(firstPid);
    expect(engine.callsOf('init').map((i) => i.kvBudgetBytes)).toEqual([100, 200]);
    expect((await supervisor.request('metrics', {})).ok).toBe(true);
  });

  it('restart kills an engine that ignores SIGTERM after the grace period; restarts run one after another', async () => {
    const engine = new FakeEngine();
    const signals: (NodeJS.Signals | undefined)[] = [];
    const { supervisor } = makeSupervisor(engine, {
      killGraceMs: 30,
      spawn: () => {
        const port = engine.spawn();
        const kill = port.kill.bind(port);
        port.kill = (signal) => {
          signals.push(signal);
          if (signal !== 'SIGTERM') kill(signal);
        };
        return port;
      },
    });
    await supervisor.start();
    const [a, b] = await Promise.all([supervisor.restart(), supervisor.restart()]);
    expect(a.ok && b.ok).toBe(true);
    expect(signals).toEqual(['SIGTERM', 'SIGKILL', 'SIGTERM', 'SIGKILL']);
    expect(engine.ports).toHaveLength(3);
    expect(supervisor.status).toEqual({ state: 'running', restarts: 0 });
  });

  it('restart of an engine that then fails to start is a crash, retried with backoff', async () => {
    const engine = new FakeEngine();
    const { supervisor } = makeSupervisor(engine);
    await supervisor.start();
    engine.behaviour.initError = { code: 'INTERNAL', message: 'bindings failed' };
    const result = await supervisor.restart();
    expect(result.ok || result.error.code).toBe('ENGINE_CRASHED');
    expect(supervisor.status).toMatchObject({ state: 'restarting', restarts: 1 });
    engine.behaviour.initError = null;
    await until(() => supervisor.status.state === 'running');
    // Nothing is up to stop while a crash restart waits: the next start reads the settings anyway.
    engine.crash();
    await until(() => supervisor.status.state === 'restarting');
    expect(await supervisor.restart()).toEqual({ ok: true, value: undefined });
    await until(() => supervisor.status.state === 'running');
    await supervisor.dispose();
    expect((await supervisor.restart()).ok).toBe(false);
  });

  it('a crash loop backs off and says so: crashLoop in the status from the 3rd crash in a row, calls answer its error, a running engine clears it', async () => {
    const engine = new FakeEngine();
    const spawnedAt: number[] = [];
    const { supervisor, statuses } = makeSupervisor(engine, {
      backoff: { initialMs: 20, maxMs: 160, stableMs: 60_000 },
      spawn: () => {
        spawnedAt.push(Date.now());
        return engine.spawn();
      },
    });
    await supervisor.start();
    // Each fresh engine dies as soon as it runs (a native crash in whatever it does first).
    for (let crash = 1; crash <= 4; crash++) {
      await until(() => supervisor.status.state === 'running', 3000);
      engine.crash('SIGSEGV');
      await until(() => supervisor.status.state === 'restarting');
      expect(supervisor.status).toMatchObject({ state: 'restarting', restarts: crash, lastCrash: { reason: 'signal SIGSEGV' } });
      if (crash < 3) expect(supervisor.status.crashLoop).toBeUndefined();
    }
    const loop = supervisor.status.crashLoop;
    expect(loop).toMatchObject({ crashes: 4, error: crashLoopError(4, 'signal SIGSEGV') });
    expect(loop?.error.message).toMatch(/keeps stopping unexpectedly \(4 crashes in a row; the last: signal SIGSEGV\)/);
    expect(loop?.error.hint).toMatch(/conversations are safe/);
    // The next try is the 4th doubling: 20, 40, 80, then 160 ms (the cap).
    expect((loop?.retryAt ?? 0) - (supervisor.status.lastCrash?.at ?? 0)).toBe(160);
    // Calls made meanwhile get the loop's error, not "try again in a moment".
    const refused = await supervisor.request('metrics', {});
    expect(refused).toEqual({ ok: false, error: loop?.error });
    // The 3rd crash was the first to report the loop.
    const loops = statuses.filter((s) => s.crashLoop !== undefined).map((s) => s.crashLoop?.crashes);
    expect(loops).toEqual([3, 4]);
    await until(() => supervisor.status.state === 'running', 3000);
    expect(supervisor.status.crashLoop).toBeUndefined();
    expect(supervisor.status.restarts).toBe(4);
    const gaps = spawnedAt.slice(1).map((t, i) => t - (spawnedAt[i] ?? 0));
    expect(gaps).toHaveLength(4);
    // Waits doubled between the starts: never a restart at full speed.
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(gaps[3]).toBeGreaterThanOrEqual(158);
  });

  it('crashes after a stable run are no loop: the row and the delay start again', async () => {
    const engine = new FakeEngine();
    const { supervisor, statuses } = makeSupervisor(engine, { backoff: { initialMs: 5, maxMs: 1000, stableMs: 40 } });
    await supervisor.start();
    for (let crash = 1; crash <= 4; crash++) {
      await until(() => supervisor.status.state === 'running', 3000);
      await new Promise((r) => setTimeout(r, 60));
      engine.crash('SIGABRT');
      await until(() => supervisor.status.state === 'restarting');
    }
    await until(() => supervisor.status.state === 'running', 3000);
    expect(supervisor.status.restarts).toBe(4);
    expect(statuses.every((s) => s.crashLoop === undefined)).toBe(true);
    expect(supervisor.status.lastCrash?.reason).toBe('signal SIGABRT');
  });

  it('a stopped supervisor reports no crash loop', async () => {
    const engine = new FakeEngine();
    engine.behaviour.initError = { code: 'INTERNAL', message: 'bindings failed' };
    const { supervisor } = makeSupervisor(engine, { crashLoopAfter: 1 });
    await supervisor.start();
    expect(supervisor.status.crashLoop?.crashes).toBe(1);
    expect(supervisor.status.crashLoop?.error.message).toContain('init failed: bindings failed');
    await supervisor.dispose();
    expect(supervisor.status.state).toBe('stopped');
    expect(supervisor.status.crashLoop).toBeUndefined();
  });

  it('reads the test-only backoff override, ignoring anything malformed', () => {
    expect(backoffFromEnv('50,400,60000')).toEqual({ initialMs: 50, maxMs: 400, stableMs: 60_000 });
    expect(backoffFromEnv(' 10 , 20 , 30 ')).toEqual({ initialMs: 10, maxMs: 20, stableMs: 30 });
    for (const bad of [undefined, '', '1,2', '1,2,3,4', 'a,b,c', '-1,2,3', '5,2,3', '1.5,2,3']) expect(backoffFromEnv(bad)).toBeNull();
  });

  it('describes exits', () => {
    expect(describeExit(139, null)).toBe('exit code 139');
    expect(describeExit(null, 'SIGKILL')).toBe('signal SIGKILL');
  });
});
