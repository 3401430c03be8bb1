/**
 * Fit verdicts without a model: the reference models on the reference machines with the
 * reference estimator (held to llama.cpp's by fit.model.test.ts), and synthetic shapes and
 * devices for the edge cases. The assertions are the rules (what each verdict promises, what
 * more memory may never do), plus what anyone who runs these models knows of them.
 */
import { describe, expect, it } from 'vitest';
import { FIT_MIN_CONTEXT, fitKvTypes, type DeviceMemory, type FileFit, type FitKvType } from '../contract/index.ts';
import { deviceTotals, fileFit, verdictRank } from './fit-core.ts';
import { referenceEstimator, referenceMachines, referenceModels, referenceShape, type ReferenceMachine, type ReferenceModel, type ReferenceQuant } from './fit-reference.ts';
import { budgetOf, CONTEXT_STEP, contextCeiling, MAX_PLAN_CONTEXT, type ContextEstimator, type ModelShape, type Reserve } from './planner-core.ts';
import { fakeEstimator, GiB, llama8b, noReserve } from '../../test/support/planner.ts';

const model = (name: string): ReferenceModel => referenceModels.find((m) => m.name === name)!;
const machine = (name: string): ReferenceMachine => referenceMachines.find((m) => m.name === name)!;

async function referenceFit(modelName: string, quant: ReferenceQuant, machineName: string): Promise<FileFit> {
  const m = model(modelName);
  const file = m.files.find((f) => f.quant === quant)!;
  const { device, reserve } = machine(machineName);
  return fileFit({ shape: referenceShape(m, file.bytes), device, reserve, estimate: referenceEstimator(m) });
}

const context = (fit: FileFit, kvType: FitKvType) => fit.contexts.find((c) => c.kvType === kvType)!.maxContext;

const gpu = (vramGiB: number, ramGiB = 32, unified = false): DeviceMemory => ({
  backend: unified ? 'metal' : 'cuda',
  vramTotalBytes: vramGiB * GiB,
  vramFreeBytes: vramGiB * GiB,
  unifiedMemory: unified,
  ramTotalBytes: ramGiB * GiB,
  ramFreeBytes: ramGiB * GiB,
});

/** A machine without a GPU, with `ramBytes` of RAM in all. */
const cpu = (ramBytes: number): DeviceMemory => ({ backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: ramBytes, ramFreeBytes: ramBytes });

/** The total a context of `tokens` takes with `kvType`: weights + the estimate, as the verdict counts it. */
async function total(shape: ModelShape, estimate: ContextEstimator, kvType: FitKvType, tokens: number): Promise<number> {
  return shape.weightsBytes + (await estimate({ contextSize: tokens, slots: 1, pair: { kType: kvType, vType: kvType }, flashAttention: shape.flashAttentionSupported }));
}

