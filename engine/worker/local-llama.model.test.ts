/**
 * `init` with an engine built for this computer (`engineDir`): a build that does not load leaves
 * the prebuilt engine running with the reason, and one whose native code loaded but is not
 * node-llama-cpp's fails `init` (the host then restarts without it). A real build is too slow to
 * make in the tests (minutes of both cores); HEARTH_LOCAL_ENGINE_DIR names one made beforehand
 * (docs/decisions/local-engine-build.md says how), and the last test runs the test model on it.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { repoRoot, testModelPath } from '../../test/support/models.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-local-llama-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A build folder with a manifest for `nodeLlamaCpp` and `addon` as its llama-addon.node. */
function fakeBuild(name: string, options: { nodeLlamaCpp?: string; addon?: string | Buffer; manifest?: boolean } = {}): string {
  const build = join(dir, name);
  mkdirSync(build, { recursive: true });
  if (options.manifest !== false) {
    writeFileSync(join(build, 'manifest.json'), JSON.stringify({ format: 1, release: 'v0.4.0', commit: 'c', nodeLlamaCpp: options.nodeLlamaCpp ?? '3.21.1', name, binding: 'llama-addon.node' }));
    writeFileSync(join(build, '_nlcBuildMetadata.json'), JSON.stringify({ buildOptions: { customCmakeOptions: {}, gpu: false, llamaCpp: { repo: 'ggml-org/llama.cpp', release: 'v0.4.0' } } }));
  }
  if (options.addon !== undefined) writeFileSync(join(build, 'llama-addon.node'), options.addon);
  return build;
}

async function generateOnce(engine: EngineClient): Promise<string> {
  await engine.must('loadModel', { path: await testModelPath(), contextSize: 512, threads: 1 });
  const out = await engine.must('generate', { requestId: 'r1', chatId: 'c', messages: [{ role: 'user', text: 'Hello' }], sampling: { temperature: 0, topP: 1, maxTokens: 4 } });
  return out.text;
}

describe('init with a build for this computer', () => {
  const broken: Array<[string, () => string, RegExp]> = [
    ['an empty folder', () => fakeBuild('empty', { manifest: false }), /holds no finished build \(no manifest\.json\)/],
    ['a build of another node-llama-cpp', () => fakeBuild('older', { nodeLlamaCpp: '3.20.0', addon: 'x' }), /node-llama-cpp 3\.20\.0's addon, and 3\.21\.1 is installed: it must be built again/],
    ['an addon that is not a library', () => fakeBuild('garbage', { addon: Buffer.from('not an ELF file at all') }), /The build's addon did not load: /],
  ];

  for (const [what, make, reason] of broken) {
    it(`falls back to the prebuilt engine with the reason: ${what}`, async () => {
      const engine = await startEngine({ init: { engineDir: make() } });
      try {
        const output = engine.initOutput!;
        expect(output.engine.kind).toBe('prebuilt');
        expect(output.engine.fallback).toMatch(reason);
        expect(output.build).toMatch(/, prebuilt\)$/);
        // The prebuilt engine runs in the same process: a model loads and answers.
        expect((await generateOnce(engine)).length).toBeGreaterThan(0);
      } finally {
        await engine.dispose();
      }
    });
  }

  const ownAddon = join(repoRoot, 'native', 'build', 'Release', 'hearth_kv.node');
  it.skipIf(!existsSync(ownAddon))("fails init when the addon loaded but is not node-llama-cpp's (its code is in the process now)", async () => {
    const build = fakeBuild('foreign');
    copyFileSync(ownAddon, join(build, 'llama-addon.node'));
    await expect(startEngine({ init: { engineDir: build } })).rejects.toThrow(/The build's addon is not node-llama-cpp's \(it lacks markLoaded.*Hearth starts the engine again with the prebuilt one/);
  });

  const realBuild = process.env.HEARTH_LOCAL_ENGINE_DIR;
  it.skipIf(!realBuild)('loads a real build (HEARTH_LOCAL_ENGINE_DIR) and runs the test model on it', async () => {
    const engine = await startEngine({ init: { engineDir: realBuild! } });
    try {
      expect(engine.initOutput!.engine).toEqual({ kind: 'local', backend: 'cpu' });
      expect(engine.initOutput!.build).toMatch(/, localBuild\)$/);
      expect((await generateOnce(engine)).length).toBeGreaterThan(0);
    } finally {
      await engine.dispose();
    }
  });
});
