import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { databaseCallError, databaseStartError, openDatabase } from './db.ts';
import { tempDir } from '../../test/support/host-fixture.ts';

let dir = '';
let file = '';
beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, 'hearth.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

/** A child process that holds hearth.db's write lock for `ms`, then commits and exits; resolves once it holds it. */
async function holdWriteLock(dbFile: string, ms: number): Promise<{ exited: Promise<void> }> {
  const script = `
    const { DatabaseSync } = require('node:sqlite');
    const db = new DatabaseSync(${JSON.stringify(dbFile)});
    db.exec('BEGIN EXCLUSIVE');
    console.log('locked');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, ${ms});
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
  });
  return { exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) };
}

describe('opening hearth.db', () => {
  it('refuses a damaged file without writing to it, and says how to set it aside', () => {
    writeFileSync(file, Buffer.from('not a database, just bytes '.repeat(300)));
    const before = sha256(file);
    let thrown: unknown;
    try {
      openDatabase(file);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeDefined();
    expect(sha256(file)).toBe(before);
    const { message, hint } = databaseStartError(file, thrown);
    expect(message).toContain(file);
    expect(message).toMatch(/is damaged .*Hearth has not changed it/);
    expect(hint).toMatch(/move it aside/);
    expect(hint).toContain('.recover');
  });

  it('waits for a write lock another process holds for a moment, then opens', async () => {
    openDatabase(file).close();
    const { exited } = await holdWriteLock(file, 400);
    const started = performance.now();
    const db = openDatabase(file);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    db.close();
    await exited;
  });

  it('names each database failure with what to do', () => {
    const sqliteError = (errcode: number): Error => Object.assign(new Error('database is locked'), { errcode, code: 'ERR_SQLITE_ERROR' });
    expect(databaseStartError(file, sqliteError(5))).toMatchObject({ message: expect.stringContaining('locked by another process'), hint: expect.stringContaining('Close that program') });
    expect(databaseStartError(file, sqliteError(261))).toMatchObject({ message: expect.stringContaining('locked') }); // SQLITE_BUSY_RECOVERY
    expect(databaseStartError(file, sqliteError(13)).message).toContain('disk is full');
    expect(databaseStartError(file, new Error('The database was written by a newer Hearth (schema 9; this build knows 3).')).hint).toMatch(/Update Hearth/);
    expect(databaseStartError(file, new Error('EACCES')).hint).toMatch(/writable/);

    expect(databaseCallError(sqliteError(5))).toMatchObject({ code: 'BUSY', message: expect.stringContaining('nothing was saved'), hint: expect.stringContaining('try again') });
    expect(databaseCallError(sqliteError(13))).toMatchObject({ code: 'DISK_FULL' });
    expect(databaseCallError(sqliteError(11))).toMatchObject({ code: 'INTERNAL', hint: expect.stringContaining('backup') });
    expect(databaseCallError(sqliteError(1))).toBeNull();
    expect(databaseCallError(new TypeError('a bug'))).toBeNull();
  });

  it('gives a real locked-write error the BUSY mapping', () => {
    const db = openDatabase(file);
    const other = new DatabaseSync(file, { timeout: 0 });
    try {
      db.exec('BEGIN IMMEDIATE');
      let thrown: unknown;
      try {
        other.exec('BEGIN IMMEDIATE');
      } catch (error) {
        thrown = error;
      }
      expect(databaseCallError(thrown)).toMatchObject({ code: 'BUSY' });
    } finally {
      db.exec('ROLLBACK');
      other.close();
      db.close();
    }
  });
});
