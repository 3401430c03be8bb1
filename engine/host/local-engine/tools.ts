/**
 * Whether this computer can build an engine: CMake, a C and C++ compiler, git (to check out the
 * llama.cpp source from its bundle) and ninja or make. Each is found by running it, so a tool
 * that is on PATH but broken (macOS's compiler shims without the command line tools) counts as
 * missing. The answer is in words a user can act on.
 */
import path from 'node:path';
import type { CommandRunner } from './runner.ts';

/** The oldest CMake node-llama-cpp's CMakeLists.txt accepts (cmake_minimum_required). */
const MIN_CMAKE: readonly [number, number] = [3, 19];

export interface FoundTools {
  readonly available: true;
  readonly cmake: string;
  readonly git: string;
  readonly cc: string;
  readonly cxx: string;
  /** CMake's generator, and the tool it runs. */
  readonly generator: 'Ninja' | 'Unix Makefiles';
  readonly makeProgram: string;
  /** Each tool's first version line, part of what names a build (another compiler is another build). */
  readonly versions: Readonly<Record<string, string>>;
  /** PATH for the build's commands (a packaged app on macOS starts with a short one). */
  readonly pathEnv: string;
}

export type BuildTools = FoundTools | { readonly available: false; readonly reason: string };

export interface ToolsOptions {
  readonly runner: CommandRunner;
  readonly platform?: NodeJS.Platform;
  readonly env?: NodeJS.ProcessEnv;
}

/** Folders where macOS users' Homebrew and MacPorts put cmake and ninja; a GUI app's PATH lacks them. */
const MAC_EXTRA_PATH = ['/opt/homebrew/bin', '/usr/local/bin', '/opt/local/bin'];

/** The first line a command prints for `args`, or null when it is missing or fails. */
async function versionLine(runner: CommandRunner, command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string | null> {
  const lines: string[] = [];
  const end = await runner.run(command, args, { env, onLine: (line) => lines.push(line) });
  if (end.startError !== undefined || end.code !== 0) return null;
  return lines.find((line) => line.trim() !== '')?.trim() ?? '';
}

/** The first candidate that runs, with its version line. */
async function firstWorking(runner: CommandRunner, candidates: readonly string[], env: NodeJS.ProcessEnv): Promise<{ command: string; version: string } | null> {
  for (const command of candidates) {
    const version = await versionLine(runner, command, ['--version'], env);
    if (version !== null) return { command, version };
  }
  return null;
}

function cmakeTooOld(version: string): boolean {
  const [, major, minor] = /(\d+)\.(\d+)/.exec(version) ?? [];
  if (major === undefined || minor === undefined) return false;
  return Number(major) < MIN_CMAKE[0] || (Number(major) === MIN_CMAKE[0] && Number(minor) < MIN_CMAKE[1]);
}

/** What to install, per platform, for the tools that are missing. */
function installAdvice(platform: NodeJS.Platform, missing: readonly string[]): string {
  if (platform === 'darwin') return `Install the Xcode command line tools (xcode-select --install) and ${missing.includes('CMake') ? 'CMake' : 'the missing tools'} (brew install cmake ninja).`;
  return `Install them with your package manager (on Debian or Ubuntu: sudo apt-get install build-essential cmake ninja-build git).`;
}

/** Finds the build tools, or says in words which are missing and how to get them. */
export async function detectBuildTools(options: ToolsOptions): Promise<BuildTools> {
  const platform = options.platform ?? process.platform;
  if (platform === 'win32') return { available: false, reason: 'Building an engine for this computer is not supported on Windows yet; the prebuilt engine is used.' };
  const baseEnv = options.env ?? process.env;
  const extra = platform === 'darwin' ? MAC_EXTRA_PATH : [];
  const pathEnv = [...(baseEnv.PATH ?? '').split(path.delimiter).filter(Boolean), ...extra.filter((dir) => !(baseEnv.PATH ?? '').split(path.delimiter).includes(dir))].join(path.delimiter);
  const env = { ...baseEnv, PATH: pathEnv };
  const { runner } = options;
  // Without the command line tools, macOS's /usr/bin/clang is a shim that offers to install them.
  if (platform === 'darwin' && (await versionLine(runner, 'xcode-select', ['-p'], env)) === null) {
    return { available: false, reason: 'The Xcode command line tools are not installed. Install them (xcode-select --install), then try again.' };
  }
  const [cmake, git, cc, cxx, ninja, make] = await Promise.all([
    firstWorking(runner, ['cmake'], env),
    firstWorking(runner, ['git'], env),
    firstWorking(runner, baseEnv.CC ? [baseEnv.CC] : ['cc', 'gcc', 'clang'], env),
    firstWorking(runner, baseEnv.CXX ? [baseEnv.CXX] : ['c++', 'g++', 'clang++'], env),
    firstWorking(runner, ['ninja'], env),
    firstWorking(runner, ['make', 'gmake'], env),
  ]);
  const missing = [
    ...(cmake ? [] : ['CMake']),
    ...(cc && cxx ? [] : ['a C and C++ compiler']),
    ...(git ? [] : ['git']),
    ...(ninja || make ? [] : ['ninja or make']),
  ];
  if (missing.length > 0 || !cmake || !git || !cc || !cxx) {
    return { available: false, reason: `Building an engine needs ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed. ${installAdvice(platform, missing)}` };
  }
  if (cmakeTooOld(cmake.version)) {
    return { available: false, reason: `CMake is too old (${cmake.version}); building an engine needs CMake ${MIN_CMAKE.join('.')} or newer.` };
  }
  const builder = ninja ? { generator: 'Ninja' as const, makeProgram: ninja.command } : { generator: 'Unix Makefiles' as const, makeProgram: make!.command };
  return {
    available: true,
    cmake: cmake.command,
    git: git.command,
    cc: cc.command,
    cxx: cxx.command,
    ...builder,
    versions: { cmake: cmake.version, cc: cc.version, cxx: cxx.version, [builder.generator === 'Ninja' ? 'ninja' : 'make']: (ninja ?? make)!.version },
    pathEnv,
  };
}
