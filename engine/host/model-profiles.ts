/**
 * Per-model settings (K and V cache types, flash attention, context size, GPU layers, slots, the
 * overflow policy) in hearth.db's `model_profiles` table.
 *
 * Keyed by the model file's absolute path, not its content hash: the hash takes seconds on a
 * large file, and a profile must be readable before the file is loaded. A file replaced at the
 * same path keeps its profile safely: the engine checks the profile against the file before every
 * load (`checkProfile`), and the KV store's fingerprint holds the content hash.
 *
 * Only the fields the user set are stored (JSON, like settings.ts): the others follow the
 * defaults, which follow Settings as they change; a stored field that no longer validates reads
 * as its default rather than breaking the model.
 */
import os from 'node:os';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import {
  defaultModelProfile,
  err,
  modelProfilePatchSchema,
  ok,
  type HearthError,
  type ModelInfo,
  type ModelProfile,
  type ModelProfileView,
  type ProfileIssue,
  type Result,
  type Settings,
} from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';
import { transaction } from './db.ts';
import { definedOnly } from './chat-store.ts';
import type { SpeedDefaults } from './speed-profiles.ts';
import type { LogLevel, Supervisor } from './supervisor.ts';

/** A change to a profile: the fields to set (the contract's modelProfilePatchSchema). */
export type ModelProfilePatch = { readonly [K in keyof ModelProfile]?: ModelProfile[K] | undefined };

/** How long a profile check may take: the engine reads the GGUF header and plans, no model load. */
const CHECK_TIMEOUT_MS = 15_000;

/** The key a profile is stored under: the absolute path (`~` expanded), as ModelManager loads it. */
export function profileKey(input: string): string {
  const expanded = input === '~' || input.startsWith('~/') ? path.join(os.homedir(), input.slice(1)) : input;
  return path.resolve(expanded);
}

/**
 * Overflow policies of earlier versions, as the policy that does what the user chose: `refuse`
 * asked the user to act (now `stop`), `rebuild` and `shift` dropped the oldest messages.
 */
const legacyPolicies: Readonly<Record<string, ModelProfile['overflowPolicy']>> = { refuse: 'stop', rebuild: 'drop-oldest', shift: 'drop-oldest' };

/** Keeps the fields of a stored (or hand-edited) object that still validate; drops the rest. */
export function sanitizePatch(stored: unknown): ModelProfilePatch {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return {};
  const out: Record<string, unknown> = {};
  const shape = modelProfilePatchSchema.shape;
  for (const [key, raw] of Object.entries(stored as Record<string, unknown>)) {
    const value = key === 'overflowPolicy' && typeof raw === 'string' ? (legacyPolicies[raw] ?? raw) : raw;
    if (!(key in shape) || value === undefined) continue;
    const parsed = shape[key as keyof typeof shape].safeParse(value);
    if (parsed.success && parsed.data !== undefined) out[key] = parsed.data;
  }
  return out as ModelProfilePatch;
}

/** The fields the user set for the model at `key` (a `profileKey`); {} when none. */
export function readProfilePatch(db: DatabaseSync, key: string): ModelProfilePatch {
  const row = db.prepare('SELECT profile FROM model_profiles WHERE path = ?').get(key) as { profile: string } | undefined;
  if (!row) return {};
  try {
    return sanitizePatch(JSON.parse(row.profile));
  } catch {
    // A corrupt row reads as "no profile" rather than making the model unloadable.
    return {};
  }
}

/** Stores `patch` merged over what the model at `key` had; returns the merged stored fields. */
export function writeProfilePatch(db: DatabaseSync, key: string, patch: ModelProfilePatch): ModelProfilePatch {
  return transaction(db, () => {
    const merged = { ...readProfilePatch(db, key), ...definedOnly(sanitizePatch(patch)) };
    db.prepare(
      'INSERT INTO model_profiles (path, profile, updated_at) VALUES (?, ?, ?) ON CONFLICT(path) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at',
    ).run(key, JSON.stringify(merged), Date.now());
    return merged;
  });
}

/** The model's profile: its stored fields over the defaults. */
export function readProfile(db: DatabaseSync, key: string, settings: Pick<Settings, 'contextSize' | 'kvSlots'>): ModelProfile {
  return { ...defaultModelProfile(settings), ...definedOnly(readProfilePatch(db, key)) };
}

function sameProfile(a: ModelProfile, b: ModelProfile): boolean {
  return (Object.keys(a) as (keyof ModelProfile)[]).every((key) => a[key] === b[key]);
}

/** "field: message; field: message" for the errors among `issues`. */
export function describeIssues(issues: readonly ProfileIssue[]): string {
  return issues
    .filter((issue) => issue.severity === 'error')
    // The messages are sentences; the caller ends the whole list with its own period.
    .map((issue) => `${issue.field}: ${issue.message.replace(/\.+$/, '')}`)
    .join('; ');
}

