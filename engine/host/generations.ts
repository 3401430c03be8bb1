/**
 * Replies in progress: relays the engine's tokens as `message.delta`, saves the text so far at a
 * bounded rate, and writes each reply's final state. One reply per chat; replies of different
 * chats queue in the engine (one generation at a time) but all show as streaming.
 */
import { hearthError, type Chat, type ChatEngineRef, type HearthError, type HearthEvent, type Message, type MessageStats, type ReplyEngine, type Result } from '../contract/index.ts';
import { DisposableStore, type Disposable } from '../base/disposable.ts';
import { settlesWithin } from '../base/timeout.ts';
import type { GenerateOutput, PromptMessage, WorkerEvent } from '../protocol.ts';
import type { RemoteReplyInput } from './remote/replies.ts';
import { errorDetail } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { newId, type ChatStore, type Finish } from './chat-store.ts';
import type { Supervisor } from './supervisor.ts';

/** How often, at most, streamed text is written to SQLite: a killed host loses at most this much. */
export const defaultFlushIntervalMs = 250;

interface Run {
  readonly chatId: string;
  readonly messageId: string;
  readonly requestId: string;
  /** The prompt's messages after the system prompt, by id: the view's first one is found here. */
  readonly promptIds: readonly string[];
  /** A continued reply: its text and stats from before (the new text goes on after it). */
  readonly before: { readonly text: string; readonly stats: MessageStats | undefined } | null;
  text: string;
  lastFlushAt: number;
  flushTimer: NodeJS.Timeout | null;
  /** Runs on a remote engine (its abort goes there), or on this computer's (null). */
  readonly remote: ChatEngineRef | null;
  /** Where the branch's previous reply was generated: a different engine or model means the chat moved. */
  readonly previous: ReplyEngine | undefined;
  /** Forgotten (chat deleted, or finished by dispose): its late result must not touch the store. */
  detached: boolean;
  done: Promise<void>;
}

/** Replies on remote engines (remote/replies.ts). */
export interface RemoteReplyEngine {
  generate(ref: ChatEngineRef, input: RemoteReplyInput, onDelta: (delta: string) => void): Promise<Result<GenerateOutput>>;
  abort(requestId: string): boolean;
}

export interface GenerationsDeps {
  readonly store: ChatStore;
  readonly engine: Pick<Supervisor, 'request' | 'onEvent'>;
  /** Where chats bound to a remote engine run; without it they fail with NOT_SUPPORTED. */
  readonly remote?: RemoteReplyEngine;
  /** This computer's engine as a reply's readout names it (the loaded model); null when none is loaded. */
  readonly localEngine?: () => ReplyEngine | null;
  readonly emit: (event: HearthEvent) => void;
  readonly metrics: Metrics;
  /** A reply finished with stats (the Cache view's timeline: cache-view-log.ts). */
  readonly onTurn?: (chatId: string, messageId: string, stats: MessageStats) => void;
  readonly flushIntervalMs?: number;
  readonly log?: (level: 'error', message: string) => void;
}

/** A reply's prompt, and the ids of its messages after the system prompt. */
export interface Prompt {
  readonly messages: PromptMessage[];
  readonly ids: string[];
  /** Where the branch's previous reply was generated (`previousEngine`). */
  readonly previous?: ReplyEngine | undefined;
}

/** The prompt for a reply: the system prompt, then the branch, without failed or empty messages. */
export function buildPrompt(systemPrompt: string, path: readonly Message[]): Prompt {
  const messages: PromptMessage[] = [];
  const ids: string[] = [];
  if (systemPrompt.trim() !== '') messages.push({ role: 'system', text: systemPrompt });
  for (const message of path) {
    if (message.status === 'error' || message.content.trim() === '') continue;
    messages.push({ role: message.role, text: message.content });
    ids.push(message.id);
  }
  return { messages, ids, previous: previousEngine(path) };
}

/**
 * The stats a reply is saved with: the view's first message named by id, and a continued
 * reply's generated tokens counted with those from before.
 */
export function replyStats(stats: MessageStats, promptIds: readonly string[], before: MessageStats | undefined): MessageStats {
  const view = stats.view;
  const firstMessageId = view && view.droppedMessages > 0 ? promptIds[view.droppedMessages] : undefined;
  return {
    ...stats,
    ...(before ? { tokensGenerated: before.tokensGenerated + stats.tokensGenerated } : {}),
    ...(view ? { view: { ...view, ...(firstMessageId !== undefined ? { firstMessageId } : {}) } } : {}),
  };
}

