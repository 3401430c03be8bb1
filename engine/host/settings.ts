/**
 * Settings, stored one key per row as JSON so that a later issue can add keys without a
 * migration. Missing keys read as their defaults.
 */
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { kvCompressionSettings, type KvCompressionSetting, type Sampling, type Settings } from '../contract/index.ts';
import { transaction } from './db.ts';
import { definedOnly } from './chat-store.ts';

/** maxTokens 0: automatic, from the loaded model's context (worker/context-view.ts `replyTokens`). */
export const defaultSampling: Sampling = { temperature: 0.7, topP: 0.9, maxTokens: 0 };

export const defaultSettings: Settings = {
  threads: 0,
  contextSize: 0,
  theme: 'system',
  defaultSystemPrompt: 'You are a helpful assistant.',
  defaultSampling,
  lastModelPath: null,
  kvPersistence: true,
  kvBudgetBytes: 10 * 1024 ** 3,
  kvChunkTokens: 256,
  kvSlots: 1,
  // Measured per machine at each engine start: lossless only where decoding it does not make a
  // restore slower than reading the bytes uncompressed (docs/decisions/kv-compression-auto.md).
  // Only a missing key reads as this: a stored 'lossless' (saved by an older Settings screen) stays.
  kvCompression: 'auto',
  modelsDir: null,
};

/** What `settings.update` may change (the contract's settingsPatchSchema, plus the host's own keys). */
export interface SettingsPatch {
  readonly threads?: number | undefined;
  readonly contextSize?: number | undefined;
  readonly theme?: Settings['theme'] | undefined;
  readonly defaultSystemPrompt?: string | undefined;
  readonly defaultSampling?: Partial<Sampling> | undefined;
  readonly lastModelPath?: string | null | undefined;
  readonly kvPersistence?: boolean | undefined;
  readonly kvBudgetBytes?: number | undefined;
  readonly kvChunkTokens?: number | undefined;
  readonly kvSlots?: number | undefined;
  readonly kvCompression?: KvCompressionSetting | undefined;
  readonly modelsDir?: string | null | undefined;
}

export function readSettings(db: DatabaseSync): Settings {
  const rows = db.prepare('SELECT key, value FROM settings').all() as unknown as { key: string; value: string }[];
  const stored: Record<string, unknown> = {};
  for (const row of rows) {
    try {
      stored[row.key] = JSON.parse(row.value);
    } catch {
      // A hand-edited or corrupt value reads as its default rather than breaking start.
    }
  }
  const pick = <K extends keyof Settings>(key: K, valid: (v: unknown) => boolean): Settings[K] =>
    valid(stored[key]) ? (stored[key] as Settings[K]) : defaultSettings[key];
  const sampling = typeof stored.defaultSampling === 'object' && stored.defaultSampling !== null ? stored.defaultSampling : {};
  return {
    threads: pick('threads', (v) => Number.isInteger(v) && (v as number) >= 0),
    contextSize: pick('contextSize', (v) => Number.isInteger(v) && (v as number) >= 0),
    theme: pick('theme', (v) => v === 'system' || v === 'light' || v === 'dark'),
    defaultSystemPrompt: pick('defaultSystemPrompt', (v) => typeof v === 'string'),
    defaultSampling: { ...defaultSampling, ...pickNumbers(sampling as Record<string, unknown>) },
    lastModelPath: pick('lastModelPath', (v) => v === null || typeof v === 'string'),
    kvPersistence: pick('kvPersistence', (v) => typeof v === 'boolean'),
    kvBudgetBytes: pick('kvBudgetBytes', (v) => Number.isInteger(v) && (v as number) >= 0),
    kvChunkTokens: pick('kvChunkTokens', (v) => Number.isInteger(v) && (v as number) >= 1),
    kvSlots: pick('kvSlots', (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 8),
    kvCompression: pick('kvCompression', (v) => (kvCompressionSettings as readonly unknown[]).includes(v)),
    modelsDir: pick('modelsDir', (v) => v === null || (typeof v === 'string' && path.isAbsolute(v))),
  };
}

function pickNumbers(record: Record<string, unknown>): Partial<Sampling> {
  const out: Record<string, number> = {};
  for (const key of ['temperature', 'topP', 'maxTokens'] as const) {
    const value = record[key];
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}

export function updateSettings(db: DatabaseSync, patch: SettingsPatch): Settings {
  return transaction(db, () => {
    const current = readSettings(db);
    for (const [key, value] of Object.entries(definedOnly(patch))) {
      const stored = key === 'defaultSampling' ? { ...current.defaultSampling, ...definedOnly(value as Partial<Sampling>) } : value;
      saveSetting(db, key, stored);
    }
    return readSettings(db);
  });
}

/**
 * One row of the settings table, for the host's parts that keep their own key (the API server):
 * its JSON value, or undefined when missing or not JSON (a hand-edited or damaged row).
 */
export function settingValue(db: DatabaseSync, key: string): unknown {
  const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
  if (!row) return undefined;
  try {
    return JSON.parse(row.value) as unknown;
  } catch {
    return undefined;
  }
}

export function saveSetting(db: DatabaseSync, key: string, value: unknown): void {
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
}
