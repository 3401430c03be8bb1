/**
 * Builds llama-server, llama.cpp's OpenAI-compatible HTTP server, from the llama.cpp source that
 * node-llama-cpp ships (the git bundle of its release), for the tests of remote engines: they talk
 * to a real server of the same llama.cpp release the local engine runs
 * (docs/decisions/llama-server-in-tests.md).
 *
 *   node scripts/build-llama-server.ts      `npm run build:llama-server`: builds unless already
 *                                           built, then prints the binary's path on stdout
 *
 * The binary is cached outside the checkout, so every clone and worktree on the machine shares it:
 * `<cache>/llama-server/<release>-<commit>/llama-server`, where `<cache>` is $HEARTH_TEST_CACHE,
 * else $XDG_CACHE_HOME/hearth-tests, else ~/.cache/hearth-tests. Test fixtures call
 * `llamaServerBinary()`, which builds on first use.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { acquireBuildLock } from '../engine/host/local-engine/build-lock.ts';
import { parseBuildStep } from '../engine/host/local-engine/progress.ts';
import { bundleCommit } from '../engine/host/local-engine/source.ts';
import { nodeLlamaCpp } from './build-native.ts';

/**
 * The CMake configuration, part of the finished build's marker, so that a change here rebuilds.
 * Only the server is built, as one binary with no downloads and no optional libraries:
 * - no network at build time: no prebuilt web UI (it would be fetched from Hugging Face) and no
 *   UI build either; llama.cpp no longer has a CURL option, and OpenSSL is only looked for, but
 *   switching it off keeps libssl out of the binary;
 * - BUILD_SHARED_LIBS=OFF links libllama and libggml in, and GGML_OPENMP=OFF (ggml's own thread
 *   pool instead) keeps libgomp out: the binary needs only the C and C++ runtimes;
 * - GGML_NATIVE=OFF: a portable baseline, so a cache shared between machines never holds a
 *   binary that dies of an illegal instruction; the tests' model is tiny, so speed is moot;
 * - no tests, examples or unified app binary in the CMake project (only `llama-server` is built
 *   anyway, but fewer targets configure faster);
 * - optimization only where the time goes at run time: ggml (the tensor kernels) keeps Release's
 *   -O3 through `ggmlFlags`, and everything else (llama, common, the HTTP server, JSON, the
 *   multimodal library the server links) is compiled at -O0. Measured on 2 cores: about a quarter
 *   less CPU time than all -O3 (about 6 instead of 8 minutes); generation about 1.4 times slower
 *   than all -O3, where all -O0 was 8 times slower (docs/decisions/llama-server-in-tests.md).
 */
export const cmakeOptions: readonly string[] = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DCMAKE_C_FLAGS_RELEASE=-O0 -DNDEBUG',
  '-DCMAKE_CXX_FLAGS_RELEASE=-O0 -DNDEBUG',
  '-DBUILD_SHARED_LIBS=OFF',
  '-DGGML_NATIVE=OFF',
  '-DGGML_OPENMP=OFF',
  '-DGGML_CCACHE=OFF',
  '-DLLAMA_OPENSSL=OFF',
  '-DLLAMA_USE_PREBUILT_UI=OFF',
  '-DLLAMA_BUILD_UI=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_APP=OFF',
];

/**
 * Included by CMake right after ggml's project() (CMAKE_PROJECT_ggml_INCLUDE): these directory
 * variables shadow the -O0 cache entries above for ggml's folder and below only.
 */
export const ggmlFlags = 'set(CMAKE_C_FLAGS_RELEASE "-O3 -DNDEBUG")\nset(CMAKE_CXX_FLAGS_RELEASE "-O3 -DNDEBUG")\n';

/** Commands the build runs, each with the Debian package that provides it. */
const buildTools: ReadonlyArray<{ command: string; versionArg: string; apt: string }> = [
  { command: 'git', versionArg: '--version', apt: 'git' },
  { command: 'cmake', versionArg: '--version', apt: 'cmake' },
  { command: 'ninja', versionArg: '--version', apt: 'ninja-build' },
  { command: process.env.CC || 'gcc', versionArg: '--version', apt: 'gcc' },
  { command: process.env.CXX || 'g++', versionArg: '--version', apt: 'g++' },
];

