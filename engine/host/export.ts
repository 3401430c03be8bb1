/**
 * `chats.export`: a conversation's active branch as Markdown or JSON. The file name is derived
 * from the chat's title, which the user (or a model-suggested title) controls, so it is reduced
 * to a bare, portable name: the UI hands it to a download, and no host ever joins it to a path.
 */
import type { Chat, ChatExport, Message } from '../contract/index.ts';

const maxBaseChars = 80;
/**
 * Most file systems allow 255 bytes per name: 80 characters of a script outside Latin-1 (or
 * emoji, 4 bytes each) would exceed it, so the name is also cut to a byte size with room to spare.
 */
const maxBaseBytes = 200;
/**
 * Windows reserves these device names whatever follows the first dot (CON.md and NUL.tar.gz are
 * the devices CON and NUL), trailing spaces included; COM¹–COM³ and LPT¹–LPT³ are devices too.
 */
const reservedStem = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])$/i;

/**
 * A bare file name from a chat title: path separators, control characters and the characters
 * Windows, macOS and Linux reserve become `_`; leading dots and spaces go (no hidden files, no
 * `..`); at most 80 characters and 200 UTF-8 bytes before the extension; a Windows device name
 * gets a `_` in front, and an empty result becomes "chat".
 */
export function safeFileName(title: string, extension: 'md' | 'json'): string {
  let base = title
    .normalize('NFC')
    // Separators, reserved punctuation, C0/C1 controls, and bidi overrides that could disguise an extension.
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must go.
    .replace(/[/\\:*?"<>|\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '_')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^[.\s]+/, '')
    .replace(/[.\s]+$/, '');
  let kept = '';
  let bytes = 0;
  for (const char of Array.from(base).slice(0, maxBaseChars)) {
    bytes += Buffer.byteLength(char);
    if (bytes > maxBaseBytes) break;
    kept += char;
  }
  base = kept.trim();
  const stem = base.split('.')[0] ?? '';
  if (base === '' || /^_+$/.test(base)) base = 'chat';
  else if (reservedStem.test(stem.trim())) base = `_${base}`;
  return `${base}.${extension}`;
}

function markdown(chat: Chat, path: readonly Message[]): string {
  // One line: a title with line breaks must not start sections of its own in the file.
  const lines = [`# ${chat.title.replace(/\s+/g, ' ').trim()}`, ''];
  if (chat.systemPrompt.trim() !== '') lines.push('## System', '', chat.systemPrompt, '');
  for (const message of path) {
    const note = message.status === 'complete' ? '' : ` (${message.status})`;
    lines.push(`## ${message.role === 'user' ? 'You' : 'Assistant'}${note}`, '', message.content, '');
  }
  return lines.join('\n');
}

/** The export of a chat's active branch (`path`, oldest first). */
export function exportChat(chat: Chat, path: readonly Message[], format: 'markdown' | 'json'): ChatExport {
  if (format === 'json') {
    const messages = path.map((m) => ({ id: m.id, parentId: m.parentId, role: m.role, content: m.content, status: m.status, createdAt: m.createdAt }));
    const content = JSON.stringify({ format: 'hearth-chat', version: 1, chat: { id: chat.id, title: chat.title, systemPrompt: chat.systemPrompt, createdAt: chat.createdAt }, messages }, null, 2) + '\n';
    return { fileName: safeFileName(chat.title, 'json'), mimeType: 'application/json', content };
  }
  return { fileName: safeFileName(chat.title, 'md'), mimeType: 'text/markdown', content: markdown(chat, path) };
}
