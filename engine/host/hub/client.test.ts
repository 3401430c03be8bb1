/**
 * The Hub client against the loopback Hub emulator (and, for answers the emulator never gives,
 * a stubbed fetch): search, repositories as models, gates and tokens, the Hub's failures as
 * errors with hints, hostile answers, and `hf:` addresses.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HearthError, HubRepo, Result } from '../../contract/index.ts';
import { startHubEmulator, type HubEmulator } from '../../../test/support/hf-emulator.ts';
import { testModelPath } from '../../../test/support/models.ts';
import { HubClient, parseHubUri } from './client.ts';
import { hubHttpError } from './errors.ts';

const allowed = 'hf_allowed_token';
let dir: string;
let hub: HubEmulator;
let model: Buffer;
let parts: Buffer[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-hub-client-'));
  const source = await testModelPath();
  model = await readFile(source);
  // A split model: the client never parses the bytes, so any file's bytes cut in two will do.
  const half = Math.floor(model.length / 2);
  parts = [model.subarray(0, half), model.subarray(half)];
  await writeFile(join(dir, 'part1.gguf'), parts[0]!);
  await writeFile(join(dir, 'part2.gguf'), parts[1]!);
  await writeFile(join(dir, 'small.gguf'), model.subarray(0, 1000));
  await writeFile(join(dir, 'README.md'), '# readme\n');
  const part1 = join(dir, 'part1.gguf');
  const part2 = join(dir, 'part2.gguf');
  const small = join(dir, 'small.gguf');
  hub = await startHubEmulator({
    repos: [
      {
        id: 'acme/Tiny-GGUF',
        files: [
          { path: 'tiny-Q8_0.gguf', source },
          { path: 'tiny-Q4_K_M.gguf', source: part1 },
          { path: 'mmproj-tiny-f16.gguf', source: small },
          { path: 'Q6_K/tiny-Q6_K-00001-of-00002.gguf', source: part1 },
          { path: 'Q6_K/tiny-Q6_K-00002-of-00002.gguf', source: part2 },
          { path: 'README.md', source: join(dir, 'README.md') },
        ],
        license: 'apache-2.0',
        downloads: 1000,
        likes: 5,
        lastModified: '2024-05-01T00:00:00.000Z',
      },
      { id: 'acme/Popular-GGUF', files: [{ path: 'p-IQ4_XS.gguf', source: small }], downloads: 50_000, likes: 1, lastModified: '2023-01-01T00:00:00.000Z', tags: ['license:mit'] },
      { id: 'acme/Liked-GGUF', files: [{ path: 'l-F16.gguf', source: small }], downloads: 10, likes: 900, lastModified: '2022-01-01T00:00:00.000Z' },
      { id: 'acme/Tiny-safetensors', files: [{ path: 'README.md', source: join(dir, 'README.md') }], downloads: 1_000_000 },
      { id: 'meta/Gated-GGUF', files: [{ path: 'g-Q4_K_M.gguf', source: small }], gated: 'manual', allowedTokens: [allowed], lastModified: '2021-01-01T00:00:00.000Z' },
      { id: 'me/Private-GGUF', files: [{ path: 'x-Q4_0.gguf', source: small }], private: true, allowedTokens: [allowed], lastModified: '2020-01-01T00:00:00.000Z' },
    ],
  });
});

afterAll(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

const client = (token: string | null = null, options: { fetch?: typeof fetch; timeoutMs?: number; endpoint?: string } = {}): HubClient =>
  new HubClient({ endpoint: options.endpoint ?? hub.endpoint, token: async () => token, ...(options.fetch ? { fetch: options.fetch } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function failure<T>(result: Result<T>): HearthError {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.value).slice(0, 200)}`);
  return result.error;
}
function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.error)}`);
  return result.value;
}

/**
 * The Hub's answer to a request for a gated repository's file, in the words a download shows
 * (hubHttpError with the repository's gate), or a failure when the file is served.
 */
