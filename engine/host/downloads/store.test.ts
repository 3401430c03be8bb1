/** The queue's rows in hearth.db: written and read back whole, a damaged row dropped and reported. */
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../db.ts';
import { tempDir } from '../../../test/support/host-fixture.ts';
import { DownloadStore, type DownloadRow } from './store.ts';

let dir = '';
let db: DatabaseSync;
beforeEach(() => {
  dir = tempDir();
  db = openDatabase(path.join(dir, 'hearth.db'));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const row = (id: string, createdAt: number): DownloadRow => ({
  id,
  uri: 'hf:acme/x-GGUF/x-Q4_0.gguf',
  repo: 'acme/x-GGUF',
  revision: 'a'.repeat(40),
  name: 'x-Q4_0',
  parts: [{ remote: 'x-Q4_0.gguf', file: path.join(dir, 'x-Q4_0.gguf'), size: 10, sha256: 'b'.repeat(64), validator: '"etag"', verified: false }],
  status: 'paused',
  downloadedBytes: 4,
  totalBytes: 10,
  error: { code: 'DISK_FULL', message: 'full', hint: 'Free some space, then Resume.' },
  createdAt,
});

describe('DownloadStore', () => {
  it('saves and reads rows back, oldest first, and updates them in place', () => {
    const store = new DownloadStore(db);
    const later = row('later', 2000);
    store.save(later);
    store.save(row('earlier', 1000));
    later.status = 'error';
    later.parts[0]!.verified = true;
    store.save(later);
    const rows = store.all(() => undefined);
    expect(rows.map((each) => each.id)).toEqual(['earlier', 'later']);
    expect(rows[1]).toEqual(later);
    store.delete('earlier');
    expect(store.all(() => undefined).map((each) => each.id)).toEqual(['later']);
  });

  it('drops a damaged row and says which', () => {
    const store = new DownloadStore(db);
    store.save(row('good', 1000));
    store.save(row('bad', 2000));
    store.save({ ...row('elsewhere', 3000), parts: [{ ...row('x', 0).parts[0]!, file: '/etc/passwd' }] });
    db.prepare("UPDATE downloads SET parts = '[{\"remote\": 1}]' WHERE id = 'bad'").run();
    const damaged: string[] = [];
    expect(store.all((id) => damaged.push(id)).map((each) => each.id)).toEqual(['good']);
    expect(damaged).toEqual(['bad', 'elsewhere']);
    expect(store.all(() => undefined).map((each) => each.id)).toEqual(['good']);
  });
});
