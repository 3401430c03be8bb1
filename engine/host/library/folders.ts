/**
 * Where the models library looks: Hearth's own folder first, then where LM Studio, Ollama, Jan
 * and GPT4All keep what they downloaded, for each OS. Other apps' models are used in place,
 * never copied; the library only reads those folders.
 *
 * What each place rests on (the apps' documentation and sources):
 * - LM Studio: `~/.lmstudio/models/<publisher>/<repo>/<file>.gguf` (its "sideload" docs, the
 *   same on every OS); versions before 0.3 used `~/.cache/lm-studio/models` with the same layout.
 *   A models folder moved in its settings is not found (where it records it is not documented).
 * - Ollama: `$OLLAMA_MODELS`, else `~/.ollama/models` (`%USERPROFILE%\.ollama\models` on
 *   Windows); the Linux install script runs a service whose home is `/usr/share/ollama`, so its
 *   models are in `/usr/share/ollama/.ollama/models` (its FAQ). The layout is in ollama.ts.
 * - Jan: its data folder is `<data dir>/Jan/data`, where the data dir is `$XDG_DATA_HOME` or
 *   `~/.local/share` on Linux, `~/Library/Application Support` on macOS and `%APPDATA%` on
 *   Windows (Jan's `default_data_folder_path`, the `dirs` crate's `data_dir`); a moved data
 *   folder is recorded as `data_folder` in `<data dir>/Jan/settings.json`. Current versions keep
 *   `llamacpp/models/<id>/model.yml` there; releases before 0.6 kept `~/jan/models/<id>/`.
 * - GPT4All: Qt's `AppLocalDataLocation` for organisation `nomic.ai`, application `GPT4All`
 *   (its `defaultLocalModelsPath`): `~/.local/share/nomic.ai/GPT4All` on Linux,
 *   `~/Library/Application Support/nomic.ai/GPT4All` on macOS, `%LOCALAPPDATA%\nomic.ai\GPT4All`
 *   on Windows. A moved folder is `modelPath` in its settings (`GPT4All.ini` under
 *   `~/.config/nomic.ai`, `%APPDATA%\nomic.ai` on Windows).
 */
import path from 'node:path';
import type { ModelSource } from '../../contract/index.ts';
import { readSmallText } from './files.ts';

/** A folder to look in, and whose models it holds. */
export interface FolderCandidate {
  readonly source: ModelSource;
  readonly dir: string;
}

/** Where the library looks: the same input on every call, so tests can give any OS's layout. */
export interface FolderInput {
  /** Hearth's models folder. */
  readonly modelsDir: string;
  readonly home: string;
  readonly platform: NodeJS.Platform;
  readonly env: NodeJS.ProcessEnv;
}

