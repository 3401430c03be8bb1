import { describe, expect, it } from 'vitest';
import { GGUF_MAGIC } from '../../engine/gguf/format.ts';
import { encodeGguf, mulberry32, scriptedOutput, scriptTokenText, tinyLlamaGguf, tinyLlamaModel, tinyVocab, toFloat16Bits } from './gguf-writer.ts';

const small = { layers: 1, nEmbd: 32, nHead: 2, nHeadKv: 1, nFf: 64 } as const;

describe('the GGUF writer', () => {
  it('is byte-deterministic for the same options, and the seed changes the weights only', () => {
    const a = tinyLlamaGguf(small);
    expect(tinyLlamaGguf(small).equals(a)).toBe(true);
    const b = tinyLlamaGguf({ ...small, seed: 7 });
    expect(b.length).toBe(a.length);
    expect(b.equals(a)).toBe(false);
  });

  it('writes the GGUF v3 header and aligns the data', () => {
    const bytes = encodeGguf({
      metadata: [['general.architecture', { type: 'string', value: 'llama' }]],
      tensors: [
        { name: 'a', dims: [3], type: 'F32', data: new Float32Array([1, 2, 3]) },
        { name: 'b', dims: [2], type: 'F16', data: new Float32Array([1, -2]) },
      ],
    });
    expect(bytes.readUInt32LE(0)).toBe(GGUF_MAGIC);
    expect(bytes.readUInt32LE(4)).toBe(3);
    expect(bytes.readBigUInt64LE(8)).toBe(2n);
    expect(bytes.readBigUInt64LE(16)).toBe(1n);
    expect(bytes.length % 32).toBe(0);
    // The last tensor (F16 1, -2) sits 32 bytes into the data section, after a's 12 bytes + padding.
    const dataStart = bytes.length - 64;
    expect(bytes.readFloatLE(dataStart + 8)).toBe(3);
    expect(bytes.readUInt16LE(dataStart + 32)).toBe(0x3c00);
    expect(bytes.readUInt16LE(dataStart + 34)).toBe(0xc000);
  });

  it('rejects data that does not match the dims', () => {
    expect(() => encodeGguf({ metadata: [], tensors: [{ name: 'a', dims: [4], type: 'F32', data: new Float32Array(3) }] })).toThrow(/dims/);
  });

  it('converts to float16 with round-to-nearest-even', () => {
    const cases: Array<[number, number]> = [
      [0, 0], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [70000, 0x7c00], [Infinity, 0x7c00],
      [0.1, 0x2e66], [6e-5, 0x03ef], [1e-9, 0], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [value, bits] of cases) expect(toFloat16Bits(value)).toBe(bits);
    expect(toFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
  });

  it('writes F16 tensors with the same bits as toFloat16Bits, value by value', () => {
    const special = [0, -0, 1, -2, 65504, 65519, 65520, 70000, -70000, Infinity, -Infinity, NaN, 0.1, 6e-5, -6e-5, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-9, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -14 - 2 ** -25];
    const random = mulberry32(9);
    const values = new Float32Array([...special, ...Array.from({ length: 4096 }, () => (random() * 2 - 1) * 2 ** Math.floor(random() * 40 - 28))]);
    const bytes = encodeGguf({ metadata: [], tensors: [{ name: 'w', dims: [values.length], type: 'F16', data: values }] });
    const dataStart = bytes.length - Math.ceil((2 * values.length) / 32) * 32;
    for (const [i, v] of values.entries()) expect(bytes.readUInt16LE(dataStart + 2 * i), `value ${v}`).toBe(toFloat16Bits(v));
  });

  it('has a stable PRNG', () => {
    const random = mulberry32(1);
    const first = [random(), random(), random()];
    const again = mulberry32(1);
    expect([again(), again(), again()]).toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

/** binary16 bits back to a number (the inverse of toFloat16Bits), to see the weights as llama.cpp does. */
function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('the scripted model (TinyLlamaOptions.script)', () => {
  const script = ['Hi <b>', 'there', '<img src=x onerror=alert(1)>', '\n\n[x](javascript:y)'];

  /** The model's tensors as stored (F16-rounded when F16), by name. */
  function storedTensors(options: Parameters<typeof tinyLlamaModel>[0]) {
    const model = tinyLlamaModel(options);
    const byName = new Map<string, { dims: readonly number[]; data: Float32Array }>();
    for (const t of model.tensors) {
      const data = t.type === 'F16' ? t.data.map((v) => fromFloat16Bits(toFloat16Bits(v))) : t.data;
      byName.set(t.name, { dims: t.dims, data });
    }
    const tokens = model.metadata.find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
    return { byName, tokens: tokens?.type === 'array' ? (tokens.value as string[]) : [] };
  }

  /**
   * The logits after `token`, computed from the stored tensors: with every block's output
   * projections zero the final hidden state is the token's embedding, so the logits are
   * output · (output_norm ⊙ rmsnorm(embedding)).
   */
  function logitsAfter(tensors: ReturnType<typeof storedTensors>['byName'], token: number): number[] {
    const embd = tensors.get('token_embd.weight')!;
    const out = tensors.get('output.weight')!;
    const outNorm = tensors.get('output_norm.weight')!.data;
    const n = embd.dims[0]!;
    const h = embd.data.subarray(token * n, (token + 1) * n);
    const rms = Math.sqrt(h.reduce((s, v) => s + v * v, 0) / n + 1e-5);
    const x = Array.from(h, (v, d) => (v / rms) * (outNorm[d] ?? 0));
    const vocab = out.dims[1]!;
    return Array.from({ length: vocab }, (_, t) => x.reduce((s, v, d) => s + v * (out.data[t * n + d] ?? 0), 0));
  }

  function top2(logits: number[]): { best: number; margin: number } {
    let best = 0;
    for (let t = 1; t < logits.length; t++) if ((logits[t] ?? -Infinity) > (logits[best] ?? -Infinity)) best = t;
    const second = Math.max(...logits.filter((_, t) => t !== best));
    return { best, margin: (logits[best] ?? 0) - second };
  }

  // Greedy needs any margin > 0; sampling at temperature T keeps a rival below e^(-margin/T) per token.
  for (const [label, options, minMargin] of [
    ['a small model', { ...small, script }, 15],
    ['the default shapes', { script, seed: 5 }, 25],
  ] as const) {
    it(`follows the script after any token, by a wide margin (${label})`, () => {
      const { byName, tokens } = storedTensors(options);
      for (const [name, t] of byName) {
        if (/attn_output|ffn_down/.test(name)) expect(t.data.every((v) => v === 0), name).toBe(true);
      }
      const firstPiece = tokens.length - script.length;
      expect(tokens.slice(firstPiece)).toEqual(script.map(scriptTokenText));
      expect(tokens[firstPiece]).toBe('Hi\u2581<b>');
      // Any prompt ends in a token that is not a piece: the first piece follows it.
      for (let t = 0; t < firstPiece; t++) {
        const { best, margin } = top2(logitsAfter(byName, t));
        expect(best, `after token ${t}`).toBe(firstPiece);
        expect(margin, `after token ${t}`).toBeGreaterThan(minMargin);
      }
      // Each piece is followed by the next, and the last by EOS.
      for (let k = 0; k < script.length; k++) {
        const { best, margin } = top2(logitsAfter(byName, firstPiece + k));
        expect(best, `after piece ${k}`).toBe(k + 1 < script.length ? firstPiece + k + 1 : tinyVocab.eos);
        expect(margin, `after piece ${k}`).toBeGreaterThan(minMargin);
      }
    });
  }

  it('leaves models without a script byte for byte as they were', () => {
    expect(tinyLlamaGguf({ ...small, script: [] }).equals(tinyLlamaGguf(small))).toBe(true);
    expect(scriptedOutput.BIAS_DIM).toBe(0);
  });

  it('refuses scripts it cannot encode as one token per piece', () => {
    expect(() => tinyLlamaModel({ ...small, script: ['a', 'a'] })).toThrow(/distinct/);
    expect(() => tinyLlamaModel({ ...small, script: ['a', ''] })).toThrow(/empty/);
    expect(() => tinyLlamaModel({ ...small, script: Array.from({ length: 40 }, (_, i) => `p${i}`) })).toThrow(/nEmbd/);
  });
});
