/**
 * How an engine for this computer is configured: node-llama-cpp's own defaults for a build made
 * on the machine that runs it (its compileLlamaCpp outside CI mode), so the only difference from
 * its prebuilt binaries is what that brings: GGML_NATIVE (ggml compiled for this CPU's
 * instruction set rather than a set of portable variants picked at load time), and OpenMP where
 * the compiler has it. The options, the source and the tools name the build folder.
 */
import { createHash } from 'node:crypto';
import type { LlamaSource } from './source.ts';
import type { FoundTools } from './tools.ts';

export interface BuildConfig {
  /** `-D` options, without paths (they go in the hash and the manifest). */
  readonly cmakeOptions: readonly string[];
  /** node-llama-cpp's build options as its metadata file records them (`customCmakeOptions`). */
  readonly customCmakeOptions: Readonly<Record<string, string>>;
  readonly gpu: false | 'metal';
  /** Short hash of everything that decides the binaries. */
  readonly hash: string;
  /** The build folder's name: `<release>-<hash>`. */
  readonly name: string;
}

/** node-llama-cpp's platform names. */
export function nlcPlatform(platform: NodeJS.Platform): string {
  return platform === 'darwin' ? 'mac' : platform === 'win32' ? 'win' : platform;
}

/** A folder-name-safe release ("v0.4.0"; anything odd replaced). */
function safeRelease(release: string): string {
  return release.replace(/[^A-Za-z0-9._-]/g, '_') || 'llama.cpp';
}

export function buildConfig(source: LlamaSource, tools: FoundTools, platform: NodeJS.Platform = process.platform, arch: string = process.arch): BuildConfig {
  const target = `${nlcPlatform(platform)}-${arch}`;
  // Apple silicon runs llama.cpp on Metal; a CPU-only build there would never be faster.
  const gpu = platform === 'darwin' && arch === 'arm64' ? ('metal' as const) : false;
  const custom: Record<string, string> = {
    GGML_NATIVE: 'ON',
    GGML_BUILD_NUMBER: '1',
    GGML_CCACHE: 'OFF',
    GGML_METAL: gpu === 'metal' ? '1' : 'OFF',
    // Libraries node-llama-cpp leaves out: no downloads, no TLS, no HTTP.
    LLAMA_CURL: 'OFF',
    LLAMA_HTTPLIB: 'OFF',
    LLAMA_BUILD_BORINGSSL: 'OFF',
    LLAMA_OPENSSL: 'OFF',
    NLC_CURRENT_PLATFORM: target,
    NLC_TARGET_PLATFORM: target,
    // libllama.<variant>.so: never the same file name as the prebuilt copy's.
    NLC_VARIANT: `${safeRelease(source.release)}.local`,
  };
  const cmakeOptions = ['-DCMAKE_BUILD_TYPE=Release', '-DCMAKE_CONFIGURATION_TYPES=Release', ...Object.entries(custom).map(([key, value]) => `-D${key}=${value}`)];
  const hash = createHash('sha256')
    .update(JSON.stringify({ nodeLlamaCpp: source.version, release: source.release, commit: source.commit, cmakeOptions, generator: tools.generator, tools: tools.versions, target }))
    .digest('hex')
    .slice(0, 10);
  return { cmakeOptions, customCmakeOptions: custom, gpu, hash, name: `${safeRelease(source.release)}-${hash}` };
}
