import { describe, expect, it } from 'vitest';
import { contentSecurityPolicy, externalLink, isAppUrl, secureWebPreferences } from './policy.ts';

describe('navigation policy', () => {
  const fileApp = 'file:///opt/Hearth/resources/app.asar/out/renderer/index.html';

  it('allows only the app page itself', () => {
    expect(isAppUrl(`${fileApp}#/chat/abc`, fileApp)).toBe(true);
    expect(isAppUrl('file:///etc/passwd', fileApp)).toBe(false);
    expect(isAppUrl('https://example.com/', fileApp)).toBe(false);
    expect(isAppUrl('http://localhost:5173/#/settings', 'http://localhost:5173/')).toBe(true);
    expect(isAppUrl('http://localhost:5174/', 'http://localhost:5173/')).toBe(false);
    expect(isAppUrl('not a url', fileApp)).toBe(false);
  });

  it('opens only plain web and mail links outside', () => {
    expect(externalLink('https://example.com/a?b=1')).toBe('https://example.com/a?b=1');
    expect(externalLink('mailto:a@example.com')).toBe('mailto:a@example.com');
    for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'smb://host/share', 'vscode://x', 'https://user:pw@example.com/', '']) {
      expect(externalLink(bad)).toBeNull();
    }
  });
});

describe('window hardening', () => {
  it('turns every switch to the safe side', () => {
    const prefs = secureWebPreferences('/p/preload.cjs');
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, webviewTag: false });
  });

  it('has a CSP without unsafe sources', () => {
    expect(contentSecurityPolicy).toContain("default-src 'self'");
    expect(contentSecurityPolicy).toContain("object-src 'none'");
    expect(contentSecurityPolicy).not.toMatch(/unsafe-(inline|eval)|\*/);
  });
});
