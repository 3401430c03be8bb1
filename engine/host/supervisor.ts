/**
 * Owns the engine process: starts it, talks to it through protocol.ts, and restarts it when it
 * dies (llama.cpp can segfault). A death fails every request in flight with ENGINE_CRASHED; the
 * host then marks the reply incomplete and reloads the model, so a crash costs a restart, never
 * a lost chat.
 *
 * `restart()` is the deliberate kind (settings read at `init` changed): the same stop as
 * `dispose`, then a fresh process at once, through the same 'restarting' state so the model
 * reloads, but not counted as a crash and shown with no crash banner.
 *
 * A crash loop (an engine that keeps dying soon after each start) must not be restarted at full
 * speed forever: each crash in a row doubles the wait, and from `crashLoopAfter` crashes the
 * status carries `crashLoop` with an error that calls made meanwhile answer too.
 */
import { err, hearthError, type EngineStatus, type HearthError, type Result, errorText } from '../contract/index.ts';
import { Lock } from '../base/lock.ts';
import { settlesWithin } from '../base/timeout.ts';
import type { EnginePort, InitInput, SpawnEngine, WorkerEvent, WorkerMethod, WorkerMethods, WorkerToHost } from '../protocol.ts';
import type { Disposable } from '../base/disposable.ts';
import { Emitter } from '../base/emitter.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface SupervisorOptions {
  readonly spawn: SpawnEngine;
  readonly logLevel: LogLevel;
  /**
   * Restart delays: `initialMs` doubling up to `maxMs`; back to `initialMs` once an engine ran
   * `stableMs`. Without it: `HEARTH_ENGINE_BACKOFF` when set (see `backoffFromEnv`), else 200 ms
   * doubling to 5 s, reset after 60 s.
   */
  readonly backoff?: Backoff;
  /** Crashes in a row (see the file comment) from which the status reports a crash loop. Default 3. */
  readonly crashLoopAfter?: number;
  /** How long a fresh process may take to say `ready` and finish `init` before it is killed. */
  readonly startTimeoutMs?: number;
  /** How long `dispose` and `restart` wait after SIGTERM before SIGKILL (default `defaultKillGraceMs`). */
  readonly killGraceMs?: number;
  readonly log?: (level: LogLevel, message: string) => void;
  /** Extra `init` input, read at each process start (the disk KV settings). */
  readonly initInput?: () => Omit<InitInput, 'logLevel'>;
  /**
   * Each process's `init` answer, with the input it answered (the KV codec in use): runs before
   * the status turns 'running', so that whatever a 'running' listener reads is already current.
   */
  readonly onInit?: (input: InitInput, output: WorkerMethods['init']['output']) => void;
}

interface Pending {
  readonly method: WorkerMethod;
  readonly resolve: (result: Result<unknown>) => void;
  timer?: NodeJS.Timeout;
}

export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly stableMs: number;
}

const defaultBackoff: Backoff = { initialMs: 200, maxMs: 5000, stableMs: 60_000 };

/** How long the engine gets to flush its pending KV saves after SIGTERM before SIGKILL. */
export const defaultKillGraceMs = 3000;

/** The environment variable `backoffFromEnv` reads. */
export const backoffEnvVar = 'HEARTH_ENGINE_BACKOFF';

/**
 * Test-only: `HEARTH_ENGINE_BACKOFF="initialMs,maxMs,stableMs"` sets the restart delays of a host
 * started as a child process (the fault suite's crash tests shorten them to fit their time
 * budget; the policy itself is unit-tested with the defaults' shape). Anything malformed is
 * ignored (null): the defaults apply.
 */
export function backoffFromEnv(value: string | undefined): Backoff | null {
  if (value === undefined) return null;
  const parts = value.split(',').map((p) => Number(p.trim()));
  const [initialMs, maxMs, stableMs] = parts;
  if (parts.length !== 3 || initialMs === undefined || maxMs === undefined || stableMs === undefined) return null;
  if (!parts.every((n) => Number.isInteger(n) && n >= 0) || initialMs > maxMs) return null;
  return { initialMs, maxMs, stableMs };
}

/** What a crash loop tells the user (EngineStatus.crashLoop.error, and calls made meanwhile). */
export function crashLoopError(crashes: number, lastReason: string): HearthError {
  return hearthError(
    'ENGINE_UNAVAILABLE',
    `The engine keeps stopping unexpectedly (${crashes} crashes in a row; the last: ${lastReason}). Hearth restarts it, waiting longer each time.`,
    'Your conversations are safe. If this goes on, load another model or restart Hearth; the log in the data folder\'s "logs" directory says what happened.',
  );
}

