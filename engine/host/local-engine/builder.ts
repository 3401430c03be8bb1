/**
 * Builds node-llama-cpp's addon and llama.cpp for this computer with CMake directly, from the
 * files node-llama-cpp ships (source.ts), into `<root>/<name>/`. node-llama-cpp's own
 * `source build` cannot be used: it writes into its package folder, which a packaged app cannot
 * write, and cmake-js would fetch Node's headers from the network. Here the addon project is
 * copied into a work folder beside the build, llama.cpp is checked out of the bundle into it (with
 * node-llama-cpp's patches), and the Node-API headers come from the node-api-headers and
 * node-addon-api packages.
 *
 * Layout: `.work-<name>/` (the project copy and CMake's build folder; kept after a cancel so a
 * retry goes on where it stopped, removed after a failure or success), `.staging-<name>/` (the
 * libraries, the metadata node-llama-cpp reads, and the manifest, written last), renamed to
 * `<name>/` in one step, so a folder with that name is always a finished build.
 */
import { cp, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BuildConfig } from './config.ts';
import { folderBytes, MANIFEST_FILE, MANIFEST_FORMAT, writeJsonAtomic, type EngineManifest } from './manifest.ts';
import { OutputTail, parseBuildStep } from './progress.ts';
import type { CommandRunner, RunEnd } from './runner.ts';
import type { LlamaSource } from './source.ts';
import type { FoundTools } from './tools.ts';

/** Lines of output kept for a failure's message. */
export const TAIL_LINES = 40;
/** node-llama-cpp reads a binary's build options from this file beside it. */
export const NLC_METADATA_FILE = '_nlcBuildMetadata.json';
/** The addon's file name (node-llama-cpp's CMakeLists.txt). */
export const BINDING_FILE = 'llama-addon.node';

/** The files of node-llama-cpp's `llama/` folder the CMake project needs (not the bundle, not its own build folders). */
const PROJECT_FILES = ['CMakeLists.txt', 'addon', 'cmake', 'profiles', 'toolchains', 'package.json'];
/** What the build produces that the engine loads: the addon and the shared libraries beside it. */
const LIBRARY = /(\.node|\.so(\.\d+)*|\.dylib|\.metallib)$/;

/** The build's CPU priority: the app stays responsive while every core compiles. */
const BUILD_NICE = 10;
/** Each stage's share of the progress bar: compiling is nearly all of the time. */
const STAGES = { checkout: [0, 0.03], configure: [0.03, 0.06], compile: [0.06, 0.98], finish: [0.98, 1] } as const;
type Stage = keyof typeof STAGES;

const STAGE_WORDS: Readonly<Record<Stage, string>> = {
  checkout: 'Checking out llama.cpp',
  configure: 'Configuring',
  compile: 'Compiling',
  finish: 'Finishing',
};

export interface BuildProgress {
  /** 0..1 over the whole build. */
  readonly fraction: number;
  /** What it is doing, in words ("Compiling (120 of 310)"). */
  readonly step: string;
}

export interface BuildRequest {
  readonly source: LlamaSource;
  readonly tools: FoundTools;
  readonly config: BuildConfig;
  /** `<dataDir>/engines`. */
  readonly root: string;
  readonly runner: CommandRunner;
  readonly signal: AbortSignal;
  readonly onProgress: (progress: BuildProgress) => void;
  /** Every output line, for the build log. */
  readonly onOutput?: (line: string) => void;
  /** Parallel compile jobs; default the CPUs available. */
  readonly jobs?: number;
  readonly platform?: NodeJS.Platform;
  readonly arch?: string;
  readonly now?: () => number;
}

/** The build stopped because it was cancelled. */
export class BuildCancelled extends Error {
  constructor() {
    super('The build was cancelled.');
    this.name = 'BuildCancelled';
  }
}

/** A step of the build failed: `tail` is the end of its output. */
export class BuildFailed extends Error {
  readonly tail: string;

  constructor(message: string, tail: string) {
    super(tail === '' ? message : `${message}. Its last lines:\n${tail}`);
    this.name = 'BuildFailed';
    this.tail = tail;
  }
}

