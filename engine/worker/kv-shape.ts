/**
 * The KV state shape llama.cpp writes for a model under given cache settings, and the fingerprint
 * that shape gets. Computed from the model's metadata and the context's options rather than from
 * a saved file, so a restore in a fresh process works before anything was saved; every save
 * checks the computed shape against the parsed file (docs/decisions/state-file-layout.md,
 * docs/decisions/model-identity.md).
 */
import type { LlamaContext, LlamaModel } from 'node-llama-cpp';
import { err, ok, type Result } from '../contract/index.ts';
import { STATE_VERSION, shapeKey, type StateLayerShape, type StateShape } from '../kv/codec.ts';
import { fingerprint } from '../kv/fingerprint.ts';
import { lossyApplies } from '../kv/frame.ts';
import type { StateTransfer } from './state-transfer.ts';

/** GGML type id → [bytes per block, elements per block], for the K/V cache types llama.cpp allows. */
const ggmlBlocks: Readonly<Record<number, readonly [number, number]>> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
  20: [18, 32], // IQ4_NL
  30: [2, 1], // BF16
};

function rowBytes(type: number, width: number): number | null {
  const block = ggmlBlocks[type];
  if (!block || width % block[1] !== 0) return null;
  return (width / block[1]) * block[0];
}

/** A profile's computed shape, and what its fingerprint was computed from (to name other settings). */
export interface ProfileState {
  readonly shape: StateShape;
  /** New chunks are stored lossy (q8_0) and the fingerprint says so. */
  readonly lossy: boolean;
  readonly model: LlamaModel;
  readonly modelHash: string;
  /** How this context's sequence state moves (memory through the native bridge, or scratch files). */
  readonly transfer: StateTransfer;
  /** Set when a save found the real layout differs from the computed one. */
  disabled?: string;
}

/** The cache settings a fingerprint depends on besides the model and llama.cpp. */
export interface CacheSettings {
  readonly kType: number;
  readonly vType: number;
  readonly flashAttention: boolean;
  readonly nStream: number;
  /** Stored with the lossy encoding (fingerprint `storage: 'lossy-q8_0'`). */
  readonly lossy: boolean;
}

/** GGML type ids of the KV cache types Hearth offers, with their names. */
const offeredTypes: readonly (readonly [number, string])[] = [[1, 'f16'], [8, 'q8_0'], [7, 'q5_1'], [6, 'q5_0'], [3, 'q4_1'], [2, 'q4_0'], [20, 'iq4_nl']];

export function describeSettings(s: CacheSettings): string {
  const name = (type: number) => offeredTypes.find(([id]) => id === type)?.[1] ?? `type ${type}`;
  const storage = s.lossy ? ', stored lossy' : '';
  return `K/V ${name(s.kType)}/${name(s.vType)}, flash attention ${s.flashAttention ? 'on' : 'off'}, ${s.nStream} slot${s.nStream === 1 ? '' : 's'}${storage}`;
}

function perLayer(value: unknown, layers: number): number[] | null {
  if (typeof value === 'number') return Array.from({ length: layers }, () => value);
  if (Array.isArray(value) && value.length === layers && value.every((v) => typeof v === 'number')) return value as number[];
  return null;
}

/**
 * The state shape llama.cpp v0.4.0 writes for a plain (non-SWA, non-recurrent) KV cache of this
 * model and context, or the reason it cannot be computed.
 */
export function expectedShape(model: LlamaModel, context: LlamaContext, flashAttention: boolean): Result<StateShape> {
  return shapeFor(model, { kType: Number(context.kvCacheKeyType ?? 1), vType: Number(context.kvCacheValueType ?? 1), flashAttention, nStream: context.totalSequences });
}

