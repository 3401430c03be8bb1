/**
 * Models Ollama downloaded. Ollama keeps them content-addressed (its server/images.go and
 * manifest code; the layout is stable since 2023):
 *
 *     <models>/manifests/<registry>/<namespace>/<name>/<tag>   a JSON image manifest
 *     <models>/blobs/sha256-<64 hex>                           each layer's bytes
 *
 * The manifest's layer of media type `application/vnd.ollama.image.model` is the GGUF, named by
 * its digest `sha256:<hex>`. The digest comes from a file on disk, so it is checked strictly
 * before it becomes part of a path, and the blob must start with the GGUF magic (old Ollama
 * models are GGML, which llama.cpp no longer reads). Tags that share a blob are one model.
 */
import path from 'node:path';
import { readSmallText, startsWithGgufMagic } from './files.ts';
import { describeFile, walkFiles, type WalkedFile } from './walk.ts';

const MODEL_MEDIA_TYPE = 'application/vnd.ollama.image.model';
const DEFAULT_REGISTRY = 'registry.ollama.ai';
const DEFAULT_NAMESPACE = 'library';
const digestPattern = /^sha256:([0-9a-f]{64})$/;
/** Manifests are a few hundred bytes; a larger file is not one. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

/** One Ollama model: its blob and every name that points at it. */
export interface OllamaModel {
  readonly blob: WalkedFile;
  /** `name:tag` as `ollama list` shows it, sorted. */
  readonly names: readonly string[];
}

/** The name `ollama list` shows: the registry and namespace only when they are not the defaults. */
export function ollamaName(registry: string, namespace: string, name: string, tag: string): string {
  if (registry !== DEFAULT_REGISTRY) return `${registry}/${namespace}/${name}:${tag}`;
  if (namespace !== DEFAULT_NAMESPACE) return `${namespace}/${name}:${tag}`;
  return `${name}:${tag}`;
}

/** The blob file a manifest's model layer names; undefined when there is none or its digest is malformed. */
export function modelBlobName(manifest: unknown): string | undefined {
  if (typeof manifest !== 'object' || manifest === null) return undefined;
  const layers = (manifest as Record<string, unknown>)['layers'];
  if (!Array.isArray(layers)) return undefined;
  for (const layer of layers as unknown[]) {
    if (typeof layer !== 'object' || layer === null) continue;
    const { mediaType, digest } = layer as Record<string, unknown>;
    if (mediaType !== MODEL_MEDIA_TYPE || typeof digest !== 'string') continue;
    const hex = digestPattern.exec(digest)?.[1];
    return hex === undefined ? undefined : `sha256-${hex}`;
  }
  return undefined;
}

/** Every GGUF model under an Ollama models folder; nothing when it is missing or unreadable. */
export async function scanOllama(dir: string): Promise<OllamaModel[]> {
  const manifests = await walkFiles(path.join(dir, 'manifests'), { maxDepth: 3, accept: () => true });
  const byBlob = new Map<string, { blob: WalkedFile; names: string[] }>();
  for (const manifest of manifests) {
    if (manifest.dirs.length !== 3) continue;
    const [registry, namespace, name] = manifest.dirs as [string, string, string];
    const blobName = modelBlobName(await readJson(manifest.realPath));
    if (blobName === undefined) continue;
    let entry = byBlob.get(blobName);
    if (!entry) {
      const blobPath = path.join(dir, 'blobs', blobName);
      const blob = await describeFile(blobPath);
      if (!blob || !(await startsWithGgufMagic(blob.realPath))) continue;
      entry = { blob, names: [] };
      byBlob.set(blobName, entry);
    }
    entry.names.push(ollamaName(registry, namespace, name, manifest.name));
  }
  return [...byBlob.values()].map(({ blob, names }) => ({ blob, names: names.sort((a, b) => a.localeCompare(b)) }));
}

async function readJson(file: string): Promise<unknown> {
  const text = await readSmallText(file, MAX_MANIFEST_BYTES);
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}
