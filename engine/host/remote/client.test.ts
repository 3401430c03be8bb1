import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startOpenAiEmulator, type OpenAiEmulator } from '../../../test/support/openai-emulator.ts';
import { normalizeBaseUrl, RemoteClient, type ChatRequest, type RemoteTarget } from './client.ts';

const request: ChatRequest = { model: 'test-model', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.5, topP: 0.9, maxTokens: 32 };

function targetOf(emulator: { baseUrl: string }, apiKey: string | null = null): RemoteTarget {
  return { name: 'Box', baseUrl: emulator.baseUrl, apiKey };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('normalizeBaseUrl', () => {
  it('drops trailing slashes and /v1, keeps a path prefix', () => {
    expect(normalizeBaseUrl('http://box:8000/')).toBe('http://box:8000');
    expect(normalizeBaseUrl('http://box:8000/v1/')).toBe('http://box:8000');
    expect(normalizeBaseUrl('https://gw.example.com/llm/v1')).toBe('https://gw.example.com/llm');
  });
});

describe('RemoteClient', () => {
  let emulator: OpenAiEmulator;
  const client = new RemoteClient({ timeoutMs: 2000 });

  beforeEach(async () => {
    emulator = await startOpenAiEmulator();
  });
  afterEach(async () => {
    await emulator.close();
  });

  it('lists models with their context length', async () => {
    emulator.models = [{ id: 'a', max_model_len: 8192 }, { id: 'b/c:q4' }];
    const models = await client.models(targetOf(emulator));
    expect(models).toEqual({ ok: true, value: [{ id: 'a', contextLength: 8192 }, { id: 'b/c:q4' }] });
  });

  it('streams a reply with usage and cached tokens, sending the sampling and the key', async () => {
    emulator.apiKey = 'sk-test';
    emulator.chat = { kind: 'stream', pieces: ['Hel', 'lo'], usage: { prompt_tokens: 100, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 64 } } };
    const deltas: string[] = [];
    const outcome = await client.chat(targetOf(emulator, 'sk-test'), request, new AbortController().signal, (d) => deltas.push(d));
    expect(deltas).toEqual(['Hel', 'lo']);
    expect(outcome).toMatchObject({ text: 'Hello', finishReason: 'stop', aborted: false, usage: { promptTokens: 100, completionTokens: 2, cachedTokens: 64 } });
    expect(outcome.error).toBeUndefined();
    expect(outcome.ttftMs).toBeGreaterThanOrEqual(0);
    const sent = emulator.requests.find((r) => r.path === '/v1/chat/completions')!;
    expect(sent.headers.authorization).toBe('Bearer sk-test');
    expect(sent.body).toMatchObject({ model: 'test-model', stream: true, stream_options: { include_usage: true }, temperature: 0.5, top_p: 0.9, max_tokens: 32 });
  });

  it('reads llama-server timings when usage has no cached count', async () => {
    emulator.chat = {
      kind: 'raw',
      text: `data: ${JSON.stringify({ choices: [{ delta: { content: 'x' }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 1 }, timings: { cache_n: 7, prompt_ms: 12.5 } })}\n\ndata: [DONE]\n\n`,
    };
    const outcome = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(outcome.usage).toEqual({ promptTokens: 10, completionTokens: 1, cachedTokens: 7 });
    expect(outcome.promptMs).toBe(12.5);
  });

  it('says a stream cut midway was cut, and keeps its text', async () => {
    emulator.chat = { kind: 'cut', pieces: ['Part', 'ial'] };
    const outcome = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(outcome.text).toBe('Partial');
    expect(outcome.error?.code).toBe('NETWORK_ERROR');
    expect(outcome.error?.message).toMatch(/cut before the reply finished/);
  });

  it('stops on abort and closes the connection, so the server stops', async () => {
    emulator.chat = { kind: 'hang', pieces: ['Once'] };
    const controller = new AbortController();
    const outcome = client.chat(targetOf(emulator), request, controller.signal, () => controller.abort());
    const ended = await outcome;
    expect(ended).toMatchObject({ aborted: true, text: 'Once' });
    await expect.poll(() => emulator.clientClosed).toBe(1);
  });

  it('gives up on a server that goes silent', async () => {
    emulator.chat = { kind: 'hang', pieces: ['Wait'] };
    const quick = new RemoteClient({ idleMs: 300 });
    const outcome = await quick.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(outcome.error?.message).toMatch(/nothing arrived for 0 s|cut before/);
    expect(outcome.text).toBe('Wait');
  });

  it('turns an error event mid-stream into the error, with the text so far', async () => {
    emulator.chat = { kind: 'raw', text: `${`data: ${JSON.stringify({ choices: [{ delta: { content: 'ab' } }] })}\n\n`}data: ${JSON.stringify({ error: { message: 'engine died', code: 500 } })}\n\n` };
    const outcome = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(outcome.text).toBe('ab');
    expect(outcome.error?.message).toMatch(/engine died/);
  });

  it('refuses a malformed event instead of guessing', async () => {
    emulator.chat = { kind: 'raw', text: 'data: {not json\n\n' };
    const outcome = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(outcome.error?.message).toMatch(/could not read/);
  });

  it('maps a wrong key, a removed model, a long prompt and a loading server', async () => {
    emulator.apiKey = 'right';
    const wrongKey = await client.chat(targetOf(emulator, 'wrong'), request, new AbortController().signal, () => undefined);
    expect(wrongKey.error).toMatchObject({ code: 'AUTH_REQUIRED', message: 'Box refused the API key (HTTP 401).' });
    const noKey = await client.models(targetOf(emulator));
    expect(noKey.ok ? null : noKey.error.message).toBe('Box needs an API key (HTTP 401).');
    emulator.apiKey = null;

    emulator.chat = { kind: 'status', status: 404, body: JSON.stringify({ error: { message: 'The model `test-model` does not exist.', type: 'NotFoundError', code: 404 } }) };
    const gone = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(gone.error).toMatchObject({ code: 'NOT_FOUND' });
    expect(gone.error?.message).toMatch(/does not serve the model test-model/);

    emulator.chat = { kind: 'status', status: 400, body: JSON.stringify({ error: { message: "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.", code: 400 } }) };
    const long = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(long.error?.code).toBe('CONTEXT_OVERFLOW');

    emulator.chat = { kind: 'status', status: 503, body: '<html>loading</html>', contentType: 'text/html' };
    const loading = await client.chat(targetOf(emulator), request, new AbortController().signal, () => undefined);
    expect(loading.error).toMatchObject({ code: 'ENGINE_UNAVAILABLE', message: 'Box is not ready (HTTP 503).' });
  });

  it('says when nothing listens, and when /metrics is missing', async () => {
    const port = await closedPort();
    const refused = await client.models({ name: 'Box', baseUrl: `http://127.0.0.1:${port}`, apiKey: null });
    expect(refused.ok ? null : refused.error.message).toBe(`Could not reach Box at http://127.0.0.1:${port}: the connection was refused.`);
    const metrics = await client.metrics(targetOf(emulator));
    expect(metrics.ok).toBe(false);
    emulator.metricsText = '# TYPE x gauge\nx 1\n';
    expect(await client.metrics(targetOf(emulator))).toEqual({ ok: true, value: '# TYPE x gauge\nx 1\n' });
  });

  it('does not follow a redirect (the key would go wherever it points)', async () => {
    const elsewhere = await startOpenAiEmulator();
    try {
      emulator.chat = { kind: 'status', status: 307, body: '', headers: { location: `${elsewhere.baseUrl}/v1/chat/completions` } };
      const outcome = await client.chat(targetOf(emulator, 'sk-test'), request, new AbortController().signal, () => undefined);
      expect(outcome.error?.code).toBe('NETWORK_ERROR');
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await elsewhere.close();
    }
  });

  it('refuses a model list that is not one', async () => {
    emulator.models = [{ id: '' }];
    const models = await client.models(targetOf(emulator));
    expect(models.ok ? null : models.error.message).toMatch(/could not read/);
  });
});

describe('RemoteClient over TLS', () => {
  let dir: string;
  let emulator: OpenAiEmulator;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hearth-tls-'));
    // A certificate made here, signed by nobody this computer trusts.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    emulator = await startOpenAiEmulator({ tls: { key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8') } });
  });
  afterAll(async () => {
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('names a self-signed certificate', async () => {
    const models = await new RemoteClient().models(targetOf(emulator));
    expect(models.ok).toBe(false);
    if (models.ok) return;
    expect(models.error.message).toBe('The secure connection to Box failed: its certificate is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT).');
  });

  it('names plain http spoken to a TLS client', async () => {
    const plain = await startOpenAiEmulator();
    try {
      const models = await new RemoteClient().models({ name: 'Box', baseUrl: plain.baseUrl.replace('http:', 'https:'), apiKey: null });
      expect(models.ok ? null : models.error.message).toMatch(/The secure connection to Box failed: .*is it http:\/\//);
    } finally {
      await plain.close();
    }
  });
});
