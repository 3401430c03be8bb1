// The desktop package, laid out offline: electron-builder runs with electron-builder.yml against a
// stub Electron (a directory shaped like an unpacked Electron, with a script for the binary),
// `dir` target, so no Electron is downloaded and no installer is made (docs/decisions/
// testing-without-electron.md). What is checked is what electron-builder.yml decides: which
// files go into app.asar, which are unpacked beside it (the OS loader cannot read a .node or .so
// inside the archive), and which resources ship outside it. Needs `npm run build` first; on a
// Linux host only, because the llama.cpp binaries it looks for are the host platform's.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractFile, getRawHeader } from '@electron/asar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const electronVersion = (JSON.parse(readFileSync(join(root, 'node_modules/electron/package.json'), 'utf8')) as { version: string }).version;
const arch = process.arch;

/** One entry of app.asar's header. */
interface Entry {
  readonly path: string;
  readonly unpacked: boolean;
  readonly size: number;
}

interface HeaderNode {
  files?: Record<string, HeaderNode>;
  unpacked?: boolean;
  size?: number | string;
  link?: string;
}

/** Every file (not directory) that app.asar lists, packed or unpacked, with `/`-separated paths. */
function asarFiles(archive: string): Entry[] {
  const out: Entry[] = [];
  const walk = (node: HeaderNode, prefix: string): void => {
    for (const [name, child] of Object.entries(node.files ?? {})) {
      const path = prefix === '' ? name : `${prefix}/${name}`;
      if (child.files) walk(child, path);
      else out.push({ path, unpacked: child.unpacked === true, size: Number(child.size ?? 0) });
    }
  };
  walk(getRawHeader(archive).header as HeaderNode, '');
  return out;
}

