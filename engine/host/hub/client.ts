/**
 * The Hugging Face Hub client: model search, a repository's GGUF files (model info plus the
 * recursive tree at the info's commit), `resolve` URLs for downloads, and `hf:` addresses. Every
 * answer is validated (zod) and size-capped before use, and every failure is data: the Hub's
 * statuses become AUTH_REQUIRED / NOT_FOUND / NETWORK_ERROR with a hint (errors.ts).
 *
 * The token is read on every request (it may change in Settings at any time) and only ever sent
 * to the endpoint's own origin.
 */
import { z } from 'zod';
import { err, hubRepoIdSchema, ok, type HubFile, type HubRepo, type HubRepoSummary, type HubSort, type Result } from '../../contract/index.ts';
import { hubHttpError, hubMalformedError, hubNetworkError, type HubFailureContext } from './errors.ts';
import { groupGgufFiles, quantizationOf } from './files.ts';
import { readCapped } from '../http-read.ts';

export const defaultHubEndpoint = 'https://huggingface.co';

export interface HubClientOptions {
  /** The Hub's address (`https://huggingface.co`, or a mirror / the test emulator). */
  readonly endpoint: string;
  /** The stored token, or null; asked on every request. */
  readonly token: () => Promise<string | null>;
  readonly fetch?: typeof fetch;
  /** Per request, body included (default 30 s). */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_SEARCH_LIMIT = 30;
/** Search answers and model info are small; a repository's tree can list thousands of files. */
const MAX_JSON_BYTES = 5 * 1024 * 1024;
const MAX_TREE_BYTES = 20 * 1024 * 1024;
/** Error bodies are read only for their message. */
const MAX_ERROR_BYTES = 64 * 1024;
/** Tree pages followed at most (the Hub pages long listings through `Link: <…>; rel="next"`). */
const MAX_TREE_PAGES = 50;

/** The fields a search asks for: the Hub returns only these (and `id`) when `expand` is given. */
const SEARCH_FIELDS = ['downloads', 'likes', 'lastModified', 'gated', 'private', 'tags', 'cardData'] as const;

const hubSortParam: Readonly<Record<HubSort, string>> = { downloads: 'downloads', recent: 'lastModified', likes: 'likes' };

/** A count the Hub may omit or send oddly: anything but a finite non-negative number reads as 0. */
const count = z.number().finite().nonnegative().catch(0).optional();

/** The fields of a summary, tolerant field by field: a hostile or odd value degrades, it does not fail the list. */
const summaryShape = {
  id: z.string().max(200),
  downloads: count,
  likes: count,
  lastModified: z.string().max(100).nullable().catch(null).optional(),
  gated: z.unknown().optional(),
  private: z.boolean().catch(false).optional(),
  tags: z.array(z.unknown()).max(5000).catch([]).optional(),
  cardData: z.object({ license: z.unknown().optional() }).nullable().catch(null).optional(),
};
const summarySchema = z.object(summaryShape);
const infoSchema = z.object({ ...summaryShape, sha: z.string().regex(/^[0-9a-f]{40}$/i) });
const treeSchema = z.array(
  z.object({
    type: z.string(),
    path: z.string().max(4096),
    size: z.number().finite().nonnegative(),
    lfs: z.object({ oid: z.string().max(200) }).nullable().optional(),
  }),
);

type SummaryJson = z.infer<typeof summarySchema>;

/** `false`, `'auto'` or `'manual'`; an older `true` reads as `'auto'`. */
function gatedOf(value: unknown): false | 'auto' | 'manual' {
  if (value === 'manual') return 'manual';
  return value === true || value === 'auto' ? 'auto' : false;
}

/** `cardData.license` (a string, or the first of a list), else a `license:xxx` tag. */
function licenseOf(json: SummaryJson): string | null {
  const declared = json.cardData?.license;
  const first = Array.isArray(declared) ? (declared as unknown[])[0] : declared;
  if (typeof first === 'string' && first.trim() !== '') return first.trim().slice(0, 100);
  const tag = json.tags?.find((t): t is string => typeof t === 'string' && t.startsWith('license:'));
  return tag === undefined ? null : tag.slice('license:'.length).slice(0, 100) || null;
}

function summaryOf(json: SummaryJson): HubRepoSummary {
  const modified = json.lastModified ? Date.parse(json.lastModified) : Number.NaN;
  return {
    id: json.id,
    downloads: json.downloads ?? 0,
    likes: json.likes ?? 0,
    lastModified: Number.isNaN(modified) ? null : modified,
    license: licenseOf(json),
    gated: gatedOf(json.gated),
    private: json.private ?? false,
  };
}

/** A repository id's segments, encoded for a URL path. */
function repoPath(id: string): string {
  return id
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
}

/** The `next` URL of a `Link` header, or null. */
function nextLink(header: string | null): string | null {
  if (header === null) return null;
  for (const part of header.split(',')) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (match) return match[1]!;
  }
  return null;
}

