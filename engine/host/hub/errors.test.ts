/**
 * The Hub's failures as user-facing errors, for the cases the emulator does not produce on its
 * own: gates known only from the repository's info, missing entries, odd statuses, Retry-After
 * dates, and network errors by cause.
 */
import { describe, expect, it } from 'vitest';
import { hubHttpError, hubNetworkError, repoPage, retryAfterSeconds } from './errors.ts';

const endpoint = 'https://huggingface.co';

describe('hubHttpError', () => {
  it('takes a gate from the repository info when the Hub sends no error code', () => {
    const error = hubHttpError(403, new Headers(), '', { endpoint, repo: 'meta/Llama', hadToken: true, gated: 'auto' });
    expect(error.code).toBe('AUTH_REQUIRED');
    expect(error.message).toContain('gated');
    expect(error.hint).toContain('huggingface.co/meta/Llama');
    expect(error.hint).not.toContain('by hand');
  });

  it('names the missing file and the missing revision', () => {
    expect(hubHttpError(404, new Headers({ 'X-Error-Code': 'EntryNotFound' }), '', { endpoint, repo: 'a/b', path: 'x.gguf', hadToken: false }).message).toBe('a/b has no file x.gguf.');
    expect(hubHttpError(404, new Headers({ 'X-Error-Code': 'RevisionNotFound' }), '', { endpoint, repo: 'a/b', revision: 'dev', hadToken: false }).message).toBe('a/b has no revision "dev" on Hugging Face.');
  });

  it('quotes the Hub’s message for other refusals, from the header or the JSON body', () => {
    expect(hubHttpError(400, new Headers(), '{"error":"bad sort"}', { endpoint, hadToken: false }).message).toBe('Hugging Face refused the request (HTTP 400: bad sort).');
    expect(hubHttpError(400, new Headers({ 'X-Error-Message': 'from header' }), '<html>', { endpoint, hadToken: false }).message).toContain('from header');
    expect(hubHttpError(418, new Headers(), '<html>teapot</html>', { endpoint, hadToken: false })).toMatchObject({ code: 'NETWORK_ERROR', message: 'Hugging Face refused the request (HTTP 418).' });
  });

  it('asks for a token when one is needed and none was sent', () => {
    expect(hubHttpError(401, new Headers(), '', { endpoint, hadToken: false })).toMatchObject({ code: 'AUTH_REQUIRED', message: 'Hugging Face needs a token for this.' });
  });
});

describe('retryAfterSeconds', () => {
  it('reads seconds and HTTP dates, at least one second', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterSeconds('30', now)).toBe(30);
    expect(retryAfterSeconds('0', now)).toBe(1);
    expect(retryAfterSeconds('Wed, 01 Jan 2025 00:01:00 GMT', now)).toBe(60);
    expect(retryAfterSeconds('soon', now)).toBeNull();
    expect(retryAfterSeconds(null, now)).toBeNull();
  });
});

describe('hubNetworkError', () => {
  it('names the cause of a failed connection', () => {
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND huggingface.co'), { code: 'ENOTFOUND' }) });
    expect(hubNetworkError(refused, 30_000).message).toBe('Could not reach Hugging Face (ENOTFOUND).');
    expect(hubNetworkError(new DOMException('timed out', 'TimeoutError'), 30_000).message).toBe('Hugging Face did not answer within 30 s.');
  });
});

describe('repoPage', () => {
  it('writes the page as people type it', () => {
    expect(repoPage('https://huggingface.co/', 'a/b')).toBe('huggingface.co/a/b');
  });
});
