/**
 * Transfers from plain addresses against a small Range server written here, for what the Hub
 * emulator does not do: a server that ignores Range, a file that changes between pause and
 * resume (If-Range), a 206 for a changed file, a stalled connection, a body without a length,
 * redirects to where Hearth does not download from, and a complete `.part` left by a quit.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { err, type DownloadItem, type HearthEvent } from '../../contract/index.ts';
import { openDatabase } from '../db.ts';
import { tempDir } from '../../../test/support/host-fixture.ts';
import { DownloadQueue } from './queue.ts';

/** What the server serves and how; tests change it between requests. */
interface ServerState {
  body: Buffer;
  etag: string;
  /** `ignore`: always 200 with the whole file; `no-if-range`: ranges served even when If-Range does not match. */
  ranges: 'honour' | 'ignore' | 'no-if-range';
  /** After this many bytes of a body, send one byte every 20 ms (a slow line), until cleared. */
  trickleAfter: number | null;
  /** After this many bytes, send nothing more (a stalled connection), once. */
  stallAfter: number | null;
  /** Leave out Content-Length (a chunked body). */
  noLength: boolean;
  /** Answer with a redirect to this address instead. */
  redirect: string | null;
}

interface Seen {
  readonly range?: string;
  readonly ifRange?: string;
}

let dir = '';
let modelsDir = '';
let db: DatabaseSync;
let server: Server;
let base = '';
let state: ServerState;
let seen: Seen[] = [];
let logs: string[] = [];
let queues: DownloadQueue[] = [];
let events: DownloadItem[] = [];
let waiters: { match: (item: DownloadItem) => boolean; resolve: (item: DownloadItem) => void }[] = [];

const gguf = (size: number): Buffer => Buffer.concat([Buffer.from('GGUF'), randomBytes(size - 4)]);

function handle(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined });
  if (state.redirect !== null) {
    res.writeHead(302, { Location: state.redirect });
    res.end();
    return;
  }
  const { body, etag } = state;
  let start = 0;
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'];
  const rangeOk = state.ranges === 'no-if-range' || (state.ranges === 'honour' && (ifRange === undefined || ifRange === etag));
  if (match && rangeOk) start = Number(match[1]);
  if (start > body.length) {
    res.writeHead(416, { 'Content-Range': `bytes */${body.length}` });
    res.end();
    return;
  }
  const headers: Record<string, string> = { ETag: etag, 'Accept-Ranges': 'bytes' };
  if (!state.noLength) headers['Content-Length'] = String(body.length - start);
  if (start > 0) headers['Content-Range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  const rest = body.subarray(start);
  const holdAt = state.stallAfter ?? state.trickleAfter;
  if (holdAt === null || holdAt - start >= rest.length) {
    res.end(rest);
    return;
  }
  const cut = Math.max(0, holdAt - start);
  res.write(rest.subarray(0, cut));
  if (state.stallAfter !== null) {
    state.stallAfter = null; // the next request is served whole
    return; // nothing more, the connection stays open
  }
  let at = cut;
  const timer = setInterval(() => {
    if (at >= rest.length) {
      clearInterval(timer);
      res.end();
      return;
    }
    const step = state.trickleAfter === null ? rest.length - at : 1;
    res.write(rest.subarray(at, at + step));
    at += step;
  }, 20);
  res.on('close', () => clearInterval(timer));
}

