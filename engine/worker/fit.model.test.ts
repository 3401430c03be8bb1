/**
 * The fit verdicts against llama.cpp: the reference models' published file sizes and the
 * reference estimator (fit-reference.ts) checked on GGUF headers of those very shapes, the
 * assumption that one header's context estimate serves every quantization of a model, and
 * `fitRemote` through an engine process, reading headers over HTTP from a loopback server and the
 * Hugging Face emulator (auth, missing files, garbage, an unknown architecture, no server).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufInsights, getLlama, LlamaLogLevel, readGgufFileInfo, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitKvTypes } from '../contract/index.ts';
import { fileFit } from './fit-core.ts';
import { REFERENCE_ESTIMATE_TOLERANCE, referenceEstimator, referenceModels, type ReferenceModel, type ReferenceQuant } from './fit-reference.ts';
import { readDevice, readModelShape, v2Estimator } from './planner.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { startHubEmulator, type HubEmulator } from '../../test/support/hf-emulator.ts';
import { brokenModelPath, testModelPath } from '../../test/support/models.ts';
import { referenceHeader } from '../../test/support/reference-gguf.ts';

let dir: string;
let llama: Llama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-fit-'));
  llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
});

afterAll(async () => {
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function headerInsights(model: ReferenceModel, quant: ReferenceQuant): Promise<{ path: string; insights: GgufInsights }> {
  const path = join(dir, `${model.name}-${quant}.gguf`);
  await writeFile(path, referenceHeader(model, quant));
  return { path, insights: await GgufInsights.from(await readGgufFileInfo(path, { logWarnings: false }), llama) };
}

describe('the reference models against llama.cpp', () => {
  it("published file sizes match the tensors llama.cpp's recipes give these shapes, within 0.5%", async () => {
    for (const model of referenceModels) {
      for (const file of model.files) {
        const { insights } = await headerInsights(model, file.quant);
        expect(Math.abs(insights.modelSize / file.bytes - 1), `${model.name} ${file.quant}: ${insights.modelSize} against ${file.bytes}`).toBeLessThan(0.005);
      }
    }
  });

  it("a context's memory does not depend on the weights' quantization: one estimate for every file of a model", async () => {
    for (const model of referenceModels) {
      const estimates = await Promise.all(
        model.files.map(async (file) => {
          const estimate = v2Estimator((await headerInsights(model, file.quant)).insights, 0);
          const values: number[] = [];
          for (const kvType of fitKvTypes) for (const contextSize of [512, 8192]) values.push(await estimate({ contextSize, slots: 1, pair: { kType: kvType, vType: kvType }, flashAttention: true }));
          return values;
        }),
      );
      // Measured equal to the byte; any difference would be a buffer that depends on the weights.
      for (const values of estimates.slice(1)) expect(values, model.name).toEqual(estimates[0]);
    }
  });

  it(`the reference estimator is within ${REFERENCE_ESTIMATE_TOLERANCE * 100}% of llama.cpp's V2 estimate: every model, type, context and slot count`, async () => {
    const errors: number[] = [];
    for (const model of referenceModels) {
      const llamaCpp = v2Estimator((await headerInsights(model, 'Q4_K_M')).insights, 0);
      const reference = referenceEstimator(model);
      for (const flashAttention of [true, false]) {
        for (const kvType of flashAttention ? fitKvTypes : (['f16'] as const)) {
          for (const contextSize of [256, 2048, 8192, 32768, 131072].filter((size) => size <= model.contextLength)) {
            for (const slots of [1, 2]) {
              const request = { contextSize, slots, pair: { kType: kvType, vType: kvType }, flashAttention };
              const actual = await llamaCpp(request);
              const error = (await reference(request)) / actual - 1;
              expect(Math.abs(error), `${model.name} ${kvType} fa=${flashAttention} ${slots}×${contextSize}: ${(error * 100).toFixed(2)}%`).toBeLessThanOrEqual(REFERENCE_ESTIMATE_TOLERANCE);
              errors.push(Math.abs(error));
            }
          }
        }
      }
    }
    expect(errors.length).toBeGreaterThan(120);
    // More than a loose bound: half the points are within a quarter of a percent.
    const sorted = errors.sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThan(0.0025);
  });
});

/** Serves `header` followed by zeros up to `size` bytes, with ranges; counts the body bytes sent. */
async function serveVirtualFile(header: Buffer, size: number): Promise<{ url: string; bytesServed: () => number; close: () => Promise<void> }> {
  let served = 0;
  const server: Server = createServer((request, response) => {
    const range = /bytes=(\d+)-(\d*)/.exec(request.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] !== '' ? Math.min(Number(range[2]), size - 1) : size - 1;
    const body = Buffer.alloc(end - start + 1);
    if (start < header.length) header.copy(body, 0, start, Math.min(header.length, end + 1));
    response.writeHead(range ? 206 : 200, { 'content-length': body.length, 'accept-ranges': 'bytes', ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}) });
    served += body.length;
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.gguf`,
    bytesServed: () => served,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('fitRemote in an engine process', () => {
  let engine: EngineClient;
  let hub: HubEmulator;
  const token = 'hf_allowed_token';

  beforeAll(async () => {
    engine = await startEngine();
    hub = await startHubEmulator({
      repos: [
        { id: 'hearth/tiny', files: [{ path: 'tiny-F16.gguf', source: await testModelPath() }] },
        { id: 'hearth/gated', gated: 'manual', allowedTokens: [token], files: [{ path: 'tiny-F16.gguf', source: await testModelPath() }] },
        {
          id: 'hearth/broken',
          files: [
            { path: 'text.gguf', source: await brokenModelPath('notGguf') },
            { path: 'empty.gguf', source: await brokenModelPath('empty') },
            { path: 'alien.gguf', source: await testModelPath('unsupportedArch') },
          ],
        },
      ],
      validTokens: [token, 'hf_other_token'],
    });
  });

  afterAll(async () => {
    await engine?.dispose();
    await hub?.close();
  });

  const resolveUrl = (repo: string, path: string) => `${hub.endpoint}/${repo}/resolve/main/${path}`;

  it("judges every file of a model from one file's header, as fileFit does with llama.cpp's estimate, fetching only the header", async () => {
    const model = referenceModels.find((m) => m.name === 'Llama-3.1-8B')!;
    const q4 = model.files.find((f) => f.quant === 'Q4_K_M')!;
    const { insights } = await headerInsights(model, 'Q4_K_M');
    const server = await serveVirtualFile(referenceHeader(model, 'Q4_K_M'), q4.bytes);
    try {
      const files = model.files.map((file) => ({ id: file.quant, sizeBytes: file.bytes }));
      const result = await engine.must('fitRemote', { url: server.url, sizeBytes: q4.bytes, files });
      expect(server.bytesServed()).toBeGreaterThan(0);
      expect(server.bytesServed()).toBeLessThanOrEqual(16 * 1024 * 1024);
      // This machine, by its totals.
      expect(result.device).toMatchObject({ backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null });
      expect(result.device.ramFreeBytes).toBe(result.device.ramTotalBytes);
      expect(Object.keys(result.fits).sort()).toEqual(model.files.map((f) => f.quant).sort());
      // The header file's weights are its tensors; the others' are their sizes less the same overhead.
      const overhead = q4.bytes - insights.modelSize;
      expect(overhead).toBeGreaterThan(0);
      expect(result.fits.Q4_K_M!.weightsBytes).toBe(insights.modelSize);
      // The same verdicts, computed here on the same header with this machine's device.
      const { device, reserve } = await readDevice(llama);
      const shape = readModelShape(insights);
      for (const file of model.files) {
        const expected = await fileFit({ shape: { ...shape, weightsBytes: file.bytes - overhead }, device, reserve, estimate: v2Estimator(insights, 0) });
        expect(result.fits[file.quant], file.quant).toEqual(expected);
        expect(expected.trainedContextLength).toBe(131072);
      }
    } finally {
      await server.close();
    }
  });

  it('sends the Authorization header it is given: a gated repository answers 401 without it, 403 for a token it does not allow', async () => {
    const url = resolveUrl('hearth/gated', 'tiny-F16.gguf');
    const files = [{ id: 'tiny-F16.gguf', sizeBytes: 1_400_000 }];
    const anonymous = await engine.call('fitRemote', { url, sizeBytes: 1_400_000, files });
    expect(anonymous).toMatchObject({ ok: false, error: { code: 'AUTH_REQUIRED', message: expect.stringMatching(/HTTP 401/) } });
    const refused = await engine.call('fitRemote', { url, headers: { Authorization: 'Bearer hf_other_token' }, sizeBytes: 1_400_000, files });
    expect(refused).toMatchObject({ ok: false, error: { code: 'AUTH_REQUIRED', message: expect.stringMatching(/HTTP 403/) } });
    const allowed = await engine.must('fitRemote', { url, headers: { Authorization: `Bearer ${token}` }, sizeBytes: 1_400_000, files });
    expect(allowed.fits['tiny-F16.gguf']).toMatchObject({ verdict: 'ram', chosen: 'f16', trainedContextLength: 8192 });
    // The header read with the token is not handed out without it.
    expect(await engine.call('fitRemote', { url, sizeBytes: 1_400_000, files })).toMatchObject({ ok: false, error: { code: 'AUTH_REQUIRED' } });
    // The token went to the Hub, and not across the redirect to the CDN.
    const gated = hub.requests.filter((r) => r.path.includes('hearth/gated/resolve'));
    expect(gated.some((r) => r.authorization === `Bearer ${token}`)).toBe(true);
    expect(hub.requests.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined)).toBe(true);
  });

  it('answers a missing file, a text file, an empty file, an unknown architecture and an unreachable server with their codes', async () => {
    const fit = (url: string) => engine.call('fitRemote', { url, sizeBytes: 1000, files: [{ id: 'a', sizeBytes: 1000 }] });
    expect(await fit(resolveUrl('hearth/tiny', 'missing.gguf'))).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await fit(resolveUrl('hearth/broken', 'text.gguf'))).toMatchObject({ ok: false, error: { code: 'MODEL_INVALID', message: expect.stringMatching(/not a GGUF/) } });
    expect(await fit(resolveUrl('hearth/broken', 'empty.gguf'))).toMatchObject({ ok: false, error: { code: 'MODEL_INVALID' } });
    expect(await fit(resolveUrl('hearth/broken', 'alien.gguf'))).toMatchObject({ ok: false, error: { code: 'MODEL_UNSUPPORTED', message: expect.stringMatching(/hearthnotreal/) } });
    // A port nobody listens on: the server the emulator's closed twin would be.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await fit(`http://127.0.0.1:${port}/model.gguf`)).toMatchObject({ ok: false, error: { code: 'NETWORK_ERROR' } });
  });

  it('refuses malformed input', async () => {
    const url = resolveUrl('hearth/tiny', 'tiny-F16.gguf');
    for (const input of [
      { url: 'file:///etc/passwd', sizeBytes: 1, files: [] },
      { url, sizeBytes: -1, files: [] },
      { url, sizeBytes: 1, files: [{ id: '', sizeBytes: 1 }] },
      { url, sizeBytes: 1, files: [{ id: 'a', sizeBytes: 1.5 }] },
      { url, headers: { Authorization: 5 }, sizeBytes: 1, files: [] },
    ]) {
      expect(await engine.callRaw('fitRemote', input), JSON.stringify(input)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    }
  });
});
