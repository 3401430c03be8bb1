/**
 * The SQLite file `<dataDir>/hearth.db`: opening it, its pragmas and its migrations.
 *
 * Durability: the database runs in WAL mode with `synchronous=NORMAL`, which survives a killed
 * process (a commit is in the WAL, in the OS page cache, before COMMIT returns) but may lose the
 * last commits on power loss or an OS crash. That is fine for the ~250 ms flushes of streaming
 * text, not for a user message, which must be durable before generation starts. So the
 * commits that must survive a power cut run through `durably()`, which switches the connection to
 * `synchronous=FULL` for that one commit: SQLite then fsyncs the WAL at COMMIT (and with it every
 * earlier frame). One fsync per sent message costs a few milliseconds; one per streamed flush
 * would block the host's event loop 4× a second for nothing.
 */
import type { DatabaseSync } from 'node:sqlite';
import { hearthError, type HearthError, errorText } from '../contract/index.ts';
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
  // The quality meter's cache (quality-results.ts): one row per model file and KV pair;
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
  // Per-model settings (model-profiles.ts): only the fields the user set, as JSON, keyed
  // by the model file's absolute path.
  `
  CREATE TABLE model_profiles (
    path TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // A chat's own overflow policy (types.ts OverflowPolicy); NULL follows the model's profile.
  `
  ALTER TABLE chats ADD COLUMN overflow_policy TEXT;
  `,
  // The download queue (downloads/store.ts): one row per download, kept until it is cleared, so
  // that a restart resumes from the `.part` files. `parts` is JSON (per part: its address, the
  // final path, size, SHA-256, the server's validator); `error` is a HearthError as JSON.
  `
  CREATE TABLE downloads (
    id TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    repo TEXT,
    revision TEXT,
    name TEXT NOT NULL,
    parts TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'downloading', 'verifying', 'paused', 'done', 'error', 'cancelled')),
    downloaded_bytes INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX downloads_by_created ON downloads(created_at);
  `,
  // Remote engines (remote/engines.ts): the address and kind the user gave, and what the last
  // check found (`models` JSON, so the picker lists them before the first check of a run). Their
  // API keys live in the SecretStore, never here. A chat names the engine and model its replies
  // run on; NULL runs on this computer. No foreign key: a removed engine's chats keep naming it,
  // so they can say so and ask to be moved.
  `
  CREATE TABLE remote_engines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    kind TEXT NOT NULL,
    models TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
  );
  ALTER TABLE chats ADD COLUMN engine_id TEXT;
  ALTER TABLE chats ADD COLUMN engine_model TEXT;
  `,
  // Speed measurements (speed-profiles.ts): one row per device (with its llama.cpp build), model
  // file and KV pair; the file's size and mtime and what was measured are checked on read.
  `
  CREATE TABLE speed_profiles (
    device TEXT NOT NULL,
    model_path TEXT NOT NULL,
    k_type TEXT NOT NULL,
    v_type TEXT NOT NULL,
    model_size INTEGER NOT NULL,
    model_mtime_ms INTEGER NOT NULL,
    space TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (device, model_path, k_type, v_type)
  );
  `,
];

/** The schema version this build writes. */
export const schemaVersion = migrations.length;

/**
 * Opens (creating if needed) the database and brings its schema up to date. Throws on an
 * unusable file; the caller turns that into a clear startup error (`databaseStartError`).
 *
 * A file that is not a database is never written: SQLite refuses it at the first read, before
 * any write. A write lock another process holds is waited for up to the connection's busy
 * timeout (5 s, sqlite.ts), here at open rather than at the first write after it, so that a
 * database locked for longer is a start error that says so instead of a failure later on.
 */
export function openDatabase(file: string): DatabaseSync {
  const db = openSqlite(file, { migrations, what: 'The database' });
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** SQLite's primary result code of a node:sqlite error (`errcode`'s low byte), or null. */
function sqliteCode(error: unknown): number | null {
  if (typeof error !== 'object' || error === null || !('errcode' in error)) return null;
  const code = (error as { errcode: unknown }).errcode;
  return typeof code === 'number' ? code & 0xff : null;
}

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_NOTADB = 26;

/** True for SQLITE_BUSY and SQLITE_LOCKED: another connection holds the lock (past the busy timeout, if any). */
export function isDatabaseLocked(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === SQLITE_BUSY || code === SQLITE_LOCKED;
}

/**
 * Runs `fn` with the connection's busy timeout at 0, so that a statement another process's lock
 * would block fails at once (SQLITE_BUSY) instead of stalling the host's thread; the timeout is
 * restored after.
 */
export function withoutWaiting<T>(db: DatabaseSync, fn: () => T): T {
  const row = db.prepare('PRAGMA busy_timeout').get() as { timeout?: number } | undefined;
  const before = typeof row?.timeout === 'number' ? row.timeout : 0;
  db.exec('PRAGMA busy_timeout = 0');
  try {
    return fn();
  } finally {
    // A number read back from SQLite itself, not input.
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(before))}`);
  }
}

/**
 * What the user reads when `openDatabase(file)` threw: a message naming the file and the cause,
 * and a hint that says what to do (a damaged file is never touched: the hint says how to set it
 * aside; a locked one names the usual culprits).
 */
export function databaseStartError(file: string, error: unknown): { readonly message: string; readonly hint: string } {
  const code = sqliteCode(error);
  if (code === SQLITE_NOTADB || code === SQLITE_CORRUPT) {
    return {
      message: `Hearth's database ${file} is damaged (${errorText(error)}). Hearth has not changed it.`,
      hint: `Restore ${file} from a backup, or move it aside (for example rename it to hearth.db.damaged, with its -wal file if there is one) and start Hearth again with an empty chat list; the sqlite3 tool's ".recover" command can often save the chats from the damaged copy.`,
    };
  }
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) {
    return {
      message: `Hearth's database ${file} is locked by another process (${errorText(error)}).`,
      hint: 'Another Hearth, or a program that has hearth.db open (a database browser, a backup tool), is writing to it. Close that program and start Hearth again.',
    };
  }
  if (code === SQLITE_FULL) {
    return { message: `Hearth cannot write its database ${file}: the disk is full.`, hint: 'Free some disk space and start Hearth again.' };
  }
  if (/newer Hearth/.test(errorText(error))) {
    return { message: `Hearth cannot open its database ${file}: ${errorText(error)}`, hint: 'Update Hearth, or start this version with another data directory (--data-dir).' };
  }
  return { message: `Hearth cannot open its database ${file} (${errorText(error)}).`, hint: 'Check that the data directory is writable and not full.' };
}

/**
 * A database failure during a call as the error the caller gets, or null for any other throw
 * (a bug: the caller reports it as INTERNAL). Nothing was written: the statement's transaction
 * rolled back, so a message whose send failed was never acknowledged.
 */
export function databaseCallError(error: unknown): HearthError | null {
  const code = sqliteCode(error);
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) {
    return hearthError(
      'BUSY',
      `Hearth's database is locked by another process (${errorText(error)}); nothing was saved.`,
      'Another Hearth, or a program that has hearth.db open (a database browser, a backup tool), is writing to it. Close it and try again.',
    );
  }
  if (code === SQLITE_FULL) return hearthError('DISK_FULL', `Hearth's database cannot grow: the disk is full (${errorText(error)}); nothing was saved.`, 'Free some disk space and try again.');
  if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) {
    return hearthError('INTERNAL', `Hearth's database is damaged (${errorText(error)}).`, 'Quit Hearth and restore hearth.db from a backup; the sqlite3 tool\'s ".recover" command can often save the chats.');
  }
  return null;
}