async function fileRefusal(token: string | null, repo: HubRepo): Promise<HearthError> {
  const hf = client(token);
  const headers = await hf.authHeaders();
  const response = await fetch(hf.fileUrl(repo.id, repo.revision, 'g-Q4_K_M.gguf'), { headers, redirect: 'manual' });
  const body = await response.text();
  if (response.status < 400) throw new Error(`expected a refusal, got ${response.status}`);
  return hubHttpError(response.status, response.headers, body, { endpoint: hub.endpoint, repo: repo.id, path: 'g-Q4_K_M.gguf', revision: repo.revision, hadToken: token !== null, gated: repo.gated });
}

describe('search', () => {
  it('lists GGUF repositories only, in the order asked', async () => {
    const byDownloads = value(await client().search({ query: '', sort: 'downloads' }));
    expect(byDownloads.map((r) => r.id)).toEqual(['acme/Popular-GGUF', 'acme/Tiny-GGUF', 'acme/Liked-GGUF', 'meta/Gated-GGUF']);
    expect(value(await client().search({ query: '', sort: 'likes' }))[0]!.id).toBe('acme/Liked-GGUF');
    expect(value(await client().search({ query: '', sort: 'recent', limit: 2 })).map((r) => r.id)).toEqual(['acme/Tiny-GGUF', 'acme/Popular-GGUF']);
    const asked = new URL(hub.requests.filter((r) => r.path.startsWith('/api/models?')).at(-1)!.path, hub.endpoint);
    expect(asked.searchParams.get('sort')).toBe('lastModified');
    expect(asked.searchParams.get('filter')).toBe('gguf');
    expect(asked.searchParams.getAll('expand')).toEqual(expect.arrayContaining(['gated', 'lastModified', 'cardData', 'tags']));
  });

  it('reads summaries: licence from the card or a tag, gate, dates', async () => {
    const [tiny] = value(await client().search({ query: 'tiny', sort: 'downloads' }));
    expect(tiny).toEqual({ id: 'acme/Tiny-GGUF', downloads: 1000, likes: 5, lastModified: Date.parse('2024-05-01T00:00:00.000Z'), license: 'apache-2.0', gated: false, private: false });
    expect(value(await client().search({ query: 'popular', sort: 'downloads' }))[0]!.license).toBe('mit');
    expect(value(await client().search({ query: 'liked', sort: 'downloads' }))[0]!.license).toBeNull();
    expect(value(await client().search({ query: 'gated', sort: 'downloads' }))[0]!.gated).toBe('manual');
  });

  it('shows private repositories only to a token that may read them', async () => {
    expect(value(await client().search({ query: 'private', sort: 'downloads' }))).toEqual([]);
    expect(value(await client(allowed).search({ query: 'private', sort: 'downloads' }))).toMatchObject([{ id: 'me/Private-GGUF', private: true }]);
  });
});

