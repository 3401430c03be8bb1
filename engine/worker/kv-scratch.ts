/**
 * Scratch state files: node-llama-cpp saves and loads a sequence's state only through a file, so
 * where the state bridge is off (engine/worker/state-transfer.ts) every save and restore goes
 * through one, on a RAM-backed directory (/dev/shm) when there is one so the full state never
 * reaches the disk (docs/decisions/state-through-scratch-file.md).
 * Files carry the pid, so a process killed mid-save has its leftovers swept by the next one.
 */
import { access, mkdir, readdir, rm } from 'node:fs/promises';
import { constants as fsConstants, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { err, errorText, ok, type Result } from '../contract/index.ts';
import { isProcessAlive } from '../base/process.ts';

async function ramScratch(): Promise<string | null> {
  if (process.platform !== 'linux') return null;
  try {
    await access('/dev/shm', fsConstants.W_OK);
    // One directory per user, shared by that user's engine processes (files carry the pid).
    return `/dev/shm/hearth-kv-${process.getuid?.() ?? 'user'}`;
  } catch {
    return null;
  }
}

/**
 * Removes scratch files of engine processes that are gone: one killed mid-save (a SIGKILL at
 * quit, a crash) leaves its state file behind, and in /dev/shm that holds RAM.
 */
async function removeStaleScratch(scratchDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(scratchDir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^state-(\d+)-\d+\.bin$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !isProcessAlive(Number(m[1]))) await rm(join(scratchDir, name), { force: true }).catch(() => undefined);
  }
}

/**
 * Removes a scratch state file without a thread-pool round trip: on the restore path it is one
 * unlink in RAM (/dev/shm), and a restore's whole time budget is a few milliseconds.
 */
export function removeScratchSync(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone; else removeStaleScratch sweeps it once this process is gone
  }
}

/** This process's scratch directory and the names of its files. */
export class ScratchFiles {
  readonly dir: string;
  #counter = 0;
  #bytesWritten = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** `dir`, else /dev/shm/hearth-kv-<uid> when usable, else `fallbackDir`; created, and swept of dead processes' files. */
  static async open(dir: string | undefined, fallbackDir: string): Promise<Result<ScratchFiles>> {
    const chosen = dir ?? (await ramScratch()) ?? fallbackDir;
    try {
      await mkdir(chosen, { recursive: true, mode: 0o700 });
      await removeStaleScratch(chosen);
    } catch (error) {
      return err('INTERNAL', `The KV scratch directory ${chosen} cannot be created: ${errorText(error)}.`);
    }
    return ok(new ScratchFiles(chosen));
  }

  /** A new file name (nothing is created). */
  next(): string {
    return join(this.dir, `state-${process.pid}-${this.#counter++}.bin`);
  }

  /** Records `bytes` written to a scratch file (what the benchmark reports as scratch writes). */
  counted(bytes: number): void {
    this.#bytesWritten += bytes;
  }

  /** Bytes written to scratch files by this process so far. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }
}
