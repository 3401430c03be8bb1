/**
 * The engine process end to end: a real forked process (engine/spawn.ts), the protocol, and
 * real inference on the generated tiny model with `threads: 1`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateInput, PromptMessage } from '../protocol.ts';
import { RAM_CAP_ENV } from './constants.ts';
import { startEngine, type EngineClient } from '../../test/support/engine-client.ts';
import { brokenModelPath, repoRoot, testModelPath } from '../../test/support/models.ts';

const greedy = { temperature: 0, topP: 1, maxTokens: 40 };
let nextId = 0;
const request = (messages: readonly PromptMessage[], sampling = greedy): GenerateInput => ({
  requestId: `r${++nextId}`,
  chatId: 'chat',
  messages,
  sampling,
});
const firstTurn: PromptMessage[] = [
  { role: 'system', text: 'You are a helpful assistant.' },
  { role: 'user', text: 'Tell me about the sea.' },
];

describe('an engine process with the test model', () => {
  let engine: EngineClient;
  let modelPath: string;

  beforeAll(async () => {
    modelPath = await testModelPath();
    engine = await startEngine();
    await engine.must('loadModel', { path: modelPath, contextSize: 0, threads: 1 });
  });

  afterAll(async () => {
    await engine?.dispose();
  });

  it('loads the model with progress and reports it', async () => {
    const before = engine.events.length;
    const info = await engine.must('loadModel', { path: modelPath, contextSize: 0, threads: 1 });
    expect(info).toMatchObject({ path: modelPath, name: 'Hearth tiny llama', architecture: 'llama', trainedContextLength: 8192, contextSize: 8192, layerCount: 4 });
    const progress = engine.events.slice(before).flatMap((e) => (e.type === 'loadProgress' ? [e.progress] : []));
    expect(progress[0]).toBe(0);
    expect(progress.at(-1)).toBe(1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('streams a reply whose deltas add up to the text, and honours maxTokens', async () => {
    const input = request(firstTurn);
    const reply = await engine.must('generate', input);
    const deltas = engine.deltas(input.requestId);
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.join('')).toBe(reply.text);
    expect(reply.text.length).toBeGreaterThan(0);
    // The model is built never to end its turn, so maxTokens decides the length.
    expect(reply.stopReason).toBe('maxTokens');
    expect(reply.stats.tokensGenerated).toBe(40);
    expect(reply.stats).toMatchObject({ tokensRestored: 0, tokensReused: 0, cacheSource: 'none' });
    expect(reply.stats.tokensPrefilled).toBeGreaterThan(10);
    expect(reply.stats.ttftMs).toBeGreaterThan(0);
    expect(reply.stats.prefillMs).toBeGreaterThan(0);
    // Printable, plain text only (writer.ts: the model cannot pick other tokens).
    expect(reply.text).toMatch(/^[a-z .,]+$/);

    const short = await engine.must('generate', request(firstTurn, { ...greedy, maxTokens: 3 }));
    expect(short.stats.tokensGenerated).toBe(3);
    expect(short.stopReason).toBe('maxTokens');
  });

  it('reuses the prompt prefix on the next turn', async () => {
    const first = await engine.must('generate', request(firstTurn));
    const secondTurn: PromptMessage[] = [...firstTurn, { role: 'assistant', text: first.text }, { role: 'user', text: 'And the mountains?' }];
    const second = await engine.must('generate', request(secondTurn));
    expect(second.stats.cacheSource).toBe('memory');
    expect(second.stats.tokensReused).toBeGreaterThanOrEqual(first.stats.tokensPrefilled - 1);
    const promptLength = second.stats.tokensReused + second.stats.tokensPrefilled;
    expect(second.stats.tokensPrefilled).toBeLessThan(promptLength);
    const metrics = await engine.must('metrics', {});
    expect(metrics.kvCellsCapacity).toBe(8192);
    expect(metrics.kvCellsUsed).toBeGreaterThanOrEqual(promptLength);

    // The same prompt again: everything but the last token is already there.
    const again = await engine.must('generate', request(secondTurn));
    expect(again.stats.tokensPrefilled).toBe(1);
    expect(again.text).toBe(second.text);
  });

  it('samples with temperature and top-p', async () => {
    const texts = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const reply = await engine.must('generate', request(firstTurn, { temperature: 1.5, topP: 0.95, maxTokens: 30 }));
      expect(reply.stats.tokensGenerated).toBe(30);
      texts.add(reply.text);
    }
    expect(texts.size).toBeGreaterThan(1);
  });

  it('stops on abort with the partial text', async () => {
    const input = request(firstTurn, { ...greedy, maxTokens: 100_000 });
    const started = engine.firstToken(input.requestId);
    const pending = engine.call('generate', input);
    await started;
    expect(await engine.must('abort', { requestId: input.requestId })).toEqual({ aborted: true });
    const result = await pending;
    if (!result.ok) throw new Error(result.error.message);
    expect(result.value.stopReason).toBe('aborted');
    expect(result.value.text.length).toBeGreaterThan(0);
    expect(result.value.stats.tokensGenerated).toBeLessThan(100_000);
    expect(engine.deltas(input.requestId).join('')).toBe(result.value.text);
    expect(await engine.must('abort', { requestId: input.requestId })).toEqual({ aborted: false });
  });

  it('queues generations in order and aborts a queued one without running it', async () => {
    const long = request(firstTurn, { ...greedy, maxTokens: 100_000 });
    const queued = request(firstTurn);
    const started = engine.firstToken(long.requestId);
    const longResult = engine.call('generate', long);
    const queuedResult = engine.call('generate', queued);
    await started;
    await engine.must('abort', { requestId: queued.requestId });
    await engine.must('abort', { requestId: long.requestId });
    const [a, b] = await Promise.all([longResult, queuedResult]);
    expect(a.ok && a.value.stopReason).toBe('aborted');
    expect(b.ok && b.value).toMatchObject({ text: '', stopReason: 'aborted', stats: { tokensGenerated: 0 } });
  });

  it('refuses a message longer than the context with CONTEXT_OVERFLOW, and stays usable', async () => {
    const info = await engine.must('loadModel', { path: modelPath, contextSize: 256, threads: 1 });
    expect(info.contextSize).toBe(256);
    const long = await engine.call('generate', request([{ role: 'user', text: 'word '.repeat(100) }]));
    expect(long.ok).toBe(false);
    if (long.ok) return;
    expect(long.error.code).toBe('CONTEXT_OVERFLOW');
    expect(long.error.message).toMatch(/The last message alone is too long for the context \(256 tokens/);
    expect(long.error.hint).toBe('Shorten the message, or raise the context size in Settings.');

    // A reply never runs past the context: it stops where the context ends instead of shifting.
    const fits = await engine.must('generate', request([{ role: 'user', text: 'Hi' }], { ...greedy, maxTokens: 10_000 }));
    expect(fits.stopReason).toBe('context');
    expect(fits.stats.tokensPrefilled + fits.stats.tokensGenerated).toBeLessThan(256);
    expect(fits.stats.tokensGenerated).toBeGreaterThan(200);
    const metrics = await engine.must('metrics', {});
    expect(metrics.kvCellsUsed).toBeLessThan(256);
    expect(metrics.kvCellsCapacity).toBe(256);
  });

  it('aborts a running generation when another model is loaded', async () => {
    const input = request(firstTurn, { ...greedy, maxTokens: 100_000 });
    const started = engine.firstToken(input.requestId);
    const pending = engine.call('generate', input);
    await started;
    await engine.must('loadModel', { path: modelPath, contextSize: 0, threads: 1 });
    const result = await pending;
    expect(result.ok && result.value.stopReason).toBe('aborted');
  });

  it('reports an unsupported architecture and keeps working', async () => {
    const result = await engine.call('loadModel', { path: await testModelPath('unsupportedArch'), contextSize: 0, threads: 1 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('MODEL_UNSUPPORTED');
    expect(result.error.message).toMatch(/"hearthnotreal"/);
    // Nothing is loaded after a failed load.
    const none = await engine.call('generate', request(firstTurn));
    expect(!none.ok && none.error.code).toBe('MODEL_NOT_LOADED');
    await engine.must('loadModel', { path: modelPath, contextSize: 0, threads: 1 });
    expect((await engine.must('generate', request(firstTurn))).text.length).toBeGreaterThan(0);
  });

  it('explains files llama.cpp cannot load, even without the host check', async () => {
    const truncated = await engine.call('loadModel', { path: await brokenModelPath('truncated'), contextSize: 0, threads: 1 });
    expect(!truncated.ok && truncated.error).toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringMatching(/tensor 'blk\.\d\.\w+\.weight' data is not within the file bounds/),
      hint: expect.stringMatching(/download it again/),
    });
    const notGguf = await engine.call('loadModel', { path: await brokenModelPath('notGguf'), contextSize: 0, threads: 1 });
    expect(!notGguf.ok && notGguf.error.code).toBe('MODEL_INVALID');
    const directory = await engine.call('loadModel', { path: await brokenModelPath('directory'), contextSize: 0, threads: 1 });
    expect(!directory.ok && directory.error.code).toBe('MODEL_INVALID');
    const missing = await engine.call('loadModel', { path: join(repoRoot, '.cache', 'no-such-model.gguf'), contextSize: 0, threads: 1 });
    expect(!missing.ok && missing.error.code).toBe('NOT_FOUND');
  });

  it('refuses absurd context sizes before llama.cpp sees them', async () => {
    const result = await engine.call('loadModel', { path: modelPath, contextSize: 1_000_000_000, threads: 1 });
    expect(!result.ok && result.error.code).toBe('INVALID_INPUT');
    await engine.must('loadModel', { path: modelPath, contextSize: 0, threads: 1 });
  });

  it('answers a JavaScript error with INTERNAL and keeps running', async () => {
    const broken = await engine.callRaw('generate', null);
    expect(!broken.ok && broken.error.code).toBe('INTERNAL');
    const unknown = await engine.callRaw('noSuchMethod', {});
    expect(!unknown.ok && unknown.error.code).toBe('INVALID_INPUT');
    expect((await engine.must('metrics', {})).kvCellsCapacity).toBe(8192);
  });

  it('unloads the model', async () => {
    await engine.must('unloadModel', {});
    expect(await engine.must('metrics', {})).toEqual({ kvCellsUsed: 0, kvCellsCapacity: 0, slots: [] });
    const result = await engine.call('generate', request(firstTurn));
    expect(!result.ok && result.error.code).toBe('MODEL_NOT_LOADED');
  });
});

describe('engine processes', () => {
  it('give the same greedy reply in two fresh processes', async () => {
    const path = await testModelPath();
    const replies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const engine = await startEngine();
      try {
        await engine.must('loadModel', { path, contextSize: 2048, threads: 1 });
        replies.push((await engine.must('generate', request(firstTurn, { ...greedy, maxTokens: 60 }))).text);
      } finally {
        await engine.dispose();
      }
    }
    expect(replies[0]).toBe(replies[1]);
    expect(replies[0]!.length).toBeGreaterThan(20);
  });

  it('report a context that does not fit in memory as OUT_OF_MEMORY', async () => {
    // A 64 MiB RAM cap makes a 200k-token context (~200 MiB of KV) too large on any machine.
    const engine = await startEngine({ env: { ...process.env, [RAM_CAP_ENV]: String(64 * 1024 * 1024) } });
    try {
      const path = await testModelPath();
      const result = await engine.call('loadModel', { path, contextSize: 200_000, threads: 1 });
      expect(!result.ok && result.error).toMatchObject({ code: 'OUT_OF_MEMORY', message: expect.stringMatching(/200000/), hint: expect.stringMatching(/context size/) });
      expect((await engine.must('loadModel', { path, contextSize: 4096, threads: 1 })).contextSize).toBe(4096);
    } finally {
      await engine.dispose();
    }
  });

  it('report a SIGKILL mid-generation through onExit, failing the pending call', async () => {
    const engine = await startEngine();
    await engine.must('loadModel', { path: await testModelPath(), contextSize: 0, threads: 1 });
    const input = request(firstTurn, { ...greedy, maxTokens: 100_000 });
    const started = engine.firstToken(input.requestId);
    const pending = engine.call('generate', input);
    await started;
    engine.port.kill('SIGKILL');
    expect(await engine.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const result = await pending;
    expect(!result.ok && result.error.code).toBe('ENGINE_CRASHED');
    // Late listeners still hear about the exit.
    const late = await new Promise<string | null>((resolve) => engine.port.onExit((_code, signal) => resolve(signal)));
    expect(late).toBe('SIGKILL');
  });

  it('exit when their parent goes away', async () => {
    // A parent that forks an engine, prints its pid and dies without cleaning up.
    const script = `
      import { forkEngine } from './engine/spawn.ts';
      const port = forkEngine({ stdio: 'ignore' });
      port.onMessage((m) => { if (m.kind === 'ready') { console.log(port.pid); process.exit(0); } });
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await new Promise((resolve) => parent.on('exit', resolve));
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 10_000;
    while (alive() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(alive()).toBe(false);
  });
});
