/**
 * Models Jan downloaded. Current Jan (the llama.cpp extension, its `list` and `import`) keeps
 * `<data folder>/llamacpp/models/<id>/model.yml`, where the id may hold slashes
 * (`<org>/<repo>`), and the yml's `model_path` is relative to the data folder (a download,
 * `llamacpp/models/<id>/model.gguf`) or absolute (a file imported in place); `name` is the
 * name Jan shows. Releases before 0.6 kept `~/jan/models/<id>/<file>.gguf` beside a
 * `model.json`. Both are read: a folder with a model.yml gives the file it names, any other
 * folder its GGUF files.
 */
import path from 'node:path';
import { groupParts, isModelFileName, readSmallText, startsWithGgufMagic } from './files.ts';
import { describeFile, walkFiles, type WalkedFile } from './walk.ts';

const MODEL_YML = 'model.yml';
/** A model.yml is a few lines; a larger file is not read. */
const MAX_YML_BYTES = 64 * 1024;

/** A Jan model: its files (the parts of a split model; a model.yml names one) and a name for it. */
export interface JanModel {
  readonly files: readonly WalkedFile[];
  /** The yml's `name`, else the model's id (its folder under the models folder). */
  readonly name: string;
}

/**
 * The value of a top-level `key: value` line of a simple YAML file, unquoted. Jan writes
 * model.yml with serde_yaml: plain scalars, or quoted ones when they need it.
 */
export function yamlValue(text: string, key: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(`${key}:`)) continue;
    let value = line.slice(key.length + 1).trim();
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) {
      const quote = value[0];
      value = value.slice(1, -1);
      value = quote === "'" ? value.replaceAll("''", "'") : value.replace(/\\(["\\/])/g, '$1');
    }
    return value === '' || value === '~' || value === 'null' ? undefined : value;
  }
  return undefined;
}

/** Every model under a Jan models folder (either layout); nothing when it is missing. */
export async function scanJan(dir: string): Promise<JanModel[]> {
  const files = await walkFiles(dir, { maxDepth: 3, accept: (name) => name === MODEL_YML || isModelFileName(name) });
  const byFolder = new Map<string, WalkedFile[]>();
  for (const file of files) {
    const key = file.dirs.join('/');
    const list = byFolder.get(key);
    if (list) list.push(file);
    else byFolder.set(key, [file]);
  }
  // `<data folder>/llamacpp/models`: relative model paths start at the data folder.
  const dataFolder = path.dirname(path.dirname(dir));
  const models: JanModel[] = [];
  for (const [id, inFolder] of byFolder) {
    if (id === '') continue;
    const yml = inFolder.find((f) => f.name === MODEL_YML);
    const ggufs = inFolder.filter((f) => f.name !== MODEL_YML);
    if (yml) {
      const named = await modelOfYml(yml, dataFolder);
      if (named) {
        models.push({ files: [named.file], name: named.name ?? id });
        continue;
      }
    }
    for (const parts of groupParts(ggufs)) models.push({ files: parts, name: id });
  }
  return models;
}

async function modelOfYml(yml: WalkedFile, dataFolder: string): Promise<{ file: WalkedFile; name: string | undefined } | undefined> {
  const text = await readSmallText(yml.realPath, MAX_YML_BYTES);
  if (text === undefined) return undefined;
  const modelPath = yamlValue(text, 'model_path');
  if (modelPath === undefined) return undefined;
  const file = path.isAbsolute(modelPath) ? modelPath : path.join(dataFolder, modelPath);
  // The yml may name any file on the disk: it is listed only when it is a GGUF.
  const found = await describeFile(file);
  if (!found || !(await startsWithGgufMagic(found.realPath))) return undefined;
  return { file: found, name: yamlValue(text, 'name') };
}
