/**
 * The remote engines the user added: rows in hearth.db (`remote_engines`), keys in the
 * SecretStore, and what the last check of each found (kept in memory; the model list also in
 * the row, so the picker shows models before the first check of a run answers).
 *
 * A check asks `/v1/models` and `/metrics` at once. Checks of one engine never overlap: a second
 * asks for the same answer. Every change is announced as `engines.changed` with the whole list.
 */
import type { DatabaseSync } from 'node:sqlite';
import { err, errorText, hearthError, ok, remoteEngineKinds, type HearthError, type HearthEvent, type RemoteEngine, type RemoteEngineKind, type RemoteEngineStatus, type RemoteModel, type Result } from '../../contract/index.ts';
import { newId } from '../chat-store.ts';
import type { SecretStore } from '../secrets.ts';
import { normalizeBaseUrl, type RemoteClient, type RemoteTarget } from './client.ts';

interface EngineRow {
  id: string;
  name: string;
  base_url: string;
  kind: string;
  models: string;
  created_at: number;
}

/** An engine as a request to it needs it: its address and key, with its id, name and kind. */
export interface EngineConnection extends RemoteTarget {
  readonly id: string;
  readonly kind: RemoteEngineKind;
}

/** A chat names an engine that is gone: said alike before a send and at the reply. */
export function engineRemovedError(): HearthError {
  return hearthError('NOT_FOUND', 'The engine this chat runs on was removed.', 'Move the chat to another model with the picker in its header: its history is kept.');
}

/** The SecretStore name of an engine's API key. */
export function engineKeySecret(engineId: string): string {
  return `engine-key-${engineId}`;
}

function kindOf(text: string): RemoteEngineKind {
  return (remoteEngineKinds as readonly string[]).includes(text) ? (text as RemoteEngineKind) : 'openai-compatible';
}

function modelsOf(json: string): RemoteModel[] {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? (parsed as RemoteModel[]).filter((m) => typeof m?.id === 'string') : [];
  } catch {
    return [];
  }
}

export interface RemoteEnginesDeps {
  readonly db: DatabaseSync;
  readonly secrets: SecretStore;
  readonly client: RemoteClient;
  readonly emit: (event: HearthEvent) => void;
  readonly log: (level: 'warn', message: string) => void;
}

export interface EngineInput {
  readonly name: string;
  readonly baseUrl: string;
  readonly kind: RemoteEngineKind;
  readonly apiKey?: string | undefined;
}

export class RemoteEngines {
  readonly #deps: RemoteEnginesDeps;
  readonly #status = new Map<string, RemoteEngineStatus>();
  readonly #checking = new Map<string, Promise<RemoteEngine | undefined>>();

  constructor(deps: RemoteEnginesDeps) {
    this.#deps = deps;
  }

