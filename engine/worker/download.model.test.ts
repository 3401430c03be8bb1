/**
 * Downloads through a real engine process against a loopback HTTP server that serves a
 * generated GGUF with Range support: full download, cancel and resume, failures.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DownloadProgress } from '../contract/index.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { tinyModelPath } from '../../test/support/models.ts';

/** ipull fetches in 5 MiB chunks and records progress per finished chunk (download.ts). */
const CHUNK = 5 * 1024 * 1024;

interface Served {
  readonly method: string;
  readonly range: string | undefined;
  readonly start: number;
}

/** A loopback file server with Range support that can hold responses open past a point. */
class FileServer {
  readonly requests: Served[] = [];
  /** When set, responses stop sending at this many bytes into the file and hang. */
  stallAt: number | null = null;
  /** When set, the next responses that reach this many bytes into the file are cut off there (once per range start). */
  dropAt: number | null = null;
  private readonly dropped = new Set<number>();
  /** When set, requests for ranges starting here or later get no response at all (not even headers). */
  silentFrom: number | null = null;
  private readonly server: Server;
  private readonly body: Buffer;
  private readonly hanging = new Set<ServerResponse>();
  /** Ranges whose response was sent completely. */
  readonly completed: Array<[number, number]> = [];
  port = 0;

