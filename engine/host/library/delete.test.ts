import { access, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { makeFakeHome, writeSplitModel } from '../../../test/support/fake-homes.ts';
import { deleteModel } from './delete.ts';

let root: string;
let modelsDir: string;
let counter = 0;

beforeEach(async () => {
  root ??= await mkdtemp(join(tmpdir(), 'hearth-delete-'));
  modelsDir = join(root, `models${counter++}`);
  await mkdir(modelsDir);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const exists = (file: string) => access(file).then(() => true, () => false);

async function model(file: string, bytes = 100): Promise<string> {
  await writeFile(file, Buffer.alloc(bytes, 1));
  return file;
}

async function refusal(modelPath: string, dir = modelsDir): Promise<string> {
  const result = await deleteModel(modelPath, dir);
  if (result.ok) throw new Error(`expected a refusal to delete ${modelPath}`);
  return result.error.code;
}

describe('deleteModel', () => {
  it('deletes a model of the folder and says how many bytes it freed', async () => {
    const file = await model(join(modelsDir, 'm.gguf'), 1234);
    const other = await model(join(modelsDir, 'other.gguf'));
    expect(await deleteModel(file, modelsDir)).toEqual({ ok: true, value: { modelBytes: 1234, paths: [file] } });
    expect(await exists(file)).toBe(false);
    expect(await exists(other)).toBe(true);
    expect(await refusal(file)).toBe('NOT_FOUND');
  });

  it('deletes every part of a split model, whichever part is named', async () => {
    const parts = await writeSplitModel(modelsDir, 'split', { layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32 }, 3);
    const sizes = await Promise.all(parts.map(async (p) => (await stat(p)).size));
    const result = await deleteModel(parts[1]!, modelsDir);
    expect(result).toEqual({ ok: true, value: { modelBytes: sizes.reduce((a, b) => a + b, 0), paths: parts } });
    for (const part of parts) expect(await exists(part)).toBe(false);
    // A set with a part already gone loses the rest.
    const again = await writeSplitModel(modelsDir, 'again', { layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 2, nFf: 32 }, 2);
    await rm(again[1]!);
    expect(await deleteModel(again[0]!, modelsDir)).toMatchObject({ ok: true, value: { paths: [again[0]] } });
  });

  it("refuses other apps' models, whatever the path says", async () => {
    const dir = join(root, `home${counter++}`);
    await mkdir(dir);
    const fake = await makeFakeHome(dir, 'linux');
    for (const other of fake.expected.filter((m) => m.source !== 'hearth')) {
      expect(await refusal(other.path, fake.modelsDir)).toBe('FORBIDDEN');
      expect(await exists(other.path)).toBe(true);
    }
  });

  it('refuses anything outside the folder, below it, or not a model', async () => {
    const outside = await model(join(root, `outside${counter++}.gguf`));
    expect(await refusal(outside)).toBe('FORBIDDEN');
    expect(await refusal(join(modelsDir, '..', outside.slice(root.length + 1)))).toBe('FORBIDDEN');
    await mkdir(join(modelsDir, 'sub'));
    const below = await model(join(modelsDir, 'sub', 'm.gguf'));
    expect(await refusal(below)).toBe('FORBIDDEN');
    const notModel = await model(join(modelsDir, 'hearth.db'));
    expect(await refusal(notModel)).toBe('FORBIDDEN');
    await mkdir(join(modelsDir, 'folder.gguf'));
    expect(await refusal(join(modelsDir, 'folder.gguf'))).toBe('FORBIDDEN');
    expect(await refusal('relative/m.gguf')).toBe('INVALID_INPUT');
    for (const file of [outside, below, notModel]) expect(await exists(file)).toBe(true);
  });

  it('refuses a symlink that leads out of the folder, and removes only the link of one that stays in', async () => {
    const outside = await model(join(root, `target${counter++}.gguf`));
    await symlink(outside, join(modelsDir, 'escape.gguf'));
    expect(await refusal(join(modelsDir, 'escape.gguf'))).toBe('FORBIDDEN');
    expect(await exists(outside)).toBe(true);
    // The folder reached through a link to it is still the folder.
    const linkedDir = join(root, `linked${counter++}`);
    await symlink(modelsDir, linkedDir);
    const inside = await model(join(modelsDir, 'real.gguf'), 500);
    await symlink(inside, join(modelsDir, 'alias.gguf'));
    expect(await deleteModel(join(linkedDir, 'alias.gguf'), modelsDir)).toEqual({ ok: true, value: { modelBytes: 0, paths: [join(linkedDir, 'alias.gguf')] } });
    expect(await exists(inside)).toBe(true);
    expect(await deleteModel(join(linkedDir, 'real.gguf'), modelsDir)).toMatchObject({ ok: true, value: { modelBytes: 500 } });
  });

  it('says NOT_FOUND for a missing file or folder', async () => {
    expect(await refusal(join(modelsDir, 'never.gguf'))).toBe('NOT_FOUND');
    expect(await refusal(join(modelsDir, 'never-00001-of-00002.gguf'))).toBe('NOT_FOUND');
    expect(await refusal(join(root, 'no-such-folder', 'm.gguf'), join(root, 'no-such-folder'))).toBe('NOT_FOUND');
  });
});
