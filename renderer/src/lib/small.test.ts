import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../transport/backoff.ts';
import { downloadFraction, formatBinaryBytes, formatBytes, formatPercent, formatStats, GB } from './format.ts';
import { mergeMessage } from './messages.ts';
import { parseHash, routeHash, type Route } from './route.ts';
import { safeHref } from './url.ts';
import { msg } from '../../../test/support/renderer/fixtures.ts';

describe('routes', () => {
  it('parses and formats every route', () => {
    const routes: Route[] = [{ name: 'home' }, { name: 'models' }, { name: 'settings' }, { name: 'cache' }, { name: 'chat', chatId: 'abc_DEF-1' }];
    for (const route of routes) expect(parseHash(routeHash(route))).toEqual(route);
  });

  it('falls back to home for anything unexpected', () => {
    for (const hash of ['', '#', '#/', '#/chat/', '#/chat/a.b', '#/chat/%E0', '#/nope', '#/chat/a/b', `#/chat/${'x'.repeat(65)}`]) {
      expect(parseHash(hash), hash).toEqual({ name: 'home' });
    }
  });

  it('tolerates slashes', () => {
    expect(parseHash('#models/')).toEqual({ name: 'models' });
    expect(parseHash('#/cache/')).toEqual({ name: 'cache' });
    expect(routeHash({ name: 'cache' })).toBe('#/cache');
  });
});

describe('safeHref', () => {
  it('keeps http, https and mailto', () => {
    expect(safeHref('https://example.com/x')).toBe('https://example.com/x');
    expect(safeHref(' http://example.com ')).toBe('http://example.com/');
    expect(safeHref('mailto:a@b.c')).toBe('mailto:a@b.c');
  });

  it('drops everything else', () => {
    for (const url of ['javascript:alert(1)', ' JAVASCRIPT:alert(1)', 'data:text/html,x', 'file:///etc/passwd', 'vbscript:x', '/relative', '#hash', 'ftp://x', 'http://u:p@x.com', 'hearth://x']) {
      expect(safeHref(url), url).toBeNull();
    }
  });
});

describe('format', () => {
  it('formats bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1500)).toBe('1.50 KB');
    expect(formatBytes(734_003_200)).toBe('734 MB');
    expect(formatBytes(-1)).toBe('?');
    // The cache settings count in 1024s, so the default budget (10 × 1024³) reads "10 GB".
    expect(formatBinaryBytes(10 * GB)).toBe('10 GB');
    expect(formatBinaryBytes(1.2 * GB)).toBe('1.2 GB');
    expect(formatBinaryBytes(0)).toBe('0 B');
    expect(formatBinaryBytes(1536)).toBe('1.5 KB');
    expect(formatBinaryBytes(84.4 * GB)).toBe('84.4 GB');
    expect(formatBinaryBytes(Number.NaN)).toBe('?');
  });

  it('formats percent, clamped', () => {
    expect(formatPercent(0.456)).toBe('45%');
    expect(formatPercent(2)).toBe('100%');
    expect(formatPercent(Number.NaN)).toBe('0%');
  });

  it('computes download fractions', () => {
    expect(downloadFraction({ downloadedBytes: 5, totalBytes: 10 })).toBe(0.5);
    expect(downloadFraction({ downloadedBytes: 5, totalBytes: 0 })).toBeNull();
  });

  it('formats the stats readout', () => {
    expect(
      formatStats({ tokensReused: 120, tokensRestored: 0, tokensPrefilled: 14, tokensGenerated: 0, ttftMs: 35.4, cacheSource: 'memory' }),
    ).toBe('reused 120 · prefilled 14 tokens · first token 35 ms');
    expect(
      formatStats({ tokensReused: 0, tokensRestored: 2048, tokensPrefilled: 3, tokensGenerated: 52, ttftMs: 120, cacheSource: 'disk', restoreMs: 40.6 }),
    ).toBe('restored 2,048 tokens from disk in 41 ms · prefilled 3 · first token 120 ms · 52 generated');
    expect(
      formatStats({
        tokensReused: 0,
        tokensRestored: 256,
        tokensPrefilled: 40,
        tokensGenerated: 0,
        ttftMs: 9,
        cacheSource: 'disk',
        fallbackReason: 'chunk 1 failed verification (checksum); re-read from token 256',
      }),
    ).toBe('restored 256 tokens from disk · prefilled 40 · first token 9 ms · chunk 1 failed verification (checksum); re-read from token 256');
  });
});

describe('mergeMessage', () => {
  const streaming = msg('m', 'u', 'assistant', { status: 'streaming', content: 'Hello wor' });

  it('takes the incoming message by default', () => {
    const done = { ...streaming, status: 'complete' as const, content: 'Hello world' };
    expect(mergeMessage(streaming, done)).toBe(done);
    expect(mergeMessage(undefined, done)).toBe(done);
  });

  it("never turns a finished message back into a streaming one on a call's answer", () => {
    const done = { ...streaming, status: 'stopped' as const };
    expect(mergeMessage(done, { ...streaming, content: '' })).toBe(done);
    expect(mergeMessage(done, { ...streaming, content: '' }, 'answer')).toBe(done);
  });

  it("takes the host's event that reopens a finished reply", () => {
    const done = { ...streaming, status: 'stopped' as const };
    const reopened = { ...done, status: 'streaming' as const };
    expect(mergeMessage(done, reopened, 'event')).toBe(reopened);
  });

  it('keeps streamed text that a snapshot has not caught up with', () => {
    expect(mergeMessage(streaming, { ...streaming, content: 'Hel' }).content).toBe('Hello wor');
    expect(mergeMessage(streaming, { ...streaming, content: 'Hello world!' }).content).toBe('Hello world!');
  });
});

describe('backoffDelay', () => {
  it('grows exponentially with jitter, up to a cap', () => {
    expect(backoffDelay(0, { random: () => 1 })).toBe(500);
    expect(backoffDelay(0, { random: () => 0 })).toBe(250);
    expect(backoffDelay(3, { random: () => 1 })).toBe(4000);
    expect(backoffDelay(50, { random: () => 1 })).toBe(10_000);
  });
});
