/**
 * The host's view of disk KV persistence: a full disk pauses it, and the UI must say so. The
 * engine process reports pauses and resumes as `kvPersistence` events; this keeps the latest
 * state for `app.state` and emits `kv.status` when it changes.
 */
import type { EngineStatus, HearthEvent, KvStatus } from '../contract/index.ts';
import { DisposableStore, type Disposable } from '../base/disposable.ts';
import type { WorkerEvent } from '../protocol.ts';
import type { LogLevel } from './supervisor.ts';

export interface KvStatusDeps {
  readonly engine: {
    onEvent(listener: (event: WorkerEvent) => void): Disposable;
    onStatus(listener: (status: EngineStatus) => void): Disposable;
  };
  readonly emit: (event: HearthEvent) => void;
  readonly log?: (level: LogLevel, message: string) => void;
  /** Whether the settings turn persistence on at the first engine start. */
  readonly enabled: boolean;
}

function same(a: KvStatus, b: KvStatus): boolean {
  return a.persistence === b.persistence && a.reason?.code === b.reason?.code && a.reason?.message === b.reason?.message;
}

export class KvStatusTracker implements Disposable {
  readonly #deps: KvStatusDeps;
  readonly #subscriptions = new DisposableStore();
  #status: KvStatus;
  #enabled: boolean;
  /** Whether the current engine process has reported its store's state yet. */
  #reported = false;

  constructor(deps: KvStatusDeps) {
    this.#deps = deps;
    this.#enabled = deps.enabled;
    this.#status = { persistence: deps.enabled ? 'on' : 'off' };
    this.#subscriptions.add(
      deps.engine.onEvent((event) => {
        if (event.type !== 'kvPersistence' || !this.#enabled) return;
        this.#reported = true;
        this.#set(event.paused ? { persistence: 'paused', ...(event.reason ? { reason: event.reason } : {}) } : { persistence: 'on' });
      }),
    );
    this.#subscriptions.add(
      deps.engine.onStatus((status) => {
        // A process that said nothing about its store during init (an engine that predates the
        // event) is taken to persist: a pause of an earlier process does not carry over.
        if (status.state === 'running' && this.#enabled && !this.#reported) this.#set({ persistence: 'on' });
      }),
    );
  }

  dispose(): void {
    this.#subscriptions.dispose();
  }

  get status(): KvStatus {
    return this.#status;
  }

  /**
   * Call as a new engine process is initialised, with whether its init turns persistence on.
   * The state of the old process is kept until the new one reports its own (it does so during
   * init), so a disk that is still full does not flicker the warning away and back.
   */
  engineStarting(enabled: boolean): void {
    this.#enabled = enabled;
    this.#reported = false;
    if (!enabled) this.#set({ persistence: 'off' });
  }

  #set(next: KvStatus): void {
    if (same(this.#status, next)) return;
    this.#status = next;
    if (next.persistence === 'paused') this.#deps.log?.('warn', `KV persistence paused: ${next.reason?.message ?? 'writes fail'}`);
    else this.#deps.log?.('info', `KV persistence ${next.persistence}`);
    this.#deps.emit({ type: 'kv.status', payload: next });
  }
}
