import { describe, expect, it } from 'vitest';
// The host's own schemas: the dialog's checks must refuse exactly what the contract refuses.
import { callInputs, remoteBaseUrlSchema } from '../../../engine/contract/api.ts';
import { remoteEngine, remoteSample } from '../../../test/support/renderer/fixtures.ts';
import { statsRows } from './cache.ts';
import {
  apiKeyProblem,
  baseUrlProblem,
  chatPlace,
  engineNameProblem,
  engineStatusText,
  moveQuestion,
  pickerGroups,
  pickOutcome,
  recentHitText,
  remoteSeries,
  shareText,
  figureText,
  offloadHeldText,
} from './engines.ts';
import { formatStats, movedText, serverCacheText } from './format.ts';
import { createRing } from './ring.ts';
import { messageStats } from '../../../test/support/renderer/fixtures.ts';

const gpu = remoteEngine('e1');
const broken = remoteEngine('e2', {
  name: 'Lab',
  kind: 'sglang',
  status: { state: 'error', checkedAt: 3, models: [{ id: 'old-model' }], metrics: false, error: { code: 'NETWORK_ERROR', message: 'Cannot reach lab:30000.', hint: 'Is the server running?' } },
});
const fresh = remoteEngine('e3', { name: 'New', status: { state: 'unknown', checkedAt: null, models: [], metrics: false } });

describe('where a chat runs', () => {
  it('this computer, with the loaded model or none', () => {
    expect(chatPlace(null, [gpu], { name: 'Qwen2.5 0.5B' })).toEqual({ kind: 'local', text: 'This computer · Qwen2.5 0.5B' });
    expect(chatPlace(null, null, null)).toEqual({ kind: 'local', text: 'This computer · no model loaded' });
  });

  it('a remote engine and model; in error when its last check failed; removed when it is gone', () => {
    expect(chatPlace({ engineId: 'e1', model: 'llama-3-70b' }, [gpu], null)).toMatchObject({ kind: 'remote', text: 'GPU box · llama-3-70b' });
    expect(chatPlace({ engineId: 'e2', model: 'old-model' }, [gpu, broken], null)).toMatchObject({ kind: 'error', text: 'Lab · old-model', error: { message: 'Cannot reach lab:30000.' } });
    expect(chatPlace({ engineId: 'gone', model: 'x' }, [gpu], null)).toEqual({ kind: 'removed', text: 'Engine removed — move this chat' });
    // Before the list has answered, nothing is taken for removed.
    expect(chatPlace({ engineId: 'gone', model: 'x' }, null, null).kind).toBe('pending');
  });
});

describe('the engine picker', () => {
  it('lists this computer first, then each engine with its models; an engine in error is disabled and says why', () => {
    const groups = pickerGroups([gpu, broken, fresh], { name: 'tiny' });
    expect(groups.map((g) => g.title)).toEqual(['This computer', 'GPU box', 'Lab', 'New']);
    expect(groups[0]?.options).toEqual([{ key: 'local', target: null, label: 'This computer · tiny', disabled: false }]);
    expect(groups[1]).toMatchObject({ kind: 'vLLM' });
    expect(groups[1]?.options.map((o) => [o.label, o.detail, o.disabled])).toEqual([
      ['GPU box · llama-3-70b', '32,768 tokens of context', false],
      ['GPU box · qwen-7b', undefined, false],
    ]);
    expect(groups[1]?.options[0]?.target).toEqual({ engineId: 'e1', model: 'llama-3-70b' });
    expect(groups[2]).toMatchObject({ kind: 'SGLang', error: { message: 'Cannot reach lab:30000.', hint: 'Is the server running?' } });
    expect(groups[2]?.options.map((o) => o.disabled)).toEqual([true]);
    expect(groups[3]?.empty).toBe('Not checked yet: check it in Settings → Engines.');
  });

  it('picking: the current place stays, an empty chat moves at once, a chat with messages asks', () => {
    const here = { engineId: 'e1', model: 'qwen-7b' };
    expect(pickOutcome({ ...here }, here, false, 4)).toBe('stay');
    expect(pickOutcome(null, null, false, 4)).toBe('stay');
    expect(pickOutcome(null, here, false, 0)).toBe('move');
    expect(pickOutcome({ engineId: 'e1', model: 'llama-3-70b' }, here, false, 4)).toBe('ask');
    // Its engine was removed: even the same id is a move (the host has nothing by that id).
    expect(pickOutcome(here, here, true, 0)).toBe('move');
    expect(moveQuestion('GPU box · llama-3-70b', 4)).toBe('Move this chat to GPU box · llama-3-70b? Its history (4 messages) will be read again there.');
    expect(moveQuestion('This computer · tiny', 1)).toBe('Move this chat to This computer · tiny? Its history (1 message) will be read again there.');
  });

  it("an engine's status in words", () => {
    expect(engineStatusText(gpu.status)).toBe('Online · 2 models');
    expect(engineStatusText({ ...gpu.status, models: [] })).toBe('Online · no models');
    expect(engineStatusText(broken.status)).toBe('Cannot reach lab:30000.');
    expect(engineStatusText(fresh.status)).toBe('Not checked yet');
  });
});