beforeEach(async () => {
  dir = tempDir();
  modelsDir = path.join(dir, 'models');
  db = openDatabase(path.join(dir, 'hearth.db'));
  state = { body: gguf(200_000), etag: '"one"', ranges: 'honour', trickleAfter: null, stallAfter: null, noLength: false, redirect: null };
  seen = [];
  logs = [];
  queues = [];
  events = [];
  waiters = [];
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  for (const queue of queues) await queue.dispose();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function emit(event: HearthEvent): void {
  if (event.type !== 'download.progress') return;
  events.push(event.payload);
  for (const waiter of [...waiters]) {
    if (!waiter.match(event.payload)) continue;
    waiters.splice(waiters.indexOf(waiter), 1);
    waiter.resolve(event.payload);
  }
}

const next = (match: (item: DownloadItem) => boolean): Promise<DownloadItem> => new Promise((resolve) => waiters.push({ match, resolve }));
const settled = (): Promise<DownloadItem> => next((item) => ['done', 'error', 'paused', 'cancelled'].includes(item.status));

function makeQueue(stallMs?: number): DownloadQueue {
  const queue = new DownloadQueue({
    db,
    modelsDir: () => modelsDir,
    hub: {
      resolveUri: async () => err('INTERNAL', 'no Hub in these tests'),
      repo: async () => err('INTERNAL', 'no Hub in these tests'),
      fileUrl: () => 'https://hub.invalid/',
      authHeaders: async () => ({}),
    },
    emit,
    log: (level, message) => void logs.push(`${level} ${message}`),
    freeBytes: async () => 100e9,
    delay: async () => undefined,
    backoffMs: () => 0,
    ...(stallMs === undefined ? {} : { stallMs }),
  });
  queues.push(queue);
  return queue;
}

const target = (): string => path.join(modelsDir, 'model.gguf');

/** Starts model.gguf trickling after `after` bytes, waits until they arrived, and pauses. */
async function startAndPause(queue: DownloadQueue, after: number): Promise<number> {
  state.trickleAfter = after;
  const moving = next((item) => item.status === 'downloading' && item.downloadedBytes >= after);
  const started = await queue.start({ uri: `${base}/files/model.gguf` });
  if (!started.ok) throw new Error(started.error.message);
  await moving;
  const paused = await queue.pause(started.value.id);
  if (!paused.ok) throw new Error(paused.error.message);
  state.trickleAfter = null;
  return statSync(`${target()}.part`).size;
}

async function resumeAll(queue: DownloadQueue): Promise<DownloadItem> {
  const done = settled();
  const [item] = queue.list();
  expect((await queue.resume(item?.id ?? '')).ok).toBe(true);
  return done;
}

describe('resuming from a plain address', () => {
  it('sends Range and If-Range with the first answer’s ETag, and appends the rest', async () => {
    const queue = makeQueue();
    const kept = await startAndPause(queue, 60_000);
    expect(kept).toBeGreaterThanOrEqual(60_000);
    expect((await resumeAll(queue)).status).toBe('done');
    expect(seen.at(-1)).toEqual({ range: `bytes=${kept}-`, ifRange: '"one"' });
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });

  it('a server that ignores Range (200 with the whole file) starts over, and says why', async () => {
    const queue = makeQueue();
    await startAndPause(queue, 60_000);
    state.ranges = 'ignore';
    expect((await resumeAll(queue)).status).toBe('done');
    expect(readFileSync(target()).equals(state.body)).toBe(true);
    expect(logs.some((line) => /sent the whole file instead of the rest.*starting it over/.test(line))).toBe(true);
  });

  it('a file that changed while paused (If-Range no longer matches) is downloaded anew, never spliced', async () => {
    const queue = makeQueue();
    await startAndPause(queue, 60_000);
    state.body = gguf(150_000);
    state.etag = '"two"';
    expect((await resumeAll(queue)).status).toBe('done');
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });

  it('a 206 for a changed file (a server that ignores If-Range) starts over too', async () => {
    const queue = makeQueue();
    await startAndPause(queue, 60_000);
    state.body = Buffer.concat([state.body.subarray(0, 100), randomBytes(state.body.length - 100)]);
    state.etag = '"three"';
    state.ranges = 'no-if-range';
    expect((await resumeAll(queue)).status).toBe('done');
    expect(readFileSync(target()).equals(state.body)).toBe(true);
    expect(logs.some((line) => /the file changed on the server; starting it over/.test(line))).toBe(true);
  });

  it('a complete .part a quit left behind is checked and renamed without fetching again', async () => {
    const first = makeQueue();
    const kept = await startAndPause(first, 60_000);
    await first.dispose();
    // The rest arrived before the quit, but the check and the rename did not happen.
    writeFileSync(`${target()}.part`, state.body);
    db.prepare("UPDATE downloads SET status = 'downloading'").run();
    const requests = seen.length;
    const second = makeQueue();
    const done = settled();
    second.restore();
    expect((await done).status).toBe('done');
    expect(seen.length).toBe(requests);
    expect(kept).toBeLessThan(state.body.length);
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });
});

describe('plain-address edge cases', () => {
  it('a stalled connection is given up and retried from the bytes that arrived', async () => {
    const queue = makeQueue(300);
    state.stallAfter = 50_000;
    const done = settled();
    await queue.start({ uri: `${base}/files/model.gguf` });
    expect((await done).status).toBe('done');
    expect(seen).toHaveLength(2);
    expect(seen[1]?.range).toBe('bytes=50000-');
    expect(logs.some((line) => line.includes('no data for 0.3 s; trying again'))).toBe(true);
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });

  it('a body without a length is the file once it ends cleanly', async () => {
    const queue = makeQueue();
    state.noLength = true;
    const done = settled();
    await queue.start({ uri: `${base}/files/model.gguf` });
    expect(await done).toMatchObject({ status: 'done', totalBytes: state.body.length });
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });

  it('a redirect to a plain-http address off this machine is refused', async () => {
    const queue = makeQueue();
    state.redirect = 'http://example.com/model.gguf';
    const end = settled();
    await queue.start({ uri: `${base}/files/model.gguf` });
    const failed = await end;
    expect(failed.status).toBe('error');
    expect(failed.error?.message).toMatch(/http:\/\/example\.com.*https only/);
  });

  it('a stale .part that no download owns is never resumed', async () => {
    await mkdir(modelsDir, { recursive: true });
    writeFileSync(`${target()}.part`, randomBytes(70_000));
    const queue = makeQueue();
    const done = settled();
    await queue.start({ uri: `${base}/files/model.gguf` });
    expect((await done).status).toBe('done');
    expect(seen[0]?.range).toBeUndefined();
    expect(readFileSync(target()).equals(state.body)).toBe(true);
  });
});
