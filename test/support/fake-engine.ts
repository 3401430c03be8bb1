/**
 * An in-memory engine process for unit tests: it speaks protocol.ts, streams scripted tokens,
 * fails on request, and "crashes". Not used by the app.
 */
import { err, ok, type CachedChat, type FileFit, type HearthError, type KvCodecInfo, type KvCompressionChoice, type KvPlan, type KvQuality, type MessageStats, type ModelInfo, type ModelKvUsage, type ProfileIssue, type Result, type SpeedProfile } from '../../engine/contract/index.ts';
import type { EngineMetrics, EnginePort, GenerateInput, GenerateOutput, HostToWorker, SpawnEngine, WorkerEvent, WorkerMethods, WorkerToHost } from '../../engine/protocol.ts';

export interface FakeBehaviour {
  /** The reply, token by token. */
  tokens: string[];
  tokenDelayMs: number;
  /** Emit this many tokens, then wait for `release()` (or an abort or crash). */
  pauseAfter: number | null;
  /** Each generate answers this error after its tokens. */
  generateError: HearthError | null;
  loadError: HearthError | null;
  /** init answers this error (the process then gets killed by the supervisor). */
  initError: HearthError | null;
  /** Never send `ready`. */
  silent: boolean;
  /** What `init` answers as the KV codec in use (e.g. `{ kernels: 'fallback', reason }`). */
  codec: KvCodecInfo;
  /** What `init` answers `auto` resolved to (a fixed setting is answered as it is). */
  autoCompression: Omit<KvCompressionChoice, 'setting'>;
  /** Events each process sends while handling `init`, before answering it (e.g. `kvPersistence`). */
  initEvents: WorkerEvent[];
  metrics: EngineMetrics;
  /** What `checkProfile` says of every profile (errors make `resolved` null). */
  profileIssues: ProfileIssue[];
  plan: KvPlan;
  quality: KvQuality;
  /**
   * The disk store's chats, largest first (`kvChats`). `chatCache` answers from them and from
   * `metrics.slots`; `forgetChat` removes the chat from both and reports its bytes freed.
   */
  cachedChats: CachedChat[];
  /** Merged into each reply's stats (e.g. a restore, or a fallbackReason). */
  stats: Partial<MessageStats>;
  /** How a reply that was not aborted ends (`context`: cut by the end of the context). */
  stopReason: Exclude<GenerateOutput['stopReason'], 'aborted'>;
  /** The calls a reply reports (with stopReason `functionCalls`); null: none. */
  functionCalls: GenerateOutput['functionCalls'] | null;
  /** The stop text a reply reports as its end (with stopReason `stopSequence`); null: none. */
  stopSequence: string | null;
  /** The stored KV of each model path (`modelKv`); `forgetModel` reports it freed and removes it. */
  modelKv: Record<string, ModelKvUsage>;
  /** What `measureTrial` measures, whatever the settings. */
  trialSpeed: { prefillTokPerS: number; decodeTokPerS: number };
  /** What a load that is asked to measure its speed measures (its chosen settings are what the context runs with). */
  measuredSpeed: SpeedProfile;
  /** `fitRemote`'s answer for each file (by its bytes); an error fails the whole call. */
  fit: ((file: { id: string; sizeBytes: number }) => FileFit) | HearthError;
}

/**
 * The fake's verdict: a CPU machine with 16 GiB, where a file runs in RAM when its weights leave
 * room for 4,096 tokens at 1 KiB each, else is too large.
 */
export function fakeFit(file: { sizeBytes: number }): FileFit {
  const room = Math.max(0, 16 * 1024 ** 3 - file.sizeBytes);
  const maxContext = Math.min(32_768, Math.floor(room / 1024 / 256) * 256);
  const fits = maxContext >= 4096;
  return {
    verdict: fits ? 'ram' : 'too-large',
    weightsBytes: file.sizeBytes,
    contexts: [
      { kvType: 'f16', maxContext: fits ? maxContext : 0 },
      { kvType: 'q8_0', maxContext: fits ? maxContext : 0 },
      { kvType: 'q4_0', maxContext: fits ? maxContext : 0 },
    ],
    chosen: fits ? 'f16' : null,
    trainedContextLength: 32_768,
  };
}

/** The fake's default sample: one slot on a CPU, a small store. */
export function fakeMetrics(): EngineMetrics {
  return {
    kvCellsUsed: 17,
    kvCellsCapacity: 4096,
    slots: [{ index: 0, chatId: null, cellsUsed: 17, cellsCapacity: 4096, state: 'idle', kType: 'f16', vType: 'f16', bytes: 17 * 1024 }],
    memory: {
      device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * 1024 ** 3, ramFreeBytes: 8 * 1024 ** 3 },
      gpuLayers: 0,
      weights: { ramBytes: 1_000_000, vramBytes: 0 },
      context: { ramBytes: 4096 * 1024 + 300_000, vramBytes: 0 },
      kvBytesPerCell: 1024,
    },
    kvStore: {
      bytesOnDisk: 40_960,
      storedBytes: 36_864,
      rawBytes: 32_768,
      chunkCount: 2,
      manifests: 1,
      logicalBytes: 36_864,
      budgetBytes: 10 * 1024 ** 3,
      freeBytes: 50 * 1024 ** 3,
    },
    stateTransfer: { mode: 'memory' },
  };
}

