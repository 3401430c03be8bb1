/**
 * Test helpers for the KV store: a temp root, a fingerprint, deterministic payloads, and a file
 * system whose calls can be made to fail (ENOSPC halfway through a chunk, EIO on fsync) or wait.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach } from 'vitest';
import type { Result } from '../../engine/contract/index.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../../engine/kv/fingerprint.ts';
import type { FingerprintParts } from '../../engine/kv/fingerprint.ts';
import type { StoreFileHandle, StoreFs } from '../../engine/kv/store-fs.ts';
import { nodeFs } from '../../engine/kv/store-fs.ts';
import { chunksDir } from '../../engine/kv/chunk-file.ts';
import { openKvStore, type KvStore, type KvStoreOptions, type PutManifestResult } from '../../engine/kv/store.ts';

export function tempRoot(): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'hearth-kv-'));
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export const sampleParts: FingerprintParts = {
  llamaCppRelease: 'b0000',
  stateFormatVersion: 3,
  modelHash: 'ab'.repeat(32),
  kType: 'F16',
  vType: 'F16',
  flashAttention: false,
  nStream: 1,
  layers: 2,
  kWidths: [64, 64],
  vWidths: [64, 64],
};

export function sampleFingerprint(overrides: Partial<FingerprintParts> = {}): string {
  const result = fingerprint({ ...sampleParts, ...overrides });
  if (!result.ok) throw new Error(result.error.message);
  return result.value;
}

/** A payload that depends on the chunk's tokens, as real KV does. */
export function payloadFor(tokens: ArrayLike<number>, bytesPerToken = 16): Uint8Array {
  const out = new Uint8Array(tokens.length * bytesPerToken);
  for (let i = 0; i < out.length; i++) out[i] = ((tokens[Math.floor(i / bytesPerToken)] as number) * 31 + i) & 0xff;
  return out;
}

/** Payloads for every full chunk of `tokens`. */
export function payloadsFor(tokens: readonly number[], chunkTokens: number, bytesPerToken = 16): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let start = 0; start + chunkTokens <= tokens.length; start += chunkTokens) out.push(payloadFor(tokens.slice(start, start + chunkTokens), bytesPerToken));
  return out;
}

export function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

