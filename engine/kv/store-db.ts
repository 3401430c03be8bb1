/**
 * The KV store's index, `<root>/index.db` (node:sqlite, WAL). It is separate from hearth.db: the
 * engine process owns it (the host owns hearth.db), and losing it costs re-reads, never chats.
 *
 * Durability: WAL with synchronous=NORMAL. A commit lost to power loss only loses cache entries;
 * chunk files are fsynced before the commit that references them, so the index never points to a
 * chunk file that was not durable, and files whose commit was lost are swept as orphans (at open,
 * and by `gc()`). Tail files are written before their commit too, but not fsynced (tail-file.ts
 * says why): one a power cut tore is caught by its size and checksum when read, and dropped. A
 * lost commit that dropped chunks whose files were then removed leaves manifests listing missing
 * files: the check at open (store-open.ts `sweepAtOpen`) cuts them there. An index.db SQLite
 * cannot read at all is moved aside at open and the store starts empty (store-open.ts).
 *
 * Schema (the migrations below build it; this is where it ends up):
 * - `chunks`: one row per chunk file (key, parent, tokens, bytes, raw_bytes, refcount, last_used,
 *   created_at, corrupt).
 * - `manifests`: one row per chat branch (id, fingerprint, chunk_tokens, chunk_count, head,
 *   tail_tokens, tail_bytes, total_tokens, last_used, created_at). tail_bytes is the length of the
 *   branch's tail payload, NULL when it keeps only the tail's tokens. The row stays small: it is
 *   rewritten on every restore (last_used) and read by every lookup.
 * - `tails`: one row per manifest whose tail_bytes is not NULL (manifest_id, crc, raw_bytes, file,
 *   payload), deleted with its manifest (foreign key). The payload, of exactly tail_bytes bytes,
 *   is the file `<root>/tails/<file>` (tail-file.ts); rows written before schema 4 hold it in
 *   payload instead, until their manifest's next save. Exactly one of file and payload is set.
 *   A tail file is removed after the commit that drops or replaces its row.
 * - `manifest_chunks`: each manifest's chunk keys in order (manifest_id, idx, key).
 * - `model_hashes`: model content hashes by (path, size, mtime).
 * - `fingerprint_models`: the model content hash each fingerprint was computed from
 *   (fingerprint, model_hash, recorded_at), so a model's stored KV can be found and forgotten.
 */
import type { DatabaseSync } from 'node:sqlite';
import { openSqlite } from '../sqlite.ts';

export { transaction } from '../sqlite.ts';

