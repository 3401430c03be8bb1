/**
 * Serving the built renderer (`out/renderer/`). Every path is decoded, resolved and checked
 * to stay inside the root before the file system is touched, so `..`, encoded `%2e%2e`,
 * encoded slashes and absolute paths cannot reach anything else.
 */
import { realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** The Content-Type for a file name; unknown types are served as opaque bytes (with nosniff). */
export function contentTypeOf(filePath: string): string {
  return contentTypes[extname(filePath).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Maps a URL pathname (still percent-encoded) to a file path inside `root`, or null when it
 * is malformed or would leave the root.
 */
export function resolveStaticPath(root: string, pathname: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const absRoot = resolve(root);
  const target = resolve(absRoot, '.' + (decoded.startsWith('/') ? decoded : '/' + decoded));
  const rel = relative(absRoot, target);
  if (rel === '') return target;
  if (rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) return null;
  // Dotfiles (.env, .git) are never part of a build; refuse them outright.
  if (rel.split(sep).some((segment) => segment.startsWith('.'))) return null;
  return target;
}

/**
 * The file at `filePath` if it exists, is a regular file and, after every symlink is resolved,
 * still lies inside `root`: a link in the build output cannot serve a file from elsewhere.
 * `path` is the resolved file, the one to open.
 */
export async function regularFile(filePath: string, root: string): Promise<{ size: number; path: string } | null> {
  try {
    const [realRoot, realFile] = await Promise.all([realpath(root), realpath(filePath)]);
    const rel = relative(realRoot, realFile);
    if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) return null;
    const s = await stat(realFile);
    return s.isFile() ? { size: s.size, path: realFile } : null;
  } catch {
    return null;
  }
}
