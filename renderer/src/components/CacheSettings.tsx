/**
 * The "Cache" part of Settings: disk KV persistence, its budget next to the store's size and the
 * free disk, the chunk size, the slot count, and how chunks are encoded on disk (with what the
 * running engine chose for `auto`, and why). The form state lives in the Settings form, which
 * saves everything with one button; this file holds the fields, their checks, and the figures
 * lines (usage, codec, how the loaded model's state moves).
 */
import type { HearthError, KvCompressionSetting, KvStatus, KvStoreInfo, Result, Settings } from '../contract.ts';
import { codecText, compressionChoiceText, compressionLabels, kvCompressionList, stateTransferText } from '../lib/cache.ts';
import { formatBinaryBytes, GB } from '../lib/format.ts';
import { buttonStyles, inputStyles } from './ui.tsx';

/** The fields as typed (strings), so a half-typed number is not fought by the input. */
export interface CacheForm {
  readonly persistence: boolean;
  /** The disk budget in GB (1024³ bytes). */
  readonly budgetGb: string;
  readonly chunkTokens: string;
  readonly slots: string;
  readonly compression: KvCompressionSetting;
}

export type CachePatch = Pick<Settings, 'kvPersistence' | 'kvBudgetBytes' | 'kvChunkTokens' | 'kvSlots' | 'kvCompression'>;

export const chunkSizes: readonly number[] = [64, 128, 256, 512, 1024];
export const maxSlots = 8;
/** The contract's ceiling for kvBudgetBytes (2^50 bytes). */
const maxBudgetGb = 2 ** 50 / GB;

/** A byte count as the budget field shows it: GB, at most two decimals, no trailing zeros. */
export function budgetText(bytes: number): string {
  return String(Number((bytes / GB).toFixed(2)));
}

export function cacheFormFrom(settings: Settings): CacheForm {
  return {
    persistence: settings.kvPersistence,
    budgetGb: budgetText(settings.kvBudgetBytes),
    chunkTokens: String(settings.kvChunkTokens),
    slots: String(settings.kvSlots),
    compression: settings.kvCompression,
  };
}

/** What is wrong with the typed budget, or null. */
export function budgetError(text: string): string | null {
  const gb = Number(text);
  if (text.trim() === '' || !Number.isFinite(gb)) return 'Enter the disk budget in GB, for example 10.';
  if (gb < 0) return 'The disk budget must be 0 GB or more.';
  if (gb > maxBudgetGb) return `The disk budget must be at most ${maxBudgetGb} GB.`;
  return null;
}

export function slotsError(text: string): string | null {
  const n = Number(text);
  return text.trim() !== '' && Number.isInteger(n) && n >= 1 && n <= maxSlots ? null : `Slots must be a whole number from 1 to ${maxSlots}.`;
}

/**
 * A budget the disk cannot hold is allowed (the disk may be cleaned up later), but the user
 * should know: the store fills the disk before it reaches the budget. What the store already
 * holds counts as room, since it is inside the budget.
 */
export function budgetWarning(budgetBytes: number, stats: KvStoreInfo | null): string | null {
  if (!stats || stats.freeDiskBytes === null) return null;
  if (budgetBytes <= stats.freeDiskBytes + stats.bytesOnDisk) return null;
  return `This is more than the disk has free (${formatBinaryBytes(stats.freeDiskBytes)}): the disk would fill up before the cache reaches its budget.`;
}

/**
 * The settings patch for the typed fields, or the first problem. A budget left as shown keeps
 * its exact byte count (the field rounds it to 0.01 GB), so an untouched field never changes it.
 */
export function cacheFromForm(form: CacheForm, settings: Settings): Result<CachePatch> {
  const invalid = (message: string): Result<CachePatch> => ({ ok: false, error: { code: 'INVALID_INPUT', message } satisfies HearthError });
  const budgetProblem = budgetError(form.budgetGb);
  if (budgetProblem) return invalid(budgetProblem);
  const slotsProblem = slotsError(form.slots);
  if (slotsProblem) return invalid(slotsProblem);
  const chunkTokens = Number(form.chunkTokens);
  if (!Number.isInteger(chunkTokens) || chunkTokens < 16 || chunkTokens > 4096) return invalid('Choose a chunk size.');
  const untouched = form.budgetGb.trim() === budgetText(settings.kvBudgetBytes);
  return {
    ok: true,
    value: {
      kvPersistence: form.persistence,
      kvBudgetBytes: untouched ? settings.kvBudgetBytes : Math.round(Number(form.budgetGb) * GB),
      kvChunkTokens: chunkTokens,
      kvSlots: Number(form.slots),
      kvCompression: form.compression,
    },
  };
}

