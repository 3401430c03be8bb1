/**
 * Models as the contract carries them: the library of local files (Hearth's own folder and what
 * other apps downloaded), Hugging Face search and repositories, fit verdicts, and the download
 * queue. Readonly JSON, as in types.ts; sizes are bytes and times epoch milliseconds.
 */
import type { HearthError } from './errors.ts';
import type { DeviceMemory } from './kv-types.ts';

/** Where a local model was found: Hearth's models folder, or another app's. */
export type ModelSource = 'hearth' | 'lmstudio' | 'ollama' | 'jan' | 'gpt4all';

export const modelSources: readonly ModelSource[] = ['hearth', 'lmstudio', 'ollama', 'jan', 'gpt4all'];

/** What the library shows for a source's name. */
export const modelSourceNames: Readonly<Record<ModelSource, string>> = {
  hearth: 'Hearth',
  lmstudio: 'LM Studio',
  ollama: 'Ollama',
  jan: 'Jan',
  gpt4all: 'GPT4All',
};

/** One model file on disk (a multi-part model is one entry, its first part's path). */
export interface LocalModel {
  /** Absolute path of the file to load (the first part of a multi-part model). */
  readonly path: string;
  /** The file's name, with its extension (an Ollama blob's name is its digest). */
  readonly fileName: string;
  /** Every part's bytes together. */
  readonly sizeBytes: number;
  /** The file's modification time (the list is newest first). */
  readonly modifiedAt: number;
  /** A name for people: the GGUF's `general.name`, an Ollama `name:tag`, else the file name. */
  readonly displayName: string;
  /** Where it was found; only `hearth` models can be deleted by Hearth. */
  readonly source: ModelSource;
  /** Parts of a split GGUF (1 for a single file). */
  readonly parts: number;
  /** The weights' quantization (`Q4_K_M`, `F16`…), from the header's `general.file_type`; null when unknown. */
  readonly quantization: string | null;
  /** `general.architecture` (`llama`, `qwen2`…); null when the header could not be read. */
  readonly architecture: string | null;
  /** Parameters, from the tensors' shapes; null when unknown. */
  readonly parameterCount: number | null;
  /** The context length it was trained for; null when the header does not say. */
  readonly trainedContextLength: number | null;
  /** Why the header could not be read: the file is listed but cannot be loaded. */
  readonly problem?: string;
}

/** A folder the library looked in, and what it found there. */
export interface ModelFolder {
  readonly source: ModelSource;
  /** Absolute path. */
  readonly dir: string;
  /** Whether the folder exists. */
  readonly exists: boolean;
  /** Models found in it. */
  readonly models: number;
}

/** `models.list`: every local model, Hearth's and other apps', with the folders searched. */
export interface ModelLibrary {
  /** Newest first. */
  readonly models: readonly LocalModel[];
  /** Hearth's models folder (Settings.modelsDir, or the default under the data folder). */
  readonly modelsDir: string;
  /** Bytes of every listed model together (a file listed twice counts once). */
  readonly totalBytes: number;
  /** Free bytes on the models folder's disk. */
  readonly freeBytes: number;
  readonly folders: readonly ModelFolder[];
}

/** The KV a model left in the disk store, for "delete the model and its KV". */
export interface ModelKvUsage {
  /** Stored conversations (branches) computed with this model. */
  readonly conversations: number;
  /** Their bytes on disk. */
  readonly bytes: number;
}

/**
 * A Hugging Face repository id, `owner/name`, as the Hub allows them: nothing path-like (`..`, a
 * third segment, separators). Plain TypeScript, so the renderer checks typed addresses with the
 * same rule the contract's schema applies (api.ts hubRepoIdSchema).
 */
export function isHubRepoId(id: string): boolean {
  return id.length <= 200 && /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(id) && !id.split('/').some((part) => part === '.' || part.includes('..'));
}

/** Hugging Face search order. */
export type HubSort = 'downloads' | 'recent' | 'likes';

/** A repository in search results. */
export interface HubRepoSummary {
  /** `owner/name`. */
  readonly id: string;
  readonly downloads: number;
  readonly likes: number;
  /** Last change; null when the Hub does not say. */
  readonly lastModified: number | null;
  /** The licence id (`apache-2.0`, `llama3.1`…); null when none is declared. */
  readonly license: string | null;
  /** Access needs approval on the Hub (`auto` or `manual`); false when open. */
  readonly gated: false | 'auto' | 'manual';
  /** Private repositories are visible only with a token that may read them. */
  readonly private: boolean;
}

