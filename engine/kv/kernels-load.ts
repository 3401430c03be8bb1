/**
 * Picks the codec kernels for this process: the Node-API addon (native/) when it loads, else the
 * TypeScript fallback, with the reason, so the app can say which one it runs.
 *
 * The addon lives at native/build/Release/hearth_kv.node under the project root. This module is
 * two directories below the root both in source (engine/kv/) and in the Electron build
 * (out/main/); a bundler may move it one level deeper (out/main/chunks/), so the search walks up
 * a few levels. In a packaged app the root is inside app.asar, which the OS loader cannot read:
 * electron-builder unpacks the addon to app.asar.unpacked (electron-builder.yml).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KvCodecInfo } from '../contract/index.ts';
import { fallbackKernels } from './kernels-fallback.ts';
import type { CodecKernels } from './kernels.ts';
import { errorText } from '../contract/index.ts';

const ADDON = join('native', 'build', 'Release', 'hearth_kv.node');
export const NOT_BUILT = 'the native addon is not built (npm run build:native)';

/** What the addon exports (native/src/addon.cc); it validates its arguments itself. */
interface Addon {
  shuffle16(src: Uint8Array, lo: Uint8Array, hi: Uint8Array): void;
  unshuffle16(lo: Uint8Array, hi: Uint8Array, dst: Uint8Array): void;
  f16ToQ8_0(src: Uint8Array, dst: Uint8Array): boolean;
  q8_0ToF16(src: Uint8Array, dst: Uint8Array): void;
  crc32c(data: Uint8Array, seed?: number): number;
  /** The instruction sets the addon picked at load, e.g. "avx2 f16c sse4.2" (diagnostics only). */
  readonly features: string;
  /** Whole files into places of one buffer, in parallel, with their CRC-32C (native/src/scatter_read.cc). */
  readScatter?: ReadScatter;
  /** Asks the kernel for huge pages behind a buffer (Linux); native/src/addon.cc says why. */
  adviseHugePages?(bytes: Uint8Array): boolean;
  /** The sequence-state bridge (engine/worker/state-transfer.ts describes it; native/src/state_bridge.cc). */
  readonly stateBridge?: unknown;
}

/**
 * native/src/scatter_read.cc `readScatter`: per file, its body CRC-32C (from offset 96) or what
 * failed. Every range is checked natively before anything is read.
 */
export type ReadScatter = (
  paths: readonly string[],
  sizes: Float64Array,
  heads: Uint8Array,
  headStarts: Float64Array,
  pieceStarts: Float64Array,
  pieces: Float64Array,
  dest: Uint8Array,
  threads: number,
) => Promise<(number | string)[]>;

type NativeResult = { readonly kernels: CodecKernels; readonly features: string; readonly addon: Addon } | { readonly reason: string };

let native: NativeResult | undefined;
let chosen: { kernels: CodecKernels; info: KvCodecInfo } | undefined;

/** Where the addon would be, inside app.asar's unpacked twin when the root is an asar archive. */
export function addonCandidates(moduleUrl: string = import.meta.url): string[] {
  const out: string[] = [];
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let up = 0; up < 4; up++) {
    dir = dirname(dir);
    const file = join(dir, ADDON).replace(`${sep}app.asar${sep}`, `${sep}app.asar.unpacked${sep}`);
    out.push(file);
  }
  // Two levels up is the layout both the source tree and out/main/ have: try it first.
  return [out[1]!, out[0]!, out[2]!, out[3]!];
}

function loadNative(): NativeResult {
  const file = addonCandidates().find((candidate) => existsSync(candidate));
  if (!file) return { reason: NOT_BUILT };
  try {
    const addon = createRequire(import.meta.url)(file) as Addon;
    for (const name of ['shuffle16', 'unshuffle16', 'f16ToQ8_0', 'q8_0ToF16', 'crc32c'] as const) {
      if (typeof addon[name] !== 'function') return { reason: `the native addon at ${file} lacks ${name}` };
    }
    const kernels: CodecKernels = {
      kind: 'native',
      shuffle16: addon.shuffle16,
      unshuffle16: addon.unshuffle16,
      f16ToQ8_0: addon.f16ToQ8_0,
      q8_0ToF16: addon.q8_0ToF16,
      crc32c: addon.crc32c,
    };
    return { kernels, features: String(addon.features), addon };
  } catch (error) {
    return { reason: `the native addon failed to load: ${errorText(error)}` };
  }
}

/** The addon's kernels whatever HEARTH_CODEC says (tests and benchmarks), or null with no addon. */
export function nativeKernels(): CodecKernels | null {
  native ??= loadNative();
  return 'kernels' in native ? native.kernels : null;
}

/**
 * A new buffer for a whole sequence state (up to gigabytes, written once): its own ArrayBuffer
 * (offset 0), backed by huge pages where the addon can ask for them (native/src/addon.cc
 * `AdviseHugePages` has the measurement). Throws RangeError when the memory cannot be had.
 */
export function allocateLarge(size: number): Buffer {
  const buffer = Buffer.allocUnsafeSlow(size);
  native ??= loadNative();
  if ('addon' in native && size >= 4 << 20) native.addon.adviseHugePages?.(buffer);
  return buffer;
}

/** The addon's scatter reader, or null without the addon (or with `HEARTH_CODEC=fallback`, which tests the pure-TypeScript path). */
export function nativeReadScatter(): ReadScatter | null {
  if (process.env.HEARTH_CODEC === 'fallback') return null;
  native ??= loadNative();
  return 'addon' in native && typeof native.addon.readScatter === 'function' ? native.addon.readScatter : null;
}

/** The addon's `stateBridge` export (unchecked: its user validates it), or why the addon did not load. */
export function nativeStateBridge(): { readonly bridge: unknown } | { readonly reason: string } {
  native ??= loadNative();
  return 'addon' in native ? { bridge: native.addon.stateBridge } : { reason: native.reason };
}

/** Why the addon is unavailable, or null when it loaded; plus the instruction sets it chose. */
export function nativeStatus(): { readonly reason: string } | { readonly features: string } {
  native ??= loadNative();
  return 'kernels' in native ? { features: native.features } : { reason: native.reason };
}

/**
 * The kernels this process uses, chosen once: `HEARTH_CODEC=fallback` forces the TypeScript
 * fallback; otherwise the addon, or the fallback with the reason it could not load.
 */
export function loadKernels(): { kernels: CodecKernels; info: KvCodecInfo } {
  if (chosen) return chosen;
  if (process.env.HEARTH_CODEC === 'fallback') {
    chosen = { kernels: fallbackKernels, info: { kernels: 'fallback', reason: 'HEARTH_CODEC=fallback is set' } };
    return chosen;
  }
  const kernels = nativeKernels();
  const status = nativeStatus();
  chosen = kernels
    ? { kernels, info: { kernels: 'native' } }
    : { kernels: fallbackKernels, info: { kernels: 'fallback', reason: 'reason' in status ? status.reason : NOT_BUILT } };
  return chosen;
}
