import { describe, expect, it } from 'vitest';
import { GGUF_MAGIC } from './format.ts';
import { encodeGguf, mulberry32, tinyLlamaGguf, toFloat16Bits } from './writer.ts';

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

  it('has a stable PRNG', () => {
    const random = mulberry32(1);
    const first = [random(), random(), random()];
    const again = mulberry32(1);
    expect([again(), again(), again()]).toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});