/** The engine is not there to ask (starting, restarting, stopped, or it did not answer in time). */
function engineDown(error: HearthError): boolean {
  return error.code === 'ENGINE_UNAVAILABLE' || error.code === 'ENGINE_CRASHED';
}

const pendingWarning: ProfileIssue = {
  field: 'model',
  severity: 'warning',
  message: 'The engine is not running, so these settings could not be checked yet; they are checked before the model loads.',
};

export interface ModelProfilesDeps {
  readonly db: DatabaseSync;
  readonly settings: () => Settings;
  readonly engine: Pick<Supervisor, 'request'>;
  /** The speed measured for a model on this device (the view's `speed`). */
  readonly speed?: Pick<SpeedDefaults, 'current'>;
  /** The path of the model loaded now (ready), or null. */
  readonly loadedModel: () => string | null;
  /** `ModelManager.load`: it checks the profile again and loads with it. */
  readonly reload: (path: string) => Promise<Result<ModelInfo>>;
  readonly log: (level: LogLevel, message: string) => void;
  /** A profile was saved (the Cache view's event log), before any reload that applies it. */
  readonly onSaved?: (key: string, before: ModelProfile, after: ModelProfile) => void;
}

/** 'models.getProfile' and 'models.setProfile'. Never throws. */
export class ModelProfiles {
  readonly #deps: ModelProfilesDeps;

  constructor(deps: ModelProfilesDeps) {
    this.#deps = deps;
  }

  /** The profile a load of `file` uses (ModelManager, before every load). */
  profileOf(file: string): ModelProfile {
    return readProfile(this.#deps.db, profileKey(file), this.#deps.settings());
  }

  /** Asks the engine what it says of `profile` for the model at `file`. */
  check(file: string, profile: ModelProfile): Promise<Result<{ readonly issues: readonly ProfileIssue[]; readonly resolved: ResolvedProfile | null }>> {
    return this.#deps.engine.request('checkProfile', { path: file, profile }, { timeoutMs: CHECK_TIMEOUT_MS });
  }

  /**
   * The stored-or-default profile with what validation says of it. Without an engine the issues
   * are only a warning that validation is pending; a model the engine cannot read is an error issue.
   */
  async get(file: string): Promise<Result<ModelProfileView>> {
    const key = profileKey(file);
    const profile = this.profileOf(key);
    const checked = await this.check(key, profile);
    if (!checked.ok) {
      const issues = engineDown(checked.error) ? [pendingWarning] : [{ field: 'model', severity: 'error', message: checked.error.message } satisfies ProfileIssue];
      return ok({ path: key, profile, issues });
    }
    const { issues, resolved } = checked.value;
    const speed = resolved && this.#deps.speed ? await this.#deps.speed.current(key, profile, resolved) : null;
    return ok({ path: key, profile, issues, speed });
  }

  /**
   * Merges `patch` into the model's profile and checks the result. With errors nothing is saved
   * (INVALID_INPUT naming them); else it is saved, and when `file` is the loaded model it is
   * applied by reloading it (replies in progress stop and keep their text; chats live in SQLite
   * and the engine saves their KV before the model changes). A reload that fails is reported as
   * a warning issue: the profile is saved either way and the model's status carries the error.
   */
  async set(file: string, patch: ModelProfilePatch): Promise<Result<ModelProfileView>> {
    const key = profileKey(file);
    const before = this.profileOf(key);
    const profile: ModelProfile = { ...before, ...definedOnly(sanitizePatch(patch)) };
    const checked = await this.check(key, profile);
    let issues: ProfileIssue[];
    if (!checked.ok) {
      if (!engineDown(checked.error)) return { ok: false, error: checked.error };
      issues = [pendingWarning];
    } else {
      if (checked.value.issues.some((issue) => issue.severity === 'error')) {
        return err('INVALID_INPUT', `The model's settings were not saved: ${describeIssues(checked.value.issues)}.`, 'Change the marked settings and save again.');
      }
      issues = [...checked.value.issues];
    }
    writeProfilePatch(this.#deps.db, key, patch);
    const saved = this.profileOf(key);
    this.#deps.onSaved?.(key, before, saved);
    if (!sameProfile(before, saved) && this.#deps.loadedModel() === key) {
      this.#deps.log('info', `reloading ${key} to apply its new settings`);
      const reloaded = await this.#deps.reload(key);
      if (!reloaded.ok) {
        this.#deps.log('warn', `reloading ${key} with its new settings failed: ${reloaded.error.message}`);
        issues.push({ field: 'model', severity: 'warning', message: `The settings were saved, but the model could not be reloaded with them: ${reloaded.error.message}` });
      }
    }
    const resolved = checked.ok ? checked.value.resolved : null;
    const speed = resolved && this.#deps.speed ? await this.#deps.speed.current(key, saved, resolved) : null;
    return ok({ path: key, profile: saved, issues, speed });
  }
}
