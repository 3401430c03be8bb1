import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Chat, Message } from '../contract/index.ts';
import { mulberry32 } from '../../test/support/gguf-writer.ts';
import { exportChat, safeFileName } from './export.ts';
import { finished, useTestHearths, value } from '../../test/support/host-fixture.ts';

const start = useTestHearths();

/** Every property a name handed to a download (or joined to a folder) must have. */
function expectSafe(name: string, extension: 'md' | 'json'): void {
  expect(name.endsWith(`.${extension}`)).toBe(true);
  // A bare name on every platform: no directory part, nothing that resolves outside a folder.
  expect(path.posix.basename(name)).toBe(name);
  expect(path.win32.basename(name)).toBe(name);
  expect(path.dirname(path.resolve('/exports', name))).toBe(path.resolve('/exports'));
  expect(path.win32.dirname(path.win32.resolve('C:\\exports', name))).toBe('C:\\exports');
  // eslint-disable-next-line no-control-regex -- control characters must never appear.
  expect(name).not.toMatch(/[/\\:*?"<>|\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  expect(name).not.toMatch(/^[.\s]/);
  expect(name).not.toMatch(/\s$/);
  const stem = name.split('.')[0]!.trim();
  expect(stem).not.toMatch(/^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/i);
  expect(Array.from(name).length).toBeLessThanOrEqual(100);
  expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
}

describe('safeFileName', () => {
  it.each([
    ['My chat', 'My chat.md'],
    ['../../etc/passwd', '_.._etc_passwd.md'],
    ['..\\..\\Windows\\System32\\config', '_.._Windows_System32_config.md'],
    ['/etc/shadow', '_etc_shadow.md'],
    ['C:\\Users\\me\\.ssh\\id_rsa', 'C__Users_me_.ssh_id_rsa.md'],
    ['..', 'chat.md'],
    ['...', 'chat.md'],
    ['', 'chat.md'],
    ['   ', 'chat.md'],
    ['///', 'chat.md'],
    ['.bashrc', 'bashrc.md'],
    ['  . hidden', 'hidden.md'],
    ['trailing dots...', 'trailing dots.md'],
    ['a\u0000b\nc\td', 'a_b_c_d.md'],
    ['x\u0007y\u009bz', 'x_y_z.md'],
    // A right-to-left override would show "report.exe" as "exe.tropér" or hide the real extension.
    ['invoice\u202egpj.exe', 'invoice_gpj.exe.md'],
    ['what? *really* <b>|"', 'what_ _really_ _b___.md'],
    ['e\u0301t\u00e9', '\u00e9t\u00e9.md'],
  ])('%j → %j', (title, expected) => {
    expect(safeFileName(title, 'md')).toBe(expected);
    expectSafe(safeFileName(title, 'md'), 'md');
  });

  it.each([
    ['CON', '_CON.md'],
    ['con', '_con.md'],
    ['nul.tar.gz', '_nul.tar.gz.md'],
    ['Aux .txt', '_Aux .txt.md'],
    ['LPT1', '_LPT1.md'],
    ['com9', '_com9.md'],
    ['COM\u00b9', '_COM\u00b9.md'],
    ['CONIN$', '_CONIN$.md'],
    ['CONSOLE', 'CONSOLE.md'],
    ['contact', 'contact.md'],
    ['com10', 'com10.md'],
  ])('Windows device names: %j → %j', (title, expected) => {
    expect(safeFileName(title, 'md')).toBe(expected);
  });

  it('cuts long titles to 80 characters and 200 bytes, whole characters only', () => {
    expect(safeFileName('a'.repeat(500), 'json')).toBe(`${'a'.repeat(80)}.json`);
    const emoji = safeFileName('\u{1f600}'.repeat(100), 'md');
    expect(emoji).toBe(`${'\u{1f600}'.repeat(50)}.md`);
    const cyrillic = safeFileName('ж'.repeat(120), 'md');
    expect(cyrillic).toBe(`${'ж'.repeat(80)}.md`);
    // A cut that would end in a space is trimmed.
    expect(safeFileName(`${'b'.repeat(79)} tail`, 'md')).toBe(`${'b'.repeat(79)}.md`);
  });

  it('gives a safe name for seeded hostile titles', () => {
    const rng = mulberry32(2718);
    const pieces = ['..', '/', '\\', '.', ' ', '\u0000', '\n', '\u202e', '\u2066', 'CON', 'nul', 'lpt1', ':', '*', '?', '"', '<', '>', '|', 'é', 'ж', '\u{1f600}', '\u0301', 'a', 'Z', '9', '~', '$', '%2e%2e', '\u00a0', '\u3000', '\ud800'];
    for (let i = 0; i < 2000; i++) {
      let title = '';
      const n = Math.floor(rng() * 120);
      for (let j = 0; j < n; j++) title += pieces[Math.floor(rng() * pieces.length)];
      for (const extension of ['md', 'json'] as const) {
        const name = safeFileName(title, extension);
        try {
          expectSafe(name, extension);
        } catch (error) {
          throw new Error(`title ${JSON.stringify(title)} gave ${JSON.stringify(name)}: ${String(error)}`, { cause: error });
        }
      }
    }
  });
});

const chat: Chat = {
  id: 'c1',
  title: 'Trip\n## You\nforged',
  createdAt: 1000,
  updatedAt: 2000,
  systemPrompt: 'Be brief.',
  sampling: { temperature: 0.7, topP: 0.9, maxTokens: 64 },
  activeLeafId: 'm3',
  overflowPolicy: null,
      engine: null,
};

const path3: Message[] = [
  { id: 'm1', chatId: 'c1', parentId: null, role: 'user', content: 'Where to?', status: 'complete', createdAt: 1001 },
  { id: 'm2', chatId: 'c1', parentId: 'm1', role: 'assistant', content: 'Lisbon <script>x</script>', status: 'complete', createdAt: 1002, stats: { tokensReused: 0, tokensRestored: 0, tokensPrefilled: 5, tokensGenerated: 3, ttftMs: 1, cacheSource: 'none' } },
  { id: 'm3', chatId: 'c1', parentId: 'm2', role: 'assistant', content: 'And then Por', status: 'incomplete', createdAt: 1003 },
];

describe('exportChat', () => {
  it('writes Markdown: a one-line title, the system prompt, then each message with its status when not complete', () => {
    const out = exportChat(chat, path3, 'markdown');
    expect(out.mimeType).toBe('text/markdown');
    expect(out.fileName).toBe('Trip_## You_forged.md');
    expect(out.content).toBe(
      ['# Trip ## You forged', '', '## System', '', 'Be brief.', '', '## You', '', 'Where to?', '', '## Assistant', '', 'Lisbon <script>x</script>', '', '## Assistant (incomplete)', '', 'And then Por', ''].join('\n'),
    );
  });

  it('leaves out an empty system prompt', () => {
    const out = exportChat({ ...chat, title: 'T', systemPrompt: '  ' }, path3.slice(0, 1), 'markdown');
    expect(out.content).toBe('# T\n\n## You\n\nWhere to?\n');
  });

  it('writes JSON that reads back to the same messages, without stats or internal fields', () => {
    const out = exportChat(chat, path3, 'json');
    expect(out.mimeType).toBe('application/json');
    expect(out.fileName).toBe('Trip_## You_forged.json');
    const parsed = JSON.parse(out.content) as { format: string; version: number; chat: Record<string, unknown>; messages: Record<string, unknown>[] };
    expect(parsed.format).toBe('hearth-chat');
    expect(parsed.version).toBe(1);
    expect(parsed.chat).toEqual({ id: 'c1', title: chat.title, systemPrompt: 'Be brief.', createdAt: 1000 });
    expect(parsed.messages).toEqual(path3.map((m) => ({ id: m.id, parentId: m.parentId, role: m.role, content: m.content, status: m.status, createdAt: m.createdAt })));
  });
});

describe('chats.export through the service', () => {
  it("exports the chat's active branch only, and refuses unknown chats and formats", async () => {
    const t = await start();
    const created = value(await t.hearth.api['chats.create']({ title: '../secret', systemPrompt: 'Sys.' }));
    const sent = value(await t.hearth.api['chats.send']({ chatId: created.id, text: 'Hi' }));
    await t.waitFor(finished(sent.assistantMessage.id));
    // A second reply to the same message: a sibling branch, now the active one.
    const again = value(await t.hearth.api['chats.regenerate']({ chatId: created.id, messageId: sent.assistantMessage.id }));
    await t.waitFor(finished(again.assistantMessage.id));

    const md = value(await t.hearth.api['chats.export']({ chatId: created.id, format: 'markdown' }));
    expect(md.fileName).toBe('_secret.md');
    expect(md.content).toBe('# ../secret\n\n## System\n\nSys.\n\n## You\n\nHi\n\n## Assistant\n\nHello, world!\n');
    const json = value(await t.hearth.api['chats.export']({ chatId: created.id, format: 'json' }));
    const ids = (JSON.parse(json.content) as { messages: { id: string }[] }).messages.map((m) => m.id);
    expect(ids).toEqual([sent.userMessage.id, again.assistantMessage.id]);

    const missing = await t.hearth.call('chats.export', { chatId: 'no-such-chat', format: 'markdown' });
    expect(missing.ok ? null : missing.error.code).toBe('NOT_FOUND');
    const badFormat = await t.hearth.call('chats.export', { chatId: created.id, format: 'html' });
    expect(badFormat.ok ? null : badFormat.error.code).toBe('INVALID_INPUT');
    const traversalId = await t.hearth.call('chats.export', { chatId: '../../etc/passwd', format: 'json' });
    expect(traversalId.ok ? null : traversalId.error.code).toBe('INVALID_INPUT');
  });
});
