/**
 * One part of a download, from the bytes already in its `.part` file to a complete, checked,
 * synced file: HTTP with `Range` / `If-Range` to resume, redirects followed by hand (so a token
 * only ever goes to the Hub's own origin, never to the CDN it redirects to), retries with backoff
 * for what passes (5xx, 429, a cut connection, a stall), and the SHA-256 computed while the bytes
 * arrive. A resume in the same process goes on from the hash kept when the part stopped
 * (hash-memory.ts) while its `.part` is still exactly the file hashed; otherwise (a restart, a file
 * changed while stopped) it re-hashes the prefix already on disk, showing `verifying` with the
 * bytes hashed so far when that takes a while.
 *
 * What is not retried comes back as data: refused (401/403), missing (404), a full disk (the
 * caller pauses), a file that does not match its hash (its part is deleted, never renamed).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, truncate, unlink } from 'node:fs/promises';
import { errorText, formatBytes, hearthError, type HearthError } from '../../contract/index.ts';
import { GGUF_MAGIC } from '../../gguf/format.ts';
import { retryAfterSeconds } from '../hub/errors.ts';
import type { HashSlot, HashState } from './hash-memory.ts';
import { isAllowedAddress } from './names.ts';
import type { PartRecord } from './store.ts';

/** Appends to a part file; tests inject one that fails as a full disk would. */
export interface PartWriter {
  write(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export type OpenPart = (file: string) => Promise<PartWriter>;

/** The default `OpenPart`: the file opened for appending (created when missing). */
export async function appendToFile(file: string): Promise<PartWriter> {
  const handle = await open(file, 'a');
  return {
    async write(data) {
      let offset = 0;
      while (offset < data.length) {
        const { bytesWritten } = await handle.write(data, offset, data.length - offset, null);
        if (bytesWritten <= 0) throw new Error(`writing ${file} made no progress`);
        offset += bytesWritten;
      }
    },
    sync: () => handle.sync(),
    close: () => handle.close(),
  };
}

/** Waits `ms`, or rejects when `signal` aborts first. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** 1 s, 2 s, 4 s… up to 30 s. */
export function defaultBackoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt - 1));
}

/** Tries in a row that made no progress before a part ends in `error` (resumable). */
export const maxAttempts = 6;
/** The longest Retry-After waited for; a longer one ends the download (the user resumes later). */
const maxRetryAfterMs = 120_000;
/** A resumed prefix at least this long is hashed under the `verifying` status, with its progress. */
export const defaultVerifyFromBytes = 64 * 1024 * 1024;
/** Without a byte for this long, the connection is given up and tried again. */
export const defaultStallMs = 60_000;

export type ReadPrefix = (file: string, bytes: number, signal: AbortSignal) => AsyncIterable<Uint8Array>;

/** The default `ReadPrefix`: the file streamed from its first byte. */
export function readPrefix(file: string, bytes: number, signal: AbortSignal): AsyncIterable<Uint8Array> {
  return createReadStream(file, { start: 0, end: bytes - 1, signal, highWaterMark: 1024 * 1024 });
}

/** What the transfers of one queue share. */
export interface TransferEnv {
  readonly fetch: typeof fetch;
  readonly openPart: OpenPart;
  readonly delay: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly backoffMs: (attempt: number) => number;
  readonly stallMs: number;
  /** Reads the first `bytes` of a part file, to hash a prefix no kept state covers; tests count its bytes. */
  readonly readPrefix: ReadPrefix;
  /** A prefix to re-hash at least this long is shown as `verifying` (64 MiB by default). */
  readonly verifyFromBytes: number;
  readonly log: (level: 'error' | 'warn' | 'info' | 'debug', message: string) => void;
}