/** `expectedShape` for given cache settings, without a context. */
function shapeFor(model: LlamaModel, settings: Omit<CacheSettings, 'lossy'>): Result<StateShape> {
  const { kType, vType, flashAttention } = settings;
  const arch = model.fileInfo.architectureMetadata as Record<string, unknown>;
  const attention = (arch.attention ?? {}) as Record<string, unknown>;
  const unsupported = (why: string): Result<StateShape> => err('NOT_SUPPORTED', why);
  if (arch.ssm !== undefined || attention.sliding_window !== undefined || (arch.rope as Record<string, unknown> | undefined)?.dimension_sections !== undefined) {
    return unsupported('this model uses a sliding-window, recurrent or M-RoPE memory that the KV store does not handle yet');
  }
  const layers = Number(arch.block_count);
  const embd = Number(arch.embedding_length);
  if (!Number.isInteger(layers) || layers < 1 || !Number.isInteger(embd) || embd < 1) return unsupported('the model metadata lacks its layer count or width');
  const heads = perLayer(attention.head_count, layers);
  const kvHeads = perLayer(attention.head_count_kv ?? attention.head_count, layers);
  if (!heads || !kvHeads || heads.some((h) => h < 1)) return unsupported('the model metadata lacks its head counts');
  const shapeLayers: StateLayerShape[] = [];
  for (let i = 0; i < layers; i++) {
    const headDimK = typeof attention.key_length === 'number' ? attention.key_length : embd / heads[i]!;
    const headDimV = typeof attention.value_length === 'number' ? attention.value_length : embd / heads[i]!;
    const kWidth = kvHeads[i]! * headDimK;
    const vWidth = kvHeads[i]! * headDimV;
    const kRow = rowBytes(kType, kWidth);
    const vRow = rowBytes(vType, vWidth);
    if (kRow === null || vRow === null) return unsupported(`KV cache type ${kType}/${vType} is not one the KV store knows`);
    if (flashAttention) {
      shapeLayers.push({ kType, kRowBytes: kRow, vType, vRowBytes: vRow, vElementBytes: 0, vEmbd: 0 });
    } else {
      const block = ggmlBlocks[vType]!;
      if (block[1] !== 1) return unsupported('a quantized V cache needs flash attention');
      shapeLayers.push({ kType, kRowBytes: kRow, vType, vRowBytes: block[0] * vWidth, vElementBytes: block[0], vEmbd: vWidth });
    }
  }
  return ok({ stateVersion: STATE_VERSION, nStream: settings.nStream, vTrans: !flashAttention, layers: shapeLayers });
}

function widths(shape: StateShape, which: 'k' | 'v'): number[] {
  return shape.layers.map((l) => {
    const type = which === 'k' ? l.kType : l.vType;
    const bytes = which === 'k' ? l.kRowBytes : shape.vTrans ? l.vRowBytes : l.vRowBytes;
    const block = ggmlBlocks[type]!;
    return (bytes / block[0]) * block[1];
  });
}

/**
 * `lossy`: the chunks are stored lossy, so a restore does not give llama.cpp's bytes back. Only
 * then does the fingerprint change: `off` and `lossless` restore the same bytes.
 */
export function shapeFingerprint(llamaRelease: string, s: StateShape, modelHash: string, lossy: boolean): Result<string> {
  return fingerprint({
    llamaCppRelease: llamaRelease,
    stateFormatVersion: STATE_VERSION,
    modelHash,
    kType: s.layers[0]!.kType,
    vType: s.layers[0]!.vType,
    flashAttention: !s.vTrans,
    nStream: s.nStream,
    layers: s.layers.length,
    kWidths: widths(s, 'k'),
    vWidths: widths(s, 'v'),
    extra: { shape: shapeKey(s), ...(lossy ? { storage: 'lossy-q8_0' } : {}) },
  });
}

/**
 * The cache settings (K/V types, flash attention, slots, lossy storage) under which this model
 * would have fingerprint `other`, or null when none does (another model file or llama.cpp
 * build). Tries every combination Hearth offers: under 1,600 hashes, and only when a chat's
 * stored KV has another fingerprint.
 */
export function settingsOf(llamaRelease: string, state: ProfileState, other: string): CacheSettings | null {
  for (const [kType] of offeredTypes) {
    for (const [vType] of offeredTypes) {
      for (const flashAttention of [true, false]) {
        for (let nStream = 1; nStream <= 8; nStream++) {
          const shape = shapeFor(state.model, { kType, vType, flashAttention, nStream });
          if (!shape.ok) continue;
          for (const lossy of lossyApplies(shape.value) ? [false, true] : [false]) {
            const fp = shapeFingerprint(llamaRelease, shape.value, state.modelHash, lossy);
            if (fp.ok && fp.value === other) return { kType, vType, flashAttention, nStream, lossy };
          }
        }
      }
    }
  }
  return null;
}