/** The folders a build of `config` uses under `root`. */
export function buildPaths(root: string, config: BuildConfig): { work: string; project: string; llamaCpp: string; cmakeBuild: string; staging: string; final: string } {
  const work = path.join(root, `.work-${config.name}`);
  const project = path.join(work, 'project');
  return { work, project, llamaCpp: path.join(project, 'llama.cpp'), cmakeBuild: path.join(work, 'build'), staging: path.join(root, `.staging-${config.name}`), final: path.join(root, config.name) };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Platform flags cmake-js would add for a Node-API addon. */
function platformFlags(platform: NodeJS.Platform, arch: string): string[] {
  const cxx = ['-DBUILDING_NODE_EXTENSION'];
  const flags: string[] = [];
  if (platform === 'darwin') {
    cxx.push('-D_DARWIN_USE_64_BIT_INODE=1', '-D_LARGEFILE_SOURCE', '-D_FILE_OFFSET_BITS=64');
    // Node-API symbols come from the process that loads the addon (Electron or Node).
    flags.push('-DCMAKE_SHARED_LINKER_FLAGS=-undefined dynamic_lookup', `-DCMAKE_OSX_ARCHITECTURES=${arch === 'x64' ? 'x86_64' : arch}`);
  }
  return [`-DCMAKE_CXX_FLAGS=${cxx.join(' ')}`, ...flags];
}

/** The configure command's arguments. */
export function configureArgs(request: Pick<BuildRequest, 'source' | 'tools' | 'config' | 'root' | 'platform' | 'arch'>): string[] {
  const { source, tools, config } = request;
  const paths = buildPaths(request.root, config);
  const bin = path.join(paths.cmakeBuild, 'bin');
  return [
    '-S',
    paths.project,
    '-B',
    paths.cmakeBuild,
    '-G',
    tools.generator,
    `-DCMAKE_MAKE_PROGRAM=${tools.makeProgram}`,
    `-DCMAKE_C_COMPILER=${tools.cc}`,
    `-DCMAKE_CXX_COMPILER=${tools.cxx}`,
    // What cmake-js passes: the Node-API headers, found on disk.
    `-DCMAKE_JS_INC=${source.nodeApiInclude};${source.nodeAddonApiInclude}`,
    // One folder for the addon and every library, so $ORIGIN finds them (node-llama-cpp collects them the same way).
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${bin}`,
    `-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=${bin}`,
    ...platformFlags(request.platform ?? process.platform, request.arch ?? process.arch),
    ...config.cmakeOptions,
  ];
}

class Steps {
  readonly #request: BuildRequest;
  readonly env: NodeJS.ProcessEnv;
  /** The output of the command running now (a failure shows its own lines, not the steps' before it). */
  tail = new OutputTail(TAIL_LINES);

  constructor(request: BuildRequest) {
    this.#request = request;
    this.env = { ...process.env, PATH: request.tools.pathEnv };
  }

  report(stage: Stage, within: number, detail = ''): void {
    const [from, to] = STAGES[stage];
    this.#request.onProgress({ fraction: from + (to - from) * Math.max(0, Math.min(1, within)), step: `${STAGE_WORDS[stage]}${detail}` });
  }

  /** Runs one command; a failure is `BuildFailed` with the output's tail, an abort `BuildCancelled`. */
  async run(stage: Stage, command: string, args: readonly string[], cwd?: string): Promise<void> {
    const { signal, runner, onOutput } = this.#request;
    if (signal.aborted) throw new BuildCancelled();
    onOutput?.(`$ ${command} ${args.join(' ')}`);
    this.tail = new OutputTail(TAIL_LINES);
    const end: RunEnd = await runner.run(command, args, {
      ...(cwd ? { cwd } : {}),
      env: this.env,
      signal,
      nice: BUILD_NICE,
      onLine: (line) => {
        this.tail.add(line);
        onOutput?.(line);
        if (stage !== 'compile') return;
        const step = parseBuildStep(line);
        if (step) this.report('compile', step.fraction, step.total !== undefined ? ` (${step.done} of ${step.total})` : ` (${Math.round(step.fraction * 100)}%)`);
      },
    });
    if (signal.aborted) throw new BuildCancelled();
    if (end.startError !== undefined) throw new BuildFailed(`${STAGE_WORDS[stage]} failed: ${command} could not be started (${end.startError})`, this.tail.text);
    if (end.code !== 0) throw new BuildFailed(`${STAGE_WORDS[stage]} failed: ${path.basename(command)} exited with ${end.code ?? end.signal ?? 'an unknown status'}`, this.tail.text);
  }
}

/** The project copy and the llama.cpp checkout, unless a cancelled build already made them. */
async function prepareSource(request: BuildRequest, steps: Steps): Promise<void> {
  const { source, tools } = request;
  const paths = buildPaths(request.root, request.config);
  const done = path.join(paths.work, 'source.done');
  if (await exists(done)) return;
  await rm(paths.work, { recursive: true, force: true });
  await mkdir(paths.project, { recursive: true });
  for (const name of PROJECT_FILES) {
    const from = path.join(source.project, name);
    if (await exists(from)) await cp(from, path.join(paths.project, name), { recursive: true });
  }
  steps.report('checkout', 0);
  await steps.run('checkout', tools.git, ['-c', 'advice.detachedHead=false', 'clone', '--quiet', source.bundle, paths.llamaCpp]);
  steps.report('checkout', 0.7);
  // node-llama-cpp applies these before it builds; one that no longer applies is already upstream.
  for (const patch of source.patches) {
    const check = await request.runner.run(tools.git, ['apply', '--check', '--ignore-whitespace', patch], { cwd: paths.llamaCpp, env: steps.env, onLine: () => undefined, signal: request.signal });
    if (check.code === 0) await steps.run('checkout', tools.git, ['apply', '--ignore-whitespace', patch], paths.llamaCpp);
    else request.onOutput?.(`(patch ${path.basename(patch)} does not apply: left out)`);
  }
  await writeFile(done, `${source.commit}\n`);
  steps.report('checkout', 1);
}

/** Copies the addon and its libraries into the staging folder; answers their file names. */
async function collectLibraries(cmakeBuild: string, staging: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of [path.join(cmakeBuild, 'bin'), path.join(cmakeBuild, 'Release')]) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!LIBRARY.test(name) || found.includes(name)) continue;
      // Dereferenced: a versioned library's symlinks become plain files.
      await cp(path.join(dir, name), path.join(staging, name), { dereference: true });
      found.push(name);
    }
  }
  return found;
}

/** node-llama-cpp's build metadata, which `Llama._create` reads (engine/worker/local-llama.ts). */
function nlcMetadata(request: BuildRequest): unknown {
  const platform = request.platform ?? process.platform;
  return {
    buildOptions: {
      customCmakeOptions: request.config.customCmakeOptions,
      progressLogs: false,
      platform: platform === 'darwin' ? 'mac' : platform === 'win32' ? 'win' : platform,
      platformInfo: { name: os.type(), version: os.release() },
      arch: request.arch ?? process.arch,
      gpu: request.config.gpu,
      llamaCpp: { repo: request.source.repo, release: request.source.release },
    },
  };
}

/**
 * Builds the engine and answers its manifest. Throws `BuildCancelled` (the work folder stays for a
 * retry) or `BuildFailed` (the work folder is removed); nothing is left under the final name
 * unless it finished.
 */
export async function buildEngine(request: BuildRequest): Promise<EngineManifest> {
  const { config, tools, source } = request;
  const now = request.now ?? Date.now;
  const started = now();
  const paths = buildPaths(request.root, config);
  const steps = new Steps(request);
  await mkdir(request.root, { recursive: true });
  try {
    await prepareSource(request, steps);
    steps.report('configure', 0);
    await steps.run('configure', tools.cmake, configureArgs(request));
    steps.report('compile', 0);
    const jobs = Math.max(1, request.jobs ?? os.availableParallelism());
    await steps.run('compile', tools.cmake, ['--build', paths.cmakeBuild, '--config', 'Release', '--parallel', String(jobs)]);
    steps.report('finish', 0);
    await rm(paths.staging, { recursive: true, force: true });
    await mkdir(paths.staging, { recursive: true });
    const files = await collectLibraries(paths.cmakeBuild, paths.staging);
    if (!files.includes(BINDING_FILE)) throw new BuildFailed(`The build finished without ${BINDING_FILE}`, steps.tail.text);
    await writeFile(path.join(paths.staging, NLC_METADATA_FILE), JSON.stringify(nlcMetadata(request)));
    const manifest: EngineManifest = {
      format: MANIFEST_FORMAT,
      release: source.release,
      commit: source.commit,
      nodeLlamaCpp: source.version,
      name: config.name,
      configHash: config.hash,
      builtAt: now(),
      durationMs: now() - started,
      sizeBytes: folderBytes(paths.staging),
      cmakeOptions: config.cmakeOptions,
      gpu: config.gpu,
      binding: BINDING_FILE,
      tools: tools.versions,
    };
    // Last: its presence is what makes the folder a finished build.
    writeJsonAtomic(path.join(paths.staging, MANIFEST_FILE), manifest);
    await rm(paths.final, { recursive: true, force: true });
    await rename(paths.staging, paths.final);
    await rm(paths.work, { recursive: true, force: true });
    steps.report('finish', 1);
    return manifest;
  } catch (error) {
    await rm(paths.staging, { recursive: true, force: true });
    if (!(error instanceof BuildCancelled)) await rm(paths.work, { recursive: true, force: true });
    throw error;
  }
}
