import { useEffect, useState } from 'react';
import type { HearthError, Settings, Theme } from '../contract.ts';
import { useActions, useHearth } from '../state/react.tsx';
import {
  selectEngineBanner,
  selectEngineBusy,
  selectEngineState,
  selectKv,
  selectKvStats,
  selectKvStatsError,
  selectLoadedModelPath,
  selectSettings,
} from '../state/selectors.ts';
import { applyNote, CacheFields, cacheChanged, cacheFormFrom, cacheFromForm, type CacheForm } from './CacheSettings.tsx';
import { EnginesSection } from './EnginesSettings.tsx';
import { LocalEngineSection } from './LocalEngineSettings.tsx';
import { ModelSection } from './ModelSection.tsx';
import { SamplingFields, samplingFormFrom, samplingFromForm, type SamplingForm } from './SamplingFields.tsx';
import { buttonStyles, ErrorBox, inputStyles } from './ui.tsx';

export function SettingsScreen() {
  const settings = useHearth(selectSettings);
  return (
    <div className="min-h-0 flex-1 overflow-y-auto">
      <div className="mx-auto max-w-2xl px-4 py-6">
        <h1 className="mb-5 text-xl font-semibold">Settings</h1>
        {settings ? (
          <div className="space-y-8">
            <SettingsForm settings={settings} />
            <ModelSection />
            <LocalEngineSection />
            <EnginesSection />
          </div>
        ) : (
          <p className="text-sm text-stone-500">Loading…</p>
        )}
      </div>
    </div>
  );
}

const themes: readonly { value: Theme; label: string }[] = [
  { value: 'system', label: 'System' },
  { value: 'light', label: 'Light' },
  { value: 'dark', label: 'Dark' },
];

function wholeNumber(text: string, max: number): number | null {
  const n = Number(text);
  return text.trim() !== '' && Number.isInteger(n) && n >= 0 && n <= max ? n : null;
}