function dirSize(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The packages a bundle imports by bare name (not node: built-ins or electron, which Electron provides). */
function bareImports(source: string): string[] {
  const names = new Set<string>();
  for (const match of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']([^"'./][^"']*)["']/g)) {
    const spec = match[1]!;
    if (spec.startsWith('node:') || spec === 'electron') continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  return [...names].sort();
}

describe.skipIf(process.platform !== 'linux')('the desktop package (electron-builder, dir target, stub Electron)', () => {
  let work = '';
  let resources = '';
  let files: Entry[] = [];
  const byPath = new Map<string, Entry>();

  beforeAll(async () => {
    const missingBuild = ['out/main/main.js', 'out/main/engine-worker.js', 'out/preload/preload.cjs', 'out/renderer/index.html'].filter((f) => !existsSync(join(root, f)));
    if (missingBuild.length > 0) throw new Error(`The build output is missing (${missingBuild.join(', ')}): run \`npm run build\` first.`);

    work = mkdtempSync(join(tmpdir(), 'hearth-package-'));
    const stub = join(work, 'electron-dist');
    mkdirSync(join(stub, 'resources'), { recursive: true });
    writeFileSync(join(stub, 'electron'), '#!/bin/sh\necho "stub Electron: this package was laid out by a test" >&2\nexit 1\n', { mode: 0o755 });
    writeFileSync(join(stub, 'version'), electronVersion);

    // The CLI, as `npm run dist` runs it; the -c. options override electron-builder.yml.
    const run = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules/electron-builder/cli.js'),
        '--linux', 'dir', `--${arch}`,
        `-c.electronDist=${stub}`,
        `-c.electronVersion=${electronVersion}`,
        `-c.directories.output=${join(work, 'dist')}`,
      ],
      { cwd: root, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
    );
    if (run.status !== 0) throw new Error(`electron-builder failed (${run.error?.message ?? `exit ${run.status}`}):\n${`${run.stdout}\n${run.stderr}`.slice(-4000)}`);
    resources = join(work, 'dist', 'linux-unpacked', 'resources');
    files = asarFiles(join(resources, 'app.asar'));
    for (const entry of files) byPath.set(entry.path, entry);
  });

  afterAll(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('packs the main process, the engine process, the preload and the renderer into app.asar', () => {
    const required = ['package.json', 'out/main/main.js', 'out/main/engine-worker.js', 'out/preload/preload.cjs', 'out/renderer/index.html'];
    expect(required.filter((f) => byPath.get(f)?.unpacked !== false), 'required files missing from app.asar').toEqual([]);
    const assets = files.filter((f) => f.path.startsWith('out/renderer/assets/')).map((f) => f.path);
    expect(assets.some((f) => f.endsWith('.js')) && assets.some((f) => f.endsWith('.css')), `renderer assets in app.asar: ${assets.join(', ')}`).toBe(true);
    // The page's scripts and styles are the ones packed beside it.
    const html = extractFile(join(resources, 'app.asar'), 'out/renderer/index.html').toString('utf8');
    for (const [, ref] of html.matchAll(/(?:src|href)="\.?\/?(assets\/[^"]+)"/g)) expect(byPath.has(`out/renderer/${ref}`), `index.html refers to ${ref}`).toBe(true);
    const manifest = JSON.parse(extractFile(join(resources, 'app.asar'), 'package.json').toString('utf8')) as { main?: string };
    expect(manifest.main).toBe('out/main/main.js');
  });

  it('ships every package the main, engine and preload bundles import', () => {
    const bundles = files.filter((f) => /^out\/(main|preload)\/.*\.(c?js)$/.test(f.path)).map((f) => f.path);
    const imported = new Set(bundles.flatMap((b) => bareImports(extractFile(join(resources, 'app.asar'), b).toString('utf8'))));
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].filter((name) => !byPath.has(`node_modules/${name}/package.json`)), 'imported packages missing from app.asar').toEqual([]);
  });

  it('unpacks the KV codec addon and node-llama-cpp with its llama.cpp binaries', () => {
    const unpackedRequired = [
      'native/build/Release/hearth_kv.node',
      'node_modules/node-llama-cpp/package.json',
      'node_modules/node-llama-cpp/dist/index.js',
      `node_modules/@node-llama-cpp/linux-${arch}/bins/linux-${arch}/llama-addon.node`,
    ];
    const notUnpacked = unpackedRequired.filter((f) => byPath.get(f)?.unpacked !== true || !existsSync(join(resources, 'app.asar.unpacked', f)));
    expect(notUnpacked, 'files that must be in app.asar.unpacked').toEqual([]);
    const llama = files.filter((f) => /^node_modules\/(node-llama-cpp|@node-llama-cpp)\//.test(f.path));
    expect(llama.filter((f) => !f.unpacked).map((f) => f.path), 'node-llama-cpp files left inside the archive').toEqual([]);
    const nativeInArchive = files.filter((f) => /\.(node|so|dylib|dll)$/.test(f.path) && !f.unpacked).map((f) => f.path);
    expect(nativeInArchive, 'native libraries inside the archive (the OS loader cannot read them)').toEqual([]);
  });

  it('unpacks what building an engine for this computer reads: the addon project, the llama.cpp source bundle and the Node-API headers', () => {
    const unpackedRequired = [
      'node_modules/node-llama-cpp/llama/CMakeLists.txt',
      'node_modules/node-llama-cpp/llama/addon/addon.cpp',
      'node_modules/node-llama-cpp/llama/addon/AddonContext.h',
      'node_modules/node-llama-cpp/llama/cmake/addVariantSuffix.cmake',
      'node_modules/node-llama-cpp/llama/gitRelease.bundle',
      'node_modules/node-llama-cpp/llama/llama.cpp.info.json',
      'node_modules/node-api-headers/package.json',
      'node_modules/node-api-headers/include/node_api.h',
      'node_modules/node-addon-api/package.json',
      'node_modules/node-addon-api/napi.h',
      'node_modules/node-addon-api/napi-inl.h',
    ];
    const notUnpacked = unpackedRequired.filter((f) => byPath.get(f)?.unpacked !== true || !existsSync(join(resources, 'app.asar.unpacked', f)));
    expect(notUnpacked, 'files the engine build reads from disk').toEqual([]);
  });

  it('puts the calibration text in the resources directory', () => {
    const shipped = join(resources, 'calibration.txt');
    expect(existsSync(shipped), `${shipped} exists`).toBe(true);
    expect(readFileSync(shipped, 'utf8')).toBe(readFileSync(join(root, 'assets/calibration.txt'), 'utf8'));
  });

  it('leaves out sources, tests, benchmarks, caches and source maps', () => {
    const allowed = new Set(['native', 'node_modules', 'out', 'package.json']);
    const topLevel = [...new Set(files.map((f) => f.path.split('/')[0]!))];
    expect(topLevel.filter((name) => !allowed.has(name)), 'unexpected top-level entries in app.asar').toEqual([]);
    const own = files.filter((f) => !f.path.startsWith('node_modules/')).map((f) => f.path);
    expect(own.filter((f) => /\.(ts|tsx|mts|cts|map)$/.test(f) || /(^|\/)(test|bench|\.cache)\//.test(f)), 'files that must not ship').toEqual([]);
    expect(own.filter((f) => f.startsWith('native/')), 'only the built addon from native/').toEqual(['native/build/Release/hearth_kv.node']);
  });

  it('reports the package size', () => {
    // Everything of the app is under resources/; the rest of the directory is Electron's.
    const asar = statSync(join(resources, 'app.asar')).size;
    const unpacked = dirSize(join(resources, 'app.asar.unpacked'));
    const llamaBins = dirSize(join(resources, 'app.asar.unpacked', 'node_modules', '@node-llama-cpp'));
    const report = {
      'resources/ (the app without Electron)': mib(dirSize(resources)),
      'app.asar': mib(asar),
      'app.asar.unpacked': mib(unpacked),
      '  of which @node-llama-cpp': mib(llamaBins),
      'files in app.asar': String(files.length),
    };
    console.log(`Hearth package (linux-${arch}, Electron ${electronVersion} itself not included):`);
    console.table(report);
    expect(asar).toBeGreaterThan(0);
  });
});
