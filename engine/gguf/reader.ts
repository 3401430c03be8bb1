/**
 * A validating GGUF reader for the host: it checks a file before anything reaches llama.cpp
 * (engine/protocol.ts, `loadModel`). It reads only the header, the metadata and the tensor
 * infos, through a small window (real models are gigabytes), and treats the file as hostile:
 * every count and length is checked against the bytes that are really there before anything is
 * allocated from it.
 *
 * The checks mirror llama.cpp v0.4.0's own loader (ggml/src/gguf.cpp and llama-model-loader),
 * so a file that passes here is not rejected there for its layout; it may still be rejected for
 * its content (an unknown architecture, missing tensors), which the engine reports as
 * MODEL_UNSUPPORTED.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { err, errorText, ok, type HearthError, type Result } from '../contract/index.ts';
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  ggmlTypes,
  llamaFileTypes,
  scalarSize,
  valueTypeName,
  type GgufScalarTypeName,
} from './format.ts';
import { Invalid, limits, num, Reader, shown, tensorName, TRUNCATED_HINT } from './window-reader.ts';

export { limits } from './window-reader.ts';

/** Arrays longer than this keep only their length in the summary (token lists have 100k+ entries). */
export const MAX_KEPT_ARRAY_LENGTH = 1024;

/** One metadata value. 64-bit integers become numbers (exact up to 2^53). */
export type GgufMetaEntry =
  | { readonly type: Exclude<GgufScalarTypeName, 'string' | 'bool'>; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | {
      readonly type: 'array';
      readonly itemType: GgufScalarTypeName | 'array';
      readonly length: number;
      /** The elements, when there are at most MAX_KEPT_ARRAY_LENGTH of them. */
      readonly values?: readonly (number | boolean | string)[];
    };

/** What the host knows of a model file without loading it. Plain JSON. */
export interface GgufSummary {
  readonly path: string;
  readonly fileSize: number;
  /** GGUF format version (2 or 3). */
  readonly version: number;
  /** `general.architecture`, e.g. "llama". */
  readonly architecture: string;
  /** `general.name`, or the file name without `.gguf`. */
  readonly name: string;
  /** `<arch>.context_length`: the trained context length; null when the file does not say. */
  readonly contextLength: number | null;
  readonly blockCount: number | null;
  readonly embeddingLength: number | null;
  readonly headCount: number | null;
  /** `<arch>.attention.head_count_kv`; defaults to headCount as in llama.cpp. */
  readonly headCountKv: number | null;
  readonly tensorCount: number;
  /**
   * The quantization named by `general.file_type` (`Q4_K_M`, `F16`…, see `llamaFileTypes`); null
   * when the file does not say or names a type this reader does not know.
   */
  readonly fileType: string | null;
  /** Elements of every tensor in this file (the first part's only, for a split model). */
  readonly parameterCount: number;
  readonly hasChatTemplate: boolean;
  readonly alignment: number;
  /** Where the tensor data section starts. */
  readonly dataOffset: number;
  /** Every metadata key (arrays longer than MAX_KEPT_ARRAY_LENGTH without their values). Read with `metaString` etc. */
  readonly metadata: Readonly<Record<string, GgufMetaEntry>>;
}

/** A string metadata value, or undefined when absent or of another type. */
export function metaString(summary: Pick<GgufSummary, 'metadata'>, key: string): string | undefined {
  const entry = Object.hasOwn(summary.metadata, key) ? summary.metadata[key] : undefined;
  return entry?.type === 'string' ? entry.value : undefined;
}

/** A numeric metadata value (any integer or float type), or undefined. */
export function metaNumber(summary: Pick<GgufSummary, 'metadata'>, key: string): number | undefined {
  const entry = Object.hasOwn(summary.metadata, key) ? summary.metadata[key] : undefined;
  return entry && entry.type !== 'string' && entry.type !== 'bool' && entry.type !== 'array' ? entry.value : undefined;
}

export function metaBool(summary: Pick<GgufSummary, 'metadata'>, key: string): boolean | undefined {
  const entry = Object.hasOwn(summary.metadata, key) ? summary.metadata[key] : undefined;
  return entry?.type === 'bool' ? entry.value : undefined;
}

async function readValue(r: Reader, key: string): Promise<GgufMetaEntry> {
  const typeCode = await r.u32();
  const type = valueTypeName.get(typeCode);
  if (type === undefined) throw new Invalid(`The metadata key ${shown(key)} has an unknown value type ${typeCode}: the file is corrupt.`);
  if (type !== 'array') {
    const value = await r.scalar(type, `value of ${shown(key)}`);
    return { type, value } as GgufMetaEntry;
  }
  const itemCode = await r.u32();
  const itemType = valueTypeName.get(itemCode);
  if (itemType === undefined) throw new Invalid(`The array ${shown(key)} has an unknown element type ${itemCode}: the file is corrupt.`);
  const length = await r.count(`elements in the array ${shown(key)}`, limits.arrayLength);
  if (itemType === 'array') {
    // llama.cpp does not read nested arrays either (gguf.cpp rejects them).
    throw new Invalid(`The metadata key ${shown(key)} is an array of arrays, which GGUF models do not use: the file is corrupt.`);
  }
  // Each element takes at least this many bytes, so a length the file cannot hold is caught
  // before anything is allocated for it.
  const minSize = itemType === 'string' ? 8 : scalarSize[itemType];
  if (length * minSize > r.remaining) {
    throw new Invalid(
      `The array ${shown(key)} claims ${num(length)} elements, which do not fit in the ${num(r.remaining)} bytes left in the file: the file is truncated or corrupt.`,
      TRUNCATED_HINT,
    );
  }
  const keep = length <= MAX_KEPT_ARRAY_LENGTH;
  const values: (number | boolean | string)[] = [];
  if (itemType === 'string') {
    // Every length prefix is still checked; the values of an array too long to keep are never decoded.
    values.push(...(await r.strings(length, limits.stringBytes, (i) => `element ${i} of ${shown(key)}`, keep)));
  } else if (keep) {
    for (let i = 0; i < length; i++) values.push(await r.scalar(itemType, `element ${i} of ${shown(key)}`));
  } else {
    await r.skip(length * minSize);
  }
  return keep ? { type: 'array', itemType, length, values } : { type: 'array', itemType, length };
}

interface TensorInfo {
  readonly name: string;
  readonly dims: readonly bigint[];
  readonly typeCode: number;
  readonly offset: bigint;
  readonly bytes: bigint;
  readonly elements: bigint;
}

async function readTensorInfo(r: Reader, index: number): Promise<TensorInfo> {
  r.context = `tensor info ${index}`;
  const name = await r.string(`name of tensor ${index}`, GGML_MAX_NAME * 4);
  if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
    throw new Invalid(`Tensor ${index}'s name is ${Buffer.byteLength(name)} bytes long; llama.cpp allows at most ${GGML_MAX_NAME - 1}: the file is corrupt.`);
  }
  const nDims = await r.u32();
  if (nDims > GGML_MAX_DIMS) throw new Invalid(`Tensor ${tensorName(name)} has ${nDims} dimensions; ggml allows at most ${GGML_MAX_DIMS}: the file is corrupt.`);
  const dims: bigint[] = [];
  let elements = 1n;
  for (let d = 0; d < nDims; d++) {
    const ne = await r.u64();
    // ggml stores dimensions as int64: anything at or above 2^63 is negative there.
    if (ne >= 1n << 63n) throw new Invalid(`Tensor ${tensorName(name)} has a negative dimension: the file is corrupt.`);
    dims.push(ne);
    elements *= ne;
  }
  if (elements >= 1n << 63n) throw new Invalid(`Tensor ${tensorName(name)} has ${num(elements)} elements, more than ggml can address: the file is corrupt.`);
  const typeCode = await r.u32();
  const type = ggmlTypes.get(typeCode);
  if (!type) {
    throw new Invalid(
      `Tensor ${tensorName(name)} has the ggml type ${typeCode}, which this version of llama.cpp does not know.`,
      'The file may need a newer Hearth, or it was written with a type that was removed from the GGUF format.',
    );
  }
  const ne0 = dims[0] ?? 1n;
  if (ne0 % BigInt(type.blockSize) !== 0n) {
    throw new Invalid(`Tensor ${tensorName(name)} has rows of ${ne0} elements, not a multiple of ${type.name}'s block size ${type.blockSize}: the file is corrupt.`);
  }
  const offset = await r.u64();
  return { name, dims, typeCode, offset, elements, bytes: (elements / BigInt(type.blockSize)) * BigInt(type.typeSize) };
}

