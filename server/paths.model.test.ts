// Paths cannot escape (README.md, Security checklist), proven end to end through the browser host
// on the real engine host and engine process: model paths (models.load, .plan, .getProfile), the
// models list, download file names, chat ids, export file names and static files. Also the real
// Hearth behind the host fails closed on every malformed payload (the fuzz cases of
// test/support/fuzz.ts).
import { execFileSync } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callNames, idSchema, type HearthEvent, type Result } from '../engine/contract/index.ts';
import { createHearth, type Hearth } from '../engine/index.ts';
import { malformedCases, validInputs } from '../test/support/fuzz.ts';
import { testModelPath } from '../test/support/models.ts';
import { createServer, type RunningServer } from './app.ts';

let root: string;
let dataDir: string;
let modelsDir: string;
let outside: string;
let staticDir: string;
let hearth: Hearth;
let server: RunningServer;
let modelPath: string;
const events: HearthEvent[] = [];

/** A file outside every directory Hearth owns, whose content must never appear in an answer. */
const secret = 'HEARTH-SECRET-CONTENT-7f3a';

async function post<T = unknown>(name: string, payload: unknown): Promise<{ status: number; result: Result<T>; text: string }> {
  const response = await fetch(`${server.origin}/api/call/${name}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}` },
    body: JSON.stringify(payload),
  });
  const text = await response.text();
  return { status: response.status, result: JSON.parse(text) as Result<T>, text };
}

