/**
 * The desktop app's secrets (the API server's key, the Hugging Face token): encrypted with Electron's `safeStorage`
 * (the macOS Keychain, Windows DPAPI, the Linux secret service) and kept in a 0600 file. Where the
 * OS offers no encryption (a Linux session without a keyring), the file is still 0600 but plain:
 * the same as the browser host's, and logged once so the user can tell.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeSecretFile, type SecretStore } from '../engine/index.ts';

/** The part of Electron's safeStorage used here (a seam for tests). */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  encryptString(plain: string): Buffer;
  decryptString(encrypted: Buffer): string;
}

const secretName = /^[a-z0-9-]{1,64}$/;
const encryptedTag = 'safeStorage:';
const plainTag = 'plain:';

export function safeStorageSecrets(dir: string, safeStorage: SafeStorageLike, warn: (message: string) => void): SecretStore {
  let warned = false;
  const fileOf = (name: string): string => {
    if (!secretName.test(name)) throw new Error(`not a secret name: ${name}`);
    return join(dir, name);
  };
  return {
    read(name) {
      let text: string;
      try {
        text = readFileSync(fileOf(name), 'utf8').trim();
      } catch {
        return null;
      }
      try {
        if (text.startsWith(encryptedTag)) return safeStorage.decryptString(Buffer.from(text.slice(encryptedTag.length), 'base64'));
        if (text.startsWith(plainTag)) return text.slice(plainTag.length) || null;
      } catch {
        // Encrypted by another user account or keyring: as good as absent, a new one is made.
      }
      return null;
    },
    write(name, value) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const encrypt = safeStorage.isEncryptionAvailable();
      if (!encrypt && !warned) {
        warned = true;
        warn('the OS offers no encryption for secrets (safeStorage); the API key is kept in a file only this user can read');
      }
      const text = encrypt ? `${encryptedTag}${safeStorage.encryptString(value).toString('base64')}` : `${plainTag}${value}`;
      const file = fileOf(name);
      writeFileSync(`${file}.tmp`, `${text}\n`, { mode: 0o600 });
      chmodSync(`${file}.tmp`, 0o600);
      renameSync(`${file}.tmp`, file);
    },
    remove(name) {
      removeSecretFile(fileOf(name));
    },
  };
}