const pad = (n: bigint, alignment: bigint): bigint => ((n + alignment - 1n) / alignment) * alignment;

/** What every GGUF file holds, checked: the header, the metadata and the tensor infos. */
interface Layout {
  readonly version: number;
  readonly metadata: Record<string, GgufMetaEntry>;
  readonly alignment: number;
  readonly tensors: readonly TensorInfo[];
  readonly dataOffset: bigint;
}

async function readLayout(r: Reader): Promise<Layout> {
  const { version, tensorCount, kvCount } = await readHeader(r);
  const metadata = await readMetadata(r, kvCount);
  const alignment = alignmentOf(metadata);
  const tensors: TensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const info = await readTensorInfo(r, i);
    if (names.has(info.name)) throw new Invalid(`The tensor name ${tensorName(info.name)} appears twice: the file is corrupt.`);
    names.add(info.name);
    tensors.push(info);
  }
  const dataOffset = pad(BigInt(r.position), BigInt(alignment));
  checkTensorLayout(tensors, dataOffset, BigInt(alignment), BigInt(r.fileSize));
  return { version, metadata, alignment, tensors, dataOffset };
}

/** Elements of every tensor together: the parameters a file holds (below 2^63 each, so exact to 2^53 as a number). */
function parameterCount(tensors: readonly TensorInfo[]): number {
  let total = 0n;
  for (const t of tensors) total += t.elements;
  return Number(total);
}

