import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeBuildRunner, fakeLlamaSource, fakeTools } from '../../../test/support/fake-build.ts';
import { BuildCancelled, buildEngine, BuildFailed, buildPaths, configureArgs, TAIL_LINES, type BuildProgress } from './builder.ts';
import { buildConfig } from './config.ts';
import { finishedBuilds, MANIFEST_FILE, mismatch, readManifest } from './manifest.ts';
import { OutputTail, parseBuildStep } from './progress.ts';

let dir: string;
let root: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hearth-build-'));
  root = path.join(dir, 'engines');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const target = { nodeLlamaCpp: '3.21.1', release: 'v0.4.0', commit: '80fb11ac73e66d89eae2c6a91d8a77428fa733ed' };

function request(runner: FakeBuildRunner, progress: BuildProgress[] = [], signal = new AbortController().signal) {
  const source = fakeLlamaSource(dir);
  const tools = fakeTools();
  const config = buildConfig(source, tools, 'linux', 'x64');
  let clock = 1_000;
  return { source, tools, config, root, runner, signal, jobs: 2, platform: 'linux' as const, arch: 'x64', now: () => (clock += 500), onProgress: (p: BuildProgress) => void progress.push(p) };
}

describe('build progress', () => {
  it("reads ninja's [n/m] and make's [ nn%] lines, and nothing else", () => {
    expect(parseBuildStep('[12/277] Building CXX object ggml/src/ggml.c.o')).toEqual({ fraction: 12 / 277, done: 12, total: 277 });
    expect(parseBuildStep('[ 45%] Building C object ggml/src/ggml.c.o')).toEqual({ fraction: 0.45 });
    expect(parseBuildStep('[100%] Linking CXX shared module llama-addon.node')).toEqual({ fraction: 1 });
    expect(parseBuildStep('ninja: no work to do. [0/0]')).toBeNull();
    expect(parseBuildStep('-- Configuring done')).toBeNull();
  });

  it('keeps the last lines of output, without blank ones', () => {
    const tail = new OutputTail(3);
    for (const line of ['a', '', 'b', 'c', '  ', 'd']) tail.add(line);
    expect(tail.lines).toEqual(['b', 'c', 'd']);
  });
});