/** Headers that go only to one origin (the Hub's token). */
export interface OriginAuth {
  readonly origin: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface PartJob {
  /** The file's name, for messages and log lines. */
  readonly label: string;
  readonly url: string;
  readonly auth: OriginAuth | null;
  /** Where the bytes gather. */
  readonly partFile: string;
  /** Its record: `size` and `validator` are filled in from responses. */
  readonly part: PartRecord;
  /** Where the part's running hash waits while it is stopped, for a resume in this process. */
  readonly hashes: HashSlot;
  readonly signal: AbortSignal;
  /** Bytes of this part on disk, as they grow (or shrink, on a restart from zero); while `verifying` a prefix, the bytes hashed so far. */
  readonly onBytes: (bytes: number) => void;
  /** The part's size became known: an error (a full disk) stops the part as paused. */
  readonly onSized: (size: number) => Promise<HearthError | null>;
  /** `size` or `validator` changed: persist them, so that a restart sends the same If-Range. */
  readonly onChanged: () => void;
  /** `verifying` while the bytes on disk are hashed (a resumed prefix, or the end's checks), else `downloading`. */
  readonly onPhase: (phase: 'downloading' | 'verifying') => void;
  /** The error for a 401, 403, 404 or 410, from the answer (its body: the first KB) and whether a token was sent. */
  readonly refused: (answer: { readonly status: number; readonly headers: Headers; readonly body: string }, sentToken: boolean) => HearthError;
}

export type PartOutcome =
  /** The part file is whole, matches its hash (or at least its size and the GGUF magic), and is synced. */
  | { readonly kind: 'complete' }
  /** The job's signal aborted (pause, cancel, quit); the part file keeps what arrived. */
  | { readonly kind: 'stopped' }
  /** It cannot go on by itself; `pause` when the user can fix it and Resume (a full disk). */
  | { readonly kind: 'failed'; readonly error: HearthError; readonly pause: boolean };

const stopped: PartOutcome = { kind: 'stopped' };
const failed = (error: HearthError, pause = false): PartOutcome => ({ kind: 'failed', error, pause });

/** Bytes of `file`, or 0 when it does not exist. */
async function sizeOnDisk(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** A fresh SHA-256 over the first `bytes` of `file`; `progress` hears the bytes hashed so far. */
async function hashPrefix(env: TransferEnv, file: string, bytes: number, signal: AbortSignal, progress?: (bytes: number) => void): Promise<HashState> {
  const hash = createHash('sha256');
  let done = 0;
  if (bytes > 0) {
    for await (const chunk of env.readPrefix(file, bytes, signal)) {
      // A reader may hand back more than asked for; the hash covers exactly `bytes`.
      const take = chunk.length <= bytes - done ? chunk : chunk.subarray(0, bytes - done);
      hash.update(take);
      done += take.length;
      progress?.(done);
      if (done >= bytes) break;
    }
  }
  if (done !== bytes) throw new Error(`the partial file ended after ${done} of ${bytes} bytes while it was hashed`);
  return { hash, bytes };
}

/** A strong ETag, or else Last-Modified: what `If-Range` may carry (a weak ETag may not). */
function validatorOf(response: Response): string | null {
  const etag = response.headers.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return response.headers.get('last-modified');
}

/** `bytes a-b/total` → its numbers (total null for `*`), or null when malformed. */
function contentRange(value: string | null): { start: number; end: number; total: number | null } | null {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return null;
  return { start: Number(match[1]), end: Number(match[2]), total: match[3] === '*' ? null : Number(match[3]) };
}

/** The start of an error answer's body (the Hub explains a refusal there); the rest is dropped. */
async function errorBody(response: Response, maxBytes = 16 * 1024): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= maxBytes) break;
    }
  } catch {
    // A cut error body still has its status.
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, maxBytes);
}

/** A sentence for a fetch or body failure: undici hides the socket's code in `cause`. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  const detail = cause instanceof Error ? cause.message : '';
  const text = errorText(error);
  if (typeof code === 'string') return `the connection failed (${code}${detail && !detail.includes(code) ? `: ${detail}` : ''})`;
  return detail ? `the connection failed (${text}: ${detail})` : `the connection failed (${text})`;
}

function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);
const maxRedirects = 10;

/**
 * GET with redirects followed by hand: each hop's address must be allowed (https, or loopback
 * http), and `auth` is sent only where the hop's origin is its origin. The Hub answers a file
 * with a redirect to a CDN on another host, which must never see the token.
 */
