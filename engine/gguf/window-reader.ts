/**
 * The GGUF reader's bounded window over a file it does not trust: every read checks the file's
 * real size and the header limits first, so a length field can never make the reader read or
 * allocate past the end. Failures are `Invalid` errors that name what was being read.
 */
import type { FileHandle } from 'node:fs/promises';
import { scalarSize, type GgufScalarTypeName } from './format.ts';

/** Caps that bound what a hostile header can make the reader do. */
export const limits = {
  /** Bytes of header (metadata + tensor infos) read at most. Real files: a few MiB to ~40 MiB. */
  headerBytes: 512 * 1024 * 1024,
  /** One metadata string (chat templates are the longest real ones, ~100 KiB). */
  stringBytes: 64 * 1024 * 1024,
  keyBytes: 64 * 1024,
  kvCount: 1_000_000,
  tensorCount: 10_000_000,
  arrayLength: 1024 * 1024 * 1024,
} as const;

/** Raised inside the reader; `inspectGguf` turns it into a MODEL_INVALID result. */
export class Invalid extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

export const TRUNCATED_HINT = 'Download the model again.';
const WINDOW = 1024 * 1024;

/**
 * An untrusted string (a key or tensor name from the file) as it may appear in a message:
 * quoted, escaped and cut short, so a hostile file cannot fill the UI with garbage.
 */
export function shown(text: string): string {
  const escaped = JSON.stringify(text).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > 82 ? `${escaped.slice(0, 80)}…"` : escaped;
}

/** A tensor name for a message: as is when it is plain ASCII (names are < 64 bytes), else escaped. */
export function tensorName(name: string): string {
  return /^[\x21-\x7e]+$/.test(name) ? name : shown(name);
}

/** A count or byte offset with thousands separators, for messages. */
export function num(n: number | bigint): string {
  return `${n.toLocaleString('en-US')}`;
}

/**
 * Reads a file sequentially through a window. Every read checks the file's real size first, so
 * a length field can never make it read (or allocate) past the end.
 */
export class Reader {
  private readonly handle: FileHandle;
  readonly fileSize: number;
  /** Where the window's bytes live: reused by every refill that fits (see `need`). */
  private buffer = Buffer.alloc(0);
  private window = Buffer.alloc(0);
  private windowStart = 0;
  position = 0;
  /** What is being read, for the truncation message. */
  context = 'the header';

  constructor(handle: FileHandle, fileSize: number) {
    this.handle = handle;
    this.fileSize = fileSize;
  }

  get remaining(): number {
    return this.fileSize - this.position;
  }

