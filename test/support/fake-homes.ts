/**
 * A temporary home folder laid out as if LM Studio, Ollama, Jan and GPT4All had downloaded
 * models into it, plus Hearth's own models folder, for the models library's tests and for
 * end-to-end tests that point the host at it (`home` and `env` go where the host reads the
 * user's home and environment).
 *
 * Every model is a small generated llama GGUF (test/support/models.ts); each has its own
 * `general.name` and a distinct modification time, so `expected` is the library's order, newest
 * first. Beside them lies what the library must not list: an unfinished download (`.part`),
 * GPT4All's `incomplete-` file, a dot-file, vision projectors, an incomplete split set, a
 * dangling symlink, a symlink from Hearth's folder to a model outside it, a directory symlink
 * back up the tree, and an Ollama manifest whose digest is not a digest. A text file named
 * `.gguf` in Hearth's folder is listed, with a problem.
 *
 * On Linux the real machine's `/usr/share/ollama` is searched too: compare only models under
 * `root`.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ModelSource } from '../../engine/contract/index.ts';
import { encodeGguf, tinyLlamaModel, type GgufInput, type TinyLlamaOptions } from './gguf-writer.ts';
import { tinyModelPath } from './models.ts';

/** A model the library must list, in its order (newest first). */
export interface ExpectedModel {
  readonly source: ModelSource;
  readonly displayName: string;
  /** The path the library gives (the first part of a split model). */
  readonly path: string;
  /** Parts of a split model (1 for a single file). */
  readonly parts: number;
  /** Parameters, from the generated tensors' shapes; null when the file is not a model. */
  readonly parameterCount: number | null;
  /** Whether the library must report a problem (the file is not a GGUF). */
  readonly problem: boolean;
}

export interface FakeHome {
  readonly home: string;
  /** The environment the host would see: HOME and, per OS, the variables the apps' folders follow. */
  readonly env: NodeJS.ProcessEnv;
  /** Hearth's models folder (outside the home). */
  readonly modelsDir: string;
  readonly expected: readonly ExpectedModel[];
}

/** Small shapes: each file is about 120 KiB, still a llama model llama.cpp can load. */
const small: TinyLlamaOptions = { layers: 1, nEmbd: 64, nHead: 2, nHeadKv: 1, nFf: 64 };

/** Parameters of a generated model: its tensors' elements, as the writer makes them. */
function generatedParameters(input: GgufInput): number {
  return input.tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
}

/**
 * Writes a split model as gguf-split does: the first part holds the metadata and the first
 * tensors, every part says `split.no`, `split.count` and `split.tensors.count`. Returns the parts'
 * paths in order.
 */
export async function writeSplitModel(dir: string, base: string, options: TinyLlamaOptions, count: number): Promise<string[]> {
  const model = tinyLlamaModel(options);
  const perPart = Math.ceil(model.tensors.length / count);
  const paths: string[] = [];
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const split: GgufInput['metadata'] = [
      ['split.no', { type: 'uint16', value: i }],
      ['split.count', { type: 'uint16', value: count }],
      ['split.tensors.count', { type: 'int32', value: model.tensors.length }],
    ];
    const file = join(dir, `${base}-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`);
    await writeFile(file, encodeGguf({ metadata: i === 0 ? [...model.metadata, ...split] : split, tensors: model.tensors.slice(i * perPart, (i + 1) * perPart) }));
    paths.push(file);
  }
  return paths;
}

