/**
 * The engine's runtime, the only code that drives node-llama-cpp: this module assembles the
 * worker's handlers from its parts, which share one explicit RuntimeState (runtime-state.ts):
 * llama.cpp's bindings and the KV store (llama-init.ts), the loaded model and its slots
 * (model-load.ts), one turn (turn.ts, turn-kv.ts, streaming.ts), and the Cache view
 * (cache-handlers.ts).
 *
 * One lock, `engine`, orders model changes, generations and KV saves (FIFO, except that an API
 * request's turn waits behind every other waiting task: turn.ts API_TURN_PRIORITY): decoding is
 * serial, one slot at a time, even with several slots. A model change first aborts the running
 * generation, so a load never waits for a long reply. The planner (it allocates nothing, so
 * Settings answers while a reply streams), the Cache view's reads, `countTokens` and `abort`
 * never wait for it. (Model downloads run in the host, not here.)
 */
import { within } from '../base/timeout.ts';
import { err, ok } from '../contract/index.ts';
import type { WorkerEvent } from '../protocol.ts';
import { createCacheHandlers } from './cache-handlers.ts';
import { LlamaInit } from './llama-init.ts';
import { disposeLoaded, loadModel, UNLOAD_SAVE_MS } from './model-load.ts';
import { createPlanHandlers } from './planner.ts';
import { measureLoadedQuality } from './quality.ts';
import { measureLoadedTrial } from './speed.ts';
import { RuntimeState } from './runtime-state.ts';
import type { WorkerHandlers } from './serve.ts';
import { countTokens, generate } from './turn.ts';

export interface Runtime {
  readonly handlers: WorkerHandlers;
  /**
   * Saves dirty slots (none is started after `saveTimeoutMs`, default 2 s), then frees llama.cpp's
   * resources (tests; the process normally just exits, after `flush`).
   */
  dispose(saveTimeoutMs?: number): Promise<void>;
  /**
   * Resolves once the work queued so far (a turn's KV save included) and a save of every dirty
   * slot are done, or after `timeoutMs`, whichever comes first (quit).
   */
  flush(timeoutMs: number): Promise<void>;
}

export function createRuntime(emit: (event: WorkerEvent) => void): Runtime {
  const state = new RuntimeState(emit);
  const setup = new LlamaInit(state);
  const handlers: WorkerHandlers = {
    init: (input) => setup.init(input),
    ...createPlanHandlers({ llama: () => setup.ensureLlama(), loadedContext: () => state.loaded?.context ?? null }),
    loadModel: (input) => loadModel(state, () => setup.ensureLlama(), input),
    async unloadModel() {
      state.abortRunning();
      await state.lock.run(() => disposeLoaded(state, UNLOAD_SAVE_MS));
      return ok({});
    },
    generate: (input) => generate(state, input),
    // No lock: it only renders and tokenizes (synchronously), so it answers while a reply streams.
    countTokens: async (input) => countTokens(state, input),
    // Under the lock: it queues behind a running reply instead of sharing the CPU with it.
    measureQuality: (input) =>
      state.lock.run(async () => {
        const loaded = state.loaded;
        if (!loaded) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Load a model to measure its KV cache quality.');
        return measureLoadedQuality(loaded.model, loaded.context, input, { kernels: setup.codecKernels().kernels, log: (message) => state.log('warn', message) });
      }),
    // Under the lock, like the quality meter: a measurement shares the CPU with nothing.
    measureTrial: (input) =>
      state.lock.run(async () => {
        const loaded = state.loaded;
        if (!loaded) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Load a model to measure its speed.');
        return measureLoadedTrial(loaded.model, loaded.profile, input);
      }),
    async abort({ requestId }) {
      const controller = state.generations.get(requestId);
      if (!controller || controller.signal.aborted) return ok({ aborted: false });
      controller.abort(new Error('aborted'));
      return ok({ aborted: true });
    },
    ...createCacheHandlers(state),
  };

  return {
    handlers,
    async flush(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      await within(state.lock.run(async () => state.loaded?.slots.saveDirty(deadline)), timeoutMs, undefined);
    },
    async dispose(saveTimeoutMs = UNLOAD_SAVE_MS) {
      state.abortRunning();
      await state.lock.run(() => disposeLoaded(state, saveTimeoutMs));
      state.kvWatch?.dispose();
      state.kvWatch = null;
      await state.kvCache?.close();
      state.kvCache = null;
      await state.llama?.dispose();
      state.llama = null;
    },
  };
}
