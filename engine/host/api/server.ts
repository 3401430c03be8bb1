/**
 * The local API server's lifecycle behind the Server screen: its settings (stored with the
 * host's settings), its key (a secret: safeStorage in the desktop app, a 0600 file in the browser
 * host), listening and stopping to match, and the request log. Off by default; the command line
 * (`--api-port`, `--api-key`) turns it on for one run without changing what is saved.
 */
import { randomBytes } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { hearthError, ok, type ApiRequestLog, type ApiServerSettings, type ApiServerState, type HearthError, type HearthEvent, type Result } from '../../contract/index.ts';
import type { Disposable } from '../../base/disposable.ts';
import { Lock } from '../../base/lock.ts';
import type { SecretStore } from '../secrets.ts';
import { saveSetting, settingValue } from '../settings.ts';
import { apiEndpoints, startApiHttp, type RunningApi } from './http.ts';
import type { ApiBackend } from './wire.ts';

export const defaultApiPort = 4724;
const settingsKey = 'apiServer';
const secretKey = 'api-key';
const logLimit = 200;

export const defaultApiSettings: ApiServerSettings = { enabled: false, port: defaultApiPort, lan: false, corsOrigins: [] };

/** The command line's settings for this run. */
export interface ApiOverride {
  readonly port: number;
  /** Absent: the stored key (created if none). */
  readonly key?: string;
}

export interface ApiServerDeps {
  readonly db: DatabaseSync;
  readonly secrets: SecretStore;
  readonly backend: ApiBackend;
  readonly emit: (event: HearthEvent) => void;
  readonly log: (level: 'error' | 'warn' | 'info', message: string) => void;
  readonly override?: ApiOverride;
}

/** A fresh key: 32 random bytes, URL-safe, with a prefix that says what it is. */
export function newApiKey(): string {
  return `hearth-${randomBytes(32).toString('base64url')}`;
}

function readApiSettings(db: DatabaseSync): ApiServerSettings {
  const raw = settingValue(db, settingsKey);
  if (raw === null || typeof raw !== 'object') return defaultApiSettings;
  const v = raw as Partial<Record<keyof ApiServerSettings, unknown>>;
  // A hand-edited or damaged value falls back field by field: the server stays off unless it says on.
  return {
    enabled: v.enabled === true,
    port: Number.isInteger(v.port) && (v.port as number) >= 1 && (v.port as number) <= 65_535 ? (v.port as number) : defaultApiPort,
    lan: v.lan === true,
    corsOrigins: Array.isArray(v.corsOrigins) ? v.corsOrigins.filter((o): o is string => typeof o === 'string') : [],
  };
}

export class ApiServer implements Disposable {
  readonly #deps: ApiServerDeps;
  readonly #lock = new Lock('api-server');
  #settings: ApiServerSettings;
  #key: string;
  #running: RunningApi | null = null;
  #error: HearthError | null = null;
  readonly #requests: ApiRequestLog[] = [];
  #nextId = 1;
  #disposed = false;

  constructor(deps: ApiServerDeps) {
    this.#deps = deps;
    this.#settings = readApiSettings(deps.db);
    this.#key = deps.override?.key ?? this.#storedKey();
  }