export function errno(code: string, syscall = 'write'): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated failure, ${syscall}`), { code, syscall });
}

/** What the faulty file system does; change the fields between calls. */
export interface Faults {
  /** Fail a write once `written` would exceed this; the failing write first writes what fits. */
  writeBudget: number | null;
  /** Bytes written to files so far (reset it with the budget). */
  written: number;
  writeError: string;
  /** Fail fsync of files with this code. */
  syncError: string | null;
  /** Fail opening files for writing with this code. */
  openError: string | null;
  /** Wait this long in each write (to hold a save open while other calls queue). */
  writeDelayMs: number;
  /** Opens for reading, per path. */
  reads: Map<string, number>;
}

export function faultyFs(base: StoreFs = nodeFs): { fs: StoreFs; faults: Faults } {
  const faults: Faults = { writeBudget: null, written: 0, writeError: 'ENOSPC', syncError: null, openError: null, writeDelayMs: 0, reads: new Map() };
  const wrap = (handle: StoreFileHandle, writing: boolean): StoreFileHandle => ({
    async write(buffer, offset, length, position) {
      if (faults.writeDelayMs > 0) await new Promise((r) => setTimeout(r, faults.writeDelayMs));
      if (writing && faults.writeBudget !== null && faults.written + length > faults.writeBudget) {
        const fits = Math.max(0, faults.writeBudget - faults.written);
        if (fits > 0) {
          await handle.write(buffer, offset, fits, position);
          faults.written += fits;
        }
        throw errno(faults.writeError);
      }
      const result = await handle.write(buffer, offset, length, position);
      faults.written += result.bytesWritten;
      return result;
    },
    read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
    stat: () => handle.stat(),
    async sync() {
      if (writing && faults.syncError) throw errno(faults.syncError, 'fsync');
      return handle.sync();
    },
    close: () => handle.close(),
  });
  const fs: StoreFs = {
    ...base,
    async open(path, flags, mode) {
      const writing = flags !== 'r';
      if (writing && faults.openError) throw errno(faults.openError, 'open');
      if (!writing) faults.reads.set(path, (faults.reads.get(path) ?? 0) + 1);
      return wrap(await base.open(path, flags, mode), writing);
    },
  };
  return { fs, faults };
}

/** The value of a successful Result; a failed one fails the test with its code and message. */
export function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

export interface TestStores {
  readonly root: string;
  /** The fingerprint `save` stores under. */
  readonly fingerprint: string;
  open(options?: Partial<KvStoreOptions>): Promise<KvStore>;
  /** A store whose file system fails on demand (`faults`). */
  openFaulty(options?: Partial<KvStoreOptions>): Promise<{ store: KvStore; faults: Faults }>;
  /** `saveTokens` under `fingerprint`. */
  save(store: KvStore, id: string, tokens: number[], tail?: boolean): Promise<PutManifestResult>;
  /** `chunkFilesIn` and `refcountsIn` of the current root. */
  chunkFiles(): string[];
  refcounts(): Map<string, number>;
}

/**
 * A fresh temp root per test of the calling file, and `open()` for stores in it (a 1 GiB budget
 * and a deterministic clock unless overridden); every store is closed and the root removed after
 * each test. Every member may be destructured.
 */
export function useTestStores(chunkTokens: number): TestStores {
  let current: { root: string; cleanup: () => void } | null = null;
  const opened: KvStore[] = [];
  const fingerprint = sampleFingerprint();
  beforeEach(() => {
    current = tempRoot();
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    current?.cleanup();
    current = null;
  });
  const root = (): string => {
    if (!current) throw new Error('useTestStores: root is only available inside a test');
    return current.root;
  };
  const open = async (options: Partial<KvStoreOptions> = {}): Promise<KvStore> => {
    let clock = 1_000;
    const store = value(await openKvStore({ root: root(), budgetBytes: 1 << 30, chunkTokens, now: () => clock++, ...options }));
    opened.push(store);
    return store;
  };
  return {
    get root(): string {
      return root();
    },
    fingerprint,
    open,
    async openFaulty(options = {}) {
      const { fs, faults } = faultyFs();
      return { store: await open({ fs, ...options }), faults };
    },
    save: (store, id, tokens, tail = true) => saveTokens(store, fingerprint, id, tokens, tail),
    chunkFiles: () => chunkFilesIn(root()),
    refcounts: () => refcountsIn(root()),
  };
}

/** Saves `tokens` with every payload given, and a tail payload unless `tail` is false. */
export async function saveTokens(store: KvStore, fingerprint: string, id: string, tokens: number[], tail = true): Promise<PutManifestResult> {
  const size = store.chunkTokens;
  const tailTokens = tokens.slice(Math.floor(tokens.length / size) * size);
  return value(
    await store.putManifest(id, {
      fingerprint,
      tokens,
      chunks: payloadsFor(tokens, size),
      ...(tail && tailTokens.length > 0 ? { tailPayload: payloadFor(tailTokens) } : {}),
    }),
  );
}

/** The files in a store's chunk directories (chunk files and temp files), read behind its back. */
export function chunkFilesIn(root: string): string[] {
  const top = chunksDir(root);
  return readdirSync(top)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(top, d)).map((f) => join(top, d, f)));
}

/** Refcounts as stored, read behind the store's back. */
export function refcountsIn(root: string): Map<string, number> {
  const db = new DatabaseSync(join(root, 'index.db'), { readOnly: true });
  try {
    const rows = db.prepare('SELECT key, refcount FROM chunks').all() as { key: string; refcount: number }[];
    return new Map(rows.map((r) => [r.key, r.refcount]));
  } finally {
    db.close();
  }
}

/** Flips the lowest bit of the byte `fromEnd` bytes before the end of a file. */
export function flipByte(path: string, fromEnd = 1): void {
  const bytes = readFileSync(path);
  const at = bytes.length - fromEnd;
  bytes[at] = (bytes[at] as number) ^ 0x01;
  writeFileSync(path, bytes);
}
