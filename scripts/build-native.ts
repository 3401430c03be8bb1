/**
 * Builds the KV codec addon (native/) with node-gyp.
 *
 *   node scripts/build-native.ts            postinstall: never fails the install; on failure it
 *                                           says why and that the TypeScript fallback will be used
 *   node scripts/build-native.ts --strict   `npm run build:native`: exits non-zero on failure
 *
 * Node-API needs only the Node headers, of any version with Node-API 8. node-gyp downloads the
 * running Node's headers unless told otherwise, which fails offline, so headers already on disk
 * are preferred: npm's `nodedir` setting, then those beside the Node binary, then the system's.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeLlamaCpp } from '../engine/host/local-engine/source.ts';

const strict = process.argv.includes('--strict');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function fail(reason: string): never {
  if (strict) {
    console.error(`build:native failed: ${reason}`);
    process.exit(1);
  }
  console.warn(`hearth: the native KV codec addon was not built (${reason}).`);
  console.warn('hearth: the TypeScript fallback will be used (same output, slower). Retry with `npm run build:native`.');
  process.exit(0);
}

function nodeGypBin(): string | null {
  try {
    const pkg = createRequire(join(root, 'package.json')).resolve('node-gyp/package.json');
    const bin = join(dirname(pkg), 'bin', 'node-gyp.js');
    return existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

/** A directory holding include/node/node_api.h, or null to let node-gyp fetch headers. */
function headersDir(): string | null {
  if (process.env.npm_config_nodedir) return null; // node-gyp reads npm's setting itself
  const candidates = [join(dirname(process.execPath), '..'), '/usr', '/usr/local'];
  return candidates.find((dir) => existsSync(join(dir, 'include', 'node', 'node_api.h'))) ?? null;
}

/**
 * node-llama-cpp's package folder, version, bundled llama.cpp release and the git bundle of that
 * release's source it ships (which may be missing), or null. scripts/build-llama-server.ts builds
 * llama-server from the same bundle, and the app builds its engine for this computer from it
 * (engine/host/local-engine/source.ts, which finds it).
 */
export function nodeLlamaCpp(): { dir: string; version: string; release: string; bundle: string } | null {
  const found = findNodeLlamaCpp(join(root, 'package.json'));
  return found === null ? null : { dir: found.dir, version: found.version, release: found.release, bundle: found.bundle };
}

/**
 * The headers the state bridge compiles against (native/src/state_bridge.cc): node-llama-cpp's
 * addon headers, which ship in its package, and llama.cpp's and ggml's public headers of the
 * release it bundles, taken from the git bundle of that release it also ships. Kept in
 * native/llama-headers/<version>-<release>/ (not committed). Returns node-gyp's variables, or
 * the reason the bridge is left out (the addon is then built without it; the engine moves state
 * through files).
 */
function stateBridgeHeaders(): { args: string[] } | { reason: string } {
  const nlc = nodeLlamaCpp();
  if (!nlc) return { reason: 'node-llama-cpp is not installed' };
  const dir = join(root, 'native', 'llama-headers', `${nlc.version}-${nlc.release}`);
  const args = [`--llama_headers=${dir}`, `--node_llama_cpp_version=${nlc.version}`, `--llama_cpp_release=${nlc.release}`];
  const done = join(dir, '.complete');
  if (existsSync(done)) return { args };
  const bundle = nlc.bundle;
  if (!existsSync(bundle)) return { reason: `node-llama-cpp ${nlc.version} ships no llama.cpp source bundle` };
  const clone = mkdtempSync(join(tmpdir(), 'hearth-llama-'));
  try {
    rmSync(dir, { recursive: true, force: true });
    cpSync(join(nlc.dir, 'llama', 'addon'), join(dir, 'addon'), { recursive: true, filter: (src) => !/\.(cpp|cc|c)$/.test(src) });
    const git = (...gitArgs: string[]): boolean => spawnSync('git', gitArgs, { stdio: 'ignore' }).status === 0;
    if (!git('clone', '--quiet', '--no-checkout', bundle, clone)) return { reason: 'git could not read llama.cpp\'s source bundle (is git installed?)' };
    if (!git('--git-dir', join(clone, '.git'), '--work-tree', dir, 'checkout', 'HEAD', '--', 'include', 'ggml/include')) {
      return { reason: 'llama.cpp\'s headers are missing from its source bundle' };
    }
    writeFileSync(done, `${nlc.version} ${nlc.release}\n`);
    return { args };
  } catch (error) {
    return { reason: `llama.cpp's headers could not be prepared: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}

// Run as a script only: scripts/build-llama-server.ts imports the helpers above.
if (import.meta.main) {
  if (process.env.HEARTH_SKIP_NATIVE === '1' && !strict) fail('HEARTH_SKIP_NATIVE=1 is set');
  const gyp = nodeGypBin();
  if (!gyp) fail('node-gyp is not installed: it is a dev dependency');
  const args = [gyp, 'rebuild', '--directory', join(root, 'native')];
  const headers = headersDir();
  if (headers) args.push(`--nodedir=${headers}`);
  const bridge = stateBridgeHeaders();
  if ('args' in bridge) args.push(...bridge.args);
  else console.warn(`hearth: the state bridge is left out of the addon (${bridge.reason}); sequence state will move through scratch files.`);
  const started = Date.now();
  const run = spawnSync(process.execPath, args, { stdio: strict ? 'inherit' : ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (run.error) fail(run.error.message);
  if (run.status !== 0) {
    // node-gyp's own "gyp ERR!" lines name the cause (no compiler, no Python, no headers…).
    const lines = (run.stderr ?? '').split('\n').filter((line) => /ERR!|error/i.test(line));
    if (!strict && lines.length > 0) console.warn(lines.slice(0, 12).join('\n'));
    fail(`node-gyp exited with ${run.status ?? run.signal}; it needs a C++ toolchain and Python 3`);
  }
  console.log(`hearth: built native/build/Release/hearth_kv.node in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