/** How long to wait for another process's build before giving up. */
const waitForOtherBuildMs = 60 * 60 * 1000;

export interface LlamaServerBuild {
  /** node-llama-cpp's llama.cpp release tag (llama.cpp.info.json). */
  readonly release: string;
  /** The commit in node-llama-cpp's source bundle. */
  readonly commit: string;
  /** The source bundle. */
  readonly bundle: string;
  /** This build's cache folder. */
  readonly dir: string;
  /** Where the finished binary is (or will be). */
  readonly binary: string;
}

/** The shared test cache: $HEARTH_TEST_CACHE, else $XDG_CACHE_HOME/hearth-tests, else ~/.cache/hearth-tests. */
export function testCacheDir(): string {
  if (process.env.HEARTH_TEST_CACHE) return process.env.HEARTH_TEST_CACHE;
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'hearth-tests');
  return join(homedir(), '.cache', 'hearth-tests');
}

/** Which llama-server this checkout's node-llama-cpp calls for, and where it is cached. */
export function llamaServerBuild(): LlamaServerBuild {
  const nlc = nodeLlamaCpp();
  if (!nlc) throw new Error('llama-server cannot be built: node-llama-cpp is not installed (run `npm ci`)');
  if (!existsSync(nlc.bundle)) throw new Error(`llama-server cannot be built: node-llama-cpp ${nlc.version} ships no llama.cpp source bundle (${nlc.bundle})`);
  const commit = bundleCommit(nlc.bundle);
  const dir = join(testCacheDir(), 'llama-server', `${nlc.release}-${commit.slice(0, 12)}`);
  return { release: nlc.release, commit, bundle: nlc.bundle, dir, binary: join(dir, 'llama-server') };
}

/** What the finished marker holds: a build with other inputs is not reused. */
function recipe(build: LlamaServerBuild): string {
  return JSON.stringify({ release: build.release, commit: build.commit, cmake: cmakeOptions, ggml: ggmlFlags });
}

function finished(build: LlamaServerBuild): boolean {
  try {
    const marker = JSON.parse(readFileSync(join(build.dir, '.complete'), 'utf8')) as { recipe?: string };
    return marker.recipe === recipe(build) && statSync(build.binary).isFile();
  } catch {
    return false;
  }
}

/** Throws, naming every missing command and the packages to install, unless all are there. */
export function checkBuildTools(): void {
  const missing = buildTools.filter(({ command, versionArg }) => {
    const probe = spawnSync(command, [versionArg], { stdio: 'ignore' });
    return probe.error !== undefined || probe.status !== 0;
  });
  if (missing.length === 0) return;
  throw new Error(
    `llama-server cannot be built: ${missing.map((tool) => tool.command).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing. ` +
      `Install ${missing.length === 1 ? 'it' : 'them'} with \`apt-get install ${missing.map((tool) => tool.apt).join(' ')}\` ` +
      '(the build needs cmake, ninja-build, g++ and git).',
  );
}

class StepFailed extends Error {}

/** Runs one build command, appending its output to the log; ninja's "[n/total]" lines become progress lines. */
function runStep(step: string, command: string, args: readonly string[], logPath: string, log: (line: string) => void, onChild: (pid: number | undefined) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const logFile = openSync(logPath, 'a');
    writeSync(logFile, `\n$ ${command} ${args.join(' ')}\n`);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) onChild(child.pid);
    let shownTenth = -1;
    let partial = '';
    const take = (chunk: Buffer): void => {
      writeSync(logFile, chunk);
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const progress = parseBuildStep(line);
        if (progress?.total === undefined) continue;
        const tenth = Math.floor(progress.fraction * 10);
        if (tenth > shownTenth) {
          shownTenth = tenth;
          log(`llama-server: ${step} ${progress.done}/${progress.total}`);
        }
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let settled = false;
    const settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      closeSync(logFile);
      onChild(undefined);
      if (error) reject(error);
      else resolve();
    };
    child.on('error', (error) => settle(new StepFailed(`${command} could not be started: ${error.message}`)));
    child.on('close', (code, signal) => settle(code === 0 ? undefined : new StepFailed(`${step} (${command}) exited with ${code ?? signal}`)));
  });
}

