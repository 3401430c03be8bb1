/**
 * The Cache view for a remote engine: what its `/metrics` says of its KV cache, read by the host
 * about once a second while this view holds the lease (`cache.watch` with the engine's id). A
 * figure the server does not report reads "not reported", never 0.
 */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { remoteEngineKindNames, type HearthError, type RemoteCacheSample, type RemoteEngine } from '../contract.ts';
import { clockText } from '../lib/cache.ts';
import { watchWhileVisible } from '../lib/cache-watch.ts';
import { engineStatusText, figureText, notReported, offloadHeldText, recentHitText, shareText } from '../lib/engines.ts';
import { formatCount, formatPercent } from '../lib/format.ts';
import { routeHash } from '../lib/route.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectEngineById, selectEngines, selectRemoteSample } from '../state/selectors.ts';
import { RemoteCacheChart } from './CacheCharts.tsx';
import { ErrorBox, Section } from './ui.tsx';

const muted = 'text-sm text-stone-500 dark:text-stone-400';

export function RemoteCache({ engineId }: { engineId: string }) {
  const actions = useActions();
  const engines = useHearth(selectEngines);
  const engine = useHearth(selectEngineById(engineId));
  const sample = useHearth(selectRemoteSample(engineId));
  const ring = useHearth((s) => s.remoteRing)(engineId);
  const [watchError, setWatchError] = useState<HearthError | null>(null);
  const exists = engine !== undefined;

  const watch = useCallback(async () => {
    const result = await actions.watchCache(engineId);
    setWatchError(result.ok ? null : result.error);
    return result;
  }, [actions, engineId]);

  // A removed engine has nothing to read; the list may still be on its way at start.
  useEffect(() => (exists ? watchWhileVisible(watch) : undefined), [exists, watch]);

  if (!engine) {
    return engines === null ? (
      <p className={muted}>Loading the engines…</p>
    ) : (
      <p className="text-sm">
        This engine was removed.{' '}
        <a href={routeHash({ name: 'cache' })} className="underline">
          Show this computer’s cache
        </a>
      </p>
    );
  }
  return <RemoteCacheBody engine={engine} sample={sample} watchError={watchError} chart={<RemoteCacheChart ring={ring} />} />;
}

export interface RemoteCacheBodyProps {
  readonly engine: RemoteEngine;
  /** The latest reading; undefined before the first. */
  readonly sample: RemoteCacheSample | undefined;
  /** The last `cache.watch` failed: no readings will come until it answers. */
  readonly watchError: HearthError | null;
  readonly chart?: ReactNode;
}

export function RemoteCacheBody(props: RemoteCacheBodyProps) {
  const { engine, sample } = props;
  return (
    <>
      <Section id="remote-engine" title={engine.name}>
        <p className="text-sm text-stone-600 dark:text-stone-300">
          {remoteEngineKindNames[engine.kind]} · <code>{engine.baseUrl}</code> · {engineStatusText(engine.status)}
        </p>
        {engine.status.state === 'online' && !engine.status.metrics && (
          <p className="text-sm text-amber-800 dark:text-amber-300">Its /metrics did not answer at the last check, so these figures may stay empty.</p>
        )}
      </Section>
      <Section id="remote-kv" title="KV cache">
        {props.watchError && <ErrorBox error={props.watchError} title="Hearth cannot read this engine’s metrics right now." />}
        {sample?.error && <ErrorBox error={sample.error} alert title="The engine’s /metrics could not be read." />}
        {!sample ? (
          props.watchError ? null : <p className={muted}>Waiting for the first reading…</p>
        ) : (
          <>
            <KvUsage sample={sample} />
            <dl className="grid grid-cols-2 gap-x-6 gap-y-1 text-sm sm:grid-cols-3">
              <Figure label="Tokens in the KV cache" testId="remote-kv-tokens" value={figureText(sample.kvTokens)} />
              <Figure label="Prefix-cache hit rate (since start)" testId="remote-hit-rate" value={shareText(sample.prefixHitRate)} />
              <Figure label="Prefix-cache hit rate (recent)" testId="remote-hit-rate-recent" value={recentHitText(sample)} />
              <Figure label="Requests running" testId="remote-running" value={figureText(sample.requestsRunning)} />
              <Figure label="Requests waiting" testId="remote-waiting" value={figureText(sample.requestsWaiting)} />
            </dl>
            <p className="text-xs text-stone-500 dark:text-stone-400">
              Read at <time dateTime={new Date(sample.at).toISOString()}>{clockText(sample.at)}</time>
            </p>
          </>
        )}
        {props.chart}
      </Section>
      {sample?.offload && (
        <Section id="remote-offload" title={`Offload tier: ${sample.offload.name}`}>
          <dl className="grid grid-cols-2 gap-x-6 gap-y-1 text-sm sm:grid-cols-3">
            <Figure label="Hit rate (since start)" testId="remote-offload-hit-rate" value={shareText(sample.offload.hitRate)} />
            <Figure label="Held" testId="remote-offload-held" value={offloadHeldText(sample.offload)} />
            <Figure label="Tokens from hits" testId="remote-offload-hit-tokens" value={figureText(sample.offload.hitTokens)} />
          </dl>
        </Section>
      )}
    </>
  );
}

/** The gauge: a meter when the server reports its KV usage, the words "not reported" when not. */
export function KvUsage({ sample }: { sample: RemoteCacheSample }) {
  if (sample.kvUsage === null) {
    return (
      <p data-testid="remote-kv-usage" className="text-sm">
        KV usage: {notReported}
      </p>
    );
  }
  const share = Math.min(1, Math.max(0, sample.kvUsage));
  const percent = formatPercent(share);
  const text = sample.kvTokens === null ? `${percent} in use` : `${percent} in use (${formatCount(sample.kvTokens)} tokens)`;
  return (
    <div
      role="meter"
      aria-label="KV usage"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.floor(share * 100)}
      aria-valuetext={text}
      data-testid="remote-kv-usage"
      className="flex items-center gap-3"
    >
      <progress aria-hidden="true" className="progress h-2 w-full max-w-md" max={1} value={share} />
      <span className="text-sm whitespace-nowrap tabular-nums">{text}</span>
    </div>
  );
}

function Figure({ label, value, testId }: { label: string; value: string; testId: string }) {
  return (
    <div>
      <dt className="text-stone-500 dark:text-stone-400">{label}</dt>
      <dd data-testid={testId} className={`tabular-nums ${value === notReported ? 'text-stone-500 italic dark:text-stone-400' : ''}`}>
        {value}
      </dd>
    </div>
  );
}
