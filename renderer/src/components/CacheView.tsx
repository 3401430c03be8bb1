/**
 * The live Cache view: device memory, slots, the disk store and its largest chats, the
 * turns timeline and the event log. Numbers come from the latest tick through selectors that
 * re-render a section only when its figures change; the charts read the ring buffer themselves.
 */
import { useEffect, useState } from 'react';
import { isApiConversation, type RemoteEngine, type CachedChat, type CacheEvent, type CacheMemory, type CacheSlot, type CacheStoreStats, type CacheTurn, type HearthError, type KvStatus } from '../contract.ts';
import {
  cellsText,
  clockText,
  compressionText,
  memoryDeviceText,
  memoryLabel,
  memoryParts,
  memoryShares,
  msText,
  ratioText,
  slotStateText,
  sourceText,
  type MemoryPartKey,
} from '../lib/cache.ts';
import { watchWhileVisible } from '../lib/cache-watch.ts';
import { localEngineName } from '../lib/engines.ts';
import { formatBinaryBytes, formatBytes, formatTime } from '../lib/format.ts';
import { pairText } from '../lib/kv.ts';
import { useActions, useHearth, useHearthShallow } from '../state/react.tsx';
import { CacheCheck } from './CacheCheck.tsx';
import { CacheMissDetails } from './CacheMiss.tsx';
import {
  selectCachedChats,
  selectCacheEvents,
  selectCacheMemory,
  selectCacheOverviewError,
  selectCacheRing,
  selectCacheSlot,
  selectCacheStore,
  selectChatList,
  selectChatTitle,
  selectEngines,
  selectHasSnapshot,
  selectHitRatioText,
  selectKv,
  selectRoute,
  selectSlotCount,
  selectTurns,
} from '../state/selectors.ts';
import { MemoryChart, TurnsChart } from './CacheCharts.tsx';
import { RemoteCache } from './RemoteCacheView.tsx';
import { buttonStyles, ErrorBox, Section } from './ui.tsx';

/** The largest chats' sizes change with every save: refetched this often while the view is open. */
const chatsRefreshMs = 5000;

export function CacheView() {
  const route = useHearth(selectRoute);
  const engineId = route.name === 'cache' ? route.engineId : undefined;
  return (
    <div className="min-h-0 flex-1 overflow-y-auto">
      <div className="mx-auto max-w-4xl space-y-8 px-4 py-6">
        <div className="flex flex-wrap items-baseline justify-between gap-2">
          <h1 className="text-xl font-semibold">Cache</h1>
          <div className="flex flex-wrap items-baseline gap-4">
            <CacheEngineSelect engineId={engineId} />
            {engineId === undefined && (
              <a href="#/settings" className="text-sm text-amber-700 underline hover:text-amber-800 dark:text-amber-400 dark:hover:text-amber-300">
                Tune cache settings
              </a>
            )}
          </div>
        </div>
        {/* Keyed: another engine's view starts its own lease and reads its own ring. */}
        {engineId === undefined ? <LocalCache /> : <RemoteCache key={engineId} engineId={engineId} />}
      </div>
    </div>
  );
}

/** Which engine's cache is shown; only offered once there is a remote engine to pick. */
function CacheEngineSelect({ engineId }: { engineId: string | undefined }) {
  const actions = useActions();
  const engines = useHearth(selectEngines);
  if ((engines === null || engines.length === 0) && engineId === undefined) return null;
  return <EngineSelectView engines={engines ?? []} engineId={engineId} onSelect={(id) => actions.navigate(id === undefined ? { name: 'cache' } : { name: 'cache', engineId: id })} />;
}