/** Whether saving `patch` changes any cache setting (the host then applies it: see the note). */
export function cacheChanged(patch: CachePatch, settings: Settings): boolean {
  return (
    patch.kvPersistence !== settings.kvPersistence ||
    patch.kvBudgetBytes !== settings.kvBudgetBytes ||
    patch.kvChunkTokens !== settings.kvChunkTokens ||
    patch.kvSlots !== settings.kvSlots ||
    patch.kvCompression !== settings.kvCompression
  );
}

/** "Using 1.2 GB of 10 GB · 84 GB free on disk" (with persistence off the store is not measured). */
export function usageLine(stats: KvStoreInfo): string {
  const free = stats.freeDiskBytes === null ? 'free disk space unknown' : `${formatBinaryBytes(stats.freeDiskBytes)} free on disk`;
  if (stats.persistence === 'off') return `Not in use (budget ${formatBinaryBytes(stats.budgetBytes)}) · ${free}`;
  return `Using ${formatBinaryBytes(stats.bytesOnDisk)} of ${formatBinaryBytes(stats.budgetBytes)} · ${free}`;
}

/** What to say about persistence right now, or null when it simply runs. */
export function persistenceNote(kv: KvStatus | null, engineRestarting: boolean): { text: string; warn: boolean } | null {
  if (engineRestarting) return { text: 'The engine is restarting to apply the cache settings…', warn: false };
  if (kv?.persistence === 'off') return { text: 'Chat caches are not kept on disk: a reopened chat re-reads its history.', warn: false };
  if (kv?.persistence === 'paused') {
    const reason = (kv.reason?.message ?? 'the disk cannot be written to').trim().replace(/\.+$/, '');
    return { text: `Saving chat caches is paused: ${reason}. Chats keep working; they re-read their history when reopened.`, warn: true };
  }
  return null;
}

/** When saved cache changes take effect, for the "Settings saved." line. */
export function applyNote(busy: 'reply' | 'model' | 'download' | null): string {
  switch (busy) {
    case 'reply':
      return 'The cache changes apply when the reply in progress ends.';
    case 'model':
      return 'The cache changes apply when the model has loaded.';
    case 'download':
      return 'The cache changes apply when the download ends.';
    case null:
      return 'The cache changes apply now.';
  }
}

export interface CacheFieldsProps {
  readonly value: CacheForm;
  readonly onChange: (value: CacheForm) => void;
  /** The saved settings: the budget the figures compare with. */
  readonly settings: Settings;
  readonly stats: KvStoreInfo | null;
  readonly statsError: HearthError | null;
  readonly kv: KvStatus | null;
  /** The engine restarts without a crash: the host is applying saved cache settings. */
  readonly engineRestarting: boolean;
  readonly onRefresh: () => void;
}

/** What each encoding costs, beside the Compression list. */
export const compressionHelp =
  'Auto measures this computer when the engine starts and picks Lossless only where decoding it is at least as fast as reading the K/V uncompressed, else Off, so a restore is never slower for it. ' +
  'Off stores the K/V as it is. Lossless is bit-exact and about 20% smaller on F16 K/V. ' +
  'Lossy stores F16 K/V as 8-bit values, about half the size, at a small quality cost that the quality meter shows; ' +
  'it is never applied to quantized K/V, which stay lossless. ' +
  'Chunks stored before stay readable whatever you choose; switching to or from Lossy makes each stored chat re-read its history once.';

const help = 'mt-0.5 text-xs text-stone-500 dark:text-stone-400';
const warning = 'mt-1 text-xs text-amber-800 dark:text-amber-300';
const problem = 'mt-1 text-xs text-red-700 dark:text-red-400';

