/**
 * The `hub.*` calls: Hugging Face search and repositories through the hub client, the token
 * (kept in the host's secret store, never sent to the renderer), and fit verdicts for every file
 * of a repository, which the engine computes from GGUF headers fetched over HTTP.
 */
import { err, ok, type FileFit, type HearthError, type HubAuthState, type HubFile, type HubRepo, type HubRepoSummary, type HubSort, type RepoFit, type Result } from '../contract/index.ts';
import { isAllowedAddress } from './downloads/names.ts';
import type { HubClient } from './hub/client.ts';
import type { SecretStore } from './secrets.ts';
import type { Supervisor } from './supervisor.ts';

/**
 * The Hub's address as configured (HearthOptions.hubEndpoint, HEARTH_HF_ENDPOINT): https, or plain
 * http only to this machine (the tests' emulator, a local mirror), since the token travels with
 * every request to it.
 */
export function checkHubEndpoint(value: string): Result<string> {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return err('INVALID_INPUT', `The Hugging Face address "${value.slice(0, 200)}" is not a URL.`, 'Set HEARTH_HF_ENDPOINT to an https:// address, or unset it.');
  }
  if (!isAllowedAddress(url)) {
    return err('INVALID_INPUT', `The Hugging Face address ${url.origin} is not https: the token would travel in the clear.`, 'Set HEARTH_HF_ENDPOINT to an https:// address, or unset it.');
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    return err('INVALID_INPUT', 'The Hugging Face address may not carry credentials, a query or a fragment.', 'Set HEARTH_HF_ENDPOINT to the mirror’s base address.');
  }
  return ok(url.href.replace(/\/+$/, ''));
}

/** The secret's name in the store. */
export const HUB_TOKEN_SECRET = 'hf-token';

/** A header comes over the network, then the planner runs a few dozen estimates per file. */
const FIT_TIMEOUT_MS = 90_000;

export interface HubServiceDeps {
  readonly hub: Pick<HubClient, 'search' | 'repo' | 'fileUrl' | 'authHeaders' | 'endpoint'>;
  readonly secrets: SecretStore;
  readonly engine: Pick<Supervisor, 'request'>;
}

/**
 * The files of a repository that are one model in several quantizations: their names without the
 * quantization are equal (`Llama-3.2-1B-Instruct-Q4_K_M` and `…-Q8_0`). Most repositories hold
 * one model; a few hold several sizes, which must not share a header.
 */
function modelGroups(files: readonly HubFile[]): HubFile[][] {
  const groups = new Map<string, HubFile[]>();
  for (const file of files) {
    const base = file.name.split('/').at(-1) ?? file.name;
    const stem = (file.quantization ? base.replace(new RegExp(escapeRegExp(file.quantization), 'i'), '') : base).toLowerCase();
    const group = groups.get(stem);
    if (group) group.push(file);
    else groups.set(stem, [file]);
  }
  return [...groups.values()];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class HubService {
  readonly #deps: HubServiceDeps;

  constructor(deps: HubServiceDeps) {
    this.#deps = deps;
  }

  search(input: { query: string; sort: HubSort; limit?: number | undefined }): Promise<Result<HubRepoSummary[]>> {
    return this.#deps.hub.search(input.limit === undefined ? { query: input.query, sort: input.sort } : { query: input.query, sort: input.sort, limit: input.limit });
  }

  repo(id: string): Promise<Result<HubRepo>> {
    return this.#deps.hub.repo(id);
  }

  auth(): HubAuthState {
    return { hasToken: this.#deps.secrets.read(HUB_TOKEN_SECRET) !== null, endpoint: this.#deps.hub.endpoint };
  }

  setToken(token: string | null): HubAuthState {
    if (token === null) this.#deps.secrets.remove(HUB_TOKEN_SECRET);
    else this.#deps.secrets.write(HUB_TOKEN_SECRET, token);
    return this.auth();
  }

  /**
   * A verdict for every file. Each model of the repository has its header read once (its
   * smallest file's: every quantization of a model shares the header but for tensor types), and
   * the engine judges every file of it with that file's own weights. A model whose header fails
   * gives its files that error; the call fails only when every one failed.
   */
  async fit(repoId: string): Promise<Result<RepoFit>> {
    const repo = await this.#deps.hub.repo(repoId);
    if (!repo.ok) return repo;
    if (repo.value.files.length === 0) return err('NOT_FOUND', `${repoId} has no GGUF model files.`);
    const headers = await this.#deps.hub.authHeaders();
    const files: Record<string, { fit: FileFit } | { error: HearthError }> = {};
    let device: RepoFit['device'] | null = null;
    let firstError: HearthError | null = null;
    for (const group of modelGroups(repo.value.files)) {
      const source = group.reduce((a, b) => (b.sizeBytes < a.sizeBytes ? b : a));
      const result = await this.#deps.engine.request(
        'fitRemote',
        {
          url: this.#deps.hub.fileUrl(repo.value.id, repo.value.revision, source.paths[0]!),
          headers,
          sizeBytes: source.sizeBytes,
          files: group.map((file) => ({ id: file.id, sizeBytes: file.sizeBytes })),
        },
        { timeoutMs: FIT_TIMEOUT_MS },
      );
      if (result.ok) {
        device = result.value.device;
        for (const file of group) {
          const fit = result.value.fits[file.id];
          files[file.id] = fit ? { fit } : { error: { code: 'INTERNAL', message: `The engine gave no verdict for ${file.name}.` } };
        }
      } else {
        firstError ??= result.error;
        for (const file of group) files[file.id] = { error: result.error };
      }
    }
    if (device === null) return { ok: false, error: firstError ?? { code: 'INTERNAL', message: 'No verdict could be computed.' } };
    return ok({ device, files });
  }
}