/** Each entry moves the schema from `user_version = index` to `index + 1`. Append only. */
export const migrations: readonly string[] = [
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
  -- (The third migration moves the payload itself to its own table, tails.)
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
  `
  -- Tail payloads move out of the manifest row into their own table. A tail payload can be tens
  -- of MB (a large model's partial chunk). SQLite rebuilds a whole record, overflow pages and
  -- all, when any of its columns changes, and walks the overflow chain to read any column stored
  -- after it: with the payload in the row, every touch (last_used, each restore) went through the
  -- whole payload, and so did lookups. A manifest row now only says how long its payload is
  -- (tail_bytes, NULL when it keeps none); tails holds the payload, written when the tail changes
  -- and read only by readTail and a verifying integrity check. Upgrading copies each payload once
  -- (seconds per GB of tails, at the first open).
  --
  -- payload is the last column so that reading crc and raw_bytes never walks its overflow
  -- pages. The foreign key (the KV index enforces them) deletes a tail with its manifest, so no
  -- tails row outlives the manifest it belongs to.
  CREATE TABLE tails (
    manifest_id TEXT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    crc INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    payload BLOB NOT NULL
  );
  -- Copy first, while the payloads are still in the manifests. A payload without a checksum is
  -- not copied: it could only be read as damaged (it is dropped, as readTail would drop it).
  INSERT INTO tails (manifest_id, crc, raw_bytes, payload)
    SELECT id, tail_crc, coalesce(tail_raw_bytes, length(tail_payload)), tail_payload FROM manifests
    WHERE tail_payload IS NOT NULL AND tail_crc IS NOT NULL;
  -- DROP COLUMN rewrites every row of the table: the payload goes first, so that the later
  -- rewrites (and the UPDATE below) copy small rows only. No index, trigger or view names these
  -- columns (DROP COLUMN would refuse them). The pages the payloads held go to the free list
  -- and are reused by later writes.
  ALTER TABLE manifests DROP COLUMN tail_payload;
  ALTER TABLE manifests DROP COLUMN tail_crc;
  ALTER TABLE manifests DROP COLUMN tail_raw_bytes;
  ALTER TABLE manifests ADD COLUMN tail_bytes INTEGER;
  UPDATE manifests SET tail_bytes = (SELECT length(payload) FROM tails WHERE tails.manifest_id = manifests.id);
  `,
  `
  -- Tail payloads move out of index.db into files, <root>/tails/<file> (tail-file.ts). A save
  -- rewrote a tail of up to tens of MB as thousands of overflow pages, each a WAL frame that a
  -- checkpoint then copied again, and a restore read it back page by page into fresh memory:
  -- measured, ~150-190 ms to save a 20 MB tail against ~11 ms as a file, and ~18-25 ms to read
  -- an 8 MB one against ~2-3 ms into a warm buffer (tail-file.ts). A row now names its file
  -- (unique per write, so a committed row's file is never rewritten); payload is kept for rows
  -- written before, which keep working until their manifest's next save replaces them with a
  -- file. The CHECK says a row has exactly one of the two; file is UNIQUE, so removing one row's
  -- file can never take another's, and the sweep finds a file's row by its index.
  --
  -- SQLite cannot drop payload's NOT NULL in place, so the table is rebuilt: payload rows are
  -- copied once (as the previous migration copied them), then the old table goes. No other
  -- table references tails, so its foreign key to manifests is all there is to keep.
  CREATE TABLE tails_v4 (
    manifest_id TEXT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    crc INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    file TEXT UNIQUE,
    payload BLOB,
    CHECK ((file IS NULL) != (payload IS NULL))
  );
  -- A row whose manifest is gone (an index edited without foreign keys) would fail the foreign
  -- key, and with it the upgrade: it is damage, and is left behind.
  INSERT INTO tails_v4 (manifest_id, crc, raw_bytes, file, payload)
    SELECT manifest_id, crc, raw_bytes, NULL, payload FROM tails WHERE manifest_id IN (SELECT id FROM manifests);
  DROP TABLE tails;
  ALTER TABLE tails_v4 RENAME TO tails;
  `,
  `
  -- Which model each fingerprint belongs to. A fingerprint is a digest (fingerprint.ts) and cannot
  -- be reversed to its model file, yet deleting a model offers to delete the KV computed with it.
  -- The engine records a row whenever it computes a loaded model's fingerprint (kv-cache.ts
  -- prepare): one row per model and cache settings, never per save. A row stays after its model's
  -- KV is forgotten: KV saved under it later is still attributed.
  --
  -- Manifests saved before this table existed have no row: no model's usage counts them and no
  -- model's forget deletes them, until a load of their model with the same settings computes
  -- their fingerprint again (then they are attributed like any other), or LRU eviction removes them.
  --
  -- No index on manifests(fingerprint): looking a model's manifests up is a user's action (a model
  -- deleted in the library) that scans a few thousand small rows at most, while an index would
  -- be one more structure for every save to keep up.
  CREATE TABLE fingerprint_models (
    fingerprint TEXT PRIMARY KEY,
    model_hash TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX fingerprint_models_by_model ON fingerprint_models(model_hash);
  `,
];

/** Opens (creating if needed) the index and brings its schema up to date. Throws on an unusable file. */
export function openIndex(file: string): DatabaseSync {
  return openSqlite(file, { migrations, what: 'The KV index' });
}
