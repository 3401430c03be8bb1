/**
 * What a download request resolves to before it is queued: the files to write (checked names in
 * the models folder), where each comes from, its size and SHA-256 when the Hub lists them, and
 * for a Hub file the commit every part is fetched from, so a resumed download never mixes two.
 */
import path from 'node:path';
import { err, hubFileUri, hubRepoIdSchema, ok, type HubFile, type HubRepo, type Result } from '../../contract/index.ts';
import { addressParts, labelOf, modelFilePath } from './names.ts';
import type { HubClient } from '../hub/client.ts';
import type { PartRecord } from './store.ts';

/** What the queue needs of the Hugging Face client: files resolved, their addresses, the token's header. */
export type HubAccess = Pick<HubClient, 'resolveUri' | 'repo' | 'fileUrl' | 'authHeaders'>;

/** What `start` resolved a request to, before it becomes a row. */
export interface Plan {
  readonly uri: string;
  readonly repo: string | null;
  readonly revision: string | null;
  readonly name: string;
  readonly parts: PartRecord[];
  readonly totalBytes: number;
}

/** A file of a Hub repository (`fileId` is a HubFile.id), at the repository's current commit. */
export async function planHubFile(hub: HubAccess, repoId: string, fileId: string, dir: string): Promise<Result<Plan>> {
  const id = hubRepoIdSchema.safeParse(repoId);
  if (!id.success) return err('INVALID_INPUT', `"${repoId.slice(0, 200)}" is not a Hugging Face repository id (owner/name).`);
  const repo = await hub.repo(id.data);
  if (!repo.ok) return repo;
  const file = repo.value.files.find((candidate) => candidate.id === fileId);
  if (!file) return err('NOT_FOUND', `${repo.value.id} has no model file ${fileId} (at commit ${repo.value.revision.slice(0, 12)}).`, 'Open the repository again: its files may have changed.');
  return planFromHub(repo.value, file, dir);
}

/** An address: `hf:owner/repo:QUANT`, `hf:owner/repo/path.gguf`, or https (split models by their first part). */
export async function planUri(hub: HubAccess, uri: string, dir: string): Promise<Result<Plan>> {
  const trimmed = uri.trim();
  if (trimmed.toLowerCase().startsWith('hf:')) {
    const resolved = await hub.resolveUri(trimmed);
    if (!resolved.ok) return resolved;
    return planFromHub(resolved.value.repo, resolved.value.file, dir);
  }
  const parts = addressParts(trimmed);
  if (!parts.ok) return parts;
  const records: PartRecord[] = [];
  for (const part of parts.value) {
    const file = modelFilePath(dir, part.name);
    if (!file.ok) return file;
    records.push({ remote: part.url, file: file.value, size: null, sha256: null, validator: null, verified: false });
  }
  const first = parts.value[0] as { url: string; name: string };
  return ok({ uri: first.url, repo: null, revision: null, name: labelOf(first.name), parts: records, totalBytes: 0 });
}

/** The parts of a Hub file, pinned to the repository's commit, with their LFS hashes. */
function planFromHub(repo: HubRepo, file: HubFile, dir: string): Result<Plan> {
  if (file.paths.length === 0) return err('INVALID_INPUT', `${repo.id}: ${file.id} lists no files.`);
  if (!repo.revision) return err('NETWORK_ERROR', `Hugging Face did not say which commit of ${repo.id} to download.`, 'Try again.');
  const parts: PartRecord[] = [];
  for (const [index, remote] of file.paths.entries()) {
    if (remote.startsWith('/') || remote.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
      return err('INVALID_INPUT', `${repo.id} lists a file at "${remote.slice(0, 200)}", which is not a plain path.`);
    }
    const target = modelFilePath(dir, path.posix.basename(remote));
    if (!target.ok) return target;
    const sha = file.sha256[index] ?? null;
    parts.push({
      remote,
      file: target.value,
      // One part: the Hub's size is its size. Several: each part's size comes with its answer.
      size: file.paths.length === 1 && file.sizeBytes > 0 ? file.sizeBytes : null,
      sha256: sha !== null && /^[0-9a-f]{64}$/.test(sha.toLowerCase()) ? sha.toLowerCase() : null,
      validator: null,
      verified: false,
    });
  }
  return ok({ uri: hubFileUri(repo.id, file.id), repo: repo.id, revision: repo.revision, name: file.name, parts, totalBytes: file.sizeBytes });
}
