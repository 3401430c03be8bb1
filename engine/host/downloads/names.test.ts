/**
 * What a download may be asked for and what it may write: file names inside the models folder
 * only, https (or loopback http) addresses, and the parts of a split model named by its first.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addressParts, checkModelFileName, labelOf, modelFilePath, partPath } from './names.ts';

describe('model file names', () => {
  it('accepts plain .gguf names', () => {
    for (const name of ['model.gguf', 'Qwen2.5-0.5B-Instruct-Q4_K_M.gguf', 'x-00001-of-00002.GGUF', 'modèle ünïcode.gguf']) {
      expect(checkModelFileName(name)).toEqual({ ok: true, value: name });
    }
  });

  it('refuses separators, "..", hidden names, other extensions, control characters and Windows device names', () => {
    for (const name of ['', '../model.gguf', 'a/b.gguf', 'a\\b.gguf', 'model..gguf', '.hidden.gguf', 'model.bin', 'model.gguf.part', 'c:model.gguf', 'a\nb.gguf', 'a\0.gguf', 'nul.gguf', 'COM1.gguf', `${'x'.repeat(260)}.gguf`]) {
      const checked = checkModelFileName(name);
      expect(checked.ok ? name : checked.error.code).toBe('INVALID_INPUT');
    }
  });

  it('places a name directly in the models folder, its bytes beside it as .part', () => {
    const dir = path.resolve('models');
    expect(modelFilePath('models', 'a.gguf')).toEqual({ ok: true, value: path.join(dir, 'a.gguf') });
    expect(modelFilePath('models', '../a.gguf').ok).toBe(false);
    expect(partPath(path.join(dir, 'a.gguf'))).toBe(path.join(dir, 'a.gguf.part'));
    expect(partPath('a.gguf').endsWith('.gguf')).toBe(false);
  });

  it('labels a file by its name without the split suffix, as the Hub client does', () => {
    expect(labelOf('Llama-3-8B-Q4_K_M.gguf')).toBe('Llama-3-8B-Q4_K_M.gguf');
    expect(labelOf('big-Q8_0-00001-of-00003.gguf')).toBe('big-Q8_0.gguf');
  });
});

describe('addresses', () => {
  it('takes the file name from the last path segment, keeps the query, drops the fragment', () => {
    const parts = addressParts('https://example.com/m/My%20Model.gguf?sig=abc#frag');
    expect(parts).toEqual({ ok: true, value: [{ url: 'https://example.com/m/My%20Model.gguf?sig=abc', name: 'My Model.gguf' }] });
  });

  it('allows plain http to loopback only, and no credentials in the address', () => {
    expect(addressParts('http://127.0.0.1:8080/a.gguf').ok).toBe(true);
    expect(addressParts('http://localhost/a.gguf').ok).toBe(true);
    expect(addressParts('http://[::1]/a.gguf').ok).toBe(true);
    for (const address of ['http://example.com/a.gguf', 'http://10.0.0.1/a.gguf', 'file:///etc/a.gguf', 'https://user:pw@example.com/a.gguf', 'not a url', 'https://example.com/', 'https://example.com/a.gguf/', 'https://example.com/%E0%A4%A.gguf', 'https://example.com/..%2Fa.gguf']) {
      const parts = addressParts(address);
      expect(parts.ok ? address : parts.error.code).toBe('INVALID_INPUT');
    }
  });

  it('expands the first part of a split model into every part, and refuses a later part', () => {
    const parts = addressParts('https://example.com/r/big-Q8_0-00001-of-00003.gguf?x=1');
    expect(parts.ok && parts.value.map((part) => part.name)).toEqual(['big-Q8_0-00001-of-00003.gguf', 'big-Q8_0-00002-of-00003.gguf', 'big-Q8_0-00003-of-00003.gguf']);
    expect(parts.ok && parts.value[2]?.url).toBe('https://example.com/r/big-Q8_0-00003-of-00003.gguf?x=1');
    const later = addressParts('https://example.com/r/big-Q8_0-00002-of-00003.gguf');
    expect(later.ok ? null : later.error.hint).toMatch(/first part/);
  });
});