/** The last `count` non-empty lines of a file, for an error message. */
async function lastLines(path: string, count: number): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line.trim() !== '').slice(-count).join('\n');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Builds into `<dir>/work` (the source checkout and CMake's build folder), copies the binary to
 * `<dir>/llama-server`, checks that it runs, and writes the marker last. A build that was
 * interrupted left `work/` behind and is picked up where it stopped (ninja rebuilds only what is
 * missing or out of date); a failed one is removed, so the next attempt starts clean.
 */
async function build(target: LlamaServerBuild, log: (line: string) => void, onChild: (pid: number | undefined) => void): Promise<void> {
  const work = join(target.dir, 'work');
  const source = join(work, 'src');
  const buildDir = join(work, 'build');
  const logPath = join(target.dir, 'build.log');
  await mkdir(target.dir, { recursive: true });
  await rm(join(target.dir, '.complete'), { force: true });
  await rm(target.binary, { force: true });
  await writeFile(logPath, `llama-server ${target.release} (${target.commit}) from ${target.bundle}\n`);
  const started = Date.now();
  try {
    if (!(await exists(join(work, 'src.done')))) {
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      log(`llama-server: checking out llama.cpp ${target.release} (${target.commit.slice(0, 12)})`);
      await runStep('checkout', 'git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', target.bundle, source], logPath, log, onChild);
      await writeFile(join(work, 'src.done'), `${target.commit}\n`);
    }
    log('llama-server: configuring');
    const ggmlInclude = join(work, 'ggml-flags.cmake');
    await writeFile(ggmlInclude, ggmlFlags);
    await runStep('configure', 'cmake', ['-S', source, '-B', buildDir, '-G', 'Ninja', ...cmakeOptions, `-DCMAKE_PROJECT_ggml_INCLUDE=${ggmlInclude}`], logPath, log, onChild);
    const jobs = String(availableParallelism());
    log(`llama-server: compiling with ${jobs} jobs (minutes; the log is ${logPath})`);
    await runStep('compiling', 'cmake', ['--build', buildDir, '--target', 'llama-server', '-j', jobs], logPath, log, onChild);
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
    await rm(work, { recursive: true, force: true });
    throw new Error(`llama-server did not build: ${error.message}. Full log: ${logPath}. Its last lines:\n${await lastLines(logPath, 25)}`, { cause: error });
  }
  const temp = `${target.binary}.tmp`;
  await copyFile(join(buildDir, 'bin', 'llama-server'), temp);
  await chmod(temp, 0o755);
  const check = spawnSync(temp, ['--version'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(`llama-server was built but does not run (${check.error?.message ?? `exit ${check.status ?? check.signal}`}): ${(check.stderr ?? '').trim().split('\n').slice(-5).join('\n')}`);
  }
  await rename(temp, target.binary);
  const seconds = Math.round((Date.now() - started) / 1000);
  const bytes = (await stat(target.binary)).size;
  await rm(work, { recursive: true, force: true });
  await writeFile(join(target.dir, '.complete'), `${JSON.stringify({ recipe: recipe(target), seconds, bytes, jobs: availableParallelism() })}\n`);
  log(`llama-server: built ${target.binary} (${(bytes / 1e6).toFixed(1)} MB) in ${seconds} s`);
}

const stderrLog = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * The path of this checkout's llama-server, built first if needed. Processes that ask at the same
 * time (vitest and Playwright, or two test files) share one build: the others wait for it.
 */
export async function llamaServerBinary(log: (line: string) => void = stderrLog): Promise<string> {
  const target = llamaServerBuild();
  if (finished(target)) return target.binary;
  checkBuildTools();
  await mkdir(target.dir, { recursive: true });
  const lock = await acquireBuildLock(`${target.dir}.lock`, { waitMs: waitForOtherBuildMs, log, label: 'llama-server' });
  try {
    if (!finished(target)) await build(target, log, (pid) => lock.setChild(pid));
  } finally {
    lock.release();
  }
  return target.binary;
}

// No top-level await: test runners that load this module through require() refuse it.
if (import.meta.main) {
  llamaServerBinary().then(
    (binary) => console.log(binary),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