/** `split.count` when the file is one part of a split model (gguf-split), else 1. */
function splitCountOf(summary: Pick<GgufSummary, 'metadata'>): number {
  const count = metaNumber(summary, 'split.count');
  return count !== undefined && Number.isInteger(count) && count > 1 ? count : 1;
}

async function readSummary(path: string, r: Reader): Promise<GgufSummary> {
  const { version, metadata, alignment, tensors, dataOffset } = await readLayout(r);
  const summaryBase = { metadata };
  const tensorCount = tensors.length;
  // gguf-split may leave the first part with metadata only (--no-tensor-first-split); llama.cpp
  // loads such a set, so only a file that is not part of a set must hold tensors.
  if (tensorCount === 0 && splitCountOf(summaryBase) === 1) throw new Invalid('The file has no tensors: it is not a model.');

  const architecture = metaString(summaryBase, 'general.architecture');
  if (architecture === undefined || architecture === '') throw new Invalid('The file has no general.architecture: it is not a usable model.');
  const arch = (key: string): number | null => {
    const v = metaNumber(summaryBase, `${architecture}.${key}`);
    return v === undefined ? null : v;
  };
  const headCount = arch('attention.head_count');
  const generalName = metaString(summaryBase, 'general.name');
  const fileTypeCode = metaNumber(summaryBase, 'general.file_type');
  return {
    path,
    fileSize: r.fileSize,
    version,
    architecture,
    name: generalName !== undefined && generalName.trim() !== '' ? generalName : basename(path).replace(/\.gguf$/i, ''),
    contextLength: arch('context_length'),
    blockCount: arch('block_count'),
    embeddingLength: arch('embedding_length'),
    headCount,
    headCountKv: arch('attention.head_count_kv') ?? headCount,
    tensorCount,
    fileType: fileTypeCode === undefined ? null : (llamaFileTypes.get(fileTypeCode) ?? null),
    parameterCount: parameterCount(tensors),
    hasChatTemplate: metaString(summaryBase, 'tokenizer.chat_template') !== undefined,
    alignment,
    dataOffset: Number(dataOffset),
    metadata,
  };
}

