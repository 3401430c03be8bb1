/**
 * Model downloads: the engine process downloads (node-llama-cpp's downloader lives there); the
 * host checks the URI, names the download, relays progress as `download.progress`, and makes
 * sure every download ends with exactly one terminal event (done, error or cancelled).
 */
import { err, ok, type DownloadProgress, type HearthEvent, type Result } from '../contract/index.ts';
import { DisposableStore, type Disposable } from '../base/disposable.ts';
import type { WorkerEvent } from '../protocol.ts';
import { checkDownloadUri } from './models.ts';
import { newId } from './chat-store.ts';
import type { Supervisor } from './supervisor.ts';

export interface DownloadsDeps {
  readonly engine: Pick<Supervisor, 'request' | 'onEvent'>;
  readonly modelsDir: string;
  readonly emit: (event: HearthEvent) => void;
}

export class Downloads implements Disposable {
  readonly #deps: DownloadsDeps;
  readonly #subscriptions = new DisposableStore();
  /** Downloads in progress, with their latest progress. */
  readonly #active = new Map<string, DownloadProgress>();

  constructor(deps: DownloadsDeps) {
    this.#deps = deps;
    this.#subscriptions.add(deps.engine.onEvent((event) => this.#onEvent(event)));
  }

  /** Stops listening to the engine; downloads still running end with it. */
  dispose(): void {
    this.#subscriptions.dispose();
  }

  /** Starts a download and returns its id at once; progress and the end arrive as events. */
  start(uri: string): Result<{ downloadId: string }> {
    const checked = checkDownloadUri(uri);
    if (!checked.ok) return checked;
    const downloadId = newId();
    const first: DownloadProgress = { downloadId, uri: checked.value, status: 'downloading', downloadedBytes: 0, totalBytes: 0 };
    this.#active.set(downloadId, first);
    this.#emit(first);
    void this.#deps.engine
      .request('download', { downloadId, uri: checked.value, dirPath: this.#deps.modelsDir })
      .then((result) => {
        const last = this.#active.get(downloadId);
        if (!last) return; // the engine already reported the end
        if (result.ok) {
          this.#end({ ...last, status: 'done', path: result.value.path, downloadedBytes: Math.max(last.downloadedBytes, last.totalBytes) });
        } else if (result.error.code === 'CANCELLED') {
          this.#end({ ...last, status: 'cancelled' });
        } else {
          this.#end({ ...last, status: 'error', error: result.error });
        }
      });
    return ok({ downloadId });
  }

  async cancel(downloadId: string): Promise<Result<{ cancelled: boolean }>> {
    if (!this.#active.has(downloadId)) return ok({ cancelled: false });
    const result = await this.#deps.engine.request('cancelDownload', { downloadId }, { timeoutMs: 10_000 });
    if (!result.ok) return err(result.error.code, result.error.message);
    return result;
  }

  get active(): DownloadProgress[] {
    return [...this.#active.values()];
  }

  #onEvent(event: WorkerEvent): void {
    if (event.type !== 'downloadProgress') return;
    const progress = event.progress;
    if (!this.#active.has(progress.downloadId)) return;
    if (progress.status === 'downloading') {
      this.#active.set(progress.downloadId, progress);
      this.#emit(progress);
    } else {
      this.#end(progress);
    }
  }

  #end(progress: DownloadProgress): void {
    if (!this.#active.delete(progress.downloadId)) return;
    this.#emit(progress);
  }

  #emit(progress: DownloadProgress): void {
    this.#deps.emit({ type: 'download.progress', payload: progress });
  }
}
