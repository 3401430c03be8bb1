/**
 * Hearth's KV cache type names (the contract's `KvCacheType`, llama.cpp's lower-case names) and
 * node-llama-cpp's: upper-case names for `experimentalKvCacheKeyType`/`ValueType`, GgmlType
 * numbers from `ctx.kvCacheKeyType`/`ValueType` (GGML's enum, stable across releases).
 */
import { overflowPolicies, type KvCacheType } from '../contract/index.ts';
import type { ResolvedProfile } from '../protocol.ts';

export type GgmlKvTypeName = 'F16' | 'Q8_0' | 'Q5_1' | 'Q5_0' | 'Q4_1' | 'Q4_0' | 'IQ4_NL';

const names: Readonly<Record<KvCacheType, GgmlKvTypeName>> = {
  f16: 'F16',
  q8_0: 'Q8_0',
  q5_1: 'Q5_1',
  q5_0: 'Q5_0',
  q4_1: 'Q4_1',
  q4_0: 'Q4_0',
  iq4_nl: 'IQ4_NL',
};

const byNumber: Readonly<Record<number, KvCacheType>> = { 1: 'f16', 8: 'q8_0', 7: 'q5_1', 6: 'q5_0', 3: 'q4_1', 2: 'q4_0', 20: 'iq4_nl' };

/** The name node-llama-cpp's context options take. */
export function ggmlKvTypeName(type: KvCacheType): GgmlKvTypeName {
  return names[type];
}

/** The KvCacheType of a GgmlType number (what a context reports), or null for one Hearth does not offer. */
export function kvTypeFromGgml(type: number | undefined): KvCacheType | null {
  return type === undefined ? null : (byNumber[type] ?? null);
}


/** What is wrong with a `ResolvedProfile` from the host (null when nothing is). */
export function checkResolvedProfile(profile: ResolvedProfile): string | null {
  if (typeof profile !== 'object' || profile === null) return 'it is not an object';
  if (!(profile.kType in names)) return `unknown K type ${String(profile.kType)}`;
  if (!(profile.vType in names)) return `unknown V type ${String(profile.vType)}`;
  if (typeof profile.flashAttention !== 'boolean') return 'flashAttention is not a boolean';
  if (!Number.isInteger(profile.contextSize) || profile.contextSize < 0) return 'contextSize is not an integer ≥ 0';
  if (profile.gpuLayers !== 'auto' && (!Number.isInteger(profile.gpuLayers) || profile.gpuLayers < 0)) return 'gpuLayers is neither "auto" nor an integer ≥ 0';
  if (!Number.isInteger(profile.slots) || profile.slots < 1) return 'slots is not an integer ≥ 1';
  if (!(overflowPolicies as readonly string[]).includes(profile.overflowPolicy)) return `unknown overflow policy ${String(profile.overflowPolicy)}`;
  if (profile.dropTarget !== undefined && !(profile.dropTarget > 0 && profile.dropTarget <= 1)) return 'dropTarget is not in (0, 1]';
  return null;
}
