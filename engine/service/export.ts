/**
 * `chats.export`: a conversation's active branch as Markdown or JSON. The file name is derived
 * from the chat's title, which the user (or a model-suggested title) controls, so it is reduced
 * to a bare, portable name: the UI hands it to a download, and no host ever joins it to a path.
 */
import type { Chat, ChatExport, Message } from '../contract/index.ts';

const maxBaseChars = 80;
/** Windows refuses these as file names whatever the extension (CON.md is the device CON). */
const reservedNames = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i;

/**
 * A bare file name from a chat title: path separators, control characters and the characters
 * Windows, macOS and Linux reserve become `_`; leading dots and spaces go (no hidden files, no
 * `..`), and an empty or reserved result becomes "chat".
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
  base = Array.from(base).slice(0, maxBaseChars).join('').trim();
  if (base === '' || /^_+$/.test(base) || reservedNames.test(base)) base = 'chat';
  return `${base}.${extension}`;
}

function markdown(chat: Chat, path: readonly Message[]): string {
  const lines = [`# ${chat.title}`, ''];
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
