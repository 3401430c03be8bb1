/**
 * Saving a chat export (`chats.export`) as a file: a Blob download with the name the host gave.
 * It is a download, never a navigation: the page stays, and nothing is fetched (the Blob lives
 * in the page's memory). Electron saves only Blob downloads (electron/policy.ts isAllowedDownload).
 */
import type { ChatExport } from '../contract.ts';

/**
 * The name the file is saved under: the host's `fileName` is already a bare, safe name
 * (engine/host/export.ts safeFileName); this only makes sure that nothing path-like or
 * invisible survives whatever a host sent, since the browser writes it to the user's disk.
 */
export function downloadName(fileName: string, fallback: string): string {
  const bare = (fileName.split(/[/\\]/).at(-1) ?? '')
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must go.
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069:*?"<>|]/g, '_')
    .replace(/^[.\s]+/, '')
    .trim();
  return bare === '' ? fallback : bare;
}

/** What `saveExport` needs from the page; tests pass a fake. */
export interface DownloadTarget {
  createObjectURL(blob: Blob): string;
  revokeObjectURL(url: string): void;
  /** Clicks a temporary `<a download>` for the URL. */
  click(url: string, fileName: string): void;
}

/** The real page: a temporary `<a download>` (not attached to the document) clicked once. */
export function pageDownloadTarget(): DownloadTarget {
  return {
    createObjectURL: (blob) => URL.createObjectURL(blob),
    revokeObjectURL: (url) => URL.revokeObjectURL(url),
    click(url, fileName) {
      const a = document.createElement('a');
      a.href = url;
      a.download = fileName;
      a.rel = 'noopener';
      a.click();
    },
  };
}

/** Starts the download of an export; returns the name it is saved under. */
export function saveExport(exported: ChatExport, target: DownloadTarget = pageDownloadTarget()): string {
  const extension = exported.mimeType === 'application/json' ? 'json' : 'md';
  const name = downloadName(exported.fileName, `chat.${extension}`);
  const url = target.createObjectURL(new Blob([exported.content], { type: `${exported.mimeType};charset=utf-8` }));
  target.click(url, name);
  // The download has its own reference to the Blob once started; free ours after that.
  setTimeout(() => target.revokeObjectURL(url), 10_000);
  return name;
}
