/**
 * The download queue: Hearth's own model downloads, in the host process. One transfer at a time,
 * the others queued in order; pause, resume (also after a restart: rows live in hearth.db and the
 * bytes in `<name>.part` beside the final file), cancel; progress at most ~4 times a second with
 * a speed averaged over the last seconds. A resume in the same process goes on from each part's
 * running hash (hash-memory.ts), kept only while its download is in the queue. Free space is checked before a download starts or
 * resumes, and a full disk while writing pauses it instead of losing it.
 *
 * A file only gets its `.gguf` name once it is whole and checked: the SHA-256 the Hub lists (or,
 * for a plain address, the size and the GGUF magic), synced to disk, and for a split model only
 * once every part is. The library lists `*.gguf` only, so a `.part` is never offered as a model.
 */
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import {
  err,
  errorText,
  formatBytes,
  hearthError,
  ok,
  type DownloadItem,
  type DownloadStatus,
  type HearthError,
  type HearthEvent,
  type Result,
} from '../../contract/index.ts';
import { freeBytes as diskFreeBytes } from '../disk.ts';
import { hubHttpError } from '../hub/errors.ts';
import { newId } from '../chat-store.ts';
import { bytesOnDisk, sizeOf, syncDir } from './files.ts';
import { HashMemory } from './hash-memory.ts';
import { partPath } from './names.ts';
import { planHubFile, planUri, type HubAccess, type Plan } from './plan.ts';
import { SpeedMeter, etaSeconds } from './speed.ts';
import { DownloadStore, type DownloadRow, type PartRecord } from './store.ts';
import { abortableDelay, appendToFile, defaultBackoffMs, defaultStallMs, defaultVerifyFromBytes, readPrefix, transferPart, type OpenPart, type OriginAuth, type ReadPrefix, type TransferEnv } from './transfer.ts';

export type { HubAccess } from './plan.ts';

export interface DownloadQueueDeps {
  /** hearth.db (db.ts), for the queue's rows. */
  readonly db: DatabaseSync;
  /** Where new downloads go (a setting): read when each download is started. */
  readonly modelsDir: () => string;
  readonly hub: HubAccess;
  /** `download.progress` with a DownloadItem (and `removed: true` when cleared). */
  readonly emit: (event: HearthEvent) => void;
  readonly log: (level: 'error' | 'warn' | 'info' | 'debug', message: string) => void;
  /** Free bytes on a folder's disk; disk.ts `freeBytes` by default. */
  readonly freeBytes?: (dir: string) => Promise<number | null>;
  readonly fetch?: typeof fetch;
  /** Opens a part file for appending; tests inject a disk that fills up. */
  readonly openPart?: OpenPart;
  /** Waits before a retry; tests record the waits instead of sleeping. */
  readonly delay?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** The wait before the n-th retry in a row (1 s, 2 s, 4 s… by default). */
  readonly backoffMs?: (attempt: number) => number;
  /** A connection without a byte for this long is given up and retried (60 s by default). */
  readonly stallMs?: number;
  /** Reads a part's prefix to hash it again (a restart, a file changed while paused); tests count its bytes. */
  readonly readPrefix?: ReadPrefix;
  /** A prefix to re-hash at least this long shows as `verifying` with its progress (64 MiB by default). */
  readonly verifyFromBytes?: number;
}

/** Free space a download leaves at least: the disk is not filled to the last byte. */
export const diskMarginBytes = 256 * 1024 * 1024;
/** Progress events per download at most every this often (status changes are sent at once). */
const progressIntervalMs = 250;

/** Statuses whose download still has work to do. */
const unfinished: ReadonlySet<DownloadStatus> = new Set(['queued', 'downloading', 'verifying', 'paused', 'error']);
/** Statuses `clear` removes. */
const ended: ReadonlySet<DownloadStatus> = new Set(['done', 'error', 'cancelled']);

/** The transfer running now. */
interface Run {
  readonly row: DownloadRow;
  readonly controller: AbortController;
  /** Why it is being stopped, set before the abort: the run then ends in the matching state. */
  stop: 'pause' | 'cancel' | 'quit' | null;
  readonly meter: SpeedMeter;
  lastEmit: number;
  done: Promise<void>;
}

type StartInput = { readonly repo: string; readonly file: string } | { readonly uri: string };