/** The magic, the version and the two counts, checked against what the file can hold. */
async function readHeader(r: Reader): Promise<{ version: number; tensorCount: number; kvCount: number }> {
  r.context = 'the magic number';
  const magicBytes = await r.bytes(4);
  if (magicBytes.readUInt32LE(0) !== GGUF_MAGIC) {
    // The error never quotes the file: a path typed into the browser host must not become a way
    // to read the first bytes of any file on the machine.
    throw new Invalid('The file is not a GGUF model: it does not start with "GGUF".', 'Choose a .gguf model file.');
  }
  r.context = 'the version';
  const version = await r.u32();
  if (version === 1) throw new Invalid('The file is a GGUF version 1 model, which llama.cpp no longer reads.', 'Download a current version of the model.');
  if (version !== 2 && version !== 3) {
    throw new Invalid(`The file says it is GGUF version ${version}; Hearth reads versions 2 and 3.`, version > 3 ? 'The model may need a newer Hearth.' : undefined);
  }
  r.context = 'the tensor count';
  const tensorCount = await r.count('tensors', limits.tensorCount);
  r.context = 'the metadata count';
  const kvCount = await r.count('metadata entries', limits.kvCount);
  // Each metadata entry takes at least 13 bytes (key length, type, a 1-byte value) and each
  // tensor info at least 24, so counts the file cannot hold are rejected up front.
  if (kvCount * 13 + tensorCount * 24 > r.remaining) {
    throw new Invalid(
      `The file claims ${num(kvCount)} metadata entries and ${num(tensorCount)} tensors, which do not fit in its ${num(r.fileSize)} bytes: the file is truncated or corrupt.`,
      TRUNCATED_HINT,
    );
  }
  return { version, tensorCount, kvCount };
}

async function readMetadata(r: Reader, kvCount: number): Promise<Record<string, GgufMetaEntry>> {
  const metadata: Record<string, GgufMetaEntry> = Object.create(null) as Record<string, GgufMetaEntry>;
  for (let i = 0; i < kvCount; i++) {
    r.context = `metadata entry ${i}`;
    const key = await r.string(`key of metadata entry ${i}`, limits.keyBytes);
    if (key === '') throw new Invalid(`Metadata entry ${i} has an empty key: the file is corrupt.`);
    if (Object.hasOwn(metadata, key)) throw new Invalid(`The metadata key ${shown(key)} appears twice: the file is corrupt.`);
    r.context = `the value of metadata key ${shown(key)}`;
    metadata[key] = await readValue(r, key);
  }
  return metadata;
}

function alignmentOf(metadata: Record<string, GgufMetaEntry>): number {
  const entry = metadata['general.alignment'];
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== 'uint32') throw new Invalid(`general.alignment must be a uint32, not ${entry.type}: the file is corrupt.`);
  const alignment = entry.value;
  if (alignment === 0 || (alignment & (alignment - 1)) !== 0) throw new Invalid(`general.alignment is ${alignment}, not a power of two: the file is corrupt.`);
  return alignment;
}

/**
 * llama.cpp (gguf.cpp) requires the tensors to be laid out back to back in the order of their
 * infos, each padded to the alignment, and all within the file.
 */
