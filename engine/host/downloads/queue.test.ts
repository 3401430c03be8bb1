/**
 * The download queue against the loopback Hugging Face emulator: whole downloads with progress,
 * pause and resume from the byte reached (the Range the CDN saw), a restart that resumes, cancel,
 * retries (cut bodies, 429, 5xx), refusals (gated, a wrong token), a damaged file, a full disk
 * before and while writing, split models and duplicates; the running hash kept across a stop in
 * one process (the bytes read back from the `.part` are counted), and re-hashed after a restart.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DownloadItem, HearthEvent } from '../../contract/index.ts';
import { openDatabase } from '../db.ts';
import { HubClient } from '../hub/client.ts';
import { startHubEmulator, type HubEmulator } from '../../../test/support/hf-emulator.ts';
import { tempDir } from '../../../test/support/host-fixture.ts';
import { DownloadQueue, diskMarginBytes, type DownloadQueueDeps } from './queue.ts';
import { appendToFile, maxAttempts, readPrefix, type PartWriter, type ReadPrefix } from './transfer.ts';

type Event = DownloadItem & { readonly removed?: true };

/** The queue's events, and promises for the next one that matches. */
class Recorder {
  readonly events: Event[] = [];
  readonly #waiters: { match: (item: Event) => boolean; resolve: (item: Event) => void }[] = [];