/** Path functions of the platform the folders are for (Windows paths can be built on Linux). */
function pathsFor(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** An environment variable that holds an absolute path for this platform; undefined otherwise (XDG says relative values are ignored). */
function absoluteEnv(input: FolderInput, name: string): string | undefined {
  const value = input.env[name];
  return value !== undefined && value !== '' && pathsFor(input.platform).isAbsolute(value) ? value : undefined;
}

/** Where per-user application data lives: Jan's `data_dir`. */
function dataDir(input: FolderInput): string {
  const p = pathsFor(input.platform);
  switch (input.platform) {
    case 'darwin':
      return p.join(input.home, 'Library', 'Application Support');
    case 'win32':
      return absoluteEnv(input, 'APPDATA') ?? p.join(input.home, 'AppData', 'Roaming');
    default:
      return absoluteEnv(input, 'XDG_DATA_HOME') ?? p.join(input.home, '.local', 'share');
  }
}

/** Qt's per-user local data folder (`GenericDataLocation` on Unix, the local AppData on Windows). */
function localDataDir(input: FolderInput): string {
  const p = pathsFor(input.platform);
  if (input.platform === 'win32') return absoluteEnv(input, 'LOCALAPPDATA') ?? p.join(input.home, 'AppData', 'Local');
  return dataDir(input);
}

/** Where Qt keeps an application's settings file in INI format. */
function qtConfigDir(input: FolderInput): string {
  const p = pathsFor(input.platform);
  if (input.platform === 'win32') return absoluteEnv(input, 'APPDATA') ?? p.join(input.home, 'AppData', 'Roaming');
  return (input.platform === 'darwin' ? undefined : absoluteEnv(input, 'XDG_CONFIG_HOME')) ?? p.join(input.home, '.config');
}

/** Every folder to look in for this OS, Hearth's own first (contract ModelSource). */
export function modelFolders(input: FolderInput): FolderCandidate[] {
  const p = pathsFor(input.platform);
  const { home } = input;
  const folders: FolderCandidate[] = [
    { source: 'hearth', dir: input.modelsDir },
    { source: 'lmstudio', dir: p.join(home, '.lmstudio', 'models') },
    { source: 'lmstudio', dir: p.join(home, '.cache', 'lm-studio', 'models') },
  ];
  const ollama = absoluteEnv(input, 'OLLAMA_MODELS');
  if (ollama !== undefined) folders.push({ source: 'ollama', dir: ollama });
  folders.push({ source: 'ollama', dir: p.join(home, '.ollama', 'models') });
  if (input.platform === 'linux') folders.push({ source: 'ollama', dir: '/usr/share/ollama/.ollama/models' });
  folders.push({ source: 'jan', dir: p.join(dataDir(input), 'Jan', 'data', 'llamacpp', 'models') });
  folders.push({ source: 'jan', dir: p.join(home, 'jan', 'models') });
  folders.push({ source: 'gpt4all', dir: p.join(localDataDir(input), 'nomic.ai', 'GPT4All') });
  return uniqueFolders(folders, input.platform);
}

/** Settings files are small; anything larger is not one and is not read. */
const MAX_SETTINGS_BYTES = 256 * 1024;

/**
 * Folders the apps' own settings name when the user moved them: Jan's `data_folder` and
 * GPT4All's `modelPath`. Unreadable or malformed settings name none. Reads two small files.
 */
export async function configuredFolders(input: FolderInput): Promise<FolderCandidate[]> {
  const p = pathsFor(input.platform);
  const found: FolderCandidate[] = [];
  const jan = await readSmallText(p.join(dataDir(input), 'Jan', 'settings.json'), MAX_SETTINGS_BYTES);
  if (jan !== undefined) {
    const folder = janDataFolder(jan);
    if (folder !== undefined && p.isAbsolute(folder)) found.push({ source: 'jan', dir: p.join(folder, 'llamacpp', 'models') });
  }
  const gpt4all = await readSmallText(p.join(qtConfigDir(input), 'nomic.ai', 'GPT4All.ini'), MAX_SETTINGS_BYTES);
  if (gpt4all !== undefined) {
    const folder = iniValue(gpt4all, 'modelPath');
    if (folder !== undefined && p.isAbsolute(folder)) found.push({ source: 'gpt4all', dir: folder });
  }
  return found;
}

/** Drops a folder already listed (the first listing wins, so Hearth's own folder keeps its source). */
export function uniqueFolders(folders: readonly FolderCandidate[], platform: NodeJS.Platform): FolderCandidate[] {
  const p = pathsFor(platform);
  const seen = new Set<string>();
  const result: FolderCandidate[] = [];
  for (const folder of folders) {
    const key = p.resolve(folder.dir);
    const compared = platform === 'win32' || platform === 'darwin' ? key.toLowerCase() : key;
    if (seen.has(compared)) continue;
    seen.add(compared);
    result.push(folder);
  }
  return result;
}

function janDataFolder(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const folder = (parsed as Record<string, unknown>)['data_folder'];
    return typeof folder === 'string' && folder !== '' ? folder : undefined;
  } catch {
    return undefined;
  }
}

/** A key's value in a Qt INI file (any section), without surrounding quotes. */
export function iniValue(text: string, key: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf('=');
    if (at < 0 || line.slice(0, at).trim() !== key) continue;
    const value = line.slice(at + 1).trim();
    const unquoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    return unquoted === '' ? undefined : unquoted;
  }
  return undefined;
}
