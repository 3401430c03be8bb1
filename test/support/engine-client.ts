/**
 * A small typed client for an engine process, for tests: forks it with `forkEngine`, matches
 * results to calls, and records events.
 */
import { forkEngine, type ForkEngineOptions } from '../../engine/spawn.ts';
import type { Result } from '../../engine/contract/index.ts';
import type { EnginePort, InitInput, InitOutput, WorkerEvent, WorkerMethod, WorkerMethods, WorkerToHost } from '../../engine/protocol.ts';

export interface EngineExit {
  readonly code: number | null;
  readonly signal: string | null;
}

export class EngineClient {
  readonly port: EnginePort;
  /** Every event received, in order. */
  readonly events: WorkerEvent[] = [];
  /** What `init` answered, when `startEngine` sent it. */
  initOutput: InitOutput | null = null;
  /** Resolves when the process sends `ready`. */
  readonly ready: Promise<void>;
  /** Resolves when the process is gone. */
  readonly exited: Promise<EngineExit>;
  private nextId = 1;
  private readonly pending = new Map<number, (result: Result<unknown>) => void>();
  private readonly eventListeners = new Set<(event: WorkerEvent) => void>();

  constructor(port: EnginePort) {
    this.port = port;
    let markReady: () => void = () => undefined;
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.exited = new Promise((resolve) => {
      port.onExit((code, signal) => {
        for (const settle of this.pending.values()) settle({ ok: false, error: { code: 'ENGINE_CRASHED', message: `The engine exited (${code ?? signal})` } });
        this.pending.clear();
        resolve({ code, signal });
      });
    });
    port.onMessage((message: WorkerToHost) => {
      if (message.kind === 'ready') markReady();
      else if (message.kind === 'event') {
        this.events.push(message.event);
        for (const listener of this.eventListeners) listener(message.event);
      } else if (message.kind === 'result') {
        const settle = this.pending.get(message.id);
        this.pending.delete(message.id);
        settle?.(message.result);
      }
    });
  }

  /** Sends a call; resolves with its result, or ENGINE_CRASHED if the process dies first. */
  call<M extends WorkerMethod>(method: M, input: WorkerMethods[M]['input']): Promise<Result<WorkerMethods[M]['output']>> {
    return this.callRaw(method, input) as Promise<Result<WorkerMethods[M]['output']>>;
  }

  /** Sends anything as a call, for tests of malformed requests. */
  callRaw(method: string, input: unknown): Promise<Result<unknown>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.port.send({ kind: 'call', id, method, input } as never);
    });
  }

  /** Like `call`, but throws on an error result (for setup steps). */
  async must<M extends WorkerMethod>(method: M, input: WorkerMethods[M]['input']): Promise<WorkerMethods[M]['output']> {
    const result = await this.call(method, input);
    if (!result.ok) throw new Error(`${method} failed: ${result.error.code}: ${result.error.message}`);
    return result.value;
  }

  onEvent(listener: (event: WorkerEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Resolves when the first token event of `requestId` arrives. */
  firstToken(requestId: string): Promise<void> {
    return new Promise((resolve) => {
      const stop = this.onEvent((event) => {
        if (event.type === 'token' && event.requestId === requestId) {
          stop();
          resolve();
        }
      });
    });
  }

  /** Token deltas received for one request, in order. */
  deltas(requestId: string): string[] {
    return this.events.flatMap((event) => (event.type === 'token' && event.requestId === requestId ? [event.delta] : []));
  }

  /** Kills the process and waits until it is gone. */
  async dispose(): Promise<void> {
    this.port.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * Forks an engine process, waits for `ready` and sends `init` (`init` adds to it, e.g. a KV
 * store). Pass `stdio: 'inherit'` to see llama.cpp's own output while debugging. Events from the
 * start on, `init`'s logs included, are in `client.events`.
 */
export async function startEngine(
  options: ForkEngineOptions & { readonly logLevel?: InitInput['logLevel']; readonly init?: Omit<InitInput, 'logLevel'> } = {},
): Promise<EngineClient> {
  const client = new EngineClient(forkEngine({ stdio: 'ignore', ...options }));
  await Promise.race([
    client.ready,
    client.exited.then((exit) => {
      throw new Error(`The engine exited before it was ready (${exit.code ?? exit.signal})`);
    }),
  ]);
  client.initOutput = await client.must('init', { logLevel: options.logLevel ?? 'warn', ...options.init });
  return client;
}

/**
 * Waits until every slot is idle: a turn's KV save runs after its reply was answered (a slot in
 * state 'saving' in the metrics), and the next call would otherwise race with it.
 */
export async function slotsSettled(engine: EngineClient): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await engine.must('metrics', {})).slots.every((s) => s.state === 'idle')) {
    if (Date.now() > deadline) throw new Error('a slot stayed busy');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
