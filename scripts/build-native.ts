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
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

if (process.env.HEARTH_SKIP_NATIVE === '1' && !strict) fail('HEARTH_SKIP_NATIVE=1 is set');
const gyp = nodeGypBin();
if (!gyp) fail('node-gyp is not installed: it is a dev dependency');
const args = [gyp, 'rebuild', '--directory', join(root, 'native')];
const headers = headersDir();
if (headers) args.push(`--nodedir=${headers}`);
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
