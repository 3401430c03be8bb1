/**
 * A loopback Hugging Face Hub for tests: the parts of huggingface.co that Hearth uses (model
 * search, model info, the file tree, `resolve` downloads and the CDN they redirect to), served
 * from files on disk, with the Hub's JSON field names, status codes and headers.
 *
 * Two listeners on 127.0.0.1: the Hub itself (`endpoint`) and a CDN (`cdnEndpoint`) on another
 * port, so that the `resolve` redirect crosses origins as the real one does (huggingface.co to
 * cdn-lfs.hf.co): a client that forwards its token across that redirect can be caught in
 * `requests`. File bodies are streamed from disk, never held in memory, and can be throttled
 * (`setRate`), cut (`failNext`) or corrupted (`corrupt`).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface EmulatorFile {
  /** The path in the repository (`Q4_K_M/model-Q4_K_M-00001-of-00002.gguf`). */
  readonly path: string;
  /** Absolute path of the bytes on disk. */
  readonly source: string;
  /** Stored with Git LFS: served through the CDN redirect, with an `lfs` entry in the tree. Default: true for `.gguf`. */
  readonly lfs?: boolean;
}

export interface EmulatorRepo {
  /** `owner/name`. */
  readonly id: string;
  readonly files: readonly EmulatorFile[];
  /** Gated repositories are listed and described to anyone, but their files need an allowed token. */
  readonly gated?: false | 'auto' | 'manual';
  /** Private repositories are invisible (401) without an allowed token. */
  readonly private?: boolean;
  /** Goes to `cardData.license` and a `license:xxx` tag. */
  readonly license?: string;
  readonly downloads?: number;
  readonly likes?: number;
  /** ISO date; default: the moment the repository was added. */
  readonly lastModified?: string;
  /** `gguf` is added for repositories with `.gguf` files. */
  readonly tags?: readonly string[];
  /** Tokens that may read a gated or private repo. */
  readonly allowedTokens?: readonly string[];
}

/** One request as the emulator saw it (both listeners). */
export interface EmulatorRequest {
  readonly method: string;
  /** The path with its query string, as sent (`/api/models?search=x`). */
  readonly path: string;
  /** The listener that answered: the Hub, or the CDN that `resolve` redirects to. */
  readonly server: 'hub' | 'cdn';
  readonly range?: string;
  readonly authorization?: string;
}

/** A fault for `failNext`: answer with a status, or cut the body after some bytes. */
export type EmulatorFault = { readonly status: number; readonly count?: number } | { readonly cutAfterBytes: number; readonly count?: number };

export interface HubEmulator {
  /** The Hub's address: `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** The CDN's address (another port: another origin). */
  readonly cdnEndpoint: string;
  readonly requests: readonly EmulatorRequest[];
  /**
   * The next `count` (default 1) requests whose path (with query) matches answer `status` (429
   * comes with `Retry-After: 1`), or are cut after `cutAfterBytes` body bytes (the socket is
   * destroyed). A cut is spent only by a response that has a body (not by a redirect or a HEAD).
   */
  failNext(match: RegExp, fault: EmulatorFault): void;
  /** Throttles file bodies to about this many bytes/second (0 = unlimited); applies to responses already under way. */
  setRate(bytesPerSecond: number): void;
  /** Serves other bytes than the listed hash for a file (a corrupted upload / CDN): every byte inverted, same size. */
  corrupt(repo: string, path: string): void;
  /** Adds a repository, or replaces one with the same id (a new commit, which ends `corrupt` for its files). */
  addRepo(repo: EmulatorRepo): Promise<void>;
  close(): Promise<void>;
}

export interface HubEmulatorOptions {
  readonly repos: readonly EmulatorRepo[];
  /**
   * When given, the Hub knows only these tokens and every repository's `allowedTokens`: any other
   * bearer token is answered 401 "Invalid credentials" everywhere, as the real Hub does for a
   * revoked or mistyped token. Without it, unknown tokens are treated as valid but not allowed.
   */
  readonly validTokens?: readonly string[];
}

