import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import { createActions } from '../state/actions.ts';
import { HearthProvider } from '../state/react.tsx';
import { createHearthStore } from '../state/store.ts';
import { hostElements } from '../../../test/support/renderer/element-tree.ts';
import { fakeTransport } from '../../../test/support/renderer/fake-transport.ts';
import { remoteEngine, remoteSample } from '../../../test/support/renderer/fixtures.ts';
import { CacheView, EngineSelectView } from './CacheView.tsx';
import { KvUsage, RemoteCacheBody } from './RemoteCacheView.tsx';

function text(html: string): string {
  return html.replace(/<[^>]*>/g, ' ').replace(/&#x27;/g, "'").replace(/&amp;/g, '&').replace(/\s+/g, ' ').trim();
}

/** The text of the element with `data-testid`. */
function byTestId(html: string, testId: string): string {
  const match = new RegExp(`data-testid="${testId}"[^>]*>([^<]*)<`).exec(html);
  expect(match, testId).not.toBeNull();
  return match?.[1] ?? '';
}

const gpu = remoteEngine('e1');
const lab = remoteEngine('e2', { name: 'Lab', kind: 'sglang' });

describe("the Cache view's engine choice", () => {
  it('offers this computer, then each engine, and says which is shown', () => {
    const html = renderToStaticMarkup(<EngineSelectView engines={[gpu, lab]} engineId="e2" onSelect={() => undefined} />);
    expect(html).toMatch(/<label for="cache-engine"[^>]*>Engine<\/label><select id="cache-engine"/);
    expect([...html.matchAll(/<option value="([^"]*)"( selected="")?>([^<]+)<\/option>/g)].map((m) => [m[1], m[3], Boolean(m[2])])).toEqual([
      ['', 'This computer', false],
      ['e1', 'GPU box', false],
      ['e2', 'Lab', true],
    ]);
  });

  it('picking calls back with the engine, or undefined for this computer', () => {
    const onSelect = vi.fn<(id: string | undefined) => void>();
    const select = hostElements(EngineSelectView({ engines: [gpu], engineId: undefined, onSelect })).find((e) => e.type === 'select') ?? expect.unreachable('select');
    (select.props as { onChange: (e: unknown) => void }).onChange({ target: { value: 'e1' } });
    (select.props as { onChange: (e: unknown) => void }).onChange({ target: { value: '' } });
    expect(onSelect.mock.calls).toEqual([['e1'], [undefined]]);
  });

  it('with no remote engines the local view is as before, without a choice', () => {
    const store = createHearthStore();
    const actions = createActions(fakeTransport(), store, { navigate: () => undefined });
    const html = renderToStaticMarkup(
      <HearthProvider store={store} actions={actions}>
        <CacheView />
      </HearthProvider>,
    );
    expect(html).not.toContain('cache-engine');
    expect(html).toContain('Tune cache settings');
  });
});