const fakePlan: KvPlan = {
  device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16 * 1024 ** 3, ramFreeBytes: 8 * 1024 ** 3 },
  contextSize: 4096,
  slots: 1,
  weightsBytes: 1_000_000,
  rows: [
    { kType: 'f16', vType: 'f16', kvBytesPerToken: 1024, kvBytes: 4096 * 1024, totalBytes: 6_000_000, maxContextFullGpu: null, maxContextPartial: 131_072, fits: true },
    { kType: 'q8_0', vType: 'q8_0', kvBytesPerToken: 544, kvBytes: 4096 * 544, totalBytes: 4_000_000, maxContextFullGpu: null, maxContextPartial: 131_072, fits: true },
  ],
  auto: { kType: 'f16', vType: 'f16' },
};

let nextPid = 40_000;

export class FakeEngine {
  behaviour: FakeBehaviour = {
    tokens: ['Hello', ',', ' world', '!'],
    tokenDelayMs: 2,
    pauseAfter: null,
    generateError: null,
    loadError: null,
    initError: null,
    silent: false,
    codec: { kernels: 'native' },
    autoCompression: {
      applied: 'off',
      reason: 'decoding 0.70 GB/s is slower than reading 9.8 GB/s',
      measured: { decodeBytesPerSec: 0.7e9, readBytesPerSec: 9.8e9 },
    },
    initEvents: [],
    metrics: fakeMetrics(),
    profileIssues: [],
    plan: fakePlan,
    quality: { kType: 'f16', vType: 'f16', klDivergence: 0, top1Agreement: 1, verdict: 'near-lossless', positions: 64, measuredAt: 0 },
    cachedChats: [],
    stats: {},
    stopReason: 'eos',
    functionCalls: null,
    stopSequence: null,
    modelKv: {},
    trialSpeed: { prefillTokPerS: 250, decodeTokPerS: 25 },
    measuredSpeed: {
      kType: 'f16',
      vType: 'f16',
      engine: 'prebuilt',
      device: 'fake device',
      depth: 256,
      decodeTokens: 16,
      trials: [
        { flashAttention: true, threads: 1, batchSize: 512, prefillTokPerS: 300, decodeTokPerS: 20, turnSeconds: 128 / 300 + 256 / 20 },
        { flashAttention: false, threads: 1, batchSize: 512, prefillTokPerS: 200, decodeTokPerS: 30, turnSeconds: 128 / 200 + 256 / 30 },
      ],
      chosen: { flashAttention: false, threads: 1, batchSize: 512 },
      measuredAt: 1_700_000_000_000,
      durationMs: 1200,
    },
    fit: fakeFit,
  };
  readonly ports: FakePort[] = [];
  /** Every call any port received, in order. */
  readonly calls: HostToWorker[] = [];
  /** Runs synchronously when a call arrives, before it is handled. */
  onCall: ((call: HostToWorker) => void) | null = null;
  readonly spawn: SpawnEngine = () => {
    const port = new FakePort(this);
    this.ports.push(port);
    return port;
  };

  get current(): FakePort | undefined {
    const last = this.ports.at(-1);
    return last && !last.dead ? last : undefined;
  }

  /** Kills the running process as a segfault or SIGKILL would. */
  crash(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.current?.die(null, signal);
  }

  /** Sends an event from the running process, as the real engine does at any time. */
  event(event: WorkerEvent): void {
    this.current?.event(event);
  }

  /** Lets paused generations go on. */
  release(): void {
    for (const port of this.ports) port.wakeAll();
  }

  callsOf<M extends keyof WorkerMethods>(method: M): WorkerMethods[M]['input'][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.input as WorkerMethods[M]['input']);
  }

  /** The input of the latest `method` call; throws (failing the test) when there was none. */
  lastCallOf<M extends keyof WorkerMethods>(method: M): WorkerMethods[M]['input'] {
    const last = this.callsOf(method).at(-1);
    if (last === undefined) throw new Error(`the engine got no ${method} call`);
    return last;
  }
}

