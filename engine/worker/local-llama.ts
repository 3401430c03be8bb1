/**
 * Loads llama.cpp from an engine built for this computer (engine/host/local-engine/ builds it into
 * `<dataDir>/engines/<release>-<hash>/`). node-llama-cpp has no public API to load its addon
 * from another folder: its `getLlama` looks only in its own package (prebuilt binaries) and in
 * `llama/localBuilds` inside it, which a packaged app cannot write. `Llama._create` is the
 * internal step `getLlama` itself ends with for a local build, and this module is the only
 * place Hearth calls it (docs/decisions/local-engine-build.md: node-llama-cpp is pinned exactly,
 * and a version without `_create` fails here with a clear error, so the engine falls back to
 * the prebuilt binaries).
 *
 * A failure before the addon's native code is loaded leaves the process clean, so the caller
 * may load the prebuilt binaries in the same process; after it (`LocalLlamaError.loaded`), the
 * build's libraries are mapped in and share file names with the prebuilt ones (libggml-base,
 * libllama-common), so the caller must not: the host restarts the engine without the build.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { getModuleVersion, Llama, type LlamaLogLevel } from 'node-llama-cpp';

export interface LocalLlamaOptions {
  readonly logLevel: LlamaLogLevel;
  readonly logger: (level: LlamaLogLevel, message: string) => void;
}

/** Why a local build did not load; `loaded`: its native code was already in the process. */
export class LocalLlamaError extends Error {
  readonly loaded: boolean;

  constructor(message: string, loaded: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LocalLlamaError';
    this.loaded = loaded;
  }
}

/** What the worker reads of the host's manifest (engine/host/local-engine/manifest.ts writes it). */
interface BuildManifest {
  readonly format: number;
  readonly nodeLlamaCpp: string;
  readonly release: string;
  readonly binding: string;
}

/** The manifest format this module reads. */
const MANIFEST_FORMAT = 1;
/** node-llama-cpp's name for a binary's build metadata, beside the binary. */
const NLC_METADATA_FILE = '_nlcBuildMetadata.json';

/**
 * node-llama-cpp's default memory paddings (getLlama.js `defaultLlamaVramPadding` and
 * `defaultLlamaRamPadding`, not exported): `getLlama` passes them to `_create`, so a local build
 * plans memory as the prebuilt one does.
 */
const vramPadding = (totalVram: number): number => Math.floor(Math.min(totalVram * 0.08, 1.6 * 1024 ** 3));
const ramPadding = (totalRam: number): number => Math.floor(Math.min(totalRam * 0.25, os.platform() === 'linux' ? 1024 ** 3 : 6 * 1024 ** 3));

/** The part of `Llama._create`'s options this module passes (node-llama-cpp 3.21.1). */
interface CreateOptions {
  readonly bindings: unknown;
  readonly bindingPath: string;
  readonly buildType: 'localBuild';
  readonly buildMetadata: unknown;
  readonly logLevel: LlamaLogLevel;
  readonly logger: (level: LlamaLogLevel, message: string) => void;
  readonly vramPadding: (total: number) => number;
  readonly ramPadding: (total: number) => number;
  readonly debug: boolean;
  readonly numa: false;
  readonly tempDir: false;
  readonly skipLlamaInit: false;
}

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (error) {
    throw new LocalLlamaError(`${what} cannot be read (${file}): ${error instanceof Error ? error.message : String(error)}`, false);
  }
}

function readManifest(buildDir: string): BuildManifest {
  const file = path.join(buildDir, 'manifest.json');
  if (!existsSync(file)) throw new LocalLlamaError(`${buildDir} holds no finished build (no manifest.json)`, false);
  const value = readJson(file, 'The build\'s manifest') as Partial<BuildManifest> | null;
  if (value?.format !== MANIFEST_FORMAT || typeof value.nodeLlamaCpp !== 'string' || typeof value.binding !== 'string' || typeof value.release !== 'string') {
    throw new LocalLlamaError(`The build's manifest in ${buildDir} is not one this version of Hearth reads`, false);
  }
  return value as BuildManifest;
}

/** The functions of the addon that `Llama`'s constructor calls first: a binding without them is not node-llama-cpp's. */
const BINDING_FUNCTIONS = ['markLoaded', 'setLogger', 'setLoggerLogLevel', 'loadBackends', 'getGpuType', 'ensureGpuDeviceIsSupported'];

/**
 * llama.cpp from the finished build in `buildDir`, initialized like `getLlama`'s. Throws
 * `LocalLlamaError` with the reason when the build is not usable here.
 */
export async function loadLocalLlama(buildDir: string, options: LocalLlamaOptions): Promise<Llama> {
  const manifest = readManifest(buildDir);
  const installed = await getModuleVersion();
  if (manifest.nodeLlamaCpp !== installed) {
    throw new LocalLlamaError(`The build is of node-llama-cpp ${manifest.nodeLlamaCpp}'s addon, and ${installed} is installed: it must be built again`, false);
  }
  const create = (Llama as unknown as { _create?: unknown })._create;
  if (typeof create !== 'function') {
    throw new LocalLlamaError(`node-llama-cpp ${installed} has no Llama._create, the internal step Hearth loads a build for this computer through`, false);
  }
  const bindingPath = path.join(buildDir, manifest.binding);
  if (!existsSync(bindingPath)) throw new LocalLlamaError(`The build's addon is missing (${bindingPath})`, false);
  const buildMetadata = readJson(path.join(buildDir, NLC_METADATA_FILE), 'The build\'s node-llama-cpp metadata');
  let bindings: Record<string, unknown>;
  try {
    // A failed dlopen maps nothing in: the process stays clean.
    bindings = createRequire(import.meta.url)(bindingPath) as Record<string, unknown>;
  } catch (error) {
    throw new LocalLlamaError(`The build's addon did not load: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
  }
  const lacking = BINDING_FUNCTIONS.filter((name) => typeof bindings[name] !== 'function');
  if (lacking.length > 0) throw new LocalLlamaError(`The build's addon is not node-llama-cpp's (it lacks ${lacking.join(', ')})`, true);
  const createOptions: CreateOptions = {
    bindings,
    bindingPath,
    buildType: 'localBuild',
    buildMetadata,
    logLevel: options.logLevel,
    logger: options.logger,
    vramPadding,
    ramPadding,
    debug: false,
    numa: false,
    tempDir: false,
    skipLlamaInit: false,
  };
  try {
    const llama = (await (create as (options: CreateOptions) => Promise<unknown>).call(Llama, createOptions)) as Llama;
    if (!(llama instanceof Llama)) throw new Error('Llama._create did not answer a Llama');
    return llama;
  } catch (error) {
    throw new LocalLlamaError(`llama.cpp from the build did not initialize: ${error instanceof Error ? error.message : String(error)}`, true, { cause: error });
  }
}
