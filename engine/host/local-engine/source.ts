/**
 * What an engine for this computer is built from, all of it read from disk, never downloaded:
 * node-llama-cpp's addon project (`llama/` in its package: CMakeLists.txt, addon/, cmake/, the
 * patches it applies to llama.cpp), the git bundle of the llama.cpp release it ships, and the
 * Node-API headers (the node-api-headers and node-addon-api packages). In a packaged app these
 * are in app.asar's unpacked twin (electron-builder.yml): cmake, git and the compiler cannot read
 * inside an asar archive. scripts/build-native.ts and scripts/build-llama-server.ts use the same
 * lookups.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** node-llama-cpp's package as installed: enough to name and find its llama.cpp source. */
export interface NodeLlamaCppPackage {
  /** The package folder (the unpacked twin's in a packaged app). */
  readonly dir: string;
  readonly version: string;
  /** The llama.cpp release tag it bundles (llama/llama.cpp.info.json). */
  readonly release: string;
  /** The llama.cpp repository the release is of ("ggml-org/llama.cpp"). */
  readonly repo: string;
  /** The git bundle of that release's source (it may be missing). */
  readonly bundle: string;
}

/** Everything a build reads, checked to exist. */
export interface LlamaSource extends NodeLlamaCppPackage {
  /** The commit the bundle holds. */
  readonly commit: string;
  /** node-llama-cpp's addon project: `<dir>/llama`. */
  readonly project: string;
  /** Patches node-llama-cpp applies to llama.cpp before it builds (llama/patches/*.diff). */
  readonly patches: readonly string[];
  /** node-api-headers' include folder (node_api.h). */
  readonly nodeApiInclude: string;
  /** node-addon-api's folder (napi.h). */
  readonly nodeAddonApiInclude: string;
}

/**
 * The path a process other than Electron can read: inside app.asar, files that electron-builder
 * unpacked are at the same place under app.asar.unpacked.
 */
export function unpackedPath(file: string): string {
  const sep = path.sep;
  return file.replace(`${sep}app.asar${sep}`, `${sep}app.asar.unpacked${sep}`);
}

/** The folder of the package that `require.resolve(name)` from `from` lands in, or null. */
function packageDir(from: string, name: string): string | null {
  let dir: string;
  try {
    dir = path.dirname(createRequire(from).resolve(name));
  } catch {
    return null;
  }
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    try {
      if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === name) return dir;
    } catch {
      // an unreadable package.json on the way up: keep climbing
    }
    if (path.dirname(dir) === dir) return null;
    dir = path.dirname(dir);
  }
}

/**
 * node-llama-cpp as resolved from `from` (a file or file URL whose node_modules to search), or
 * null when it is not installed or its package is not as expected.
 */
export function findNodeLlamaCpp(from: string): NodeLlamaCppPackage | null {
  const found = packageDir(from, 'node-llama-cpp');
  if (found === null) return null;
  const dir = unpackedPath(found);
  try {
    const version = String((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version);
    const info = JSON.parse(readFileSync(path.join(dir, 'llama', 'llama.cpp.info.json'), 'utf8')) as { tag?: unknown; llamaCppGithubRepo?: unknown };
    const repo = typeof info.llamaCppGithubRepo === 'string' ? info.llamaCppGithubRepo : 'ggml-org/llama.cpp';
    return { dir, version, release: String(info.tag), repo, bundle: path.join(dir, 'llama', 'gitRelease.bundle') };
  } catch {
    return null;
  }
}

/**
 * The commit a git bundle holds, read from its plain-text header (a signature line, optional
 * capability and prerequisite lines, then one "<sha> <ref>" line per ref, then an empty line), so
 * that naming a build needs no git.
 */
export function bundleCommit(bundle: string): string {
  const fd = openSync(bundle, 'r');
  let header: string;
  try {
    const bytes = Buffer.alloc(8192);
    header = bytes.subarray(0, readSync(fd, bytes, 0, bytes.length, 0)).toString('latin1');
  } finally {
    closeSync(fd);
  }
  const lines = header.split('\n');
  if (!/^# v[23] git bundle$/.test(lines[0] ?? '')) throw new Error(`${bundle} is not a git bundle`);
  const refs = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') break;
    const [, sha, name] = /^([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/.exec(line) ?? [];
    if (sha && name) refs.set(name, sha);
  }
  const commit = refs.get('HEAD') ?? [...refs.values()][0];
  if (!commit) throw new Error(`${bundle} names no commit`);
  return commit;
}

/** The patch files node-llama-cpp ships for llama.cpp, in name order. */
function patchesOf(project: string): string[] {
  const dir = path.join(project, 'patches');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((name) => name.endsWith('.diff')).sort().map((name) => path.join(dir, name));
}

/**
 * Everything a build reads, resolved from `from` (default: this module), or why an engine
 * cannot be built from it.
 */
export function findLlamaSource(from: string = import.meta.url): { readonly source: LlamaSource } | { readonly reason: string } {
  const nlc = findNodeLlamaCpp(from);
  if (nlc === null) return { reason: 'node-llama-cpp is not installed where Hearth can find it' };
  const project = path.join(nlc.dir, 'llama');
  if (!existsSync(path.join(project, 'CMakeLists.txt')) || !existsSync(path.join(project, 'addon'))) {
    return { reason: `node-llama-cpp ${nlc.version} ships no addon project (${project})` };
  }
  if (!existsSync(nlc.bundle)) return { reason: `node-llama-cpp ${nlc.version} ships no llama.cpp source (${nlc.bundle})` };
  let commit: string;
  try {
    commit = bundleCommit(nlc.bundle);
  } catch (error) {
    return { reason: `llama.cpp's source bundle cannot be read: ${error instanceof Error ? error.message : String(error)}` };
  }
  const headers = packageDir(from, 'node-api-headers');
  const nodeApiInclude = headers === null ? null : path.join(unpackedPath(headers), 'include');
  if (nodeApiInclude === null || !existsSync(path.join(nodeApiInclude, 'node_api.h'))) return { reason: 'the Node-API headers (node-api-headers) are missing' };
  const addonApi = packageDir(from, 'node-addon-api');
  const nodeAddonApiInclude = addonApi === null ? null : unpackedPath(addonApi);
  if (nodeAddonApiInclude === null || !existsSync(path.join(nodeAddonApiInclude, 'napi.h'))) return { reason: 'the Node-API C++ headers (node-addon-api) are missing' };
  return { source: { ...nlc, commit, project, patches: patchesOf(project), nodeApiInclude, nodeAddonApiInclude } };
}