/** Builds the fake home under `root` (which must exist and be empty) for Linux or macOS layouts. */
export async function makeFakeHome(root: string, platform: 'linux' | 'darwin' = 'linux'): Promise<FakeHome> {
  const home = join(root, 'home');
  const modelsDir = join(root, 'hearth-models');
  const dataDir = platform === 'darwin' ? join(home, 'Library', 'Application Support') : join(home, '.local', 'share');
  const env: NodeJS.ProcessEnv =
    platform === 'darwin' ? { HOME: home } : { HOME: home, XDG_DATA_HOME: dataDir, XDG_CONFIG_HOME: join(home, '.config') };
  const expected: ExpectedModel[] = [];
  // Newest first: each model placed is a minute older than the one before.
  let clock = Date.UTC(2025, 0, 1) / 1000;
  const age = async (files: readonly string[]): Promise<void> => {
    for (const file of files) await utimes(file, clock, clock);
    clock -= 60;
  };

  /** Copies a generated model named `name` to `file` and expects it. */
  const place = async (source: ModelSource, file: string, name: string, displayName = name): Promise<void> => {
    const options = { ...small, name, seed: expected.length + 1 };
    await mkdir(dirname(file), { recursive: true });
    await copyFile(await tinyModelPath(options, 'fake-home'), file);
    await age([file]);
    expected.push({ source, displayName, path: file, parts: 1, parameterCount: generatedParameters(tinyLlamaModel(options)), problem: false });
  };

  // Hearth's own folder.
  await place('hearth', join(modelsDir, 'hearth-own.gguf'), 'Fake Hearth model');
  const broken = join(modelsDir, 'broken.gguf');
  await writeFile(broken, 'Not a model: a text file with a .gguf name.\n'.repeat(4));
  await age([broken]);
  expected.push({ source: 'hearth', displayName: 'broken', path: broken, parts: 1, parameterCount: null, problem: true });
  await writeFile(join(modelsDir, 'downloading.gguf.part'), 'half a download');
  await writeFile(join(modelsDir, 'also-downloading.gguf.ipull'), 'half a download');
  await copyFile(await tinyModelPath({ ...small, name: 'Hidden' }, 'fake-home'), join(modelsDir, '.hidden.gguf'));

  // LM Studio: publisher/repo/file, now and in the older cache folder, with a split model.
  const lmstudio = join(home, '.lmstudio', 'models');
  const lmFile = join(lmstudio, 'fakepub', 'Fake-GGUF', 'fake-lmstudio-F16.gguf');
  await place('lmstudio', lmFile, 'Fake LM Studio model');
  const splitOptions = { ...small, name: 'Fake split model', seed: 99 };
  const parts = await writeSplitModel(join(lmstudio, 'fakepub', 'Split-GGUF'), 'fake-split-F16', splitOptions, 3);
  await age(parts);
  expected.push({ source: 'lmstudio', displayName: 'Fake split model', path: parts[0]!, parts: 3, parameterCount: generatedParameters(tinyLlamaModel(splitOptions)), problem: false });
  const incomplete = await writeSplitModel(join(lmstudio, 'fakepub', 'Partial-GGUF'), 'partial', { ...small, name: 'Partial' }, 3);
  for (const part of incomplete.slice(1)) await rm(part);
  await copyFile(lmFile, join(lmstudio, 'fakepub', 'Fake-GGUF', 'mmproj-fake-F16.gguf'));
  await symlink(join(root, 'nowhere.gguf'), join(lmstudio, 'fakepub', 'Fake-GGUF', 'gone.gguf'));
  await symlink(lmstudio, join(lmstudio, 'fakepub', 'loop'));
  await place('lmstudio', join(home, '.cache', 'lm-studio', 'models', 'oldpub', 'Old-GGUF', 'old.gguf'), 'Fake old LM Studio model');
  // A link from Hearth's folder to a model outside it: LM Studio lists the model, Hearth does not.
  await symlink(lmFile, join(modelsDir, 'escape.gguf'));

  // Ollama: two tags on one blob, a Hugging Face model, and a manifest with a malformed digest.
  const ollama = join(home, '.ollama', 'models');
  const ollamaBlob = async (name: string, seed: number): Promise<{ digest: string; file: string; parameterCount: number }> => {
    const options = { ...small, name, seed };
    const bytes = await readFile(await tinyModelPath(options, 'fake-home'));
    const hex = createHash('sha256').update(bytes).digest('hex');
    const file = join(ollama, 'blobs', `sha256-${hex}`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    return { digest: `sha256:${hex}`, file, parameterCount: generatedParameters(tinyLlamaModel(options)) };
  };
  const manifest = async (parts: readonly [string, string, string, string], digest: string): Promise<void> => {
    const file = join(ollama, 'manifests', ...parts);
    await mkdir(dirname(file), { recursive: true });
    const layers = [
      { mediaType: 'application/vnd.ollama.image.model', digest, size: 1 },
      { mediaType: 'application/vnd.ollama.image.template', digest: `sha256:${'0'.repeat(64)}`, size: 1 },
    ];
    await writeFile(file, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', layers }));
  };
  const shared = await ollamaBlob('Fake Ollama model', 201);
  await manifest(['registry.ollama.ai', 'library', 'fakellama', 'latest'], shared.digest);
  await manifest(['registry.ollama.ai', 'library', 'fakellama', 'small'], shared.digest);
  await age([shared.file]);
  expected.push({ source: 'ollama', displayName: 'fakellama:latest, fakellama:small', path: shared.file, parts: 1, parameterCount: shared.parameterCount, problem: false });
  const hf = await ollamaBlob('Fake Ollama HF model', 202);
  await manifest(['hf.co', 'someone', 'Some-GGUF', 'Q8_0'], hf.digest);
  await age([hf.file]);
  expected.push({ source: 'ollama', displayName: 'hf.co/someone/Some-GGUF:Q8_0', path: hf.file, parts: 1, parameterCount: hf.parameterCount, problem: false });
  await manifest(['registry.ollama.ai', 'library', 'evil', 'latest'], 'sha256:../../../hearth-models/hearth-own');

  // Jan: the current layout (model.yml naming the file), and the one before 0.6.
  const janModel = join(dataDir, 'Jan', 'data', 'llamacpp', 'models', 'fakeorg', 'fake-jan');
  await place('jan', join(janModel, 'model.gguf'), 'Fake Jan model');
  await writeFile(join(janModel, 'model.yml'), 'model_path: llamacpp/models/fakeorg/fake-jan/model.gguf\nmmproj_path: llamacpp/models/fakeorg/fake-jan/mmproj.gguf\nname: fakeorg/fake-jan\nsize_bytes: 1\n');
  await copyFile(join(janModel, 'model.gguf'), join(janModel, 'mmproj.gguf'));
  const oldJan = join(home, 'jan', 'models', 'old-jan');
  await place('jan', join(oldJan, 'old-jan.F16.gguf'), 'Fake old Jan model');
  await writeFile(join(oldJan, 'model.json'), JSON.stringify({ id: 'old-jan', format: 'gguf' }));

  // GPT4All: flat, with an unfinished download beside.
  const gpt4all = join(dataDir, 'nomic.ai', 'GPT4All');
  await place('gpt4all', join(gpt4all, 'fake-gpt4all.Q4_0.gguf'), 'Fake GPT4All model');
  await writeFile(join(gpt4all, 'incomplete-other.Q4_0.gguf'), 'GGUF and then nothing');
  return { home, env, modelsDir, expected };
}