async function get(env: TransferEnv, job: PartJob, headers: Record<string, string>, signal: AbortSignal): Promise<{ response: Response; sentToken: boolean } | { refused: HearthError }> {
  let url = new URL(job.url);
  for (let hop = 0; ; hop++) {
    if (!isAllowedAddress(url)) {
      return { refused: hearthError('DOWNLOAD_FAILED', `The download of ${job.label} was sent on to ${url.protocol}//${url.host}, which Hearth does not download from (https only).`) };
    }
    const withAuth = job.auth !== null && url.origin === job.auth.origin && Object.keys(job.auth.headers).length > 0;
    const response = await env.fetch(url, { headers: withAuth && job.auth ? { ...headers, ...job.auth.headers } : headers, redirect: 'manual', signal });
    if (!redirectStatuses.has(response.status)) return { response, sentToken: withAuth };
    await response.body?.cancel().catch(() => undefined);
    const location = response.headers.get('location');
    if (!location) return { refused: hearthError('DOWNLOAD_FAILED', `The server redirected the download of ${job.label} without saying where (${response.status}).`) };
    if (hop >= maxRedirects) return { refused: hearthError('DOWNLOAD_FAILED', `The download of ${job.label} was redirected more than ${maxRedirects} times.`) };
    url = new URL(location, url);
  }
}

/**
 * Brings one part from what its `.part` file holds to complete. Never throws for the network or
 * the disk: every end is a `PartOutcome`.
 */
export async function transferPart(env: TransferEnv, job: PartJob): Promise<PartOutcome> {
  const transfer = new PartTransfer(env, job);
  let outcome: PartOutcome;
  try {
    outcome = await transfer.run();
  } catch (error) {
    if (job.signal.aborted) outcome = stopped;
    else if (isDiskFull(error)) outcome = failed(diskFullWhileWriting(job.label, transfer.have, job.part.size), true);
    else outcome = failed(hearthError('DOWNLOAD_FAILED', `The download of ${job.label} failed: ${errorText(error)}.`, 'Resume to try again.'));
  }
  // Every write has completed or failed by now: the state covers what the file holds, and the
  // memory checks that again (its size) before keeping it.
  if (outcome.kind !== 'complete') await transfer.keepHash();
  return outcome;
}

/** What one request came to: the part's end, a failure worth another try, or a new start at once. */
type Step = { readonly kind: 'end'; readonly outcome: PartOutcome } | { readonly kind: 'retry'; readonly reason: string; readonly waitMs?: number } | { readonly kind: 'again' };

const end = (outcome: PartOutcome): Step => ({ kind: 'end', outcome });

/** One part's tries, with what they share: the bytes on disk, their hash, the failures in a row. */
class PartTransfer {
  readonly #env: TransferEnv;
  readonly #job: PartJob;
  /** Bytes in the part file. */
  have = 0;
  /** The hash of the bytes on disk, kept across tries so a retry does not re-read them. */
  #hashed: HashState | null = null;
  #attempts = 0;
  #bytesAtLastFailure = -1;

  constructor(env: TransferEnv, job: PartJob) {
    this.#env = env;
    this.#job = job;
  }

