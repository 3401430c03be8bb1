/**
 * The models directory, the recommended downloads, download URI checks and the thread count.
 */
import { readFileSync } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { err, ok, type LocalModel, type RecommendedModel, type Result } from '../contract/index.ts';

/** Small instruct models that llama.cpp runs well, for the first-run screen. Sizes are the Q4_K_M files'. */
export const recommendedModels: readonly RecommendedModel[] = [
  {
    id: 'qwen2.5-0.5b-instruct',
    name: 'Qwen2.5 0.5B Instruct (Q4_K_M)',
    uri: 'hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M',
    approxSizeBytes: 491_000_000,
    description: 'The smallest: fast on any machine, fine for short answers.',
  },
  {
    id: 'llama-3.2-1b-instruct',
    name: 'Llama 3.2 1B Instruct (Q4_K_M)',
    uri: 'hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
    approxSizeBytes: 808_000_000,
    description: "Meta's small chat model: a good balance of speed and quality.",
  },
  {
    id: 'qwen2.5-1.5b-instruct',
    name: 'Qwen2.5 1.5B Instruct (Q4_K_M)',
    uri: 'hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M',
    approxSizeBytes: 1_120_000_000,
    description: 'Noticeably smarter, still quick on a laptop CPU.',
  },
];

const hfUri = /^hf:[A-Za-z0-9][\w.-]*\/[\w.-]+(?::[\w.-]+|\/[\w./-]+\.gguf)?(?:#[\w./-]+)?$/i;
const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Accepts `hf:owner/repo[:quant | /file.gguf][#branch]`, https URLs, and plain http only to the
 * loopback interface (the tests' local server): a model fetched over plain http from elsewhere
 * could be swapped on the way.
 */
export function checkDownloadUri(uri: string): Result<string> {
  const trimmed = uri.trim();
  if (trimmed.toLowerCase().startsWith('hf:')) {
    if (!hfUri.test(trimmed) || trimmed.split(/[/:#]/).includes('..')) {
      return err('INVALID_INPUT', `"${trimmed}" is not a valid Hugging Face model URI.`, 'Use hf:owner/repo:QUANT, e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M.');
    }
    return ok(trimmed);
  }
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return err('INVALID_INPUT', `"${trimmed.slice(0, 200)}" is neither an hf: URI nor a URL.`);
  }
  if (url.protocol === 'https:') return ok(url.href);
  if (url.protocol === 'http:' && loopbackHosts.has(url.hostname)) return ok(url.href);
  return err('INVALID_INPUT', `Models can be downloaded over https only (got ${url.protocol}//${url.host}).`);
}

/**
 * GGUF files directly in `modelsDir`, newest first. A symlink is listed only when it resolves
 * to a file inside the directory: the list never reaches out of it.
 */
export async function listModels(modelsDir: string): Promise<LocalModel[]> {
  let entries: string[];
  try {
    entries = await readdir(modelsDir);
  } catch {
    return [];
  }
  const root = await realpath(modelsDir).catch(() => path.resolve(modelsDir));
  const models: LocalModel[] = [];
  for (const fileName of entries) {
    if (!fileName.toLowerCase().endsWith('.gguf')) continue;
    const full = path.join(modelsDir, fileName);
    try {
      const link = await lstat(full);
      if (link.isSymbolicLink()) {
        const target = await realpath(full);
        if (!isInside(root, target)) continue;
      } else if (!link.isFile()) {
        continue;
      }
      const info = await stat(full);
      if (!info.isFile()) continue;
      models.push({ path: full, fileName, sizeBytes: info.size, modifiedAt: Math.round(info.mtimeMs) });
    } catch {
      // Vanished or unreadable between readdir and stat: not listable.
    }
  }
  return models.sort((a, b) => b.modifiedAt - a.modifiedAt || a.fileName.localeCompare(b.fileName));
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * The number of physical cores, as well as we can tell without spawning a process.
 * `os.availableParallelism()` counts logical CPUs, and llama.cpp on SMT siblings runs far slower
 * than on cores (docs/decisions/threads.md: 641 ms/token with 4 threads on 2 cores vs 1.2 ms
 * with 1). So:
 * - Linux: distinct (physical id, core id) pairs in /proc/cpuinfo;
 * - macOS arm64: logical = physical (Apple silicon has no SMT);
 * - elsewhere on x64 (Intel Macs, Windows): half the logical count, assuming 2-way SMT; on a
 *   CPU without SMT this underestimates, which costs far less than oversubscribing.
 * Never above the CPUs this process may run on, never below 1.
 */
export function physicalCoreCount(): number {
  const logical = Math.max(1, os.availableParallelism());
  let physical = logical;
  if (process.platform === 'linux') {
    physical = linuxPhysicalCores() ?? logical;
  } else if (process.arch === 'x64' || process.arch === 'ia32') {
    physical = Math.max(1, Math.floor(os.cpus().length / 2));
  }
  return Math.max(1, Math.min(physical, logical));
}

function linuxPhysicalCores(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const physicalId = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
    const coreId = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (physicalId !== undefined && coreId !== undefined) cores.add(`${physicalId}:${coreId}`);
  }
  // ARM and some VMs omit the topology lines; then every logical CPU is taken as a core.
  return cores.size > 0 ? cores.size : undefined;
}
