import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseName, groupParts, isModelFileName, splitPart, splitPartName } from './files.ts';
import { configuredFolders, iniValue, modelFolders } from './folders.ts';
import { yamlValue } from './jan.ts';
import { modelBlobName, ollamaName } from './ollama.ts';
import { walkFiles } from './walk.ts';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hearth-folders-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('modelFolders', () => {
  it('lays out Windows folders from the profile and AppData variables', () => {
    const folders = modelFolders({
      modelsDir: 'D:\\Hearth\\models',
      home: 'C:\\Users\\ann',
      platform: 'win32',
      env: { APPDATA: 'C:\\Users\\ann\\AppData\\Roaming', LOCALAPPDATA: 'E:\\Local', OLLAMA_MODELS: 'F:\\ollama' },
    });
    expect(folders).toEqual([
      { source: 'hearth', dir: 'D:\\Hearth\\models' },
      { source: 'lmstudio', dir: 'C:\\Users\\ann\\.lmstudio\\models' },
      { source: 'lmstudio', dir: 'C:\\Users\\ann\\.cache\\lm-studio\\models' },
      { source: 'ollama', dir: 'F:\\ollama' },
      { source: 'ollama', dir: 'C:\\Users\\ann\\.ollama\\models' },
      { source: 'jan', dir: 'C:\\Users\\ann\\AppData\\Roaming\\Jan\\data\\llamacpp\\models' },
      { source: 'jan', dir: 'C:\\Users\\ann\\jan\\models' },
      { source: 'gpt4all', dir: 'E:\\Local\\nomic.ai\\GPT4All' },
    ]);
    // Without the variables, the profile's usual AppData folders.
    const bare = modelFolders({ modelsDir: 'D:\\m', home: 'C:\\Users\\ann', platform: 'win32', env: {} });
    expect(bare.find((f) => f.source === 'gpt4all')?.dir).toBe('C:\\Users\\ann\\AppData\\Local\\nomic.ai\\GPT4All');
    expect(bare.filter((f) => f.source === 'ollama')).toEqual([{ source: 'ollama', dir: 'C:\\Users\\ann\\.ollama\\models' }]);
  });

  it('lays out macOS folders under Application Support', () => {
    const folders = modelFolders({ modelsDir: '/m', home: '/Users/ann', platform: 'darwin', env: { XDG_DATA_HOME: '/elsewhere' } });
    expect(folders.map((f) => f.dir)).toEqual([
      '/m',
      '/Users/ann/.lmstudio/models',
      '/Users/ann/.cache/lm-studio/models',
      '/Users/ann/.ollama/models',
      '/Users/ann/Library/Application Support/Jan/data/llamacpp/models',
      '/Users/ann/jan/models',
      '/Users/ann/Library/Application Support/nomic.ai/GPT4All',
    ]);
  });

  it('follows XDG_DATA_HOME on Linux when it is absolute, and adds the Ollama service folder', () => {
    const dirs = (env: NodeJS.ProcessEnv) => modelFolders({ modelsDir: '/m', home: '/home/ann', platform: 'linux', env }).map((f) => `${f.source} ${f.dir}`);
    expect(dirs({ XDG_DATA_HOME: '/data' })).toEqual([
      'hearth /m',
      'lmstudio /home/ann/.lmstudio/models',
      'lmstudio /home/ann/.cache/lm-studio/models',
      'ollama /home/ann/.ollama/models',
      'ollama /usr/share/ollama/.ollama/models',
      'jan /data/Jan/data/llamacpp/models',
      'jan /home/ann/jan/models',
      'gpt4all /data/nomic.ai/GPT4All',
    ]);
    // A relative XDG value is ignored, as the XDG spec says.
    expect(dirs({ XDG_DATA_HOME: 'relative' })).toContain('gpt4all /home/ann/.local/share/nomic.ai/GPT4All');
  });

  it('lists a folder once, under the first source that names it', () => {
    const folders = modelFolders({ modelsDir: '/home/ann/.lmstudio/models/', home: '/home/ann', platform: 'linux', env: { OLLAMA_MODELS: '/home/ann/.ollama/models' } });
    expect(folders.filter((f) => f.dir.includes('.lmstudio'))).toEqual([{ source: 'hearth', dir: '/home/ann/.lmstudio/models/' }]);
    expect(folders.filter((f) => f.source === 'ollama').map((f) => f.dir)).toEqual(['/home/ann/.ollama/models', '/usr/share/ollama/.ollama/models']);
  });
});