  readonly emit = (event: HearthEvent): void => {
    if (event.type !== 'download.progress') return;
    this.events.push(event.payload);
    for (const waiter of [...this.#waiters]) {
      if (!waiter.match(event.payload)) continue;
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve(event.payload);
    }
  };

  /** The next event (from now on) that matches. */
  next(match: (item: Event) => boolean): Promise<Event> {
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** The next event that ends a run: done, error, paused or cancelled. */
  settled(id?: string): Promise<Event> {
    return this.next((item) => (id === undefined || item.id === id) && ['done', 'error', 'paused', 'cancelled'].includes(item.status));
  }
}

const token = 'hf_allowed_token';
let fixtures = '';
let emulator: HubEmulator;
/** 'GGUF' and random bytes: a model as far as the queue can tell. */
let big: Buffer;
let small: Buffer;
let partTwo: Buffer;
let notGguf: Buffer;

const gguf = (size: number): Buffer => Buffer.concat([Buffer.from('GGUF'), randomBytes(size - 4)]);

beforeAll(async () => {
  fixtures = tempDir('hearth-downloads-fixtures-');
  big = gguf(1_200_000);
  small = gguf(150_000);
  partTwo = gguf(90_000);
  notGguf = randomBytes(40_000);
  const write = (name: string, bytes: Buffer): string => {
    const file = path.join(fixtures, name);
    writeFileSync(file, bytes);
    return file;
  };
  const bigFile = write('big.gguf', big);
  const smallFile = write('small.gguf', small);
  const partTwoFile = write('part2.gguf', partTwo);
  const notGgufFile = write('not.gguf', notGguf);
  emulator = await startHubEmulator({
    repos: [
      {
        id: 'acme/tiny-GGUF',
        files: [
          { path: 'tiny-Q4_K_M.gguf', source: bigFile },
          { path: 'tiny-Q2_K.gguf', source: smallFile },
          { path: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf', source: smallFile },
          { path: 'Q8_0/tiny-Q8_0-00002-of-00002.gguf', source: partTwoFile },
          { path: 'noise.gguf', source: notGgufFile },
        ],
      },
      { id: 'meta/gated-GGUF', files: [{ path: 'gated-Q4_0.gguf', source: smallFile }], gated: 'manual', allowedTokens: [token] },
    ],
  });
});

afterAll(async () => {
  await emulator.close();
  rmSync(fixtures, { recursive: true, force: true });
});

let dir = '';
let modelsDir = '';
let db: DatabaseSync;
let queues: DownloadQueue[] = [];
let waits: number[] = [];
let logs: string[] = [];
let storedToken: string | null = null;
/** Bytes read back from part files to hash a prefix again (a file no kept hash covers). */
let reread = 0;
/** Counts what `readPrefix` reads. */
const countingRead: ReadPrefix = async function* (file, bytes, signal) {
  for await (const chunk of readPrefix(file, bytes, signal)) {
    reread += chunk.length;
    yield chunk;
  }
};

beforeEach(() => {
  dir = tempDir();
  modelsDir = path.join(dir, 'models');
  db = openDatabase(path.join(dir, 'hearth.db'));
  queues = [];
  waits = [];
  logs = [];
  storedToken = null;
  reread = 0;
  emulator.setRate(0);
});

afterEach(async () => {
  for (const queue of queues) await queue.dispose();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A queue on this test's database and folder, talking to the emulator; retries do not sleep. */
function makeQueue(recorder: Recorder, overrides: Partial<DownloadQueueDeps> = {}): DownloadQueue {
  const hub = new HubClient({ endpoint: emulator.endpoint, token: async () => storedToken });
  const queue = new DownloadQueue({
    db,
    modelsDir: () => modelsDir,
    hub,
    emit: recorder.emit,
    log: (level, message) => void logs.push(`${level} ${message}`),
    freeBytes: async () => 100e9,
    delay: async (ms) => void waits.push(ms),
    backoffMs: (attempt) => 1000 * attempt,
    readPrefix: countingRead,
    ...overrides,
  });
  queues.push(queue);
  return queue;
}

const cdnRequests = (): typeof emulator.requests => emulator.requests.filter((request) => request.server === 'cdn');
const modelsFolder = (): string[] => (existsSync(modelsDir) ? readdirSync(modelsDir).sort() : []);

/** Starts the big file slowly and resolves once some (not all) bytes arrived. */
async function startSlowly(recorder: Recorder, queue: DownloadQueue): Promise<DownloadItem> {
  emulator.setRate(300_000);
  const moving = recorder.next((item) => item.status === 'downloading' && item.downloadedBytes > 0);
  const started = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
  if (!started.ok) throw new Error(started.error.message);
  await moving;
  return started.value;
}

describe('a whole download', () => {
  it('downloads a Hub file into the models folder with progress, speed and ETA, checks its hash, and leaves no .part', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    queue.restore();
    emulator.setRate(1_500_000);
    const done = recorder.settled();
    const started = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
    expect(started.ok).toBe(true);
    if (!started.ok) return;
    expect(started.value).toMatchObject({ status: 'queued', repo: 'acme/tiny-GGUF', totalBytes: big.length, path: path.join(modelsDir, 'tiny-Q4_K_M.gguf') });
    expect(started.value.uri).toBe('hf:acme/tiny-GGUF/tiny-Q4_K_M.gguf');
    expect(await done).toMatchObject({ id: started.value.id, status: 'done', downloadedBytes: big.length, totalBytes: big.length, bytesPerSecond: 0 });

    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
    expect(modelsFolder()).toEqual(['tiny-Q4_K_M.gguf']);
    const statuses = recorder.events.map((item) => item.status);
    expect(statuses[0]).toBe('queued');
    expect(statuses).toContain('verifying');
    const moving = recorder.events.filter((item) => item.status === 'downloading' && item.downloadedBytes > 0 && item.downloadedBytes < big.length);
    expect(moving.length).toBeGreaterThan(0);
    expect(moving.some((item) => item.bytesPerSecond > 0 && item.etaSeconds !== null && item.etaSeconds > 0)).toBe(true);
    // Bytes only grow within one run.
    const bytes = moving.map((item) => item.downloadedBytes);
    expect([...bytes].sort((a, b) => a - b)).toEqual(bytes);
    expect(queue.active).toBe(false);
    expect(queue.list()).toEqual([expect.objectContaining({ id: started.value.id, status: 'done' })]);
  });

  it('resolves an hf: address with a quantization, and fetches the commit the repository was at', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const done = recorder.settled();
    const started = await queue.start({ uri: 'hf:acme/tiny-GGUF:Q2_K' });
    // The address becomes the file it resolved to.
    expect(started).toMatchObject({ ok: true, value: { name: 'tiny-Q2_K.gguf', uri: 'hf:acme/tiny-GGUF/tiny-Q2_K.gguf', totalBytes: small.length } });
    expect((await done).status).toBe('done');
    expect(readFileSync(path.join(modelsDir, 'tiny-Q2_K.gguf')).equals(small)).toBe(true);
    const resolve = emulator.requests.filter((request) => request.path.includes('/resolve/')).at(-1);
    expect(resolve?.path).toMatch(/\/acme\/tiny-GGUF\/resolve\/[0-9a-f]{40}\/tiny-Q2_K\.gguf$/);
  });

  it('downloads a plain address (no hash: size and GGUF magic), and refuses one whose bytes are not a GGUF', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const done = recorder.settled();
    const started = await queue.start({ uri: `${emulator.endpoint}/acme/tiny-GGUF/resolve/main/tiny-Q2_K.gguf` });
    expect(started.ok).toBe(true);
    expect(await done).toMatchObject({ status: 'done', totalBytes: small.length });
    expect(readFileSync(path.join(modelsDir, 'tiny-Q2_K.gguf')).equals(small)).toBe(true);

    const failed = recorder.settled();
    expect((await queue.start({ uri: `${emulator.endpoint}/acme/tiny-GGUF/resolve/main/noise.gguf` })).ok).toBe(true);
    const end = await failed;
    expect(end.status).toBe('error');
    expect(end.error?.code).toBe('DOWNLOAD_FAILED');
    expect(end.error?.message).toMatch(/not a GGUF/);
    expect(modelsFolder()).toEqual(['tiny-Q2_K.gguf']);
  });

  it('downloads every part of a split model before either gets its name', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const done = recorder.settled();
    // While part two downloads, part one is complete and verified but still a .part.
    const secondPart = recorder.next((item) => item.status === 'downloading' && item.downloadedBytes >= small.length);
    emulator.setRate(300_000);
    const started = await queue.start({ repo: 'acme/tiny-GGUF', file: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf' });
    expect(started.ok).toBe(true);
    if (!started.ok) return;
    expect(started.value).toMatchObject({ totalBytes: small.length + partTwo.length, path: path.join(modelsDir, 'tiny-Q8_0-00001-of-00002.gguf') });
    await secondPart;
    const during = modelsFolder();
    expect(during).toContain('tiny-Q8_0-00001-of-00002.gguf.part');
    expect(during.filter((name) => name.endsWith('.gguf'))).toEqual([]);
    expect(statSync(path.join(modelsDir, 'tiny-Q8_0-00001-of-00002.gguf.part')).size).toBe(small.length);
    emulator.setRate(0);
    expect(await done).toMatchObject({ status: 'done', downloadedBytes: small.length + partTwo.length });
    expect(modelsFolder()).toEqual(['tiny-Q8_0-00001-of-00002.gguf', 'tiny-Q8_0-00002-of-00002.gguf']);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q8_0-00002-of-00002.gguf')).equals(partTwo)).toBe(true);
  });
});

describe('pause, resume, restart, cancel', () => {
  it('pauses keeping the bytes, and resumes from the byte it stopped at (the Range the CDN saw)', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const item = await startSlowly(recorder, queue);
    const paused = await queue.pause(item.id);
    expect(paused.ok && paused.value.status).toBe('paused');
    const part = path.join(modelsDir, 'tiny-Q4_K_M.gguf.part');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(big.length);
    expect(paused.ok && paused.value.downloadedBytes).toBe(kept);
    expect(queue.active).toBe(false);
    expect(modelsFolder()).toEqual(['tiny-Q4_K_M.gguf.part']);

    emulator.setRate(0);
    const before = cdnRequests().length;
    const done = recorder.settled(item.id);
    const resumed = await queue.resume(item.id);
    expect(resumed.ok && resumed.value.status).toBe('queued');
    expect((await done).status).toBe('done');
    const after = cdnRequests().slice(before);
    expect(after).toHaveLength(1);
    expect(after[0]?.range).toBe(`bytes=${kept}-`);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('a new queue on the same database and folder (a restart) resumes from the .part file', async () => {
    const recorder = new Recorder();
    const first = makeQueue(recorder);
    first.restore();
    const item = await startSlowly(recorder, first);
    await first.dispose();
    const part = path.join(modelsDir, 'tiny-Q4_K_M.gguf.part');
    // The disk is the truth: a few bytes lost in a crash (the row's count is ahead) are fetched again.
    const kept = statSync(part).size - 1000;
    await truncate(part, kept);

    emulator.setRate(0);
    const again = new Recorder();
    const second = makeQueue(again);
    const before = cdnRequests().length;
    const done = again.settled(item.id);
    second.restore();
    expect(second.list()).toEqual([expect.objectContaining({ id: item.id, downloadedBytes: kept })]);
    expect((await done).status).toBe('done');
    expect(cdnRequests().slice(before)[0]?.range).toBe(`bytes=${kept}-`);
    // A new process has no hash in memory: the prefix is read back once.
    expect(reread).toBe(kept);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);

    // Finished downloads are not brought back by the next restart.
    const third = makeQueue(new Recorder());
    third.restore();
    expect(third.list()).toEqual([]);
  });

  it('a restart in the middle of a split model keeps the verified first part and fetches only the rest', async () => {
    const recorder = new Recorder();
    const first = makeQueue(recorder);
    emulator.setRate(200_000);
    const inPartTwo = recorder.next((item) => item.status === 'downloading' && item.downloadedBytes > small.length);
    const started = await first.start({ repo: 'acme/tiny-GGUF', file: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf' });
    if (!started.ok) throw new Error(started.error.message);
    await inPartTwo;
    await first.dispose();

    emulator.setRate(0);
    const before = cdnRequests().length;
    const again = new Recorder();
    const second = makeQueue(again);
    const done = again.settled(started.value.id);
    second.restore();
    expect((await done).status).toBe('done');
    const after = cdnRequests().slice(before);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((request) => request.path.includes('tiny-Q8_0-00002-of-00002.gguf'))).toBe(true);
    expect(after[0]?.range).toMatch(/^bytes=\d+-$/);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q8_0-00001-of-00002.gguf')).equals(small)).toBe(true);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q8_0-00002-of-00002.gguf')).equals(partTwo)).toBe(true);
  });

  it('a paused download stays paused across a restart', async () => {
    const recorder = new Recorder();
    const first = makeQueue(recorder);
    const item = await startSlowly(recorder, first);
    await first.pause(item.id);
    await first.dispose();
    const second = makeQueue(new Recorder());
    second.restore();
    expect(second.list()).toEqual([expect.objectContaining({ id: item.id, status: 'paused' })]);
    expect(second.active).toBe(false);
  });

  it('cancel stops the transfer and deletes the partial file', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const item = await startSlowly(recorder, queue);
    const cancelled = await queue.cancel(item.id);
    expect(cancelled.ok && cancelled.value.status).toBe('cancelled');
    expect(modelsFolder()).toEqual([]);
    expect(queue.active).toBe(false);
    // Ended downloads are cleared from the list (and their rows), with a `removed` event.
    const removed = recorder.next((event) => event.removed === true);
    expect(queue.clear()).toEqual({ ok: true, value: { removed: 1 } });
    expect((await removed).id).toBe(item.id);
    expect(queue.list()).toEqual([]);
  });

  it('runs one transfer at a time, in order: a queued download can be paused and cancelled before it starts', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const first = await startSlowly(recorder, queue);
    const second = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q2_K.gguf' });
    const third = await queue.start({ repo: 'acme/tiny-GGUF', file: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf' });
    if (!second.ok || !third.ok) throw new Error('not queued');
    expect(queue.list().map((item) => item.status)).toEqual(['downloading', 'queued', 'queued']);
    expect((await queue.pause(second.value.id)).ok).toBe(true);
    expect((await queue.cancel(third.value.id)).ok).toBe(true);
    emulator.setRate(0);
    const done = recorder.settled(first.id);
    expect((await done).status).toBe('done');
    expect(queue.list().map((item) => item.status)).toEqual(['done', 'paused', 'cancelled']);
    expect(modelsFolder()).toEqual(['tiny-Q4_K_M.gguf']);
  });
});

describe('retries', () => {
  it('a body cut short is retried from the bytes that arrived', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    emulator.failNext(/^\/cdn\//, { cutAfterBytes: 300_000 });
    const done = recorder.settled();
    await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
    expect((await done).status).toBe('done');
    const cdn = cdnRequests().slice(-2);
    expect(cdn[0]?.range).toBeUndefined();
    expect(cdn[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(cdn[1]?.range ?? '')?.[0])).toBeGreaterThan(0);
    expect(waits).toEqual([1000]);
    expect(reread).toBe(0); // the retry went on from the running hash
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('429 waits as Retry-After says, 5xx backs off, then it succeeds', async () => {
    const recorder = new Recorder();
    // A backoff unlike the Retry-After, so that the first wait shows which one was taken.
    const queue = makeQueue(recorder, { backoffMs: (attempt) => 5000 * attempt });
    emulator.failNext(/\/resolve\//, { status: 429 });
    emulator.failNext(/^\/cdn\//, { status: 503, count: 2 });
    const done = recorder.settled();
    await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q2_K.gguf' });
    expect((await done).status).toBe('done');
    // Retry-After: 1 (the emulator's), then the backoff of the 2nd and 3rd failure in a row (5 s per failure here).
    expect(waits).toEqual([1000, 10_000, 15_000]);
  });

  it('a server that keeps failing ends in a resumable error', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    emulator.failNext(/^\/cdn\//, { status: 500, count: maxAttempts });
    const failed = recorder.settled();
    const started = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q2_K.gguf' });
    const end = await failed;
    expect(end.status).toBe('error');
    expect(end.error?.code).toBe('NETWORK_ERROR');
    expect(end.error?.message).toMatch(/500/);
    expect(waits).toHaveLength(maxAttempts - 1);
    const done = recorder.settled();
    expect((await queue.resume(started.ok ? started.value.id : '')).ok).toBe(true);
    expect((await done).status).toBe('done');
  });
});

describe('refusals and damage', () => {
  it('a gated repository without a token, or with a token it refuses, is AUTH_REQUIRED; an allowed token downloads, and never reaches the CDN', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    let end = recorder.settled();
    const started = await queue.start({ repo: 'meta/gated-GGUF', file: 'gated-Q4_0.gguf' });
    if (!started.ok) throw new Error(started.error.message);
    expect((await end).error).toMatchObject({ code: 'AUTH_REQUIRED', message: expect.stringMatching(/gated/) });
    expect((await end).error?.hint).toMatch(/Request access on 127\.0\.0\.1:\d+\/meta\/gated-GGUF.*token/);

    storedToken = 'hf_not_allowed';
    end = recorder.settled();
    await queue.resume(started.value.id);
    expect((await end).error).toMatchObject({ code: 'AUTH_REQUIRED', message: expect.stringMatching(/token may not download meta\/gated-GGUF/) });

    storedToken = token;
    end = recorder.settled();
    await queue.resume(started.value.id);
    expect((await end).status).toBe('done');
    const resolves = emulator.requests.filter((request) => request.path.includes('/meta/gated-GGUF/resolve/'));
    expect(resolves.at(-1)?.authorization).toBe(`Bearer ${token}`);
    expect(cdnRequests().every((request) => request.authorization === undefined)).toBe(true);
  });

  it('a file that does not match its hash is deleted and never becomes a .gguf', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    emulator.corrupt('acme/tiny-GGUF', 'tiny-Q2_K.gguf');
    try {
      const end = recorder.settled();
      await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q2_K.gguf' });
      const failed = await end;
      expect(failed.status).toBe('error');
      expect(failed.error?.code).toBe('DOWNLOAD_FAILED');
      expect(failed.error?.message).toMatch(/SHA-256 does not match/);
      expect(modelsFolder()).toEqual([]);
    } finally {
      await emulator.addRepo({
        id: 'acme/tiny-GGUF',
        files: [
          { path: 'tiny-Q4_K_M.gguf', source: path.join(fixtures, 'big.gguf') },
          { path: 'tiny-Q2_K.gguf', source: path.join(fixtures, 'small.gguf') },
          { path: 'Q8_0/tiny-Q8_0-00001-of-00002.gguf', source: path.join(fixtures, 'small.gguf') },
          { path: 'Q8_0/tiny-Q8_0-00002-of-00002.gguf', source: path.join(fixtures, 'part2.gguf') },
          { path: 'noise.gguf', source: path.join(fixtures, 'not.gguf') },
        ],
      });
    }
  });

  it('refuses to start without the free space (naming both sizes), a name already in the folder, and the same file twice', async () => {
    const recorder = new Recorder();
    let free = 1_000_000;
    const queue = makeQueue(recorder, { freeBytes: async () => free });
    const full = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
    expect(full.ok).toBe(false);
    if (full.ok) return;
    expect(full.error.code).toBe('DISK_FULL');
    expect(full.error.message).toContain('1.20 MB'); // what it needs
    expect(full.error.message).toContain('1.00 MB free'); // what the disk has
    expect(queue.list()).toEqual([]);

    free = 100e9;
    emulator.setRate(100_000);
    const first = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
    expect(first.ok).toBe(true);
    const twice = await queue.start({ uri: 'hf:acme/tiny-GGUF/tiny-Q4_K_M.gguf' });
    expect(twice.ok ? null : twice.error.code).toBe('BUSY');
    // Two starts of one file at once (a double click): one is queued, the other refused.
    const both = await Promise.all([queue.start({ repo: 'acme/tiny-GGUF', file: 'noise.gguf' }), queue.start({ repo: 'acme/tiny-GGUF', file: 'noise.gguf' })]);
    expect(both.map((result) => (result.ok ? 'ok' : result.error.code)).sort()).toEqual(['BUSY', 'ok']);

    await mkdir(modelsDir, { recursive: true });
    writeFileSync(path.join(modelsDir, 'tiny-Q2_K.gguf'), 'mine');
    const taken = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q2_K.gguf' });
    expect(taken.ok).toBe(false);
    if (taken.ok) return;
    expect(taken.error.message).toContain(path.join(modelsDir, 'tiny-Q2_K.gguf'));
    expect(readFileSync(path.join(modelsDir, 'tiny-Q2_K.gguf'), 'utf8')).toBe('mine');
  });

  it('a full disk while writing pauses with DISK_FULL, keeps what arrived, and Resume continues from there', async () => {
    const recorder = new Recorder();
    let room = 500_000;
    /** A disk with `room` bytes left: the write that does not fit fails as ENOSPC after writing what fits. */
    const openPart = async (file: string): Promise<PartWriter> => {
      const real = await appendToFile(file);
      return {
        ...real,
        async write(data) {
          if (data.length <= room) {
            room -= data.length;
            return real.write(data);
          }
          const fits = data.subarray(0, room);
          room = 0;
          await real.write(fits);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      };
    };
    const queue = makeQueue(recorder, { openPart });
    const end = recorder.settled();
    const started = await queue.start({ repo: 'acme/tiny-GGUF', file: 'tiny-Q4_K_M.gguf' });
    const paused = await end;
    expect(paused.status).toBe('paused');
    expect(paused.error).toMatchObject({ code: 'DISK_FULL', hint: expect.stringMatching(/Free some space, then Resume/) });
    // The chunk the disk tore is cut off again: the file ends where the kept hash does.
    const part = path.join(modelsDir, 'tiny-Q4_K_M.gguf.part');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(500_000);
    expect(paused.downloadedBytes).toBe(kept);
    expect(modelsFolder()).toEqual(['tiny-Q4_K_M.gguf.part']);
    expect(queue.keptHashes).toBe(1);

    room = Infinity;
    const done = recorder.settled();
    expect((await queue.resume(started.ok ? started.value.id : '')).ok).toBe(true);
    expect((await done).status).toBe('done');
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept}-`);
    expect(reread).toBe(0);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('refuses names that would leave the models folder or not be models, and addresses that are not https', async () => {
    const queue = makeQueue(new Recorder());
    for (const uri of ['http://example.com/model.gguf', 'ftp://example.com/model.gguf', 'https://example.com/README.md', 'https://example.com/a/..%2F..%2Fevil.gguf', 'https://example.com/model-00002-of-00003.gguf']) {
      const refused = await queue.start({ uri });
      expect(refused.ok ? uri : refused.error.code).toBe('INVALID_INPUT');
    }
    expect(queue.list()).toEqual([]);
    expect(diskMarginBytes).toBeGreaterThan(0);
  });
});

describe('the hash across a stop', () => {
  /** Starts the big file slowly, pauses it once some bytes arrived, and says how many the .part holds. */
  async function startAndPause(recorder: Recorder, queue: DownloadQueue): Promise<{ id: string; part: string; kept: number }> {
    const item = await startSlowly(recorder, queue);
    const paused = await queue.pause(item.id);
    expect(paused.ok && paused.value.status).toBe('paused');
    const part = path.join(modelsDir, 'tiny-Q4_K_M.gguf.part');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(big.length - 1000);
    emulator.setRate(0);
    return { id: item.id, part, kept };
  }

  async function resumeToEnd(recorder: Recorder, queue: DownloadQueue, id: string): Promise<Event> {
    const end = recorder.settled(id);
    expect((await queue.resume(id)).ok).toBe(true);
    return end;
  }

  it('a pause and resume in one process go on from the kept hash: no byte of the prefix is read again, and the file is still checked whole', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const { id, kept } = await startAndPause(recorder, queue);
    expect(queue.keptHashes).toBe(1);
    expect((await resumeToEnd(recorder, queue, id)).status).toBe('done');
    expect(reread).toBe(0);
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept}-`);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
    // Done: nothing is kept for it any more.
    expect(queue.keptHashes).toBe(0);
  });

  it('bytes that turn bad after the pause (a corrupted CDN) are caught at the end, without reading the prefix', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    // A repository of its own: the emulator keeps a file corrupted for good.
    await emulator.addRepo({ id: 'acme/spoilt-GGUF', files: [{ path: 'spoilt-Q4_K_M.gguf', source: path.join(fixtures, 'big.gguf') }] });
    emulator.setRate(300_000);
    const moving = recorder.next((item) => item.status === 'downloading' && item.downloadedBytes > 0);
    const started = await queue.start({ repo: 'acme/spoilt-GGUF', file: 'spoilt-Q4_K_M.gguf' });
    if (!started.ok) throw new Error(started.error.message);
    await moving;
    expect((await queue.pause(started.value.id)).ok).toBe(true);
    const kept = statSync(path.join(modelsDir, 'spoilt-Q4_K_M.gguf.part')).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(big.length);
    emulator.setRate(0);
    emulator.corrupt('acme/spoilt-GGUF', 'spoilt-Q4_K_M.gguf');
    const end = await resumeToEnd(recorder, queue, started.value.id);
    expect(end.status).toBe('error');
    expect(end.error?.message).toMatch(/SHA-256 does not match/);
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept}-`);
    expect(reread).toBe(0);
    expect(modelsFolder()).toEqual([]);
    // The part was deleted: no hash is kept for it.
    expect(queue.keptHashes).toBe(0);
  });

  it('a .part that grew while paused is hashed again from its first byte, and the download is right', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const { id, part, kept } = await startAndPause(recorder, queue);
    // The right next bytes, but not written by this download: the kept hash covers fewer.
    appendFileSync(part, big.subarray(kept, kept + 1000));
    expect((await resumeToEnd(recorder, queue, id)).status).toBe('done');
    expect(reread).toBe(kept + 1000);
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept + 1000}-`);
    expect(logs.some((line) => line.includes(`holds ${kept + 1000} bytes, not the ${kept} hashed before`))).toBe(true);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('a .part that shrank while paused is hashed again from its first byte, and the download is right', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const { id, part, kept } = await startAndPause(recorder, queue);
    await truncate(part, kept - 1000);
    expect((await resumeToEnd(recorder, queue, id)).status).toBe('done');
    expect(reread).toBe(kept - 1000);
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept - 1000}-`);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('a .part replaced by another file of the same size while paused is hashed again, and its bytes are caught', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const { id, part, kept } = await startAndPause(recorder, queue);
    const other = `${part}.other`;
    writeFileSync(other, Buffer.concat([Buffer.from('GGUF'), randomBytes(kept - 4)]));
    renameSync(other, part);
    const end = await resumeToEnd(recorder, queue, id);
    expect(reread).toBe(kept);
    expect(logs.some((line) => line.includes('the partial file was replaced'))).toBe(true);
    expect(end.status).toBe('error');
    expect(end.error?.message).toMatch(/SHA-256 does not match/);
    expect(modelsFolder()).toEqual([]);
  });

  it('a failed download keeps its hash for Resume, and cancel or clear drops it with the download', async () => {
    const recorder = new Recorder();
    const queue = makeQueue(recorder);
    const cancelled = await startAndPause(recorder, queue);
    expect(queue.keptHashes).toBe(1);
    expect((await queue.cancel(cancelled.id)).ok).toBe(true);
    expect(queue.keptHashes).toBe(0);

    const failing = await startAndPause(recorder, queue);
    emulator.failNext(/^\/cdn\//, { status: 500, count: maxAttempts });
    const end = await resumeToEnd(recorder, queue, failing.id);
    expect(end.status).toBe('error');
    expect(statSync(failing.part).size).toBe(failing.kept);
    expect(queue.keptHashes).toBe(1);
    // The error event comes from inside the run; clear leaves a running download alone, so let it return.
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.clear()).toEqual({ ok: true, value: { removed: 2 } });
    expect(queue.keptHashes).toBe(0);
    expect(reread).toBe(0);
  });

  it('a download can be paused while it verifies what arrived before a restart, and resumed to a right file', async () => {
    const recorder = new Recorder();
    const first = makeQueue(recorder);
    const item = await startSlowly(recorder, first);
    await first.dispose();
    emulator.setRate(0);
    const slice = 16 * 1024;
    let reached!: () => void;
    const atSlice = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let at = 0;
    const gatedRead: ReadPrefix = async function* (file, bytes, signal) {
      for await (const chunk of countingRead(file, bytes, signal)) {
        for (let offset = 0; offset < chunk.length; offset += slice) {
          yield chunk.subarray(offset, offset + slice);
          at += slice;
          if (at === slice) {
            reached();
            await gate;
          }
        }
      }
    };
    const again = new Recorder();
    const second = makeQueue(again, { readPrefix: gatedRead, verifyFromBytes: 1 });
    second.restore();
    await atSlice;
    expect(second.list()[0]?.status).toBe('verifying');
    const pausing = second.pause(item.id);
    release();
    const paused = await pausing;
    expect(paused.ok && paused.value.status).toBe('paused');
    expect(second.active).toBe(false);
    const done = again.settled(item.id);
    expect((await second.resume(item.id)).ok).toBe(true);
    expect((await done).status).toBe('done');
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });

  it('after a restart the prefix is read back once under `verifying`, its progress shown, then the download goes on and is right', async () => {
    const recorder = new Recorder();
    const first = makeQueue(recorder);
    const item = await startSlowly(recorder, first);
    await first.dispose();
    const kept = statSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf.part')).size;
    expect(kept).toBeGreaterThan(20_000);
    emulator.setRate(0);

    // The read back stops after its first slice until the test has looked at the queue.
    const slice = 16 * 1024;
    let reached!: () => void;
    const atSlice = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const gatedRead: ReadPrefix = async function* (file, bytes, signal) {
      let at = 0;
      for await (const chunk of countingRead(file, bytes, signal)) {
        for (let offset = 0; offset < chunk.length; offset += slice) {
          const piece = chunk.subarray(offset, offset + slice);
          yield piece;
          at += piece.length;
          if (at === slice) {
            reached();
            await gate;
          }
        }
      }
    };
    const again = new Recorder();
    const second = makeQueue(again, { readPrefix: gatedRead, verifyFromBytes: 1 });
    const done = again.settled(item.id);
    second.restore();
    await atSlice;
    expect(second.list()).toEqual([expect.objectContaining({ id: item.id, status: 'verifying', downloadedBytes: slice, bytesPerSecond: 0 })]);
    release();
    expect((await done).status).toBe('done');
    expect(reread).toBe(kept);

    // The spell: `verifying` from 0 up to the prefix, then `downloading` from there with a fresh speed.
    const from = again.events.findIndex((event) => event.status === 'verifying');
    const to = again.events.findIndex((event, index) => index > from && event.status !== 'verifying');
    expect(again.events[from]?.downloadedBytes).toBe(0);
    const spell = again.events.slice(from, to).map((event) => event.downloadedBytes);
    expect([...spell].sort((a, b) => a - b)).toEqual(spell);
    expect(again.events[to]).toMatchObject({ status: 'downloading', downloadedBytes: kept, bytesPerSecond: 0 });
    expect(cdnRequests().at(-1)?.range).toBe(`bytes=${kept}-`);
    expect(readFileSync(path.join(modelsDir, 'tiny-Q4_K_M.gguf')).equals(big)).toBe(true);
  });
});
