import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ok, type EngineBuildKind, type LocalEngineState, type ModelInfo, type ModelStatus, type SpeedSettings, type SpeedTrial } from '../../contract/index.ts';
import type { InitInput, InitOutput } from '../../protocol.ts';
import { FakeBuildRunner, fakeLlamaSource, fakeTools } from '../../../test/support/fake-build.ts';
import { CHOICE_FILE, readChoice } from './manifest.ts';
import { LocalEngine } from './local-engine.ts';
import type { BuildTools } from './tools.ts';

const model: ModelInfo = { path: '/models/m.gguf', name: 'M', sizeBytes: 1, architecture: 'llama', trainedContextLength: 4096, contextSize: 4096, layerCount: 32, flashAttention: false, threads: 2, batchSize: 512 };

/**
 * The host around a LocalEngine: an engine process that answers `init` with the build asked for
 * (or fails to load it), a model that reloads after each restart, and trials whose turn time
 * depends on the engine running.
 */
class FakeHost {
  readonly dir: string;
  readonly root: string;
  readonly runner = new FakeBuildRunner();
  readonly events: LocalEngineState[] = [];
  readonly log: string[] = [];
  readonly restarts: Array<string | undefined> = [];
  status: ModelStatus = { status: 'ready', model };
  turnSeconds: Record<EngineBuildKind, number> = { prebuilt: 10, local: 7 };
  /** How a start with the build ends: it loads, the worker falls back, or the process dies. */
  localStart: 'loads' | 'falls back' | 'dies' = 'loads';
  tools: BuildTools = fakeTools();
  /** A reply is running: a comparison waits for it. */
  replying = false;
  engine!: LocalEngine;
  #lastCrash = 0;

  constructor(dir: string) {
    this.dir = dir;
    this.root = path.join(dir, 'engines');
    this.open();
  }

  /** A fresh LocalEngine on the same data folder (an app start), whose first engine process starts at once. */
  open(): LocalEngine {
    this.engine = new LocalEngine({
      root: this.root,
      engine: { restart: () => this.restart(), measureTrial: async (settings) => ok(this.trial(settings)) },
      modelStatus: () => this.status,
      busy: () => this.replying,
      defaults: () => ({ flashAttention: false, threads: 2, batchSize: 512 }),
      emit: (state) => void this.events.push(state),
      log: (_level, message) => void this.log.push(message),
      runner: this.runner,
      source: () => ({ source: fakeLlamaSource(this.dir) }),
      detectTools: async () => this.tools,
      platform: 'linux',
      arch: 'x64',
    });
    // The supervisor retries a process that died, reading the init input anew.
    if (!this.start()) this.start();
    return this.engine;
  }

  running: EngineBuildKind = 'prebuilt';

  trial(settings: SpeedSettings): SpeedTrial {
    return { ...settings, prefillTokPerS: 100, decodeTokPerS: 10, turnSeconds: this.turnSeconds[this.running] };
  }