describe('repositories', () => {
  it('groups the files as models at the commit the info names, with their real hashes', async () => {
    const repo = value(await client().repo('acme/Tiny-GGUF'));
    expect(repo).toMatchObject({ id: 'acme/Tiny-GGUF', license: 'apache-2.0', gated: false, private: false, downloads: 1000 });
    expect(repo.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(hub.requests.some((r) => r.path === `/api/models/acme/Tiny-GGUF/tree/${repo.revision}?recursive=true`)).toBe(true);
    expect(repo.files).toEqual([
      { id: 'tiny-Q4_K_M.gguf', paths: ['tiny-Q4_K_M.gguf'], name: 'tiny-Q4_K_M.gguf', quantization: 'Q4_K_M', sizeBytes: parts[0]!.length, sha256: [sha256(parts[0]!)] },
      {
        id: 'Q6_K/tiny-Q6_K-00001-of-00002.gguf',
        paths: ['Q6_K/tiny-Q6_K-00001-of-00002.gguf', 'Q6_K/tiny-Q6_K-00002-of-00002.gguf'],
        name: 'tiny-Q6_K.gguf',
        quantization: 'Q6_K',
        sizeBytes: model.length,
        sha256: [sha256(parts[0]!), sha256(parts[1]!)],
      },
      // The same size as the split one: ties are ordered by id.
      { id: 'tiny-Q8_0.gguf', paths: ['tiny-Q8_0.gguf'], name: 'tiny-Q8_0.gguf', quantization: 'Q8_0', sizeBytes: model.length, sha256: [sha256(model)] },
    ]);
  });

  it('reads a repository at a revision, and says when the revision does not exist', async () => {
    const main = value(await client().repo('acme/Tiny-GGUF'));
    expect(value(await client().repo('acme/Tiny-GGUF', main.revision)).revision).toBe(main.revision);
    const missing = failure(await client().repo('acme/Tiny-GGUF', 'no-such-branch'));
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.message).toContain('no-such-branch');
  });

  it('answers NOT_FOUND for unknown repositories and INVALID_INPUT for ids that are not ones', async () => {
    const missing = failure(await client().repo('acme/Nothing-GGUF'));
    expect(missing).toMatchObject({ code: 'NOT_FOUND', message: 'acme/Nothing-GGUF was not found on Hugging Face.' });
    expect(failure(await client().repo('../etc')).code).toBe('INVALID_INPUT');
  });

  it('explains private repositories, and reads them with a token that may', async () => {
    const anonymous = failure(await client().repo('me/Private-GGUF'));
    expect(anonymous).toMatchObject({ code: 'AUTH_REQUIRED', message: 'me/Private-GGUF is private or does not exist.' });
    expect(anonymous.hint).toContain('Models → Hugging Face token');
    const other = failure(await client('hf_other').repo('me/Private-GGUF'));
    expect(other.code).toBe('AUTH_REQUIRED');
    expect(other.message).toContain('your Hugging Face token may not read it');
    expect(value(await client(allowed).repo('me/Private-GGUF')).files.map((f) => f.id)).toEqual(['x-Q4_0.gguf']);
  });
});

