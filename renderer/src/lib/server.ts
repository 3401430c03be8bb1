/** The Server screen's texts: addresses, the key's mask, origins, the log's figures and the snippets. */
import { apiModelId, type ApiRequestLog, type ApiServerSettings } from '../contract.ts';
import { formatCount } from './format.ts';

/**
 * The id the API knows a model by: its file name without `.gguf` (what `GET /v1/models`
 * lists); a placeholder while none is loaded, for the reader to replace.
 */
export function modelIdFromPath(path: string | null): string {
  return (path ? apiModelId(path) : '') || 'MODEL';
}

/** The address clients will use: the host's while it listens, else where it would listen. */
export function baseUrl(url: string | null, settings: Pick<ApiServerSettings, 'port'>): string {
  return url ?? `http://127.0.0.1:${settings.port}/v1`;
}

/** Anthropic's SDKs append `/v1/messages` themselves, so they take the address without `/v1`. */
export function anthropicBaseUrl(url: string): string {
  return url.replace(/\/v1\/?$/, '');
}

/** The key as shown while hidden: nothing of it, not even its length, is given away. */
export const maskedKey = '•'.repeat(24);

/** The host's rule for an origin (server.configure refuses others): scheme://host[:port]. */
const originPattern = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;

/** A typed origin, tidied (a pasted trailing slash dropped, the scheme lower-cased), or null when it is not one. */
export function parseOrigin(text: string): string | null {
  const trimmed = text.trim().replace(/\/+$/, '');
  const origin = trimmed.replace(/^[A-Za-z]+:/, (scheme) => scheme.toLowerCase());
  return originPattern.test(origin) ? origin : null;
}

/** 1..65535, or null. */
export function parsePort(text: string): number | null {
  const n = Number(text);
  return text.trim() !== '' && Number.isInteger(n) && n >= 1 && n <= 65_535 ? n : null;
}

/** "1,024 (85%)": prompt tokens served from the cache; "—" when unknown. */
export function cachedText(row: Pick<ApiRequestLog, 'cachedTokens' | 'promptTokens'>): string {
  if (row.cachedTokens === null) return '—';
  const share = row.promptTokens ? ` (${Math.round((100 * row.cachedTokens) / row.promptTokens)}%)` : '';
  return `${formatCount(row.cachedTokens)}${share}`;
}

export function countText(n: number | null): string {
  return n === null ? '—' : formatCount(n);
}

export function rateText(tokensPerSecond: number | null): string {
  return tokensPerSecond === null || !Number.isFinite(tokensPerSecond) ? '—' : tokensPerSecond.toFixed(1);
}

export type SnippetKind = 'curl' | 'python' | 'js' | 'anthropic';

/** A string literal for Python and JavaScript alike (JSON's escapes are valid in both). */
const quoted = (text: string) => JSON.stringify(text);

/** A word inside a single-quoted shell string. */
const shellSafe = (text: string) => text.replace(/'/g, `'\\''`);

/**
 * Ready-to-paste client code for the server at `url` with `key`, asking `model`. The Anthropic
 * one uses the address without `/v1`, which its SDK appends.
 */
export function snippet(kind: SnippetKind, url: string, key: string, model: string): string {
  switch (kind) {
    case 'curl':
      return [
        `curl ${url}/chat/completions \\`,
        `  -H "Authorization: Bearer ${key}" \\`,
        `  -H "Content-Type: application/json" \\`,
        `  -d '${shellSafe(JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }] }))}'`,
      ].join('\n');
    case 'python':
      return [
        'from openai import OpenAI',
        '',
        `client = OpenAI(base_url=${quoted(url)}, api_key=${quoted(key)})`,
        'reply = client.chat.completions.create(',
        `    model=${quoted(model)},`,
        '    messages=[{"role": "user", "content": "Hello!"}],',
        ')',
        'print(reply.choices[0].message.content)',
      ].join('\n');
    case 'js':
      return [
        "import OpenAI from 'openai';",
        '',
        `const client = new OpenAI({ baseURL: ${quoted(url)}, apiKey: ${quoted(key)} });`,
        'const reply = await client.chat.completions.create({',
        `  model: ${quoted(model)},`,
        "  messages: [{ role: 'user', content: 'Hello!' }],",
        '});',
        'console.log(reply.choices[0].message.content);',
      ].join('\n');
    case 'anthropic':
      return [
        'from anthropic import Anthropic',
        '',
        `client = Anthropic(base_url=${quoted(anthropicBaseUrl(url))}, api_key=${quoted(key)})`,
        'message = client.messages.create(',
        `    model=${quoted(model)},`,
        '    max_tokens=512,',
        '    messages=[{"role": "user", "content": "Hello!"}],',
        ')',
        'print(message.content[0].text)',
      ].join('\n');
  }
}
