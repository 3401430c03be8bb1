import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { KvStoreInfo, Settings } from '../contract.ts';
import { GB } from '../lib/format.ts';
import { appState } from '../../../test/support/renderer/fixtures.ts';
import {
  applyNote,
  budgetError,
  budgetText,
  budgetWarning,
  CacheFields,
  cacheChanged,
  cacheFormFrom,
  cacheFromForm,
  compressionHelp,
  persistenceNote,
  slotsError,
  usageLine,
  type CacheFieldsProps,
} from './CacheSettings.tsx';

const settings: Settings = appState().settings;

const stats = (extra: Partial<KvStoreInfo> = {}): KvStoreInfo => ({
  persistence: 'on',
  bytesOnDisk: 1.2 * GB,
  chunkCount: 40,
  logicalBytes: 2 * GB,
  budgetBytes: 10 * GB,
  freeDiskBytes: 84 * GB,
  chunkTokens: 256,
  compression: 'off',
  compressionChoice: { setting: 'auto', applied: 'off', reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s' },
  codec: { kernels: 'native' },
  stateTransfer: { mode: 'memory' },
  ...extra,
});

describe('the cache form', () => {
  it('starts from the settings, the budget in GB', () => {
    expect(cacheFormFrom(settings)).toEqual({ persistence: true, budgetGb: '10', chunkTokens: '256', slots: '1', compression: 'auto' });
    expect(budgetText(1_234_567_890)).toBe('1.15');
  });

  it('turns the fields into a settings patch', () => {
    const form = { persistence: false, budgetGb: '2.5', chunkTokens: '512', slots: '3', compression: 'lossy' as const };
    expect(cacheFromForm(form, settings)).toEqual({
      ok: true,
      value: { kvPersistence: false, kvBudgetBytes: 2.5 * GB, kvChunkTokens: 512, kvSlots: 3, kvCompression: 'lossy' },
    });
  });

  it('a new compression is a cache change (saved with the rest, applied like the chunk size)', () => {
    const patch = cacheFromForm({ ...cacheFormFrom(settings), compression: 'off' }, settings);
    expect(patch).toMatchObject({ ok: true, value: { kvCompression: 'off' } });
    expect(patch.ok && cacheChanged(patch.value, settings)).toBe(true);
    const same = cacheFromForm(cacheFormFrom(settings), settings);
    expect(same.ok && cacheChanged(same.value, settings)).toBe(false);
  });

  it('an untouched budget keeps its exact byte count, so saving other settings changes nothing here', () => {
    const odd = { ...settings, kvBudgetBytes: 1_234_567_890 };
    const patch = cacheFromForm(cacheFormFrom(odd), odd);
    expect(patch).toMatchObject({ ok: true, value: { kvBudgetBytes: 1_234_567_890 } });
    expect(patch.ok && cacheChanged(patch.value, odd)).toBe(false);
    const edited = cacheFromForm({ ...cacheFormFrom(odd), budgetGb: '1.5' }, odd);
    expect(edited.ok && cacheChanged(edited.value, odd)).toBe(true);
  });

  it('refuses a budget below 0 or not a number, and slots outside 1..8', () => {
    expect(budgetError('-1')).toBe('The disk budget must be 0 GB or more.');
    expect(budgetError('')).toMatch(/Enter the disk budget/);
    expect(budgetError('abc')).toMatch(/Enter the disk budget/);
    expect(budgetError('0')).toBeNull();
    expect(budgetError('0.5')).toBeNull();
    expect(slotsError('0')).toBe('Slots must be a whole number from 1 to 8.');
    expect(slotsError('9')).not.toBeNull();
    expect(slotsError('1.5')).not.toBeNull();
    expect(slotsError('8')).toBeNull();
    const bad = cacheFromForm({ ...cacheFormFrom(settings), budgetGb: '-2' }, settings);
    expect(bad).toEqual({ ok: false, error: { code: 'INVALID_INPUT', message: 'The disk budget must be 0 GB or more.' } });
    expect(cacheFromForm({ ...cacheFormFrom(settings), slots: '12' }, settings).ok).toBe(false);
  });

  it('warns (without refusing) about a budget above the free disk, counting what the store holds as room', () => {
    expect(budgetWarning(50 * GB, stats())).toBeNull();
    expect(budgetWarning(85 * GB, stats())).toBeNull(); // 84 free + 1.2 held
    expect(budgetWarning(100 * GB, stats())).toMatch(/more than the disk has free \(84 GB\)/);
    expect(budgetWarning(100 * GB, stats({ freeDiskBytes: null }))).toBeNull();
    expect(budgetWarning(100 * GB, null)).toBeNull();
    expect(cacheFromForm({ ...cacheFormFrom(settings), budgetGb: '500' }, settings).ok).toBe(true);
  });
});

describe('what the section says', () => {
  it('the usage line: store size, budget and free disk', () => {
    expect(usageLine(stats())).toBe('Using 1.2 GB of 10 GB · 84 GB free on disk');
    expect(usageLine(stats({ bytesOnDisk: 0, freeDiskBytes: null }))).toBe('Using 0 B of 10 GB · free disk space unknown');
    expect(usageLine(stats({ persistence: 'off', bytesOnDisk: 0 }))).toBe('Not in use (budget 10 GB) · 84 GB free on disk');
  });

  it('the persistence state: off, paused with its reason, and a restart applying settings', () => {
    expect(persistenceNote({ persistence: 'on' }, false)).toBeNull();
    expect(persistenceNote(null, false)).toBeNull();
    expect(persistenceNote({ persistence: 'off' }, false)?.text).toMatch(/not kept on disk/);
    const paused = persistenceNote({ persistence: 'paused', reason: { code: 'DISK_FULL', message: 'No space left on device.' } }, false);
    expect(paused).toEqual({ text: 'Saving chat caches is paused: No space left on device. Chats keep working; they re-read their history when reopened.', warn: true });
    expect(persistenceNote({ persistence: 'on' }, true)?.text).toMatch(/restarting to apply/);
  });

  it('when saved changes apply', () => {
    expect(applyNote(null)).toBe('The cache changes apply now.');
    expect(applyNote('reply')).toBe('The cache changes apply when the reply in progress ends.');
    expect(applyNote('download')).toMatch(/download ends/);
  });
});

function render(extra: Partial<CacheFieldsProps> = {}): string {
  const props: CacheFieldsProps = {
    value: cacheFormFrom(settings),
    onChange: () => undefined,
    settings,
    stats: stats(),
    statsError: null,
    kv: { persistence: 'on' },
    engineRestarting: false,
    onRefresh: () => undefined,
    ...extra,
  };
  return renderToStaticMarkup(<CacheFields {...props} />);
}

/** The opening tag of the element with this id (attribute order is React's business). */
function tag(html: string, id: string): string {
  const found = new RegExp(`<[a-z]+ [^>]*id="${id}"[^>]*>`).exec(html);
  if (!found) throw new Error(`no element #${id}`);
  return found[0];
}

describe('CacheFields', () => {
  it('labels every control, and describes the budget with the usage line', () => {
    const html = render();
    expect(html).toContain('<legend class="mb-2 text-base font-semibold">Cache</legend>');
    expect(tag(html, 'settings-kv-persistence')).toMatch(/type="checkbox".*checked=""/);
    expect(html).toMatch(/<label [^>]*><input id="settings-kv-persistence"[^>]*>Keep chat caches on disk<\/label>/);
    expect(html).toContain('<label for="settings-kv-budget" class="mb-1 block text-sm font-medium">Disk budget (GB)</label>');
    const budget = tag(html, 'settings-kv-budget');
    for (const attr of ['type="number"', 'min="0"', 'step="0.5"', 'value="10"', 'aria-describedby="settings-kv-usage"']) expect(budget).toContain(attr);
    expect(html).toContain('<label for="settings-kv-chunk" class="mb-1 block text-sm font-medium">Chunk size</label>');
    for (const n of [64, 128, 256, 512, 1024]) expect(html).toContain(`<option value="${n}"${n === 256 ? ' selected=""' : ''}>${n} tokens</option>`);
    expect(html).toContain('<label for="settings-kv-slots" class="mb-1 block text-sm font-medium">Slots</label>');
    expect(html).toContain('Chats kept in memory at once');
    expect(html).toContain('a miss');
    expect(html).toContain('>Using 1.2 GB of 10 GB · 84 GB free on disk</p>');
    expect(html).toContain('aria-label="Refresh cache usage"');
    expect(html).not.toContain('role="status"');
  });

  it('shows an invalid budget inline and marks the field invalid', () => {
    const html = render({ value: { ...cacheFormFrom(settings), budgetGb: '-1' } });
    expect(tag(html, 'settings-kv-budget')).toContain('aria-invalid="true"');
    expect(tag(html, 'settings-kv-budget')).toContain('aria-describedby="settings-kv-budget-error settings-kv-usage"');
    expect(html).toContain('<p id="settings-kv-budget-error" class="mt-1 text-xs text-red-700 dark:text-red-400">The disk budget must be 0 GB or more.</p>');
  });

  it('warns about a budget above the free disk', () => {
    const html = render({ value: { ...cacheFormFrom(settings), budgetGb: '200' } });
    expect(html).not.toContain('aria-invalid');
    expect(tag(html, 'settings-kv-budget')).toContain('aria-describedby="settings-kv-budget-warning settings-kv-usage"');
    expect(html).toMatch(/<p id="settings-kv-budget-warning"[^>]*>Warning: This is more than the disk has free \(84 GB\)/);
  });

  it('shows invalid slots inline', () => {
    const html = render({ value: { ...cacheFormFrom(settings), slots: '9' } });
    expect(tag(html, 'settings-kv-slots')).toContain('aria-invalid="true"');
    expect(tag(html, 'settings-kv-slots')).toContain('aria-describedby="settings-kv-slots-error settings-kv-slots-help"');
    expect(html).toContain('Slots must be a whole number from 1 to 8.');
  });

  it('shows a paused store as a status, and a chunk size from outside the list', () => {
    const html = render({
      kv: { persistence: 'paused', reason: { code: 'DISK_FULL', message: 'Disk full.' } },
      value: { ...cacheFormFrom(settings), chunkTokens: '100' },
    });
    expect(html).toMatch(/<p role="status"[^>]*>Saving chat caches is paused: Disk full\./);
    expect(html).toContain('<option value="100" selected="">100 tokens</option>');
  });

  it('offers the compressions under the name "Compression", Auto first and chosen by default, described by what each costs', () => {
    const html = render();
    expect(html).toContain('<label for="settings-kv-compression" class="mb-1 block text-sm font-medium">Compression</label>');
    expect(tag(html, 'settings-kv-compression')).toMatch(/^<select [^>]*aria-describedby="settings-kv-compression-in-use settings-kv-compression-help"/);
    expect(html).toMatch(
      /<select id="settings-kv-compression"[^>]*><option value="auto" selected="">Auto \(recommended\)<\/option><option value="off">Off<\/option><option value="lossless">Lossless<\/option><option value="lossy">Lossy \(F16 K\/V only\)<\/option><\/select>/,
    );
    const helpText = /<p id="settings-kv-compression-help"[^>]*>([^<]*)<\/p>/.exec(html)?.[1] ?? '';
    expect(helpText).toBe(compressionHelp);
    for (const said of ['Auto measures this computer', 'never slower', 'bit-exact', 'about 20% smaller on F16', '8-bit', 'about half the size', 'quality meter', 'never applied to quantized K/V', 'stay readable', 're-read its history once']) {
      expect(compressionHelp).toContain(said);
    }
    expect(render({ value: { ...cacheFormFrom(settings), compression: 'lossy' } })).toContain('<option value="lossy" selected="">Lossy (F16 K/V only)</option>');
  });

  it("shows beside the list what the running engine writes, with auto's figures, and nothing before an engine said", () => {
    expect(render()).toMatch(/<\/select><p id="settings-kv-compression-in-use"[^>]*>In use: Off \(auto: decoding 0\.70 GB\/s is slower than reading 9\.8 GB\/s\)<\/p>/);
    const fixed = render({ stats: stats({ compression: 'lossless', compressionChoice: { setting: 'lossless', applied: 'lossless' } }) });
    expect(fixed).toMatch(/<p id="settings-kv-compression-in-use"[^>]*>In use: Lossless<\/p>/);
    const none = render({ stats: stats({ compression: null, compressionChoice: null }) });
    expect(none).not.toContain('settings-kv-compression-in-use');
    expect(tag(none, 'settings-kv-compression')).toContain('aria-describedby="settings-kv-compression-help"');
  });

  it("says how the loaded model's state moves, and nothing without one", () => {
    expect(render()).toMatch(/<p id="settings-kv-transfer"[^>]*>State transfer: memory<\/p>/);
    const file = render({ stats: stats({ stateTransfer: { mode: 'file', reason: 'HEARTH_STATE_TRANSFER=file.' } }) });
    expect(file).toMatch(/<p id="settings-kv-transfer"[^>]*>State transfer: file \(HEARTH_STATE_TRANSFER=file\)<\/p>/);
    expect(render({ stats: stats({ stateTransfer: null }) })).not.toContain('State transfer');
    expect(render({ stats: null })).not.toContain('State transfer');
  });

  it('says which codec the engine runs, and nothing before it said', () => {
    expect(render()).toMatch(/<p id="settings-kv-codec"[^>]*>Codec: native<\/p>/);
    const fallback = render({ stats: stats({ codec: { kernels: 'fallback', reason: 'the native addon is not built (npm run build:native)' } }) });
    expect(fallback).toMatch(/<p id="settings-kv-codec"[^>]*>Codec: TypeScript fallback \(the native addon is not built \(npm run build:native\)\)<\/p>/);
    expect(render({ stats: stats({ codec: null }) })).not.toContain('Codec:');
    expect(render({ stats: null })).not.toContain('Codec:');
  });

  it('before the first measurement, or when it failed', () => {
    expect(render({ stats: null })).toContain('Measuring the cache…');
    expect(render({ stats: null, statsError: { code: 'ENGINE_UNAVAILABLE', message: 'The engine is restarting.' } })).toContain(
      "The cache&#x27;s size could not be read: The engine is restarting.",
    );
  });
});
