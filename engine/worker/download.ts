/**
 * Model downloads with node-llama-cpp's downloader (which uses ipull).
 *
 * How resume works (read from ipull 3.9.5, checked by download.model.test.ts): the file is
 * written as `<name>.ipull` in the target directory, in 5 MiB chunks fetched with HTTP Range
 * requests; after each finished chunk ipull appends its progress record (which chunks are
 * complete) after the data. With `deleteTempFileOnCancel: false` a cancelled download leaves
 * that file behind, and the next download of the same URL to the same name reads the record
 * and requests only the missing chunks. When the download finishes the file is truncated to its
 * size and renamed to `<name>`. `skipExisting` makes a finished file of the right size a no-op.
 * A server without `Accept-Ranges: bytes` cannot be resumed: the download starts over.
 */
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { createModelDownloader, type ModelDownloader } from 'node-llama-cpp';
import { err, hearthError, ok, type DownloadProgress, type HearthError, type Result, errorText } from '../contract/index.ts';
import type { WorkerEvent, WorkerMethods } from '../protocol.ts';

type DownloadInput = WorkerMethods['download']['input'];

/** Progress events at most this often (the final event of each download is always sent). */
const PROGRESS_INTERVAL_MS = 250;

interface ActiveDownload {
  readonly controller: AbortController;
  readonly target: string;
  downloader?: ModelDownloader;
}

/**
 * The file name a plain URL downloads to: its last path segment, decoded. Null when that
 * segment cannot be a file name inside the models directory (empty, `..`, separators).
 */
export function fileNameOfUrl(url: URL): string | null {
  const segment = url.pathname.split('/').at(-1) ?? '';
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return null;
  }
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) return null;
  return name;
}

/** Whether `path` lies strictly inside `dir`. */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function downloadFailure(error: unknown): HearthError {
  const message = errorText(error);
  if (/ENOSPC|no space left/i.test(message)) {
    return hearthError('DISK_FULL', `The disk is full: ${message}`, 'Free some disk space, then download again: it resumes where it stopped.');
  }
  return hearthError('DOWNLOAD_FAILED', `The download failed: ${message}`, 'Check the address and your connection, then try again: the download resumes where it stopped.');
}

type ProgressFields = Omit<DownloadProgress, 'downloadId' | 'uri'>;

/** Reports progress; `force` sends at once (a download's final events). */
type Progress = (fields: ProgressFields, force?: boolean) => void;

/**
 * The file name `uri` downloads to inside `dirPath`: undefined for an `hf:` URI (node-llama-cpp
 * names it after the file in the repository), else the URL's last path segment.
 */
