import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { messageStats } from '../../../test/support/renderer/fixtures.ts';
import { chatPolicyChoices, contextMeter } from '../lib/context-view.ts';
import { OverflowPolicyChoices } from './ChatSettingsDialog.tsx';
import { ContextDivider } from './ChatView.tsx';
import { ContinueOfferView, StopAndAskView, type StopAndAskViewProps } from './ContextActions.tsx';
import { ContextMeterView } from './ContextMeter.tsx';
import { StatsReadout } from './MessageItem.tsx';
import { maxTokensOf, samplingFormFrom, samplingFromForm, SamplingFields } from './SamplingFields.tsx';

// Server rendering reads a store's initial state only: what the store decides is tested in
// lib/context-view.test.ts and state/context-actions.test.ts; here, what each part renders.

/** The opening tag of the element with this attribute (attribute order is React's business). */
function tagWith(html: string, attribute: string): string {
  const found = new RegExp(`<[a-z]+ [^>]*${attribute}[^>]*>`).exec(html);
  if (!found) throw new Error(`no element with ${attribute}`);
  return found[0];
}

const buttons = (html: string) => [...html.matchAll(/<button [^>]*>([^<]*)<\/button>/g)].map((m) => m[1]);

describe('the divider', () => {
  it('is a separator named and reading "Earlier messages are outside the model\'s view"', () => {
    const html = renderToStaticMarkup(<ContextDivider />);
    const tag = tagWith(html, 'role="separator"');
    expect(tag).toContain('aria-label="Earlier messages are outside the model&#x27;s view"');
    expect(tag).toContain('data-testid="context-divider"');
    expect(html).toContain('>Earlier messages are outside the model&#x27;s view</span>');
  });
});

describe('the context meter', () => {
  it("is a meter of the view's tokens against the context, with the disk figure", () => {
    const meter = contextMeter({
      view: { policy: 'drop-oldest', contextSize: 1024, tokens: 812, droppedMessages: 3, droppedNow: 0 },
      cache: { chatId: 'c1', where: 'disk', slot: null, tokensInMemory: 0, tokensOnDisk: 768, bytesOnDisk: 1 },
      model: null,
      hasReplies: true,
    });
    if (!meter) throw new Error('no meter');
    const html = renderToStaticMarkup(<ContextMeterView meter={meter} />);
    const tag = tagWith(html, 'role="meter"');
    expect(tag).toContain('data-testid="context-meter"');
    expect(tag).toContain('aria-valuemin="0"');
    expect(tag).toContain('aria-valuemax="1024"');
    expect(tag).toContain('aria-valuenow="812"');
    expect(html).toContain('<span>812 / 1,024 tokens in view · 768 on disk</span>');
    // The bar: the context, the view's part, and the stored part of it (out of 1000).
    expect([...html.matchAll(/<rect [^>]*width="([\d.]+)"/g)].map((m) => Math.round(Number(m[1])))).toEqual([1000, 793, 750]);
  });

  it('never reads past the context', () => {
    const html = renderToStaticMarkup(<ContextMeterView meter={{ tokens: 1100, contextSize: 1024, onDisk: 5000, text: 'x' }} />);
    expect(tagWith(html, 'role="meter"')).toContain('aria-valuenow="1024"');
    expect([...html.matchAll(/<rect [^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]))).toEqual([1000, 1000, 1000]);
  });
});

describe("a reply's readout", () => {
  it('says what a reply that moved the view dropped and read again', () => {
    const html = renderToStaticMarkup(
      <StatsReadout stats={messageStats({ tokensPrefilled: 1840, tokensGenerated: 0, ttftMs: 35, view: { policy: 'drop-oldest', contextSize: 4096, tokens: 2100, droppedMessages: 12, droppedNow: 12, firstMessageId: 'u7' } })} />,
    );
    expect(html).toMatch(/<summary[^>]*>dropped 12 older messages · re-read 1,840 tokens · first token 35 ms<\/summary>/);
    expect(html).toContain('<dt>In view</dt><dd class="tabular-nums text-stone-700 dark:text-stone-200">2,100 / 4,096 tokens</dd>');
  });
});

describe('Continue', () => {
  it('is a button beside why the reply stopped', () => {
    const html = renderToStaticMarkup(<ContinueOfferView text="Stopped at the end of the context" pending={false} onContinue={() => undefined} />);
    expect(html).toContain('<span>Stopped at the end of the context</span>');
    const button = tagWith(html, 'data-testid="continue-reply"');
    expect(button).toMatch(/^<button type="button"/);
    expect(button).not.toContain('disabled=""');
    expect(buttons(html)).toEqual(['Continue']);
  });

  it('stands alone after a Stop, and is disabled while the call runs', () => {
    const html = renderToStaticMarkup(<ContinueOfferView text="" pending onContinue={() => undefined} />);
    expect(html).not.toContain('<span>');
    expect(tagWith(html, 'data-testid="continue-reply"')).toContain('disabled=""');
  });
});