/** Every file under `dir` (relative paths), following no links. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isDirectory()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hearth-paths-'));
  dataDir = join(root, 'data');
  modelsDir = join(dataDir, 'models');
  outside = join(root, 'outside');
  staticDir = join(root, 'static');
  await mkdir(modelsDir, { recursive: true });
  await mkdir(outside);
  await mkdir(staticDir);
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hearth</title>');
  await writeFile(join(outside, 'secret.gguf'), `${secret}\n`.repeat(10));
  await writeFile(join(outside, 'secret.txt'), secret);
  modelPath = await testModelPath();
  hearth = await createHearth({ dataDir, host: 'browser', version: '0.0.0-test', threads: 1, measureSpeed: false, logLevel: 'error' });
  hearth.onEvent((event) => events.push(event));
  server = await createServer({ hearth, port: 0, staticDir, log: () => undefined });
});

afterAll(async () => {
  await server?.close();
  await hearth?.dispose();
  await rm(root, { recursive: true, force: true });
});

describe('model paths', () => {
  it('refuse every path that is not a regular GGUF file, clearly, without reading or echoing it', async () => {
    // A known-good model through a symlink first: hostile loads after it must leave it loaded.
    await symlink(modelPath, join(root, 'link-to-model.gguf'));
    const loaded = await post<{ path: string }>('models.load', { path: join(root, 'link-to-model.gguf') });
    expect(loaded.status, loaded.text).toBe(200);

    await mkdir(join(root, 'dir.gguf'));
    execFileSync('mkfifo', [join(root, 'fifo.gguf')]);
    await symlink('/dev/zero', join(root, 'zero.gguf'));
    await symlink(join(root, 'dir.gguf'), join(root, 'link-to-dir.gguf'));
    await symlink(join(root, 'loop-b.gguf'), join(root, 'loop-a.gguf'));
    await symlink(join(root, 'loop-a.gguf'), join(root, 'loop-b.gguf'));
    await symlink(join(root, 'nothing-here.gguf'), join(root, 'dangling.gguf'));
    await symlink(join(outside, 'secret.gguf'), join(root, 'link-to-secret.gguf'));
    await symlink(join(root, 'fifo.gguf'), join(root, 'link-to-fifo.gguf'));
    await writeFile(join(root, 'magic-only.gguf'), Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(60, 0xff)]));

    const hostile: Array<[string, string]> = [
      ['a relative path to nowhere', 'no-such-model.gguf'],
      ['a relative path up to /etc/passwd', '../'.repeat(30) + 'etc/passwd'],
      ['~ then up', '~/../../../../../../etc/passwd'],
      ['a NUL byte', `${join(root, 'link-to-model.gguf')}\0.txt`],
      ['/dev/zero', '/dev/zero'],
      ['/dev/null', '/dev/null'],
      ['/dev/urandom', '/dev/urandom'],
      ['/proc/self/environ (a 0-byte "regular" file)', '/proc/self/environ'],
      ['/proc/self/mem', '/proc/self/mem'],
      ['a directory', dataDir],
      ['a directory named .gguf', join(root, 'dir.gguf')],
      ['a FIFO (opening it would block forever)', join(root, 'fifo.gguf')],
      ['a symlink to /dev/zero', join(root, 'zero.gguf')],
      ['a symlink to a directory', join(root, 'link-to-dir.gguf')],
      ['a symlink loop', join(root, 'loop-a.gguf')],
      ['a dangling symlink', join(root, 'dangling.gguf')],
      ['a symlink to a FIFO', join(root, 'link-to-fifo.gguf')],
      ['a symlink to a text file named .gguf', join(root, 'link-to-secret.gguf')],
      ['a text file named .gguf', join(outside, 'secret.gguf')],
      ['a GGUF magic and garbage', join(root, 'magic-only.gguf')],
      ['a path too long for the OS', `/${'a'.repeat(4000)}.gguf`],
      ['a path over the contract limit', `/${'a'.repeat(5000)}`],
      ['an empty path', ''],
    ];
    for (const [label, path] of hostile) {
      for (const call of ['models.load', 'models.plan', 'models.getProfile'] as const) {
        const started = Date.now();
        const reply = await post<{ issues: Array<{ field: string; severity: string; message: string }> }>(call, { path });
        expect(Date.now() - started, `${call} ${label}: answered, not blocked`).toBeLessThan(10_000);
        expect(reply.text, `${call} ${label}: never echoes the file`).not.toContain(secret);
        expect(reply.text, `${call} ${label}`).not.toMatch(/root:x:0|PATH=|\n\s+at /);
        if (call === 'models.getProfile' && reply.result.ok) {
          // A profile is a setting kept by path; what the engine found is an error issue about the file.
          expect(reply.result.value.issues, `${call} ${label}`).toContainEqual(expect.objectContaining({ field: 'model', severity: 'error' }));
          continue;
        }
        expect(reply.status, `${call} ${label}: ${reply.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        expect(reply.status, `${call} ${label}`).toBeLessThan(500);
        if (reply.result.ok) continue; // unreachable after the status checks; narrows the type
        expect(['INVALID_INPUT', 'NOT_FOUND', 'MODEL_INVALID', 'MODEL_UNSUPPORTED'], `${call} ${label}: ${reply.result.error.code}`).toContain(reply.result.error.code);
        expect(reply.result.error.message.length, `${call} ${label}: a sentence, not a stack`).toBeLessThan(600 + 2 * path.length);
      }
    }
    // The good model is still the loaded one.
    const state = await post<{ model: { status: string; model?: { path: string } } }>('app.state', {});
    expect(state.result.ok && state.result.value.model.status).toBe('ready');
    expect(state.result.ok && state.result.value.model.model?.path).toBe(join(root, 'link-to-model.gguf'));
  });

  it('lists only GGUF files that are really inside the models directory', async () => {
    await writeFile(join(modelsDir, 'inside.gguf'), await readFile(modelPath));
    await symlink(join(outside, 'secret.gguf'), join(modelsDir, 'points-outside.gguf'));
    await symlink(modelPath, join(modelsDir, 'real-model-outside.gguf'));
    await symlink('/dev/zero', join(modelsDir, 'zero.gguf'));
    await symlink(modelsDir, join(modelsDir, 'self.gguf'));
    await symlink(join(modelsDir, 'inside.gguf'), join(modelsDir, 'alias.gguf'));
    const list = await post<{ models: Array<{ fileName: string; path: string }> }>('models.list', {});
    expect(list.status).toBe(200);
    // Other apps' folders of this machine's home may add models of their own: only this folder's count.
    const names = list.result.ok ? list.result.value.models.filter((m) => m.path.startsWith(`${modelsDir}/`)).map((m) => m.fileName).sort() : [];
    // The link to a file inside is the same model: listed once, as the file.
    expect(names).toEqual(['inside.gguf']);
  });
});

describe('download file names', () => {
  let files: Server;
  let port = 0;
  const requested: string[] = [];

  beforeAll(async () => {
    const body = await readFile(modelPath);
    files = createHttpServer((req, res) => {
      requested.push(req.url ?? '');
      // A hostile server: it also suggests a name of its own.
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length), 'Content-Disposition': 'attachment; filename="../../cd-escape.gguf"' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    port = (files.address() as AddressInfo).port;
  });

  afterAll(async () => {
    files.closeAllConnections();
    await new Promise((resolve) => files.close(resolve));
  });

  /** Starts a download and waits for its end; the final progress (or the call's refusal). */
  async function download(uri: string): Promise<{ status: number; code?: string; final?: { status: string; path?: string; error?: { code: string } } }> {
    const from = events.length;
    const reply = await post<{ id: string }>('downloads.start', { uri });
    if (!reply.result.ok) return { status: reply.status, code: reply.result.error.code };
    const id = reply.result.value.id;
    expect(idSchema.safeParse(id).success).toBe(true);
    const deadline = Date.now() + 30_000;
    const ended = new Set(['done', 'error', 'cancelled', 'paused']);
    for (;;) {
      const end = events.slice(from).find((e) => e.type === 'download.progress' && e.payload.id === id && ended.has(e.payload.status));
      if (end && end.type === 'download.progress') return { status: reply.status, final: end.payload };
      if (Date.now() > deadline) throw new Error(`download ${uri} never ended`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('never writes outside the models directory, whatever the URI or the server says', async () => {
    const before = await filesUnder(root);
    const base = `http://127.0.0.1:${port}`;
    for (const uri of [
      `${base}/..%2F..%2Fescape.gguf`,
      `${base}/..%2f..%2f..%2ftmp%2fescape.gguf`,
      `${base}/sub/..%5C..%5Cescape.gguf`,
      `${base}/%2e%2e`,
      `${base}/..`,
      `${base}/a%00escape.gguf`,
      `${base}/`,
      `${base}/%E0%A4%A`,
      'hf:owner/repo/../../escape.gguf',
      'hf:../escape',
      'hf:owner/repo:Q4/../../escape',
      'hf:owner/..:Q4',
      'file:///etc/passwd',
      'ftp://127.0.0.1/escape.gguf',
      'http://evil.example/escape.gguf',
      'javascript:alert(1)',
    ]) {
      const result = await download(uri);
      const refused = result.code === 'INVALID_INPUT' || result.final?.error?.code === 'INVALID_INPUT';
      expect(refused, `${uri}: ${JSON.stringify(result)}`).toBe(true);
    }
    // The hostile server's own suggested name is ignored: the file is named from the URL, inside.
    const good = await download(`${base}/dir/good.gguf?name=../../escape.gguf`);
    expect(good.final?.status, JSON.stringify(good)).toBe('done');
    expect(good.final?.path).toBe(join(modelsDir, 'good.gguf'));

    const after = await filesUnder(root);
    const added = after.filter((f) => !before.includes(f));
    expect(added.filter((f) => !f.startsWith(`data/models/`) && !f.startsWith('data/logs/') && !/^data\/(hearth\.db|kv\/)/.test(f)), 'nothing new outside data/models').toEqual([]);
    expect(added.filter((f) => f.startsWith('data/models/'))).toEqual(['data/models/good.gguf']);
    expect(after.some((f) => /escape/.test(f))).toBe(false);
    // Refused names were refused before any request was made; only the good one was fetched.
    expect(requested.every((url) => url.startsWith('/dir/good.gguf'))).toBe(true);
  });
});

describe('chat ids and export names', () => {
  it('refuses every id that could be a path, on every call that takes one', async () => {
    const chatCalls = callNames.filter((name) => 'chatId' in (validInputs[name] as object));
    expect(chatCalls.length).toBeGreaterThanOrEqual(12);
    for (const name of chatCalls) {
      for (const chatId of ['../x', '..', '.', 'a/b', 'a\\b', '/etc/passwd', '%2e%2e', 'a.b', 'x\0', '', 'a'.repeat(65), ' ', 'é']) {
        const reply = await post(name, { ...(validInputs[name] as object), chatId });
        expect(reply.status, `${name} ${JSON.stringify(chatId)}: ${reply.text.slice(0, 120)}`).toBe(400);
      }
    }
  });

  it('only ever makes ids that are safe path segments', async () => {
    for (let i = 0; i < 20; i++) {
      const created = await post<{ id: string }>('chats.create', { title: `chat ${i}` });
      expect(created.result.ok && idSchema.safeParse(created.result.value.id).success).toBe(true);
    }
  });

  it('gives exports bare, portable file names, whatever the title', async () => {
    const titles = ['../../etc/passwd', '..', '.hidden', 'CON', 'nul', 'com1', 'LPT9', 'a/b\\c:d*?"<>|e', 'x\u0000y', 'evil\u202egpj.exe', '\u2066rtl\u2069', 'x'.repeat(200), '   .   ', 'C:\\Windows\\system32', '~/.ssh/id_rsa', 'normal title'];
    for (const title of titles) {
      const created = await post<{ id: string }>('chats.create', { title });
      if (!created.result.ok) throw new Error(created.text);
      for (const format of ['markdown', 'json'] as const) {
        const exported = await post<{ fileName: string }>('chats.export', { chatId: created.result.value.id, format });
        if (!exported.result.ok) throw new Error(exported.text);
        const name = exported.result.value.fileName;
        const label = `${JSON.stringify(title)} → ${JSON.stringify(name)}`;
        expect(basename(name), label).toBe(name);
        expect(name, label).toMatch(format === 'json' ? /\.json$/ : /\.md$/);
        expect(name, label).not.toMatch(/^[.\s]/);
        // eslint-disable-next-line no-control-regex -- control characters are what must not be there.
        expect(name, label).not.toMatch(/[/\\:*?"<>|\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/);
        expect(name.replace(/\.(md|json)$/, ''), label).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)$/i);
        expect(name.length, label).toBeLessThanOrEqual(100);
      }
    }
  });
});

describe('the real Hearth fails closed', () => {
  it('answers 400 to every malformed payload of every call, and keeps running', async () => {
    const pid = hearth.enginePid;
    let sent = 0;
    for (const name of callNames) {
      for (const c of malformedCases(name)) {
        if (c.json === null || c.json.length > 300_000) continue;
        const response = await fetch(`${server.origin}/api/call/${name}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}` },
          body: c.json,
        });
        expect(response.status, `${name}: ${c.label}`).toBe(400);
        sent += 1;
      }
    }
    expect(sent).toBeGreaterThan(1000);
    expect(hearth.enginePid).toBe(pid);
    const state = await post<{ model: { status: string } }>('app.state', {});
    expect(state.status).toBe(200);
    expect(state.result.ok && state.result.value.model.status).toBe('ready');
  });
});

describe('static files', () => {
  it('never follows a link out of the build directory', async () => {
    await symlink(join(outside, 'secret.txt'), join(staticDir, 'leak.txt'));
    await symlink(outside, join(staticDir, 'dir'));
    for (const path of ['/leak.txt', '/dir/secret.txt', '/dir/secret.gguf']) {
      const response = await fetch(`${server.origin}${path}`, { headers: { Authorization: `Bearer ${server.token}` } });
      const text = await response.text();
      expect(response.status, path).toBe(404);
      expect(text, path).not.toContain(secret);
    }
  });
});