describe('the reference grid (every model file on every machine)', () => {
  const cases = referenceModels.flatMap((m) => m.files.flatMap((file) => referenceMachines.map((mach) => ({ m, file, mach }))));

  it('gives verdicts that keep their promises', async () => {
    expect(cases.length).toBeGreaterThan(90);
    for (const { m, file, mach } of cases) {
      const label = `${m.name} ${file.quant} on ${mach.name}`;
      const shape = referenceShape(m, file.bytes);
      const estimate = referenceEstimator(m);
      const fit = await fileFit({ shape, device: mach.device, reserve: mach.reserve, estimate });
      const ceiling = contextCeiling(shape);
      const needed = Math.min(FIT_MIN_CONTEXT, ceiling);
      const budget = budgetOf(deviceTotals(mach.device), mach.reserve);
      expect(fit.contexts.map((c) => c.kvType), label).toEqual(fitKvTypes);
      expect(fit.weightsBytes, label).toBe(file.bytes);
      expect(fit.trainedContextLength, label).toBe(m.contextLength);
      // CUDA and Metal run all three types with flash attention, and these heads are 128 wide.
      expect(fit.contexts.every((c) => c.refused === undefined), label).toBe(true);
      for (const c of fit.contexts) {
        expect(c.maxContext, label).toBeLessThanOrEqual(ceiling);
        expect(c.maxContext % CONTEXT_STEP === 0 || c.maxContext === ceiling, label).toBe(true);
      }
      // A smaller cache never fits a shorter context.
      expect(context(fit, 'q4_0'), label).toBeGreaterThanOrEqual(context(fit, 'q8_0'));
      expect(context(fit, 'q8_0'), label).toBeGreaterThanOrEqual(context(fit, 'f16'));

      if (mach.device.backend === 'cpu') expect(['ram', 'too-large'], label).toContain(fit.verdict);
      else expect(fit.verdict, label).not.toBe('ram');
      const where = fit.verdict === 'gpu' ? budget.fullGpu! : budget.partial;
      if (fit.verdict === 'too-large') {
        expect(fit.chosen, label).toBeNull();
        expect(fit.contexts.every((c) => c.maxContext < needed), label).toBe(true);
        // Not even the shortest useful context with the smallest cache fits anywhere.
        expect(await total(shape, estimate, 'q4_0', needed), label).toBeGreaterThan(budget.partial);
        continue;
      }
      // The chosen type is the best that reaches the shortest useful context, and it does fit there.
      const chosen = fit.contexts.find((c) => c.maxContext >= needed)!;
      expect(fit.chosen, label).toBe(chosen.kvType);
      expect(await total(shape, estimate, chosen.kvType, chosen.maxContext), label).toBeLessThanOrEqual(where);
      // …and it is the longest that fits there.
      if (chosen.maxContext < ceiling) expect(await total(shape, estimate, chosen.kvType, chosen.maxContext + CONTEXT_STEP), label).toBeGreaterThan(where);
      // Not on the GPU alone: then no type reaches it there.
      if (fit.verdict === 'partial') expect(await total(shape, estimate, 'q4_0', needed), label).toBeGreaterThan(budget.fullGpu!);
    }
  });

  it('agrees with what people who run these models know', async () => {
    // An 8B Q4_K_M runs on an 8 GB card at 4k with an f16 cache.
    const llamaOn8 = await referenceFit('Llama-3.1-8B', 'Q4_K_M', 'PC 8 GB');
    expect(llamaOn8).toMatchObject({ verdict: 'gpu', chosen: 'f16' });
    expect(context(llamaOn8, 'f16')).toBeGreaterThanOrEqual(4096);
    // Its 128k context needs a quantized cache even on 16 GB, and all of it fits on 24 GB.
    const llamaOn16 = await referenceFit('Llama-3.1-8B', 'Q4_K_M', 'PC 16 GB');
    expect(context(llamaOn16, 'f16')).toBeLessThan(131072);
    expect(context(llamaOn16, 'q8_0')).toBeGreaterThan(context(llamaOn16, 'f16'));
    expect(context(await referenceFit('Llama-3.1-8B', 'Q4_K_M', 'PC 24 GB'), 'f16')).toBe(131072);
    // A 32B Q4_K_M (19.9 GB) does not fit a 16 GB card: partial there.
    expect((await referenceFit('Qwen2.5-32B', 'Q4_K_M', 'PC 16 GB')).verdict).toBe('partial');
    // On 24 GB it fits, but not its whole 32k context with an f16 cache; q4_0 goes further.
    const qwen32On24 = await referenceFit('Qwen2.5-32B', 'Q4_K_M', 'PC 24 GB');
    expect(qwen32On24.verdict).toBe('gpu');
    expect(context(qwen32On24, 'f16')).toBeLessThan(32768);
    expect(context(qwen32On24, 'q4_0')).toBeGreaterThan(context(qwen32On24, 'f16'));
    // A 32B Q8_0 (34.8 GB) is more than a 16 GB Mac has at all, and a 64 GB Mac runs it on the GPU.
    expect(await referenceFit('Qwen2.5-32B', 'Q8_0', 'Mac 16 GB')).toMatchObject({ verdict: 'too-large', chosen: null });
    expect((await referenceFit('Qwen2.5-32B', 'Q8_0', 'Mac 64 GB')).verdict).toBe('gpu');
    // A 7B Q4_K_M runs on a laptop without a GPU, from RAM; a 16 GB F16 file does not.
    expect((await referenceFit('Qwen2.5-7B', 'Q4_K_M', 'Laptop 16 GB, no GPU')).verdict).toBe('ram');
    expect((await referenceFit('Llama-3.1-8B', 'F16', 'Laptop 16 GB, no GPU')).verdict).toBe('too-large');
  });

  it('never worsens with more memory: PCs 8 < 16 < 24 GB, Macs 16 < 32 < 64 GB', async () => {
    for (const m of referenceModels) {
      for (const file of m.files) {
        for (const ladder of [['PC 8 GB', 'PC 16 GB', 'PC 24 GB'], ['Mac 16 GB', 'Mac 32 GB', 'Mac 64 GB']]) {
          const fits = await Promise.all(ladder.map((name) => referenceFit(m.name, file.quant, name)));
          for (let i = 1; i < fits.length; i++) {
            const label = `${m.name} ${file.quant}: ${ladder[i - 1]} → ${ladder[i]}`;
            expect(verdictRank[fits[i]!.verdict], label).toBeGreaterThanOrEqual(verdictRank[fits[i - 1]!.verdict]);
            // Within one verdict, every type's context grows or stays.
            if (fits[i]!.verdict === fits[i - 1]!.verdict) {
              for (const kvType of fitKvTypes) expect(context(fits[i]!, kvType), `${label} ${kvType}`).toBeGreaterThanOrEqual(context(fits[i - 1]!, kvType));
            }
          }
        }
      }
    }
  });
});

