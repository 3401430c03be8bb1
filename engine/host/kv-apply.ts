/**
 * Makes saved disk-KV settings take effect now rather than "at the next start": a user who
 * presses Save expects the new budget to hold from then on. Persistence, budget, chunk size and
 * compression travel with the engine's `init`, so they need a graceful restart
 * (`Supervisor.restart`: pending KV saves are flushed, the model reloads; not a crash); the slot
 * count applies when a model loads, so the loaded model is reloaded.
 *
 * Never while the engine is busy: a restart or reload would cut off a reply in progress (saved as
 * "incomplete", not what the user asked for), a model load, or a download. The change is saved
 * at once and applied as soon as the engine is idle; nothing the user does is refused for it.
 */
import { errorText, type Result, type Settings } from '../contract/index.ts';
import type { LogLevel } from './supervisor.ts';

export interface KvApplyPlan {
  /** A new engine process is needed (a setting that `init` reads changed). */
  readonly restartEngine: boolean;
  /** The loaded model must be loaded again (the slot count changed). */
  readonly reloadModel: boolean;
}

const nothing: KvApplyPlan = { restartEngine: false, reloadModel: false };

/** What a settings change needs to take effect. A restart reloads the model too, so it covers slots. */
export function planKvApply(before: Settings, after: Settings): KvApplyPlan {
  const restartEngine =
    before.kvPersistence !== after.kvPersistence ||
    before.kvBudgetBytes !== after.kvBudgetBytes ||
    before.kvChunkTokens !== after.kvChunkTokens ||
    before.kvCompression !== after.kvCompression;
  return { restartEngine, reloadModel: !restartEngine && before.kvSlots !== after.kvSlots };
}

function merge(a: KvApplyPlan, b: KvApplyPlan): KvApplyPlan {
  const restartEngine = a.restartEngine || b.restartEngine;
  return { restartEngine, reloadModel: !restartEngine && (a.reloadModel || b.reloadModel) };
}

export interface KvApplierDeps {
  /** Whether the engine has work that a restart or reload would cut off (replies, a load, downloads). */
  readonly busy: () => boolean;
  /** `Supervisor.restart`. */
  readonly restartEngine: () => Promise<Result<void>>;
  /** The path of the model loaded now, or null. */
  readonly loadedModel: () => string | null;
  /** `ModelManager.load`. */
  readonly loadModel: (path: string) => Promise<Result<unknown>>;
  readonly log: (level: LogLevel, message: string) => void;
}

/** `applied`: done (a model reload may still be running); `queued`: waits for the engine to be idle. */
export type KvApplyOutcome = 'none' | 'applied' | 'queued';

export class KvSettingsApplier {
  readonly #deps: KvApplierDeps;
  #pending: KvApplyPlan = nothing;
  #running: Promise<void> | null = null;
  #disposed = false;

  constructor(deps: KvApplierDeps) {
    this.#deps = deps;
  }

  /** Whether a change waits for the engine to be idle. */
  get pending(): boolean {
    return this.#pending.restartEngine || this.#pending.reloadModel;
  }

  /**
   * Applies `plan` now when the engine is idle, resolving once a restarted engine runs again
   * (a model reload is only started: its progress shows as `model.status`); otherwise queues it
   * for `poke`. Never throws.
   */
  async apply(plan: KvApplyPlan): Promise<KvApplyOutcome> {
    if (!plan.restartEngine && !plan.reloadModel) return 'none';
    if (this.#disposed) return 'none';
    this.#pending = merge(this.#pending, plan);
    if (this.#running !== null || this.#deps.busy()) {
      this.#deps.log('info', 'KV settings saved; they apply once the engine is idle');
      return 'queued';
    }
    await this.#run();
    return 'applied';
  }

  /**
   * Something the engine was busy with ended (a reply, a load, a download): runs a queued
   * change if the engine is idle now. Call it freely (on every host event); it defers to a
   * microtask, so it is safe inside event listeners.
   */
  poke(): void {
    if (!this.pending || this.#running !== null || this.#disposed) return;
    queueMicrotask(() => {
      if (!this.pending || this.#running !== null || this.#disposed || this.#deps.busy()) return;
      void this.#run();
    });
  }

  /** Drops a queued change (Hearth is closing; the next start reads the settings anyway). */
  dispose(): void {
    this.#disposed = true;
    this.#pending = nothing;
  }

  /** Resolves once the change took effect (a reload: once it started); `#running` covers all of it. */
  #run(): Promise<void> {
    const plan = this.#pending;
    this.#pending = nothing;
    let started!: () => void;
    const applied = new Promise<void>((resolve) => (started = resolve));
    const run = this.#execute(plan, started)
      .catch((error: unknown) => this.#deps.log('error', `applying KV settings failed: ${errorText(error)}`))
      .finally(() => {
        started();
        this.#running = null;
        this.poke();
      });
    this.#running = run;
    return applied;
  }

  async #execute(plan: KvApplyPlan, started: () => void): Promise<void> {
    if (plan.restartEngine) {
      this.#deps.log('info', 'restarting the engine to apply KV settings');
      const restarted = await this.#deps.restartEngine();
      if (!restarted.ok) this.#deps.log('warn', `the engine restart for KV settings: ${restarted.error.message}`);
      return;
    }
    const model = this.#deps.loadedModel();
    if (model === null) return; // the next load reads the slot count anyway
    this.#deps.log('info', `reloading ${model} to apply the KV slot count`);
    // A load can take long; Save answers now, and the model's status shows the progress.
    started();
    const result = await this.#deps.loadModel(model);
    if (!result.ok) this.#deps.log('warn', `reloading the model for the KV slot count failed: ${result.error.message}`);
  }
}