interface StoredFile {
  readonly path: string;
  readonly source: string;
  readonly size: number;
  readonly sha256: string;
  /** The git blob id: of the bytes for a plain file, of the LFS pointer for an LFS one. */
  readonly gitOid: string;
  readonly lfs: boolean;
  readonly pointerSize: number;
}

interface StoredRepo {
  readonly repo: EmulatorRepo;
  readonly sha: string;
  readonly files: readonly StoredFile[];
  readonly lastModified: string;
  readonly createdAt: string;
}

interface FaultRule {
  readonly match: RegExp;
  readonly fault: EmulatorFault;
  remaining: number;
}

/** The fields `/api/models` returns when no `expand[]` narrows them. */
const summaryFields = ['author', 'downloads', 'likes', 'lastModified', 'gated', 'private', 'tags', 'library_name', 'cardData', 'createdAt', 'sha'] as const;

async function sha256Of(source: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(source)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function gitBlobOid(source: string, size: number): Promise<string> {
  const hash = createHash('sha1');
  hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(source)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

async function storeRepo(repo: EmulatorRepo): Promise<StoredRepo> {
  const files: StoredFile[] = [];
  for (const file of repo.files) {
    const { size } = await stat(file.source);
    const sha256 = await sha256Of(file.source);
    const lfs = file.lfs ?? file.path.toLowerCase().endsWith('.gguf');
    const pointer = lfsPointer(sha256, size);
    const gitOid = lfs ? createHash('sha1').update(`blob ${Buffer.byteLength(pointer)}\0${pointer}`).digest('hex') : await gitBlobOid(file.source, size);
    files.push({ path: file.path, source: file.source, size, sha256, gitOid, lfs, pointerSize: Buffer.byteLength(pointer) });
  }
  const now = new Date().toISOString();
  const sha = createHash('sha1')
    .update(repo.id)
    .update(files.map((f) => `${f.path}:${f.gitOid}`).join('\n'))
    .update(now)
    .digest('hex');
  return { repo, sha, files, lastModified: repo.lastModified ?? now, createdAt: now };
}

function bearerOf(req: IncomingMessage): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1] ?? null;
}

