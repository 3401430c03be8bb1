/**
 * A model's own settings: the K and V cache types, flash attention, context size, GPU layers, slots
 * and the overflow policy, with validation messages beside their fields. This file holds the form,
 * its checks and the fields; ModelSection.tsx wires them to the host.
 */
import type { HearthError, KvCacheType, ModelProfile, OverflowPolicy, ProfileIssue, Result } from '../contract.ts';
import { isQuantized, kvTypes, maxContext, needsF16K, overflowPolicyList, overflowPolicyText } from '../lib/kv.ts';
import { inputStyles } from './ui.tsx';
import type { ReactNode } from 'react';

/** The fields as the user edits them; numbers stay strings so a half-typed one is not fought. */
export interface ProfileForm {
  readonly kType: KvCacheType | 'auto';
  readonly vType: KvCacheType | 'auto';
  readonly flashAttention: ModelProfile['flashAttention'];
  /** "auto" or tokens per slot. */
  readonly contextSize: string;
  /** "auto" or a layer count. */
  readonly gpuLayers: string;
  readonly slots: string;
  readonly overflowPolicy: OverflowPolicy;
}

export type ProfileField = keyof ModelProfile;

/** The contract's ceilings (api.ts modelProfilePatchSchema). */
const maxGpuLayers = 4096;
export const maxProfileSlots = 8;

export function profileFormFrom(profile: ModelProfile): ProfileForm {
  return {
    kType: profile.kType,
    vType: profile.vType,
    flashAttention: profile.flashAttention,
    contextSize: profile.contextSize === 0 ? 'auto' : String(profile.contextSize),
    gpuLayers: String(profile.gpuLayers),
    slots: String(profile.slots),
    overflowPolicy: profile.overflowPolicy,
  };
}

/** "auto" (or empty) → 'auto'; a whole number in range → it; anything else → null. */
export function autoOrNumber(text: string, min: number, max: number): number | 'auto' | null {
  const t = text.trim().toLowerCase();
  if (t === '' || t === 'auto') return 'auto';
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return n >= min && n <= max ? n : null;
}

/** The context size as the contract has it (0 = automatic), or null when the text is not one. */
export function contextSizeOf(text: string): number | null {
  const value = autoOrNumber(text, 0, maxContext);
  return value === 'auto' ? 0 : value;
}

export function slotsOf(text: string): number | null {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= maxProfileSlots ? n : null;
}

/**
 * The checks that need no engine, shown as the user types: the field formats, a quantized V with
 * flash attention off (llama.cpp refuses to create that context:
 * docs/decisions/flash-attention-auto.md), and the overflow policy that erases the middle of the
 * cache with a quantized K (docs/decisions/quantized-k-shift-crash.md).
 */
export function clientIssues(form: ProfileForm): ProfileIssue[] {
  const issues: ProfileIssue[] = [];
  if (contextSizeOf(form.contextSize) === null) {
    issues.push({ field: 'contextSize', severity: 'error', message: `Context size must be auto or a whole number of tokens up to ${maxContext.toLocaleString('en-US')}.` });
  }
  if (autoOrNumber(form.gpuLayers, 0, maxGpuLayers) === null) {
    issues.push({ field: 'gpuLayers', severity: 'error', message: `GPU layers must be auto or a whole number from 0 to ${maxGpuLayers}.` });
  }
  if (slotsOf(form.slots) === null) {
    issues.push({ field: 'slots', severity: 'error', message: `Slots must be a whole number from 1 to ${maxProfileSlots}.` });
  }
  if (isQuantized(form.vType) && form.flashAttention === 'off') {
    issues.push({ field: 'vType', severity: 'error', message: `A quantized V (${form.vType}) needs flash attention: set flash attention to auto or on, or V to f16.` });
  }
  if (needsF16K(form.overflowPolicy)) {
    const label = overflowPolicyText[form.overflowPolicy].label;
    if (isQuantized(form.kType)) {
      issues.push({
        field: 'overflowPolicy',
        severity: 'error',
        message: `${label} needs an F16 K: with a quantized K (${form.kType}) it would crash the engine. Choose ${overflowPolicyText['drop-oldest'].label}, or set K to f16.`,
      });
    } else if (form.kType === 'auto') {
      issues.push({ field: 'overflowPolicy', severity: 'warning', message: `${label} needs an F16 K: if auto picks a quantized K, this profile is refused.` });
    }
  }
  return issues;
}