  list(): RemoteEngine[] {
    const rows = this.#deps.db.prepare('SELECT * FROM remote_engines ORDER BY created_at, rowid').all() as unknown as EngineRow[];
    return rows.map((row) => this.#toEngine(row));
  }

  get(engineId: string): RemoteEngine | undefined {
    const row = this.#row(engineId);
    return row && this.#toEngine(row);
  }

  /** Whether the engine exists (a check that reads no key). */
  has(engineId: string): boolean {
    return this.#row(engineId) !== undefined;
  }

  /** What requests to the engine need, and what a reply or a sample is labelled with; undefined when it is gone. */
  target(engineId: string): EngineConnection | undefined {
    const row = this.#row(engineId);
    return row && { id: row.id, name: row.name, kind: kindOf(row.kind), baseUrl: row.base_url, apiKey: this.#deps.secrets.read(engineKeySecret(row.id)) };
  }

  async add(input: EngineInput): Promise<Result<RemoteEngine>> {
    const id = newId();
    const row: EngineRow = { id, name: input.name.trim(), base_url: normalizeBaseUrl(input.baseUrl), kind: input.kind, models: '[]', created_at: Date.now() };
    if (input.apiKey !== undefined) {
      const saved = this.#saveKey(id, input.apiKey);
      if (!saved.ok) return saved;
    }
    this.#deps.db
      .prepare('INSERT INTO remote_engines (id, name, base_url, kind, models, created_at) VALUES (:id, :name, :base_url, :kind, :models, :created_at)')
      .run({ ...row });
    this.#changed();
    return ok((await this.check(id)) ?? this.#toEngine(row));
  }

  /** `apiKey`: undefined keeps the stored key, null removes it. */
  async update(engineId: string, patch: { name?: string | undefined; baseUrl?: string | undefined; kind?: RemoteEngineKind | undefined; apiKey?: string | null | undefined }): Promise<Result<RemoteEngine>> {
    const row = this.#row(engineId);
    if (!row) return err('NOT_FOUND', 'There is no such engine: it may have been removed.');
    if (patch.apiKey !== undefined) {
      const saved = patch.apiKey === null ? this.#removeKey(engineId) : this.#saveKey(engineId, patch.apiKey);
      if (!saved.ok) return saved;
    }
    const next = {
      name: patch.name?.trim() ?? row.name,
      base_url: patch.baseUrl !== undefined ? normalizeBaseUrl(patch.baseUrl) : row.base_url,
      kind: patch.kind ?? row.kind,
    };
    this.#deps.db.prepare('UPDATE remote_engines SET name = ?, base_url = ?, kind = ? WHERE id = ?').run(next.name, next.base_url, next.kind, engineId);
    // A new address or key makes the last check's answer stale.
    if (next.base_url !== row.base_url || patch.apiKey !== undefined) this.#status.delete(engineId);
    this.#changed();
    return ok((await this.check(engineId)) ?? (this.get(engineId) as RemoteEngine));
  }

  /** Removes the engine and its key. */
  remove(engineId: string): boolean {
    const removed = Number(this.#deps.db.prepare('DELETE FROM remote_engines WHERE id = ?').run(engineId).changes) > 0;
    if (!removed) return false;
    this.#status.delete(engineId);
    const forgotten = this.#removeKey(engineId);
    if (!forgotten.ok) this.#deps.log('warn', `the removed engine's API key could not be deleted: ${forgotten.error.message}`);
    this.#changed();
    return true;
  }

  /** Asks the engine what it serves (and whether `/metrics` answers); undefined when it is gone. */
  check(engineId: string): Promise<RemoteEngine | undefined> {
    const running = this.#checking.get(engineId);
    if (running) return running;
    const target = this.target(engineId);
    if (!target) return Promise.resolve(undefined);
    const checked = this.#probe(target)
      .then((status) => {
        // Removed, or changed meanwhile: this answer is about an address it no longer has.
        const now = this.#row(engineId);
        if (!now || now.base_url !== target.baseUrl) return now && this.#toEngine(now);
        this.#status.set(engineId, status);
        if (status.state === 'online') this.#deps.db.prepare('UPDATE remote_engines SET models = ? WHERE id = ?').run(JSON.stringify(status.models), engineId);
        this.#changed();
        return this.get(engineId);
      })
      .finally(() => this.#checking.delete(engineId));
    this.#checking.set(engineId, checked);
    return checked;
  }

  /** Checks an address before it is saved; `engineId` lends that engine's stored key when no key is given. */
  async test(input: { baseUrl: string; apiKey?: string | undefined; engineId?: string | undefined; name?: string }): Promise<RemoteEngineStatus> {
    const storedKey = input.engineId !== undefined ? this.#deps.secrets.read(engineKeySecret(input.engineId)) : null;
    return this.#probe({ name: input.name ?? 'The engine', baseUrl: normalizeBaseUrl(input.baseUrl), apiKey: input.apiKey ?? storedKey });
  }

  /** Checks every engine, in the background (at start). */
  checkAll(): void {
    for (const engine of this.list()) void this.check(engine.id);
  }

  async #probe(target: RemoteTarget): Promise<RemoteEngineStatus> {
    const [models, metrics] = await Promise.all([this.#deps.client.models(target), this.#deps.client.metrics(target)]);
    const checkedAt = Date.now();
    if (!models.ok) return { state: 'error', checkedAt, error: models.error, models: [], metrics: metrics.ok };
    return { state: 'online', checkedAt, models: models.value, metrics: metrics.ok };
  }

  #row(engineId: string): EngineRow | undefined {
    return this.#deps.db.prepare('SELECT * FROM remote_engines WHERE id = ?').get(engineId) as EngineRow | undefined;
  }

  #toEngine(row: EngineRow): RemoteEngine {
    const stored = modelsOf(row.models);
    const status = this.#status.get(row.id);
    return {
      id: row.id,
      name: row.name,
      baseUrl: row.base_url,
      kind: kindOf(row.kind),
      hasApiKey: this.#deps.secrets.read(engineKeySecret(row.id)) !== null,
      createdAt: row.created_at,
      // A failed check keeps the models the last good one found: the picker still names them.
      status: status ? { ...status, models: status.state === 'online' ? status.models : stored } : { state: 'unknown', checkedAt: null, models: stored, metrics: false },
    };
  }

  #saveKey(engineId: string, key: string): Result<void> {
    try {
      this.#deps.secrets.write(engineKeySecret(engineId), key);
      return ok(undefined);
    } catch (error) {
      return err('INTERNAL', `The API key could not be stored: ${errorText(error)}.`);
    }
  }

  #removeKey(engineId: string): Result<void> {
    try {
      this.#deps.secrets.remove(engineKeySecret(engineId));
      return ok(undefined);
    } catch (error) {
      return err('INTERNAL', `The API key could not be removed: ${errorText(error)}.`);
    }
  }

  #changed(): void {
    this.#deps.emit({ type: 'engines.changed', payload: { engines: this.list() } });
  }
}