  /** Hands the running hash to the job's memory, for a resume in this process. */
  async keepHash(): Promise<void> {
    if (this.#hashed !== null && this.#hashed.bytes >= 0) await this.#job.hashes.keep(this.#hashed).catch(() => undefined);
  }

  async run(): Promise<PartOutcome> {
    const { part, partFile, signal } = this.#job;
    const kept = await this.#job.hashes.take();
    this.#hashed = kept.state;
    if (kept.why !== null) this.#env.log('info', `download ${this.#job.label}: ${kept.why} while it was stopped; hashing it again`);
    for (;;) {
      if (signal.aborted) return stopped;
      this.have = await sizeOnDisk(partFile);
      if (part.size !== null && this.have > part.size) await this.#startOver(`the partial file holds ${this.have} bytes, more than the file's ${part.size}`);
      this.#job.onBytes(this.have);
      if (this.#hashed?.bytes !== this.have) {
        // Re-reading gigabytes takes a while: the download says so, and how far it got, instead
        // of standing still.
        const long = this.have >= this.#env.verifyFromBytes && this.have > 0;
        this.#hashed = null;
        if (long) {
          this.#job.onBytes(0);
          this.#job.onPhase('verifying');
        }
        this.#hashed = await hashPrefix(this.#env, partFile, this.have, signal, long ? this.#job.onBytes : undefined);
        if (long) {
          this.#job.onBytes(this.have);
          this.#job.onPhase('downloading');
        }
      }
      if (part.size !== null && this.have === part.size && this.have > 0) return finish(this.#env, this.#job, this.#hashed);

      const step = await this.#attempt(this.#hashed);
      if (step.kind === 'end') return step.outcome;
      if (step.kind === 'retry') {
        const outcome = await this.#retry(step.reason, step.waitMs);
        if (outcome) return outcome;
      }
    }
  }

  /** Counts a failed try and waits; null to go on, else how the part ended. */
  async #retry(reason: string, waitMs?: number): Promise<PartOutcome | null> {
    // A try that made progress is not a failure in a row: a flaky line that cuts every few
    // hundred megabytes still finishes.
    if (this.have > this.#bytesAtLastFailure) this.#attempts = 0;
    this.#bytesAtLastFailure = this.have;
    this.#attempts++;
    const { label, signal } = this.#job;
    if (this.#attempts >= maxAttempts) {
      return failed(hearthError('NETWORK_ERROR', `The download of ${label} stopped: ${reason} (${this.#attempts} tries in a row).`, 'Resume to continue where it stopped.'));
    }
    const ms = waitMs ?? this.#env.backoffMs(this.#attempts);
    this.#env.log('warn', `download ${label}: ${reason}; trying again in ${(ms / 1000).toFixed(1)} s (try ${this.#attempts + 1} of ${maxAttempts}), ${formatBytes(this.have)} kept`);
    try {
      await this.#env.delay(ms, signal);
    } catch {
      return stopped;
    }
    return null;
  }

  /** Throws the part's bytes away: the next byte written is the file's first. */
  async #startOver(why: string): Promise<void> {
    this.#env.log('info', `download ${this.#job.label}: ${why}; starting it over`);
    await truncate(this.#job.partFile, 0).catch(() => undefined);
    this.have = 0;
    this.#hashed = { hash: createHash('sha256'), bytes: 0 };
    this.#job.onBytes(0);
  }

  /** One request from the byte the file has reached, and its body into the file. */
  async #attempt(hashed: HashState): Promise<Step> {
    const { part, signal: jobSignal } = this.#job;
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (this.have > 0) {
      headers['range'] = `bytes=${this.have}-`;
      if (part.validator !== null) headers['if-range'] = part.validator;
    }
    const stall = new AbortController();
    const timer = setTimeout(() => stall.abort(new Error('stalled')), this.#env.stallMs);
    const stallText = `no data for ${Math.round(this.#env.stallMs / 100) / 10} s`;
    try {
      let answer: Awaited<ReturnType<typeof get>>;
      try {
        answer = await get(this.#env, this.#job, headers, AbortSignal.any([jobSignal, stall.signal]));
      } catch (error) {
        if (jobSignal.aborted) return end(stopped);
        return { kind: 'retry', reason: stall.signal.aborted ? stallText : networkReason(error) };
      }
      if ('refused' in answer) return end(failed(answer.refused));
      const accepted = await this.#accept(answer.response, answer.sentToken);
      if (accepted) return accepted;
      // The file restarted from zero (a 200): the hash restarted with it.
      const current = this.#hashed ?? hashed;
      const body = await receive(this.#env, this.#job, answer.response, current, timer, this);
      if (body.kind === 'stopped') return end(stopped);
      if (body.kind === 'failed') return end(body);
      if (body.kind === 'retry') return { kind: 'retry', reason: stall.signal.aborted ? stallText : body.reason };
      if (part.size === null) {
        // No length given and the body ended cleanly: that is the file.
        part.size = this.have;
        this.#job.onChanged();
      }
      if (this.have < part.size) return { kind: 'retry', reason: `the connection ended after ${formatBytes(this.have)} of ${formatBytes(part.size)}` };
      return end(await finish(this.#env, this.#job, current));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads an answer's status and headers: null when its body is the bytes to append, else the step. */
  async #accept(response: Response, sentToken: boolean): Promise<Step | null> {
    const { part, label } = this.#job;
    const status = response.status;
    const statusText = `${status}${response.statusText ? ` ${response.statusText}` : ''}`;
    if (status === 401 || status === 403 || status === 404 || status === 410) {
      const body = await errorBody(response);
      return end(failed(this.#job.refused({ status, headers: response.headers, body }, sentToken)));
    }
    if (status !== 200 && status !== 206) await response.body?.cancel().catch(() => undefined);
    if (status === 429) {
      const asked = retryAfterSeconds(response.headers.get('retry-after'));
      const wait = asked === null ? this.#env.backoffMs(this.#attempts + 1) : asked * 1000;
      if (wait > maxRetryAfterMs) return end(failed(hearthError('NETWORK_ERROR', `The server limits downloads for now (429): it asks to wait ${Math.ceil(wait / 1000)} s.`, 'Resume later.')));
      return { kind: 'retry', reason: 'the server limits requests (429)', waitMs: wait };
    }
    if (status === 408 || status >= 500) return { kind: 'retry', reason: `the server answered ${statusText}` };
    if (status === 416) {
      const total = /^bytes \*\/(\d+)$/.exec(response.headers.get('content-range')?.trim() ?? '');
      if (total && Number(total[1]) === this.have && this.have > 0) {
        // Every byte had arrived (a quit between the last byte and the check).
        part.size = this.have;
        this.#job.onChanged();
        return { kind: 'again' };
      }
      await this.#startOver(`the server cannot serve from byte ${this.have} (416)`);
      return { kind: 'retry', reason: 'the partial file did not match the server’s file' };
    }
    if (status !== 200 && status !== 206) return end(failed(hearthError('DOWNLOAD_FAILED', `The server answered ${statusText} for ${label}.`)));

    const validator = validatorOf(response);
    let total: number | null;
    if (status === 206) {
      const range = contentRange(response.headers.get('content-range'));
      const changed = part.validator !== null && validator !== null && validator !== part.validator;
      if (!range || range.start !== this.have || (range.total !== null && part.size !== null && range.total !== part.size) || changed) {
        await response.body?.cancel().catch(() => undefined);
        const why = !range || range.start !== this.have ? `the server sent another range (${response.headers.get('content-range') ?? 'none'}) than asked for (from byte ${this.have})` : 'the file changed on the server';
        await this.#startOver(why);
        // Learnt again from the next answer.
        part.size = null;
        part.validator = null;
        this.#job.onChanged();
        return { kind: 'retry', reason: why };
      }
      total = range.total;
    } else {
      if (this.have > 0) {
        await this.#startOver(
          part.validator === null
            ? 'the server sent the whole file instead of the rest (it does not resume downloads)'
            : 'the server sent the whole file instead of the rest (the file changed since the download began, or the server does not resume)',
        );
      }
      const length = response.headers.get('content-length');
      total = length !== null && /^\d+$/.test(length) ? Number(length) : null;
      if (total !== null && part.size !== null && total !== part.size) {
        this.#env.log('info', `download ${label}: the server's file is ${total} bytes, not ${part.size} as before`);
        part.size = null;
      }
    }
    if (validator !== part.validator) {
      part.validator = validator;
      this.#job.onChanged();
    }
    if (part.size === null && total !== null) {
      part.size = total;
      this.#job.onChanged();
      const problem = await this.#job.onSized(total);
      if (problem) {
        await response.body?.cancel().catch(() => undefined);
        return end(failed(problem, true));
      }
    }
    return null;
  }
}

/** The error of a write that hit a full disk: the download pauses and nothing is lost. */
function diskFullWhileWriting(label: string, have: number, size: number | null): HearthError {
  const where = size === null ? formatBytes(have) : `${formatBytes(have)} of ${formatBytes(size)}`;
  return hearthError('DISK_FULL', `The disk is full: ${label} paused at ${where}. What arrived is kept.`, 'Free some space, then Resume.');
}

type BodyOutcome = { readonly kind: 'done' } | { readonly kind: 'stopped' } | { readonly kind: 'retry'; readonly reason: string } | { readonly kind: 'failed'; readonly error: HearthError; readonly pause: boolean };

/** Streams the body to the part file, hashing what was written. */
async function receive(
  env: TransferEnv,
  job: PartJob,
  response: Response,
  hashed: HashState,
  stallTimer: ReturnType<typeof setTimeout>,
  progress: { have: number },
): Promise<BodyOutcome> {
  if (!response.body) return { kind: 'done' };
  let writer: PartWriter;
  try {
    writer = await env.openPart(job.partFile);
  } catch (error) {
    await response.body.cancel().catch(() => undefined);
    if (isDiskFull(error)) return { kind: 'failed', error: diskFullWhileWriting(job.label, progress.have, job.part.size), pause: true };
    return { kind: 'failed', error: hearthError('DOWNLOAD_FAILED', `Hearth cannot write ${job.partFile}: ${errorText(error)}.`), pause: false };
  }
  let outcome: BodyOutcome = { kind: 'done' };
  /** A write failed: the file may hold part of its chunk, which the hash does not cover. */
  let torn = false;
  try {
    for await (const chunk of response.body) {
      stallTimer.refresh();
      try {
        await writer.write(chunk);
      } catch (error) {
        torn = true;
        outcome = isDiskFull(error)
          ? { kind: 'failed', error: diskFullWhileWriting(job.label, progress.have, job.part.size), pause: true }
          : { kind: 'failed', error: hearthError('DOWNLOAD_FAILED', `Hearth cannot write ${job.partFile}: ${errorText(error)}.`, 'Resume to try again.'), pause: false };
        break;
      }
      hashed.hash.update(chunk);
      hashed.bytes += chunk.length;
      progress.have = hashed.bytes;
      job.onBytes(hashed.bytes);
      if (job.part.size !== null && hashed.bytes > job.part.size) {
        outcome = { kind: 'retry', reason: `the server sent more than the file's ${job.part.size} bytes` };
        break;
      }
    }
  } catch (error) {
    outcome = job.signal.aborted ? { kind: 'stopped' } : { kind: 'retry', reason: networkReason(error) };
  } finally {
    await writer.close().catch(() => undefined);
  }
  if (torn) {
    // Cut back to the bytes hashed (freeing space, never needing it): the file and the hash
    // agree again, so a resume goes on from the hash. If that fails, the resume re-hashes.
    await truncate(job.partFile, hashed.bytes).then(
      () => job.onBytes(hashed.bytes),
      () => {
        hashed.bytes = -1;
      },
    );
  }
  if (outcome.kind === 'retry' && job.part.size !== null && hashed.bytes > job.part.size) {
    await truncate(job.partFile, 0).catch(() => undefined);
    hashed.bytes = -1; // re-hashed from the truncated file on the next try
  }
  if (outcome.kind === 'done' && job.signal.aborted) return { kind: 'stopped' };
  return outcome;
}

/** Checks the complete part (size, SHA-256 or GGUF magic), syncs it, and reports the outcome. */
async function finish(env: TransferEnv, job: PartJob, hashed: HashState): Promise<PartOutcome> {
  const { part, partFile, label } = job;
  job.onPhase('verifying');
  const size = await sizeOnDisk(partFile);
  if (part.size !== null && size !== part.size) {
    return failed(hearthError('DOWNLOAD_FAILED', `${label} has ${size} bytes on disk, not ${part.size}.`, 'Resume to try again.'));
  }
  const current = hashed.bytes === size ? hashed : await hashPrefix(env, partFile, size, job.signal);
  // A copy is digested: the state stays usable (kept for a resume if a later step fails).
  const digest = current.hash.copy().digest('hex');
  if (part.sha256 !== null && digest !== part.sha256) {
    hashed.bytes = -1;
    await unlink(partFile).catch(() => undefined);
    part.validator = null;
    job.onChanged();
    env.log('warn', `download ${label}: SHA-256 ${digest} does not match the listed ${part.sha256}; the partial file was deleted`);
    return failed(
      hearthError(
        'DOWNLOAD_FAILED',
        `${label} arrived damaged: its SHA-256 does not match the one Hugging Face lists (got ${digest.slice(0, 12)}…, expected ${part.sha256.slice(0, 12)}…). The partial file was deleted.`,
        'Resume to download it again from the start; if it happens again, the file on the Hub may be broken.',
      ),
    );
  }
  const magic = Buffer.alloc(4);
  const handle = await open(partFile, 'r+');
  try {
    const { bytesRead } = await handle.read(magic, 0, 4, 0);
    // Without a listed hash, the magic is the least proof that the bytes are a model and not an
    // error page; with one, the hash says it all.
    if (part.sha256 === null && (bytesRead !== 4 || magic.readUInt32LE(0) !== GGUF_MAGIC)) {
      // Closed before the unlink: Windows cannot delete an open file.
      await handle.close().catch(() => undefined);
      hashed.bytes = -1;
      await unlink(partFile).catch(() => undefined);
      part.validator = null;
      job.onChanged();
      return failed(hearthError('DOWNLOAD_FAILED', `${label} is not a GGUF model file (it does not start with "GGUF"). It was deleted.`, 'Check the address: it should name a .gguf file.'));
    }
    await handle.sync();
  } finally {
    await handle.close().catch(() => undefined);
  }
  env.log('debug', `download ${label}: ${size} bytes, sha256 ${digest}${part.sha256 ? ' (matches)' : ''}`);
  return { kind: 'complete' };
}
