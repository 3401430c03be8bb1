/**
 * A fake of the commands an engine build runs (engine/host/local-engine/runner.ts), so the
 * builder and the host's local engine are tested without compiling llama.cpp: `--version`
 * answers per tool, `git clone` and `cmake` make the folders and files the real ones would, and
 * the compile step prints ninja's progress lines, fails with output, or waits to be cancelled.
 * Also a fake of node-llama-cpp's source folder and the tools found.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CommandRunner, RunEnd, RunOptions } from '../../engine/host/local-engine/runner.ts';
import type { LlamaSource } from '../../engine/host/local-engine/source.ts';
import type { FoundTools } from '../../engine/host/local-engine/tools.ts';

export interface FakeCall {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly nice?: number;
}

export interface FakeBuildBehaviour {
  /** Version lines of the tools that exist; a command not named here is "not installed". */
  versions: Record<string, string>;
  /** The compile step's ninja steps. */
  steps: number;
  /** The compile step fails after printing this many lines of its own. */
  failCompileAfter: number | null;
  /** The compile step waits (printing its first step) until it is aborted. */
  hangCompile: boolean;
  /** Files the compile step leaves in `<build>/bin` (the addon and its libraries, with their sizes). */
  outputs: Record<string, number>;
}

export class FakeBuildRunner implements CommandRunner {
  readonly calls: FakeCall[] = [];
  readonly behaviour: FakeBuildBehaviour;
  /** Resolves when the compile step started (a cancel test waits for it). */
  compileStarted: Promise<void>;
  #markCompileStarted: () => void = () => undefined;

  constructor(behaviour: Partial<FakeBuildBehaviour> = {}) {
    this.behaviour = {
      versions: { cmake: 'cmake version 3.25.1', git: 'git version 2.39.5', cc: 'cc (Debian 12.2.0) 12.2.0', 'c++': 'c++ (Debian 12.2.0) 12.2.0', ninja: '1.11.1', make: 'GNU Make 4.3' },
      steps: 4,
      failCompileAfter: null,
      hangCompile: false,
      outputs: { 'llama-addon.node': 700, 'libllama.v0.4.0.local.so': 4000, 'libggml-base.so': 900, 'libggml-cpu.so': 1200 },
      ...behaviour,
    };
    this.compileStarted = new Promise((resolve) => (this.#markCompileStarted = resolve));
  }

  async run(command: string, args: readonly string[], options: RunOptions): Promise<RunEnd> {
    this.calls.push({ command, args, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.nice !== undefined ? { nice: options.nice } : {}) });
    if (args[0] === '--version' || (command === 'xcode-select' && args[0] === '-p')) {
      const version = this.behaviour.versions[command];
      if (version === undefined) return { code: null, signal: null, startError: `spawn ${command} ENOENT` };
      options.onLine(version);
      return { code: 0, signal: null };
    }
    if (command === 'git' && args.includes('clone')) {
      const target = args[args.length - 1]!;
      mkdirSync(path.join(target, 'src'), { recursive: true });
      writeFileSync(path.join(target, 'CMakeLists.txt'), '# llama.cpp\n');
      return { code: 0, signal: null };
    }
    if (command === 'git' && args[0] === 'apply') return { code: 0, signal: null };
    if (command === 'cmake' && args[0] === '-S') {
      mkdirSync(args[args.indexOf('-B') + 1]!, { recursive: true });
      options.onLine('-- Configuring done');
      options.onLine('-- Build files have been written');
      return { code: 0, signal: null };
    }
    if (command === 'cmake' && args[0] === '--build') return this.#compile(args[1]!, options);
    return { code: 127, signal: null, startError: `the fake does not know ${command} ${args.join(' ')}` };
  }

  async #compile(buildDir: string, options: RunOptions): Promise<RunEnd> {
    const { steps, failCompileAfter, hangCompile, outputs } = this.behaviour;
    this.#markCompileStarted();
    if (hangCompile) {
      options.onLine(`[1/${steps}] Building CXX object CMakeFiles/llama-addon.dir/addon/addon.cpp.o`);
      if (options.signal?.aborted) return { code: null, signal: 'SIGTERM' };
      await new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve(), { once: true }));
      return { code: null, signal: 'SIGTERM' };
    }
    if (failCompileAfter !== null) {
      for (let line = 1; line <= failCompileAfter; line++) options.onLine(`compiler output line ${line}`);
      return { code: 1, signal: null };
    }
    for (let step = 1; step <= steps; step++) {
      options.onLine(`[${step}/${steps}] Building CXX object step-${step}.o`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const bin = path.join(buildDir, 'bin');
    mkdirSync(bin, { recursive: true });
    for (const [name, size] of Object.entries(outputs)) writeFileSync(path.join(bin, name), Buffer.alloc(size, 1));
    // Not a library: left behind by the collector.
    writeFileSync(path.join(bin, 'vulkan-shaders-gen.txt'), 'x');
    return { code: 0, signal: null };
  }

  /** The calls of one kind, e.g. `ofCommand('git')`. */
  ofCommand(command: string): FakeCall[] {
    return this.calls.filter((call) => call.command === command && call.args[0] !== '--version');
  }
}

/** A node-llama-cpp source as source.ts finds it, in `dir` (the files the builder copies exist). */
export function fakeLlamaSource(dir: string, overrides: Partial<LlamaSource> = {}): LlamaSource {
  const project = path.join(dir, 'node-llama-cpp', 'llama');
  mkdirSync(path.join(project, 'addon'), { recursive: true });
  mkdirSync(path.join(project, 'cmake'), { recursive: true });
  writeFileSync(path.join(project, 'CMakeLists.txt'), 'project("llama-addon")\n');
  writeFileSync(path.join(project, 'addon', 'addon.cpp'), '// addon\n');
  writeFileSync(path.join(project, 'gitRelease.bundle'), '# v2 git bundle\n');
  const headers = path.join(dir, 'node-api-headers', 'include');
  mkdirSync(headers, { recursive: true });
  return {
    dir: path.join(dir, 'node-llama-cpp'),
    version: '3.21.1',
    release: 'v0.4.0',
    repo: 'ggml-org/llama.cpp',
    bundle: path.join(project, 'gitRelease.bundle'),
    commit: '80fb11ac73e66d89eae2c6a91d8a77428fa733ed',
    project,
    patches: [path.join(project, 'patches', 'PR-1.diff')],
    nodeApiInclude: headers,
    nodeAddonApiInclude: path.join(dir, 'node-addon-api'),
    ...overrides,
  };
}

/** The tools a Debian machine with ninja has. */
export function fakeTools(overrides: Partial<FoundTools> = {}): FoundTools {
  return {
    available: true,
    cmake: 'cmake',
    git: 'git',
    cc: 'cc',
    cxx: 'c++',
    generator: 'Ninja',
    makeProgram: 'ninja',
    versions: { cmake: 'cmake version 3.25.1', cc: 'cc 12.2.0', cxx: 'c++ 12.2.0', ninja: '1.11.1' },
    pathEnv: process.env.PATH ?? '',
    ...overrides,
  };
}