  /** One engine process start, as the supervisor runs it: init input, then init's answer or a death. */
  start(): boolean {
    const input: InitInput = { logLevel: 'warn', ...this.engine.initInput() };
    this.restarts.push(input.engineDir ?? undefined);
    if (input.engineDir && this.localStart === 'dies') {
      this.engine.onEngineStatus({ state: 'restarting', restarts: 1, lastCrash: { at: ++this.#lastCrash, reason: 'signal SIGSEGV' } });
      return false;
    }
    const local = input.engineDir !== undefined && this.localStart === 'loads';
    this.running = local ? 'local' : 'prebuilt';
    const output = {
      engine: { kind: this.running, backend: 'cpu', ...(input.engineDir && !local ? { fallback: 'its addon did not load' } : {}) },
    } as InitOutput;
    this.engine.onInit(input, output);
    return true;
  }

  async restart() {
    this.status = { status: 'loading', progress: 0, model };
    this.engine.onModelStatus(this.status);
    const started = this.start();
    // A death is retried by the supervisor, which now reads the prebuilt engine.
    if (!started) this.start();
    await new Promise((resolve) => setImmediate(resolve));
    this.status = { status: 'ready', model };
    this.engine.onModelStatus(this.status);
    return started ? ok(undefined) : { ok: false as const, error: { code: 'ENGINE_CRASHED' as const, message: 'The engine did not start again.' } };
  }

  /** Waits until the engine's background work is over (a state that is neither building nor measuring). */
  async settled(): Promise<LocalEngineState> {
    for (let i = 0; i < 500; i++) {
      const state = await this.engine.state();
      if (state.status !== 'building' && state.status !== 'measuring') return state;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error('the local engine stayed busy');
  }
}

let dir: string;
let host: FakeHost;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hearth-local-engine-'));
  host = new FakeHost(dir);
});
afterEach(async () => {
  await host.engine.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('LocalEngine', () => {
  it('is unavailable with the reason when tools are missing', async () => {
    host.tools = { available: false, reason: 'Building an engine needs CMake, which is not installed.' };
    const state = await host.engine.state();
    expect(state).toEqual({ available: false, unavailable: 'Building an engine needs CMake, which is not installed.', status: 'idle', inUse: 'prebuilt' });
    const build = await host.engine.build();
    expect(!build.ok && build.error.code).toBe('NOT_SUPPORTED');
  });

  it('builds, compares on the loaded model, uses the faster build, and the next start runs it', async () => {
    const started = await host.engine.build();
    expect(started.ok && started.value.status).toBe('building');
    const state = await host.settled();
    expect(state).toMatchObject({ available: true, status: 'ready', inUse: 'local', build: { release: 'v0.4.0' }, comparison: { model: 'M', faster: true } });
    expect(state.comparison?.prebuilt.turnSeconds).toBe(10);
    expect(state.comparison?.local.turnSeconds).toBe(7);
    // Progress went out as events while it built, then the comparison's steps.
    expect(host.events.some((e) => e.status === 'building' && e.step?.startsWith('Compiling') === true)).toBe(true);
    expect(host.events.some((e) => e.status === 'measuring' && e.step === 'Measuring the local engine (1 of 2)')).toBe(true);

    const name = readdirSync(host.root).find((n) => n.startsWith('v0.4.0-'))!;
    expect(readChoice(host.root)).toMatchObject({ use: 'local', build: name });
    // An app start reads the choice: its first engine process gets the build.
    await host.engine.dispose();
    host.open();
    expect(host.restarts.at(-1)).toBe(path.join(host.root, name));
    expect((await host.engine.state()).inUse).toBe('local');
  });

  it('goes back to the prebuilt engine when the build is slower, and keeps the build', async () => {
    host.turnSeconds = { prebuilt: 10, local: 12 };
    await host.engine.build();
    const state = await host.settled();
    expect(state).toMatchObject({ status: 'ready', inUse: 'prebuilt', comparison: { faster: false } });
    expect(host.running).toBe('prebuilt');
    expect(readChoice(host.root).use).toBe('prebuilt');
    expect(host.engine.initInput()).toEqual({});
  });

  it('with no model loaded, keeps the build unused and says so; building again compares it', async () => {
    host.status = { status: 'idle' };
    await host.engine.build();
    const state = await host.settled();
    expect(state).toMatchObject({ status: 'ready', inUse: 'prebuilt' });
    expect(state.comparison).toBeUndefined();
    expect(state.step).toMatch(/not compared yet: load a model/);
    expect(host.engine.initInput()).toEqual({});
    expect(!(await host.engine.build()).ok).toBe(true);

    host.status = { status: 'ready', model };
    const compiles = host.runner.ofCommand('cmake').length;
    const again = await host.engine.build();
    expect(again.ok && again.value.status).toBe('measuring');
    expect(await host.settled()).toMatchObject({ inUse: 'local', comparison: { faster: true } });
    expect(host.runner.ofCommand('cmake')).toHaveLength(compiles);
  });

  it('a build that the worker could not load is switched off with its reason', async () => {
    host.localStart = 'falls back';
    await host.engine.build();
    const state = await host.settled();
    expect(state).toMatchObject({ status: 'failed', inUse: 'prebuilt' });
    expect(state.error?.message).toBe('The engine built for this computer did not start: its addon did not load.');
    expect(readChoice(host.root)).toMatchObject({ use: 'prebuilt', disabled: expect.stringMatching(/its addon did not load/) });
  });

  it('a build whose engine process died while loading it is never started again (no crash loop)', async () => {
    // Chosen once, as if it measured faster; then the process dies loading it.
    await host.engine.build();
    await host.settled();
    host.localStart = 'dies';
    await host.engine.dispose();
    host.open();
    // The supervisor's retry got the prebuilt engine, and so does every later start.
    expect(host.restarts.slice(-2)).toEqual([expect.stringContaining(host.root), undefined]);
    expect(host.engine.initInput()).toEqual({});
    const state = await host.engine.state();
    expect(state.error?.message).toMatch(/the engine process stopped while loading it \(signal SIGSEGV\)/);
    host.open();
    expect(host.restarts.at(-1)).toBeUndefined();
  });

  it('waits for a reply in progress before it restarts the engine to compare', async () => {
    host.replying = true;
    await host.engine.build();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await host.engine.state()).toMatchObject({ status: 'measuring', step: 'Waiting for replies in progress to finish' });
    expect(host.restarts).toHaveLength(1);
    host.replying = false;
    expect(await host.settled()).toMatchObject({ inUse: 'local', comparison: { faster: true } });
  });

  it('a cancel stops the build; nothing changes', async () => {
    host.runner.behaviour.hangCompile = true;
    await host.engine.build();
    await host.runner.compileStarted;
    expect(host.engine.cancel().ok).toBe(true);
    const state = await host.settled();
    expect(state).toMatchObject({ status: 'idle', inUse: 'prebuilt' });
    expect(state.build).toBeUndefined();
    expect(existsSync(path.join(host.root, CHOICE_FILE))).toBe(false);
  });

  it('a failed build says why, with the end of its output', async () => {
    host.runner.behaviour.failCompileAfter = 3;
    await host.engine.build();
    const state = await host.settled();
    expect(state.status).toBe('failed');
    expect(state.error?.message).toBe('Compiling failed: cmake exited with 1. Its last lines:\ncompiler output line 1\ncompiler output line 2\ncompiler output line 3');
    expect(state.error?.hint).toMatch(/build\.log/);
    expect(readFileSync(path.join(host.root, 'build.log'), 'utf8')).toContain('compiler output line 3');
  });

  it('never runs two builds at once: in this process, or beside another process building', async () => {
    host.runner.behaviour.hangCompile = true;
    await host.engine.build();
    const second = await host.engine.build();
    expect(!second.ok && second.error.code).toBe('BUSY');
    host.engine.cancel();
    await host.settled();

    // Another live process holds the data folder's build lock.
    writeFileSync(path.join(host.root, '.build.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), started: Date.now() }));
    const beside = await host.engine.build();
    expect(!beside.ok && beside.error.message).toBe('Another Hearth is building an engine in this data folder.');
  });

  it('removeLocal deletes the build and restarts the engine onto the prebuilt one', async () => {
    await host.engine.build();
    await host.settled();
    expect(host.running).toBe('local');
    expect((await host.engine.remove()).ok).toBe(true);
    expect(host.running).toBe('prebuilt');
    const state = await host.engine.state();
    expect(state).toMatchObject({ status: 'idle', inUse: 'prebuilt' });
    expect(state.build).toBeUndefined();
    expect(readdirSync(host.root)).toEqual([CHOICE_FILE]);
    expect(readChoice(host.root)).toEqual({ use: 'prebuilt' });
  });
});
