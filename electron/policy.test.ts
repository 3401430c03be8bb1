import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { contentSecurityPolicy, externalLink, isAllowedDownload, isAllowedRequest, isAppUrl, secureWebPreferences } from './policy.ts';

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

describe('no remote content', () => {
  const fileApp = 'file:///opt/Hearth/resources/app.asar/out/renderer/index.html';
  const devApp = 'http://localhost:5173/';

  it('lets the packaged app load only its own files and in-memory data', () => {
    for (const url of [fileApp, 'file:///opt/Hearth/resources/app.asar/out/renderer/assets/index-abc.js', 'data:font/woff2;base64,AA', 'blob:file:///8c1f']) {
      expect(isAllowedRequest(url, fileApp), url).toBe(true);
    }
    for (const url of [
      'https://example.com/x.png',
      'http://127.0.0.1:8080/api',
      'ws://127.0.0.1:8080/',
      'file:///etc/passwd',
      'file:///opt/Hearth/resources/app.asar/out/renderer/../../package.json',
      'file:///opt/Hearth/resources/app.asar/out/renderer/%2e%2e/%2e%2e/package.json',
      'file:///opt/Hearth/resources/app.asar/out/renderer/assets%2f..%2f..%2fx',
      'file://remote-host/opt/Hearth/resources/app.asar/out/renderer/index.html',
      'file:///opt/Hearth/resources/app.asar/out/rendererX/index.html',
      'ftp://example.com/',
      'javascript:alert(1)',
      '',
    ]) {
      expect(isAllowedRequest(url, fileApp), url).toBe(false);
    }
  });

  it('lets the dev build reach only its dev server (and its hot-reload socket)', () => {
    expect(isAllowedRequest('http://localhost:5173/src/main.tsx', devApp)).toBe(true);
    expect(isAllowedRequest('ws://localhost:5173/', devApp)).toBe(true);
    expect(isAllowedRequest('http://localhost:5174/', devApp)).toBe(false);
    expect(isAllowedRequest('ws://localhost:5174/', devApp)).toBe(false);
    expect(isAllowedRequest('https://fonts.example/x.woff2', devApp)).toBe(false);
  });

  it('saves only Blob downloads (the export)', () => {
    expect(isAllowedDownload('blob:file:///1234')).toBe(true);
    for (const url of ['https://example.com/x.exe', 'file:///etc/passwd', 'data:text/plain,x', 'nonsense']) expect(isAllowedDownload(url), url).toBe(false);
  });
});

describe('window hardening', () => {
  it('turns every switch to the safe side', () => {
    const prefs = secureWebPreferences('/p/preload.cjs');
    expect(prefs).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
    });
  });

  it('has a CSP without unsafe sources', () => {
    expect(contentSecurityPolicy).toContain("default-src 'self'");
    expect(contentSecurityPolicy).toContain("object-src 'none'");
    expect(contentSecurityPolicy).not.toMatch(/unsafe-(inline|eval)|\*/);
    for (const directive of ["script-src 'self'", "connect-src 'self'", "img-src 'self' data:", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]) {
      expect(contentSecurityPolicy).toContain(directive);
    }
    // No remote origin anywhere: every source is 'self', 'none' or data:.
    expect(contentSecurityPolicy).not.toMatch(/https?:|wss?:/);
  });

  it('ships the page with the same strict CSP as a meta tag (the file: page has no response headers)', () => {
    const html = readFileSync(new URL('../renderer/index.html', import.meta.url), 'utf8');
    const meta = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1] ?? '';
    expect(meta).toContain("default-src 'self'");
    expect(meta).toContain("script-src 'self'");
    expect(meta).toContain("object-src 'none'");
    expect(meta).not.toMatch(/unsafe-|https?:|\*\.|'\*'|\s\*[;\s]/);
    // Its only non-'self' sources are the browser host's loopback WebSocket.
    expect(meta.match(/wss?:\/\/[^\s;]+/g)).toEqual(['ws://127.0.0.1:*', 'ws://localhost:*']);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
  });
});