  constructor(body: Buffer) {
    this.body = body;
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Ends the hanging responses abruptly. */
  dropHanging(): void {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
  }

  async stop(): Promise<void> {
    this.dropHanging();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const range = req.headers.range;
    if (req.url !== '/models/tiny-download.gguf') {
      this.requests.push({ method: req.method ?? '', range, start: -1 });
      res.writeHead(404).end('not found');
      return;
    }
    let start = 0;
    let end = this.body.length; // exclusive
    const match = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (match) {
      start = Number(match[1]);
      end = match[2] ? Number(match[2]) + 1 : this.body.length;
    }
    this.requests.push({ method: req.method ?? '', range, start });
    if (this.silentFrom !== null && match && start >= this.silentFrom) {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', 'content-length': String(end - start) };
    if (match) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end - 1}/${this.body.length}` });
    else res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const drop = this.dropAt !== null && start < this.dropAt && end > this.dropAt && !this.dropped.has(start);
    if (drop) this.dropped.add(start);
    const limit = drop ? this.dropAt : this.stallAt;
    const stopAt = limit === null ? end : Math.min(end, Math.max(start, limit));
    let at = start;
    const pump = (): void => {
      while (at < stopAt) {
        const next = Math.min(stopAt, at + 64 * 1024);
        const more = res.write(this.body.subarray(at, next));
        at = next;
        if (!more) {
          res.once('drain', pump);
          return;
        }
      }
      if (stopAt === end) {
        res.end();
        this.completed.push([start, end]);
      } else if (drop) {
        res.destroy();
      } else {
        this.hanging.add(res);
      }
    };
    res.on('close', () => this.hanging.delete(res));
    // Send the headers at once, even for a response that stalls before its first byte.
    res.flushHeaders();
    pump();
  }
}

describe('downloads in the engine process', () => {
  let engine: EngineClient;
  let server: FileServer;
  let model: Buffer;
  let dir: string;

  beforeAll(async () => {
    // ~12 MiB, so that ipull fetches it in three 5 MiB chunks.
    const path = await tinyModelPath({ layers: 3, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 1024, weightType: 'F32', name: 'Hearth download test' }, 'download');
    model = await readFile(path);
    expect(model.length).toBeGreaterThan(2 * CHUNK);
    server = new FileServer(model);
    await server.start();
    engine = await startEngine();
  });

  afterAll(async () => {
    await engine?.dispose();
    await server?.stop();
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-download-'));
    server.requests.length = 0;
    server.completed.length = 0;
    server.stallAt = null;
    server.dropAt = null;
    server.silentFrom = null;
    return () => rm(dir, { recursive: true, force: true });
  });

  const progressOf = (downloadId: string): DownloadProgress[] =>
    engine.events.flatMap((e) => (e.type === 'downloadProgress' && e.progress.downloadId === downloadId ? [e.progress] : []));

  it('downloads a whole file, with progress', async () => {
    const uri = server.url('/models/tiny-download.gguf');
    const { path } = await engine.must('download', { downloadId: 'full', uri, dirPath: dir });
    expect(path).toBe(join(dir, 'tiny-download.gguf'));
    expect((await readFile(path)).equals(model)).toBe(true);
    expect(await readdir(dir)).toEqual(['tiny-download.gguf']);
    const progress = progressOf('full');
    expect(progress[0]).toMatchObject({ status: 'downloading', uri });
    expect(progress.at(-1)).toMatchObject({ status: 'done', path, downloadedBytes: model.length, totalBytes: model.length });
    // Progress is throttled to a few events per second.
    expect(progress.length).toBeLessThan(20);

    // Downloading it again finds the finished file and skips the transfer.
    const before = server.requests.filter((r) => r.range !== undefined).length;
    await engine.must('download', { downloadId: 'again', uri, dirPath: dir });
    expect(server.requests.filter((r) => r.range !== undefined).length).toBe(before);
  });

  it('resumes a cancelled download where it stopped', { timeout: 30_000 }, async () => {
    const uri = server.url('/models/tiny-download.gguf');
    // Serve the first chunk completely and hang inside the second.
    server.stallAt = CHUNK + 512 * 1024;
    const pending = engine.call('download', { downloadId: 'first', uri, dirPath: dir });
    // Wait until the engine has received the first chunk and the start of the second.
    const received = CHUNK + 512 * 1024;
    const deadline = Date.now() + 20_000;
    while (!progressOf('first').some((p) => p.downloadedBytes >= received) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(server.completed.some(([start, end]) => start === 0 && end === CHUNK)).toBe(true);
    // Give ipull a moment to record the finished chunk in its progress file.
    await new Promise((r) => setTimeout(r, 300));
    expect(await engine.must('cancelDownload', { downloadId: 'first' })).toEqual({ cancelled: true });
    const cancelled = await pending;
    expect(!cancelled.ok && cancelled.error.code).toBe('CANCELLED');
    expect(progressOf('first').at(-1)?.status).toBe('cancelled');
    // The partial file stays, under ipull's temporary name.
    expect(await readdir(dir)).toEqual(['tiny-download.gguf.ipull']);
    server.dropHanging();

    server.stallAt = null;
    server.requests.length = 0;
    const { path } = await engine.must('download', { downloadId: 'second', uri, dirPath: dir });
    expect((await readFile(path)).equals(model)).toBe(true);
    expect(await readdir(dir)).toEqual(['tiny-download.gguf']);
    const ranged = server.requests.filter((r) => r.range !== undefined);
    expect(ranged.length).toBeGreaterThan(0);
    // Nothing before the first chunk's end was fetched again.
    expect(Math.min(...ranged.map((r) => r.start))).toBeGreaterThanOrEqual(CHUNK);
  });

  it('survives a server that cuts the connection mid-body', async () => {
    const uri = server.url('/models/tiny-download.gguf');
    server.dropAt = CHUNK + 1024 * 1024;
    const { path } = await engine.must('download', { downloadId: 'cut', uri, dirPath: dir });
    expect((await readFile(path)).equals(model)).toBe(true);
    // ipull retried the cut range from its last finished chunk.
    expect(server.requests.filter((r) => r.start === CHUNK).length).toBeGreaterThanOrEqual(2);
  });

  it('answers a cancel at once even while a request waits for response headers', async () => {
    const uri = server.url('/models/tiny-download.gguf');
    server.silentFrom = CHUNK;
    const pending = engine.call('download', { downloadId: 'silent', uri, dirPath: dir });
    const deadline = Date.now() + 20_000;
    while (!server.completed.some(([start]) => start === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await engine.must('cancelDownload', { downloadId: 'silent' });
    const result = await pending;
    expect(!result.ok && result.error.code).toBe('CANCELLED');
    server.dropHanging();
  });

  it('cancelling an unknown download reports false', async () => {
    expect(await engine.must('cancelDownload', { downloadId: 'nope' })).toEqual({ cancelled: false });
  });

  it('fails with DOWNLOAD_FAILED when the server says 404', async () => {
    const result = await engine.call('download', { downloadId: 'missing', uri: server.url('/models/missing.gguf'), dirPath: dir });
    expect(!result.ok && result.error.code).toBe('DOWNLOAD_FAILED');
    expect(!result.ok && result.error.message).toMatch(/404/);
    expect(progressOf('missing').at(-1)?.status).toBe('error');
  });

  it('refuses addresses that are not http(s) or would escape the directory', async () => {
    const bad = [
      'file:///etc/passwd',
      '/etc/passwd',
      server.url('/'),
      server.url('/models/..%2F..%2Fevil.gguf'),
      server.url('/models/%2e%2e'),
      'ftp://example.com/model.gguf',
    ];
    for (const uri of bad) {
      const result = await engine.call('download', { downloadId: `bad-${uri}`, uri, dirPath: dir });
      expect(!result.ok && result.error.code, uri).toBe('INVALID_INPUT');
    }
    const relative = await engine.call('download', { downloadId: 'rel', uri: server.url('/models/tiny-download.gguf'), dirPath: 'models' });
    expect(!relative.ok && relative.error.code).toBe('INVALID_INPUT');
    expect(await readdir(dir)).toEqual([]);
  });
});