describe('gated files and tokens', () => {
  it('describes a gated repository to anyone, but its files need access', async () => {
    const repo = value(await client().repo('meta/Gated-GGUF'));
    expect(repo.gated).toBe('manual');
    const anonymous = await fileRefusal(null, repo);
    expect(anonymous.code).toBe('AUTH_REQUIRED');
    expect(anonymous.message).toContain('gated');
    expect(anonymous.hint).toBe(`Request access on ${hub.endpoint.replace('http://', '')}/meta/Gated-GGUF (its authors approve requests by hand, which can take a while), then add a token with read access in Models → Hugging Face token.`);
    const refused = await fileRefusal('hf_not_granted', repo);
    expect(refused.code).toBe('AUTH_REQUIRED');
    expect(refused.message).toContain('Your Hugging Face token may not download meta/Gated-GGUF');
  });

  it('says when the Hub refuses the token itself', async () => {
    const strict = await startHubEmulator({ repos: [], validTokens: ['hf_good'] });
    try {
      const refused = failure(await client('hf_revoked', { endpoint: strict.endpoint }).search({ query: '', sort: 'downloads' }));
      expect(refused).toMatchObject({ code: 'AUTH_REQUIRED', message: 'Hugging Face refused the stored token: it may be mistyped, revoked or expired.' });
      expect(value(await client('hf_good', { endpoint: strict.endpoint }).search({ query: '', sort: 'downloads' }))).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  it('sends the token to the endpoint only, never to the CDN a download is redirected to', async () => {
    const hf = client(allowed);
    expect(await hf.authHeaders()).toEqual({ Authorization: `Bearer ${allowed}` });
    // What the documentation of authHeaders relies on: fetch drops the header across origins.
    const before = hub.requests.length;
    const response = await fetch(hf.fileUrl('meta/Gated-GGUF', 'main', 'g-Q4_K_M.gguf'), { headers: await hf.authHeaders() });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const cdnRequests = hub.requests.slice(before).filter((r) => r.server === 'cdn');
    expect(cdnRequests).toHaveLength(1);
    expect(cdnRequests[0]!.authorization).toBeUndefined();
  });

  it('treats a token store that fails as no token', async () => {
    const hf = new HubClient({ endpoint: hub.endpoint, token: () => Promise.reject(new Error('keychain locked')) });
    expect(await hf.authHeaders()).toEqual({});
    expect(value(await hf.search({ query: 'tiny', sort: 'downloads' }))).toHaveLength(1);
  });
});

describe('failures', () => {
  it('turns 429 into NETWORK_ERROR with the wait from Retry-After', async () => {
    hub.failNext(/^\/api\/models\?/, { status: 429 });
    const limited = failure(await client().search({ query: '', sort: 'downloads' }));
    expect(limited).toMatchObject({ code: 'NETWORK_ERROR', hint: 'Try again in 1 s.' });
  });

  it('turns 5xx into NETWORK_ERROR', async () => {
    hub.failNext(/\/tree\//, { status: 502 });
    const broken = failure(await client().repo('acme/Tiny-GGUF'));
    expect(broken.code).toBe('NETWORK_ERROR');
    expect(broken.message).toContain('HTTP 502');
  });

  it('turns a connection cut mid-answer into NETWORK_ERROR', async () => {
    hub.failNext(/\/tree\//, { cutAfterBytes: 20 });
    expect(failure(await client().repo('acme/Tiny-GGUF')).code).toBe('NETWORK_ERROR');
  });

  it('turns an unreachable Hub and a silent one into NETWORK_ERROR', async () => {
    const closed = await listen(() => {});
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const unreachable = failure(await client(null, { endpoint: closed.url }).search({ query: '', sort: 'downloads' }));
    expect(unreachable).toMatchObject({ code: 'NETWORK_ERROR', message: 'Could not reach Hugging Face (ECONNREFUSED).' });

    const silent = await listen(() => {}); // accepts, never answers
    try {
      const timedOut = failure(await client(null, { endpoint: silent.url, timeoutMs: 300 }).search({ query: '', sort: 'downloads' }));
      expect(timedOut).toMatchObject({ code: 'NETWORK_ERROR', message: 'Hugging Face did not answer within 1 s.' });
    } finally {
      silent.server.closeAllConnections();
      await new Promise<void>((resolve) => silent.server.close(() => resolve()));
    }
  });

  it('does not crash on answers that are not JSON, the wrong shape, or far too large', async () => {
    const stub = (body: string, headers: Record<string, string> = {}): typeof fetch => (() => Promise.resolve(new Response(body, { status: 200, headers }))) as typeof fetch;
    expect(failure(await client(null, { fetch: stub('<html>captive portal</html>') }).search({ query: '', sort: 'downloads' })).code).toBe('NETWORK_ERROR');
    expect(failure(await client(null, { fetch: stub('{"not":"a list"}') }).search({ query: '', sort: 'downloads' })).code).toBe('NETWORK_ERROR');
    expect(failure(await client(null, { fetch: stub('{"id":"a/b"}') }).repo('a/b')).code).toBe('NETWORK_ERROR');
    expect(failure(await client(null, { fetch: stub('[]', { 'Content-Length': String(500 * 1024 * 1024) }) }).search({ query: '', sort: 'downloads' })).code).toBe('NETWORK_ERROR');
    expect(failure(await client(null, { fetch: stub(`[${'"x",'.repeat(2_000_000)}"x"]`) }).search({ query: '', sort: 'downloads' })).message).toContain('far larger');
  });

  it('leaves odd search entries out and degrades odd fields instead of failing the list', async () => {
    const hostile = [
      { id: 'good/Repo-GGUF', downloads: 'many', likes: -3, lastModified: 'yesterday', gated: true, tags: 'nope', cardData: { license: ['llama3.1', 'other'] } },
      { id: 42 },
      { id: '../../etc/passwd' },
      'not an object',
      null,
    ];
    const stub = (() => Promise.resolve(Response.json(hostile))) as typeof fetch;
    expect(value(await client(null, { fetch: stub }).search({ query: '', sort: 'downloads' }))).toEqual([
      { id: 'good/Repo-GGUF', downloads: 0, likes: 0, lastModified: null, license: 'llama3.1', gated: 'auto', private: false },
    ]);
  });

  it('follows tree pages on the endpoint, and refuses a page on another site', async () => {
    const sha = 'a'.repeat(40);
    const pages = (secondPage: string): typeof fetch =>
      ((input: string | URL | Request) => {
        const url = new URL(input instanceof Request ? input.url : input);
        if (url.pathname === '/api/models/o/r') return Promise.resolve(Response.json({ id: 'o/r', sha }));
        if (url.searchParams.get('cursor') === '2') return Promise.resolve(Response.json([{ type: 'file', path: 'b-Q8_0.gguf', size: 20 }]));
        return Promise.resolve(Response.json([{ type: 'file', path: 'a-Q4_0.gguf', size: 10 }, { type: 'directory', path: 'sub', size: 0 }], { headers: { Link: `<${secondPage}>; rel="next"` } }));
      }) as typeof fetch;
    const endpoint = 'https://hub.example';
    const paged = value(await client(null, { endpoint, fetch: pages(`${endpoint}/api/models/o/r/tree/${sha}?recursive=true&cursor=2`) }).repo('o/r'));
    expect(paged.files.map((f) => f.id)).toEqual(['a-Q4_0.gguf', 'b-Q8_0.gguf']);
    expect(failure(await client('hf_secret', { endpoint, fetch: pages(`https://elsewhere.example/tree?cursor=2`) }).repo('o/r')).code).toBe('NETWORK_ERROR');
  });
});

describe('hf: addresses', () => {
  it('parses the forms and refuses what is not one', () => {
    expect(value(parseHubUri('hf:acme/Tiny-GGUF:q4_k_m'))).toEqual({ repo: 'acme/Tiny-GGUF', quantization: 'Q4_K_M' });
    expect(value(parseHubUri('hf:acme/Tiny-GGUF'))).toEqual({ repo: 'acme/Tiny-GGUF', quantization: null });
    expect(value(parseHubUri('hf://acme/Tiny-GGUF/Q6_K/tiny-Q6_K-00002-of-00002.gguf#dev'))).toEqual({ repo: 'acme/Tiny-GGUF', path: 'Q6_K/tiny-Q6_K-00002-of-00002.gguf', revision: 'dev' });
    for (const bad of ['acme/Tiny-GGUF', 'hf:acme', 'hf:acme/Tiny/../../x.gguf', 'hf:acme/Tiny/readme.md', 'hf:acme/Tiny:Q4 K', 'hf:a/b#', 'hf:a/b#x y']) {
      expect(parseHubUri(bad).ok, bad).toBe(false);
    }
  });

  it('resolves a quantization, the default one, a file, any part of a split file, and a revision', async () => {
    const hf = client();
    expect(value(await hf.resolveUri('hf:acme/Tiny-GGUF:Q8_0')).file.id).toBe('tiny-Q8_0.gguf');
    expect(value(await hf.resolveUri('hf:acme/Tiny-GGUF')).file.id).toBe('tiny-Q4_K_M.gguf');
    expect(value(await hf.resolveUri('hf:acme/Liked-GGUF')).file.id).toBe('l-F16.gguf');
    const split = value(await hf.resolveUri('hf:acme/Tiny-GGUF/Q6_K/tiny-Q6_K-00002-of-00002.gguf'));
    expect(split.file.paths).toHaveLength(2);
    const { revision } = split.repo;
    expect(value(await hf.resolveUri(`hf:acme/Tiny-GGUF:Q6_K#${revision}`)).repo.revision).toBe(revision);
  });

  it('says what is missing, with what there is', async () => {
    const missingQuant = failure(await client().resolveUri('hf:acme/Tiny-GGUF:IQ1_S'));
    expect(missingQuant).toMatchObject({ code: 'NOT_FOUND', message: 'acme/Tiny-GGUF has no IQ1_S file.', hint: 'It has Q4_K_M, Q6_K, Q8_0.' });
    expect(failure(await client().resolveUri('hf:acme/Tiny-GGUF/mmproj-tiny-f16.gguf')).code).toBe('NOT_FOUND');
    expect(failure(await client().resolveUri('hf:acme/Tiny-safetensors')).message).toBe('acme/Tiny-safetensors has no GGUF model files.');
    expect(failure(await client().resolveUri('hf:acme/Gone-GGUF:Q4_K_M')).code).toBe('NOT_FOUND');
  });
});

async function listen(handler: Parameters<typeof createServer>[0] & object): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
