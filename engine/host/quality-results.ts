/**
 * The quality meter's host side: `models.measureQuality` asks the engine to measure
 * the loaded model's KV pair against F16 over the calibration text, and keeps each result in
 * hearth.db, per model file and pair, so the settings screen shows it again without the
 * seconds of inference.
 *
 * A cached result is used while the model file has the same size and mtime, the pair and flash
 * attention are the same, and the calibration text hashes the same (a new app version may ship
 * another). `fresh: true` measures again and replaces it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { err, ok, type KvCacheType, type KvQuality, type ModelInfo, type Result } from '../contract/index.ts';
import type { WorkerMethods } from '../protocol.ts';

/** The file's name in the source tree's assets/ and in a packaged app's resources (electron-builder.yml). */
const CALIBRATION_FILE = 'calibration.txt';

/**
 * Bump when the engine's method changes what a measurement means (quality.ts: the token cap,
 * the KL definition, f16/f16 returned as the reference rather than a measurement), so older
 * cached results are measured again.
 */
const METHOD_VERSION = 2;

/**
 * Where the calibration text is. A packaged Electron app has it in its resources directory
 * (`extraResources` in electron-builder.yml), outside the asar archive, so the engine process
 * reads it with plain fs. Everywhere else (the browser host and tests run from source; a dev
 * Electron build runs from out/main/) it is the repository's assets/, two levels above both
 * this file and the bundled out/main/main.js.
 */
export function calibrationTextPath(): string {
  const resources = (process as { resourcesPath?: unknown }).resourcesPath;
  if (typeof resources === 'string') {
    const packaged = path.join(resources, CALIBRATION_FILE);
    if (existsSync(packaged)) return packaged;
  }
  return path.resolve(import.meta.dirname, '..', '..', 'assets', CALIBRATION_FILE);
}

/** What a cached result is filed under. */
export interface QualityKey {
  readonly modelPath: string;
  readonly modelSize: number;
  /** Whole milliseconds. */
  readonly modelMtimeMs: number;
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly flashAttention: boolean;
  /** The calibration text's hash, with the method version. */
  readonly calibration: string;
}

interface Row {
  model_size: number;
  model_mtime_ms: number;
  calibration: string;
  result: string;
}

/** The `kv_quality` table (db.ts): one row per model path, pair and flash attention. */
export class QualityResults {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The cached result for `key`, or null (none, or one for another file version or text). */
  get(key: QualityKey): KvQuality | null {
    const row = this.#db
      .prepare('SELECT model_size, model_mtime_ms, calibration, result FROM kv_quality WHERE model_path = ? AND k_type = ? AND v_type = ? AND flash_attention = ?')
      .get(key.modelPath, key.kType, key.vType, key.flashAttention ? 1 : 0) as Row | undefined;
    if (!row || row.model_size !== key.modelSize || row.model_mtime_ms !== key.modelMtimeMs || row.calibration !== key.calibration) return null;
    try {
      return JSON.parse(row.result) as KvQuality;
    } catch {
      return null;
    }
  }

  /** Stores `quality` under `key`, replacing what the path and pair had (an older file version's result). */
  put(key: QualityKey, quality: KvQuality): void {
    this.#db
      .prepare(
        `INSERT INTO kv_quality (model_path, k_type, v_type, flash_attention, model_size, model_mtime_ms, calibration, result)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (model_path, k_type, v_type, flash_attention) DO UPDATE SET
           model_size = excluded.model_size, model_mtime_ms = excluded.model_mtime_ms,
           calibration = excluded.calibration, result = excluded.result`,
      )
      .run(key.modelPath, key.kType, key.vType, key.flashAttention ? 1 : 0, key.modelSize, key.modelMtimeMs, key.calibration, JSON.stringify(quality));
  }
}

export interface QualityMeterDeps {
  readonly engine: {
    request(method: 'measureQuality', input: WorkerMethods['measureQuality']['input']): Promise<Result<KvQuality>>;
  };
  /** The loaded model (status 'ready'), or null. */
  readonly loadedModel: () => ModelInfo | null;
  readonly cache: QualityResults;
  /** Default: `calibrationTextPath()`. */
  readonly calibrationPath?: string;
}

/** `models.measureQuality`: a cached result, or a measurement by the engine (then cached). */
export class QualityMeter {
  readonly #deps: QualityMeterDeps;
  readonly #calibrationPath: string;
  /** Measurements running, by cache key: a second click while one runs waits for the same one. */
  readonly #running = new Map<string, Promise<Result<KvQuality>>>();

  constructor(deps: QualityMeterDeps) {
    this.#deps = deps;
    this.#calibrationPath = deps.calibrationPath ?? calibrationTextPath();
  }

  async measure(input: { readonly fresh?: boolean }): Promise<Result<KvQuality>> {
    const model = this.#deps.loadedModel();
    if (!model) return err('MODEL_NOT_LOADED', 'No model is loaded.', 'Load a model to measure its KV cache quality.');
    const key = await this.#key(model);
    // Without a key (the file or the text cannot be read) the engine still measures, or explains.
    if (!key) return this.#deps.engine.request('measureQuality', { calibrationPath: this.#calibrationPath });
    if (input.fresh !== true) {
      const cached = this.#deps.cache.get(key);
      if (cached) return ok(cached);
    }
    const id = JSON.stringify(key);
    const running = this.#running.get(id);
    if (running) return running;
    const measuring = this.#measure(key).finally(() => this.#running.delete(id));
    this.#running.set(id, measuring);
    return measuring;
  }

  async #measure(key: QualityKey): Promise<Result<KvQuality>> {
    const result = await this.#deps.engine.request('measureQuality', { calibrationPath: this.#calibrationPath });
    if (!result.ok) return result;
    // The engine measured what it had loaded; file it under that pair if ModelInfo said otherwise.
    const still = this.#deps.loadedModel();
    if (still?.path === key.modelPath) this.#deps.cache.put({ ...key, kType: result.value.kType, vType: result.value.vType }, result.value);
    return result;
  }

  async #key(model: ModelInfo): Promise<QualityKey | null> {
    try {
      const [file, text] = await Promise.all([stat(model.path), readFile(this.#calibrationPath)]);
      // Without kvType (an engine from before per-model KV types) the context was created with F16 K and V.
      const pair = model.kvType ?? { k: 'f16', v: 'f16' };
      return {
        modelPath: model.path,
        modelSize: file.size,
        modelMtimeMs: Math.floor(file.mtimeMs),
        kType: pair.k,
        vType: pair.v,
        flashAttention: model.flashAttention === true,
        calibration: `${METHOD_VERSION}:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`,
      };
    } catch {
      return null;
    }
  }
}