/** The `hf:` address forms: a quantization of a repository, or a file in it, each at an optional revision. */
export type HubUri = { readonly repo: string; readonly revision?: string } & ({ readonly quantization: string | null } | { readonly path: string });

/**
 * Parses `hf:owner/name`, `hf:owner/name:QUANT` and `hf:owner/name/path/file.gguf`, each with an
 * optional `#revision` (`hf://` is accepted too). The path may not climb (`..`) and must name a GGUF.
 */
export function parseHubUri(uri: string): Result<HubUri> {
  const match = /^hf:(?:\/\/)?([^#]+?)(?:#([^#]+))?$/i.exec(uri.trim());
  const invalid = err<HubUri>('INVALID_INPUT', `"${uri.slice(0, 200)}" is not a Hugging Face address.`, 'Use hf:owner/name:Q4_K_M or hf:owner/name/file.gguf.');
  if (!match) return invalid;
  const body = match[1]!;
  const revision = match[2];
  if (revision !== undefined && !/^[\w./-]{1,200}$/.test(revision)) return invalid;
  const at = revision === undefined ? {} : { revision };
  const segments = body.split('/');
  if (segments.length < 2 || segments.some((s) => s === '' || s === '.' || s === '..')) return invalid;
  if (segments.length === 2) {
    const [owner, nameAndQuant] = segments as [string, string];
    const colon = nameAndQuant.indexOf(':');
    const name = colon < 0 ? nameAndQuant : nameAndQuant.slice(0, colon);
    const quant = colon < 0 ? null : nameAndQuant.slice(colon + 1);
    const repo = `${owner}/${name}`;
    if (!hubRepoIdSchema.safeParse(repo).success || (quant !== null && !/^[\w-]{1,40}$/.test(quant))) return invalid;
    return ok({ repo, quantization: quant === null ? null : (quantizationOf(quant) ?? quant.toUpperCase()), ...at });
  }
  const repo = `${segments[0]}/${segments[1]}`;
  const path = segments.slice(2).join('/');
  if (!hubRepoIdSchema.safeParse(repo).success || !path.toLowerCase().endsWith('.gguf')) return invalid;
  return ok({ repo, path, ...at });
}

export class HubClient {
  readonly endpoint: string;
  readonly #origin: string;
  readonly #token: () => Promise<string | null>;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(options: HubClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.#origin = new URL(this.endpoint).origin;
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** GGUF repositories matching `query` (empty: all), in the Hub's order for `sort`, most first. */
  async search(input: { query: string; sort: HubSort; limit?: number }): Promise<Result<HubRepoSummary[]>> {
    const params = new URLSearchParams();
    if (input.query.trim() !== '') params.set('search', input.query.trim());
    params.set('filter', 'gguf');
    params.set('sort', hubSortParam[input.sort]);
    params.set('direction', '-1');
    params.set('limit', String(Math.min(Math.max(Math.trunc(input.limit ?? DEFAULT_SEARCH_LIMIT), 1), 100)));
    for (const field of SEARCH_FIELDS) params.append('expand', field);
    const answer = await this.#getJson(`/api/models?${params.toString()}`, MAX_JSON_BYTES, {});
    if (!answer.ok) return answer;
    if (!Array.isArray(answer.value.json)) return { ok: false, error: hubMalformedError('a search answer') };
    const repos: HubRepoSummary[] = [];
    for (const entry of answer.value.json) {
      // One odd entry is left out rather than failing the whole search.
      const parsed = summarySchema.safeParse(entry);
      if (parsed.success && hubRepoIdSchema.safeParse(parsed.data.id).success) repos.push(summaryOf(parsed.data));
    }
    return ok(repos);
  }

  /**
   * A repository's summary and GGUF files (grouped: groupGgufFiles) at `revision` (default: the
   * main branch). The tree is listed at the commit the info names, so the files and `revision`
   * agree even when the branch moves in between.
   */
  async repo(id: string, revision?: string): Promise<Result<HubRepo>> {
    if (!hubRepoIdSchema.safeParse(id).success) return err('INVALID_INPUT', `"${id.slice(0, 200)}" is not a Hugging Face repository id (owner/name).`);
    const context: Partial<HubFailureContext> = revision === undefined ? { repo: id } : { repo: id, revision };
    const infoPath = revision === undefined ? `/api/models/${repoPath(id)}` : `/api/models/${repoPath(id)}/revision/${encodeURIComponent(revision)}`;
    const info = await this.#getJson(infoPath, MAX_JSON_BYTES, context);
    if (!info.ok) return info;
    const parsedInfo = infoSchema.safeParse(info.value.json);
    if (!parsedInfo.success) return { ok: false, error: hubMalformedError(`information about ${id}`) };
    const sha = parsedInfo.data.sha.toLowerCase();
    const entries: z.infer<typeof treeSchema> = [];
    let next: string | null = `/api/models/${repoPath(id)}/tree/${sha}?recursive=true`;
    let budget = MAX_TREE_BYTES;
    for (let page = 0; next !== null; page++) {
      if (page >= MAX_TREE_PAGES) return { ok: false, error: hubMalformedError(`a file list of ${id} longer`) };
      const tree: Result<{ json: unknown; bytes: number; link: string | null }> = await this.#getJson(next, budget, context);
      if (!tree.ok) return tree;
      const parsedTree = treeSchema.safeParse(tree.value.json);
      if (!parsedTree.success) return { ok: false, error: hubMalformedError(`a file list of ${id}`) };
      entries.push(...parsedTree.data);
      budget -= tree.value.bytes;
      next = tree.value.link;
    }
    const files = groupGgufFiles(entries.filter((e) => e.type === 'file').map((e) => ({ path: e.path, size: e.size, ...(e.lfs ? { lfs: e.lfs } : {}) })));
    return ok({ ...summaryOf(parsedInfo.data), id, revision: sha, files });
  }

  /** The `resolve` URL of a file at a revision (each path segment encoded). */
  fileUrl(repo: string, revision: string, path: string): string {
    const encodedPath = path
      .split('/')
      .map((segment) => encodeURIComponent(segment))
      .join('/');
    return `${this.endpoint}/${repoPath(repo)}/resolve/${encodeURIComponent(revision)}/${encodedPath}`;
  }

  /**
   * `{ Authorization: 'Bearer …' }` when a token is stored, else `{}`: for requests to the
   * endpoint only. The Hub redirects file downloads to a CDN on another host, whose signed URL
   * needs no token, and the token must never reach it: fetch drops Authorization on a
   * cross-origin redirect (Fetch standard), and code that follows redirects itself must do the
   * same (the download transfer sends them to this origin only).
   */
  async authHeaders(): Promise<Record<string, string>> {
    let token: string | null;
    try {
      token = await this.#token();
    } catch {
      token = null; // A keychain that cannot be read behaves as no token: public repositories still work.
    }
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  /**
   * The repository and file an `hf:` address names (parseHubUri). Without a quantization it is
   * Q4_K_M when the repository has one, else its smallest file (as llama.cpp's `-hf` chooses).
   */
  async resolveUri(uri: string): Promise<Result<{ repo: HubRepo; file: HubFile }>> {
    const parsed = parseHubUri(uri);
    if (!parsed.ok) return parsed;
    const address = parsed.value;
    const repo = await this.repo(address.repo, address.revision);
    if (!repo.ok) return repo;
    const files = repo.value.files;
    if (files.length === 0) return err('NOT_FOUND', `${address.repo} has no GGUF model files.`);
    let file: HubFile | undefined;
    if ('path' in address) {
      // Any part of a split model names the whole model.
      file = files.find((f) => f.paths.includes(address.path));
      if (!file) return err('NOT_FOUND', `${address.repo} has no model file ${address.path}.`, `Its files: ${files.map((f) => f.id).join(', ')}.`);
    } else if (address.quantization === null) {
      file = files.find((f) => f.quantization === 'Q4_K_M') ?? files[0];
    } else {
      file = files.find((f) => f.quantization === address.quantization);
      if (!file) {
        const available = [...new Set(files.map((f) => f.quantization).filter((q) => q !== null))];
        return err('NOT_FOUND', `${address.repo} has no ${address.quantization} file.`, available.length > 0 ? `It has ${available.join(', ')}.` : 'Its files name no quantization: use hf:owner/name/file.gguf.');
      }
    }
    return ok({ repo: repo.value, file: file! });
  }

  /** GET a JSON document from the endpoint: parsed, but not yet validated. */
  async #getJson(pathOrUrl: string, maxBytes: number, context: Partial<HubFailureContext>): Promise<Result<{ json: unknown; bytes: number; link: string | null }>> {
    const url = new URL(pathOrUrl, `${this.endpoint}/`);
    // A `Link` to another origin would carry the token there: refuse it rather than follow.
    if (url.origin !== this.#origin) return { ok: false, error: hubMalformedError('a link to another site') };
    const headers = { Accept: 'application/json', ...(await this.authHeaders()) };
    const failure: HubFailureContext = { endpoint: this.endpoint, hadToken: 'Authorization' in headers, ...context };
    let response: Response;
    let text: string | null;
    try {
      response = await this.#fetch(url, { headers, signal: AbortSignal.timeout(this.#timeoutMs) });
      if (!response.ok) {
        const body = (await readCapped(response, MAX_ERROR_BYTES)) ?? '';
        return { ok: false, error: hubHttpError(response.status, response.headers, body, failure) };
      }
      text = await readCapped(response, maxBytes);
    } catch (error) {
      return { ok: false, error: hubNetworkError(error, this.#timeoutMs) };
    }
    if (text === null) return { ok: false, error: hubMalformedError('an answer far larger than expected') };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false, error: hubMalformedError('an answer') };
    }
    return ok({ json, bytes: Buffer.byteLength(text), link: nextLink(response.headers.get('link')) });
  }
}
