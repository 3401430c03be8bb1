/** Free space for a folder that exists, one that does not yet, and one under a file. */
import { writeFileSync, rmSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/host-fixture.ts';
import { freeBytes } from './disk.ts';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('freeBytes', () => {
  it('measures a folder, and a folder not made yet (or under a file) at its nearest existing parent', async () => {
    dir = tempDir();
    const info = await statfs(dir);
    const free = await freeBytes(dir);
    expect(free).toBeGreaterThan(0);
    // Same disk: within what other processes wrote meanwhile.
    expect(Math.abs((free ?? 0) - info.bavail * info.bsize)).toBeLessThan(1024 ** 3);
    const missing = await freeBytes(path.join(dir, 'not', 'yet', 'made'));
    expect(Math.abs((missing ?? 0) - (free ?? 0))).toBeLessThan(1024 ** 3);
    writeFileSync(path.join(dir, 'file'), 'x');
    expect(await freeBytes(path.join(dir, 'file', 'below'))).toBeGreaterThan(0);
  });
});