describe('stop and ask', () => {
  const props = (extra: Partial<StopAndAskViewProps> = {}): StopAndAskViewProps => ({
    raiseTo: null,
    pending: null,
    disabled: false,
    onDropOldest: () => undefined,
    onRaise: () => undefined,
    onNewChat: () => undefined,
    ...extra,
  });

  it('offers to go on without the oldest messages, a larger context when it fits, and a new chat', () => {
    const html = renderToStaticMarkup(<StopAndAskView {...props({ raiseTo: 8192 })} />);
    expect(buttons(html)).toEqual(['Continue without the oldest messages', 'Raise the context to 8,192 tokens', 'New chat']);
    for (const id of ['overflow-drop-oldest', 'overflow-raise-context', 'overflow-new-chat']) {
      const tag = tagWith(html, `data-testid="${id}"`);
      expect(tag).toMatch(/^<button type="button"/);
      expect(tag).not.toContain('disabled=""');
    }
    expect(html).not.toContain('role="status"');
  });

  it('leaves the larger context out when the planner did not say it fits', () => {
    const html = renderToStaticMarkup(<StopAndAskView {...props()} />);
    expect(buttons(html)).toEqual(['Continue without the oldest messages', 'New chat']);
    expect(html).not.toContain('overflow-raise-context');
  });

  it('disables every choice while one runs, and says the model is reloading', () => {
    const html = renderToStaticMarkup(<StopAndAskView {...props({ raiseTo: 8192, pending: 'raise', disabled: true })} />);
    expect(html.match(/<button [^>]*disabled=""/g)).toHaveLength(3);
    expect(html).toContain('<p role="status" class="text-xs">Reloading the model with 8,192 tokens of context…</p>');
  });
});

describe("the chat's overflow policy", () => {
  it('offers the model default, named, and each policy; the saved one is checked', () => {
    const html = renderToStaticMarkup(<OverflowPolicyChoices choices={chatPolicyChoices('drop-oldest', null)} value="stop" onChange={() => undefined} />);
    const labels = [...html.matchAll(/<label for="(chat-overflow-[a-z-]+)"[^>]*>([^<]*)<\/label>/g)].map((m) => [m[1], m[2]]);
    expect(labels).toEqual([
      ['chat-overflow-model', 'Model default (Drop oldest messages)'],
      ['chat-overflow-drop-oldest', 'Drop oldest messages'],
      ['chat-overflow-streaming', 'StreamingLLM window'],
      ['chat-overflow-stop', 'Stop and ask'],
    ]);
    expect(tagWith(html, 'id="chat-overflow-stop"')).toContain('checked=""');
    expect(tagWith(html, 'id="chat-overflow-model"')).not.toContain('checked');
    expect(html).not.toContain('disabled=""');
  });

  it('checks the model default for a chat without its own policy', () => {
    const html = renderToStaticMarkup(<OverflowPolicyChoices choices={chatPolicyChoices(null, null)} value={null} onChange={() => undefined} />);
    expect(tagWith(html, 'id="chat-overflow-model"')).toContain('checked=""');
  });

  it('disables StreamingLLM with the reason when the K cache is quantized', () => {
    const model = { path: '/m', name: 'm', sizeBytes: 1, architecture: 'llama', trainedContextLength: 0, contextSize: 4096, layerCount: 1, kvType: { k: 'q8_0', v: 'q8_0' } } as const;
    const html = renderToStaticMarkup(<OverflowPolicyChoices choices={chatPolicyChoices('drop-oldest', model)} value={null} onChange={() => undefined} />);
    expect(tagWith(html, 'id="chat-overflow-streaming"')).toContain('disabled=""');
    expect(html).toMatch(/id="chat-overflow-streaming-help"[^>]*>Not with this model&#x27;s quantized K \(q8_0\): it needs an F16 K\.</);
    expect(tagWith(html, 'id="chat-overflow-stop"')).not.toContain('disabled=""');
  });
});

describe('max tokens', () => {
  it('reads Auto as 0 and a count as itself', () => {
    expect(samplingFormFrom({ temperature: 0.7, topP: 0.95, maxTokens: 0 }).maxTokens).toBe('Auto');
    expect(samplingFormFrom({ temperature: 0.7, topP: 0.95, maxTokens: 512 }).maxTokens).toBe('512');
    expect(maxTokensOf('Auto')).toBe(0);
    expect(maxTokensOf(' auto ')).toBe(0);
    expect(maxTokensOf('0')).toBe(0);
    expect(maxTokensOf('')).toBe(0);
    expect(maxTokensOf('2048')).toBe(2048);
    expect(maxTokensOf('32769')).toBeNull();
    expect(maxTokensOf('12.5')).toBeNull();
    expect(maxTokensOf('lots')).toBeNull();
    expect(samplingFromForm({ temperature: '0.7', topP: '0.95', maxTokens: 'Auto' })).toEqual({ ok: true, value: { temperature: 0.7, topP: 0.95, maxTokens: 0 } });
    expect(samplingFromForm({ temperature: '0.7', topP: '0.95', maxTokens: '300' })).toEqual({ ok: true, value: { temperature: 0.7, topP: 0.95, maxTokens: 300 } });
    expect(samplingFromForm({ temperature: '0.7', topP: '0.95', maxTokens: '-3' })).toEqual({
      ok: false,
      error: { code: 'INVALID_INPUT', message: 'Max tokens must be Auto or a whole number from 1 to 32768.' },
    });
  });

  it('is a text field that shows Auto, with an Auto button and a line on what Auto means', () => {
    const html = renderToStaticMarkup(<SamplingFields idPrefix="chat" value={{ temperature: '0.7', topP: '0.95', maxTokens: 'Auto' }} onChange={() => undefined} />);
    const input = tagWith(html, 'id="chat-maxTokens"');
    expect(input).toContain('type="text"');
    expect(input).toContain('value="Auto"');
    expect(input).toContain('aria-describedby="chat-maxTokens-help"');
    expect(tagWith(html, 'aria-label="Max tokens: Auto"')).toContain('aria-pressed="true"');
    expect(html).toMatch(/id="chat-maxTokens-help"[^>]*>Longest reply\. Auto: an eighth of the context \(64 to 2,048 tokens\)/);
    const typed = renderToStaticMarkup(<SamplingFields idPrefix="chat" value={{ temperature: '0.7', topP: '0.95', maxTokens: '256' }} onChange={() => undefined} />);
    expect(tagWith(typed, 'aria-label="Max tokens: Auto"')).toContain('aria-pressed="false"');
  });
});