/** The profile the fields stand for, or the first problem. */
export function profileFromForm(form: ProfileForm): Result<ModelProfile> {
  const first = clientIssues(form).find((i) => i.severity === 'error');
  if (first) return { ok: false, error: { code: 'INVALID_INPUT', message: first.message } satisfies HearthError };
  const gpuLayers = autoOrNumber(form.gpuLayers, 0, maxGpuLayers);
  return {
    ok: true,
    value: {
      kType: form.kType,
      vType: form.vType,
      flashAttention: form.flashAttention,
      contextSize: contextSizeOf(form.contextSize) ?? 0,
      gpuLayers: gpuLayers ?? 'auto',
      slots: slotsOf(form.slots) ?? 1,
      overflowPolicy: form.overflowPolicy,
    },
  };
}

/**
 * Only the fields that differ from the stored profile: a field left alone keeps following its
 * default (a model without its own context size or slots follows Settings), as the host merges
 * the patch into what it stores.
 */
export function profilePatch(profile: ModelProfile, stored: ModelProfile): Partial<ModelProfile> {
  const patch: Partial<Record<keyof ModelProfile, unknown>> = {};
  for (const key of Object.keys(profile) as (keyof ModelProfile)[]) if (profile[key] !== stored[key]) patch[key] = profile[key];
  return patch as Partial<ModelProfile>;
}

export function sameForm(a: ProfileForm, b: ProfileForm): boolean {
  return (Object.keys(a) as (keyof ProfileForm)[]).every((key) => a[key] === b[key]);
}

const profileFields: readonly ProfileIssue['field'][] = ['kType', 'vType', 'flashAttention', 'contextSize', 'gpuLayers', 'slots', 'overflowPolicy', 'model'];

/**
 * The issues in a refused `models.setProfile` message, which lists them as `field: message`
 * joined by "; " (engine/host/model-profiles.ts describeIssues), or as the contract's schema
 * check words it (`profile.contextSize: Too big…`): each runs to the next field name or line break. Empty when the message names no field:
 * the caller then shows the whole message above the form.
 */
export function issuesFromMessage(message: string): ProfileIssue[] {
  const names = profileFields.join('|');
  const marker = new RegExp(`(?:^|[\\s;(\\[•.-])(?:(error|warning)\\s+(?:on\\s+)?)?\\(?(${names})\\)?\\s*:\\s*`, 'g');
  const found = [...message.matchAll(marker)];
  return found.map((m, i) => {
    const start = (m.index ?? 0) + m[0].length;
    const end = found[i + 1]?.index ?? message.length;
    // The host ends its list with a period after the last message's own.
    const text = (message.slice(start, end).split('\n')[0] ?? '').trim().replace(/[;,]$/, '').replace(/\.\.$/, '.').trim();
    const field = m[2] as ProfileIssue['field'];
    return { field, severity: m[1] === 'warning' ? 'warning' : 'error', message: text };
  });
}

/**
 * Which fields a host issue depends on: it is shown while those fields still hold the values the
 * host checked, and goes away once the user changes one (the planner and the client checks
 * speak for the new values until the next Apply).
 */
const dependsOn: Readonly<Record<ProfileIssue['field'], readonly (keyof ProfileForm)[]>> = {
  kType: ['kType', 'vType', 'flashAttention'],
  vType: ['kType', 'vType', 'flashAttention'],
  flashAttention: ['kType', 'vType', 'flashAttention'],
  contextSize: ['kType', 'vType', 'flashAttention', 'contextSize', 'gpuLayers', 'slots'],
  gpuLayers: ['kType', 'vType', 'flashAttention', 'contextSize', 'gpuLayers', 'slots'],
  slots: ['kType', 'vType', 'contextSize', 'slots'],
  overflowPolicy: ['kType', 'overflowPolicy'],
  model: [],
};

/** The host's issues (for the values it checked) that still hold, then the client's, without repeats. */
export function visibleIssues(form: ProfileForm, host: { issues: readonly ProfileIssue[]; checked: ProfileForm } | null): ProfileIssue[] {
  const fromHost = host ? host.issues.filter((issue) => dependsOn[issue.field].every((key) => form[key] === host.checked[key])) : [];
  const shown = [...fromHost];
  for (const issue of clientIssues(form)) {
    if (!shown.some((s) => s.field === issue.field && s.message === issue.message)) shown.push(issue);
  }
  return shown;
}