function checkTensorLayout(tensors: readonly TensorInfo[], dataOffset: bigint, align: bigint, fileSize: bigint): void {
  let expected = 0n;
  for (const t of tensors) {
    if (t.offset !== expected) {
      throw new Invalid(`Tensor ${tensorName(t.name)} starts at data offset ${num(t.offset)}, but ${num(expected)} was expected: the file is corrupt.`);
    }
    const end = dataOffset + t.offset + t.bytes;
    if (end > fileSize) {
      throw new Invalid(
        `The file ends at ${num(fileSize)} bytes but tensor ${tensorName(t.name)} needs bytes up to ${num(end)}: the file is truncated, probably an incomplete download.`,
        TRUNCATED_HINT,
      );
    }
    expected += pad(t.bytes, align);
  }
}

/**
 * Checks that `path` is a GGUF model llama.cpp can read, and summarizes it. Never throws:
 * NOT_FOUND when there is no such file, MODEL_INVALID (with a message saying what is wrong)
 * for anything else that is not a well-formed, complete GGUF file.
 */
export async function inspectGguf(path: string): Promise<Result<GgufSummary>> {
  return withReader(path, (r) => readSummary(path, r));
}

/** One part of a split model, as far as the library needs it: its parameters and its place in the set. */
export interface GgufPartSummary {
  readonly path: string;
  readonly fileSize: number;
  readonly tensorCount: number;
  /** Elements of every tensor in this part. */
  readonly parameterCount: number;
  /** `split.no` (0 for the first part); null when the file does not say. */
  readonly splitNo: number | null;
  /** `split.count`; 1 when the file is not part of a set. */
  readonly splitCount: number;
}

/**
 * Checks a file's GGUF layout as `inspectGguf` does, without asking for a model's metadata:
 * gguf-split writes `general.architecture` and the rest into the first part only, so the other
 * parts of a set are read with this. Never throws; the same errors as `inspectGguf`.
 */
export async function inspectGgufPart(path: string): Promise<Result<GgufPartSummary>> {
  return withReader(path, async (r) => {
    const { metadata, tensors } = await readLayout(r);
    const splitNo = metaNumber({ metadata }, 'split.no');
    return {
      path,
      fileSize: r.fileSize,
      tensorCount: tensors.length,
      parameterCount: parameterCount(tensors),
      splitNo: splitNo === undefined ? null : splitNo,
      splitCount: splitCountOf({ metadata }),
    };
  });
}

/** Opens `path` as a file worth reading and runs `read` over it; every failure becomes a Result. */
async function withReader<T>(path: string, read: (r: Reader) => Promise<T>): Promise<Result<T>> {
  let size: number;
  try {
    const info = await stat(path);
    if (info.isDirectory()) return err('MODEL_INVALID', `${path} is a directory, not a model file.`, 'Choose a .gguf file.');
    if (!info.isFile()) return err('MODEL_INVALID', `${path} is not a regular file.`, 'Choose a .gguf file.');
    size = info.size;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return err('NOT_FOUND', `There is no file at ${path}.`);
    return err('MODEL_INVALID', `${path} cannot be read: ${errorText(error)}`);
  }
  if (size === 0) return err('MODEL_INVALID', `${path} is empty (0 bytes): it is not a GGUF model.`, 'If it was being downloaded, download it again.');
  if (size < 24) return err('MODEL_INVALID', `${path} is only ${size} bytes long: it is not a GGUF model.`);

  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    return err('MODEL_INVALID', `${path} cannot be opened: ${errorText(error)}`);
  }
  try {
    return ok(await read(new Reader(handle, size)));
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, error: invalid(error) };
    return err('MODEL_INVALID', `${path} cannot be read as a GGUF model: ${errorText(error)}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function invalid(error: Invalid): HearthError {
  return error.hint === undefined ? { code: 'MODEL_INVALID', message: error.message } : { code: 'MODEL_INVALID', message: error.message, hint: error.hint };
}
