/**
 * A state file written one chunk at a time (`StateFileWriter`), for restores with flash
 * attention on: the same bytes as state-assemble.ts `writeStateFile`, without holding every
 * chunk in memory at once. It goes to a file (for node-llama-cpp's `loadStateFromFile`) or to
 * one buffer (a state image for the memory path, engine/worker/state-transfer.ts).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { err, ok, type Result } from '../contract/index.ts';
import { CHUNK_HEADER_BYTES, readChunkHeader } from './chunk-payload.ts';
import { allocateLarge } from './kernels-load.ts';
import { ioError, stateFileSize, type AssembleOptions } from './state-assemble.ts';
import { MAX_STREAMS, STATE_MAGIC, type StateLayerShape, type StateShape } from './state-file.ts';

/** Where the writer's bytes go: positioned writes, then close. */
interface Sink {
  write(bytes: Uint8Array, position: number): void;
  close(): void;
}

function fileSink(fd: number): Sink {
  return {
    write(bytes, position) {
      let done = 0;
      while (done < bytes.byteLength) {
        const n = writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
        if (n === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
        done += n;
      }
    },
    close() {
      try {
        closeSync(fd);
      } catch {
        // scratch: nothing to save
      }
    },
  };
}

/**
 * A state file written one chunk at a time, each chunk's rows straight to their final offsets:
 * a restore then holds one chunk in memory, not the whole state, and the bytes are copied once
 * while still in the CPU cache. Same bytes as `writeStateFile` for the same chunks. Only for
 * shapes without transposed V (flash attention on): a transposed chunk is one write per V
 * dimension per layer; use `writeStateFile` there. Not atomic and not fsynced (scratch).
 */
export class StateFileWriter {
  readonly #sink: Sink;
  readonly #path: string;
  /** The image being written, for a writer made by `inMemory`. */
  readonly image: Buffer | null;
  readonly #shape: StateShape;
  readonly #tokens: number;
  readonly #size: number;
  /** Per layer: the file offsets of its first K row and its first V row. */
  readonly #k: number[];
  readonly #v: number[];
  #next = 0;
  #closed = false;

  private constructor(sink: Sink, image: Buffer | null, path: string, shape: StateShape, tokens: number, k: number[], v: number[], size: number) {
    this.#sink = sink;
    this.image = image;
    this.#path = path;
    this.#shape = shape;
    this.#tokens = tokens;
    this.#k = k;
    this.#v = v;
    this.#size = size;
  }

  /** Creates (or truncates) `path` and writes everything but the chunks' tokens and rows. Never throws. */
  static open(path: string, shape: StateShape, tokens: number, options: AssembleOptions = {}): Result<StateFileWriter> {
    return StateFileWriter.#start(path, shape, tokens, options);
  }

  /** The same, into one buffer (`image`, from `allocate`) instead of a file. Never throws. */
  static inMemory(shape: StateShape, tokens: number, options: AssembleOptions = {}, allocate: (size: number) => Buffer = allocateLarge): Result<StateFileWriter> {
    return StateFileWriter.#start(null, shape, tokens, options, allocate);
  }

  static #start(path: string | null, shape: StateShape, tokens: number, options: AssembleOptions, allocate: (size: number) => Buffer = allocateLarge): Result<StateFileWriter> {
    const stream = options.stream ?? 0;
    const seqId = options.seqId ?? 0;
    if (shape.vTrans) return err('NOT_SUPPORTED', 'StateFileWriter does not write transposed V; use writeStateFile.');
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > 0x7fffffff) return err('INVALID_INPUT', `Cannot write a state of ${tokens} tokens.`);
    if (!Number.isInteger(stream) || stream < 0 || stream >= shape.nStream) return err('INVALID_INPUT', `Stream ${stream} is outside 0..${shape.nStream - 1}.`);
    if (!Number.isInteger(seqId) || seqId < 0 || seqId >= MAX_STREAMS) return err('INVALID_INPUT', `Sequence id ${seqId} is out of range.`);
    // The fixed parts, laid out as pieces() yields them.
    const head = Buffer.allocUnsafe(12);
    head.writeUInt32LE(STATE_MAGIC, 0);
    head.writeUInt32LE(shape.stateVersion, 4);
    head.writeUInt32LE(tokens, 8);
    // Every field is a 32-bit little-endian integer: one Int32Array over its own buffer (a
    // writeInt32LE call per field cost ~1 ms per 16k tokens, a fifth of a warm restore's slack).
    // Typed arrays use the machine's byte order: little-endian on every platform llama.cpp's
    // prebuilt binaries exist for (x86-64, arm64).
    const words = new Int32Array(1 + (stream + 1) + 3 * tokens + 2);
    words[0] = shape.nStream;
    words[stream + 1] = tokens;
    for (let i = 0, at = stream + 2; i < tokens; i++, at += 3) {
      words[at] = i;
      words[at + 1] = 1;
      words[at + 2] = seqId;
    }
    words[words.length - 2] = 0;
    words[words.length - 1] = shape.layers.length;
    const meta = new Uint8Array(words.buffer);
    const fixed: { at: number; bytes: Uint8Array }[] = [{ at: 0, bytes: head }];
    let off = 12 + 4 * tokens;
    fixed.push({ at: off, bytes: meta });
    off += meta.length;
    // Per layer: type i32, row size u64, then the rows; all K sections come before all V sections.
    const rowSections = (type: (l: StateLayerShape) => number, rowBytes: (l: StateLayerShape) => number): number[] =>
      shape.layers.map((layer) => {
        const header = Buffer.allocUnsafe(12);
        header.writeInt32LE(type(layer), 0);
        header.writeBigUInt64LE(BigInt(rowBytes(layer)), 4);
        fixed.push({ at: off, bytes: header });
        const rows = off + 12;
        off += 12 + tokens * rowBytes(layer);
        return rows;
      });
    const k = rowSections((l) => l.kType, (l) => l.kRowBytes);
    const v = rowSections((l) => l.vType, (l) => l.vRowBytes);
    const rest = shape.nStream - 1 - stream;
    if (rest > 0) {
      fixed.push({ at: off, bytes: Buffer.alloc(4 * rest) });
      off += 4 * rest;
    }
    const size = stateFileSize(shape, tokens);
    if (off !== size) return err('INTERNAL', `Planned ${off} bytes of state where ${size} were expected.`);
    let writer: StateFileWriter;
    if (path === null) {
      let image: Buffer;
      try {
        image = allocate(size);
      } catch (error) {
        return err('INTERNAL', `No memory for a ${size}-byte KV state: ${error instanceof Error ? error.message : String(error)}`);
      }
      const sink: Sink = { write: (bytes, position) => image.set(bytes, position), close: () => undefined };
      writer = new StateFileWriter(sink, image, 'memory', shape, tokens, k, v, size);
    } else {
      let fd: number;
      try {
        fd = openSync(path, 'w');
      } catch (error) {
        return ioError(error, path);
      }
      writer = new StateFileWriter(fileSink(fd), null, path, shape, tokens, k, v, size);
    }
    for (const piece of fixed) {
      const done = writer.#write(piece.bytes, piece.at);
      if (!done.ok) return done;
    }
    return ok(writer);
  }

  /** Writes at `position`; on failure closes the file. */
  #write(bytes: Uint8Array, position: number): Result<void> {
    try {
      this.#sink.write(bytes, position);
      return ok(undefined);
    } catch (error) {
      this.close();
      return ioError(error, this.#path);
    }
  }

  /**
   * Writes the next chunk (or the tail): it must match the shape and start where the previous one
   * ended. The payload is not kept. Never throws; on failure the file is closed.
   */
  put(payload: Uint8Array): Result<void> {
    if (this.#closed) return err('INTERNAL', 'The state file is closed.');
    const info = readChunkHeader(payload, this.#shape);
    if (!info.ok) {
      this.close();
      return info;
    }
    const { start, length: n } = info.value;
    if (start !== this.#next || start + n > this.#tokens) {
      this.close();
      return err('INVALID_INPUT', `KV chunk starts at token ${start} with ${n} tokens, not at ${this.#next} within ${this.#tokens}: the chunks are not one contiguous prefix.`);
    }
    let from = CHUNK_HEADER_BYTES;
    const tokens = this.#write(payload.subarray(from, from + 4 * n), 12 + 4 * start);
    if (!tokens.ok) return tokens;
    from += 4 * n;
    for (const [l, layer] of this.#shape.layers.entries()) {
      const kBytes = n * layer.kRowBytes;
      const k = this.#write(payload.subarray(from, from + kBytes), this.#k[l]! + start * layer.kRowBytes);
      if (!k.ok) return k;
      from += kBytes;
      const vBytes = n * layer.vRowBytes;
      const v = this.#write(payload.subarray(from, from + vBytes), this.#v[l]! + start * layer.vRowBytes);
      if (!v.ok) return v;
      from += vBytes;
    }
    this.#next += n;
    return ok(undefined);
  }

  /**
   * Where the next chunk of `n` tokens (starting at `start`) goes in the image, for a reader that
   * puts its rows there itself (engine/kv/store-scatter.ts): the offset of its token list, and its
   * K/V row runs in payload order (per layer: K, then V) as [offset, length] pairs. The chunk then
   * counts as written. In-memory writers only. Never throws.
   */
  claim(start: number, n: number): Result<{ readonly tokensAt: number; readonly pieces: readonly number[] }> {
    if (this.#closed || this.image === null) return err('INTERNAL', 'Only an open in-memory state can be written in place.');
    if (start !== this.#next || !Number.isInteger(n) || n < 1 || start + n > this.#tokens) {
      return err('INVALID_INPUT', `KV chunk starts at token ${start} with ${n} tokens, not at ${this.#next} within ${this.#tokens}: the chunks are not one contiguous prefix.`);
    }
    const pieces: number[] = [];
    for (const [l, layer] of this.#shape.layers.entries()) {
      pieces.push(this.#k[l]! + start * layer.kRowBytes, n * layer.kRowBytes);
      pieces.push(this.#v[l]! + start * layer.vRowBytes, n * layer.vRowBytes);
    }
    this.#next += n;
    return ok({ tokensAt: 12 + 4 * start, pieces });
  }

  /** Closes the file once every token was written; its size. Never throws. */
  finish(): Result<{ readonly bytes: number }> {
    if (this.#closed) return err('INTERNAL', 'The state file is closed.');
    this.close();
    if (this.#next !== this.#tokens) return err('INTERNAL', `Wrote ${this.#next} of ${this.#tokens} tokens of state.`);
    return ok({ bytes: this.#size });
  }

  /** Closes the file (idempotent); an unfinished file is not loadable and is the caller's to remove. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sink.close();
  }
}
