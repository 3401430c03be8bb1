/**
 * The browser host's request gate: the token, and the Host/Origin checks that stop DNS
 * rebinding and cross-site requests. Anything that can reach 127.0.0.1 (another local user's
 * browser tab, a page that rebinds its DNS name to 127.0.0.1) must not drive the engine.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A fresh random token: 24 bytes, base64url (32 characters). */
export function generateToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Compares a presented token with the real one in constant time. Both sides are hashed first
 * so that `timingSafeEqual` always sees equal-length buffers and the comparison time says
 * nothing about the presented token's length either.
 */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && expected.length > 0;
}

/** The cookie that carries the token for the page's own requests. Cookies ignore ports, so the port is in the name. */
export function cookieName(port: number): string {
  return `hearth_token_${port}`;
}

/** Reads one cookie from a Cookie header; undefined when absent. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Every token the request carries: `?token=`, `Authorization: Bearer`, the cookie. */
export function presentedTokens(req: IncomingMessage, url: URL, port: number): string[] {
  const found: string[] = [];
  const query = url.searchParams.get('token');
  if (query !== null) found.push(query);
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m?.[1] !== undefined) found.push(m[1]);
  }
  const cookie = readCookie(req.headers.cookie, cookieName(port));
  if (cookie !== undefined) found.push(cookie);
  return found;
}

/** True when any token the request carries is the right one. */
export function isAuthorized(req: IncomingMessage, url: URL, port: number, token: string): boolean {
  let matched = false;
  // No early exit: every candidate is compared, so timing does not reveal which one matched.
  for (const t of presentedTokens(req, url, port)) matched = tokenMatches(t, token) || matched;
  return matched;
}

/**
 * Host and Origin checks against DNS rebinding: a rebound page sends its own name as Host,
 * and a cross-site page sends its own Origin. Only our loopback names on our port pass.
 */
export function isAllowedOrigin(req: IncomingMessage, port: number): boolean {
  const allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`];
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !allowedHosts.includes(host)) return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return allowedHosts.some((h) => origin.toLowerCase() === `http://${h}`);
}
