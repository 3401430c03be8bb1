/**
 * The import table in eslint.config.js is the architecture's only enforcement, so it is tested
 * like code: for each layer, one import it must refuse and one it must allow, linted as if the
 * file sat in that folder.
 */
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

async function importErrors(file: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import '${specifier}';\n`, { filePath: path.join(root, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

// [file, import, allowed]
const cases: ReadonlyArray<readonly [string, string, boolean]> = [
  ['engine/base/x.ts', '../contract/index.ts', false],
  ['engine/contract/x.ts', 'zod', true],
  ['engine/contract/x.ts', 'node:fs', false],
  ['engine/contract/x.ts', '../kv/store.ts', false],
  ['engine/gguf/x.ts', '../contract/index.ts', true],
  ['engine/gguf/x.ts', '../kv/store.ts', false],
  ['engine/gguf/x.ts', '../host/db.ts', false],
  ['engine/gguf/x.ts', '../worker/runtime.ts', false],
  ['engine/kv/x.ts', '../gguf/format.ts', true],
  ['engine/kv/x.ts', '../base/lock.ts', true],
  ['engine/kv/x.ts', '../worker/runtime.ts', false],
  ['engine/kv/x.ts', '../host/db.ts', false],
  ['engine/kv/x.ts', '../protocol.ts', false],
  ['engine/kv/x.ts', 'node-llama-cpp', false],
  ['engine/worker/x.ts', 'node-llama-cpp', true],
  ['engine/worker/x.ts', '../kv/store.ts', true],
  ['engine/worker/x.ts', '../host/hearth.ts', false],
  ['engine/worker/x.ts', 'electron', false],
  ['engine/host/x.ts', '../protocol.ts', true],
  ['engine/host/x.ts', '../worker/runtime.ts', false],
  ['engine/host/x.ts', '../kv/store.ts', false],
  ['engine/host/x.ts', 'node-llama-cpp', false],
  ['engine/x.ts', './host/hearth.ts', true],
  ['engine/x.ts', './worker/runtime.ts', false],
  ['electron/x.ts', '../engine/index.ts', true],
  ['electron/x.ts', '../engine/host/hearth.ts', false],
  ['electron/x.ts', '../server/app.ts', false],
  ['server/x.ts', '../engine/contract/index.ts', true],
  ['server/x.ts', 'electron', false],
  ['server/x.ts', '../engine/kv/store.ts', false],
  ['renderer/src/x.ts', '../../engine/contract/index.ts', true],
  ['renderer/src/x.ts', '../../engine/host/hearth.ts', false],
  ['renderer/src/x.ts', 'node:fs', false],
  ['renderer/src/x.ts', 'electron', false],
  // Test fixtures: refused in production files, allowed in the tests beside them.
  ['engine/kv/x.ts', '../../test/support/kv-store.ts', false],
  ['engine/kv/x.test.ts', '../../test/support/kv-store.ts', true],
  ['engine/host/x.ts', '../../test/support/fake-engine.ts', false],
  ['renderer/src/lib/x.ts', '../../../test/support/renderer/fixtures.ts', false],
  ['renderer/src/lib/x.test.ts', '../../../test/support/renderer/fixtures.ts', true],
  // A test keeps its layer's direction.
  ['engine/kv/x.test.ts', '../worker/runtime.ts', false],
];

describe('eslint.config.js import layers', () => {
  it.each(cases)('%s importing %s: allowed=%s', async (file, specifier, allowed) => {
    const errors = await importErrors(file, specifier);
    if (allowed) expect(errors).toEqual([]);
    else expect(errors.length).toBeGreaterThan(0);
  });
});