export interface ProfileFieldsProps {
  readonly value: ProfileForm;
  readonly onChange: (value: ProfileForm) => void;
  /** What to show beside the fields (`visibleIssues`); `model` issues are the caller's to show. */
  readonly issues: readonly ProfileIssue[];
  readonly disabled?: boolean;
}

const help = 'mt-0.5 text-xs text-stone-500 dark:text-stone-400';
const issueClass = { error: 'mt-1 text-xs text-red-700 dark:text-red-400', warning: 'mt-1 text-xs text-amber-800 dark:text-amber-300' } as const;
const label = 'mb-1 block text-sm font-medium';

const id = (field: string) => `model-profile-${field}`;

/** The ids of a field's issue lines, for aria-describedby. */
function issueIds(issues: readonly ProfileIssue[], field: ProfileField): string[] {
  return issues.filter((i) => i.field === field).map((_, n) => `${id(field)}-issue-${n}`);
}

function FieldIssues({ issues, field }: { issues: readonly ProfileIssue[]; field: ProfileField }) {
  const mine = issues.filter((i) => i.field === field);
  return mine.map((issue, n) => (
    <p key={n} id={`${id(field)}-issue-${n}`} className={issueClass[issue.severity]}>
      {issue.severity === 'warning' ? `Warning: ${issue.message}` : issue.message}
    </p>
  ));
}

/** aria-invalid and aria-describedby for a field. */
function described(issues: readonly ProfileIssue[], field: ProfileField, ...extra: string[]) {
  const ids = [...issueIds(issues, field), ...extra].join(' ');
  const invalid = issues.some((i) => i.field === field && i.severity === 'error');
  return { 'aria-invalid': invalid ? true : undefined, 'aria-describedby': ids || undefined } as const;
}

/** A text field that takes "auto" or a whole number, with its issues and help line. */
function AutoNumberField(props: {
  readonly field: 'contextSize' | 'gpuLayers';
  readonly title: string;
  readonly value: string;
  readonly issues: readonly ProfileIssue[];
  readonly disabled: boolean | undefined;
  readonly onChange: (value: string) => void;
  readonly children: ReactNode;
}) {
  const { field, issues } = props;
  return (
    <div>
      <label htmlFor={id(field)} className={label}>
        {props.title}
      </label>
      <input
        id={id(field)}
        type="text"
        inputMode="numeric"
        spellCheck={false}
        autoComplete="off"
        value={props.value}
        disabled={props.disabled}
        onChange={(e) => props.onChange(e.target.value)}
        {...described(issues, field, id(`${field}-help`))}
        className={inputStyles}
      />
      <FieldIssues issues={issues} field={field} />
      <p id={id(`${field}-help`)} className={help}>
        {props.children}
      </p>
    </div>
  );
}