/** Splits a path into decoded segments; null when a segment is not valid percent-encoding. */
function segmentsOf(pathname: string): string[] | null {
  try {
    return pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

/** `bytes=a-`, `bytes=a-b`, `bytes=-n`: the inclusive range, 'unsatisfiable', or null to serve everything. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null; // several ranges or garbage: the whole file
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export async function startHubEmulator(options: HubEmulatorOptions): Promise<HubEmulator> {
  const repos = new Map<string, StoredRepo>();
  for (const repo of options.repos) repos.set(repo.id, await storeRepo(repo));
  const requests: EmulatorRequest[] = [];
  const rules: FaultRule[] = [];
  const corrupted = new Set<string>();
  let rate = 0;
  let endpoint = '';
  let cdnEndpoint = '';

  const knownTokens = (): Set<string> | null => {
    if (options.validTokens === undefined) return null;
    const known = new Set(options.validTokens);
    for (const stored of repos.values()) for (const token of stored.repo.allowedTokens ?? []) known.add(token);
    return known;
  };
  const mayRead = (stored: StoredRepo, token: string | null): boolean => token !== null && (stored.repo.allowedTokens ?? []).includes(token);
  /** Private repositories exist only for those who may read them. */
  const visible = (stored: StoredRepo | undefined, token: string | null): stored is StoredRepo => stored !== undefined && (!stored.repo.private || mayRead(stored, token));

  function takeRule(path: string, kind: 'status' | 'cut'): EmulatorFault | null {
    const rule = rules.find((r) => r.remaining > 0 && r.match.test(path) && ('status' in r.fault ? kind === 'status' : kind === 'cut'));
    if (!rule) return null;
    rule.remaining -= 1;
    return rule.fault;
  }

  /** The Hub's error shape: a JSON body and the `X-Error-Code` / `X-Error-Message` headers its clients read. */
  function sendError(res: ServerResponse, status: number, message: string, code?: string, extra: Record<string, string> = {}): void {
    const headers: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8', 'X-Error-Message': message, ...extra };
    if (code) headers['X-Error-Code'] = code;
    res.writeHead(status, headers);
    res.end(JSON.stringify({ error: message }));
  }

  async function waitDrain(res: ServerResponse): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  /** Writes a body, honouring a cut fault; false when it was cut (the socket is gone). */
  async function writeBody(req: IncomingMessage, res: ServerResponse, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, throttle: boolean, path: string): Promise<void> {
    const fault = req.method === 'HEAD' ? null : takeRule(path, 'cut');
    let budget = fault !== null && 'cutAfterBytes' in fault ? fault.cutAfterBytes : Infinity;
    for await (const chunk of chunks) {
      let rest = chunk;
      while (rest.length > 0) {
        if (res.destroyed) return;
        // Slices of about a twentieth of a second at the current rate, so setRate takes effect mid-body.
        const sliceSize = throttle && rate > 0 ? Math.max(1, Math.floor(rate / 20)) : rest.length;
        let slice = rest.subarray(0, Math.min(sliceSize, rest.length));
        rest = rest.subarray(slice.length);
        if (slice.length >= budget) {
          slice = slice.subarray(0, budget);
          if (slice.length > 0) res.write(slice);
          // Let the bytes leave before the socket goes, so the client sees exactly `cutAfterBytes`.
          await new Promise<void>((resolve) => res.socket?.write('', () => resolve()) ?? resolve());
          res.socket?.destroy();
          res.destroy();
          return;
        }
        budget -= slice.length;
        if (!res.write(slice)) await waitDrain(res);
        if (throttle && rate > 0) await sleep((slice.length / rate) * 1000);
      }
    }
    res.end();
  }

  async function sendJson(req: IncomingMessage, res: ServerResponse, path: string, value: unknown, headers: Record<string, string> = {}): Promise<void> {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(body.length), ...headers });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await writeBody(req, res, [body], false, path);
  }

  /** Streams a file (or a range of it) from disk, inverted when corrupted. */
  async function sendFile(req: IncomingMessage, res: ServerResponse, path: string, stored: StoredRepo, file: StoredFile, etag: string, headers: Record<string, string>): Promise<void> {
    const ifRange = req.headers['if-range'];
    const rangeHeader = ifRange === undefined || ifRange === etag ? req.headers.range : undefined;
    const range = parseRange(rangeHeader, file.size);
    const common = { 'Accept-Ranges': 'bytes', ETag: etag, 'Content-Type': 'application/octet-stream', ...headers };
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...common, 'Content-Range': `bytes */${file.size}` });
      res.end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? file.size - 1;
    const length = file.size === 0 ? 0 : end - start + 1;
    res.writeHead(range ? 206 : 200, {
      ...common,
      'Content-Length': String(length),
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${file.size}` } : {}),
    });
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const invert = corrupted.has(`${stored.repo.id}/${file.path}`);
    const stream = createReadStream(file.source, { start, end, highWaterMark: 64 * 1024 });
    async function* bytes(): AsyncGenerator<Buffer> {
      for await (const chunk of stream) {
        const buffer = chunk as Buffer;
        if (!invert) yield buffer;
        else {
          const flipped = Buffer.allocUnsafe(buffer.length);
          for (let i = 0; i < buffer.length; i++) flipped[i] = buffer[i]! ^ 0xff;
          yield flipped;
        }
      }
    }
    try {
      await writeBody(req, res, bytes(), true, path);
    } finally {
      stream.destroy();
    }
  }

  function summaryOf(stored: StoredRepo, fields: readonly string[]): Record<string, unknown> {
    const { repo } = stored;
    const hasGguf = stored.files.some((f) => f.path.toLowerCase().endsWith('.gguf'));
    const tags = [...(repo.tags ?? [])];
    if (hasGguf && !tags.includes('gguf')) tags.push('gguf');
    if (repo.license && !tags.includes(`license:${repo.license}`)) tags.push(`license:${repo.license}`);
    const all: Record<string, unknown> = {
      author: repo.id.split('/')[0],
      downloads: repo.downloads ?? 0,
      likes: repo.likes ?? 0,
      lastModified: stored.lastModified,
      gated: repo.gated ?? false,
      private: repo.private ?? false,
      tags,
      ...(hasGguf ? { library_name: 'gguf' } : {}),
      cardData: repo.license ? { license: repo.license } : {},
      createdAt: stored.createdAt,
      sha: stored.sha,
    };
    const out: Record<string, unknown> = { _id: stored.sha.slice(0, 24), id: repo.id };
    for (const field of fields) if (field in all) out[field] = all[field];
    return out;
  }

  async function handleSearch(req: IncomingMessage, res: ServerResponse, path: string, url: URL, token: string | null): Promise<void> {
    const search = (url.searchParams.get('search') ?? '').toLowerCase();
    const filters = [...url.searchParams.getAll('filter'), ...url.searchParams.getAll('filter[]')].flatMap((f) => f.split(','));
    const author = url.searchParams.get('author');
    const sort = url.searchParams.get('sort') ?? 'trendingScore';
    const direction = url.searchParams.get('direction') === '1' ? 1 : -1;
    const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 1000) || 1000, 1), 1000);
    const expand = [...url.searchParams.getAll('expand'), ...url.searchParams.getAll('expand[]')];
    const unknownExpand = expand.find((e) => !(summaryFields as readonly string[]).includes(e) && e !== 'siblings');
    if (unknownExpand !== undefined) {
      sendError(res, 400, `"expand" must be one of: ${summaryFields.join(', ')}, siblings`, 'BadRequest');
      return;
    }
    let found = [...repos.values()].filter((stored) => visible(stored, token));
    if (search) found = found.filter((s) => s.repo.id.toLowerCase().includes(search));
    if (author) found = found.filter((s) => s.repo.id.split('/')[0] === author);
    for (const filter of filters) found = found.filter((s) => (summaryOf(s, ['tags']).tags as string[]).includes(filter) || (filter === 'gguf' && s.files.some((f) => f.path.toLowerCase().endsWith('.gguf'))));
    const key = (s: StoredRepo): number => {
      if (sort === 'downloads') return s.repo.downloads ?? 0;
      if (sort === 'likes' || sort === 'likes7d') return s.repo.likes ?? 0;
      if (sort === 'lastModified' || sort === 'createdAt') return Date.parse(s.lastModified);
      return (s.repo.downloads ?? 0) + (s.repo.likes ?? 0);
    };
    found.sort((a, b) => (key(a) - key(b)) * direction || a.repo.id.localeCompare(b.repo.id));
    const fields = expand.length > 0 ? expand : summaryFields;
    await sendJson(req, res, path, found.slice(0, limit).map((s) => summaryOf(s, fields)));
  }

  /** The gate in front of a repository's files; true when it answered (refused). */
  function refuseFiles(res: ServerResponse, stored: StoredRepo, token: string | null): boolean {
    if (!stored.repo.gated || mayRead(stored, token)) return false;
    const id = stored.repo.id;
    if (token === null) sendError(res, 401, `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`, 'GatedRepo');
    else sendError(res, 403, `Access to model ${id} is restricted and you are not in the authorized list. Visit ${endpoint}/${id} to ask for access.`, 'GatedRepo');
    return true;
  }

  function repoMissing(res: ServerResponse, stored: StoredRepo | undefined): void {
    // The Hub answers 401 for a private repository you may not see, so as not to reveal that it exists.
    if (stored !== undefined) sendError(res, 401, 'Repository not found', 'RepoNotFound');
    else sendError(res, 404, 'Repository not found', 'RepoNotFound');
  }

  function revisionOk(res: ServerResponse, stored: StoredRepo, revision: string): boolean {
    if (revision === 'main' || revision === stored.sha) return true;
    sendError(res, 404, `Invalid rev id: ${revision}`, 'RevisionNotFound');
    return false;
  }

  async function handleInfo(req: IncomingMessage, res: ServerResponse, path: string, stored: StoredRepo): Promise<void> {
    await sendJson(req, res, path, {
      ...summaryOf(stored, summaryFields),
      modelId: stored.repo.id,
      disabled: false,
      siblings: stored.files.map((f) => ({ rfilename: f.path })),
      usedStorage: stored.files.reduce((sum, f) => sum + f.size, 0),
    });
  }

  async function handleTree(req: IncomingMessage, res: ServerResponse, path: string, url: URL, stored: StoredRepo, under: string): Promise<void> {
    const recursive = url.searchParams.get('recursive') === 'true' || url.searchParams.get('recursive') === '1';
    const prefix = under === '' ? '' : `${under}/`;
    const inside = stored.files.filter((f) => f.path.startsWith(prefix));
    if (under !== '' && inside.length === 0) {
      sendError(res, 404, `Entry not found`, 'EntryNotFound');
      return;
    }
    const dirs = new Set<string>();
    const entries: Record<string, unknown>[] = [];
    for (const file of inside) {
      const rest = file.path.slice(prefix.length).split('/');
      // Every folder on the way is an entry of its own (only the first level without `recursive`).
      for (let depth = 1; depth < rest.length && (recursive || depth === 1); depth++) dirs.add(prefix + rest.slice(0, depth).join('/'));
      if (!recursive && rest.length > 1) continue;
      entries.push({
        type: 'file',
        oid: file.gitOid,
        size: file.size,
        path: file.path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.size, pointerSize: file.pointerSize } } : {}),
      });
    }
    const dirEntries = [...dirs].map((dir) => ({ type: 'directory', oid: createHash('sha1').update(dir).digest('hex'), size: 0, path: dir }));
    await sendJson(req, res, path, [...dirEntries, ...entries].sort((a, b) => String(a.path).localeCompare(String(b.path))));
  }

  async function handleResolve(req: IncomingMessage, res: ServerResponse, path: string, stored: StoredRepo, revision: string, filePath: string, token: string | null): Promise<void> {
    if (refuseFiles(res, stored, token)) return;
    if (!revisionOk(res, stored, revision)) return;
    const file = stored.files.find((f) => f.path === filePath);
    if (!file) {
      sendError(res, 404, 'Entry not found', 'EntryNotFound');
      return;
    }
    const common = { 'X-Repo-Commit': stored.sha };
    if (!file.lfs) {
      await sendFile(req, res, path, stored, file, `"${file.gitOid}"`, common);
      return;
    }
    const location = `${cdnEndpoint}/cdn/${file.sha256}?repo=${encodeURIComponent(stored.repo.id)}&file=${encodeURIComponent(file.path)}&Expires=${Math.floor(Date.now() / 1000) + 3600}`;
    res.writeHead(302, {
      ...common,
      Location: location,
      ETag: `"${file.gitOid}"`,
      'X-Linked-Etag': `"${file.sha256}"`,
      'X-Linked-Size': String(file.size),
      'Content-Length': '0',
    });
    res.end();
  }

  async function handleCdn(req: IncomingMessage, res: ServerResponse, path: string, url: URL, segments: readonly string[]): Promise<void> {
    const stored = repos.get(url.searchParams.get('repo') ?? '');
    const file = stored?.files.find((f) => f.path === url.searchParams.get('file') && f.sha256 === segments[1]);
    if (!stored || !file || segments.length !== 2) {
      res.writeHead(403, { 'Content-Type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    await sendFile(req, res, path, stored, file, `"${file.sha256}"`, {});
  }

  async function handle(server: 'hub' | 'cdn', req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    requests.push({
      method: req.method ?? 'GET',
      path,
      server,
      ...(req.headers.range !== undefined ? { range: req.headers.range } : {}),
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
    });
    const fault = takeRule(path, 'status');
    if (fault !== null && 'status' in fault) {
      sendError(res, fault.status, fault.status === 429 ? 'You have been rate-limited; you can retry this action in about 1 second.' : `Emulated failure ${fault.status}`, undefined, fault.status === 429 ? { 'Retry-After': '1' } : {});
      return;
    }
    const url = new URL(path, 'http://emulator');
    const segments = segmentsOf(url.pathname);
    if (segments === null) {
      sendError(res, 400, 'Malformed path');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, 'Method not allowed');
      return;
    }
    if (server === 'cdn') {
      if (segments[0] === 'cdn') await handleCdn(req, res, path, url, segments);
      else sendError(res, 404, 'Not found');
      return;
    }
    const token = bearerOf(req);
    const known = knownTokens();
    if (token !== null && known !== null && !known.has(token)) {
      sendError(res, 401, 'Invalid credentials in Authorization header', undefined);
      return;
    }
    if (segments[0] === 'api' && segments[1] === 'models') {
      if (segments.length === 2) {
        await handleSearch(req, res, path, url, token);
        return;
      }
      const stored = repos.get(`${segments[2]}/${segments[3]}`);
      if (segments.length < 4 || !visible(stored, token)) {
        repoMissing(res, segments.length < 4 ? undefined : stored);
        return;
      }
      const rest = segments.slice(4);
      if (rest.length === 0) await handleInfo(req, res, path, stored);
      else if (rest[0] === 'revision' && rest.length === 2) {
        if (revisionOk(res, stored, rest[1]!)) await handleInfo(req, res, path, stored);
      } else if (rest[0] === 'tree' && rest.length >= 2) {
        if (revisionOk(res, stored, rest[1]!)) await handleTree(req, res, path, url, stored, rest.slice(2).join('/'));
      } else sendError(res, 404, 'Not found');
      return;
    }
    if (segments.length >= 5 && segments[2] === 'resolve') {
      const stored = repos.get(`${segments[0]}/${segments[1]}`);
      if (!visible(stored, token)) repoMissing(res, stored);
      else await handleResolve(req, res, path, stored, segments[3]!, segments.slice(4).join('/'), token);
      return;
    }
    sendError(res, 404, 'Not found');
  }

  const listen = async (name: 'hub' | 'cdn'): Promise<{ server: Server; url: string }> => {
    const server = createServer((req, res) => {
      handle(name, req, res).catch((error: unknown) => {
        if (!res.headersSent) sendError(res, 500, `Emulator error: ${String(error)}`);
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const hub = await listen('hub');
  const cdn = await listen('cdn');
  endpoint = hub.url;
  cdnEndpoint = cdn.url;

  return {
    endpoint,
    cdnEndpoint,
    requests,
    failNext(match, fault) {
      rules.push({ match, fault, remaining: fault.count ?? 1 });
    },
    setRate(bytesPerSecond) {
      rate = Math.max(0, bytesPerSecond);
    },
    corrupt(repo, path) {
      corrupted.add(`${repo}/${path}`);
    },
    async addRepo(repo) {
      repos.set(repo.id, await storeRepo(repo));
      // A new commit serves its files as they are: an earlier corruption of the old one is gone.
      for (const key of [...corrupted]) if (key.startsWith(`${repo.id}/`)) corrupted.delete(key);
    },
    async close() {
      const closing = [hub.server, cdn.server].map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const server of [hub.server, cdn.server]) server.closeAllConnections();
      await Promise.all(closing);
    },
  };
}