/** The Cache view's engine choice: this computer, then each remote engine. */
export function EngineSelectView(props: { engines: readonly RemoteEngine[]; engineId: string | undefined; onSelect: (engineId: string | undefined) => void }) {
  const known = props.engineId === undefined || props.engines.some((e) => e.id === props.engineId);
  return (
    <span className="inline-flex items-baseline gap-2 text-sm">
      <label htmlFor="cache-engine" className="font-medium">
        Engine
      </label>
      <select
        id="cache-engine"
        value={props.engineId ?? ''}
        onChange={(e) => props.onSelect(e.target.value === '' ? undefined : e.target.value)}
        className="rounded-md border border-stone-300 bg-white px-2 py-1 text-sm dark:border-stone-600 dark:bg-stone-900"
      >
        <option value="">{localEngineName}</option>
        {props.engines.map((engine) => (
          <option key={engine.id} value={engine.id}>
            {engine.name}
          </option>
        ))}
        {!known && <option value={props.engineId}>Removed engine</option>}
      </select>
    </span>
  );
}

/** This computer's engine: memory, slots, the disk store and the history of its turns. */
function LocalCache() {
  const actions = useActions();
  useEffect(() => {
    void actions.loadCacheOverview();
    const stop = watchWhileVisible(() => actions.watchCache());
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void actions.refreshCachedChats();
    }, chatsRefreshMs);
    return () => {
      stop();
      clearInterval(timer);
    };
  }, [actions]);

  return (
    <>
      <DeviceMemorySection />
      <SlotsSection />
      <DiskStoreSection />
      <LargestChatsSection />
      <RecentTurnsSection />
      <EventLogSection />
    </>
  );
}

export { Section };

const muted = 'text-sm text-stone-500 dark:text-stone-400';

function Waiting() {
  return <p className={muted}>Waiting for the first sample…</p>;
}

function DeviceMemorySection() {
  const hasSnapshot = useHearth(selectHasSnapshot);
  const memory = useHearthShallow(selectCacheMemory);
  const ring = useHearth(selectCacheRing);
  return (
    <Section id="cache-memory" title="Device memory">
      {!hasSnapshot ? <Waiting /> : memory ? <MemoryBar memory={memory} /> : <p className={muted}>No model is loaded.</p>}
      <MemoryChart ring={ring} />
    </Section>
  );
}

const partColors: Readonly<Record<MemoryPartKey, { fill: string; swatch: string }>> = {
  weights: { fill: 'fill-stone-500', swatch: 'bg-stone-500' },
  kvUsed: { fill: 'fill-amber-500', swatch: 'bg-amber-500' },
  kvUnused: { fill: 'fill-amber-200 dark:fill-amber-900', swatch: 'bg-amber-200 dark:bg-amber-900' },
  compute: { fill: 'fill-sky-500', swatch: 'bg-sky-500' },
  other: { fill: 'fill-stone-300 dark:fill-stone-600', swatch: 'bg-stone-300 dark:bg-stone-600' },
  free: { fill: 'fill-stone-100 dark:fill-stone-800', swatch: 'bg-stone-100 ring-1 ring-stone-300 dark:bg-stone-800 dark:ring-stone-600' },
};