export function ProfileFields(props: ProfileFieldsProps) {
  const { value, onChange, issues, disabled } = props;
  const set = (patch: Partial<ProfileForm>) => onChange({ ...value, ...patch });
  const typeOptions = (
    <>
      <option value="auto">auto</option>
      {kvTypes.map((t) => (
        <option key={t} value={t}>
          {t}
        </option>
      ))}
    </>
  );

  return (
    <div className="space-y-3">
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <div>
          <label htmlFor={id('kType')} className={label}>
            K type
          </label>
          <select
            id={id('kType')}
            value={value.kType}
            disabled={disabled}
            onChange={(e) => set({ kType: e.target.value as ProfileForm['kType'] })}
            {...described(issues, 'kType', id('kType-help'))}
            className={inputStyles}
          >
            {typeOptions}
          </select>
          <FieldIssues issues={issues} field="kType" />
          <p id={id('kType-help')} className={help}>
            Keys are the more sensitive half: quantize V first.
          </p>
        </div>
        <div>
          <label htmlFor={id('vType')} className={label}>
            V type
          </label>
          <select
            id={id('vType')}
            value={value.vType}
            disabled={disabled}
            onChange={(e) => set({ vType: e.target.value as ProfileForm['vType'] })}
            {...described(issues, 'vType', id('vType-help'))}
            className={inputStyles}
          >
            {typeOptions}
          </select>
          <FieldIssues issues={issues} field="vType" />
          <p id={id('vType-help')} className={help}>
            A quantized V needs flash attention.
          </p>
        </div>
        <div>
          <label htmlFor={id('flashAttention')} className={label}>
            Flash attention
          </label>
          <select
            id={id('flashAttention')}
            value={value.flashAttention}
            disabled={disabled}
            onChange={(e) => set({ flashAttention: e.target.value as ProfileForm['flashAttention'] })}
            {...described(issues, 'flashAttention', id('flashAttention-help'))}
            className={inputStyles}
          >
            <option value="auto">auto</option>
            <option value="on">on</option>
            <option value="off">off</option>
          </select>
          <FieldIssues issues={issues} field="flashAttention" />
          <p id={id('flashAttention-help')} className={help}>
            Auto turns it on when V is quantized.
          </p>
        </div>
      </div>

      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <AutoNumberField field="contextSize" title="Context size" value={value.contextSize} issues={issues} disabled={disabled} onChange={(v) => set({ contextSize: v })}>
          Tokens per slot, or auto (the trained length, at most 8,192).
        </AutoNumberField>
        <AutoNumberField field="gpuLayers" title="GPU layers" value={value.gpuLayers} issues={issues} disabled={disabled} onChange={(v) => set({ gpuLayers: v })}>
          Layers on the GPU, or auto (as many as fit). 0 runs on the CPU.
        </AutoNumberField>
        <div>
          <label htmlFor={id('slots')} className={label}>
            Slots
          </label>
          <select
            id={id('slots')}
            value={value.slots}
            disabled={disabled}
            onChange={(e) => set({ slots: e.target.value })}
            {...described(issues, 'slots', id('slots-help'))}
            className={inputStyles}
          >
            {/* A count stored outside 1..8 (through the API) stays visible, and its issue says why. */}
            {slotsOf(value.slots) === null && <option value={value.slots}>{value.slots}</option>}
            {Array.from({ length: maxProfileSlots }, (_, i) => (
              <option key={i + 1} value={String(i + 1)}>
                {i + 1}
              </option>
            ))}
          </select>
          <FieldIssues issues={issues} field="slots" />
          <p id={id('slots-help')} className={help}>
            Chats this model keeps in memory at once; each takes a context of KV.
          </p>
        </div>
      </div>

      <fieldset {...described(issues, 'overflowPolicy', id('overflow-help'))}>
        <legend className={label}>Overflow policy</legend>
        <p id={id('overflow-help')} className={`${help} mb-1.5`}>
          What a chat does when its history and the room for a reply no longer fit the context. A chat can choose its own in Chat settings.
        </p>
        <div className="space-y-1.5">
          {overflowPolicyList.map((policy) => (
            <PolicyRadio
              key={policy}
              id={id(`overflow-${policy}`)}
              name="model-profile-overflow"
              value={policy}
              label={overflowPolicyText[policy].label}
              help={overflowPolicyText[policy].description}
              checked={value.overflowPolicy === policy}
              disabled={disabled}
              onChange={() => set({ overflowPolicy: policy })}
            />
          ))}
        </div>
        <FieldIssues issues={issues} field="overflowPolicy" />
      </fieldset>
    </div>
  );
}

/**
 * One overflow policy's radio with its label and line, for the model's profile and a chat's
 * settings. `dimmed` greys a choice that cannot be taken at all, not one disabled for a moment.
 */
export function PolicyRadio(props: {
  id: string;
  name: string;
  value: string;
  label: string;
  help: string;
  checked: boolean;
  disabled: boolean | undefined;
  dimmed?: boolean;
  onChange: () => void;
}) {
  return (
    <div className="flex items-start gap-2 text-sm">
      <input
        id={props.id}
        type="radio"
        name={props.name}
        value={props.value}
        checked={props.checked}
        disabled={props.disabled}
        onChange={props.onChange}
        aria-describedby={`${props.id}-help`}
        className="mt-1 accent-amber-600"
      />
      <div>
        <label htmlFor={props.id} className={props.dimmed ? 'font-medium text-stone-400 dark:text-stone-500' : 'font-medium'}>
          {props.label}
        </label>
        <p id={`${props.id}-help`} className={help}>
          {props.help}
        </p>
      </div>
    </div>
  );
}