describe("the engine dialog's checks", () => {
  it('refuse exactly the addresses the contract refuses', () => {
    const addresses = [
      'http://gpu-box:8000',
      'https://vllm.example.com',
      '  http://10.0.0.5:30000/  ',
      'http://[::1]:8080',
      'http://gpu-box:8000/v1',
      '',
      'gpu-box:8000',
      'ftp://gpu-box',
      'http://user:pw@gpu-box:8000',
      'http://gpu-box:8000/?key=1',
      'http://gpu-box:8000/#x',
      'not a url',
      `http://a.example/${'x'.repeat(2100)}`,
    ];
    for (const address of addresses) expect(baseUrlProblem(address) === null, address).toBe(remoteBaseUrlSchema.safeParse(address).success);
    expect(baseUrlProblem('http://user:pw@gpu-box:8000')).toBe('Leave the user name and password out of the address; put a key in API key.');
    expect(baseUrlProblem('gpu-box:8000')).not.toBeNull();
  });

  it('refuse the names and keys the contract refuses (an empty key is none, not a problem)', () => {
    const add = callInputs['engines.add'];
    const input = (name: string, apiKey?: string) => ({ name, baseUrl: 'http://a:1', kind: 'vllm', ...(apiKey === undefined ? {} : { apiKey }) });
    for (const name of ['GPU box', '  x  ', '', '   ', 'n'.repeat(80), 'n'.repeat(81)]) {
      expect(engineNameProblem(name) === null, name).toBe(add.safeParse(input(name)).success);
    }
    for (const key of ['sk-abc123', ' sk-abc ', 'has space', 'ünicode', 'k'.repeat(4096), 'k'.repeat(4097)]) {
      expect(apiKeyProblem(key) === null, key).toBe(add.safeParse(input('x', key)).success);
    }
    expect(apiKeyProblem('')).toBeNull();
  });
});

describe("a remote engine's figures", () => {
  it('a null is "not reported", never 0; a real 0 is 0', () => {
    expect(shareText(null)).toBe('not reported');
    expect(shareText(0)).toBe('0%');
    expect(shareText(0.427)).toBe('42%');
    expect(figureText(null)).toBe('not reported');
    expect(figureText(0)).toBe('0');
    expect(figureText(12345)).toBe('12,345');
  });

  it('the recent hit rate tells "no lookups" from "not reported"', () => {
    expect(recentHitText({ prefixHitRate: 0.8, recentPrefixHitRate: 0.5 })).toBe('50%');
    expect(recentHitText({ prefixHitRate: 0.8, recentPrefixHitRate: null })).toBe('no lookups since the last reading');
    expect(recentHitText({ prefixHitRate: null, recentPrefixHitRate: null })).toBe('not reported');
  });

  it("the chart's columns keep nulls as gaps", () => {
    const ring = createRing<ReturnType<typeof remoteSample>>(3);
    ring.push(remoteSample('e1', { at: 1000, kvUsage: 0.1, prefixHitRate: 0.5, recentPrefixHitRate: null }));
    ring.push(remoteSample('e1', { at: 2000, kvUsage: null, prefixHitRate: null, recentPrefixHitRate: null, error: { code: 'NETWORK_ERROR', message: 'down' } }));
    ring.push(remoteSample('e1', { at: 3000, kvUsage: 0.3, prefixHitRate: 0.6, recentPrefixHitRate: 0.9 }));
    expect(remoteSeries(ring)).toEqual([
      [1, 2, 3],
      [0.1, null, 0.3],
      [0.5, null, 0.6],
      [null, null, 0.9],
    ]);
  });
});