/** The stacked bar (an SVG: the page's CSP forbids inline styles, and rect widths are attributes) and its legend. */
export function MemoryBar({ memory }: { memory: CacheMemory }) {
  const shares = memoryShares(memory);
  return (
    <div className="space-y-2">
      <p className="text-sm text-stone-600 dark:text-stone-300">{memoryDeviceText(memory)}</p>
      <svg role="img" aria-label={memoryLabel(memory)} viewBox="0 0 1000 20" preserveAspectRatio="none" className="h-5 w-full overflow-hidden rounded">
        {shares.map(({ key, start, share }) => (
          <rect key={key} x={start * 1000} y={0} width={share * 1000} height={20} className={partColors[key].fill} />
        ))}
      </svg>
      <ul className="flex flex-wrap gap-x-5 gap-y-1 text-sm">
        {memoryParts(memory).map((part) => (
          <li key={part.key} className="inline-flex items-center gap-1.5">
            <span aria-hidden="true" className={`inline-block size-2.5 rounded-sm ${partColors[part.key].swatch}`} />
            {part.label} <span className="tabular-nums text-stone-600 dark:text-stone-300">{formatBytes(part.bytes)}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

const th = 'px-2 py-1.5 text-left font-medium';
const td = 'px-2 py-1.5';
const table = 'w-full border-collapse text-sm [&_tbody_tr]:border-t [&_tbody_tr]:border-stone-200 dark:[&_tbody_tr]:border-stone-800';

function SlotsSection() {
  const hasSnapshot = useHearth(selectHasSnapshot);
  const count = useHearth(selectSlotCount);
  return (
    <Section id="cache-slots" title="Slots">
      {!hasSnapshot ? (
        <Waiting />
      ) : count === 0 ? (
        <p className={muted}>No model is loaded, so there are no slots.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className={table}>
            <HeadRow columns={['Slot', 'Chat', 'Cells', 'K / V', 'Bytes', 'State']} />
            <tbody>
              {Array.from({ length: count }, (_, i) => (
                <SlotRowLive key={i} index={i} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

function SlotRowLive({ index }: { index: number }) {
  const slot = useHearthShallow(selectCacheSlot(index));
  const title = useHearth(selectChatTitle(slot?.chatId ?? ''));
  return slot ? <SlotRow slot={slot} title={title} /> : null;
}

export function SlotRow({ slot, title }: { slot: CacheSlot; title: string | undefined }) {
  return (
    <tr>
      <td className={`${td} tabular-nums`}>{slot.index}</td>
      <td className={`${td} max-w-48 truncate`}>
        {slot.chatId ? <ChatLink chatId={slot.chatId} title={title} /> : <span className="text-stone-500 dark:text-stone-400">free</span>}
      </td>
      <td className={td}>
        <div
          role="meter"
          aria-label={`Slot ${slot.index} cells`}
          aria-valuemin={0}
          aria-valuemax={slot.cellsCapacity}
          aria-valuenow={slot.cellsUsed}
          aria-valuetext={`${cellsText(slot.cellsUsed, slot.cellsCapacity)} cells`}
          className="flex items-center gap-2"
        >
          <progress aria-hidden="true" className="progress h-1.5 w-20" max={Math.max(1, slot.cellsCapacity)} value={slot.cellsUsed} />
          <span className="tabular-nums">{cellsText(slot.cellsUsed, slot.cellsCapacity)}</span>
        </div>
      </td>
      <td className={`${td} font-mono text-xs`}>
        {pairText(slot.kType, slot.vType)}
      </td>
      <td className={`${td} tabular-nums`}>{formatBytes(slot.bytes)}</td>
      <td className={td}>{slotStateText[slot.state]}</td>
    </tr>
  );
}

/** A chat's title, linked to the chat; an API conversation has neither, and shows as such. */
function ChatLink({ chatId, title }: { chatId: string; title: string | undefined }) {
  if (isApiConversation(chatId)) return <ApiBadge conversation={chatId} />;
  return (
    <a href={`#/chat/${encodeURIComponent(chatId)}`} className="underline decoration-stone-300 hover:decoration-stone-600 dark:decoration-stone-600">
      {title ?? 'Untitled chat'}
    </a>
  );
}

function DiskStoreSection() {
  const hasSnapshot = useHearth(selectHasSnapshot);
  const store = useHearthShallow(selectCacheStore);
  const kv = useHearth(selectKv);
  return (
    <Section id="cache-store" title="Disk store">
      {!hasSnapshot ? <Waiting /> : <DiskStore store={store} kv={kv} />}
      <CacheCheck />
    </Section>
  );
}

/** What persistence is doing, when it is not simply on. */
export function persistenceText(kv: KvStatus | null, store: CacheStoreStats | null): string | null {
  const persistence = kv?.persistence ?? store?.persistence;
  if (persistence === 'off') return 'Saving chat memory to disk is off: chats re-read their history when reopened.';
  if (persistence === 'paused') {
    const reason = kv?.reason?.message.trim().replace(/\.+$/, '');
    return `Saving chat memory to disk is paused${reason ? `: ${reason}` : ''}. Chats keep working.`;
  }
  if (!store) return 'The disk store cannot be read right now.';
  return null;
}

export function DiskStore({ store, kv }: { store: CacheStoreStats | null; kv: KvStatus | null }) {
  const note = persistenceText(kv, store);
  return (
    <div className="space-y-2">
      {note && <p className="text-sm text-amber-800 dark:text-amber-300">{note}</p>}
      {store && (
        <>
          <div
            role="meter"
            aria-label="Disk store"
            aria-valuemin={0}
            aria-valuemax={store.budgetBytes}
            aria-valuenow={store.storedBytes}
            aria-valuetext={`${formatBinaryBytes(store.storedBytes)} of ${formatBinaryBytes(store.budgetBytes)}`}
            className="flex items-center gap-3"
          >
            <progress aria-hidden="true" className="progress h-2 w-full max-w-md" max={Math.max(1, store.budgetBytes)} value={Math.min(store.storedBytes, store.budgetBytes)} />
            <span className="text-sm whitespace-nowrap tabular-nums">
              {formatBinaryBytes(store.storedBytes)} of {formatBinaryBytes(store.budgetBytes)}
            </span>
          </div>
          <dl className="grid grid-cols-2 gap-x-6 gap-y-1 text-sm sm:grid-cols-4">
            <Figure label="On disk" value={formatBinaryBytes(store.storedBytes)} />
            <Figure label="Budget" value={formatBinaryBytes(store.budgetBytes)} />
            <Figure label="Free disk" value={store.freeDiskBytes === null ? 'unknown' : formatBinaryBytes(store.freeDiskBytes)} />
            <Figure label="Chunks" value={store.chunkCount.toLocaleString('en-US')} />
            <Figure label="Chat branches" value={store.manifests.toLocaleString('en-US')} />
            <Figure label="Chunk size" value={`${store.chunkTokens.toLocaleString('en-US')} tokens`} />
            <Figure label="Dedup ratio" value={ratioText(store.dedupRatio)} />
            <Figure label="Compression ratio" value={compressionText(store)} />
          </dl>
        </>
      )}
    </div>
  );
}

function Figure({ label, value }: { label: string; value: string }) {
  return (
    <div>
      <dt className="text-stone-500 dark:text-stone-400">{label}</dt>
      <dd className="tabular-nums">{value}</dd>
    </div>
  );
}

function LargestChatsSection() {
  const actions = useActions();
  const chats = useHearth(selectCachedChats);
  const error = useHearth(selectCacheOverviewError);
  const list = useHearth(selectChatList);
  const [status, setStatus] = useState('');
  const [forgetError, setForgetError] = useState<HearthError | null>(null);
  const titleOf = (chatId: string) => (isApiConversation(chatId) ? `API conversation ${chatId}` : (list.find((c) => c.id === chatId)?.title ?? 'Untitled chat'));
  const forget = async (chat: CachedChat) => {
    const title = titleOf(chat.chatId);
    setStatus('');
    const result = await actions.forgetCache(chat.chatId);
    if (result.ok) {
      setForgetError(null);
      setStatus(forgotText(result.value.bytesFreed, title));
    } else {
      setForgetError(result.error);
    }
  };
  return (
    <Section id="cache-chats" title="Largest chats">
      <LargestChats chats={chats} error={error} titleOf={titleOf} onForget={(chat) => void forget(chat)} />
      {forgetError && <ErrorBox error={forgetError} title="The cache could not be forgotten." />}
      <p role="status" className="text-sm">
        {status}
      </p>
    </Section>
  );
}

/** The status line after "Forget cache": "Forgot 1.2 MB of Orchard's cache." */
export function forgotText(bytesFreed: number, title: string): string {
  return `Forgot ${formatBinaryBytes(bytesFreed)} of ${title}'s cache.`;
}

export function LargestChats(props: {
  chats: readonly CachedChat[] | null;
  error: HearthError | null;
  titleOf: (chatId: string) => string;
  onForget: (chat: CachedChat) => void;
  now?: number;
}) {
  const { chats } = props;
  if (chats === null) return props.error ? <ErrorBox error={props.error} title="The cache's history could not be read." /> : <p className={muted}>Loading…</p>;
  if (chats.length === 0) return <p className={muted}>No chat has memory saved on disk.</p>;
  return (
    <div className="overflow-x-auto">
      <table className={table}>
        <HeadRow columns={['Chat', 'Tokens', 'On disk', 'Last used']} action />
        <tbody>
          {chats.map((chat) => {
            const title = props.titleOf(chat.chatId);
            return (
              <tr key={chat.chatId}>
                <td className={`${td} max-w-64 truncate`}>
                  <ChatLink chatId={chat.chatId} title={title} />
                </td>
                <td className={`${td} tabular-nums`}>{chat.tokens.toLocaleString('en-US')}</td>
                <td className={`${td} tabular-nums`}>{formatBinaryBytes(chat.bytes)}</td>
                <td className={`${td} tabular-nums`}>{formatTime(chat.lastUsed, props.now)}</td>
                <td className={`${td} text-right`}>
                  <button type="button" aria-label={`Forget cache: ${title}`} onClick={() => props.onForget(chat)} className={buttonStyles.ghost}>
                    Forget cache
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function RecentTurnsSection() {
  const turns = useHearth(selectTurns);
  const hitRatio = useHearth(selectHitRatioText);
  const list = useHearth(selectChatList);
  const titleOf = (chatId: string) => list.find((c) => c.id === chatId)?.title ?? 'Untitled chat';
  return (
    <Section id="cache-turns" title="Recent turns">
      <p className="text-sm font-medium">{hitRatio}</p>
      <TurnsChart turns={turns} />
      <TurnsTable turns={turns} titleOf={titleOf} />
    </Section>
  );
}

/** Newest first; no rows but the header's until the first turn (a test counts the rows). */
export function TurnsTable({ turns, titleOf }: { turns: readonly CacheTurn[]; titleOf: (chatId: string) => string }) {
  if (turns.length === 0) return <p className={muted}>No replies yet. Each finished reply adds a row here.</p>;
  return (
    <div className="max-h-96 overflow-auto">
      <table className={table}>
        <HeadRow sticky columns={['Time', 'Chat', 'Reused', 'Restored', 'Prefilled', 'TTFT ms', 'Restore ms', 'Source']} />
        <tbody>
          {turns
            .slice()
            .reverse()
            .map((turn) => (
              <TurnRows key={`${turn.messageId}-${turn.at}`} turn={turn} titleOf={titleOf} />
            ))}
        </tbody>
      </table>
    </div>
  );
}

/** A turn's row, and below it why its prompt missed the cache, when an API request's did. */
function TurnRows({ turn, titleOf }: { turn: CacheTurn; titleOf: (chatId: string) => string }) {
  return (
    <>
      <tr className="tabular-nums">
        <td className={td}>{clockText(turn.at)}</td>
        <td className={`${td} max-w-48 truncate`}>{turn.source === 'api' ? <ApiBadge conversation={turn.chatId} /> : titleOf(turn.chatId)}</td>
        <td className={td}>{turn.stats.tokensReused.toLocaleString('en-US')}</td>
        <td className={td}>{turn.stats.tokensRestored.toLocaleString('en-US')}</td>
        <td className={td}>{turn.stats.tokensPrefilled.toLocaleString('en-US')}</td>
        <td className={td}>{msText(turn.stats.ttftMs)}</td>
        <td className={td}>{msText(turn.stats.restoreMs)}</td>
        <td className={td} title={turn.stats.fallbackReason}>
          {sourceText[turn.stats.cacheSource]}
        </td>
      </tr>
      {turn.stats.cacheMiss && (
        <tr className="border-t-0!">
          <td colSpan={8} className={`${td} pt-0`}>
            <CacheMissDetails miss={turn.stats.cacheMiss} testId="cache-miss" />
          </td>
        </tr>
      )}
    </>
  );
}

/**
 * An API request's turn: its chatId names the API conversation, not a chat, so there is no
 * title to show and no chat to link to.
 */
function ApiBadge({ conversation }: { conversation: string }) {
  return (
    <span title={`A request to the local API server (conversation ${conversation})`}>
      <span className="rounded bg-sky-100 px-1.5 text-xs font-semibold text-sky-900 dark:bg-sky-950 dark:text-sky-200">API</span>
      <span className="ml-1.5 font-mono text-xs text-stone-500 dark:text-stone-400">{conversation}</span>
    </span>
  );
}

function EventLogSection() {
  const events = useHearth(selectCacheEvents);
  return (
    <Section id="cache-events" title="Event log">
      <EventLog events={events} />
    </Section>
  );
}

const kindStyles: Readonly<Record<CacheEvent['kind'], string>> = {
  save: 'bg-green-100 text-green-900 dark:bg-green-950 dark:text-green-200',
  restore: 'bg-sky-100 text-sky-900 dark:bg-sky-950 dark:text-sky-200',
  fallback: 'bg-amber-100 text-amber-900 dark:bg-amber-950 dark:text-amber-200',
  evict: 'bg-red-100 text-red-900 dark:bg-red-950 dark:text-red-200',
  forget: 'bg-red-100 text-red-900 dark:bg-red-950 dark:text-red-200',
  settings: 'bg-stone-200 text-stone-800 dark:bg-stone-800 dark:text-stone-200',
  restart: 'bg-stone-200 text-stone-800 dark:bg-stone-800 dark:text-stone-200',
  model: 'bg-stone-200 text-stone-800 dark:bg-stone-800 dark:text-stone-200',
};

/** Newest first: what just happened is what the reader looks for. */
export function EventLog({ events }: { events: readonly CacheEvent[] }) {
  return (
    <div role="log" aria-label="Cache events" className="max-h-80 overflow-y-auto rounded-md border border-stone-200 dark:border-stone-800">
      {events.length === 0 ? (
        <p className={`${muted} px-3 py-2`}>Nothing has happened yet.</p>
      ) : (
        <ol className="divide-y divide-stone-200 text-sm dark:divide-stone-800">
          {events
            .slice()
            .reverse()
            .map((event) => (
              <li key={`${event.id}-${event.at}`} className="flex gap-3 px-3 py-1.5">
                <time dateTime={new Date(event.at).toISOString()} className="shrink-0 tabular-nums text-stone-500 dark:text-stone-400">
                  {clockText(event.at)}
                </time>{' '}
                <span className={`shrink-0 self-start rounded px-1.5 text-xs font-semibold ${kindStyles[event.kind]}`}>{event.kind}</span>{' '}
                <span className="min-w-0 break-words">{event.text}</span>
              </li>
            ))}
        </ol>
      )}
    </div>
  );
}

/** A table's header row; `action` adds a last column for row buttons (named for screen readers only). */
function HeadRow({ columns, sticky = false, action = false }: { columns: readonly string[]; sticky?: boolean; action?: boolean }) {
  return (
    <thead className={sticky ? 'sticky top-0 bg-white text-stone-600 dark:bg-stone-950 dark:text-stone-300' : 'text-stone-600 dark:text-stone-300'}>
      <tr>
        {columns.map((column) => (
          <th key={column} className={th}>
            {column}
          </th>
        ))}
        {action && (
          <th className={th}>
            <span className="sr-only">Action</span>
          </th>
        )}
      </tr>
    </thead>
  );
}
