/** Test data builders shared by the renderer's unit tests. */
import type {
  ApiRequestLog,
  ApiServerState,
  AppState,
  CacheSnapshot,
  CacheTurn,
  Chat,
  KvPlan,
  KvPlanRow,
  LocalEngineState,
  Message,
  MessageStats,
  RemoteCacheSample,
  RemoteEngine,
  SpeedProfile,
  SpeedTrial,
} from '../../../renderer/src/contract.ts';

let clock = 1_000;

export function msg(id: string, parentId: string | null, role: Message['role'] = 'user', extra: Partial<Message> = {}): Message {
  clock += 1;
  return { id, chatId: 'c1', parentId, role, content: `text of ${id}`, status: 'complete', createdAt: clock, ...extra };
}

export function mapOf(...messages: Message[]): Record<string, Message> {
  return Object.fromEntries(messages.map((m) => [m.id, m]));
}

export function chat(id = 'c1', extra: Partial<Chat> = {}): Chat {
  return {
    id,
    title: 'New chat',
    createdAt: 1,
    updatedAt: 1,
    systemPrompt: '',
    sampling: { temperature: 0.7, topP: 0.95, maxTokens: 512 },
    activeLeafId: null,
    overflowPolicy: null,
    engine: null,
    ...extra,
  };
}

/** An app state as the host reports it at start, with a ready model. */
export const appState = (extra: Partial<AppState> = {}): AppState => ({
  version: '0.1.0',
  host: 'browser',
  dataDir: '/d',
  modelsDir: '/d/models',
  engine: { state: 'running', restarts: 0 },
  model: { status: 'ready' },
  settings: {
    threads: 0,
    contextSize: 0,
    theme: 'system',
    defaultSystemPrompt: '',
    defaultSampling: { temperature: 0.7, topP: 0.95, maxTokens: 512 },
    lastModelPath: null,
    kvPersistence: true,
    kvBudgetBytes: 10 * 1024 ** 3,
    kvChunkTokens: 256,
    kvSlots: 1,
    kvCompression: 'auto',
  modelsDir: null,
  },
  ...extra,
});

/** A planner row: f16-sized figures unless told. */
export const planRow = (kType: KvPlanRow['kType'], vType: KvPlanRow['vType'], extra: Partial<KvPlanRow> = {}): KvPlanRow => ({
  kType,
  vType,
  kvBytesPerToken: 1024,
  kvBytes: 4096 * 1024,
  totalBytes: 6_000_000,
  maxContextFullGpu: null,
  maxContextPartial: 131_072,
  fits: true,
  ...extra,
});

/** A plan on a CPU-only machine (no VRAM), with one pair refused by validation. */
export const cpuPlan = (extra: Partial<KvPlan> = {}): KvPlan => ({
  device: { backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 16e9, ramFreeBytes: 8e9 },
  contextSize: 4096,
  slots: 1,
  weightsBytes: 1_300_000,
  rows: [
    planRow('f16', 'f16'),
    planRow('f16', 'q8_0', { kvBytesPerToken: 784, kvBytes: 4096 * 784, totalBytes: 5_000_000 }),
    planRow('q8_0', 'q8_0', { kvBytesPerToken: 544, kvBytes: 4096 * 544, totalBytes: 4_000_000 }),
    planRow('q4_0', 'q4_0', { kvBytesPerToken: 288, kvBytes: 4096 * 288, totalBytes: 3_000_000, refused: 'the head size 48 is not a multiple of 32' }),
  ],
  auto: { kType: 'f16', vType: 'f16' },
  ...extra,
});

/** A Cache view tick on a CPU machine: one slot holding c1, the store on. */
export const cacheSnapshot = (extra: Partial<CacheSnapshot> = {}): CacheSnapshot => ({
  at: 1_700_000_000_000,
  seq: 1,
  memory: {
    kind: 'ram',
    deviceName: 'RAM',
    capacityBytes: 16e9,
    freeBytes: 8e9,
    weightsBytes: 1e9,
    kvAllocatedBytes: 400e6,
    kvUsedBytes: 100e6,
    computeBytes: 100e6,
  },
  slots: [{ index: 0, chatId: 'c1', cellsUsed: 123, cellsCapacity: 4096, kType: 'f16', vType: 'f16', bytes: 100e6, state: 'idle' }],
  store: {
    persistence: 'on',
    bytesOnDisk: 2 * 1024 ** 2,
    storedBytes: 2 * 1024 ** 2,
    rawBytes: 1.9 * 1024 ** 2,
    chunkCount: 3,
    manifests: 2,
    logicalBytes: 3 * 1024 ** 2,
    budgetBytes: 10 * 1024 ** 3,
    freeDiskBytes: 50 * 1024 ** 3,
    chunkTokens: 256,
    compression: 'lossless',
    compressionChoice: { setting: 'lossless', applied: 'lossless' },
    codec: { kernels: 'native' },
    stateTransfer: { mode: 'memory' },
    dedupRatio: 1.5,
    compressionRatio: 0.95,
  },
  ...extra,
});

