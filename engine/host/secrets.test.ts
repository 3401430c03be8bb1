import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fileSecretStore } from './secrets.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function root(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'hearth-secrets-'));
  dirs.push(d);
  return d;
}

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('fileSecretStore', () => {
  it('writes each secret 0600 in a 0700 directory it creates, and reads it back', () => {
    const dir = path.join(root(), 'nested', 'secrets');
    const store = fileSecretStore(dir);
    expect(store.read('api-key')).toBeNull();
    expect(existsSync(dir)).toBe(false);
    store.write('api-key', 'hearth-abc');
    expect(mode(dir)).toBe(0o700);
    const file = path.join(dir, 'api-key');
    expect(mode(file)).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe('hearth-abc\n');
    expect(store.read('api-key')).toBe('hearth-abc');
    // A second store on the same directory (a restart) reads the same value.
    expect(fileSecretStore(dir).read('api-key')).toBe('hearth-abc');
    // Nothing else is left in the directory (no temp file).
    expect(readdirSync(dir)).toEqual(['api-key']);
  });

  it('replaces a value, keeping 0600 even over a leftover temp file or a widened file', () => {
    const dir = root();
    const store = fileSecretStore(dir);
    store.write('api-key', 'first');
    // A crash mid-write left a world-readable temp file behind; someone widened the secret too.
    writeFileSync(path.join(dir, 'api-key.tmp'), 'stale', { mode: 0o644 });
    chmodSync(path.join(dir, 'api-key.tmp'), 0o644);
    chmodSync(path.join(dir, 'api-key'), 0o644);
    store.write('api-key', 'second');
    expect(store.read('api-key')).toBe('second');
    expect(mode(path.join(dir, 'api-key'))).toBe(0o600);
    expect(existsSync(path.join(dir, 'api-key.tmp'))).toBe(false);
  });

  it('keeps secrets apart by name', () => {
    const store = fileSecretStore(root());
    store.write('a', 'one');
    store.write('b-2', 'two');
    expect(store.read('a')).toBe('one');
    expect(store.read('b-2')).toBe('two');
  });

  it('forgets a secret, leaving the others, and forgetting an absent one is no error', () => {
    const store = fileSecretStore(root());
    store.write('a', 'one');
    store.write('b', 'two');
    store.remove('a');
    store.remove('never-written');
    expect(store.read('a')).toBeNull();
    expect(store.read('b')).toBe('two');
    expect(() => store.remove('../b')).toThrow(/not a secret name/);
  });

  it('reads an empty or whitespace-only file as no secret, and trims what it reads', () => {
    const dir = root();
    const store = fileSecretStore(dir);
    writeFileSync(path.join(dir, 'empty'), '  \n');
    expect(store.read('empty')).toBeNull();
    writeFileSync(path.join(dir, 'padded'), '  value \r\n');
    expect(store.read('padded')).toBe('value');
  });

  it.each(['', '../escape', 'a/b', 'UPPER', 'dot.name', 'x'.repeat(65), 'with space', '.', '..', 'api-key\n', 'nul\0'])('refuses the name %j', (name) => {
    const dir = root();
    const store = fileSecretStore(path.join(dir, 'secrets'));
    expect(() => store.write(name, 'value')).toThrow(/not a secret name/);
    // Reading a bad name is "no secret", never a file outside the directory.
    writeFileSync(path.join(dir, 'escape'), 'outside');
    expect(store.read(name)).toBeNull();
    expect(readdirSync(path.join(dir, 'secrets'))).toEqual([]);
  });

  it('reads nothing when the file cannot be read, and throws when it cannot write', () => {
    const dir = root();
    const store = fileSecretStore(dir);
    store.write('api-key', 'kept');
    chmodSync(path.join(dir, 'api-key'), 0o000);
    // Root reads through permissions: only check the refusal where it applies.
    if (process.getuid?.() !== 0) expect(store.read('api-key')).toBeNull();
    chmodSync(path.join(dir, 'api-key'), 0o600);
    // A file where the directory should be: writing fails loudly.
    const blocked = path.join(root(), 'file');
    writeFileSync(blocked, 'not a directory');
    expect(() => fileSecretStore(blocked).write('api-key', 'x')).toThrow();
    expect(fileSecretStore(blocked).read('api-key')).toBeNull();
  });
});
