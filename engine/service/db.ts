/**
 * The SQLite file `<dataDir>/hearth.db`: opening it, its pragmas and its migrations.
 *
 * Durability: the database runs in WAL mode with `synchronous=NORMAL`, which survives a killed
 * process (a commit is in the WAL, in the OS page cache, before COMMIT returns) but may lose the
 * last commits on power loss or an OS crash. That is fine for the ~250 ms flushes of streaming
 * text, not for a user message, which must be durable before generation starts (issue 2). So the
 * commits that must survive a power cut run through `durably()`, which switches the connection to
 * `synchronous=FULL` for that one commit: SQLite then fsyncs the WAL at COMMIT (and with it every
 * earlier frame). One fsync per sent message costs a few milliseconds; one per streamed flush
 * would block the host's event loop 4× a second for nothing.
 */
import type { DatabaseSync } from 'node:sqlite';
import { openSqlite } from '../sqlite.ts';

export { durably, migrate, transaction, userVersion } from '../sqlite.ts';

/** Each entry moves the schema from `user_version = index` to `index + 1`. Append only. */
const migrations: readonly string[] = [
  `
  CREATE TABLE chats (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    -- 1 while the title is the placeholder: the first user message then names the chat
    title_pending INTEGER NOT NULL DEFAULT 1,
    system_prompt TEXT NOT NULL,
    sampling TEXT NOT NULL,
    active_leaf_id TEXT REFERENCES messages(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'incomplete', 'error')),
    error TEXT,
    stats TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX messages_by_chat ON messages(chat_id, created_at);
  CREATE INDEX messages_by_parent ON messages(parent_id);
  CREATE INDEX messages_by_status ON messages(status);
  CREATE INDEX chats_by_updated ON chats(updated_at);
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // The quality meter's cache (issue 4, quality-cache.ts): one row per model file and KV pair;
  // the file's size and mtime and the calibration text's hash are checked on read.
  `
  CREATE TABLE kv_quality (
    model_path TEXT NOT NULL,
    k_type TEXT NOT NULL,
    v_type TEXT NOT NULL,
    flash_attention INTEGER NOT NULL,
    model_size INTEGER NOT NULL,
    model_mtime_ms INTEGER NOT NULL,
    calibration TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (model_path, k_type, v_type, flash_attention)
  );
  `,
  // Per-model settings (issue 4, model-profiles.ts): only the fields the user set, as JSON, keyed
  // by the model file's absolute path.
  `
  CREATE TABLE model_profiles (
    path TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
];

/** The schema version this build writes. */
export const schemaVersion = migrations.length;

/**
 * Opens (creating if needed) the database and brings its schema up to date. Throws on an
 * unusable file; the caller turns that into a clear startup error.
 */
export function openDatabase(file: string): DatabaseSync {
  return openSqlite(file, { migrations, what: 'The database' });
}
