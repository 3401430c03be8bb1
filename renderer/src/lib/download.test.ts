import { describe, expect, it, vi } from 'vitest';
import { createActions } from '../state/actions.ts';
import { createHearthStore } from '../state/store.ts';
import { fakeTransport, ok } from '../../../test/support/renderer/fake-transport.ts';
import { downloadName, saveExport, type DownloadTarget } from './download.ts';

function fakeTarget() {
  const blobs = new Map<string, Blob>();
  const clicks: Array<{ url: string; fileName: string }> = [];
  const revoked: string[] = [];
  const target: DownloadTarget = {
    createObjectURL: (blob) => {
      const url = `blob:test/${blobs.size}`;
      blobs.set(url, blob);
      return url;
    },
    revokeObjectURL: (url) => revoked.push(url),
    click: (url, fileName) => clicks.push({ url, fileName }),
  };
  return { target, blobs, clicks, revoked };
}

describe('chat export downloads', () => {
  it('never lets a path or an invisible character into the saved name', () => {
    expect(downloadName('My chat.md', 'chat.md')).toBe('My chat.md');
    expect(downloadName('../../etc/passwd', 'chat.md')).toBe('passwd');
    expect(downloadName('..\\..\\Windows\\win.ini', 'chat.md')).toBe('win.ini');
    expect(downloadName('/abs/path/x.json', 'chat.json')).toBe('x.json');
    expect(downloadName('.bashrc', 'chat.md')).toBe('bashrc');
    expect(downloadName('a\u0000b\u202ecod.md', 'chat.md')).toBe('a_b_cod.md');
    expect(downloadName('C:evil.md', 'chat.md')).toBe('C_evil.md');
    for (const empty of ['', '/', '..', ' . ']) expect(downloadName(empty, 'chat.md'), JSON.stringify(empty)).toBe('chat.md');
  });

  it('saves the export as a Blob download under its name, and frees the Blob later', async () => {
    vi.useFakeTimers();
    try {
      const { target, blobs, clicks, revoked } = fakeTarget();
      const content = '# Hostile <img src=x onerror=alert(1)>\n';
      expect(saveExport({ fileName: 'Hostile _img src=x onerror=alert(1)_.md', mimeType: 'text/markdown', content }, target)).toBe('Hostile _img src=x onerror=alert(1)_.md');
      expect(clicks).toEqual([{ url: 'blob:test/0', fileName: 'Hostile _img src=x onerror=alert(1)_.md' }]);
      const blob = blobs.get('blob:test/0');
      expect(blob?.type).toBe('text/markdown;charset=utf-8');
      expect(await blob?.text()).toBe(content);
      expect(revoked).toEqual([]);
      vi.advanceTimersByTime(10_000);
      expect(revoked).toEqual(['blob:test/0']);
      expect(saveExport({ fileName: '', mimeType: 'application/json', content: '{}' }, target)).toBe('chat.json');
    } finally {
      vi.useRealTimers();
    }
  });

  it('asks the host for the export in the format chosen', async () => {
    const transport = fakeTransport({ 'chats.export': (input) => ok({ fileName: `x.${input.format === 'json' ? 'json' : 'md'}`, mimeType: 'text/markdown', content: 'c' }) });
    const actions = createActions(transport, createHearthStore(), { navigate: () => undefined });
    expect(await actions.exportChat('abc', 'json')).toEqual({ ok: true, value: { fileName: 'x.json', mimeType: 'text/markdown', content: 'c' } });
    expect(transport.calls).toEqual([{ name: 'chats.export', input: { chatId: 'abc', format: 'json' } }]);
  });
});
