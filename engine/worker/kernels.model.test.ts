/**
 * The codec kernels on real KV, compared byte for byte: llama.cpp's own F16 and Q8_0 K/V
 * sections, from a sequence state of the generated model, through the native addon and the
 * TypeScript fallback. Random and edge inputs are in engine/kv/kernels.test.ts.
 */
import { join } from 'node:path';
import type { LlamaContextOptions } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { readStateFile, type ParsedState } from '../kv/codec.ts';
import { fallbackKernels } from '../kv/kernels-fallback.ts';
import { nativeKernels } from '../kv/kernels-load.ts';
import { q8_0Bytes, type CodecKernels } from '../kv/kernels.ts';
import { seededText } from '../../test/support/text.ts';
import { useTestLlama } from '../../test/support/llama-fixture.ts';

const fixture = useTestLlama('kernels');

async function realState(kv: 'F16' | 'Q8_0', flashAttention: boolean): Promise<ParsedState> {
  const model = await fixture.model();
  const options: LlamaContextOptions = { contextSize: 1024, sequences: 1, threads: 1, flashAttention, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv };
  const context = await model.createContext(options);
  try {
    const sequence = context.getSequence();
    await sequence.evaluateWithoutGeneratingNewTokens(model.tokenize(seededText(6, 900)).slice(0, 700));
    const path = join(fixture.dir(), `state-${kv}-${flashAttention}.bin`);
    await sequence.saveStateToFile(path);
    const parsed = await readStateFile(path);
    if (!parsed.ok) throw new Error(parsed.error.message);
    return parsed.value;
  } finally {
    await context.dispose();
  }
}

/** Every K and V section of the state, as llama.cpp wrote it. */
function sections(state: ParsedState): Uint8Array[] {
  const out: Uint8Array[] = [];
  state.shape.layers.forEach((layer, l) => {
    const data = state.layers[l]!;
    out.push(state.bytes.subarray(data.kOffset, data.kOffset + state.cellCount * layer.kRowBytes));
    out.push(state.bytes.subarray(data.vOffset, data.vOffset + state.cellCount * layer.vRowBytes));
  });
  return out;
}

function run(kernels: CodecKernels, section: Uint8Array, f16: boolean): Record<string, Uint8Array | number | boolean> {
  const values = section.length >> 1;
  const lo = new Uint8Array(values);
  const hi = new Uint8Array(values);
  kernels.shuffle16(section.subarray(0, 2 * values), lo, hi);
  const joined = new Uint8Array(2 * values);
  kernels.unshuffle16(lo, hi, joined);
  const result: Record<string, Uint8Array | number | boolean> = { lo, hi, joined, crc: kernels.crc32c(section) };
  if (f16) {
    const q = new Uint8Array(q8_0Bytes(values));
    result.finite = kernels.f16ToQ8_0(section, q);
    const back = new Uint8Array(2 * values);
    kernels.q8_0ToF16(q, back);
    Object.assign(result, { q, back });
  } else {
    // A Q8_0 section is whole blocks: expand it as the lossy decoder would expand stored blocks.
    const back = new Uint8Array((section.length / 34) * 64);
    kernels.q8_0ToF16(section, back);
    result.back = back;
  }
  return result;
}

describe('codec kernels on real KV', () => {
  const native = nativeKernels();

  it('the native addon is loaded (npm run build:native)', () => {
    expect(native, 'the native addon did not load: run `npm run build:native`').not.toBeNull();
  });

  for (const [kv, flashAttention] of [['F16', true], ['F16', false], ['Q8_0', true]] as const) {
    it(`native and fallback give identical bytes on ${kv} K/V (flash attention ${flashAttention ? 'on' : 'off'})`, async () => {
      if (!native) return;
      const state = await realState(kv, flashAttention);
      const all = sections(state);
      expect(all.length).toBe(2 * state.shape.layers.length);
      for (const [i, section] of all.entries()) {
        expect(section.length).toBeGreaterThan(0);
        const a = run(native, section, kv === 'F16');
        const b = run(fallbackKernels, section, kv === 'F16');
        expect(Object.keys(a)).toEqual(Object.keys(b));
        for (const key of Object.keys(a)) {
          const [x, y] = [a[key], b[key]];
          if (x instanceof Uint8Array && y instanceof Uint8Array) expect(Buffer.compare(Buffer.from(x), Buffer.from(y)), `section ${i} ${key}`).toBe(0);
          else expect(x, `section ${i} ${key}`).toBe(y);
        }
        // The lossless transform is exact on real data, and real F16 KV is finite.
        expect(Buffer.compare(Buffer.from(a.joined as Uint8Array), Buffer.from(section.subarray(0, (a.joined as Uint8Array).length)))).toBe(0);
        if (kv === 'F16') expect(a.finite).toBe(true);
      }
    });
  }
});
