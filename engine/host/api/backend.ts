/**
 * The API server's view of the host (wire.ts `ApiBackend`): the local models by id, the loaded
 * model switched on request, turns through `ApiRuns`, and token counts from the engine. Engine
 * errors become `ApiFailure`s here, once, for both wire formats.
 */
import { Lock } from '../../base/lock.ts';
import { apiModelId, type LocalModel, type ModelInfo, type ModelStatus, type Result } from '../../contract/index.ts';
import type { GenerateOutput } from '../../protocol.ts';
import type { Supervisor } from '../supervisor.ts';
import type { ApiRuns } from './runs.ts';
import { ApiFailure, failureOf, type ApiBackend } from './wire.ts';

/** How long a model switch waits for running replies and requests before loading anyway. */
const SWITCH_WAIT_MS = 10 * 60_000;

export interface BackendDeps {
  readonly engine: Pick<Supervisor, 'request'>;
  readonly runs: ApiRuns;
  readonly model: { readonly status: ModelStatus; load(file: string): Promise<Result<ModelInfo>> };
  readonly listModels: () => Promise<readonly LocalModel[]>;
  /** Chat replies in progress: a model switch waits for them. */
  readonly chatsBusy: () => boolean;
}

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw failureOf(result.error);
  return result.value;
}

export function createBackend(deps: BackendDeps): ApiBackend {
  const switching = new Lock('api-model-switch');
  const loadedPath = (): string | null => (deps.model.status.status === 'ready' ? (deps.model.status.model?.path ?? null) : null);

  async function known(): Promise<{ id: string; path: string; created: number; loaded: boolean }[]> {
    const loaded = loadedPath();
    const list: { id: string; path: string; created: number; loaded: boolean }[] = [];
    if (loaded !== null) list.push({ id: apiModelId(loaded), path: loaded, created: Math.floor(Date.now() / 1000), loaded: true });
    for (const m of await deps.listModels()) {
      const id = apiModelId(m.fileName);
      if (!list.some((x) => x.id === id)) list.push({ id, path: m.path, created: Math.floor(m.modifiedAt / 1000), loaded: false });
    }
    return list;
  }

  /** Resolves once no chat reply and no other API request is running, or after SWITCH_WAIT_MS. */
  async function idle(): Promise<void> {
    const until = Date.now() + SWITCH_WAIT_MS;
    while ((deps.chatsBusy() || deps.runs.running > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  return {
    models: async () => (await known()).map(({ id, created, loaded }) => ({ id, created, loaded })),
    async useModel(id) {
      const loaded = loadedPath();
      if (loaded !== null && apiModelId(loaded) === id) return;
      const target = (await known()).find((m) => m.id === id);
      if (!target) throw new ApiFailure(404, `The model ${JSON.stringify(id)} does not exist here; GET /v1/models lists the local models.`, 'model_not_found', 'model');
      await switching.run(async () => {
        const now = loadedPath();
        if (now !== null && apiModelId(now) === id) return;
        // Queued behind running work: a chat's reply or another client's request is not cut off.
        await idle();
        unwrap(await deps.model.load(target.path));
      });
    },
    async run(model, turn, onDelta, signal): Promise<GenerateOutput> {
      const output = unwrap(await deps.runs.run(model, turn, onDelta, signal));
      if (output.stopReason === 'aborted') throw new ApiFailure(499, 'The client closed the connection; the request was stopped.', 'cancelled');
      return output;
    },
    async countTokens(messages, options) {
      return unwrap(await deps.engine.request('countTokens', { messages, ...(options.raw ? { raw: true } : {}), ...(options.functions ? { functions: options.functions } : {}) }, { timeoutMs: 60_000 }));
    },
  };
}