describe('buildEngine', () => {
  it("builds into <release>-<hash>/ with the addon, its libraries, node-llama-cpp's metadata and a manifest written last", async () => {
    const runner = new FakeBuildRunner();
    const progress: BuildProgress[] = [];
    const req = request(runner, progress);
    const manifest = await buildEngine(req);

    const final = path.join(root, req.config.name);
    expect(req.config.name).toMatch(/^v0\.4\.0-[0-9a-f]{10}$/);
    expect(readdirSync(final).sort()).toEqual(['_nlcBuildMetadata.json', 'libggml-base.so', 'libggml-cpu.so', 'libllama.v0.4.0.local.so', 'llama-addon.node', MANIFEST_FILE].sort());
    expect(manifest).toMatchObject({ release: 'v0.4.0', commit: target.commit, nodeLlamaCpp: '3.21.1', name: req.config.name, binding: 'llama-addon.node', gpu: false });
    // The libraries' bytes (700 + 4000 + 900 + 1200) and the metadata file, not the manifest.
    expect(manifest.sizeBytes).toBe(6800 + readFileSync(path.join(final, '_nlcBuildMetadata.json')).length);
    expect(manifest.cmakeOptions).toContain('-DGGML_NATIVE=ON');
    expect(manifest.builtAt).toBeGreaterThan(1_000);
    expect(readManifest(final)).toEqual(manifest);
    expect(JSON.parse(readFileSync(path.join(final, '_nlcBuildMetadata.json'), 'utf8'))).toMatchObject({ buildOptions: { gpu: false, platform: 'linux', arch: 'x64', llamaCpp: { repo: 'ggml-org/llama.cpp', release: 'v0.4.0' } } });
    // Nothing half-done is left: no work or staging folder.
    expect(readdirSync(root)).toEqual([req.config.name]);
    expect(finishedBuilds(root, target).map((m) => m.name)).toEqual([req.config.name]);

    // Progress only goes forward, follows ninja's counts, and ends at 1.
    const fractions = progress.map((p) => p.fraction);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(progress.map((p) => p.step)).toContain('Compiling (2 of 4)');
    expect(fractions.at(-1)).toBe(1);

    // The llama.cpp source comes from the bundle with node-llama-cpp's patches; every command runs at low priority.
    const git = runner.ofCommand('git');
    expect(git.map((c) => c.args.find((a) => a === 'clone' || a === 'apply'))).toEqual(['clone', 'apply', 'apply']);
    expect(git[1]!.args).toContain('--check');
    expect(git[2]!.args.at(-1)).toBe(req.source.patches[0]);
    expect(runner.calls.filter((c) => c.args[0] !== '--version').every((c) => c.nice === 10 || (c.command === 'git' && c.args.includes('--check')))).toBe(true);
  });

  it('configures with Ninja, the Node-API headers found on disk, and one output folder for every library', () => {
    const req = request(new FakeBuildRunner());
    const args = configureArgs(req);
    const bin = path.join(buildPaths(root, req.config).cmakeBuild, 'bin');
    expect(args.slice(args.indexOf('-G'), args.indexOf('-G') + 2)).toEqual(['-G', 'Ninja']);
    expect(args).toContain(`-DCMAKE_JS_INC=${req.source.nodeApiInclude};${req.source.nodeAddonApiInclude}`);
    expect(args).toContain(`-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${bin}`);
    expect(args).toContain('-DCMAKE_CXX_FLAGS=-DBUILDING_NODE_EXTENSION');
    expect(args.some((a) => a.includes('dynamic_lookup'))).toBe(false);
    const mac = configureArgs({ ...req, platform: 'darwin', arch: 'arm64' });
    expect(mac).toContain('-DCMAKE_SHARED_LINKER_FLAGS=-undefined dynamic_lookup');
    expect(mac).toContain('-DCMAKE_OSX_ARCHITECTURES=arm64');
  });

  it(`fails with the last ${TAIL_LINES} lines of the output in the error and leaves no build behind`, async () => {
    const runner = new FakeBuildRunner({ failCompileAfter: 100 });
    const req = request(runner);
    const failure = await buildEngine(req).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BuildFailed);
    const message = (failure as BuildFailed).message;
    expect(message).toMatch(/^Compiling failed: cmake exited with 1\. Its last lines:\n/);
    expect(message).toContain('compiler output line 100');
    expect(message).toContain(`compiler output line ${100 - TAIL_LINES + 1}\n`);
    expect(message).not.toContain(`compiler output line ${100 - TAIL_LINES}\n`);
    expect((failure as BuildFailed).tail.split('\n')).toHaveLength(TAIL_LINES);
    expect(existsSync(root) ? readdirSync(root) : []).toEqual([]);
    expect(finishedBuilds(root, target)).toEqual([]);
  });

  it('says so when a tool cannot be started', async () => {
    const runner = new FakeBuildRunner();
    const req = request(runner);
    const failure = await buildEngine({ ...req, tools: fakeTools({ cmake: 'cmake-missing' }) }).catch((error: unknown) => error);
    expect((failure as Error).message).toMatch(/^Configuring failed: cmake-missing could not be started/);
  });

  it('a cancel stops the compile, leaves no build, and keeps the checkout for the next try', async () => {
    const runner = new FakeBuildRunner({ hangCompile: true });
    const controller = new AbortController();
    const req = request(runner, [], controller.signal);
    const building = buildEngine(req).catch((error: unknown) => error);
    await runner.compileStarted;
    controller.abort();
    expect(await building).toBeInstanceOf(BuildCancelled);
    expect(existsSync(path.join(root, req.config.name))).toBe(false);
    expect(existsSync(buildPaths(root, req.config).work)).toBe(true);

    // The next build goes on from the checkout: no second clone.
    runner.behaviour.hangCompile = false;
    await buildEngine({ ...req, signal: new AbortController().signal });
    expect(runner.ofCommand('git').filter((c) => c.args.includes('clone'))).toHaveLength(1);
    expect(readManifest(path.join(root, req.config.name))).not.toBeNull();
  });
});

describe('finished builds', () => {
  it('a folder without a manifest, or built for another node-llama-cpp, is never used', async () => {
    const half = path.join(root, 'v0.4.0-0123456789');
    mkdirSync(half, { recursive: true });
    writeFileSync(path.join(half, 'llama-addon.node'), 'half');
    expect(finishedBuilds(root, target)).toEqual([]);

    const req = request(new FakeBuildRunner());
    const manifest = await buildEngine(req);
    expect(finishedBuilds(root, target).map((m) => m.name)).toEqual([manifest.name]);
    expect(finishedBuilds(root, { ...target, nodeLlamaCpp: '3.22.0' })).toEqual([]);
    expect(mismatch(manifest, { ...target, nodeLlamaCpp: '3.22.0' })).toBe('it was built for node-llama-cpp 3.21.1, and 3.22.0 is installed');
    // A manifest whose addon is gone is not a build either.
    rmSync(path.join(root, manifest.name, 'llama-addon.node'));
    expect(finishedBuilds(root, target)).toEqual([]);
  });
});
