/**
 * The host side of measured speed defaults: each model's context settings (flash attention,
 * threads, batch size), measured by the engine on the model's first load on this device
 * (worker/speed.ts) and kept in hearth.db so later loads use them at once.
 *
 * A measurement is filed per device (the engine's description of this computer and its
 * llama.cpp build: a new build, GPU or engine measures again), model file and K/V pair. It is
 * used while the file has the same size and mtime and the candidates would be the same (the
 * profile's flash attention setting, the thread counts, the method's version); otherwise the
 * next load measures again.
 */
import { stat } from 'node:fs/promises';
import type { DatabaseSync } from 'node:sqlite';
import type { KvCacheType, ModelProfile, SpeedProfile } from '../contract/index.ts';
import type { ResolvedProfile, SpeedRequest } from '../protocol.ts';
import { speedThreadCandidates } from './models.ts';

/**
 * Bump when the engine's method changes what a measurement means (its depth, its candidates, the
 * score), so that older measurements are made again.
 */
const METHOD_VERSION = 1;

/** What a measurement is filed under. */
export interface SpeedKey {
  readonly device: string;
  readonly modelPath: string;
  readonly modelSize: number;
  /** Whole milliseconds. */
  readonly modelMtimeMs: number;
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  /** What the candidates were made from, as text. */
  readonly space: string;
}

interface Row {
  model_size: number;
  model_mtime_ms: number;
  space: string;
  result: string;
}

/** The `speed_profiles` table (db.ts). */
export class SpeedStore {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The measurement filed under `key`, or null (none, or one of another file version or candidate set). */
  get(key: SpeedKey): SpeedProfile | null {
    const row = this.#db
      .prepare('SELECT model_size, model_mtime_ms, space, result FROM speed_profiles WHERE device = ? AND model_path = ? AND k_type = ? AND v_type = ?')
      .get(key.device, key.modelPath, key.kType, key.vType) as Row | undefined;
    if (!row || row.model_size !== key.modelSize || row.model_mtime_ms !== key.modelMtimeMs || row.space !== key.space) return null;
    try {
      return JSON.parse(row.result) as SpeedProfile;
    } catch {
      return null;
    }
  }

  /** Files `profile` under `key`, replacing what the device, path and pair had. */
  put(key: SpeedKey, profile: SpeedProfile): void {
    this.#db
      .prepare(
        `INSERT INTO speed_profiles (device, model_path, k_type, v_type, model_size, model_mtime_ms, space, result)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device, model_path, k_type, v_type) DO UPDATE SET
           model_size = excluded.model_size, model_mtime_ms = excluded.model_mtime_ms,
           space = excluded.space, result = excluded.result`,
      )
      .run(key.device, key.modelPath, key.kType, key.vType, key.modelSize, key.modelMtimeMs, key.space, JSON.stringify(profile));
  }
}

export interface SpeedDefaultsDeps {
  readonly store: SpeedStore;
  /** The engine's device and build (`init`'s answer), or null before it answered. */
  readonly device: () => string | null;
  /** A thread count the user fixed (the --threads override, else Settings.threads when not 0), or null. */
  readonly fixedThreads: () => number | null;
  /** Whether a model's first load measures (off in most tests, where the defaults must hold). */
  readonly measureOnFirstLoad: boolean;
}

/** A load's speed request, and where its measurement is filed. */
export interface SpeedPlan {
  readonly request: SpeedRequest;
  readonly key: SpeedKey | null;
}

/** Builds loads' speed requests from stored measurements, and stores new ones. */
export class SpeedDefaults {
  readonly #deps: SpeedDefaultsDeps;

  constructor(deps: SpeedDefaultsDeps) {
    this.#deps = deps;
  }

  /**
   * The speed request for loading `file` with `profile` (resolved as `resolved`): the stored
   * measurement's settings, else a new measurement (on a first load when that is on, or when
   * `measure` asks for one), else undefined: the plain defaults.
   */
  async plan(file: string, profile: ModelProfile, resolved: ResolvedProfile, measure: boolean): Promise<SpeedPlan | undefined> {
    const threads = speedThreadCandidates(this.#deps.fixedThreads());
    const request: SpeedRequest = { flashAttention: profile.flashAttention, threads };
    const key = await this.#key(file, profile, resolved, threads);
    const known = !measure && key ? this.#deps.store.get(key) : null;
    if (known) return { request: { ...request, known: known.chosen }, key };
    if (measure || this.#deps.measureOnFirstLoad) return { request, key };
    return undefined;
  }

  /** Keeps a load's new measurement. */
  record(plan: SpeedPlan | undefined, speed: SpeedProfile | undefined): void {
    if (plan?.key && speed) this.#deps.store.put(plan.key, speed);
  }

  /** The measurement a load of `file` with `profile` would use now, or null (the Model profile's figures). */
  async current(file: string, profile: ModelProfile, resolved: ResolvedProfile): Promise<SpeedProfile | null> {
    const key = await this.#key(file, profile, resolved, speedThreadCandidates(this.#deps.fixedThreads()));
    return key ? this.#deps.store.get(key) : null;
  }

  async #key(file: string, profile: ModelProfile, resolved: ResolvedProfile, threads: readonly number[]): Promise<SpeedKey | null> {
    const device = this.#deps.device();
    if (device === null) return null;
    const info = await stat(file).catch(() => null);
    if (!info) return null;
    return {
      device,
      modelPath: file,
      modelSize: info.size,
      modelMtimeMs: Math.floor(info.mtimeMs),
      kType: resolved.kType,
      vType: resolved.vType,
      space: JSON.stringify({ method: METHOD_VERSION, flashAttention: profile.flashAttention, threads }),
    };
  }
}