describe('configuredFolders', () => {
  it("reads Jan's data_folder and GPT4All's modelPath, and ignores what it cannot use", async () => {
    const home = join(root, 'configured');
    await mkdir(join(home, '.local', 'share', 'Jan'), { recursive: true });
    await mkdir(join(home, '.config', 'nomic.ai'), { recursive: true });
    const input = { modelsDir: '/m', home, platform: 'linux' as const, env: {} };
    expect(await configuredFolders(input)).toEqual([]);
    await writeFile(join(home, '.local', 'share', 'Jan', 'settings.json'), JSON.stringify({ data_folder: '/mnt/jan' }));
    await writeFile(join(home, '.config', 'nomic.ai', 'GPT4All.ini'), '[General]\nmodelPath="/mnt/gpt4all/"\n');
    expect(await configuredFolders(input)).toEqual([
      { source: 'jan', dir: '/mnt/jan/llamacpp/models' },
      { source: 'gpt4all', dir: '/mnt/gpt4all/' },
    ]);
    await writeFile(join(home, '.local', 'share', 'Jan', 'settings.json'), '{ not json');
    await writeFile(join(home, '.config', 'nomic.ai', 'GPT4All.ini'), 'modelPath=relative/path\n');
    expect(await configuredFolders(input)).toEqual([]);
    // A settings file far larger than any real one is not read, whatever it says.
    await writeFile(join(home, '.local', 'share', 'Jan', 'settings.json'), JSON.stringify({ data_folder: '/mnt/jan', padding: 'x'.repeat(300 * 1024) }));
    expect(await configuredFolders(input)).toEqual([]);
  });
});

