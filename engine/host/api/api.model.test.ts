/**
 * The API server against a real engine process and the generated tiny model (threads: 1), with
 * the official `openai` client: an agent that re-sends its growing history resumes from the disk
 * store after a host restart, and six clients streaming at once over two slots each get exactly
 * what they get alone.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { createHearth, type Hearth } from '../../index.ts';
import { forkEngine } from '../../spawn.ts';
import { tempDir } from '../../../test/support/host-fixture.ts';
import { testModelPath } from '../../../test/support/models.ts';
import { seededText } from '../../../test/support/text.ts';

const key = 'model-test-key-0123456789';
const running: Hearth[] = [];

afterEach(async () => {
  for (const hearth of running.splice(0)) await hearth.dispose();
});

async function start(dataDir: string, settings: { kvPersistence?: boolean; kvSlots?: number } = {}): Promise<{ hearth: Hearth; client: OpenAI; model: string }> {
  const modelPath = await testModelPath();
  const hearth = await createHearth({ dataDir, host: 'browser', version: 'test', threads: 1, measureSpeed: false, modelPath, logLevel: 'warn', spawnEngine: () => forkEngine({ stdio: 'ignore' }), api: { port: 0, key } });
  running.push(hearth);
  if (Object.keys(settings).length > 0) {
    const updated = await hearth.api['settings.update'](settings);
    if (!updated.ok) throw new Error(updated.error.message);
    // A changed slot count reloads the model; KV settings restart the engine: wait until it is back.
    for (let i = 0; i < 600; i++) {
      const state = await hearth.api['app.state']({});
      if (state.ok && state.value.model.status === 'ready' && state.value.engine.state === 'running' && state.value.settings.kvSlots === (settings.kvSlots ?? state.value.settings.kvSlots)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const state = await hearth.api['server.state']({});
  if (!state.ok || state.value.url === null) throw new Error('the API server is not listening');
  const models = await new OpenAI({ baseURL: state.value.url, apiKey: key }).models.list();
  return { hearth, client: new OpenAI({ baseURL: state.value.url, apiKey: key, maxRetries: 0 }), model: models.data[0]!.id };
}

async function stop(hearth: Hearth): Promise<void> {
  running.splice(running.indexOf(hearth), 1);
  await hearth.dispose();
}

type Usage = { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };

describe('an agent re-sending its history', () => {
  it('resumes from the disk store after a host restart: the 7th request is ≥ 90% cached', async () => {
    const dataDir = tempDir('hearth-api-agent-');
    let { hearth, client, model } = await start(dataDir);
    // Like a coding agent: a long system prompt (its tools' documentation), then short turns.
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'system', content: `You are a coding agent. ${seededText(7, 750)}` }];
    const rows: { prompt: number; cached: number; restored: number }[] = [];
    for (let i = 1; i <= 12; i++) {
      messages.push({ role: 'user', content: seededText(100 + i, 90) });
      const reply = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
      const usage = reply.usage as Usage;
      const hearthUsage = (reply as unknown as { hearth: { restored: number } }).hearth;
      rows.push({ prompt: usage.prompt_tokens, cached: usage.prompt_tokens_details?.cached_tokens ?? -1, restored: hearthUsage.restored });
      messages.push({ role: 'assistant', content: reply.choices[0]!.message.content ?? '' });
      if (i === 6) {
        await stop(hearth);
        ({ hearth, client, model } = await start(dataDir));
      }
    }
    const last = rows[11]!;
    expect(last.prompt).toBeGreaterThan(3500);
    // Before the restart the slot holds the history; after it, the store does: every request
    // reuses at least the whole of the request before it.
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.cached, `request ${i + 1}: ${JSON.stringify(rows)}`).toBeGreaterThanOrEqual(rows[i - 1]!.prompt);
    const seventh = rows[6]!;
    expect(seventh.cached / seventh.prompt).toBeGreaterThanOrEqual(0.9);
    // From disk: the restarted host's slot was empty.
    expect(seventh.restored).toBe(seventh.cached);
    expect(rows[5]!.restored).toBe(0);
  });
});

describe('six clients over two slots', () => {
  it("stream at once, and each output equals its own run alone", async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => [
      { role: 'system' as const, content: `Client ${i}: ${seededText(200 + i, 40)}` },
      { role: 'user' as const, content: seededText(300 + i, 80) },
    ]);
    // Alone first, one at a time, on a host of their own (persistence off: nothing carries over).
    const alone = await start(tempDir('hearth-api-alone-'), { kvPersistence: false, kvSlots: 2 });
    const expected: string[] = [];
    for (const messages of prompts) {
      const reply = await alone.client.chat.completions.create({ model: alone.model, messages, max_tokens: 12, temperature: 0 });
      expected.push(reply.choices[0]!.message.content ?? '');
    }
    await stop(alone.hearth);
    expect(new Set(expected).size, 'the six prompts should not all give the same reply').toBeGreaterThan(1);

    const shared = await start(tempDir('hearth-api-six-'), { kvPersistence: false, kvSlots: 2 });
    const outputs = await Promise.all(
      prompts.map(async (messages) => {
        const stream = await shared.client.chat.completions.create({ model: shared.model, messages, max_tokens: 12, temperature: 0, stream: true });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
        return text;
      }),
    );
    expect(outputs).toEqual(expected);
  });
});
