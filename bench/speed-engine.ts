/**
 * One llama.cpp engine for the speed benchmark, in a process of its own: the prebuilt libraries
 * (getLlama, as engine/worker/llama-init.ts loads them) or a local build
 * (engine/worker/local-llama.ts). Two llama.cpp libraries must not share a process, and with
 * each engine in its own child the two are set up alike; bench/speed.ts drives them over IPC,
 * one request at a time, so they never measure at once.
 *
 * Run as a child (`fork`), this file answers messages; imported, it gives the parent's side.
 */
import { forkRpc, type RpcReply } from './child-rpc.ts';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { errorText, type EngineBuildKind, type KvCacheType, type SpeedProfile } from '../engine/contract/index.ts';
import { readModelShape } from '../engine/worker/planner.ts';
import { speedSpace, type Measured } from '../engine/worker/speed-choice.ts';
import { describeDevice, measureSpeed, measureTrial, type TrialOptions } from '../engine/worker/speed.ts';
import type { EngineInfo } from './speed-report.ts';

/** The local engine's loader, by the path bench/speed.ts checks before it starts anything. */
export const localLlamaModule = fileURLToPath(new URL('../engine/worker/local-llama.ts', import.meta.url));

/** Which engine a child runs. */
export type EngineSpec = { readonly engine: 'prebuilt' } | { readonly engine: 'local'; readonly buildDir: string };

type Request = { readonly id: number } & (
  | { readonly op: 'open'; readonly spec: EngineSpec }
  | { readonly op: 'load'; readonly modelPath: string }
  | { readonly op: 'hearth'; readonly kType: KvCacheType; readonly vType: KvCacheType; readonly threads: readonly number[] }
  | { readonly op: 'trial'; readonly options: TrialOptions }
  | { readonly op: 'unload' }
  | { readonly op: 'close' }
);


type RequestBody = Request extends infer R ? (R extends { readonly id: number } ? Omit<R, 'id'> : never) : never;

/** An engine as the parent sees it. */
export interface SpeedEngine {
  readonly info: EngineInfo;
  /** Loads the model (unloading the one before); says whether its architecture can run flash attention. */
  load(modelPath: string): Promise<{ readonly flashAttentionSupported: boolean }>;
  /** measureSpeed as a first load runs it: setting `auto`, this pair, these thread counts. */
  hearth(kType: KvCacheType, vType: KvCacheType, threads: readonly number[]): Promise<SpeedProfile>;
  trial(options: TrialOptions): Promise<Measured>;
  unload(): Promise<void>;
  close(): Promise<void>;
}

/** Starts an engine in a child process; rejects with the child's reason when it cannot open. */
export async function startSpeedEngine(spec: EngineSpec): Promise<SpeedEngine> {
  if (spec.engine === 'local' && !existsSync(localLlamaModule)) {
    throw new Error(`--local-engine needs ${localLlamaModule} (loadLocalLlama), which this checkout does not have yet.`);
  }
  // stdout to stderr as well: the benchmark's stdout is its report.
  const { ask, close } = forkRpc<RequestBody>(fileURLToPath(import.meta.url), `${spec.engine} engine`, 2);
  let info: EngineInfo;
  try {
    info = await ask<EngineInfo>({ op: 'open', spec });
  } catch (error) {
    await close();
    throw error;
  }
  return {
    info,
    load: (modelPath) => ask({ op: 'load', modelPath }),
    hearth: (kType, vType, threads) => ask({ op: 'hearth', kType, vType, threads }),
    trial: (options) => ask({ op: 'trial', options }),
    unload: () => ask({ op: 'unload' }),
    close,
  };
}

async function openLlama(spec: EngineSpec): Promise<Llama> {
  if (spec.engine === 'prebuilt') return getLlama({ gpu: 'auto', build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  // Imported only here: a checkout without the module still runs the prebuilt engine.
  const { loadLocalLlama } = await import('../engine/worker/local-llama.ts');
  return loadLocalLlama(spec.buildDir, { logLevel: LlamaLogLevel.error, logger: (level, message) => void process.stderr.write(`[local llama.cpp ${level}] ${message.trimEnd()}\n`) });
}

/** The child's side: one engine, at most one model, answering the parent's requests in order. */
async function serve(): Promise<void> {
  let llama: Llama | null = null;
  let engine: EngineBuildKind = 'prebuilt';
  let device = '';
  let model: LlamaModel | null = null;
  const loaded = (): LlamaModel => {
    if (model === null) throw new Error('no model is loaded');
    return model;
  };
  const unload = async (): Promise<void> => {
    await model?.dispose();
    model = null;
  };
  const handle = async (request: Request): Promise<unknown> => {
    switch (request.op) {
      case 'open': {
        llama = await openLlama(request.spec);
        engine = request.spec.engine;
        device = describeDevice(llama.gpu, llama.gpu === false ? [] : await llama.getGpuDeviceNames().catch(() => []));
        const info: EngineInfo = {
          engine,
          ...(request.spec.engine === 'local' ? { buildDir: request.spec.buildDir } : {}),
          llamaCppRelease: llama.llamaCppRelease.release,
          backend: llama.gpu === false ? 'cpu' : llama.gpu,
          device,
        };
        return info;
      }
      case 'load': {
        if (llama === null) throw new Error('the engine is not open');
        await unload();
        // As model-load.ts loads it under a default profile (gpuLayers auto).
        model = await llama.loadModel({ modelPath: request.modelPath });
        return { flashAttentionSupported: readModelShape(model.fileInsights).flashAttentionSupported };
      }
      case 'hearth': {
        const current = loaded();
        const { kType, vType } = request;
        // As model-load.ts builds it for a default profile (flash attention auto).
        const space = speedSpace({ setting: 'auto', supported: readModelShape(current.fileInsights).flashAttentionSupported, vType, threads: request.threads });
        return measureSpeed(current, { kType, vType, engine, device, space });
      }
      case 'trial':
        return measureTrial(loaded(), request.options);
      case 'unload':
        await unload();
        return null;
      case 'close':
        await unload();
        await llama?.dispose();
        llama = null;
        return null;
    }
  };
  // One at a time: a measurement must not share the CPU with another.
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (request: Request) => {
    queue = queue.then(async () => {
      let reply: RpcReply;
      try {
        reply = { id: request.id, ok: true, value: await handle(request) };
      } catch (error) {
        reply = { id: request.id, ok: false, error: errorText(error) };
      }
      process.send?.(reply);
      if (request.op === 'close') process.disconnect?.();
    });
  });
  // The parent gone (a crash, Ctrl-C): a measurement under way is abandoned, not finished (a
  // 2-thread trial on a busy machine can take minutes). After `close` everything is disposed.
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) await serve();
