/**
 * Test models, generated on first use into `.cache/test-models/` by the project's own GGUF
 * writer: generated at test time into a cache directory, never committed.
 *
 * File names carry a hash of the options and the generator version, so a change to either
 * makes a new file. Generation writes a temporary file and renames it, so test processes that
 * race on the same file are safe.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATOR_VERSION, writeTinyLlama, type TinyLlamaOptions } from './gguf-writer.ts';

/** The repository root. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * A folder of small trained models (GGUF) and their evaluation text, when present: never
 * committed, never required (tests and benchmarks that use them skip without them). Set
 * HEARTH_TRAINED_MODELS to point elsewhere; the default is a `shared/models` folder beside the
 * repository.
 */
export const trainedModelsDir = process.env.HEARTH_TRAINED_MODELS || join(repoRoot, '..', 'shared', 'models');

/** Where generated test models are cached (git-ignored). */
export const testModelsDir = join(repoRoot, '.cache', 'test-models');

/**
 * - `default`: 4 layers, n_embd 128, 4 heads, 2 KV heads, n_ff 256, context length 8192 (F16, ~1.3 MB).
 * - `hd64`: head_dim 64 (n_embd 128, 2 heads, 1 KV head), for llama.cpp's rotation of quantized caches.
 * - `otherWeights`: the default's shapes with a different seed: same KV layout, different model.
 * - `unsupportedArch`: a well-formed file whose architecture is "hearthnotreal", which llama.cpp rejects.
 * - `hd16`: head_dim 16 (n_embd 64, 4 heads, 2 KV heads): no quantized KV type's 32-value block
 *   divides it, so the planner must refuse every quantized K or V.
 * - `scripted-html`: whatever the prompt, it answers exactly `hostileScript` joined, then stops
 *   (writer.ts `script`): the model itself emits hostile HTML, links and beacons.
 */
export type TestModelVariant = 'default' | 'hd64' | 'otherWeights' | 'unsupportedArch' | 'hd16' | 'scripted-html';

/**
 * Where the hostile reply's beacons and frames point. It is fixed when the model is generated,
 * so it cannot be a test server's port: nothing listens there, and the render-safety test fails
 * on ANY request that leaves the host's origin, whatever its address.
 */
export const beaconOrigin = 'http://127.0.0.2:9';

/**
 * The `scripted-html` model's reply, piece by piece (each piece is one token). Every piece is a
 * separate markdown block, and every active one would set `window.__pwned` or fetch from
 * `beaconOrigin` if it ran.
 */
export const hostileScript: readonly string[] = [
  'Hostile reply start.\n\n',
  '<img src=x onerror="window.__pwned=1">\n\n',
  '<script>window.__pwned=2</script>\n\n',
  '[click](javascript:window.__pwned=3)\n\n',
  `![beacon](${beaconOrigin}/beacon.png)\n\n`,
  `<iframe src="${beaconOrigin}/frame.html"></iframe>\n\n`,
  '<b onclick="window.__pwned=4">bold</b> <svg onload="window.__pwned=5"></svg>\n\n',
  '[data](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD02PC9zY3JpcHQ+)\n\n',
  '[vb](vbscript:msgbox(7))\n\n',
  `<a href="${beaconOrigin}/raw-anchor" onmouseover="window.__pwned=8">raw anchor</a>\n\n`,
  `<link rel="stylesheet" href="${beaconOrigin}/style.css"><style>body{background:url(${beaconOrigin}/bg.png)}</style>\n\n`,
  `<meta http-equiv="refresh" content="0;url=${beaconOrigin}/refresh">\n\n`,
  `![ref beacon][b]\n\n[b]: ${beaconOrigin}/ref.png\n\n`,
  '```html\n<img src=x onerror="window.__pwned=9">\n```\n\n',
  'Hostile reply end.',
];

export const testModelVariants: Readonly<Record<TestModelVariant, TinyLlamaOptions>> = {
  default: {},
  hd64: { nEmbd: 128, nHead: 2, nHeadKv: 1, seed: 2, name: 'Hearth tiny llama hd64' },
  otherWeights: { seed: 3, name: 'Hearth tiny llama other weights' },
  unsupportedArch: { architecture: 'hearthnotreal', name: 'Hearth unsupported architecture' },
  hd16: { nEmbd: 64, nHead: 4, nHeadKv: 2, seed: 4, name: 'Hearth tiny llama hd16' },
  'scripted-html': { seed: 5, name: 'Hearth scripted html', script: hostileScript },
};

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Generates (once) a tiny llama GGUF with the given options and returns its absolute path; `dir`
 * is where it is cached (default `testModelsDir`; a benchmark keeps its large models in its own folder).
 */
export async function tinyModelPath(options: TinyLlamaOptions, label = 'custom', dir = testModelsDir): Promise<string> {
  const hash = createHash('sha256')
    .update(JSON.stringify({ generator: GENERATOR_VERSION, options: Object.entries(options).sort(([a], [b]) => a.localeCompare(b)) }))
    .digest('hex')
    .slice(0, 12);
  const path = join(dir, `${label}-${hash}.gguf`);
  if (!(await exists(path))) await writeTinyLlama(path, options);
  return path;
}

/** The path of a generated test model (see `TestModelVariant`), generating it on first use. */
export async function testModelPath(variant: TestModelVariant = 'default'): Promise<string> {
  return tinyModelPath(testModelVariants[variant], variant);
}

/**
 * - `truncated`: the default model cut to 60% of its size (an incomplete download).
 * - `notGguf`: a text file named `.gguf`.
 * - `empty`: a zero-byte `.gguf` file.
 * - `directory`: a directory named `.gguf`.
 */
export type BrokenModelKind = 'truncated' | 'notGguf' | 'empty' | 'directory';

/** The path of a broken "model" of the given kind, created on first use. */
export async function brokenModelPath(kind: BrokenModelKind): Promise<string> {
  const dir = join(testModelsDir, 'broken');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${kind}-v${GENERATOR_VERSION}.gguf`);
  if (await exists(path)) return path;
  const temp = `${path}.${process.pid}.tmp`;
  switch (kind) {
    case 'truncated': {
      const full = await readFile(await testModelPath('default'));
      await writeFile(temp, full.subarray(0, Math.floor(full.length * 0.6)));
      break;
    }
    case 'notGguf':
      await writeFile(temp, 'This is not a GGUF file. It is plain text with a .gguf name.\n'.repeat(20));
      break;
    case 'empty':
      await writeFile(temp, '');
      break;
    case 'directory':
      // mkdir is already atomic, and `recursive` makes a racing second creation a no-op.
      await mkdir(path, { recursive: true });
      return path;
  }
  await rename(temp, path);
  return path;
}

/** Writes a copy of `source` cut to `length` bytes at `target` (for truncation tests). */
export async function writeTruncatedCopy(source: string, target: string, length: number): Promise<void> {
  const bytes = await readFile(source);
  const handle = await open(target, 'w');
  try {
    await handle.write(bytes.subarray(0, length));
  } finally {
    await handle.close();
  }
}
