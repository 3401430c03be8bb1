/**
 * The KV store's index, `<root>/index.db` (node:sqlite, WAL). It is separate from hearth.db: the
 * engine process owns it (the host owns hearth.db), and losing it costs re-reads, never chats.
 *
 * Durability: WAL with synchronous=NORMAL. A commit lost to power loss only loses cache entries;
 * chunk files are fsynced before the commit that references them, so the index never points to a
 * file that was not durable, and files whose commit was lost are swept as orphans (at open, and by
 * `gc()`). A lost commit that dropped chunks whose files were then removed leaves manifests listing
 * missing files: the check at open (store-open.ts `sweepAtOpen`) cuts them there. An index.db SQLite
 * cannot read at all is moved aside at open and the store starts empty (store-open.ts).
 */
import type { DatabaseSync } from 'node:sqlite';
import { openSqlite } from '../sqlite.ts';

export { transaction } from '../sqlite.ts';

/** Each entry moves the schema from `user_version = index` to `index + 1`. Append only. */
const migrations: readonly string[] = [
  `
  -- One row per chunk file. refcount = the number of manifests listing the key (kept exact in
  -- the same transactions that change manifest_chunks). corrupt = the fault found when it was
  -- read, until the chunk is rewritten or collected.
  CREATE TABLE chunks (
    key TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    refcount INTEGER NOT NULL DEFAULT 0,
    last_used INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    corrupt TEXT
  ) WITHOUT ROWID;
  CREATE INDEX chunks_by_refcount ON chunks(refcount);

  -- One row per chat branch. head = the key of its last chunk, or the fingerprint when it has
  -- none: the chain value its tail continues, indexed so a prefix lookup finds tails without
  -- scanning manifests. The tail (tokens after the last full chunk, and optionally their partial
  -- KV payload) lives in the row: it is rewritten every turn and belongs to this branch only.
  CREATE TABLE manifests (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    head TEXT NOT NULL,
    tail_tokens BLOB NOT NULL,
    tail_payload BLOB,
    tail_crc INTEGER,
    total_tokens INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX manifests_by_head ON manifests(head);
  CREATE INDEX manifests_by_last_used ON manifests(last_used);

  CREATE TABLE manifest_chunks (
    manifest_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (manifest_id, idx)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_chunks_by_key ON manifest_chunks(key);

  -- Model content hashes, so a multi-GB model file is hashed once per (path, size, mtime).
  CREATE TABLE model_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ms REAL NOT NULL,
    hash TEXT NOT NULL,
    computed_at INTEGER NOT NULL
  );
  `,
  `
  -- Stored payloads may be compressed (frame.ts), so a chunk file's size no longer says
  -- how much KV it holds. raw_bytes = the decoded payload's size, recorded at write; rows written
  -- before were raw payloads: their file size less the header and the tokens.
  ALTER TABLE chunks ADD COLUMN raw_bytes INTEGER;
  UPDATE chunks SET raw_bytes = bytes - 96 - 4 * tokens;
  -- The same for the tail payload (meaningful only while tail_payload is not NULL).
  ALTER TABLE manifests ADD COLUMN tail_raw_bytes INTEGER;
  UPDATE manifests SET tail_raw_bytes = length(tail_payload);
  `,
];

/** Opens (creating if needed) the index and brings its schema up to date. Throws on an unusable file. */
export function openIndex(file: string): DatabaseSync {
  return openSqlite(file, { migrations, what: 'The KV index' });
}
