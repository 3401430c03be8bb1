/**
 * API requests' turns in the engine: each is a `generate` with its own request id, its tokens
 * routed back to the one HTTP response that asked (streams of different clients never mix), and
 * its finished stats recorded like a chat turn's (the Cache view's timeline, source "API").
 *
 * A request names no chat, so its KV is filed under a conversation id derived from how the
 * conversation starts (system prompt and first user message): an agent that re-sends a growing
 * history lands on the same slot and manifests each time, and its previous turn's manifest is
 * replaced by the longer one (turn-kv.ts). The leaf id is a digest of the whole prompt.
 */
import { createHash, randomUUID } from 'node:crypto';
import { apiConversationPrefix, err, type MessageStats, type OverflowPolicy, type Result, type Sampling } from '../../contract/index.ts';
import { DisposableStore, type Disposable } from '../../base/disposable.ts';
import type { FunctionSpec, GenerateInput, GenerateOutput, OutputFormat, PromptMessage, WorkerEvent } from '../../protocol.ts';
import type { Supervisor } from '../supervisor.ts';

/** One API request's turn, as the wire formats (openai.ts, anthropic.ts) translate it. */
export interface ApiTurn {
  readonly messages: readonly PromptMessage[];
  readonly sampling: Sampling;
  readonly stop?: readonly string[];
  readonly seed?: number;
  readonly format?: OutputFormat;
  readonly functions?: Readonly<Record<string, FunctionSpec>>;
  readonly raw?: boolean;
  /** `stop` answers CONTEXT_OVERFLOW for a prompt that does not fit; `drop-oldest` truncates it. */
  readonly overflowPolicy: OverflowPolicy;
}

export interface ApiRunsDeps {
  readonly engine: Pick<Supervisor, 'request' | 'onEvent'>;
  /** A turn finished with stats: the Cache view's timeline and the metrics. */
  readonly onTurn?: (conversationId: string, requestId: string, stats: MessageStats) => void;
}

/** A short digest for ids: 16 hex characters of sha256. */
function digest(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);
}

/** The conversation a prompt belongs to: its system prompt and first user message (or a raw prompt's start). */
export function conversationIdOf(model: string, turn: Pick<ApiTurn, 'messages' | 'raw'>): string {
  const system = turn.messages.find((m) => m.role === 'system')?.text ?? '';
  const firstUser = turn.messages.find((m) => m.role === 'user')?.text ?? '';
  // A raw prompt has no first message: its first 2,000 characters stand for it.
  const start = turn.raw ? firstUser.slice(0, 2000) : firstUser;
  return `${apiConversationPrefix}${digest([model, turn.raw === true, system, start])}`;
}

interface Listener {
  readonly onDelta: (text: string) => void;
}

export class ApiRuns implements Disposable {
  readonly #deps: ApiRunsDeps;
  readonly #listeners = new Map<string, Listener>();
  readonly #subscriptions = new DisposableStore();

  constructor(deps: ApiRunsDeps) {
    this.#deps = deps;
    this.#subscriptions.add(deps.engine.onEvent((event) => this.#onEvent(event)));
  }

  get running(): number {
    return this.#listeners.size;
  }

  /**
   * Runs the turn; `onDelta` gets the reply's text piece by piece. Aborting `signal` stops the
   * generation (the result then has stopReason `aborted`). Never throws.
   */
  async run(model: string, turn: ApiTurn, onDelta: (text: string) => void, signal: AbortSignal): Promise<Result<GenerateOutput>> {
    if (signal.aborted) return err('CANCELLED', 'The client went away before the request ran.');
    const requestId = `api-${randomUUID()}`;
    const conversationId = conversationIdOf(model, turn);
    const input: GenerateInput = {
      requestId,
      chatId: conversationId,
      branchId: digest([model, turn.messages, turn.functions ?? null, turn.raw === true]),
      messages: turn.messages,
      sampling: turn.sampling,
      overflowPolicy: turn.overflowPolicy,
      source: 'api',
      diagnose: true,
      ...(turn.stop && turn.stop.length > 0 ? { stop: turn.stop } : {}),
      ...(turn.seed !== undefined ? { seed: turn.seed } : {}),
      ...(turn.format ? { format: turn.format } : {}),
      ...(turn.functions && Object.keys(turn.functions).length > 0 ? { functions: turn.functions } : {}),
      ...(turn.raw ? { raw: true } : {}),
    };
    this.#listeners.set(requestId, { onDelta });
    const abort = (): void => void this.#deps.engine.request('abort', { requestId }, { timeoutMs: 5000 });
    signal.addEventListener('abort', abort, { once: true });
    try {
      const result = await this.#deps.engine.request('generate', input);
      if (result.ok && result.value.stopReason !== 'aborted') this.#deps.onTurn?.(conversationId, requestId, result.value.stats);
      return result;
    } finally {
      signal.removeEventListener('abort', abort);
      this.#listeners.delete(requestId);
    }
  }

  #onEvent(event: WorkerEvent): void {
    if (event.type !== 'token' || event.delta === '') return;
    this.#listeners.get(event.requestId)?.onDelta(event.delta);
  }

  dispose(): void {
    this.#subscriptions.dispose();
    this.#listeners.clear();
  }
}