describe("a remote reply's readout", () => {
  const remote = messageStats({
    tokensPrefilled: 64,
    tokensGenerated: 12,
    ttftMs: 120,
    engine: { id: 'e1', name: 'GPU box', model: 'llama-3-70b', kind: 'vllm' },
    server: { promptTokens: 1600, cachedTokens: 1536 },
  });

  it('names the engine and model and what the server cache did, not this computer reused/restored', () => {
    expect(formatStats(remote)).toBe('GPU box · llama-3-70b · Server cache: 1,536 of 1,600 prompt tokens · first token 120 ms · 12 generated');
    expect(serverCacheText({ promptTokens: 1600, cachedTokens: null })).toBe('Server cache: the server did not report cached tokens');
    const rows = statsRows(remote);
    expect(rows).toContainEqual(['Engine', 'GPU box (vLLM)']);
    expect(rows).toContainEqual(['Model', 'llama-3-70b']);
    expect(rows).toContainEqual(['Server cache', '1,536 tokens']);
    expect(rows).toContainEqual(['Prompt (server count)', '1,600 tokens']);
    expect(rows.map(([label]) => label)).not.toContain('Restored');
    expect(rows.map(([label]) => label)).not.toContain('Cache source');
    expect(statsRows({ ...remote, server: { promptTokens: 1600, cachedTokens: null } })).toContainEqual(['Server cache', 'not reported']);
  });

  it('a moved reply says where from and how much was read again', () => {
    const moved = { ...remote, tokensPrefilled: 1840, movedFrom: 'This computer · tiny' };
    expect(movedText(moved)).toBe('Moved from This computer · tiny: the history was read again here (1,840 tokens)');
    expect(statsRows(moved)).toContainEqual(['Moved from', 'This computer · tiny']);
    expect(movedText(remote)).toBeNull();
  });

  it('a local reply keeps its readout; its engine shows only among the expanded figures', () => {
    const local = messageStats({ tokensReused: 120, tokensPrefilled: 14, engine: { id: 'local', name: 'This computer', model: 'tiny.gguf', kind: 'local' } });
    expect(formatStats(local)).toBe('reused 120 · prefilled 14 tokens · first token 35 ms · 5 generated');
    expect(formatStats(local)).toBe(formatStats(messageStats({ tokensReused: 120, tokensPrefilled: 14 })));
    expect(statsRows(local).slice(0, 3)).toEqual([
      ['Engine', 'This computer'],
      ['Model', 'tiny.gguf'],
      ['Reused', '120 tokens'],
    ]);
  });
});

describe('an offload tier', () => {
  it('holds bytes, tokens of its capacity, both, or says nothing', () => {
    expect(offloadHeldText({ usedBytes: 2e9, usedTokens: null, capacityTokens: null })).toBe('2.00 GB');
    expect(offloadHeldText({ usedBytes: null, usedTokens: 30_000, capacityTokens: 120_000 })).toBe('30,000 of 120,000 tokens');
    expect(offloadHeldText({ usedBytes: null, usedTokens: 0, capacityTokens: null })).toBe('0 tokens');
    expect(offloadHeldText({ usedBytes: 1e6, usedTokens: 10, capacityTokens: 20 })).toBe('1.00 MB · 10 of 20 tokens');
    expect(offloadHeldText({ usedBytes: null, usedTokens: null, capacityTokens: 5 })).toBe('not reported');
  });
});
