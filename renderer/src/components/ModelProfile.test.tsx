import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { ModelProfile, ProfileIssue } from '../contract.ts';
import {
  autoOrNumber,
  clientIssues,
  contextSizeOf,
  issuesFromMessage,
  profileFormFrom,
  profileFromForm,
  ProfileFields,
  profilePatch,
  sameForm,
  visibleIssues,
  type ProfileForm,
} from './ModelProfile.tsx';

const defaults: ModelProfile = { kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 0, gpuLayers: 'auto', slots: 1, overflowPolicy: 'drop-oldest' };
const form = (extra: Partial<ProfileForm> = {}): ProfileForm => ({ ...profileFormFrom(defaults), ...extra });

describe('the profile form', () => {
  it('starts from the stored profile: 0 context and auto layers read "auto"', () => {
    expect(profileFormFrom(defaults)).toEqual({ kType: 'f16', vType: 'f16', flashAttention: 'auto', contextSize: 'auto', gpuLayers: 'auto', slots: '1', overflowPolicy: 'drop-oldest' });
    expect(profileFormFrom({ ...defaults, contextSize: 8192, gpuLayers: 20, slots: 3 })).toMatchObject({ contextSize: '8192', gpuLayers: '20', slots: '3' });
  });

  it('reads auto or a whole number', () => {
    expect(autoOrNumber('auto', 0, 10)).toBe('auto');
    expect(autoOrNumber(' AUTO ', 0, 10)).toBe('auto');
    expect(autoOrNumber('', 0, 10)).toBe('auto');
    expect(autoOrNumber('7', 0, 10)).toBe(7);
    expect(autoOrNumber('11', 0, 10)).toBeNull();
    expect(autoOrNumber('1.5', 0, 10)).toBeNull();
    expect(autoOrNumber('-1', 0, 10)).toBeNull();
    expect(contextSizeOf('auto')).toBe(0);
    expect(contextSizeOf('0')).toBe(0);
    expect(contextSizeOf('16384')).toBe(16384);
    expect(contextSizeOf('2000000')).toBeNull();
  });

  it('turns the fields into the whole profile', () => {
    expect(profileFromForm(form({ kType: 'q8_0', vType: 'q8_0', contextSize: '16384', gpuLayers: '0', slots: '2', overflowPolicy: 'stop' }))).toEqual({
      ok: true,
      value: { kType: 'q8_0', vType: 'q8_0', flashAttention: 'auto', contextSize: 16384, gpuLayers: 0, slots: 2, overflowPolicy: 'stop' },
    });
    expect(profileFromForm(form())).toEqual({ ok: true, value: defaults });
    expect(profilePatch({ ...defaults, kType: 'q8_0', vType: 'q8_0' }, defaults)).toEqual({ kType: 'q8_0', vType: 'q8_0' });
    expect(profilePatch(defaults, defaults)).toEqual({});
    expect(sameForm(form(), form())).toBe(true);
    expect(sameForm(form(), form({ slots: '2' }))).toBe(false);
  });

  it('checks what needs no engine: formats, quantized V without flash attention, StreamingLLM with a quantized K', () => {
    expect(clientIssues(form())).toEqual([]);
    expect(clientIssues(form({ contextSize: 'lots' }))).toEqual([{ field: 'contextSize', severity: 'error', message: expect.stringMatching(/^Context size must be auto or a whole number/) }]);
    expect(clientIssues(form({ gpuLayers: '-2' }))[0]?.field).toBe('gpuLayers');
    expect(clientIssues(form({ slots: '9' }))[0]?.field).toBe('slots');
    expect(clientIssues(form({ vType: 'q8_0', flashAttention: 'off' }))).toEqual([
      { field: 'vType', severity: 'error', message: 'A quantized V (q8_0) needs flash attention: set flash attention to auto or on, or V to f16.' },
    ]);
    // A quantized K with flash attention off is what llama.cpp allows.
    expect(clientIssues(form({ kType: 'q8_0', flashAttention: 'off' }))).toEqual([]);
    expect(clientIssues(form({ vType: 'q8_0', flashAttention: 'auto' }))).toEqual([]);
    const issues = clientIssues(form({ kType: 'q4_0', overflowPolicy: 'streaming' }));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ field: 'overflowPolicy', severity: 'error' });
    expect(issues[0]?.message).toBe('StreamingLLM window needs an F16 K: with a quantized K (q4_0) it would crash the engine. Choose Drop oldest messages, or set K to f16.');
    expect(clientIssues(form({ kType: 'auto', overflowPolicy: 'streaming' }))).toEqual([{ field: 'overflowPolicy', severity: 'warning', message: expect.stringMatching(/if auto picks a quantized K/) }]);
    expect(clientIssues(form({ kType: 'f16', vType: 'q4_0', overflowPolicy: 'streaming' }))).toEqual([]);
    // Dropping messages and stopping never touch the KV in place: any K type.
    for (const policy of ['drop-oldest', 'stop'] as const) {
      expect(clientIssues(form({ kType: 'q4_0', overflowPolicy: policy }))).toEqual([]);
      expect(clientIssues(form({ kType: 'auto', overflowPolicy: policy }))).toEqual([]);
    }
    expect(profileFromForm(form({ vType: 'q5_1', flashAttention: 'off' }))).toEqual({
      ok: false,
      error: { code: 'INVALID_INPUT', message: 'A quantized V (q5_1) needs flash attention: set flash attention to auto or on, or V to f16.' },
    });
    // A warning does not stop Apply.
    expect(profileFromForm(form({ kType: 'auto', overflowPolicy: 'streaming' })).ok).toBe(true);
  });

  it('finds the issues listed in a refused setProfile message, or none', () => {
    expect(issuesFromMessage('The profile has problems: vType: A quantized V needs flash attention.; contextSize: 65,536 tokens do not fit: the longest that fits is 12,288.')).toEqual([
      { field: 'vType', severity: 'error', message: 'A quantized V needs flash attention.' },
      { field: 'contextSize', severity: 'error', message: '65,536 tokens do not fit: the longest that fits is 12,288.' },
    ]);
    expect(issuesFromMessage('Not applied:\n- kType: q4_0 needs a head size that is a multiple of 32\n- overflowPolicy: streaming needs an F16 K')).toEqual([
      { field: 'kType', severity: 'error', message: 'q4_0 needs a head size that is a multiple of 32' },
      { field: 'overflowPolicy', severity: 'error', message: 'streaming needs an F16 K' },
    ]);
    // As the host words it (model-profiles.ts describeIssues).
    expect(issuesFromMessage("The model's settings were not saved: vType: A quantized V needs flash attention.; overflowPolicy: Streaming needs an F16 K.")).toEqual([
      { field: 'vType', severity: 'error', message: 'A quantized V needs flash attention.' },
      { field: 'overflowPolicy', severity: 'error', message: 'Streaming needs an F16 K.' },
    ]);
    expect(issuesFromMessage("The model's settings were not saved: contextSize: 9,999,999 tokens do not fit; at most 12,288 fit.")).toEqual([
      { field: 'contextSize', severity: 'error', message: '9,999,999 tokens do not fit; at most 12,288 fit.' },
    ]);
    expect(issuesFromMessage('Invalid input for models.setProfile: profile.contextSize: Too big: expected number to be <=1048576.')).toEqual([
      { field: 'contextSize', severity: 'error', message: 'Too big: expected number to be <=1048576.' },
    ]);
    expect(issuesFromMessage('warning gpuLayers: more layers than the model has')).toEqual([{ field: 'gpuLayers', severity: 'warning', message: 'more layers than the model has' }]);
    expect(issuesFromMessage('The profile is not valid.')).toEqual([]);
    // Prose that happens to contain a field's words is not a field.
    expect(issuesFromMessage('A quantized V needs flash attention: turn it on.')).toEqual([]);
  });

  it("shows the host's issues while the fields they depend on hold the checked values, then the client's", () => {
    const checked = form({ contextSize: '65536' });
    const host: { issues: ProfileIssue[]; checked: ProfileForm } = {
      issues: [
        { field: 'contextSize', severity: 'error', message: 'Does not fit.' },
        { field: 'model', severity: 'warning', message: 'Unknown architecture.' },
      ],
      checked,
    };
    expect(visibleIssues(checked, host)).toEqual(host.issues);
    // The overflow policy has nothing to do with the fit: the message stays.
    expect(visibleIssues({ ...checked, overflowPolicy: 'stop' }, host)).toEqual(host.issues);
    // A smaller context, or another pair, may fit: the planner speaks for it until Apply.
    expect(visibleIssues({ ...checked, contextSize: '4096' }, host)).toEqual([host.issues[1]]);
    expect(visibleIssues({ ...checked, kType: 'q8_0' }, host)).toEqual([host.issues[1]]);
    const both = visibleIssues({ ...checked, vType: 'q8_0', flashAttention: 'off' }, host);
    expect(both.map((i) => i.field)).toEqual(['model', 'vType']);
    // The same message from both sides shows once.
    const same = { field: 'vType' as const, severity: 'error' as const, message: 'A quantized V (q8_0) needs flash attention: set flash attention to auto or on, or V to f16.' };
    const offForm = form({ vType: 'q8_0', flashAttention: 'off' });
    expect(visibleIssues(offForm, { issues: [same], checked: offForm })).toEqual([same]);
    expect(visibleIssues(form(), null)).toEqual([]);
  });
});

