import { describe, expect, it } from 'vitest';
import { err, ok } from '../contract/index.ts';
import type { WorkerToHost } from '../protocol.ts';
import { createServer, type WorkerHandlers } from './serve.ts';

function setup(overrides: Partial<WorkerHandlers>) {
  const sent: WorkerToHost[] = [];
  const notHere = async () => err('INTERNAL', 'not in this test');
  const methods = ['init', 'loadModel', 'unloadModel', 'generate', 'abort', 'metrics', 'forgetChat'] as const;
  const handlers = { ...Object.fromEntries(methods.map((m) => [m, notHere])), ...overrides } as unknown as WorkerHandlers;
  const serve = createServer({ send: (m) => sent.push(m), handlers });
  return { sent, serve };
}

describe('the engine server', () => {
  it('answers each call exactly once with its result', async () => {
    const { sent, serve } = setup({ metrics: async () => ok({ kvCellsUsed: 1, kvCellsCapacity: 2, slots: [] }) });
    await serve({ kind: 'call', id: 7, method: 'metrics', input: {} });
    expect(sent).toEqual([{ kind: 'result', id: 7, result: { ok: true, value: { kvCellsUsed: 1, kvCellsCapacity: 2, slots: [] } } }]);
  });

  it('turns a throwing or rejecting handler into INTERNAL', async () => {
    const { sent, serve } = setup({
      metrics: () => { throw new TypeError('boom'); },
      unloadModel: async () => { throw new Error('bang'); },
    });
    await serve({ kind: 'call', id: 1, method: 'metrics', input: {} });
    await serve({ kind: 'call', id: 2, method: 'unloadModel', input: {} });
    expect(sent).toMatchObject([
      { kind: 'result', id: 1, result: { ok: false, error: { code: 'INTERNAL', message: expect.stringMatching(/boom/) } } },
      { kind: 'result', id: 2, result: { ok: false, error: { code: 'INTERNAL', message: expect.stringMatching(/bang/) } } },
    ]);
  });

  it('rejects unknown methods, including inherited property names', async () => {
    const { sent, serve } = setup({});
    await serve({ kind: 'call', id: 3, method: 'toString', input: {} });
    await serve({ kind: 'call', id: 4, method: 'nope', input: {} });
    expect(sent.map((m) => m.kind === 'result' && !m.result.ok && m.result.error.code)).toEqual(['INVALID_INPUT', 'INVALID_INPUT']);
  });

  it('logs messages it cannot answer instead of throwing', async () => {
    const { sent, serve } = setup({});
    await serve(null);
    await serve({ kind: 'what' });
    await serve({ kind: 'call', id: 'x', method: 'metrics' });
    expect(sent.every((m) => m.kind === 'event' && m.event.type === 'log' && m.event.level === 'error')).toBe(true);
    expect(sent).toHaveLength(3);
  });

  it('still answers when the result cannot be serialized', async () => {
    const sent: WorkerToHost[] = [];
    let first = true;
    const serve = createServer({
      send: (m) => {
        if (first) { first = false; throw new Error('cyclic'); }
        sent.push(m);
      },
      handlers: { metrics: async () => ok({ kvCellsUsed: 0, kvCellsCapacity: 0 }) } as unknown as WorkerHandlers,
    });
    await serve({ kind: 'call', id: 9, method: 'metrics', input: {} });
    expect(sent).toMatchObject([{ kind: 'result', id: 9, result: { ok: false, error: { code: 'INTERNAL' } } }]);
  });
});
