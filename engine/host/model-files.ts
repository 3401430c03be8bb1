/**
 * The library calls: list every local model (Hearth's folder and other apps'), the KV a model
 * left in the store, and deleting a model of Hearth's folder with (optionally) its KV.
 *
 * A delete runs in an order that never leaves a half-done state a user would regret: the model
 * is unloaded first (llama.cpp maps the file), its KV is forgotten while the file still exists
 * (the store finds a model's KV by the file's path, size and time), and only then are the files
 * removed. When forgetting the KV fails, the model stays.
 */
import { err, ok, type ModelKvUsage, type ModelLibrary, type Result } from '../contract/index.ts';
import { deleteModel } from './library/delete.ts';
import { scanLibrary } from './library/scan.ts';
import type { ModelManager } from './model-manager.ts';
import type { Supervisor } from './supervisor.ts';

/** Reading and deleting a large model's stored KV touches many chunk files. */
const KV_TIMEOUT_MS = 30_000;

export interface ModelFilesDeps {
  /** Hearth's models folder now (Settings.modelsDir or the default). */
  readonly modelsDir: () => string;
  /** Where other apps keep their models: the user's home, the platform and the environment. */
  readonly home: string;
  readonly platform: NodeJS.Platform;
  readonly env: NodeJS.ProcessEnv;
  readonly engine: Pick<Supervisor, 'request'>;
  readonly model: Pick<ModelManager, 'status' | 'unload'>;
}

export class ModelFiles {
  readonly #deps: ModelFilesDeps;

  constructor(deps: ModelFilesDeps) {
    this.#deps = deps;
  }

  list(): Promise<ModelLibrary> {
    const { home, platform, env } = this.#deps;
    return scanLibrary({ modelsDir: this.#deps.modelsDir(), home, platform, env });
  }

  /** What the store holds for the model (ENGINE_UNAVAILABLE while the engine is down: then nothing can be said). */
  kvUsage(modelPath: string): Promise<Result<ModelKvUsage>> {
    return this.#deps.engine.request('modelKv', { path: modelPath }, { timeoutMs: KV_TIMEOUT_MS });
  }

  async delete(modelPath: string, deleteKv: boolean): Promise<Result<{ modelBytes: number; kvBytes: number }>> {
    const library = await this.list();
    const entry = library.models.find((model) => model.path === modelPath);
    if (!entry) return err('NOT_FOUND', `${modelPath} is not in the library.`, 'Refresh the list: it may have been deleted already.');
    if (entry.source !== 'hearth') {
      return err('FORBIDDEN', `${entry.displayName} belongs to another app; Hearth only uses it in place.`, 'Delete it in the app that downloaded it.');
    }
    const loaded = this.#deps.model.status;
    if ((loaded.status === 'ready' || loaded.status === 'loading') && loaded.model?.path === modelPath) {
      const unloaded = await this.#deps.model.unload();
      if (!unloaded.ok) return unloaded;
    }
    let kvBytes = 0;
    if (deleteKv) {
      // While the engine is down this is ENGINE_UNAVAILABLE, and the model stays.
      const forgot = await this.#deps.engine.request('forgetModel', { path: modelPath }, { timeoutMs: KV_TIMEOUT_MS });
      if (!forgot.ok) return forgot;
      kvBytes = forgot.value.bytesFreed;
    }
    const deleted = await deleteModel(modelPath, library.modelsDir);
    if (!deleted.ok) return deleted;
    return ok({ modelBytes: deleted.value.modelBytes, kvBytes });
  }
}
