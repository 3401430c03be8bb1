/**
 * Model output is untrusted. A link survives only as an absolute http(s) or mailto URL
 * without credentials; everything else (javascript:, data:, file:, custom schemes, relative
 * paths that would navigate the app) is shown as text.
 */
export function safeHref(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:' && parsed.protocol !== 'mailto:') return null;
  if (parsed.username !== '' || parsed.password !== '') return null;
  return parsed.href;
}