describe('more memory never worsens a verdict', () => {
  const m = model('Qwen2.5-14B');
  const estimate = referenceEstimator(m);

  it('as VRAM grows from 2 to 40 GiB, and RAM from 8 to 64 GiB, for every file of a model', async () => {
    for (const file of m.files) {
      const shape = referenceShape(m, file.bytes);
      let last: FileFit | null = null;
      for (let vram = 2; vram <= 40; vram += 2) {
        const fit = await fileFit({ shape, device: gpu(vram), reserve: { vramBytes: 0.5 * GiB, ramBytes: GiB }, estimate });
        if (last) {
          expect(verdictRank[fit.verdict], `${file.quant} at ${vram} GiB`).toBeGreaterThanOrEqual(verdictRank[last.verdict]);
          if (fit.verdict === last.verdict) for (const kvType of fitKvTypes) expect(context(fit, kvType)).toBeGreaterThanOrEqual(context(last, kvType));
        }
        last = fit;
      }
      expect(last!.verdict).toBe('gpu');
      last = null;
      for (let ram = 8; ram <= 64; ram += 4) {
        const fit = await fileFit({ shape, device: cpu(ram * GiB), reserve: noReserve, estimate });
        if (last) expect(verdictRank[fit.verdict], `${file.quant} with ${ram} GiB of RAM`).toBeGreaterThanOrEqual(verdictRank[last.verdict]);
        last = fit;
      }
      expect(last!.verdict).toBe('ram');
    }
  });
});

