/**
 * The SQLite mechanics shared by the host's `hearth.db` (engine/host/db.ts) and the engine
 * process's KV index (engine/kv/store-db.ts): opening in WAL mode, ordered migrations kept in
 * `PRAGMA user_version`, and IMMEDIATE transactions. Each file keeps its own schema.
 */
import { DatabaseSync } from 'node:sqlite';

export interface OpenOptions {
  /** Each entry moves the schema from `user_version = index` to `index + 1`. Append only. */
  readonly migrations: readonly string[];
  /** Names the file in errors, e.g. "The database" or "The KV index". */
  readonly what: string;
}

/**
 * Opens (creating if needed) a database in WAL mode with `synchronous=NORMAL` and foreign keys
 * enforced, and brings its schema up to date. Throws on an unusable file; callers turn that into
 * a clear error.
 */
export function openSqlite(file: string, options: OpenOptions): DatabaseSync {
  const db = new DatabaseSync(file, { enableForeignKeyConstraints: true, timeout: 5000 });
  try {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    migrate(db, options.migrations, options.what);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

export function userVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as { user_version: number } | undefined;
  return row?.user_version ?? 0;
}

/** Applies the migrations the file has not seen yet, each in its own transaction. */
export function migrate(db: DatabaseSync, list: readonly string[], what = 'The database'): void {
  const current = userVersion(db);
  if (current > list.length) {
    throw new Error(`${what} was written by a newer Hearth (schema ${current}; this build knows ${list.length}).`);
  }
  for (let version = current; version < list.length; version++) {
    transaction(db, () => {
      db.exec(list[version] as string);
      // PRAGMA does not take bound parameters; `version` is a number we control.
      db.exec(`PRAGMA user_version = ${version + 1}`);
    });
  }
}

/** Runs `fn` in one IMMEDIATE transaction (so a writer never upgrades a read lock and deadlocks). */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/** Like `transaction`, but the COMMIT is fsynced: it survives power loss, not only a killed process. */
export function durably<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('PRAGMA synchronous = FULL');
  try {
    return transaction(db, fn);
  } finally {
    db.exec('PRAGMA synchronous = NORMAL');
  }
}
