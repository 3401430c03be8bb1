import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { safeStorageSecrets, type SafeStorageLike } from './secrets.ts';

/** Reversible "encryption" that leaves no plain text behind: enough to see what is written. */
const fakeSafeStorage = (available: boolean): SafeStorageLike => ({
  isEncryptionAvailable: () => available,
  encryptString: (plain) => Buffer.from([...Buffer.from(plain)].map((b) => b ^ 0x5a)),
  decryptString: (data) => Buffer.from([...data].map((b) => b ^ 0x5a)).toString(),
});

describe('the desktop secret store', () => {
  it('encrypts with safeStorage, keeps the file 0600, and reads the value back', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'hearth-secrets-')), 'secrets');
    const store = safeStorageSecrets(dir, fakeSafeStorage(true), () => undefined);
    expect(store.read('api-key')).toBeNull();
    store.write('api-key', 'hearth-secret-value');
    const raw = readFileSync(join(dir, 'api-key'), 'utf8');
    expect(raw).not.toContain('hearth-secret-value');
    expect(statSync(join(dir, 'api-key')).mode & 0o777).toBe(0o600);
    expect(store.read('api-key')).toBe('hearth-secret-value');
    store.remove('api-key');
    expect(store.read('api-key')).toBeNull();
  });

  it('without OS encryption keeps a 0600 plain file and says so once', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'hearth-secrets-')), 'secrets');
    const warnings: string[] = [];
    const store = safeStorageSecrets(dir, fakeSafeStorage(false), (m) => warnings.push(m));
    store.write('api-key', 'one');
    store.write('api-key', 'two');
    expect(store.read('api-key')).toBe('two');
    expect(statSync(join(dir, 'api-key')).mode & 0o777).toBe(0o600);
    expect(warnings).toHaveLength(1);
  });

  it('refuses a name that could leave its folder', () => {
    const store = safeStorageSecrets(mkdtempSync(join(tmpdir(), 'hearth-secrets-')), fakeSafeStorage(true), () => undefined);
    expect(() => store.write('../escape', 'x')).toThrow(/not a secret name/);
  });
});
