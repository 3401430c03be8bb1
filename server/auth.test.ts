import { describe, expect, it } from 'vitest';
import { cookieName, generateToken, readCookie, tokenMatches } from './auth.ts';

describe('tokenMatches', () => {
  const token = generateToken();

  it('accepts only the exact token', () => {
    expect(tokenMatches(token, token)).toBe(true);
    expect(tokenMatches(token.slice(0, -1), token)).toBe(false);
    expect(tokenMatches(token + 'x', token)).toBe(false);
    expect(tokenMatches(token.toUpperCase(), token)).toBe(token === token.toUpperCase());
    expect(tokenMatches('', token)).toBe(false);
  });

  it('never accepts an empty expected token', () => {
    expect(tokenMatches('', '')).toBe(false);
  });

  it('compares inputs of different lengths without throwing (timingSafeEqual needs equal lengths)', () => {
    expect(() => tokenMatches('a', 'a much longer token')).not.toThrow();
    expect(tokenMatches('é', token)).toBe(false);
  });

  it('generates distinct 32-character base64url tokens', () => {
    const tokens = new Set(Array.from({ length: 100 }, generateToken));
    expect(tokens.size).toBe(100);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });
});

describe('readCookie', () => {
  it('finds one cookie among several', () => {
    expect(readCookie('a=1; hearth_token_80=abc; b=2', cookieName(80))).toBe('abc');
    expect(readCookie('hearth_token_8080=abc', cookieName(80))).toBeUndefined();
    expect(readCookie(undefined, 'a')).toBeUndefined();
    expect(readCookie('garbage', 'a')).toBeUndefined();
  });
});
