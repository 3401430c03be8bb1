/**
 * The models first run recommends, and the thread count llama.cpp gets.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { RecommendedModel } from '../contract/index.ts';

/**
 * Instruct models that llama.cpp runs well, smallest first, for the first-run screen, which
 * shows each one's fit verdict for this machine and marks the best that fits. Sizes are the
 * Q4_K_M files' as the Hub lists them (the repository's file list gives the exact size).
 */
export const recommendedModels: readonly RecommendedModel[] = [
  {
    id: 'qwen2.5-0.5b-instruct',
    name: 'Qwen2.5 0.5B Instruct',
    repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 491_000_000,
    description: 'The smallest: fast on any machine, fine for short answers.',
  },
  {
    id: 'llama-3.2-1b-instruct',
    name: 'Llama 3.2 1B Instruct',
    repo: 'bartowski/Llama-3.2-1B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 808_000_000,
    description: "Meta's small chat model: quick on a laptop CPU.",
  },
  {
    id: 'llama-3.2-3b-instruct',
    name: 'Llama 3.2 3B Instruct',
    repo: 'bartowski/Llama-3.2-3B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 2_020_000_000,
    description: 'Noticeably smarter; still comfortable without a GPU.',
  },
  {
    id: 'qwen2.5-7b-instruct',
    name: 'Qwen2.5 7B Instruct',
    repo: 'bartowski/Qwen2.5-7B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 4_680_000_000,
    description: 'A capable all-rounder for machines with 8 GB of GPU memory or a 16 GB Mac.',
  },
  {
    id: 'llama-3.1-8b-instruct',
    name: 'Llama 3.1 8B Instruct',
    repo: 'bartowski/Meta-Llama-3.1-8B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 4_920_000_000,
    description: "Meta's 8B model with a 128K-token context: long conversations.",
  },
  {
    id: 'qwen2.5-14b-instruct',
    name: 'Qwen2.5 14B Instruct',
    repo: 'bartowski/Qwen2.5-14B-Instruct-GGUF',
    quantization: 'Q4_K_M',
    approxSizeBytes: 8_990_000_000,
    description: 'Stronger reasoning, for 12 GB of GPU memory or a 32 GB Mac.',
  },
];

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

/**
 * The thread counts a model's speed measurement tries, the default first: a count the user fixed
 * (Settings or --threads) alone; else every physical core, and half of them, which decodes
 * faster where memory bandwidth, not compute, limits decoding, and where half the cores are
 * efficiency cores (docs/decisions/speed-defaults.md).
 */
export function speedThreadCandidates(fixed: number | null, physical = physicalCoreCount()): number[] {
  if (fixed !== null && fixed > 0) return [fixed];
  return [...new Set([physical, Math.max(1, Math.ceil(physical / 2))])];
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
