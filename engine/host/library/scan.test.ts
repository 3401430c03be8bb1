import { chmod, link, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalModel, ModelLibrary } from '../../contract/index.ts';
import { encodeGgufHeader, tinyLlamaGguf } from '../../../test/support/gguf-writer.ts';
import { makeFakeHome, type ExpectedModel, type FakeHome } from '../../../test/support/fake-homes.ts';
import { splitPart } from './files.ts';
import { modelHeader } from './headers.ts';
import { scanLibrary } from './scan.ts';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hearth-library-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function freshRoot(): Promise<string> {
  const dir = join(root, `r${counter++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The library's models under `under` (the real machine may have its own in /usr/share/ollama). */
function within(library: ModelLibrary, under: string): LocalModel[] {
  return library.models.filter((m) => m.path.startsWith(under));
}

function shape(models: readonly LocalModel[]): ExpectedModel[] {
  return models.map((m) => ({
    source: m.source,
    displayName: m.displayName,
    path: m.path,
    parts: m.parts,
    parameterCount: m.parameterCount,
    problem: m.problem !== undefined,
  }));
}

/** Bytes on disk of what the fake home expects: each file (every part of a split set) once. */
async function expectedBytes(expected: readonly ExpectedModel[]): Promise<number> {
  let total = 0;
  for (const model of expected) {
    if (model.parts === 1) {
      total += (await stat(model.path)).size;
      continue;
    }
    const base = splitPart(model.path.slice(dirname(model.path).length + 1))!.base;
    for (const name of await readdir(dirname(model.path))) {
      if (splitPart(name)?.base === base) total += (await stat(join(dirname(model.path), name))).size;
    }
  }
  return total;
}

describe('scanLibrary on a fake home', () => {
  for (const platform of ['linux', 'darwin'] as const) {
    describe(platform, () => {
      let fake: FakeHome;
      let under: string;
      let library: ModelLibrary;

      beforeAll(async () => {
        under = await freshRoot();
        fake = await makeFakeHome(under, platform);
        library = await scanLibrary({ modelsDir: fake.modelsDir, home: fake.home, platform, env: fake.env, freeBytes: async () => 123_456 });
      });

      it('finds every source, newest first, and none of the junk', () => {
        expect(shape(within(library, under))).toEqual(fake.expected);
        expect(new Set(fake.expected.map((m) => m.source))).toEqual(new Set(['hearth', 'lmstudio', 'ollama', 'jan', 'gpt4all']));
      });

      it("reads each model's header", () => {
        for (const model of within(library, under)) {
          if (model.problem !== undefined) {
            expect(model).toMatchObject({ quantization: null, architecture: null, parameterCount: null, trainedContextLength: null });
            expect(model.problem).toMatch(/not a GGUF/);
            continue;
          }
          // The generated models are F16 llamas trained (so the header says) for 8192 tokens.
          expect(model).toMatchObject({ quantization: 'F16', architecture: 'llama', trainedContextLength: 8192 });
        }
      });

      it('counts every file once in the total, and takes free bytes from the models folder', async () => {
        expect(library.modelsDir).toBe(fake.modelsDir);
        expect(library.freeBytes).toBe(123_456);
        const outside = library.models.filter((m) => !m.path.startsWith(under)).reduce((sum, m) => sum + m.sizeBytes, 0);
        expect(library.totalBytes - outside).toBe(await expectedBytes(fake.expected));
        const split = within(library, under).find((m) => m.parts > 1)!;
        expect(split.sizeBytes).toBe(await expectedBytes([fake.expected.find((m) => m.parts > 1)!]));
      });

      it('reports every folder it looked in', () => {
        const found = library.folders.filter((f) => f.dir.startsWith(under));
        expect(found.every((f) => f.exists)).toBe(true);
        const count = (source: string) => found.filter((f) => f.source === source).reduce((sum, f) => sum + f.models, 0);
        for (const source of ['hearth', 'lmstudio', 'ollama', 'jan', 'gpt4all']) {
          expect(count(source)).toBe(fake.expected.filter((m) => m.source === source).length);
        }
        expect(library.folders[0]).toEqual({ source: 'hearth', dir: fake.modelsDir, exists: true, models: 2 });
      });
    });
  }

  it('finds the default folders without any environment variable on Linux', async () => {
    const under = await freshRoot();
    const fake = await makeFakeHome(under, 'linux');
    const library = await scanLibrary({ modelsDir: fake.modelsDir, home: fake.home, platform: 'linux', env: {} });
    expect(shape(within(library, under))).toEqual(fake.expected);
  });

  it("follows OLLAMA_MODELS and the folders Jan's and GPT4All's settings name", async () => {
    const under = await freshRoot();
    const fake = await makeFakeHome(under, 'linux');
    const elsewhere = join(under, 'empty-home');
    await mkdir(join(elsewhere, '.local', 'share', 'Jan'), { recursive: true });
    await mkdir(join(elsewhere, '.config', 'nomic.ai'), { recursive: true });
    await writeFile(join(elsewhere, '.local', 'share', 'Jan', 'settings.json'), JSON.stringify({ data_folder: join(fake.home, '.local', 'share', 'Jan', 'data') }));
    await writeFile(join(elsewhere, '.config', 'nomic.ai', 'GPT4All.ini'), `[General]\nmodelPath=${join(fake.home, '.local', 'share', 'nomic.ai', 'GPT4All')}/\n`);
    const ollama = join(fake.home, '.ollama', 'models');
    const library = await scanLibrary({ modelsDir: join(under, 'no-models'), home: elsewhere, platform: 'linux', env: { OLLAMA_MODELS: ollama } });
    const sources = (s: string) => within(library, under).filter((m) => m.source === s).map((m) => m.displayName);
    expect(sources('ollama')).toEqual(fake.expected.filter((m) => m.source === 'ollama').map((m) => m.displayName));
    expect(sources('jan')).toEqual(['Fake Jan model']);
    expect(sources('gpt4all')).toEqual(['Fake GPT4All model']);
    expect(sources('lmstudio')).toEqual([]);
    expect(library.folders).toContainEqual({ source: 'ollama', dir: ollama, exists: true, models: 2 });
    expect(library.folders[0]).toEqual({ source: 'hearth', dir: join(under, 'no-models'), exists: false, models: 0 });
    expect(library.totalBytes).toBeGreaterThan(0);
  });
});

describe('scanLibrary, one rule at a time', () => {
  it('lists a file reached twice once, and counts hard links once in the total', async () => {
    const under = await freshRoot();
    const home = join(under, 'home');
    const modelsDir = join(under, 'models');
    await mkdir(modelsDir, { recursive: true });
    const own = join(modelsDir, 'own.gguf');
    await writeFile(own, tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, name: 'Own' }));
    // GPT4All's folder holds a hard link to Hearth's file: two paths, one file on disk.
    const gpt4all = join(home, '.local', 'share', 'nomic.ai', 'GPT4All');
    await mkdir(gpt4all, { recursive: true });
    await link(own, join(gpt4all, 'linked.gguf'));
    // A Jan model imported in place: its model.yml names LM Studio's file by its absolute path.
    const lmFile = join(home, '.lmstudio', 'models', 'pub', 'repo', 'shared.gguf');
    await mkdir(dirname(lmFile), { recursive: true });
    await writeFile(lmFile, tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, name: 'Shared', seed: 7 }));
    const janModel = join(home, '.local', 'share', 'Jan', 'data', 'llamacpp', 'models', 'imported');
    await mkdir(janModel, { recursive: true });
    await writeFile(join(janModel, 'model.yml'), `model_path: '${lmFile}'\nname: imported\n`);

    const library = await scanLibrary({ modelsDir, home, platform: 'linux', env: {}, freeBytes: async () => null });
    const mine = within(library, under);
    expect(mine.map((m) => [m.source, m.displayName]).sort()).toEqual([
      ['gpt4all', 'Own'],
      ['hearth', 'Own'],
      ['lmstudio', 'Shared'],
    ]);
    const size = (await stat(own)).size + (await stat(lmFile)).size;
    expect(library.totalBytes - library.models.filter((m) => !m.path.startsWith(under)).reduce((s, m) => s + m.sizeBytes, 0)).toBe(size);
    expect(library.freeBytes).toBe(0);
  });

  it('names the quantization and counts parameters of a quantized file', async () => {
    const under = await freshRoot();
    const modelsDir = join(under, 'models');
    await mkdir(modelsDir);
    // Q4_K blocks are 256 values in 144 bytes: a 512 × 3 tensor takes 6 blocks.
    const header = encodeGgufHeader({
      metadata: [
        ['general.architecture', { type: 'string', value: 'qwen2' }],
        ['general.file_type', { type: 'uint32', value: 15 }],
        ['qwen2.context_length', { type: 'uint32', value: 32768 }],
      ],
      tensors: [{ name: 'token_embd.weight', dims: [512, 3], typeCode: 12 }],
    });
    const file = join(modelsDir, 'Qwen-Q4_K_M.gguf');
    await writeFile(file, Buffer.concat([header, Buffer.alloc(6 * 144)]));
    const library = await scanLibrary({ modelsDir, home: join(under, 'home'), platform: 'linux', env: {} });
    expect(within(library, under)).toEqual([
      expect.objectContaining({ displayName: 'Qwen-Q4_K_M', quantization: 'Q4_K_M', architecture: 'qwen2', parameterCount: 512 * 3, trainedContextLength: 32768 }),
    ]);
  });

  it('reads a header again only when the file changed', async () => {
    const under = await freshRoot();
    const modelsDir = join(under, 'models');
    await mkdir(modelsDir);
    const file = join(modelsDir, 'm.gguf');
    const options = { layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32 };
    await writeFile(file, tinyLlamaGguf({ ...options, name: 'Before' }));
    await utimes(file, 1_000_000, 1_000_000);
    const input = { modelsDir, home: join(under, 'home'), platform: 'linux' as const, env: {} };
    expect(within(await scanLibrary(input), under).map((m) => m.displayName)).toEqual(['Before']);
    const info = await stat(file);
    expect(modelHeader(file, info.size, info.mtimeMs)).toBe(modelHeader(file, info.size, info.mtimeMs));

    await writeFile(file, tinyLlamaGguf({ ...options, name: 'After!' }));
    await utimes(file, 2_000_000, 2_000_000);
    expect(within(await scanLibrary(input), under).map((m) => m.displayName)).toEqual(['After!']);
  });

  it('reports a split set whose header disagrees with its file names', async () => {
    const under = await freshRoot();
    const modelsDir = join(under, 'models');
    await mkdir(modelsDir);
    const bytes = tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, name: 'Not split' });
    await writeFile(join(modelsDir, 'x-00001-of-00002.gguf'), bytes);
    await writeFile(join(modelsDir, 'x-00002-of-00002.gguf'), bytes);
    const [model] = within(await scanLibrary({ modelsDir, home: join(under, 'home'), platform: 'linux', env: {} }), under);
    expect(model).toMatchObject({ parts: 2, displayName: 'Not split', parameterCount: null, sizeBytes: 2 * bytes.length });
    expect(model!.problem).toMatch(/1 part, but its file name says 2/);
  });

  it.skipIf(process.getuid?.() === 0)('skips a folder it may not read', async () => {
    const under = await freshRoot();
    const home = join(under, 'home');
    const locked = join(home, '.lmstudio', 'models', 'locked', 'repo');
    await mkdir(locked, { recursive: true });
    await writeFile(join(locked, 'm.gguf'), tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32 }));
    await chmod(dirname(locked), 0o000);
    try {
      const library = await scanLibrary({ modelsDir: join(under, 'models'), home, platform: 'linux', env: {} });
      expect(within(library, under)).toEqual([]);
    } finally {
      await chmod(dirname(locked), 0o755);
    }
  });

  it('never lists through a symlink that leaves Hearth’s folder', async () => {
    const under = await freshRoot();
    const modelsDir = join(under, 'models');
    await mkdir(join(under, 'outside'), { recursive: true });
    await mkdir(modelsDir);
    const outside = join(under, 'outside', 'o.gguf');
    await writeFile(outside, tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, name: 'Outside' }));
    await symlink(outside, join(modelsDir, 'out.gguf'));
    await symlink(join(modelsDir, 'real.gguf'), join(modelsDir, 'in.gguf'));
    await writeFile(join(modelsDir, 'real.gguf'), tinyLlamaGguf({ layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32, name: 'Inside' }));
    const library = await scanLibrary({ modelsDir, home: join(under, 'home'), platform: 'linux', env: {} });
    // The link inside the folder and its target are one file: listed once, as the file itself.
    expect(within(library, under).map((m) => [m.displayName, m.fileName])).toEqual([['Inside', 'real.gguf']]);
  });
});
