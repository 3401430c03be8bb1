/**
 * The kill suite's judgements that need no processes (kill.faults.test.ts): where a kill landed,
 * whether a cut reply kept its text, and the short class of a fallback's reason for the outcome
 * name. Unit-tested in kill-checks.test.ts.
 */
import type { HearthEvent, Message } from '../../engine/contract/index.ts';

/**
 * A fallback reason reduced to a short, stable class for the ledger's outcome name (the full
 * reason goes into the record's detail). Unknown wording is "other", never dropped.
 */
export function fallbackClass(reason: string): string {
  const r = reason.toLowerCase();
  if (r.includes('still being hashed')) return 'model not hashed yet';
  if (r.includes('another hearth process')) return 'KV store in use';
  if (r.includes('paused')) return 'persistence paused';
  if (r.includes('persistence is off')) return 'persistence off';
  if (r.includes('damaged') || r.includes('corrupt')) return 'damaged chunk';
  if (r.includes('refused')) return 'llama.cpp refused the KV';
  if (r.includes('did not match')) return 'tokens did not match';
  if (r.includes('forgotten')) return 'cache forgotten';
  if (r.includes('did not hold') || r.includes('read again')) return 'store held less';
  if (r.includes('could not be')) return 'store unreadable';
  return 'other';
}

const deltasOf = (events: readonly HearthEvent[], messageId: string): string[] =>
  events.flatMap((e) => (e.type === 'message.delta' && e.payload.messageId === messageId ? [e.payload.delta] : []));

/**
 * Where a kill landed in its phase, from the events emitted before it (for an engine kill, all
 * events up to the cut reply's final state; for a host kill, what the old host's socket carried).
 */
export function landing(phase: 'save' | 'restore' | 'generation', events: readonly HearthEvent[], replyId: string, chatId: string): string {
  const deltas = deltasOf(events, replyId).length;
  const final = events.find((e) => e.type === 'message.updated' && e.payload.message.id === replyId && e.payload.message.status !== 'streaming');
  const finalAt = final === undefined ? -1 : events.indexOf(final);
  const saved = finalAt >= 0 && events.slice(finalAt).some((e) => e.type === 'cache.event' && e.payload.kind === 'save' && e.payload.chatId === chatId);
  switch (phase) {
    case 'save':
      return saved ? 'landed after the save' : 'save cut';
    case 'restore':
      return deltas === 0 ? 'cut before the first token' : `landed in generation (${deltas} deltas)`;
    case 'generation': {
      const complete = final?.type === 'message.updated' && final.payload.message.status === 'complete';
      return complete ? 'landed after the reply' : `reply cut after ${deltas} deltas`;
    }
  }
}

/**
 * Whether a reply that a kill may have cut kept its text: null when it did, else what is wrong.
 * - complete: nothing to check here (a reply seen complete is compared as an acknowledged message);
 * - engine killed: the host saw every token it relayed, so the reply is `incomplete` (or `error`
 *   when empty) with exactly the text streamed;
 * - host killed: the next host marks it `incomplete`; its text is what the old host last wrote
 *   (flushed at a bounded rate), so one of the stored text and the streamed text is a prefix of
 *   the other (the socket may not have carried the last deltas either).
 */
export function textKept(reply: Message, events: readonly HearthEvent[], target: 'engine' | 'host'): string | null {
  if (reply.status === 'complete') return null;
  if (reply.status === 'streaming') return 'the cut reply is still streaming';
  if (reply.status === 'stopped') return 'the cut reply says stopped (nobody pressed Stop)';
  if (reply.status === 'error' && reply.content !== '') return 'the cut reply is an error but has text';
  const streamed = deltasOf(events, reply.id).join('');
  if (target === 'engine') {
    return reply.content === streamed ? null : `the cut reply holds ${JSON.stringify(reply.content)}, but ${JSON.stringify(streamed)} streamed`;
  }
  return reply.content.startsWith(streamed) || streamed.startsWith(reply.content)
    ? null
    : `the cut reply holds ${JSON.stringify(reply.content)}, which is not a prefix of what streamed, ${JSON.stringify(streamed)}`;
}

/** What the host's log says the KV store did at open after a kill (engine/kv/store.ts' own lines). */
export interface OpenFindings {
  /** Debris an interrupted write leaves by design (temp files, chunk files the index never committed), swept. */
  readonly debris: readonly string[];
  /** Anything else the store had to repair at open: damage a kill must never cause. */
  readonly damage: readonly string[];
  /** The store's check at open itself failed. */
  readonly checkFailed: boolean;
  /** The new engine found the KV root held by another process (the killed host's engine). */
  readonly lockedOut: boolean;
}

const repairedLine = /The KV store repaired what an interrupted run left: (.*?); chats re-read what was lost\./g;
// A kill between writing a chunk or tail file and the commit naming it leaves the file unindexed.
const debrisKinds = /^\d+ (temp file\(s\)|unindexed chunk file\(s\)|unindexed tail file\(s\))$/;

/** Reads the store's at-open lines out of a piece of the host's log. */
export function openFindings(log: string): OpenFindings {
  const debris: string[] = [];
  const damage: string[] = [];
  for (const match of log.matchAll(repairedLine)) {
    for (const part of (match[1] ?? '').split(', ')) (debrisKinds.test(part) ? debris : damage).push(part);
  }
  return {
    debris,
    damage,
    checkFailed: log.includes('The KV store could not check itself at open'),
    lockedOut: log.includes('another Hearth process') || log.includes('has exited: this one saves'),
  };
}
