/**
 * The download queue's rows in hearth.db (the `downloads` table, db.ts): what a restart needs to
 * resume a download from its `.part` files. Rows are read back through a schema, so a damaged
 * row is skipped (and reported) instead of breaking the queue.
 */
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { z } from 'zod';
import { errorCodes, type DownloadStatus, type HearthError } from '../../contract/index.ts';

/** One file of a download (a split model has several, in order). */
export interface PartRecord {
  /** For a Hub download the file's path in the repository; otherwise the full address. */
  readonly remote: string;
  /** The final file's absolute path; its bytes gather in `partPath(file)` until verified. */
  readonly file: string;
  /** Bytes; null until a response says. */
  size: number | null;
  /** The expected SHA-256 (lowercase hex), from the Hub's LFS entry; null for plain addresses. */
  readonly sha256: string | null;
  /** The server's strong ETag (or Last-Modified) for the bytes on disk, sent as `If-Range` on resume. */
  validator: string | null;
  /** Complete, checked and synced: it only waits for the other parts before its rename. */
  verified: boolean;
}

/** A download as the queue keeps it; `parts`, `status` and the counters change as it runs. */
export interface DownloadRow {
  readonly id: string;
  readonly uri: string;
  /** `owner/name` for a Hub download, with the commit its files are fetched from. */
  readonly repo: string | null;
  readonly revision: string | null;
  readonly name: string;
  readonly parts: PartRecord[];
  status: DownloadStatus;
  downloadedBytes: number;
  totalBytes: number;
  error: HearthError | null;
  readonly createdAt: number;
}

const statuses = ['queued', 'downloading', 'verifying', 'paused', 'done', 'error', 'cancelled'] as const;

const partSchema = z.object({
  remote: z.string().min(1),
  // The queue writes `<file>.part` and renames it to `file`: never anything but a model file.
  file: z.string().refine((file) => path.isAbsolute(file) && /\.gguf$/i.test(file), 'not an absolute .gguf path'),
  size: z.number().int().min(0).nullable(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  validator: z.string().max(1000).nullable(),
  verified: z.boolean(),
});

const errorSchema = z.object({ code: z.enum(errorCodes), message: z.string(), hint: z.string().optional() });

const rowSchema = z.object({
  id: z.string().min(1),
  uri: z.string(),
  repo: z.string().nullable(),
  revision: z.string().nullable(),
  name: z.string(),
  parts: z.string().transform((text, ctx) => {
    try {
      return z.array(partSchema).min(1).parse(JSON.parse(text));
    } catch {
      ctx.addIssue({ code: 'custom', message: 'parts is not a list of parts' });
      return z.NEVER;
    }
  }),
  status: z.enum(statuses),
  downloaded_bytes: z.number().int().min(0),
  total_bytes: z.number().int().min(0),
  error: z
    .string()
    .nullable()
    .transform((text) => {
      if (text === null) return null;
      try {
        const parsed = errorSchema.safeParse(JSON.parse(text));
        return parsed.success ? parsed.data : null;
      } catch {
        return null;
      }
    }),
  created_at: z.number().int(),
});

/** Reads and writes the queue's rows; every write is one statement (one implicit transaction). */
export class DownloadStore {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Every row, oldest first; damaged rows are deleted and reported through `onDamaged`. */
  all(onDamaged: (id: string, why: string) => void): DownloadRow[] {
    const raw = this.#db.prepare('SELECT * FROM downloads ORDER BY created_at, rowid').all() as Record<string, unknown>[];
    const rows: DownloadRow[] = [];
    for (const entry of raw) {
      const parsed = rowSchema.safeParse(entry);
      if (!parsed.success) {
        const id = typeof entry['id'] === 'string' ? entry['id'] : '?';
        onDamaged(id, parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
        this.#db.prepare('DELETE FROM downloads WHERE id = ?').run(id);
        continue;
      }
      const row = parsed.data;
      rows.push({
        id: row.id,
        uri: row.uri,
        repo: row.repo,
        revision: row.revision,
        name: row.name,
        parts: row.parts.map((part) => ({ ...part })),
        status: row.status,
        downloadedBytes: row.downloaded_bytes,
        totalBytes: row.total_bytes,
        error: row.error,
        createdAt: row.created_at,
      });
    }
    return rows;
  }

  /** Inserts or replaces the row. */
  save(row: DownloadRow): void {
    this.#db
      .prepare(
        `INSERT INTO downloads (id, uri, repo, revision, name, parts, status, downloaded_bytes, total_bytes, error, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET parts = excluded.parts, status = excluded.status, downloaded_bytes = excluded.downloaded_bytes,
           total_bytes = excluded.total_bytes, error = excluded.error, updated_at = excluded.updated_at`,
      )
      .run(
        row.id,
        row.uri,
        row.repo,
        row.revision,
        row.name,
        JSON.stringify(row.parts),
        row.status,
        row.downloadedBytes,
        row.totalBytes,
        row.error === null ? null : JSON.stringify(row.error),
        row.createdAt,
        Date.now(),
      );
  }

  delete(id: string): void {
    this.#db.prepare('DELETE FROM downloads WHERE id = ?').run(id);
  }
}