describe("a remote engine's cache", () => {
  it('shows KV usage as a meter with its tokens, the hit rates, the requests and when it was read', () => {
    const html = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={remoteSample('e1')} watchError={null} />);
    expect(html).toMatch(/<h2 id="remote-engine-heading"[^>]*>GPU box<\/h2>/);
    expect(text(html)).toContain('vLLM · http://gpu-box:8000 · Online · 2 models');
    expect(html).toMatch(/<h2 id="remote-kv-heading"[^>]*>KV cache<\/h2>/);
    expect(html).toMatch(/role="meter" aria-label="KV usage" aria-valuemin="0" aria-valuemax="100" aria-valuenow="42" aria-valuetext="42% in use \(12,345 tokens\)" data-testid="remote-kv-usage"/);
    // The meter says it; the figures below do not repeat it.
    expect(html).not.toContain('remote-kv-share');
    expect(byTestId(html, 'remote-kv-tokens')).toBe('12,345');
    expect(byTestId(html, 'remote-hit-rate')).toBe('80%');
    expect(byTestId(html, 'remote-hit-rate-recent')).toBe('95%');
    expect(byTestId(html, 'remote-running')).toBe('2');
    expect(byTestId(html, 'remote-waiting')).toBe('0');
    expect(html).toContain('Read at <time dateTime="2023-11-14T22:13:20.000Z">');
    expect(html).not.toContain('Offload tier');
    expect(html).not.toContain('role="alert"');
  });

  it('figures the server does not report read "not reported", never 0, and the gauge is no meter then', () => {
    const sample = remoteSample('e1', { kvUsage: null, kvTokens: null, prefixHitRate: null, recentPrefixHitRate: null, requestsRunning: null, requestsWaiting: null });
    const html = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={sample} watchError={null} />);
    expect(html).not.toContain('role="meter"');
    expect(byTestId(html, 'remote-kv-usage')).toBe('KV usage: not reported');
    for (const id of ['remote-kv-tokens', 'remote-hit-rate', 'remote-hit-rate-recent', 'remote-running', 'remote-waiting']) expect(byTestId(html, id), id).toBe('not reported');
    // A usage the server does report without its tokens.
    const bare = renderToStaticMarkup(<KvUsage sample={remoteSample('e1', { kvUsage: 0.05, kvTokens: null })} />);
    expect(bare).toContain('aria-valuetext="5% in use"');
  });

  it('an unreadable /metrics: the error with its hint, in an alert, and every figure not reported', () => {
    const error = { code: 'NETWORK_ERROR' as const, message: 'gpu-box:8000/metrics did not answer.', hint: 'Start the server with its metrics on.' };
    const sample = remoteSample('e1', { error, kvUsage: null, kvTokens: null, prefixHitRate: null, recentPrefixHitRate: null, requestsRunning: null, requestsWaiting: null });
    const html = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={sample} watchError={null} />);
    expect(html).toMatch(/role="alert"[^>]*><p class="font-semibold">The engine’s \/metrics could not be read.<\/p><p>gpu-box:8000\/metrics did not answer.<\/p><p[^>]*>Start the server with its metrics on.<\/p>/);
    expect(byTestId(html, 'remote-running')).toBe('not reported');
    expect(html).not.toMatch(/data-testid="remote-[a-z-]+"[^>]*>0%?</);
  });

  it('the offload tier when the server has one', () => {
    const sample = remoteSample('e1', { offload: { name: 'LMCache', hitRate: 0.25, usedBytes: 2e9, usedTokens: null, capacityTokens: null, hitTokens: 4096 } });
    const html = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={sample} watchError={null} />);
    expect(html).toMatch(/<h2 id="remote-offload-heading"[^>]*>Offload tier: LMCache<\/h2>/);
    expect(byTestId(html, 'remote-offload-hit-rate')).toBe('25%');
    expect(byTestId(html, 'remote-offload-held')).toBe('2.00 GB');
    expect(byTestId(html, 'remote-offload-hit-tokens')).toBe('4,096');
    const tokens = { name: 'HiCache', hitRate: null, usedBytes: null, usedTokens: 30_000, capacityTokens: 120_000, hitTokens: null };
    const hicache = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={remoteSample('e1', { offload: tokens })} watchError={null} />);
    expect(byTestId(hicache, 'remote-offload-held')).toBe('30,000 of 120,000 tokens');
    expect(byTestId(hicache, 'remote-offload-hit-rate')).toBe('not reported');
    const partial = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={remoteSample('e1', { offload: { ...tokens, usedTokens: null, capacityTokens: null } })} watchError={null} />);
    expect(byTestId(partial, 'remote-offload-held')).toBe('not reported');
  });

  it('before the first reading it waits; a refused watch says why instead', () => {
    expect(text(renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={undefined} watchError={null} />))).toContain('Waiting for the first reading…');
    const refused = renderToStaticMarkup(<RemoteCacheBody engine={gpu} sample={undefined} watchError={{ code: 'NOT_FOUND', message: 'No such engine.' }} />);
    expect(text(refused)).toContain('Hearth cannot read this engine’s metrics right now. No such engine.');
    expect(text(refused)).not.toContain('Waiting');
    const noMetrics = renderToStaticMarkup(<RemoteCacheBody engine={remoteEngine('e1', { status: { ...gpu.status, metrics: false } })} sample={undefined} watchError={null} />);
    expect(text(noMetrics)).toContain('Its /metrics did not answer at the last check');
  });
});