/** Where the last reply of `path` that says so was generated. */
export function previousEngine(path: readonly Message[]): ReplyEngine | undefined {
  for (let i = path.length - 1; i >= 0; i -= 1) {
    const engine = path[i]!.stats?.engine;
    if (engine) return engine;
  }
  return undefined;
}

/** "vLLM box · Llama-3-70B" when `previous` is another engine or model than `now`. */
export function movedFrom(previous: ReplyEngine | undefined, now: ReplyEngine | undefined): string | undefined {
  if (!previous || !now || (previous.id === now.id && previous.model === now.model)) return undefined;
  return `${previous.name} · ${previous.model}`;
}

/** How a generate result ends the message. */
export function finishFor(result: Result<GenerateOutput>, textSoFar: string): Finish {
  if (result.ok) {
    const { text, stopReason, stats } = result.value;
    // The readout keeps how the reply ended; a stopped one says so by its status.
    if (stopReason === 'aborted') return { status: 'stopped', content: text, stats };
    // Chats ask for no stop texts or functions: those two only end API replies.
    const ended = stopReason === 'stopSequence' || stopReason === 'functionCalls' ? 'eos' : stopReason;
    return { status: 'complete', content: text, stats: { ...stats, stopReason: ended } };
  }
  const error: HearthError = result.error;
  switch (error.code) {
    case 'ENGINE_CRASHED':
      return { status: 'incomplete', content: textSoFar, error };
    case 'CANCELLED':
      return { status: 'stopped', content: textSoFar };
    default:
      return { status: textSoFar === '' ? 'error' : 'incomplete', content: textSoFar, error };
  }
}

export class Generations implements Disposable {
  readonly #deps: GenerationsDeps;
  readonly #flushMs: number;
  readonly #byChat = new Map<string, Run>();
  readonly #byRequest = new Map<string, Run>();
  readonly #subscriptions = new DisposableStore();

  constructor(deps: GenerationsDeps) {
    this.#deps = deps;
    this.#flushMs = deps.flushIntervalMs ?? defaultFlushIntervalMs;
    this.#subscriptions.add(deps.engine.onEvent((event) => this.#onEvent(event)));
  }

  /** Stops listening to the engine (after `stopAll`): tokens that still arrive are dropped. */
  dispose(): void {
    this.#subscriptions.dispose();
  }

  isStreaming(chatId: string): boolean {
    return this.#byChat.has(chatId);
  }

