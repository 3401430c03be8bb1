/**
 * Secrets the host keeps (the API server's key, the Hugging Face token). The desktop app passes a store backed by
 * Electron's `safeStorage` (the OS keychain encrypts the file); the browser host keeps each
 * secret in a file only its user can read (0600), as ssh keys are kept.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface SecretStore {
  /** The stored value, or null when there is none (or it cannot be read). */
  read(name: string): string | null;
  /** Stores the value, replacing any; throws when it cannot be written. */
  write(name: string, value: string): void;
  /** Forgets the value (nothing happens when there is none); throws when it cannot be removed. */
  remove(name: string): void;
}

/** Deletes a secret's file; one that is already gone is fine. */
export function removeSecretFile(file: string): void {
  rmSync(file, { force: true });
}

const secretName = /^[a-z0-9-]{1,64}$/;

/** One file per secret under `dir` (created 0700), each written 0600 and renamed into place. */
export function fileSecretStore(dir: string): SecretStore {
  const fileOf = (name: string): string => {
    if (!secretName.test(name)) throw new Error(`not a secret name: ${name}`);
    return path.join(dir, name);
  };
  return {
    read(name) {
      try {
        const value = readFileSync(fileOf(name), 'utf8').trim();
        return value === '' ? null : value;
      } catch {
        return null;
      }
    },
    write(name, value) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = fileOf(name);
      const temp = `${file}.tmp`;
      writeFileSync(temp, `${value}\n`, { mode: 0o600 });
      // An existing temp file (a crash mid-write) keeps its old mode: set it explicitly.
      chmodSync(temp, 0o600);
      renameSync(temp, file);
    },
    remove(name) {
      removeSecretFile(fileOf(name));
    },
  };
}