function downloadFileName(uri: string, dirPath: string): Result<string | undefined> {
  if (uri.startsWith('hf:')) return ok(undefined);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return err('INVALID_INPUT', `"${uri}" is not a download address: use an https:// URL or an hf:owner/repo:quant URI.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return err('INVALID_INPUT', `Only http(s) and hf: addresses can be downloaded, not ${url.protocol}`);
  }
  const name = fileNameOfUrl(url);
  if (name === null || !isInside(dirPath, resolve(dirPath, name))) {
    return err('INVALID_INPUT', `The address "${uri}" does not end with a usable file name.`);
  }
  return ok(name);
}

/**
 * Progress events throttled to PROGRESS_INTERVAL_MS, with a trailing event so the last value seen
 * before a stall is still reported (while `active` says the download still runs).
 */
function throttledProgress(send: (fields: ProgressFields) => void, active: () => boolean): Progress {
  let lastEmit = 0;
  let trailing: NodeJS.Timeout | null = null;
  let latest: ProgressFields | null = null;
  const emit = (fields: ProgressFields): void => {
    lastEmit = Date.now();
    send(fields);
  };
  return (fields, force = false) => {
    if (force) {
      if (trailing) clearTimeout(trailing);
      trailing = null;
      emit(fields);
      return;
    }
    latest = fields;
    const wait = PROGRESS_INTERVAL_MS - (Date.now() - lastEmit);
    if (wait <= 0) emit(fields);
    else
      trailing ??= setTimeout(() => {
        trailing = null;
        if (latest && active()) emit(latest);
      }, wait);
  };
}

export class Downloads {
  private readonly active = new Map<string, ActiveDownload>();
  private readonly emit: (event: WorkerEvent) => void;

  constructor(emit: (event: WorkerEvent) => void) {
    this.emit = emit;
  }

  async download(input: DownloadInput): Promise<Result<{ readonly path: string }>> {
    const { downloadId, uri, dirPath } = input;
    if (typeof downloadId !== 'string' || typeof uri !== 'string' || typeof dirPath !== 'string') {
      return err('INVALID_INPUT', 'download needs a downloadId, a uri and a dirPath.');
    }
    if (!isAbsolute(dirPath)) return err('INVALID_INPUT', `The models directory must be an absolute path, not "${dirPath}".`);
    if (this.active.has(downloadId)) return err('BUSY', `A download with id ${downloadId} is already running.`);
    const named = downloadFileName(uri, dirPath);
    if (!named.ok) return named;
    const fileName = named.value;

    const provisionalTarget = fileName === undefined ? `${downloadId}` : resolve(dirPath, fileName);
    for (const other of this.active.values()) {
      if (other.target === provisionalTarget) return err('BUSY', `${provisionalTarget} is already being downloaded.`);
    }
    const entry: ActiveDownload = { controller: new AbortController(), target: provisionalTarget };
    this.active.set(downloadId, entry);
    const progress = throttledProgress(
      (fields) => this.emit({ type: 'downloadProgress', progress: { downloadId, uri, ...fields } }),
      () => this.active.get(downloadId) === entry,
    );
    try {
      return await this.#transfer(entry, uri, dirPath, fileName, progress);
    } finally {
      this.active.delete(downloadId);
    }
  }

  async #transfer(entry: ActiveDownload, uri: string, dirPath: string, fileName: string | undefined, progress: Progress): Promise<Result<{ readonly path: string }>> {
    const cancelled = (downloaded: number, total: number): Result<never> => {
      progress({ status: 'cancelled', downloadedBytes: downloaded, totalBytes: total }, true);
      return err('CANCELLED', 'The download was cancelled.', 'Download it again to resume where it stopped.');
    };
    progress({ status: 'downloading', downloadedBytes: 0, totalBytes: 0 }, true);
    let downloader: ModelDownloader;
    try {
      downloader = await createModelDownloader({
        modelUri: uri,
        dirPath,
        ...(fileName === undefined ? {} : { fileName }),
        showCliProgress: false,
        // Keep the partial `.ipull` file on cancel so the next download resumes.
        deleteTempFileOnCancel: false,
        skipExisting: true,
        parallelDownloads: 1,
        onProgress: ({ downloadedSize, totalSize }) =>
          progress({ status: 'downloading', downloadedBytes: downloadedSize, totalBytes: totalSize }),
      });
    } catch (error) {
      if (entry.controller.signal.aborted) return cancelled(0, 0);
      const failure = downloadFailure(error);
      progress({ status: 'error', downloadedBytes: 0, totalBytes: 0, error: failure }, true);
      return { ok: false, error: failure };
    }
    entry.downloader = downloader;
    if (!isInside(dirPath, downloader.entrypointFilePath)) {
      await downloader.cancel({ deleteTempFile: true });
      return err('INVALID_INPUT', `The download would be written outside the models directory (${downloader.entrypointFilePath}).`);
    }
    if (entry.controller.signal.aborted) {
      await downloader.cancel({ deleteTempFile: false });
      return cancelled(downloader.downloadedSize, downloader.totalSize);
    }
    // ipull ignores a cancel that arrives while one of its range requests is still waiting
    // for response headers, and download() then never settles; so a cancel answers at once
    // instead of waiting for download() (its later outcome is ignored).
    const whenCancelled = new Promise<'cancelled'>((resolve) => {
      entry.controller.signal.addEventListener('abort', () => resolve('cancelled'), { once: true });
    });
    const transfer = downloader.download({ signal: entry.controller.signal }).then(
      (path) => ({ path }),
      (error: unknown) => ({ error }),
    );
    const outcome = await Promise.race([transfer, whenCancelled]);
    // A cancel also makes download() resolve as if it had finished, so the signal decides.
    if (outcome === 'cancelled' || entry.controller.signal.aborted) {
      await downloader.cancel({ deleteTempFile: false }).catch(() => undefined);
      return cancelled(downloader.downloadedSize, downloader.totalSize);
    }
    if ('path' in outcome) {
      progress({ status: 'done', downloadedBytes: downloader.totalSize, totalBytes: downloader.totalSize, path: outcome.path }, true);
      return ok({ path: outcome.path });
    }
    const failure = downloadFailure(outcome.error);
    progress({ status: 'error', downloadedBytes: downloader.downloadedSize, totalBytes: downloader.totalSize, error: failure }, true);
    // Close the connections but keep the partial file for a resume.
    await downloader.cancel({ deleteTempFile: false }).catch(() => undefined);
    return { ok: false, error: failure };
  }

  async cancel(downloadId: string): Promise<Result<{ readonly cancelled: boolean }>> {
    const entry = this.active.get(downloadId);
    if (!entry || entry.controller.signal.aborted) return ok({ cancelled: false });
    entry.controller.abort(new Error('cancelled'));
    // download() also cancels through the signal; doing it here too covers the window where
    // the downloader exists but download() has not been called yet.
    await entry.downloader?.cancel({ deleteTempFile: false }).catch(() => undefined);
    return ok({ cancelled: true });
  }

  /** Cancels every download, keeping partial files (process shutdown). */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.cancel(id)));
  }
}