describe('the apps’ file formats', () => {
  it('reads Ollama names and model layers strictly', () => {
    expect(ollamaName('registry.ollama.ai', 'library', 'llama3', 'latest')).toBe('llama3:latest');
    expect(ollamaName('registry.ollama.ai', 'ann', 'tool', '7b')).toBe('ann/tool:7b');
    expect(ollamaName('hf.co', 'bartowski', 'Repo-GGUF', 'Q4_K_M')).toBe('hf.co/bartowski/Repo-GGUF:Q4_K_M');
    const hex = 'ab'.repeat(32);
    const layer = (digest: unknown, mediaType = 'application/vnd.ollama.image.model') => ({ layers: [{ mediaType: 'application/vnd.ollama.image.license', digest: `sha256:${'0'.repeat(64)}` }, { mediaType, digest }] });
    expect(modelBlobName(layer(`sha256:${hex}`))).toBe(`sha256-${hex}`);
    for (const bad of [`sha256:${hex.toUpperCase()}`, `sha256:${hex}0`, 'sha256:../../etc/passwd', `sha512:${hex}`, `sha256:${hex}/..`, 42, null]) {
      expect(modelBlobName(layer(bad))).toBeUndefined();
    }
    expect(modelBlobName(layer(`sha256:${hex}`, 'application/vnd.ollama.image.projector'))).toBeUndefined();
    expect(modelBlobName({ layers: 'no' })).toBeUndefined();
    expect(modelBlobName('text')).toBeUndefined();
  });

  it("reads Jan's model.yml and GPT4All's settings lines", () => {
    const yml = "model_path: llamacpp/models/a/b/model.gguf\nname: 'it''s b'\nmmproj_path: ~\nsize_bytes: 10\n";
    expect(yamlValue(yml, 'model_path')).toBe('llamacpp/models/a/b/model.gguf');
    expect(yamlValue(yml, 'name')).toBe("it's b");
    expect(yamlValue(yml, 'mmproj_path')).toBeUndefined();
    expect(yamlValue('  model_path: nested\n', 'model_path')).toBeUndefined();
    expect(yamlValue('model_path: "C:\\\\models\\\\m.gguf"\n', 'model_path')).toBe('C:\\models\\m.gguf');
    expect(iniValue('[General]\r\nmodelPath=/x/y/\r\n', 'modelPath')).toBe('/x/y/');
    expect(iniValue('modelPathX=/no\n', 'modelPath')).toBeUndefined();
  });

  it('tells model files from junk and groups split sets', () => {
    for (const name of ['m.gguf', 'M.GGUF', 'm-00001-of-00002.gguf']) expect(isModelFileName(name)).toBe(true);
    for (const name of ['m.gguf.part', 'm.gguf.ipull', '.m.gguf', 'incomplete-m.gguf', 'mmproj-m-f16.gguf', 'model.yml', 'm.bin']) expect(isModelFileName(name)).toBe(false);
    expect(splitPart('Qwen-Q4_K_M-00002-of-00003.gguf')).toEqual({ base: 'Qwen-Q4_K_M', part: 2, count: 3 });
    expect(splitPart('m-00004-of-00003.gguf')).toBeUndefined();
    expect(splitPart('m-00001-of-00001.gguf')).toBeUndefined();
    expect(splitPartName('Qwen-Q4_K_M', 2, 3)).toBe('Qwen-Q4_K_M-00002-of-00003.gguf');
    expect(baseName('Qwen-00001-of-00002.gguf')).toBe('Qwen');
    expect(baseName('plain.gguf')).toBe('plain');
    const file = (name: string, dirs: string[] = []) => ({ path: name, name, dirs, realPath: name, size: 1, mtimeMs: 0, identity: name, isLink: false });
    const groups = groupParts([file('a-00002-of-00002.gguf'), file('a-00001-of-00002.gguf'), file('b-00001-of-00003.gguf'), file('c.gguf'), file('a-00002-of-00002.gguf', ['x'])]);
    expect(groups.map((g) => g.map((f) => f.name))).toEqual([['c.gguf'], ['a-00001-of-00002.gguf', 'a-00002-of-00002.gguf']]);
  });
});

describe('walkFiles', () => {
  it('stops at its depth and entry budget and never loops through a directory link', async () => {
    const top = join(root, 'walk');
    await mkdir(join(top, 'a', 'b', 'c'), { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(top, `f${String(i).padStart(2, '0')}.gguf`), 'x');
    await writeFile(join(top, 'a', 'b', 'deep.gguf'), 'x');
    await writeFile(join(top, 'a', 'b', 'c', 'deeper.gguf'), 'x');
    await symlink(top, join(top, 'a', 'up'));
    await symlink(join(top, 'a'), join(top, 'a', 'b', 'again'));
    const accept = (name: string) => name.endsWith('.gguf');
    const names = async (maxDepth: number, maxEntries?: number) => (await walkFiles(top, { maxDepth, accept, maxEntries })).map((f) => f.name);
    expect(await names(0)).toHaveLength(20);
    expect(await names(2)).toContain('deep.gguf');
    expect(await names(2)).not.toContain('deeper.gguf');
    const all = await names(10);
    expect(all.filter((n) => n === 'deeper.gguf')).toHaveLength(1);
    expect(all).toHaveLength(22);
    expect((await names(0, 5)).length).toBeLessThanOrEqual(5);
    expect(await walkFiles(join(root, 'missing'), { maxDepth: 3, accept })).toEqual([]);
  });
});