export const messageStats = (extra: Partial<MessageStats> = {}): MessageStats => ({
  tokensReused: 0,
  tokensRestored: 0,
  tokensPrefilled: 10,
  tokensGenerated: 5,
  ttftMs: 35,
  cacheSource: 'none',
  ...extra,
});

export const cacheTurn = (messageId: string, stats: Partial<MessageStats> = {}, at = 1_700_000_000_000): CacheTurn => ({
  at,
  chatId: 'c1',
  messageId,
  stats: messageStats(stats),
});

/** The API server listening on its default port, with no requests yet. */
export const serverState = (extra: Partial<ApiServerState> = {}): ApiServerState => ({
  settings: { enabled: true, port: 4724, lan: false, corsOrigins: [] },
  status: 'listening',
  url: 'http://127.0.0.1:4724/v1',
  key: 'hk-test-0123456789abcdef',
  error: null,
  overridden: false,
  endpoints: ['GET /v1/models', 'POST /v1/chat/completions', 'POST /v1/messages'],
  requests: [],
  ...extra,
});

/** A finished chat completion: 40 prompt tokens, 30 of them from the cache. */
export const apiRequest = (id: number, extra: Partial<ApiRequestLog> = {}): ApiRequestLog => ({
  id,
  at: 1_700_000_000_000 + id * 1000,
  client: 'OpenAI/JS 7.60.0',
  endpoint: 'POST /v1/chat/completions',
  model: 'tiny',
  status: 200,
  promptTokens: 40,
  cachedTokens: 30,
  ttftMs: 12,
  tokensPerSecond: 55.25,
  ...extra,
});

/** A remote engine that answered its last check with two models and its /metrics. */
export const remoteEngine = (id = 'e1', extra: Partial<RemoteEngine> = {}): RemoteEngine => ({
  id,
  name: 'GPU box',
  baseUrl: 'http://gpu-box:8000',
  kind: 'vllm',
  hasApiKey: false,
  createdAt: 1,
  status: { state: 'online', checkedAt: 2, models: [{ id: 'llama-3-70b', contextLength: 32768 }, { id: 'qwen-7b' }], metrics: true },
  ...extra,
});

/** One reading of a remote engine's /metrics with every figure reported. */
export const remoteSample = (engineId = 'e1', extra: Partial<RemoteCacheSample> = {}): RemoteCacheSample => ({
  engineId,
  at: 1_700_000_000_000,
  kvUsage: 0.42,
  kvTokens: 12_345,
  prefixHitRate: 0.8,
  recentPrefixHitRate: 0.95,
  requestsRunning: 2,
  requestsWaiting: 0,
  offload: null,
  ...extra,
});

/** A measured trial: figures unless `error` says it could not run. */
export const speedTrial = (flashAttention: boolean, threads: number, batchSize: number, figures: { prefill: number; decode: number; turn: number } | { error: string }): SpeedTrial =>
  'error' in figures
    ? { flashAttention, threads, batchSize, prefillTokPerS: null, decodeTokPerS: null, turnSeconds: null, error: figures.error }
    : { flashAttention, threads, batchSize, prefillTokPerS: figures.prefill, decodeTokPerS: figures.decode, turnSeconds: figures.turn };

/** A CPU model's speed profile: four trials (one failed), the second chosen. */
export const speedProfile = (extra: Partial<SpeedProfile> = {}): SpeedProfile => ({
  kType: 'f16',
  vType: 'f16',
  engine: 'prebuilt',
  device: 'AMD EPYC 9B14, 2 cores, CPU',
  depth: 512,
  decodeTokens: 32,
  trials: [
    speedTrial(true, 2, 512, { prefill: 180.4, decode: 21.3, turn: 12.73 }),
    speedTrial(false, 2, 512, { prefill: 212.9, decode: 24.06, turn: 11.24 }),
    speedTrial(false, 1, 512, { prefill: 118.2, decode: 15.5, turn: 17.6 }),
    speedTrial(false, 2, 2048, { error: 'llama.cpp refused the context' }),
  ],
  chosen: { flashAttention: false, threads: 2, batchSize: 512 },
  measuredAt: new Date(2026, 10, 3, 14, 2).getTime(),
  durationMs: 42_300,
  ...extra,
});

/** The local engine as `engine.local` answers: idle, available, the prebuilt engine in use. */
export const localEngine = (extra: Partial<LocalEngineState> = {}): LocalEngineState => ({ available: true, status: 'idle', inUse: 'prebuilt', ...extra });