function SettingsForm({ settings }: { settings: Settings }) {
  const actions = useActions();
  const [threads, setThreads] = useState(String(settings.threads));
  const [contextSize, setContextSize] = useState(String(settings.contextSize));
  const [theme, setTheme] = useState<Theme>(settings.theme);
  const [systemPrompt, setSystemPrompt] = useState(settings.defaultSystemPrompt);
  const [sampling, setSampling] = useState<SamplingForm>(() => samplingFormFrom(settings.defaultSampling));
  const [error, setError] = useState<HearthError | null>(null);
  const [saved, setSaved] = useState(false);

  const kvStats = useHearth(selectKvStats);
  const kvStatsError = useHearth(selectKvStatsError);
  const kv = useHearth(selectKv);
  const engineState = useHearth(selectEngineState);
  const loadedModel = useHearth(selectLoadedModelPath);
  const crashBanner = useHearth(selectEngineBanner);
  const busy = useHearth(selectEngineBusy);
  const [cache, setCache] = useState<CacheForm>(() => cacheFormFrom(settings));
  const [saving, setSaving] = useState(false);
  const [savedNote, setSavedNote] = useState('');

  // Measured when the screen opens, again whenever the engine is back (a restart that applied
  // the cache settings may have been queued behind a reply), and when a model has loaded (the
  // state transfer line is the loaded model's).
  useEffect(() => {
    if (engineState === 'running') void actions.refreshKvStats();
  }, [actions, engineState, loadedModel]);

  const save = async () => {
    // Enter in a field submits too; a cache change can keep the host busy for a restart.
    if (saving) return;
    setSaved(false);
    const threadCount = wholeNumber(threads, 256);
    const context = wholeNumber(contextSize, 1_048_576);
    const parsed = samplingFromForm(sampling);
    if (threadCount === null) return setError({ code: 'INVALID_INPUT', message: 'Threads must be a whole number from 0 to 256.' });
    if (context === null) return setError({ code: 'INVALID_INPUT', message: 'Context size must be a whole number (0 = automatic).' });
    if (!parsed.ok) return setError(parsed.error);
    const kvPatch = cacheFromForm(cache, settings);
    if (!kvPatch.ok) return setError(kvPatch.error);
    const kvChanged = cacheChanged(kvPatch.value, settings);
    // Read before saving: the host answers at once while busy, and applies the change later.
    const busyNow = busy;
    setSaving(true);
    const result = await actions.updateSettings({
      threads: threadCount,
      contextSize: context,
      theme,
      defaultSystemPrompt: systemPrompt,
      defaultSampling: parsed.value,
      ...kvPatch.value,
    });
    setSaving(false);
    setError(result.ok ? null : result.error);
    setSaved(result.ok);
    setSavedNote(result.ok && kvChanged ? applyNote(busyNow) : '');
    if (result.ok) void actions.refreshKvStats();
  };

  return (
    <form
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
      className="space-y-6"
    >
      <fieldset className="space-y-3">
        <legend className="mb-2 text-base font-semibold">Model runtime</legend>
        <p className="text-xs text-stone-500 dark:text-stone-400">Threads and context size apply the next time a model is loaded. The context size is the default for models without their own (see Model below).</p>
        <div className="grid grid-cols-2 gap-3">
          <div>
            <label htmlFor="settings-threads" className="mb-1 block text-sm font-medium">
              Threads
            </label>
            <input id="settings-threads" type="number" min={0} max={256} step={1} value={threads} onChange={(e) => setThreads(e.target.value)} aria-describedby="settings-threads-help" className={inputStyles} />
            <p id="settings-threads-help" className="mt-0.5 text-xs text-stone-500 dark:text-stone-400">
              0 = measured per model (all physical cores or half of them, whichever runs faster).
            </p>
          </div>
          <div>
            <label htmlFor="settings-context" className="mb-1 block text-sm font-medium">
              Context size (tokens)
            </label>
            <input id="settings-context" type="number" min={0} step={256} value={contextSize} onChange={(e) => setContextSize(e.target.value)} aria-describedby="settings-context-help" className={inputStyles} />
            <p id="settings-context-help" className="mt-0.5 text-xs text-stone-500 dark:text-stone-400">
              0 = automatic.
            </p>
          </div>
        </div>
      </fieldset>

      <fieldset>
        <legend className="mb-2 text-base font-semibold">Theme</legend>
        <div className="flex gap-4">
          {themes.map((t) => (
            <label key={t.value} className="flex items-center gap-1.5 text-sm">
              <input type="radio" name="theme" value={t.value} checked={theme === t.value} onChange={() => setTheme(t.value)} className="accent-amber-600" />
              {t.label}
            </label>
          ))}
        </div>
      </fieldset>

      <fieldset className="space-y-3">
        <legend className="mb-2 text-base font-semibold">New chats</legend>
        <div>
          <label htmlFor="settings-system-prompt" className="mb-1 block text-sm font-medium">
            Default system prompt
          </label>
          <textarea id="settings-system-prompt" rows={4} value={systemPrompt} onChange={(e) => setSystemPrompt(e.target.value)} className={inputStyles} />
        </div>
        <SamplingFields idPrefix="settings" value={sampling} onChange={setSampling} />
      </fieldset>

      <CacheFields
        value={cache}
        onChange={setCache}
        settings={settings}
        stats={kvStats}
        statsError={kvStatsError}
        kv={kv}
        engineRestarting={engineState === 'restarting' && !crashBanner?.restarting}
        onRefresh={() => void actions.refreshKvStats()}
      />

      {error && <ErrorBox error={error} alert />}
      <div className="flex items-center gap-3">
        <button type="submit" disabled={saving} className={buttonStyles.primary}>
          Save settings
        </button>
        <p role="status" className="text-sm text-green-700 dark:text-green-400">
          {saving ? 'Saving…' : saved ? `Settings saved.${savedNote ? ` ${savedNote}` : ''}` : ''}
        </p>
      </div>
    </form>
  );
}