describe('edge cases', () => {
  const estimate = fakeEstimator(llama8b);
  const shape8b = (weightsBytes: number, patch: Partial<ModelShape> = {}): ModelShape => ({ ...llama8b, weightsBytes, ...patch });

  it('plans on totals: what is free right now does not change the verdict', async () => {
    const shape = shape8b(4.9e9);
    const busy: DeviceMemory = { ...gpu(8), vramFreeBytes: 0.2 * GiB, ramFreeBytes: 1 * GiB };
    const reserve: Reserve = { vramBytes: 0.6 * GiB, ramBytes: GiB };
    expect(await fileFit({ shape, device: busy, reserve, estimate })).toEqual(await fileFit({ shape, device: gpu(8), reserve, estimate }));
    expect((await fileFit({ shape, device: busy, reserve, estimate })).verdict).toBe('gpu');
  });

  it('a model trained on fewer than 4,096 tokens needs only its trained context', async () => {
    const shape = shape8b(2e9, { trainedContextLength: 2048 });
    const fit = await fileFit({ shape, device: gpu(8), reserve: noReserve, estimate });
    expect(fit).toMatchObject({ verdict: 'gpu', chosen: 'f16', trainedContextLength: 2048 });
    expect(fit.contexts.map((c) => c.maxContext)).toEqual([2048, 2048, 2048]);
    // Room for 1,000 f16 tokens on the card: q4_0 (36 KiB a token to f16's 128 and q8_0's 68) reaches 2,048 there.
    const tight = await fileFit({ shape, device: gpu((2e9 + 1000 * 128 * 1024) / GiB), reserve: noReserve, estimate });
    expect(tight).toMatchObject({ verdict: 'gpu', chosen: 'q4_0' });
    expect(context(tight, 'q8_0')).toBeLessThan(2048);
    // Room for 500: not even q4_0 does; with RAM beside the card, f16 does.
    const partial = await fileFit({ shape, device: gpu((2e9 + 500 * 128 * 1024) / GiB), reserve: noReserve, estimate });
    expect(partial).toMatchObject({ verdict: 'partial', chosen: 'f16' });
  });

  it('a file that does not say its trained context is searched up to the planner\'s ceiling', async () => {
    const shape = shape8b(1e9, { trainedContextLength: 0 });
    const fit = await fileFit({ shape, device: gpu(256), reserve: noReserve, estimate });
    expect(fit).toMatchObject({ verdict: 'gpu', chosen: 'f16', trainedContextLength: 0 });
    expect(context(fit, 'q4_0')).toBe(MAX_PLAN_CONTEXT);
  });

  it('weights larger than the card: no context on the GPU, partial with RAM, too large without enough of it', async () => {
    const shape = shape8b(9e9);
    const partial = await fileFit({ shape, device: gpu(8, 32), reserve: noReserve, estimate });
    expect(partial).toMatchObject({ verdict: 'partial', chosen: 'f16' });
    expect(context(partial, 'f16')).toBe(131072);
    const tooLarge = await fileFit({ shape, device: gpu(4, 4), reserve: noReserve, estimate });
    expect(tooLarge).toMatchObject({ verdict: 'too-large', chosen: null });
    expect(tooLarge.contexts.map((c) => c.maxContext)).toEqual([0, 0, 0]);
  });

  it('too large keeps the shorter contexts that would fit, below 4,096', async () => {
    // Room for 1,200 f16 tokens (128 KiB each) beside 8 GiB of weights: q4_0 (36 KiB) reaches 4,096.
    const room = 8 * GiB + 1200 * 128 * 1024;
    const fit = await fileFit({ shape: shape8b(8 * GiB), device: cpu(room), reserve: noReserve, estimate });
    expect(fit.verdict).toBe('ram');
    expect(fit.chosen).toBe('q4_0');
    expect(context(fit, 'f16')).toBeLessThan(4096);
    expect(context(fit, 'f16')).toBeGreaterThan(0);
    const smaller = await fileFit({ shape: shape8b(8 * GiB), device: cpu(8 * GiB + 300 * 128 * 1024), reserve: noReserve, estimate });
    expect(smaller).toMatchObject({ verdict: 'too-large', chosen: null });
    expect(context(smaller, 'q4_0')).toBeGreaterThan(0);
    expect(context(smaller, 'q4_0')).toBeLessThan(4096);
  });

  it('no GPU: "ram" when it fits, else "too-large"; never "gpu" or "partial"', async () => {
    expect((await fileFit({ shape: shape8b(4.9e9), device: cpu(16 * GiB), reserve: { vramBytes: 0, ramBytes: 4 * GiB }, estimate })).verdict).toBe('ram');
    expect((await fileFit({ shape: shape8b(16e9), device: cpu(16 * GiB), reserve: { vramBytes: 0, ramBytes: 4 * GiB }, estimate })).verdict).toBe('too-large');
  });

  it('the reserve counts: a card the reserve fills runs nothing on the GPU', async () => {
    const fit = await fileFit({ shape: shape8b(1e9), device: gpu(2), reserve: { vramBytes: 2 * GiB, ramBytes: 0 }, estimate });
    expect(fit.verdict).toBe('partial');
  });

  it('unified memory is one memory: the larger of Metal\'s limit and RAM, not their sum', async () => {
    // 14 GiB of weights: Metal allows 10.7 of 16 GiB; a PC's 10.7 GiB card and 16 GiB of RAM hold it partly.
    const shape = shape8b(14 * GiB);
    const mac = await fileFit({ shape, device: { ...gpu(10.7, 16, true) }, reserve: noReserve, estimate });
    expect(mac.verdict).toBe('partial');
    const bigger = await fileFit({ shape: shape8b(17 * GiB), device: gpu(10.7, 16, true), reserve: noReserve, estimate });
    expect(bigger.verdict).toBe('too-large');
    expect((await fileFit({ shape: shape8b(17 * GiB), device: gpu(10.7, 16, false), reserve: noReserve, estimate })).verdict).toBe('partial');
  });

  it('without flash attention the quantized types are refused, and f16 decides alone', async () => {
    const shape = shape8b(4.9e9, { flashAttentionSupported: false });
    const fit = await fileFit({ shape, device: gpu(8), reserve: noReserve, estimate });
    expect(fit.contexts[0]).toEqual({ kvType: 'f16', maxContext: expect.any(Number) });
    for (const c of fit.contexts.slice(1)) expect(c).toEqual({ kvType: c.kvType, maxContext: 0, refused: expect.stringMatching(/needs flash attention/) });
    expect(fit).toMatchObject({ verdict: 'gpu', chosen: 'f16' });
    // A card where only a quantized cache would reach 4k: the verdict falls to partial.
    const tight = gpu((4.9e9 + 2048 * 128 * 1024) / GiB);
    expect(await fileFit({ shape, device: tight, reserve: noReserve, estimate })).toMatchObject({ verdict: 'partial', chosen: 'f16' });
  });

  it('heads whose size no quantized block divides refuse q8_0 and q4_0', async () => {
    const shape = shape8b(1e9, { headDimK: 80, headDimV: 80 });
    const fit = await fileFit({ shape, device: gpu(8), reserve: noReserve, estimate });
    expect(fit.contexts.slice(1).map((c) => c.refused)).toEqual([expect.stringMatching(/not a multiple of q8_0/), expect.stringMatching(/not a multiple of q4_0/)]);
    expect(fit.chosen).toBe('f16');
  });
});