/** The status without its crash-loop report (an engine that runs, or was stopped, is in none). */
function withoutLoop(status: EngineStatus): EngineStatus {
  if (status.crashLoop === undefined) return status;
  const { crashLoop: _loop, ...rest } = status;
  return rest;
}

/** "signal SIGKILL" / "exit code 139". */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal) return `signal ${signal}`;
  return code === null ? 'unknown cause' : `exit code ${code}`;
}

export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #backoff: Backoff;
  readonly #crashLoopAfter: number;
  /** Crashes since an engine last ran `stableMs` (or since the start). */
  #crashesInRow = 0;
  readonly #events = new Emitter<WorkerEvent>();
  readonly #statuses = new Emitter<EngineStatus>();
  readonly #restarted = new Emitter<void>();
  readonly #pending = new Map<number, Pending>();
  #port: EnginePort | null = null;
  /** Increments per spawned process, so that late messages of a dead one are ignored. */
  #epoch = 0;
  #nextId = 1;
  #status: EngineStatus = { state: 'starting', restarts: 0 };
  #delayMs: number;
  #runningSince: number | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #startTimer: NodeJS.Timeout | null = null;
  /** Why we killed the current process ourselves (start timeout, failed init): the crash reason. */
  #killReason: string | null = null;
  #disposed = false;
  #exitWaiters: (() => void)[] = [];
  #firstStartWaiters: (() => void)[] | null = [];
  /** The current process is being stopped by `restart()`: its exit is not a crash. */
  #stopping = false;
  /** Resolved when a process finished `init`, or when one died (the crash path took over). */
  #settleWaiters: (() => void)[] = [];
  /** The restarts asked for, one after another. */
  readonly #restarts = new Lock('engine restart');

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#backoff = options.backoff ?? backoffFromEnv(process.env[backoffEnvVar]) ?? defaultBackoff;
    this.#crashLoopAfter = options.crashLoopAfter ?? 3;
    this.#delayMs = this.#backoff.initialMs;
  }

  /** Starts the first engine process. Resolves once it runs, or once that first try failed (it then keeps retrying). */
  start(): Promise<void> {
    const waiters = this.#firstStartWaiters;
    if (waiters === null) return Promise.resolve();
    const settled = new Promise<void>((resolve) => waiters.push(resolve));
    if (this.#port === null && this.#retryTimer === null && !this.#disposed) this.#launch();
    return settled;
  }

  get status(): EngineStatus {
    return this.#status;
  }

  get pid(): number | null {
    return this.#port?.pid ?? null;
  }

  /** The engine's events (tokens, progress, logs), from whichever process runs now. */
  onEvent(listener: (event: WorkerEvent) => void): Disposable {
    return this.#events.on(listener);
  }

  onStatus(listener: (status: EngineStatus) => void): Disposable {
    return this.#statuses.on(listener);
  }

  /** Called after a restarted engine finished `init`: the host reloads its model here. */
  onRestart(listener: () => void): Disposable {
    return this.#restarted.on(listener);
  }

  /** Listeners subscribed through `onEvent`, `onStatus` and `onRestart` that are not disposed. */
  get listenerCount(): number {
    return this.#events.size + this.#statuses.size + this.#restarted.size;
  }

  /**
   * Sends one request to the engine. Never throws: an engine that is not running answers
   * ENGINE_UNAVAILABLE, one that dies first ENGINE_CRASHED, a timeout ENGINE_UNAVAILABLE.
   */
  request<M extends WorkerMethod>(
    method: M,
    input: WorkerMethods[M]['input'],
    options: { timeoutMs?: number } = {},
  ): Promise<Result<WorkerMethods[M]['output']>> {
    if (this.#status.state !== 'running' || this.#port === null) {
      const loop = this.#status.crashLoop;
      if (loop !== undefined) return Promise.resolve({ ok: false, error: loop.error });
      const state = this.#status.state === 'running' ? 'starting' : this.#status.state;
      return Promise.resolve(err('ENGINE_UNAVAILABLE', `The engine is ${state === 'stopped' ? 'stopped' : `${state}; try again in a moment`}.`));
    }
    return this.#send(method, input, options.timeoutMs);
  }

  #send<M extends WorkerMethod>(method: M, input: WorkerMethods[M]['input'], timeoutMs?: number): Promise<Result<WorkerMethods[M]['output']>> {
    const port = this.#port;
    if (port === null) return Promise.resolve(err('ENGINE_UNAVAILABLE', 'The engine is not running.'));
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const pending: Pending = { method, resolve: resolve as (result: Result<unknown>) => void };
      if (timeoutMs !== undefined) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(id);
          resolve(err('ENGINE_UNAVAILABLE', `The engine did not answer ${method} within ${timeoutMs} ms.`));
        }, timeoutMs);
      }
      this.#pending.set(id, pending);
      try {
        port.send({ kind: 'call', id, method, input } as Parameters<EnginePort['send']>[0]);
      } catch (error) {
        this.#settle(id, err('ENGINE_UNAVAILABLE', `The engine could not be reached: ${errorText(error)}.`));
      }
    });
  }

  #settle(id: number, result: Result<unknown>): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (pending.timer) clearTimeout(pending.timer);
    pending.resolve(result);
  }

  #failAll(error: HearthError): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, { ok: false, error });
  }

  #setStatus(status: EngineStatus): void {
    this.#status = status;
    this.#statuses.emit(status);
  }

  #log(level: LogLevel, message: string): void {
    this.#options.log?.(level, message);
  }

  #launch(): void {
    this.#retryTimer = null;
    if (this.#disposed) return;
    const epoch = ++this.#epoch;
    this.#killReason = null;
    let port: EnginePort;
    try {
      port = this.#options.spawn();
    } catch (error) {
      this.#onExit(epoch, `could not start: ${errorText(error)}`);
      return;
    }
    this.#port = port;
    port.onMessage((message) => {
      if (epoch === this.#epoch) this.#onMessage(epoch, message);
    });
    port.onExit((code, signal) => {
      if (epoch === this.#epoch) this.#onExit(epoch, this.#killReason ?? describeExit(code, signal));
    });
    const timeoutMs = this.#options.startTimeoutMs ?? 60_000;
    this.#startTimer = setTimeout(() => {
      if (epoch !== this.#epoch || this.#status.state === 'running') return;
      this.#killReason = `did not start within ${timeoutMs} ms`;
      port.kill('SIGKILL');
    }, timeoutMs);
    this.#log('info', `engine process started (pid ${port.pid ?? '?'})`);
  }

  #onMessage(epoch: number, message: WorkerToHost): void {
    switch (message.kind) {
      case 'ready':
        void this.#init(epoch);
        return;
      case 'result':
        this.#settle(message.id, message.result);
        return;
      case 'event':
        if (message.event.type === 'log') this.#log(message.event.level, `engine: ${message.event.message}`);
        this.#events.emit(message.event);
        return;
    }
  }

  async #init(epoch: number): Promise<void> {
    const input: InitInput = { ...this.#options.initInput?.(), logLevel: this.#options.logLevel };
    const result = await this.#send('init', input);
    if (epoch !== this.#epoch || this.#disposed) return;
    if (!result.ok) {
      this.#killReason = `init failed: ${result.error.message}`;
      this.#port?.kill('SIGKILL');
      return;
    }
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#startTimer = null;
    try {
      this.#options.onInit?.(input, result.value);
    } catch (error) {
      this.#log('error', `an init listener threw: ${errorText(error)}`);
    }
    const wasRestart = this.#status.state === 'restarting';
    this.#runningSince = Date.now();
    this.#setStatus({ ...withoutLoop(this.#status), state: 'running' });
    this.#log('info', `engine running (${result.value.build})`);
    this.#resolveFirstStart();
    for (const resolve of this.#settleWaiters.splice(0)) resolve();
    if (wasRestart) this.#restarted.emit();
  }

  #resolveFirstStart(): void {
    const waiters = this.#firstStartWaiters;
    this.#firstStartWaiters = null;
    for (const resolve of waiters ?? []) resolve();
  }

  #onExit(epoch: number, reason: string): void {
    if (epoch !== this.#epoch) return;
    this.#epoch++; // nothing more from this process counts
    this.#port = null;
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#startTimer = null;
    for (const resolve of this.#exitWaiters.splice(0)) resolve();
    if (this.#disposed) {
      this.#failAll(hearthError('ENGINE_UNAVAILABLE', 'The engine was stopped.'));
      return;
    }
    if (this.#stopping) {
      this.#stopping = false;
      this.#failAll(hearthError('ENGINE_UNAVAILABLE', 'The engine restarted to apply new settings.', 'Try again in a moment.'));
      this.#runningSince = null;
      this.#log('info', `engine process stopped (${reason}) to apply new settings; starting a fresh one`);
      this.#launch();
      return;
    }
    for (const resolve of this.#settleWaiters.splice(0)) resolve();
    this.#failAll(hearthError('ENGINE_CRASHED', `The engine process died (${reason}).`, 'It restarts by itself; try again in a moment.'));
    const now = Date.now();
    if (this.#runningSince !== null && now - this.#runningSince >= this.#backoff.stableMs) {
      this.#delayMs = this.#backoff.initialMs;
      this.#crashesInRow = 0;
    }
    this.#runningSince = null;
    this.#crashesInRow++;
    const delay = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, this.#backoff.maxMs);
    const status: EngineStatus = { state: 'restarting', restarts: this.#status.restarts + 1, lastCrash: { at: now, reason } };
    if (this.#crashesInRow >= this.#crashLoopAfter) {
      this.#log('error', `engine process died (${reason}), ${this.#crashesInRow} crashes in a row: a crash loop; restarting in ${delay} ms`);
      this.#setStatus({ ...status, crashLoop: { crashes: this.#crashesInRow, retryAt: now + delay, error: crashLoopError(this.#crashesInRow, reason) } });
    } else {
      this.#log('error', `engine process died (${reason}); restarting in ${delay} ms`);
      this.#setStatus(status);
    }
    this.#resolveFirstStart();
    this.#retryTimer = setTimeout(() => this.#launch(), delay);
  }

  /**
   * Stops the running engine process gracefully and starts a fresh one, which reads `initInput`
   * anew. The old process gets SIGTERM, so it flushes its pending KV saves within its bound
   * (engine/worker/main.ts), and SIGKILL after `killGraceMs`. Requests still in flight fail with
   * ENGINE_UNAVAILABLE, and new ones are refused until the fresh process runs. Not a crash: the
   * status goes 'restarting' then 'running' with `restarts` and `lastCrash` unchanged, and
   * `onRestart` listeners run as after a crash (the model reloads).
   *
   * Resolves once the fresh process runs (ok), or once it failed to start (ENGINE_CRASHED: the
   * crash path then retries it with backoff, counted as a crash). With no process up (a crash
   * restart is pending, or `start` was never called) there is nothing to stop: the next start
   * reads `initInput` anyway. Calls made while one runs are done one after another. Never throws.
   */
  restart(): Promise<Result<void>> {
    return this.#restarts.run(() => this.#restartOnce());
  }

  async #restartOnce(): Promise<Result<void>> {
    if (this.#disposed) return err('ENGINE_UNAVAILABLE', 'The engine was stopped.');
    const port = this.#port;
    if (port === null) return { ok: true, value: undefined };
    this.#stopping = true;
    if (this.#status.state === 'running') this.#setStatus({ ...this.#status, state: 'restarting' });
    const settled = new Promise<void>((resolve) => this.#settleWaiters.push(resolve));
    const exited = new Promise<void>((resolve) => this.#exitWaiters.push(resolve));
    const grace = this.#options.killGraceMs ?? defaultKillGraceMs;
    const epoch = this.#epoch;
    port.kill('SIGTERM');
    if (!(await settlesWithin(exited, grace))) {
      this.#log('warn', `the engine did not stop within ${grace} ms of SIGTERM; killing it`);
      port.kill('SIGKILL');
      // A process that outlives SIGKILL is left behind rather than blocking the restart forever:
      // its epoch ends here, so nothing it still says counts.
      if (!(await settlesWithin(exited, grace))) this.#onExit(epoch, 'did not exit after SIGKILL');
    }
    await settled;
    if (this.#disposed) return err('ENGINE_UNAVAILABLE', 'The engine was stopped.');
    if (this.#status.state === 'running') return { ok: true, value: undefined };
    return err('ENGINE_CRASHED', `The engine did not start again: ${this.#status.lastCrash?.reason ?? 'unknown cause'}.`, 'It keeps retrying by itself.');
  }

  /**
   * Stops the engine for good (not a crash): pending requests fail with ENGINE_UNAVAILABLE, and
   * listeners hear the final 'stopped' status. Subscriptions stay their owners' to dispose.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#failAll(hearthError('ENGINE_UNAVAILABLE', 'The engine was stopped.'));
    const port = this.#port;
    if (port) {
      const grace = this.#options.killGraceMs ?? defaultKillGraceMs;
      const exited = new Promise<void>((resolve) => this.#exitWaiters.push(resolve));
      port.kill('SIGTERM');
      if (!(await settlesWithin(exited, grace))) {
        port.kill('SIGKILL');
        await settlesWithin(exited, grace);
      }
    }
    this.#port = null;
    if (this.#startTimer) clearTimeout(this.#startTimer);
    this.#resolveFirstStart();
    for (const resolve of this.#settleWaiters.splice(0)) resolve();
    this.#setStatus({ ...withoutLoop(this.#status), state: 'stopped' });
  }
}
