/**
 * What a download may be asked for and what it may write: plain addresses (https anywhere, http
 * only to this machine, for tests), the file names a download may create in the models folder,
 * and the parts of a split model named by an address. Everything here is pure: the queue does
 * the I/O.
 */
import path from 'node:path';
import { err, ok, type Result } from '../../contract/index.ts';
import { GGUF_SPLIT_NAME } from '../../gguf/format.ts';

/** Hosts plain http may reach: the loopback addresses only (test servers, the Hub emulator). */
const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Whether `url` may be fetched: https, or http to a loopback host. */
export function isAllowedAddress(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && loopbackHosts.has(url.hostname));
}

/** Device names Windows reserves whatever the extension (`nul.gguf` is the null device there). */
const windowsReserved = /^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i;

/**
 * A name a download may give its file in the models folder: one plain file name (no folder
 * separators, no `..`, no control characters, not hidden) ending `.gguf`, so the file lands in
 * the folder itself and the library lists it. Returns the name unchanged.
 */
export function checkModelFileName(name: string): Result<string> {
  const refuse = (why: string): Result<string> => err('INVALID_INPUT', `"${name.slice(0, 200)}" cannot be a model's file name: ${why}.`);
  if (name.length === 0) return refuse('it is empty');
  if (Buffer.byteLength(name) > 255) return refuse('it is longer than 255 bytes');
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[/\\:\x00-\x1f\x7f]/.test(name)) return refuse('it contains a folder separator, a colon or a control character');
  if (name.includes('..')) return refuse('it contains ".."');
  if (name.startsWith('.')) return refuse('it starts with a dot');
  if (!name.toLowerCase().endsWith('.gguf')) return refuse('it does not end in .gguf');
  if (windowsReserved.test(name)) return refuse('Windows reserves that name');
  return ok(name);
}

/** The final path of `name` in `dir`, or an error when it would not be a file directly inside it. */
export function modelFilePath(dir: string, name: string): Result<string> {
  const checked = checkModelFileName(name);
  if (!checked.ok) return checked;
  const root = path.resolve(dir);
  const full = path.join(root, name);
  if (path.dirname(full) !== root) return err('INVALID_INPUT', `"${name}" would not land in the models folder ${root}.`);
  return ok(full);
}

/** Where a file's bytes gather until it is complete and verified: beside it, never named `.gguf`. */
export function partPath(finalPath: string): string {
  return `${finalPath}.part`;
}

/** A label for a file, as the Hub client names its files: the name without the split suffix (`big-Q8_0.gguf`). */
export function labelOf(fileName: string): string {
  const split = GGUF_SPLIT_NAME.exec(fileName);
  return split ? `${split[1] as string}.gguf` : fileName;
}

/** One part of a plain-address download: where it comes from and what it is called. */
export interface AddressPart {
  readonly url: string;
  readonly name: string;
}

/**
 * An https (or loopback http) address of a GGUF as the parts to download: one, or every part of
 * a split model when the address names its first part (`…-00001-of-00003.gguf`; the others are
 * found by the same address with the number changed). The file name is the address's last path
 * segment; the query is kept (signed addresses) but not part of the name.
 */
export function addressParts(address: string): Result<readonly AddressPart[]> {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return err('INVALID_INPUT', `"${address.slice(0, 200)}" is neither an hf: address nor a URL.`, 'Use hf:owner/repo:QUANT, hf:owner/repo/file.gguf or an https address of a .gguf file.');
  }
  if (!isAllowedAddress(url)) return err('INVALID_INPUT', `Models can be downloaded over https only (got ${url.protocol}//${url.host}).`);
  if (url.username || url.password) return err('INVALID_INPUT', 'An address with a user name or password in it is not accepted; Hearth would store it in plain text.');
  url.hash = '';
  const segments = url.pathname.split('/');
  const last = segments.at(-1) ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    return err('INVALID_INPUT', `The address's file name "${last.slice(0, 200)}" is not valid percent-encoding.`);
  }
  const checked = checkModelFileName(name);
  if (!checked.ok) return err('INVALID_INPUT', `${checked.error.message} Give the address of a .gguf file.`);
  const split = GGUF_SPLIT_NAME.exec(name);
  if (!split) return ok([{ url: url.href, name }]);
  const [, base, index, count] = split as unknown as [string, string, string, string];
  if (Number(index) !== 1) return err('INVALID_INPUT', `${name} is part ${Number(index)} of a split model.`, `Give the first part's address (…-00001-of-${count}.gguf); Hearth downloads every part.`);
  const total = Number(count);
  if (total < 1) return err('INVALID_INPUT', `${name} names a split model of ${total} parts.`);
  const parts: AddressPart[] = [];
  for (let i = 1; i <= total; i++) {
    const partName = `${base}-${String(i).padStart(5, '0')}-of-${count}.gguf`;
    const partUrl = new URL(url.href);
    partUrl.pathname = [...segments.slice(0, -1), encodeURIComponent(partName)].join('/');
    parts.push({ url: partUrl.href, name: partName });
  }
  return ok(parts);
}