/** One downloadable model in a repository: a single GGUF, or the parts of a split one. */
export interface HubFile {
  /** Stable within the repository: the first part's path. */
  readonly id: string;
  /** The paths in the repository, in part order (one for a single file). */
  readonly paths: readonly string[];
  /** A label for the list: the file name without the part suffix. */
  readonly name: string;
  /** The quantization named in the file name (`Q4_K_M`, `IQ3_XS`, `F16`…); null when none is. */
  readonly quantization: string | null;
  /** Every part's bytes together. */
  readonly sizeBytes: number;
  /** Per part, the LFS SHA-256 the Hub gives (lowercase hex); null where it gives none. */
  readonly sha256: readonly (string | null)[];
}

/** A repository's page: its summary and its GGUF files, grouped by quantization. */
export interface HubRepo extends HubRepoSummary {
  /** The commit the file list belongs to; downloads fetch that commit. */
  readonly revision: string;
  /** Model files, smallest first (projector and imatrix files are left out). */
  readonly files: readonly HubFile[];
}

/** The address a Hub file downloads from, as DownloadItem.uri names it: `hf:owner/name/<HubFile.id>`. */
export function hubFileUri(repo: string, fileId: string): string {
  return `hf:${repo}/${fileId}`;
}

/** Where a model would run on this machine. */
export type FitVerdict = 'gpu' | 'partial' | 'ram' | 'too-large';

/** The KV types a verdict reports a context for (K and V of one type). */
export type FitKvType = 'f16' | 'q8_0' | 'q4_0';

export const fitKvTypes: readonly FitKvType[] = ['f16', 'q8_0', 'q4_0'];

/** One KV type's longest context for a file. */
export interface FitContext {
  readonly kvType: FitKvType;
  /** Longest context (one slot, tokens) where the verdict says it runs (for `too-large`: with the layers that do not fit the GPU in RAM, under FIT_MIN_CONTEXT); 0 when none does. */
  readonly maxContext: number;
  /** Why this type cannot run here (backend kernels, head size); absent when it can. */
  readonly refused?: string;
}

/** The planner's verdict for one file, computed from the header alone. */
export interface FileFit {
  readonly verdict: FitVerdict;
  /** The weights' bytes the verdict counted. */
  readonly weightsBytes: number;
  /** f16, q8_0, q4_0, in that order. */
  readonly contexts: readonly FitContext[];
  /** The type Hearth would choose: the best quality with at least `FIT_MIN_CONTEXT` tokens; null when none has. */
  readonly chosen: FitKvType | null;
  /** The model's trained context; 0 when the header does not say. */
  readonly trainedContextLength: number;
}

/** The context a verdict asks for at least: a model that fits only a shorter one is "too large". */
export const FIT_MIN_CONTEXT = 4096;

/** `hub.fit`: a verdict per file of a repository (by HubFile.id). */
export interface RepoFit {
  /** What the verdicts were computed for: this machine's memory (totals, not what is free now). */
  readonly device: DeviceMemory;
  /** By HubFile.id; a file whose header could not be read has an error instead. */
  readonly files: Readonly<Record<string, { readonly fit: FileFit } | { readonly error: HearthError }>>;
}

/** A download's state in the queue. */
export type DownloadStatus = 'queued' | 'downloading' | 'verifying' | 'paused' | 'done' | 'error' | 'cancelled';

/** One entry of the download queue; every change arrives as a `download.progress` event. */
export interface DownloadItem {
  /** Opaque (`idSchema`). */
  readonly id: string;
  /** What is downloaded: a Hub file's `hubFileUri` (whatever address started it), or an https URL. */
  readonly uri: string;
  /** `owner/name` for a Hugging Face download. */
  readonly repo?: string;
  /** A label: the file name without the part suffix. */
  readonly name: string;
  /** The model's path once downloaded (the first part). */
  readonly path: string;
  readonly status: DownloadStatus;
  readonly downloadedBytes: number;
  /** Every part's bytes; 0 until known. */
  readonly totalBytes: number;
  /** Averaged over the last seconds; 0 when not downloading. */
  readonly bytesPerSecond: number;
  /** Seconds left at that speed; null when unknown. */
  readonly etaSeconds: number | null;
  /** Why it stopped (`error`, or `paused` by a full disk); absent otherwise. */
  readonly error?: HearthError;
  readonly createdAt: number;
}

/** The Hugging Face token's state (the token itself never crosses the contract). */
export interface HubAuthState {
  /** A token is stored. */
  readonly hasToken: boolean;
  /** The Hub's address (https://huggingface.co unless overridden). */
  readonly endpoint: string;
}
