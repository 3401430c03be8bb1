import type { HearthError, Result, Sampling } from '../contract.ts';
import { autoOrNumber } from './ModelProfile.tsx';
import { inputStyles } from './ui.tsx';

/** The fields as typed (strings), so a half-typed number is not fought by the input. */
export interface SamplingForm {
  readonly temperature: string;
  readonly topP: string;
  readonly maxTokens: string;
}

/** Max tokens as the field shows it: 0 (automatic) reads "Auto". */
export function maxTokensText(maxTokens: number): string {
  return maxTokens === 0 ? 'Auto' : String(maxTokens);
}

/** The form for stored sampling. */
export function samplingFormFrom(sampling: Sampling): SamplingForm {
  return { temperature: String(sampling.temperature), topP: String(sampling.topP), maxTokens: maxTokensText(sampling.maxTokens) };
}

/** "Auto", "auto", empty or 0 → 0 (automatic); a whole number 1..32768 → it; else null. */
export function maxTokensOf(text: string): number | null {
  const value = autoOrNumber(text, 0, 32_768);
  return value === 'auto' ? 0 : value;
}

/** Checks the ranges the contract enforces, so the user sees the problem before a round trip. */
export function samplingFromForm(form: SamplingForm): Result<Sampling> {
  const invalid = (message: string): Result<Sampling> => ({ ok: false, error: { code: 'INVALID_INPUT', message } satisfies HearthError });
  const temperature = Number(form.temperature);
  const topP = Number(form.topP);
  const maxTokens = maxTokensOf(form.maxTokens);
  if (form.temperature.trim() === '' || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
    return invalid('Temperature must be a number from 0 to 2.');
  }
  if (form.topP.trim() === '' || !Number.isFinite(topP) || topP <= 0 || topP > 1) return invalid('Top-p must be above 0 and at most 1.');
  if (maxTokens === null) return invalid('Max tokens must be Auto or a whole number from 1 to 32768.');
  return { ok: true, value: { temperature, topP, maxTokens } };
}

const help = 'mt-0.5 text-xs text-stone-500 dark:text-stone-400';

export function SamplingFields(props: { idPrefix: string; value: SamplingForm; onChange: (value: SamplingForm) => void }) {
  const field = (key: 'temperature' | 'topP', label: string, attrs: { min: number; max: number; step: number }, helpText: string) => {
    const id = `${props.idPrefix}-${key}`;
    return (
      <div>
        <label htmlFor={id} className="mb-1 block text-sm font-medium">
          {label}
        </label>
        <input
          id={id}
          type="number"
          inputMode="decimal"
          {...attrs}
          value={props.value[key]}
          onChange={(e) => props.onChange({ ...props.value, [key]: e.target.value })}
          aria-describedby={`${id}-help`}
          className={inputStyles}
        />
        <p id={`${id}-help`} className={help}>
          {helpText}
        </p>
      </div>
    );
  };
  const maxId = `${props.idPrefix}-maxTokens`;
  return (
    <div className="grid grid-cols-3 gap-3">
      {field('temperature', 'Temperature', { min: 0, max: 2, step: 0.05 }, '0 = always the likeliest word.')}
      {field('topP', 'Top-p', { min: 0.01, max: 1, step: 0.01 }, '1 = no cut-off.')}
      <div>
        <label htmlFor={maxId} className="mb-1 block text-sm font-medium">
          Max tokens
        </label>
        {/* Text, not a number input: it takes "Auto" as well as a count. */}
        <div className="flex gap-1">
          <input
            id={maxId}
            type="text"
            inputMode="numeric"
            spellCheck={false}
            autoComplete="off"
            value={props.value.maxTokens}
            onChange={(e) => props.onChange({ ...props.value, maxTokens: e.target.value })}
            aria-describedby={`${maxId}-help`}
            className={inputStyles}
          />
          <button
            type="button"
            aria-label="Max tokens: Auto"
            aria-pressed={maxTokensOf(props.value.maxTokens) === 0}
            onClick={() => props.onChange({ ...props.value, maxTokens: 'Auto' })}
            className="shrink-0 rounded-md border border-stone-300 px-2 text-xs text-stone-700 hover:bg-stone-100 aria-pressed:bg-amber-100 aria-pressed:text-amber-900 dark:border-stone-600 dark:text-stone-200 dark:hover:bg-stone-700 dark:aria-pressed:bg-amber-950 dark:aria-pressed:text-amber-200"
          >
            Auto
          </button>
        </div>
        <p id={`${maxId}-help`} className={help}>
          Longest reply. Auto: an eighth of the context (64 to 2,048 tokens); a reply cut short can be continued.
        </p>
      </div>
    </div>
  );
}