  /** The stored key, created and stored on first use. */
  #storedKey(): string {
    const stored = this.#deps.secrets.read(secretKey);
    if (stored !== null) return stored;
    const key = newApiKey();
    try {
      this.#deps.secrets.write(secretKey, key);
    } catch (error) {
      // It still works for this run; the next start makes another (clients must be told again).
      this.#deps.log('warn', `the API key could not be stored (${error instanceof Error ? error.message : String(error)}); it lasts until Hearth stops`);
    }
    return key;
  }

  /** The settings in force: the command line's port (and on) over the saved ones. */
  get #effective(): ApiServerSettings {
    const o = this.#deps.override;
    return o ? { ...this.#settings, enabled: true, port: o.port } : this.#settings;
  }

  /** Starts listening when the settings say so (at Hearth's start). Resolves once it listens or failed. */
  start(): Promise<ApiServerState> {
    return this.#lock.run(async () => {
      await this.#apply();
      return this.state();
    });
  }

  state(): ApiServerState {
    return { ...this.#summary(), requests: [...this.#requests] };
  }

  #summary(): Omit<ApiServerState, 'requests'> {
    const running = this.#running;
    return {
      settings: this.#settings,
      status: running ? 'listening' : this.#error ? 'error' : 'off',
      url: running ? `http://127.0.0.1:${running.port}/v1` : null,
      key: this.#key,
      error: this.#error,
      overridden: this.#deps.override !== undefined,
      endpoints: [...apiEndpoints],
    };
  }

  configure(patch: Partial<ApiServerSettings>): Promise<Result<ApiServerState>> {
    return this.#lock.run(async () => {
      const next: ApiServerSettings = {
        enabled: patch.enabled ?? this.#settings.enabled,
        port: patch.port ?? this.#settings.port,
        lan: patch.lan ?? this.#settings.lan,
        corsOrigins: patch.corsOrigins ? [...new Set(patch.corsOrigins)] : this.#settings.corsOrigins,
      };
      saveSetting(this.#deps.db, settingsKey, next);
      const before = this.#settings;
      // The command line holds the server on at its port for this run; the network switch still applies.
      const restart = this.#deps.override ? next.lan !== before.lan : next.enabled !== before.enabled || next.port !== before.port || next.lan !== before.lan;
      this.#settings = next;
      if (restart) await this.#apply();
      else this.#announce();
      return ok(this.state());
    });
  }

  rotateKey(): Promise<Result<ApiServerState>> {
    return this.#lock.run(() => {
      const key = newApiKey();
      try {
        this.#deps.secrets.write(secretKey, key);
      } catch (error) {
        return { ok: false as const, error: hearthError('INTERNAL', `The new API key could not be stored: ${error instanceof Error ? error.message : String(error)}.`) };
      }
      // Requests check the key as they arrive (http.ts reads it per request): the old one stops now.
      this.#key = key;
      this.#announce();
      return ok(this.state());
    });
  }

  /** Closes the listener (if any) and opens one to match the settings in force. */
  async #apply(): Promise<void> {
    if (this.#running) {
      await this.#running.close();
      this.#running = null;
    }
    this.#error = null;
    const settings = this.#effective;
    if (settings.enabled && !this.#disposed) {
      const host = settings.lan ? '0.0.0.0' : '127.0.0.1';
      try {
        this.#running = await startApiHttp({
          backend: this.#deps.backend,
          host,
          port: settings.port,
          key: () => this.#key,
          corsOrigins: () => this.#settings.corsOrigins,
          onRequest: (entry) => this.#record(entry),
          log: (level, message) => this.#deps.log(level, message),
        });
        this.#deps.log('info', `API server listening on ${host}:${this.#running.port}`);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        this.#error =
          code === 'EADDRINUSE'
            ? hearthError('BUSY', `Port ${settings.port} is already in use.`, 'Choose another port on the Server screen (or stop what uses it).')
            : hearthError('INTERNAL', `The API server could not listen on ${host}:${settings.port}: ${error instanceof Error ? error.message : String(error)}.`);
        this.#deps.log('warn', this.#error.message);
      }
    }
    this.#announce();
  }

  #announce(): void {
    this.#deps.emit({ type: 'server.state', payload: this.#summary() });
  }

  #record(entry: Omit<ApiRequestLog, 'id'>): void {
    const row: ApiRequestLog = { id: this.#nextId++, ...entry };
    this.#requests.push(row);
    if (this.#requests.length > logLimit) this.#requests.splice(0, this.#requests.length - logLimit);
    const miss = row.cacheMiss ? ` (cache miss at token ${row.cacheMiss.atToken}: sent ${JSON.stringify(row.cacheMiss.sent)}, cached ${JSON.stringify(row.cacheMiss.stored)})` : '';
    this.#deps.log(row.status >= 500 ? 'warn' : 'info', `API ${row.endpoint} ${row.status} from ${row.client}${row.promptTokens !== null ? `, ${row.promptTokens} prompt tokens, ${row.cachedTokens ?? 0} cached` : ''}${miss}`);
    this.#deps.emit({ type: 'server.request', payload: row });
  }

  /** The running port, or null (tests and the command line's one line). */
  get port(): number | null {
    return this.#running?.port ?? null;
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    await this.#lock.run(async () => {
      await this.#running?.close();
      this.#running = null;
    });
  }
}
