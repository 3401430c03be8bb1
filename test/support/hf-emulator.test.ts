/**
 * The Hugging Face emulator's routes, driven with plain fetch: search, model info, the tree,
 * `resolve` and its CDN (ranges, If-Range, 416), gates, and the faults tests inject.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHubEmulator, type HubEmulator } from './hf-emulator.ts';

let dir: string;
let hub: HubEmulator;
let small: Buffer;
let readme: Buffer;
const gatedToken = 'hf_allowed';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-hf-emulator-'));
  small = randomBytes(200_000);
  readme = Buffer.from('# A model\n');
  await writeFile(join(dir, 'small.gguf'), small);
  await writeFile(join(dir, 'README.md'), readme);
  const gguf = join(dir, 'small.gguf');
  hub = await startHubEmulator({
    repos: [
      {
        id: 'acme/tiny-GGUF',
        files: [
          { path: 'tiny-Q4_K_M.gguf', source: gguf },
          { path: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf', source: gguf },
          { path: 'README.md', source: join(dir, 'README.md') },
        ],
        license: 'apache-2.0',
        downloads: 500,
        likes: 3,
        lastModified: '2024-01-01T00:00:00.000Z',
      },
      { id: 'acme/popular-GGUF', files: [{ path: 'p-F16.gguf', source: gguf }], downloads: 9000, likes: 1, lastModified: '2023-01-01T00:00:00.000Z' },
      { id: 'acme/liked-GGUF', files: [{ path: 'l-Q8_0.gguf', source: gguf }], downloads: 10, likes: 700, lastModified: '2025-01-01T00:00:00.000Z' },
      { id: 'acme/safetensors-only', files: [{ path: 'README.md', source: join(dir, 'README.md') }], downloads: 99_999 },
      { id: 'meta/gated-GGUF', files: [{ path: 'g-Q4_0.gguf', source: gguf }], gated: 'manual', allowedTokens: [gatedToken], downloads: 1 },
      { id: 'me/private-GGUF', files: [{ path: 'x-Q4_0.gguf', source: gguf }], private: true, allowedTokens: [gatedToken], downloads: 2 },
    ],
  });
});

afterAll(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const auth = (token: string): RequestInit => ({ headers: { Authorization: `Bearer ${token}` } });
async function json(path: string, init?: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${hub.endpoint}${path}`, init);
  return { status: res.status, body: await res.json(), headers: res.headers };
}

describe('search', () => {
  it('lists GGUF repositories only, sorted as asked, gated ones included and private ones hidden', async () => {
    const byDownloads = await json('/api/models?filter=gguf&sort=downloads&direction=-1&limit=50');
    expect(byDownloads.status).toBe(200);
    const ids = (byDownloads.body as { id: string }[]).map((r) => r.id);
    expect(ids).toEqual(['acme/popular-GGUF', 'acme/tiny-GGUF', 'acme/liked-GGUF', 'meta/gated-GGUF']);

    const byLikes = (await json('/api/models?filter=gguf&sort=likes&direction=-1')).body as { id: string }[];
    expect(byLikes[0]!.id).toBe('acme/liked-GGUF');
    // The gated repository has no lastModified of its own: it was modified when it was added (now).
    const recent = (await json('/api/models?filter=gguf&sort=lastModified&direction=-1&limit=3')).body as { id: string }[];
    expect(recent.map((r) => r.id)).toEqual(['meta/gated-GGUF', 'acme/liked-GGUF', 'acme/tiny-GGUF']);
  });

  it('filters by the search text and shows private repositories to allowed tokens', async () => {
    const found = (await json('/api/models?search=TINY&filter=gguf')).body as Record<string, unknown>[];
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: 'acme/tiny-GGUF', author: 'acme', downloads: 500, likes: 3, gated: false, private: false, cardData: { license: 'apache-2.0' } });
    expect(found[0]!.tags).toEqual(expect.arrayContaining(['gguf', 'license:apache-2.0']));
    const anonymous = (await json('/api/models?search=private')).body as unknown[];
    expect(anonymous).toEqual([]);
    const allowed = (await json('/api/models?search=private', auth(gatedToken))).body as { id: string; private: boolean }[];
    expect(allowed).toMatchObject([{ id: 'me/private-GGUF', private: true }]);
  });

  it('returns only the expanded fields when expand[] is given, and refuses unknown ones', async () => {
    const found = (await json('/api/models?search=gated&expand[]=gated&expand[]=downloads')).body as Record<string, unknown>[];
    expect(Object.keys(found[0]!).sort()).toEqual(['_id', 'downloads', 'gated', 'id']);
    expect(found[0]!.gated).toBe('manual');
    expect((await json('/api/models?expand[]=nonsense')).status).toBe(400);
  });
});

describe('model info and tree', () => {
  it('describes a repository with its siblings, at main or at its commit', async () => {
    const info = await json('/api/models/acme/tiny-GGUF');
    expect(info.status).toBe(200);
    const body = info.body as { sha: string; siblings: { rfilename: string }[] };
    expect(body).toMatchObject({ id: 'acme/tiny-GGUF', gated: false, private: false, cardData: { license: 'apache-2.0' }, lastModified: '2024-01-01T00:00:00.000Z' });
    expect(body.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(body.siblings.map((s) => s.rfilename).sort()).toEqual(['Q8_0/tiny-Q8_0-00001-of-00002.gguf', 'README.md', 'tiny-Q4_K_M.gguf']);
    expect((await json(`/api/models/acme/tiny-GGUF/revision/${body.sha}`)).status).toBe(200);
    const badRevision = await json('/api/models/acme/tiny-GGUF/revision/nope');
    expect(badRevision.status).toBe(404);
    expect(badRevision.headers.get('x-error-code')).toBe('RevisionNotFound');
  });

  it('answers 404 for unknown repositories and 401 for private ones without an allowed token', async () => {
    expect((await json('/api/models/acme/nothing')).status).toBe(404);
    const hidden = await json('/api/models/me/private-GGUF');
    expect(hidden.status).toBe(401);
    expect(hidden.headers.get('x-error-code')).toBe('RepoNotFound');
    expect((await json('/api/models/me/private-GGUF', auth('hf_someone_else'))).status).toBe(401);
    expect((await json('/api/models/me/private-GGUF', auth(gatedToken))).status).toBe(200);
    // Gated repositories describe themselves to anyone; only their files are gated.
    expect((await json('/api/models/meta/gated-GGUF')).status).toBe(200);
  });

  it('lists the tree recursively with LFS hashes of the real bytes', async () => {
    const tree = (await json('/api/models/acme/tiny-GGUF/tree/main?recursive=true')).body as Record<string, unknown>[];
    expect(tree).toContainEqual({ type: 'directory', oid: expect.any(String), size: 0, path: 'Q8_0' });
    const file = tree.find((e) => e.path === 'tiny-Q4_K_M.gguf');
    expect(file).toMatchObject({ type: 'file', size: small.length, lfs: { oid: sha256(small), size: small.length } });
    expect((file!.lfs as { pointerSize: number }).pointerSize).toBeGreaterThan(100);
    const plain = tree.find((e) => e.path === 'README.md');
    expect(plain).toMatchObject({ type: 'file', size: readme.length });
    expect(plain).not.toHaveProperty('lfs');
    expect(tree.find((e) => e.path === 'Q8_0/tiny-Q8_0-00001-of-00002.gguf')).toBeDefined();
  });

  it('lists one level without recursive, and a folder by its path', async () => {
    const top = (await json('/api/models/acme/tiny-GGUF/tree/main')).body as { path: string }[];
    expect(top.map((e) => e.path)).toEqual(['Q8_0', 'README.md', 'tiny-Q4_K_M.gguf']);
    const folder = (await json('/api/models/acme/tiny-GGUF/tree/main/Q8_0?recursive=true')).body as { path: string }[];
    expect(folder.map((e) => e.path)).toEqual(['Q8_0/tiny-Q8_0-00001-of-00002.gguf']);
    expect((await json('/api/models/acme/tiny-GGUF/tree/main/nothing')).status).toBe(404);
  });
});

describe('resolve and the CDN', () => {
  it('redirects an LFS file to the CDN on another origin with the linked hash and size', async () => {
    const res = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`, { method: 'HEAD', redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location.startsWith(`${hub.cdnEndpoint}/cdn/${sha256(small)}?`)).toBe(true);
    expect(hub.cdnEndpoint).not.toBe(hub.endpoint);
    expect(res.headers.get('x-linked-etag')).toBe(`"${sha256(small)}"`);
    expect(res.headers.get('x-linked-size')).toBe(String(small.length));
    expect(res.headers.get('x-repo-commit')).toMatch(/^[0-9a-f]{40}$/);
    expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]{40}"$/);

    const followed = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`);
    expect(followed.status).toBe(200);
    expect(followed.headers.get('accept-ranges')).toBe('bytes');
    expect(followed.headers.get('content-length')).toBe(String(small.length));
    expect(Buffer.from(await followed.arrayBuffer()).equals(small)).toBe(true);
  });

  it('encoded path segments resolve, and unknown files are 404', async () => {
    const res = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/Q8_0%2Ftiny-Q8_0-00001-of-00002.gguf`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const missing = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/none.gguf`, { redirect: 'manual' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-error-code')).toBe('EntryNotFound');
  });

  it('serves ranges, honours If-Range, and answers 416 past the end', async () => {
    const head = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`, { redirect: 'manual' });
    const cdn = head.headers.get('location')!;
    const from = await fetch(cdn, { headers: { Range: 'bytes=1000-' } });
    expect(from.status).toBe(206);
    expect(from.headers.get('content-range')).toBe(`bytes 1000-${small.length - 1}/${small.length}`);
    expect(Buffer.from(await from.arrayBuffer()).equals(small.subarray(1000))).toBe(true);

    const slice = await fetch(cdn, { headers: { Range: 'bytes=10-19' } });
    expect(slice.status).toBe(206);
    expect(Buffer.from(await slice.arrayBuffer()).equals(small.subarray(10, 20))).toBe(true);

    const etag = from.headers.get('etag')!;
    expect(etag).toBe(`"${sha256(small)}"`);
    const sameEtag = await fetch(cdn, { headers: { Range: 'bytes=5-', 'If-Range': etag } });
    expect(sameEtag.status).toBe(206);
    await sameEtag.arrayBuffer();
    const otherEtag = await fetch(cdn, { headers: { Range: 'bytes=5-', 'If-Range': '"stale"' } });
    expect(otherEtag.status).toBe(200);
    expect(Buffer.from(await otherEtag.arrayBuffer()).equals(small)).toBe(true);

    const past = await fetch(cdn, { headers: { Range: `bytes=${small.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${small.length}`);
  });

  it('serves non-LFS files directly', async () => {
    const res = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/README.md`, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-repo-commit')).toMatch(/^[0-9a-f]{40}$/);
    expect(Buffer.from(await res.arrayBuffer()).equals(readme)).toBe(true);
  });

  it('gates files: 401 without a token, 403 with a token not allowed, the file with an allowed one', async () => {
    const url = `${hub.endpoint}/meta/gated-GGUF/resolve/main/g-Q4_0.gguf`;
    const anonymous = await fetch(url, { redirect: 'manual' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('x-error-code')).toBe('GatedRepo');
    expect(((await anonymous.json()) as { error: string }).error).toContain('Please log in');
    const refused = await fetch(url, { redirect: 'manual', ...auth('hf_other') });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toContain('not in the authorized list');
    const allowed = await fetch(url, { redirect: 'manual', ...auth(gatedToken) });
    expect(allowed.status).toBe(302);
    const privateFile = await fetch(`${hub.endpoint}/me/private-GGUF/resolve/main/x-Q4_0.gguf`, { redirect: 'manual' });
    expect(privateFile.status).toBe(401);
  });

  it('records requests with their range and authorization', async () => {
    await fetch(`${hub.endpoint}/api/models/acme/tiny-GGUF`, { headers: { Authorization: 'Bearer hf_seen', Range: 'bytes=0-' } });
    expect(hub.requests.at(-1)).toEqual({ method: 'GET', path: '/api/models/acme/tiny-GGUF', server: 'hub', range: 'bytes=0-', authorization: 'Bearer hf_seen' });
  });
});

describe('faults', () => {
  it('answers the next matching requests with a status, 429 with Retry-After', async () => {
    hub.failNext(/^\/api\/models\/acme\/liked-GGUF$/, { status: 429, count: 2 });
    const first = await fetch(`${hub.endpoint}/api/models/acme/liked-GGUF`);
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('1');
    await first.arrayBuffer();
    expect((await fetch(`${hub.endpoint}/api/models/acme/liked-GGUF`)).status).toBe(429);
    expect((await fetch(`${hub.endpoint}/api/models/acme/liked-GGUF`)).status).toBe(200);
    hub.failNext(/liked-GGUF/, { status: 503 });
    expect((await fetch(`${hub.endpoint}/api/models/acme/liked-GGUF`)).status).toBe(503);
  });

  it('cuts a body after some bytes; the redirect does not spend the cut', async () => {
    hub.failNext(/tiny-Q4_K_M\.gguf/, { cutAfterBytes: 50_000 });
    const res = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`);
    expect(res.status).toBe(200);
    let received = 0;
    const reading = (async () => {
      for await (const chunk of res.body!) received += (chunk as Uint8Array).length;
    })();
    await expect(reading).rejects.toThrow();
    expect(received).toBe(50_000);
    const again = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`);
    expect(Buffer.from(await again.arrayBuffer()).equals(small)).toBe(true);
  });

  it('serves other bytes than the listed hash once corrupted, same size', async () => {
    await hub.addRepo({ id: 'acme/corrupt-GGUF', files: [{ path: 'c-Q4_0.gguf', source: join(dir, 'small.gguf') }] });
    hub.corrupt('acme/corrupt-GGUF', 'c-Q4_0.gguf');
    const tree = (await json('/api/models/acme/corrupt-GGUF/tree/main?recursive=true')).body as { lfs: { oid: string } }[];
    expect(tree[0]!.lfs.oid).toBe(sha256(small));
    const bytes = Buffer.from(await (await fetch(`${hub.endpoint}/acme/corrupt-GGUF/resolve/main/c-Q4_0.gguf`)).arrayBuffer());
    expect(bytes.length).toBe(small.length);
    expect(sha256(bytes)).not.toBe(sha256(small));
  });

  it('still delivers every byte while throttled, and speeds up when the rate is lifted', async () => {
    hub.setRate(100_000);
    const res = await fetch(`${hub.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf`);
    const reader = res.body!.getReader();
    const chunks: Uint8Array[] = [];
    const first = await reader.read();
    chunks.push(first.value!);
    // Throttled slices are a twentieth of a second's worth: the first read cannot hold the file.
    expect(first.value!.length).toBeLessThan(small.length);
    hub.setRate(0);
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(next.value);
    expect(Buffer.concat(chunks).equals(small)).toBe(true);
  });
});

describe('token validation', () => {
  it('refuses unknown tokens everywhere when validTokens is given', async () => {
    const strict = await startHubEmulator({ repos: [{ id: 'a/b-GGUF', files: [{ path: 'b.gguf', source: join(dir, 'small.gguf') }] }], validTokens: ['hf_good'] });
    try {
      const bad = await fetch(`${strict.endpoint}/api/models?search=b`, auth('hf_bad'));
      expect(bad.status).toBe(401);
      await bad.arrayBuffer();
      expect((await fetch(`${strict.endpoint}/api/models?search=b`, auth('hf_good'))).status).toBe(200);
      expect((await fetch(`${strict.endpoint}/api/models?search=b`)).status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});
