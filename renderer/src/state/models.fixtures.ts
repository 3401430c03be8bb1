/** Test data builders for the Models screens' tests: local models, the library, Hub repositories, verdicts and downloads. */
import type { DeviceMemory, DownloadItem, FileFit, HubFile, HubRepo, LocalModel, ModelLibrary, RecommendedModel, RepoFit } from '../contract.ts';

export function localModel(fileName: string, extra: Partial<LocalModel> = {}): LocalModel {
  return {
    path: `/d/models/${fileName}`,
    fileName,
    sizeBytes: 4_920_000_000,
    modifiedAt: 1,
    displayName: fileName.replace(/\.gguf$/, ''),
    source: 'hearth',
    parts: 1,
    quantization: 'Q4_K_M',
    architecture: 'llama',
    parameterCount: 8_030_000_000,
    trainedContextLength: 131_072,
    ...extra,
  };
}

export function library(models: readonly LocalModel[] = [], extra: Partial<ModelLibrary> = {}): ModelLibrary {
  return {
    models,
    modelsDir: '/d/models',
    totalBytes: models.reduce((sum, m) => sum + m.sizeBytes, 0),
    freeBytes: 200e9,
    folders: [
      { source: 'hearth', dir: '/d/models', exists: true, models: models.filter((m) => m.source === 'hearth').length },
      { source: 'ollama', dir: '/home/u/.ollama/models', exists: false, models: 0 },
    ],
    ...extra,
  };
}

export function hubFile(name: string, quantization: string | null, sizeBytes: number, parts = 1): HubFile {
  const paths = parts === 1 ? [`${name}.gguf`] : Array.from({ length: parts }, (_, i) => `${name}-0000${i + 1}-of-0000${parts}.gguf`);
  return { id: paths[0] ?? name, paths, name, quantization, sizeBytes, sha256: paths.map(() => null) };
}

export function hubRepo(id: string, files: readonly HubFile[], extra: Partial<HubRepo> = {}): HubRepo {
  return { id, downloads: 12_345, likes: 67, lastModified: 0, license: 'apache-2.0', gated: false, private: false, revision: 'abc123', files, ...extra };
}

export const gpuDevice: DeviceMemory = {
  backend: 'cuda',
  gpuName: 'NVIDIA GeForce RTX 4090',
  vramTotalBytes: 24 * 1024 ** 3,
  vramFreeBytes: 22 * 1024 ** 3,
  unifiedMemory: false,
  ramTotalBytes: 64 * 1024 ** 3,
  ramFreeBytes: 40 * 1024 ** 3,
};

export function fileFit(verdict: FileFit['verdict'], extra: Partial<FileFit> = {}): FileFit {
  return {
    verdict,
    weightsBytes: 4e9,
    contexts: [
      { kvType: 'f16', maxContext: 32_768 },
      { kvType: 'q8_0', maxContext: 61_440 },
      { kvType: 'q4_0', maxContext: 0, refused: 'the head size 80 is not supported' },
    ],
    chosen: 'f16',
    trainedContextLength: 131_072,
    ...extra,
  };
}

export function repoFit(files: Readonly<Record<string, FileFit>>, device: DeviceMemory = gpuDevice): RepoFit {
  return { device, files: Object.fromEntries(Object.entries(files).map(([id, fit]) => [id, { fit }])) };
}

export function download(id: string, extra: Partial<DownloadItem> = {}): DownloadItem {
  return {
    id,
    uri: 'hf:org/model-GGUF/model-Q4_K_M.gguf',
    repo: 'org/model-GGUF',
    name: 'model-Q4_K_M',
    path: '/d/models/model-Q4_K_M.gguf',
    status: 'downloading',
    downloadedBytes: 1_000_000_000,
    totalBytes: 4_000_000_000,
    bytesPerSecond: 25_000_000,
    etaSeconds: 120,
    createdAt: 1,
    ...extra,
  };
}

export function recommended(id: string, repo: string, approxSizeBytes: number, quantization = 'Q4_K_M'): RecommendedModel {
  return { id, name: `Model ${id}`, repo, quantization, approxSizeBytes, description: `What ${id} is good for.` };
}