export function CacheFields(props: CacheFieldsProps) {
  const { value, onChange, stats } = props;
  const set = (patch: Partial<CacheForm>) => onChange({ ...value, ...patch });
  const budgetProblem = budgetError(value.budgetGb);
  const budgetNotice = budgetProblem ? null : budgetWarning(Math.round(Number(value.budgetGb) * GB), stats);
  const slotsProblem = slotsError(value.slots);
  const note = persistenceNote(props.kv, props.engineRestarting);
  const codec = codecText(stats?.codec ?? null);
  const inUse = compressionChoiceText(stats?.compressionChoice ?? null);
  const transfer = stateTransferText(stats?.stateTransfer ?? null);
  // A chunk size set outside the list (through the API) stays selectable rather than vanishing.
  const sizes = chunkSizes.includes(Number(value.chunkTokens)) ? chunkSizes : [...chunkSizes, Number(value.chunkTokens)].sort((a, b) => a - b);
  const describedBy = (...ids: (string | false | null)[]) => ids.filter(Boolean).join(' ') || undefined;

  return (
    <fieldset className="space-y-3">
      <legend className="mb-2 text-base font-semibold">Cache</legend>
      <p className={help}>Hearth keeps each chat&apos;s memory (its KV cache) on disk, so that a reopened chat answers without re-reading its history.</p>
      {note && (
        <p role="status" className={note.warn ? 'rounded-md bg-amber-100 px-2 py-1 text-sm text-amber-950 dark:bg-amber-950 dark:text-amber-100' : 'text-sm'}>
          {note.text}
        </p>
      )}
      <label className="flex items-center gap-2 text-sm font-medium">
        <input id="settings-kv-persistence" type="checkbox" checked={value.persistence} onChange={(e) => set({ persistence: e.target.checked })} className="accent-amber-600" />
        Keep chat caches on disk
      </label>

      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <div>
          <label htmlFor="settings-kv-budget" className="mb-1 block text-sm font-medium">
            Disk budget (GB)
          </label>
          <input
            id="settings-kv-budget"
            type="number"
            inputMode="decimal"
            min={0}
            step={0.5}
            value={value.budgetGb}
            onChange={(e) => set({ budgetGb: e.target.value })}
            aria-invalid={budgetProblem ? true : undefined}
            aria-describedby={describedBy(budgetProblem && 'settings-kv-budget-error', budgetNotice && 'settings-kv-budget-warning', 'settings-kv-usage')}
            className={inputStyles}
          />
          {budgetProblem && (
            <p id="settings-kv-budget-error" className={problem}>
              {budgetProblem}
            </p>
          )}
          {budgetNotice && (
            <p id="settings-kv-budget-warning" className={warning}>
              Warning: {budgetNotice}
            </p>
          )}
        </div>
        <div>
          <label htmlFor="settings-kv-chunk" className="mb-1 block text-sm font-medium">
            Chunk size
          </label>
          <select id="settings-kv-chunk" value={value.chunkTokens} onChange={(e) => set({ chunkTokens: e.target.value })} aria-describedby="settings-kv-chunk-help" className={inputStyles}>
            {sizes.map((n) => (
              <option key={n} value={String(n)}>
                {n} tokens
              </option>
            ))}
          </select>
          <p id="settings-kv-chunk-help" className={help}>
            Changing it makes the caches stored so far a miss: each chat re-reads its history once.
          </p>
        </div>
        <div>
          <label htmlFor="settings-kv-slots" className="mb-1 block text-sm font-medium">
            Slots
          </label>
          <input
            id="settings-kv-slots"
            type="number"
            inputMode="numeric"
            min={1}
            max={maxSlots}
            step={1}
            value={value.slots}
            onChange={(e) => set({ slots: e.target.value })}
            aria-invalid={slotsProblem ? true : undefined}
            aria-describedby={describedBy(slotsProblem && 'settings-kv-slots-error', 'settings-kv-slots-help')}
            className={inputStyles}
          />
          {slotsProblem && (
            <p id="settings-kv-slots-error" className={problem}>
              {slotsProblem}
            </p>
          )}
          <p id="settings-kv-slots-help" className={help}>
            Chats kept in memory at once; each takes a context&apos;s worth of memory.
          </p>
        </div>
      </div>

      <div>
        <label htmlFor="settings-kv-compression" className="mb-1 block text-sm font-medium">
          Compression
        </label>
        <select
          id="settings-kv-compression"
          value={value.compression}
          onChange={(e) => set({ compression: e.target.value as KvCompressionSetting })}
          aria-describedby={describedBy(inUse && 'settings-kv-compression-in-use', 'settings-kv-compression-help')}
          className={`${inputStyles} sm:max-w-xs`}
        >
          {kvCompressionList.map((mode) => (
            <option key={mode} value={mode}>
              {compressionLabels[mode]}
            </option>
          ))}
        </select>
        {inUse && (
          <p id="settings-kv-compression-in-use" className="mt-1 text-sm text-stone-700 dark:text-stone-300">
            {inUse}
          </p>
        )}
        <p id="settings-kv-compression-help" className={help}>
          {compressionHelp}
        </p>
      </div>

      <div className="flex flex-wrap items-center gap-2">
        <p id="settings-kv-usage" aria-live="polite" className="text-sm text-stone-700 dark:text-stone-300">
          {stats ? usageLine(stats) : props.statsError ? `The cache's size could not be read: ${props.statsError.message}` : 'Measuring the cache…'}
        </p>
        <button type="button" onClick={props.onRefresh} className={buttonStyles.ghost} aria-label="Refresh cache usage">
          Refresh
        </button>
      </div>
      {codec && (
        <p id="settings-kv-codec" className="text-sm text-stone-700 dark:text-stone-300">
          {codec}
        </p>
      )}
      {transfer && (
        <p id="settings-kv-transfer" className="text-sm text-stone-700 dark:text-stone-300">
          {transfer}
        </p>
      )}
    </fieldset>
  );
}