function render(value: ProfileForm, issues: ProfileIssue[] = [], disabled = false): string {
  return renderToStaticMarkup(<ProfileFields value={value} onChange={() => undefined} issues={issues} disabled={disabled} />);
}

/** The opening tag of the element with this id (attribute order is React's business). */
function tag(html: string, id: string): string {
  const found = new RegExp(`<[a-z]+ [^>]*id="${id}"[^>]*>`).exec(html);
  if (!found) throw new Error(`no element #${id}`);
  return found[0];
}

describe('ProfileFields', () => {
  it('labels every control: K and V offer auto and every type, flash attention auto/on/off', () => {
    const html = render(form({ kType: 'q8_0', vType: 'auto' }));
    expect(html).toContain('<label for="model-profile-kType" class="mb-1 block text-sm font-medium">K type</label>');
    expect(html).toContain('<label for="model-profile-vType" class="mb-1 block text-sm font-medium">V type</label>');
    for (const t of ['auto', 'f16', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0', 'iq4_nl']) expect(html).toContain(`<option value="${t}"`);
    expect(html).toMatch(/<select id="model-profile-kType"[^>]*>.*?<option value="q8_0" selected="">q8_0<\/option>/);
    expect(html).toMatch(/<select id="model-profile-vType"[^>]*><option value="auto" selected="">auto<\/option>/);
    expect(html).toContain('<label for="model-profile-flashAttention" class="mb-1 block text-sm font-medium">Flash attention</label>');
    expect(html).toMatch(/<select id="model-profile-flashAttention"[^>]*><option value="auto" selected="">auto<\/option><option value="on">on<\/option><option value="off">off<\/option>/);
    expect(html).toContain('>Context size</label>');
    expect(tag(html, 'model-profile-contextSize')).toContain('value="auto"');
    expect(html).toContain('>GPU layers</label>');
    expect(html).toContain('>Slots</label>');
    for (let n = 1; n <= 8; n++) expect(html).toContain(`<option value="${n}"`);
    expect(tag(html, 'model-profile-kType')).toContain('aria-describedby="model-profile-kType-help"');
    expect(html).not.toContain('aria-invalid');
  });

  it('offers the three overflow policies as labelled radios with their explanations; only StreamingLLM needs an F16 K', () => {
    const html = render(form({ overflowPolicy: 'stop' }));
    expect(html).toContain('<legend class="mb-1 block text-sm font-medium">Overflow policy</legend>');
    const radios = [...html.matchAll(/<input id="model-profile-overflow-([a-z-]+)" type="radio"/g)].map((m) => m[1]);
    expect(radios).toEqual(['drop-oldest', 'streaming', 'stop']);
    for (const [policy, label] of [['drop-oldest', 'Drop oldest messages'], ['streaming', 'StreamingLLM window'], ['stop', 'Stop and ask']]) {
      expect(tag(html, `model-profile-overflow-${policy}`)).toContain(`aria-describedby="model-profile-overflow-${policy}-help"`);
      expect(html).toContain(`<label for="model-profile-overflow-${policy}" class="font-medium">${label}</label>`);
    }
    expect(tag(html, 'model-profile-overflow-stop')).toContain('checked=""');
    expect(tag(html, 'model-profile-overflow-drop-oldest')).not.toContain('checked');
    expect(html).toMatch(/id="model-profile-overflow-drop-oldest-help"[^>]*>The default\.[^<]*Safe with every K type\./);
    expect(html).toMatch(/id="model-profile-overflow-streaming-help"[^>]*>[^<]*Needs an F16 K\./);
    expect(html).toMatch(/id="model-profile-overflow-stop-help"[^>]*>[^<]*drop the oldest messages, raise the context, or start a new chat\./);
    expect(html).not.toMatch(/Refuse|Rebuild|Shift/);
  });

  it('puts an issue beside its field, marks errors invalid, and words warnings as such', () => {
    const value = form({ vType: 'q8_0', flashAttention: 'off', kType: 'auto', overflowPolicy: 'streaming' });
    const html = render(value, visibleIssues(value, null));
    expect(tag(html, 'model-profile-vType')).toContain('aria-invalid="true"');
    expect(tag(html, 'model-profile-vType')).toContain('aria-describedby="model-profile-vType-issue-0 model-profile-vType-help"');
    expect(html).toContain('<p id="model-profile-vType-issue-0" class="mt-1 text-xs text-red-700 dark:text-red-400">A quantized V (q8_0) needs flash attention');
    // The warning describes the radio group without making it invalid.
    expect(tag(html, 'model-profile-overflow-help')).toBeDefined();
    expect(html).toMatch(/<fieldset aria-describedby="model-profile-overflowPolicy-issue-0 model-profile-overflow-help">/);
    expect(html).toContain('<p id="model-profile-overflowPolicy-issue-0" class="mt-1 text-xs text-amber-800 dark:text-amber-300">Warning: StreamingLLM window needs an F16 K');
    expect(tag(html, 'model-profile-kType')).not.toContain('aria-invalid');
  });

  it('shows host issues on fields the client cannot check, and a slot count from outside 1..8', () => {
    const value = form({ contextSize: '65536', slots: '12' });
    const html = render(value, [{ field: 'contextSize', severity: 'error', message: 'Does not fit: at most 12,288 tokens.' }, ...clientIssues(value)]);
    expect(tag(html, 'model-profile-contextSize')).toContain('aria-invalid="true"');
    expect(html).toContain('>Does not fit: at most 12,288 tokens.</p>');
    expect(html).toContain('<option value="12" selected="">12</option>');
    expect(tag(html, 'model-profile-slots')).toContain('aria-invalid="true"');
  });

  it('disables every control while applying', () => {
    const html = render(form(), [], true);
    for (const id of ['kType', 'vType', 'flashAttention', 'contextSize', 'gpuLayers', 'slots', 'overflow-drop-oldest', 'overflow-streaming', 'overflow-stop']) expect(tag(html, `model-profile-${id}`)).toContain('disabled=""');
  });
});
