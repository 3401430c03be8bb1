import { describe, expect, it } from 'vitest';
import type { GenerateInput } from '../protocol.ts';
import { checkApiOptions, samplerOptions, stopReasonOf, unsupportedType } from './api-options.ts';

const input = (extra: Partial<GenerateInput> = {}): GenerateInput => ({
  requestId: 'r',
  chatId: 'c',
  messages: [{ role: 'user', text: 'hi' }],
  sampling: { temperature: 0, topP: 1, maxTokens: 10 },
  ...extra,
});
const code = (extra: Partial<GenerateInput>) => {
  const checked = checkApiOptions(input(extra));
  return checked.ok ? 'ok' : checked.error.code;
};

describe('checkApiOptions', () => {
  it('accepts a chat turn without API fields, and treats empty functions as none', () => {
    const checked = checkApiOptions(input({ functions: {} }));
    expect(checked).toEqual({ ok: true, value: { stop: [], functions: undefined, format: undefined } });
  });

  it('refuses stop lists past the limits, bad seeds, format with functions, and a raw turn that is not one user message', () => {
    expect(code({ stop: ['a'] })).toBe('ok');
    expect(code({ stop: [''] })).toBe('INVALID_INPUT');
    expect(code({ stop: ['x'.repeat(201)] })).toBe('INVALID_INPUT');
    expect(code({ stop: Array.from({ length: 9 }, () => 's') })).toBe('INVALID_INPUT');
    expect(code({ seed: 1.5 })).toBe('INVALID_INPUT');
    expect(code({ seed: 7 })).toBe('ok');
    expect(code({ format: { type: 'json' }, functions: { f: {} } })).toBe('INVALID_INPUT');
    expect(code({ functions: { 'bad name': {} } })).toBe('INVALID_INPUT');
    expect(code({ raw: true })).toBe('ok');
    expect(code({ raw: true, messages: [{ role: 'system', text: 'x' }] })).toBe('INVALID_INPUT');
    expect(code({ raw: true, messages: [{ role: 'user', text: 'a' }, { role: 'user', text: 'b' }] })).toBe('INVALID_INPUT');
  });

  it('refuses a schema whose types the grammar would silently read as null', () => {
    expect(code({ format: { type: 'json_schema', schema: { type: 'object', properties: { a: { type: 'strange' } } } } })).toBe('INVALID_INPUT');
    expect(code({ format: { type: 'json_schema', schema: { type: 'object', properties: { type: { type: 'string' } } } } })).toBe('ok');
    expect(unsupportedType({ anyOf: [{ type: ['string', 'null'] }, { type: 'integer' }] })).toBeNull();
    expect(unsupportedType({ items: { type: 5 } })).toBe(5);
    // Data is not a schema: an enum value named "type" is fine.
    expect(unsupportedType({ enum: [{ type: 'x' }] })).toBeNull();
  });
});

describe('samplerOptions', () => {
  it('is greedy without a seed at temperature 0, and uses the given seed otherwise', () => {
    expect(samplerOptions({ temperature: 0, topP: 0.5, maxTokens: 1 }, 5)).toEqual({ temperature: 0 });
    expect(samplerOptions({ temperature: 1, topP: 0.5, maxTokens: 1 }, 5)).toEqual({ temperature: 1, topP: 0.5, seed: 5 });
    expect(samplerOptions({ temperature: 1, topP: 1, maxTokens: 1 }, 2 ** 32 + 3)).toEqual({ temperature: 1, seed: 3 });
    expect(samplerOptions({ temperature: 1, topP: 1, maxTokens: 1 }, undefined).seed).toEqual(expect.any(Number));
  });
});

describe('stopReasonOf', () => {
  it("maps node-llama-cpp's reasons, naming the stop text that ended the reply", () => {
    expect(stopReasonOf({ stopReason: 'customStopTrigger', customStopTrigger: ['END'] }, ['x', 'END'])).toEqual({ stopReason: 'stopSequence', stopSequence: 'END' });
    expect(stopReasonOf({ stopReason: 'eogToken' }, [])).toEqual({ stopReason: 'eos' });
    expect(stopReasonOf({ stopReason: 'stopGenerationTrigger' }, [])).toEqual({ stopReason: 'eos' });
    expect(stopReasonOf({ stopReason: 'functionCalls' }, [])).toEqual({ stopReason: 'functionCalls' });
    expect(stopReasonOf({ stopReason: 'maxTokens' }, [])).toEqual({ stopReason: 'maxTokens' });
    expect(stopReasonOf({ stopReason: 'abort' }, [])).toEqual({ stopReason: 'aborted' });
  });
});