  get activeChatIds(): string[] {
    return [...this.#byChat.keys()];
  }

  /**
   * Starts the reply into `assistant` (already committed as 'streaming'). Returns at once. With
   * `continued` (the reply's text and stats from before), the prompt ends with that text and
   * the new text goes on after it.
   */
  start(chat: Chat, assistant: Message, prompt: Prompt, continued?: { readonly text: string; readonly stats: MessageStats | undefined }): void {
    const run: Run = {
      remote: chat.engine,
      previous: prompt.previous,
      chatId: chat.id,
      messageId: assistant.id,
      requestId: newId(),
      promptIds: prompt.ids,
      before: continued ?? null,
      text: continued?.text ?? '',
      lastFlushAt: Date.now(),
      flushTimer: null,
      detached: false,
      done: Promise.resolve(),
    };
    this.#byChat.set(run.chatId, run);
    this.#byRequest.set(run.requestId, run);
    const input = {
      requestId: run.requestId,
      chatId: chat.id,
      branchId: assistant.id,
      messages: prompt.messages,
      sampling: chat.sampling,
      ...(chat.overflowPolicy !== null ? { overflowPolicy: chat.overflowPolicy } : {}),
    };
    const remote = this.#deps.remote;
    const generated: Promise<Result<GenerateOutput>> =
      chat.engine === null
        ? this.#deps.engine.request('generate', input)
        : remote
          ? remote.generate(chat.engine, input, (delta) => this.#onDelta(run, delta))
          : Promise.resolve({ ok: false, error: hearthError('NOT_SUPPORTED', 'This host cannot run chats on remote engines.') });
    run.done = generated.then((result) => this.#finish(run, this.#finishOf(run, result))).catch((error: unknown) => this.#failed('finishing a reply', error));
  }

  /** Asks the run's engine to stop it. */
  #abort(run: Run, timeoutMs: number): Promise<unknown> {
    if (run.remote !== null) return Promise.resolve(this.#deps.remote?.abort(run.requestId) ?? false);
    return this.#deps.engine.request('abort', { requestId: run.requestId }, { timeoutMs });
  }

  /** How `result` ends the run's message: a continued reply keeps its text from before. */
  #finishOf(run: Run, result: Result<GenerateOutput>): Finish {
    const finish = finishFor(result, run.text);
    const before = run.before;
    // A continuation that failed keeps the readout of what was written before it.
    const stats = finish.stats ? this.#withEngine(run, replyStats(finish.stats, run.promptIds, before?.stats)) : before?.stats;
    const content = before && result.ok ? before.text + finish.content : finish.content;
    return { ...finish, content, ...(stats ? { stats } : {}) };
  }

  /** Names where the reply ran, and whether the chat moved there since the branch's previous reply. */
  #withEngine(run: Run, stats: MessageStats): MessageStats {
    const engine = stats.engine ?? (run.remote === null ? (this.#deps.localEngine?.() ?? undefined) : undefined);
    if (!engine) return stats;
    const moved = movedFrom(run.previous, engine);
    return { ...stats, engine, ...(moved !== undefined ? { movedFrom: moved } : {}) };
  }

  /** Stops the chat's reply; resolves once the message is written (or after `waitMs`). */
  async stop(chatId: string, waitMs = 5000): Promise<boolean> {
    const run = this.#byChat.get(chatId);
    if (!run) return false;
    await this.#abort(run, waitMs);
    await settlesWithin(run.done, waitMs);
    return true;
  }

  /** Forgets the chat's reply (its chat is being deleted) and tells the engine to stop it. */
  detach(chatId: string): void {
    const run = this.#byChat.get(chatId);
    if (!run) return;
    this.#forget(run);
    void this.#abort(run, 5000);
  }

  /**
   * For shutdown: asks the engine to stop every reply and waits up to `graceMs`. Replies the
   * engine stopped are 'stopped' (with stats); the rest are written 'incomplete' with their text.
   */
  async stopAll(graceMs: number): Promise<void> {
    const runs = [...this.#byChat.values()];
    for (const run of runs) void this.#abort(run, graceMs);
    await settlesWithin(Promise.all(runs.map((r) => r.done)), graceMs);
    for (const run of runs) {
      if (run.detached) continue;
      this.#finish(run, {
        status: 'incomplete',
        content: run.text,
        error: hearthError('CANCELLED', 'Hearth was closed while this reply was being written.'),
      });
    }
    this.dispose();
  }

  #onEvent(event: WorkerEvent): void {
    if (event.type !== 'token') return;
    const run = this.#byRequest.get(event.requestId);
    if (run) this.#onDelta(run, event.delta);
  }

  /** New text of a reply, from this computer's engine or a remote one. */
  #onDelta(run: Run, delta: string): void {
    if (run.detached || delta === '') return;
    run.text += delta;
    this.#deps.emit({ type: 'message.delta', payload: { chatId: run.chatId, messageId: run.messageId, delta } });
    const elapsed = Date.now() - run.lastFlushAt;
    if (elapsed >= this.#flushMs) this.#flush(run);
    else run.flushTimer ??= setTimeout(() => this.#flush(run), this.#flushMs - elapsed);
  }

  #flush(run: Run): void {
    if (run.flushTimer) clearTimeout(run.flushTimer);
    run.flushTimer = null;
    run.lastFlushAt = Date.now();
    if (run.detached) return;
    try {
      this.#deps.store.saveContent(run.messageId, run.text);
    } catch (error) {
      // Runs in a timer: a throw here would take the host down. The next flush or the finish retries.
      this.#failed('saving streamed text', error);
    }
  }

  #failed(what: string, error: unknown): void {
    (this.#deps.log ?? ((_level, text) => console.error(text)))('error', `${what} failed: ${errorDetail(error)}`);
  }

  #forget(run: Run): void {
    run.detached = true;
    if (run.flushTimer) clearTimeout(run.flushTimer);
    run.flushTimer = null;
    if (this.#byChat.get(run.chatId) === run) this.#byChat.delete(run.chatId);
    this.#byRequest.delete(run.requestId);
  }

  #finish(run: Run, finish: Finish): void {
    if (run.detached) return;
    this.#forget(run);
    const message = this.#deps.store.finishMessage(run.messageId, finish);
    if (!message) return;
    if (finish.stats) {
      this.#deps.metrics.record(finish.stats);
      // Before message.updated: a view that refreshes on the final message finds its turn there.
      this.#deps.onTurn?.(run.chatId, run.messageId, finish.stats);
    }
    this.#deps.emit({ type: 'message.updated', payload: { message } });
  }
}