  private async need(n: number): Promise<void> {
    if (n > this.remaining) {
      throw new Invalid(
        `The file ends at ${num(this.fileSize)} bytes, inside its header (while reading ${this.context}): the file is truncated, probably an incomplete download.`,
        TRUNCATED_HINT,
      );
    }
    if (this.position + n > limits.headerBytes) {
      throw new Invalid(`The GGUF header is larger than ${num(limits.headerBytes)} bytes (while reading ${this.context}); the file is not a usable model.`);
    }
    const offset = this.position - this.windowStart;
    if (offset >= 0 && offset + n <= this.window.length) return;
    const size = Math.min(Math.max(n, WINDOW), this.remaining);
    // One buffer serves every refill that fits in it: fresh memory costs a page fault per 4 KiB
    // on first touch, which made the allocations, not the reads, most of a large header's time.
    // Not zeroed: only the bytes read are ever looked at (the window is cut to them below).
    if (this.buffer.length < size) this.buffer = Buffer.allocUnsafe(size);
    const buffer = this.buffer;
    this.window = buffer.subarray(0, 0);
    let read = 0;
    while (read < size) {
      const { bytesRead } = await this.handle.read(buffer, read, size - read, this.position + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    if (read < n) throw new Invalid(`The file could not be read past ${num(this.position + read)} bytes (while reading ${this.context}).`);
    this.window = buffer.subarray(0, read);
    this.windowStart = this.position;
  }

  private at(): number {
    return this.position - this.windowStart;
  }

  /** The next `n` bytes, as a view of the window: valid only until the next read refills it. */
  async bytes(n: number): Promise<Buffer> {
    await this.need(n);
    const b = this.window.subarray(this.at(), this.at() + n);
    this.position += n;
    return b;
  }

  async skip(n: number): Promise<void> {
    if (n > this.remaining) await this.need(n);
    this.position += n;
  }

  async u32(): Promise<number> {
    await this.need(4);
    const v = this.window.readUInt32LE(this.at());
    this.position += 4;
    return v;
  }

  async i32(): Promise<number> {
    await this.need(4);
    const v = this.window.readInt32LE(this.at());
    this.position += 4;
    return v;
  }

  async u64(): Promise<bigint> {
    await this.need(8);
    const v = this.window.readBigUInt64LE(this.at());
    this.position += 8;
    return v;
  }

  /** A u64 that must be a count or size: at most `max`. */
  async count(what: string, max: number): Promise<number> {
    const v = await this.u64();
    if (v > BigInt(max)) throw new Invalid(`The file claims ${num(v)} ${what}, more than the ${num(max)} a usable model can have: the file is corrupt.`);
    return Number(v);
  }

  async string(what: string, maxBytes: number): Promise<string> {
    const length = await this.u64();
    if (length > BigInt(maxBytes)) {
      throw new Invalid(`The ${what} is ${num(length)} bytes long, more than the ${num(maxBytes)} allowed: the file is corrupt.`);
    }
    if (length > BigInt(this.remaining)) {
      throw new Invalid(
        `The ${what} is ${num(length)} bytes long but the file ends ${num(this.remaining)} bytes later: the file is truncated or corrupt.`,
        TRUNCATED_HINT,
      );
    }
    const bytes = await this.bytes(Number(length));
    return bytes.toString('utf8');
  }

  /**
   * `count` length-prefixed strings in a row, read as `string(what(i), maxBytes)` would read each
   * one, returned when `keep` is true and skipped undecoded otherwise. A vocabulary is 100k+
   * strings and its merges 200k+: awaiting each one made an 8 MiB header take half a second, so
   * the strings that lie wholly inside the window (and below the header cap) are walked
   * synchronously, and only the one that crosses the window's end, or breaks a rule, goes
   * through `string`, which refills the window or raises the same error as before.
   */
  async strings(count: number, maxBytes: number, what: (i: number) => string, keep: boolean): Promise<string[]> {
    const kept: string[] = [];
    let i = this.walkStrings(0, count, maxBytes, keep ? kept : null);
    while (i < count) {
      const s = await this.string(what(i), maxBytes);
      if (keep) kept.push(s);
      i = this.walkStrings(i + 1, count, maxBytes, keep ? kept : null);
    }
    return kept;
  }

  /**
   * Strings `from`… of `count`, walked while each lies wholly inside the window, within
   * `maxBytes` and below the header cap; returns the index of the first that does not. A plain
   * function rather than part of the async `strings`, so that V8 optimizes the loop on its own:
   * inside the async function the first read of a large header was measurably slower.
   */
  private walkStrings(from: number, count: number, maxBytes: number, kept: string[] | null): number {
    const w = this.window;
    const start = this.windowStart;
    const end = Math.min(w.length, limits.headerBytes - start);
    let at = this.position - start;
    let i = from;
    while (i < count && at >= 0 && at + 8 <= end) {
      // The u64 prefix as two u32 halves: a high half that is not zero is past any cap.
      if (w.readUInt32LE(at + 4) !== 0) break;
      const length = w.readUInt32LE(at);
      const next = at + 8 + length;
      if (length > maxBytes || next > end) break;
      if (kept) kept.push(w.toString('utf8', at + 8, next));
      at = next;
      i++;
    }
    this.position = start + at;
    return i;
  }

  async scalar(type: GgufScalarTypeName, what: string): Promise<number | boolean | string> {
    if (type === 'string') return this.string(what, limits.stringBytes);
    const size = scalarSize[type];
    await this.need(size);
    const at = this.at();
    const w = this.window;
    let v: number | boolean;
    switch (type) {
      case 'uint8': v = w.readUInt8(at); break;
      case 'int8': v = w.readInt8(at); break;
      case 'uint16': v = w.readUInt16LE(at); break;
      case 'int16': v = w.readInt16LE(at); break;
      case 'uint32': v = w.readUInt32LE(at); break;
      case 'int32': v = w.readInt32LE(at); break;
      case 'float32': v = w.readFloatLE(at); break;
      case 'float64': v = w.readDoubleLE(at); break;
      case 'uint64': v = Number(w.readBigUInt64LE(at)); break;
      case 'int64': v = Number(w.readBigInt64LE(at)); break;
      // Any non-zero byte is true, as in llama.cpp.
      case 'bool': v = w.readUInt8(at) !== 0; break;
    }
    this.position += size;
    return v;
  }
}