export class FakePort implements EnginePort {
  readonly pid = nextPid++;
  dead = false;
  readonly #engine: FakeEngine;
  readonly #messageListeners: ((message: WorkerToHost) => void)[] = [];
  readonly #exitListeners: ((code: number | null, signal: string | null) => void)[] = [];
  readonly #aborted = new Set<string>();
  #wakers: (() => void)[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #model: ModelInfo | null = null;
  /** Whether `init` turned the disk store on: without one, metrics carry no `kvStore`. */
  #persisting = false;

  constructor(engine: FakeEngine) {
    this.#engine = engine;
    setTimeout(() => {
      if (!engine.behaviour.silent) this.#post({ kind: 'ready' });
    }, 1);
  }

  send(message: HostToWorker): void {
    if (this.dead) return;
    this.#engine.calls.push(message);
    this.#engine.onCall?.(message);
    void this.#handle(message).then((result) => this.#post({ kind: 'result', id: message.id, result }));
  }

  onMessage(listener: (message: WorkerToHost) => void): void {
    this.#messageListeners.push(listener);
  }

  onExit(listener: (code: number | null, signal: string | null) => void): void {
    this.#exitListeners.push(listener);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    setTimeout(() => this.die(null, signal), 1);
  }

  die(code: number | null, signal: string | null): void {
    if (this.dead) return;
    this.dead = true;
    this.wakeAll();
    setTimeout(() => {
      for (const listener of this.#exitListeners) listener(code, signal);
    }, 1);
  }

  wakeAll(): void {
    for (const wake of this.#wakers.splice(0)) wake();
  }

  #post(message: WorkerToHost): void {
    if (this.dead) return;
    for (const listener of this.#messageListeners) listener(message);
  }

  event(event: WorkerEvent): void {
    this.#post({ kind: 'event', event });
  }

  async #handle(message: HostToWorker): Promise<Result<unknown>> {
    const b = this.#engine.behaviour;
    await delay(1);
    switch (message.method) {
      case 'init': {
        this.#persisting = typeof message.input.kvDir === 'string';
        for (const event of b.initEvents) this.event(event);
        if (b.initError) return { ok: false, error: b.initError };
        const setting = message.input.kvCompression ?? 'lossless';
        const compression: KvCompressionChoice = setting === 'auto' ? { setting, ...b.autoCompression } : { setting, applied: setting };
        // A build for this computer "loads" when the host names one.
        const engine = typeof message.input.engineDir === 'string' ? { kind: 'local' as const, backend: 'cpu' } : { kind: 'prebuilt' as const, backend: 'cpu' };
        return ok<WorkerMethods['init']['output']>({ build: 'fake', codec: b.codec, compression, device: 'fake device', engine });
      }
      case 'loadModel': {
        this.event({ type: 'loadProgress', progress: 0.5 });
        await delay(2);
        this.event({ type: 'loadProgress', progress: 1 });
        if (b.loadError) return { ok: false, error: b.loadError };
        const speed = message.input.speed;
        const measured = speed !== undefined && speed.known === undefined ? b.measuredSpeed : undefined;
        if (measured) for (let done = 0; done <= measured.trials.length; done++) this.event({ type: 'speedProgress', done, total: measured.trials.length });
        const settings = speed?.known ?? measured?.chosen;
        this.#model = {
          path: message.input.path,
          name: 'fake model',
          sizeBytes: 1000,
          architecture: 'llama',
          trainedContextLength: 8192,
          contextSize: message.input.contextSize || 4096,
          layerCount: 4,
          ...(settings ? { flashAttention: settings.flashAttention, threads: settings.threads, batchSize: settings.batchSize } : {}),
        };
        return ok(measured ? { ...this.#model, speed: measured } : this.#model);
      }
      case 'unloadModel':
        this.#model = null;
        return ok({});
      case 'generate': {
        const turn = this.#queue.then(() => this.#generate(message.input));
        this.#queue = turn.catch(() => undefined);
        return turn;
      }
      case 'abort': {
        this.#aborted.add(message.input.requestId);
        this.wakeAll();
        return ok({ aborted: true });
      }
      case 'modelKv':
        return ok(b.modelKv[message.input.path] ?? { conversations: 0, bytes: 0 });
      case 'forgetModel': {
        const stored = b.modelKv[message.input.path];
        delete b.modelKv[message.input.path];
        return ok({ bytesFreed: stored?.bytes ?? 0 });
      }
      case 'fitRemote': {
        const fit = b.fit;
        if (typeof fit !== 'function') return { ok: false, error: fit };
        return ok({ device: fakePlan.device, fits: Object.fromEntries(message.input.files.map((file) => [file.id, fit(file)])) });
      }
      case 'metrics': {
        if (this.#persisting) return ok(b.metrics);
        // Without a store nothing moves state to disk: no transfer either.
        const { kvStore: _none, stateTransfer: _noTransfer, ...withoutStore } = b.metrics;
        return ok(withoutStore);
      }
      case 'forgetChat': {
        const { chatId } = message.input;
        const stored = b.cachedChats.find((c) => c.chatId === chatId);
        b.cachedChats = b.cachedChats.filter((c) => c.chatId !== chatId);
        // The chat leaves its slot too, as the real engine's forget does.
        b.metrics = {
          ...b.metrics,
          slots: b.metrics.slots.map((slot) => (slot.chatId === chatId ? { ...slot, chatId: null, cellsUsed: 0, bytes: 0 } : slot)),
        };
        const bytesFreed = stored?.bytes ?? 0;
        this.event({ type: 'kvActivity', activity: { kind: 'forget', chatId, text: `forgot ${bytesFreed} bytes of KV`, bytes: bytesFreed } });
        return ok({ bytesFreed });
      }
      case 'kvVerify':
        // The fake has no disk store: nothing is checked, as a real engine with persistence off says.
        return ok({ checked: false, ok: true, chunksVerified: 0, missingChunks: 0, corruptChunks: 0, knownCorruptChunks: 0, orphanFiles: 0, tempFiles: 0, refcountMismatches: 0, danglingReferences: 0, inconsistentManifests: 0, corruptTails: 0, repaired: false, problems: [], ms: 0 });
      case 'kvChats':
        return ok({ chats: b.cachedChats.slice(0, message.input.limit) });
      case 'chatCache': {
        const { chatId } = message.input;
        const slot = b.metrics.slots.find((s) => s.chatId === chatId);
        const stored = b.cachedChats.find((c) => c.chatId === chatId);
        return ok({ slot: slot?.index ?? null, tokensInMemory: slot?.cellsUsed ?? 0, tokensOnDisk: stored?.tokens ?? 0, bytesOnDisk: stored?.bytes ?? 0 });
      }
      case 'checkProfile': {
        const { profile } = message.input;
        const issues = b.profileIssues;
        if (issues.some((i) => i.severity === 'error')) return ok({ issues, resolved: null });
        const type = (t: typeof profile.kType) => (t === 'auto' ? 'f16' : t);
        return ok({
          issues,
          resolved: {
            kType: type(profile.kType),
            vType: type(profile.vType),
            flashAttention: profile.flashAttention !== 'off',
            contextSize: profile.contextSize,
            gpuLayers: profile.gpuLayers,
            slots: profile.slots,
            overflowPolicy: profile.overflowPolicy,
          },
        });
      }
      case 'plan':
        return ok({ ...b.plan, contextSize: message.input.contextSize, slots: message.input.slots });
      case 'measureQuality':
        return this.#model ? ok(b.quality) : err('MODEL_NOT_LOADED', 'No model is loaded.');
      case 'measureTrial': {
        if (!this.#model) return err('MODEL_NOT_LOADED', 'No model is loaded.');
        const { prefillTokPerS, decodeTokPerS } = b.trialSpeed;
        return ok({ ...message.input.settings, prefillTokPerS, decodeTokPerS, turnSeconds: 128 / prefillTokPerS + 256 / decodeTokPerS });
      }
      case 'countTokens':
        // One token per character, as `generate` below counts its prefill.
        return this.#model ? ok({ tokens: message.input.messages.reduce((n, m) => n + m.text.length, 0), contextSize: this.#model.contextSize }) : err('MODEL_NOT_LOADED', 'No model is loaded.');
    }
  }

  async #generate(input: GenerateInput): Promise<Result<WorkerMethods['generate']['output']>> {
    const b = this.#engine.behaviour;
    if (!this.#model) return err('MODEL_NOT_LOADED', 'No model is loaded.');
    let text = '';
    let count = 0;
    for (const token of b.tokens) {
      if (this.dead || this.#aborted.has(input.requestId)) break;
      if (b.pauseAfter !== null && count === b.pauseAfter) {
        await new Promise<void>((resolve) => this.#wakers.push(resolve));
        if (this.dead || this.#aborted.has(input.requestId)) break;
      }
      await delay(b.tokenDelayMs);
      if (this.dead) break;
      this.event({ type: 'token', requestId: input.requestId, delta: token });
      text += token;
      count++;
    }
    if (b.generateError) return { ok: false, error: b.generateError };
    const stats: MessageStats = {
      tokensReused: 3,
      tokensRestored: 0,
      tokensPrefilled: input.messages.reduce((n, m) => n + m.text.length, 0),
      tokensGenerated: count,
      ttftMs: 40,
      cacheSource: 'memory',
      ...b.stats,
    };
    const aborted = this.#aborted.has(input.requestId);
    return ok({
      text,
      stopReason: aborted ? 'aborted' : b.stopReason,
      stats,
      ...(!aborted && b.functionCalls ? { functionCalls: b.functionCalls } : {}),
      ...(!aborted && b.stopSequence !== null ? { stopSequence: b.stopSequence } : {}),
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