export class DownloadQueue {
  readonly #deps: DownloadQueueDeps;
  readonly #store: DownloadStore;
  readonly #env: TransferEnv;
  readonly #freeBytes: (dir: string) => Promise<number | null>;
  /** Every listed download, oldest first (insertion order is creation order). */
  readonly #rows = new Map<string, DownloadRow>();
  /** Running hashes of stopped parts, by download: dropped with the download (cancel, clear, done). */
  readonly #hashes = new HashMemory();
  #running: Run | null = null;
  /** Final paths of downloads `start` is still checking. */
  readonly #claimed = new Set<string>();
  #restored = false;
  #disposed = false;

  constructor(deps: DownloadQueueDeps) {
    this.#deps = deps;
    this.#store = new DownloadStore(deps.db);
    this.#freeBytes = deps.freeBytes ?? diskFreeBytes;
    this.#env = {
      fetch: deps.fetch ?? fetch,
      openPart: deps.openPart ?? appendToFile,
      delay: deps.delay ?? abortableDelay,
      backoffMs: deps.backoffMs ?? defaultBackoffMs,
      stallMs: deps.stallMs ?? defaultStallMs,
      readPrefix: deps.readPrefix ?? readPrefix,
      verifyFromBytes: deps.verifyFromBytes ?? defaultVerifyFromBytes,
      log: deps.log,
    };
  }

  /** Oldest first. */
  list(): DownloadItem[] {
    return this.#ordered().map((row) => this.#view(row));
  }

  /** Rows oldest first (a restore after a start puts older rows after newer ones in the map). */
  #ordered(): DownloadRow[] {
    return [...this.#rows.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Parts whose running hash is kept in memory for a resume (for tests: it stays bounded). */
  get keptHashes(): number {
    return this.#hashes.size;
  }

  /** Any download transferring now. */
  get active(): boolean {
    const status = this.#running?.row.status;
    return status === 'downloading' || status === 'verifying';
  }

  /**
   * At app start: loads the rows a previous run left. Those left `downloading`, `queued` or
   * `verifying` by a quit or crash are queued again (and resume from their `.part` files);
   * paused and failed ones stay as they were; finished and cancelled ones are forgotten.
   */
  restore(): void {
    if (this.#restored || this.#disposed) return;
    this.#restored = true;
    const rows = this.#store.all((id, why) => this.#deps.log('warn', `download ${id}: its saved row is damaged and was dropped (${why})`));
    for (const row of rows) {
      if (row.status === 'done' || row.status === 'cancelled') {
        this.#store.delete(row.id);
        continue;
      }
      if (this.#rows.has(row.id)) continue;
      // The bytes on disk are the truth, not the count saved with the row.
      row.downloadedBytes = bytesOnDisk(row.parts);
      if (row.status === 'downloading' || row.status === 'verifying') {
        row.status = 'queued';
        this.#store.save(row);
      }
      this.#rows.set(row.id, row);
    }
    this.#pump();
  }

  /**
   * Queues a download: a file of a Hub repository (`file` is a HubFile.id), or an address
   * (`hf:owner/repo:QUANT`, `hf:owner/repo/path.gguf`, https). Refused when the name is taken in
   * the models folder, the file is already queued, or the disk lacks the room.
   */
  async start(input: StartInput): Promise<Result<DownloadItem>> {
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; the download was not started.');
    const dir = path.resolve(this.#deps.modelsDir());
    const planned = 'uri' in input ? await planUri(this.#deps.hub, input.uri, dir) : await planHubFile(this.#deps.hub, input.repo, input.file, dir);
    if (!planned.ok) return planned;
    const plan = planned.value;
    const queued = this.#queuedWith(plan.parts);
    if (queued) return err('BUSY', `${plan.name} is already in the download queue (${queued.status}).`, 'Resume it there instead.');
    // Claimed until its row exists: a second start of the same file (a double click) is refused
    // above instead of racing this one through the awaits below.
    const files = plan.parts.map((part) => part.file);
    if (files.some((file) => this.#claimed.has(file))) return err('BUSY', `${plan.name} is being added to the download queue already.`);
    for (const file of files) this.#claimed.add(file);
    try {
      return await this.#add(plan, dir);
    } finally {
      for (const file of files) this.#claimed.delete(file);
    }
  }

  /** The checks that need the disk, then the new row. */
  async #add(plan: Plan, dir: string): Promise<Result<DownloadItem>> {
    for (const part of plan.parts) {
      const existing = await stat(part.file).catch(() => null);
      if (existing) {
        return err('INVALID_INPUT', `${path.basename(part.file)} is already in the models folder (${part.file}).`, 'Load it from the library, or delete it there to download it again.');
      }
    }
    const space = await this.#checkSpace(plan.name, dir, plan.totalBytes, true);
    if (space) return { ok: false, error: space };
    // A `.part` no row owns (a crash before its row was written, a failed delete) is stale: its
    // bytes may come from another file, so they are never resumed.
    for (const part of plan.parts) await unlink(partPath(part.file)).catch(() => undefined);
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; the download was not started.');

    const row: DownloadRow = {
      id: newId(),
      uri: plan.uri,
      repo: plan.repo,
      revision: plan.revision,
      name: plan.name,
      parts: plan.parts,
      status: 'queued',
      downloadedBytes: 0,
      totalBytes: plan.totalBytes,
      error: null,
      createdAt: Date.now(),
    };
    this.#store.save(row);
    this.#rows.set(row.id, row);
    this.#deps.log('info', `download ${row.id}: queued ${row.uri} → ${row.parts[0]?.file}${row.parts.length > 1 ? ` (+${row.parts.length - 1} parts)` : ''}`);
    // The answer is the queued download, as the event says; the pump may start it at once.
    const queuedItem = this.#view(row);
    this.#emit(row);
    this.#pump();
    return ok(queuedItem);
  }

  /** Pauses a download, keeping what arrived; it stays paused across restarts. */
  async pause(id: string): Promise<Result<DownloadItem>> {
    const row = this.#rows.get(id);
    if (!row) return this.#unknown(id);
    const run = this.#running;
    if (run?.row === row) {
      run.stop ??= 'pause';
      run.controller.abort();
      await run.done;
      return ok(this.#view(row));
    }
    if (row.status === 'paused') return ok(this.#view(row));
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; the download will resume at the next start.');
    if (row.status !== 'queued') return err('INVALID_INPUT', `${row.name} cannot be paused: it is ${row.status}.`);
    this.#setStatus(row, 'paused', null);
    return ok(this.#view(row));
  }

  /** Resumes a paused or failed download where it stopped; free space is checked again. */
  async resume(id: string): Promise<Result<DownloadItem>> {
    const row = this.#rows.get(id);
    if (!row) return this.#unknown(id);
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; the download was not resumed.');
    if (row.status === 'queued' || row.status === 'downloading' || row.status === 'verifying') return ok(this.#view(row));
    if (row.status !== 'paused' && row.status !== 'error') return err('INVALID_INPUT', `${row.name} cannot be resumed: it is ${row.status}.`);
    const dir = path.dirname(row.parts[0]?.file ?? '');
    const have = bytesOnDisk(row.parts);
    const space = await this.#checkSpace(row.name, dir, Math.max(0, row.totalBytes - have), false);
    if (space) return { ok: false, error: space };
    // The row may have changed during the awaits (cancelled, resumed twice).
    if (row.status !== 'paused' && row.status !== 'error') return ok(this.#view(row));
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; the download was not resumed.');
    row.downloadedBytes = have;
    this.#setStatus(row, 'queued', null);
    const queuedItem = this.#view(row);
    this.#pump();
    return ok(queuedItem);
  }

  /** Cancels a download and deletes what arrived. */
  async cancel(id: string): Promise<Result<DownloadItem>> {
    const row = this.#rows.get(id);
    if (!row) return this.#unknown(id);
    const run = this.#running;
    if (run?.row === row) {
      run.stop = 'cancel';
      run.controller.abort();
      await run.done;
      return ok(this.#view(row));
    }
    if (row.status === 'cancelled') return ok(this.#view(row));
    if (row.status === 'done') return err('INVALID_INPUT', `${row.name} has finished downloading.`, 'Delete it in the library instead.');
    if (this.#disposed) return err('BUSY', 'Hearth is quitting; cancel the download after the next start.');
    await this.#deleteParts(row);
    row.downloadedBytes = 0;
    this.#setStatus(row, 'cancelled', null);
    return ok(this.#view(row));
  }

  /** Removes ended downloads (done, error, cancelled) from the list; a failed one's partial files go with it. */
  clear(): Result<{ removed: number }> {
    if (this.#disposed) return ok({ removed: 0 });
    let removed = 0;
    for (const row of [...this.#rows.values()]) {
      if (!ended.has(row.status) || this.#running?.row === row) continue;
      if (row.status === 'error') void this.#deleteParts(row);
      this.#hashes.forget(row.id);
      this.#rows.delete(row.id);
      this.#store.delete(row.id);
      this.#deps.emit({ type: 'download.progress', payload: { ...this.#view(row), removed: true } });
      removed++;
    }
    return ok({ removed });
  }

  /** Quit: stops the transfer, keeping partial files and rows so the next start resumes. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const run = this.#running;
    if (run) {
      run.stop = 'quit';
      run.controller.abort();
      await run.done;
    }
    for (const id of this.#rows.keys()) this.#hashes.forget(id);
  }

  /** The unfinished download that writes any of these files, if one does. */
  #queuedWith(parts: readonly PartRecord[]): DownloadRow | null {
    const files = new Set(parts.map((part) => part.file));
    for (const row of this.#rows.values()) {
      if (unfinished.has(row.status) && row.parts.some((part) => files.has(part.file))) return row;
    }
    return null;
  }

  /**
   * DISK_FULL when `dir`'s disk lacks `bytes` plus the margin (and, for a new download, the rest
   * of the downloads queued ahead of it); null when there is room or it cannot be measured.
   */
  async #checkSpace(name: string, dir: string, bytes: number, withQueued: boolean): Promise<HearthError | null> {
    let ahead = 0;
    if (withQueued) {
      for (const row of this.#rows.values()) {
        if (row.status === 'queued' || row.status === 'downloading' || row.status === 'verifying') ahead += Math.max(0, row.totalBytes - row.downloadedBytes);
      }
    }
    const free = await this.#freeBytes(dir);
    if (free === null) {
      this.#deps.log('debug', `download ${name}: the free space in ${dir} cannot be measured; starting anyway`);
      return null;
    }
    if (free >= bytes + ahead + diskMarginBytes) return null;
    const needs = ahead > 0 ? `${formatBytes(bytes)} (and ${formatBytes(ahead)} for the downloads ahead of it)` : formatBytes(bytes);
    return hearthError(
      'DISK_FULL',
      `Not enough free space for ${name} in ${dir}: it needs ${needs} plus ${formatBytes(diskMarginBytes)} to spare, and the disk has ${formatBytes(free)} free.`,
      'Free some space, or choose another models folder in Settings; then try again.',
    );
  }

  // ---- running -----------------------------------------------------------------------------

  /** Starts the oldest queued download when nothing runs. */
  #pump(): void {
    if (this.#running || this.#disposed) return;
    const row = this.#ordered().find((candidate) => candidate.status === 'queued');
    if (!row) return;
    const run: Run = { row, controller: new AbortController(), stop: null, meter: new SpeedMeter(), lastEmit: 0, done: Promise.resolve() };
    this.#running = run;
    run.done = this.#run(run)
      .catch((error: unknown) => {
        // A bug, not the network or the disk (those are outcomes): the row says so and the queue goes on.
        this.#deps.log('error', `download ${row.id}: ${errorText(error)}`);
        if (!this.#disposed) this.#setStatus(row, 'error', hearthError('INTERNAL', `The download of ${row.name} failed: ${errorText(error)}.`, 'Resume to try again.'));
      })
      .finally(() => {
        this.#running = null;
        this.#pump();
      });
  }

  async #run(run: Run): Promise<void> {
    const { row } = run;
    const signal = run.controller.signal;
    this.#setStatus(row, 'downloading', null);
    const first = row.parts[0] as PartRecord;
    const dir = path.dirname(first.file);
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      await this.#fail(run, 'error', hearthError('DOWNLOAD_FAILED', `Hearth cannot create the models folder ${dir}: ${errorText(error)}.`, 'Check the models folder in Settings, then Resume.'));
      return;
    }
    row.downloadedBytes = bytesOnDisk(row.parts);
    const space = await this.#checkSpace(row.name, dir, Math.max(0, row.totalBytes - row.downloadedBytes), false);
    if (space) {
      await this.#fail(run, 'paused', { ...space, hint: 'Free some space, then Resume.' });
      return;
    }
    let auth: OriginAuth | null = null;
    if (row.repo !== null && row.revision !== null) {
      const url = this.#deps.hub.fileUrl(row.repo, row.revision, first.remote);
      auth = { origin: new URL(url).origin, headers: await this.#deps.hub.authHeaders() };
    }

    let before = 0;
    for (const [index, part] of row.parts.entries()) {
      if (signal.aborted) break;
      const file = partPath(part.file);
      if (part.verified) {
        // Checked in an earlier run: still there (as .part, or already renamed by a finish a quit cut short)?
        const onDisk = (await sizeOf(file)) ?? (await sizeOf(part.file));
        if (onDisk !== null && onDisk === part.size) {
          before += onDisk;
          continue;
        }
        this.#deps.log('warn', `download ${row.id}: ${path.basename(file)} was checked before but is gone or changed; downloading it again`);
        part.verified = false;
        this.#store.save(row);
      }
      const base = before;
      const url = row.repo !== null && row.revision !== null ? this.#deps.hub.fileUrl(row.repo, row.revision, part.remote) : part.remote;
      const outcome = await transferPart(this.#env, {
        label: path.basename(part.file),
        url,
        auth,
        partFile: file,
        part,
        hashes: this.#hashes.slot(row.id, file),
        signal,
        onBytes: (bytes) => this.#progress(run, base + bytes),
        onSized: async () => {
          if (row.repo !== null && row.totalBytes > 0) return null; // the Hub gave the total up front: checked before the start
          row.totalBytes = row.parts.reduce((sum, each) => sum + (each.size ?? 0), 0);
          this.#store.save(row);
          return this.#checkSpace(row.name, dir, Math.max(0, row.totalBytes - row.downloadedBytes), false);
        },
        onChanged: () => this.#store.save(row),
        onPhase: (phase) => {
          if (row.status === phase) return;
          // The speed after re-hashing a prefix is measured afresh, not from the reading.
          if (phase === 'downloading') run.meter.reset();
          this.#setStatus(row, phase, null);
        },
        refused: (answer, sentToken) => this.#refused(row, part, url, answer, sentToken),
      });
      if (outcome.kind === 'stopped') break;
      if (outcome.kind === 'failed') {
        await this.#fail(run, outcome.pause ? 'paused' : 'error', outcome.error);
        return;
      }
      part.verified = true;
      this.#store.save(row);
      before += part.size ?? 0;
      if (index < row.parts.length - 1 && !signal.aborted) this.#setStatus(row, 'downloading', null);
    }

    if (signal.aborted) {
      await this.#stopped(run);
      return;
    }
    await this.#finish(row);
  }

  /** Every part is verified: the `.part` files get their final names, the first part's last. */
  async #finish(row: DownloadRow): Promise<void> {
    this.#setStatus(row, 'verifying', null);
    const first = row.parts[0] as PartRecord;
    // The library shows a split model by its first part: it appears only once every part is in place.
    const order = [...row.parts.slice(1), first];
    try {
      for (const part of order) {
        const from = partPath(part.file);
        if ((await sizeOf(from)) === null) continue; // renamed by a finish a quit cut short
        if ((await sizeOf(part.file)) !== null) {
          this.#setStatus(
            row,
            'error',
            hearthError('DOWNLOAD_FAILED', `${path.basename(part.file)} appeared in the models folder while it was downloading; Hearth did not replace it.`, 'Move that file away, then Resume.'),
          );
          return;
        }
        await rename(from, part.file);
      }
      await syncDir(path.dirname(first.file));
    } catch (error) {
      this.#setStatus(row, 'error', hearthError('DOWNLOAD_FAILED', `Hearth could not move ${row.name} into the models folder: ${errorText(error)}.`, 'Resume to try again.'));
      return;
    }
    row.totalBytes = row.parts.reduce((sum, part) => sum + (part.size ?? 0), 0);
    row.downloadedBytes = row.totalBytes;
    this.#hashes.forget(row.id);
    this.#setStatus(row, 'done', null);
    this.#deps.log('info', `download ${row.id}: done, ${formatBytes(row.totalBytes)} in ${first.file}`);
  }

  /** The run cannot go on: it ends paused or failed, unless a stop came meanwhile (the stop wins). */
  async #fail(run: Run, status: 'paused' | 'error', error: HearthError): Promise<void> {
    if (run.stop !== null) return this.#stopped(run);
    this.#setStatus(run.row, status, error);
    this.#deps.log(status === 'paused' ? 'warn' : 'error', `download ${run.row.id}: ${error.message}`);
  }

  /** The run was aborted: it ends as its stop asked. */
  async #stopped(run: Run): Promise<void> {
    const { row } = run;
    if (run.stop === 'cancel') {
      await this.#deleteParts(row);
      row.downloadedBytes = 0;
      this.#setStatus(row, 'cancelled', null);
      this.#deps.log('info', `download ${row.id}: cancelled`);
    } else if (run.stop === 'pause') {
      row.downloadedBytes = bytesOnDisk(row.parts);
      this.#setStatus(row, 'paused', null);
      this.#deps.log('info', `download ${row.id}: paused at ${formatBytes(row.downloadedBytes)}`);
    } else {
      // Quit: the row keeps its status, so the next start's restore() queues it again.
      this.#store.save(row);
    }
  }

  #progress(run: Run, bytes: number): void {
    const { row } = run;
    row.downloadedBytes = bytes;
    const now = performance.now();
    // While a prefix is re-hashed the bytes count what was read back, not what arrived.
    if (row.status !== 'verifying') run.meter.add(now, bytes);
    if (now - run.lastEmit < progressIntervalMs) return;
    run.lastEmit = now;
    this.#emit(row);
  }

  /** A refusal (401/403) or a missing file (404/410): for the Hub in the Hub client's words. */
  #refused(row: DownloadRow, part: PartRecord, url: string, answer: { status: number; headers: Headers; body: string }, sentToken: boolean): HearthError {
    const label = path.basename(part.file);
    if (row.repo !== null) {
      const endpoint = new URL(url).origin;
      return hubHttpError(answer.status, answer.headers, answer.body, { endpoint, repo: row.repo, path: part.remote, revision: row.revision ?? undefined, hadToken: sentToken });
    }
    if (answer.status === 404 || answer.status === 410) {
      return hearthError('NOT_FOUND', `${label} is not on the server (${answer.status} for ${url}).`, 'The file may have been renamed or removed; check the address.');
    }
    return hearthError('AUTH_REQUIRED', `The server refused to send ${label} (${answer.status}).`, 'Hearth sends no credentials to other sites: download the file in a browser and put it in the models folder.');
  }

  // ---- rows and files ----------------------------------------------------------------------

  #setStatus(row: DownloadRow, status: DownloadStatus, error: HearthError | null): void {
    row.status = status;
    row.error = error;
    this.#store.save(row);
    const run = this.#running;
    if (run?.row === row) {
      run.lastEmit = performance.now();
      if (status !== 'downloading' && status !== 'verifying') run.meter.reset();
    }
    this.#emit(row);
  }

  #emit(row: DownloadRow): void {
    this.#deps.emit({ type: 'download.progress', payload: this.#view(row) });
  }

  #view(row: DownloadRow): DownloadItem {
    const run = this.#running;
    const speed = run?.row === row && row.status === 'downloading' ? Math.round(run.meter.rate(performance.now())) : 0;
    const remaining = row.totalBytes - row.downloadedBytes;
    const item: DownloadItem = {
      id: row.id,
      uri: row.uri,
      ...(row.repo !== null ? { repo: row.repo } : {}),
      name: row.name,
      path: (row.parts[0] as PartRecord).file,
      status: row.status,
      downloadedBytes: row.downloadedBytes,
      totalBytes: row.totalBytes,
      bytesPerSecond: speed,
      etaSeconds: row.totalBytes > 0 ? etaSeconds(remaining, speed) : null,
      createdAt: row.createdAt,
    };
    return row.error === null ? item : { ...item, error: row.error };
  }

  #unknown(id: string): Result<DownloadItem> {
    return err('NOT_FOUND', `No download ${id.slice(0, 64)} is in the queue.`);
  }

  /** Deletes what the download wrote: its `.part` files, and parts a cut-short finish had already renamed. */
  async #deleteParts(row: DownloadRow): Promise<void> {
    this.#hashes.forget(row.id);
    for (const part of row.parts) {
      const hadPart = await unlink(partPath(part.file)).then(
        () => true,
        () => false,
      );
      // A verified part without its .part was renamed by this download; any other file of that name is not ours.
      if (part.verified && !hadPart && row.status !== 'done') await unlink(part.file).catch(() => undefined);
      part.verified = false;
      part.validator = null;
    }
  }
}
