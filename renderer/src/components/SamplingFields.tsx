import type { HearthError, Result, Sampling } from '../contract.ts';
import { inputStyles } from './ui.tsx';

/** The fields as typed (strings), so a half-typed number is not fought by the input. */
export interface SamplingForm {
  readonly temperature: string;
  readonly topP: string;
  readonly maxTokens: string;
}

/** Checks the ranges the contract enforces, so the user sees the problem before a round trip. */
export function samplingFromForm(form: SamplingForm): Result<Sampling> {
  const invalid = (message: string): Result<Sampling> => ({ ok: false, error: { code: 'INVALID_INPUT', message } satisfies HearthError });
  const temperature = Number(form.temperature);
  const topP = Number(form.topP);
  const maxTokens = Number(form.maxTokens);
  if (form.temperature.trim() === '' || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
    return invalid('Temperature must be a number from 0 to 2.');
  }
  if (form.topP.trim() === '' || !Number.isFinite(topP) || topP <= 0 || topP > 1) return invalid('Top-p must be above 0 and at most 1.');
  if (form.maxTokens.trim() === '' || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 32_768) {
    return invalid('Max tokens must be a whole number from 1 to 32768.');
  }
  return { ok: true, value: { temperature, topP, maxTokens } };
}

export function SamplingFields(props: { idPrefix: string; value: SamplingForm; onChange: (value: SamplingForm) => void }) {
  const field = (key: keyof SamplingForm, label: string, attrs: { min: number; max: number; step: number }, help: string) => {
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
        <p id={`${id}-help`} className="mt-0.5 text-xs text-stone-500 dark:text-stone-400">
          {help}
        </p>
      </div>
    );
  };
  return (
    <div className="grid grid-cols-3 gap-3">
      {field('temperature', 'Temperature', { min: 0, max: 2, step: 0.05 }, '0 = always the likeliest word.')}
      {field('topP', 'Top-p', { min: 0.01, max: 1, step: 0.01 }, '1 = no cut-off.')}
      {field('maxTokens', 'Max tokens', { min: 1, max: 32768, step: 1 }, 'Longest reply.')}
    </div>
  );
}
