/**
 * Chat replies generated on a remote engine. The host keeps the chat (the prompt is built from
 * its own database, as for this computer's engine); the engine gets the branch as OpenAI
 * messages and streams the reply back. The result has the local engine's shape
 * (`GenerateOutput`), so the rest of the host saves and shows it the same way, with the
 * server's own account of its prefix cache in `stats.server`.
 */
import { ok, type ChatEngineRef, type MessageStats, type Result, type Sampling } from '../../contract/index.ts';
import type { GenerateOutput, PromptMessage } from '../../protocol.ts';
import type { ChatOutcome, RemoteClient } from './client.ts';
import { engineRemovedError, type RemoteEngines } from './engines.ts';

export interface RemoteReplyInput {
  readonly requestId: string;
  readonly messages: readonly PromptMessage[];
  readonly sampling: Sampling;
}

/** The readout of a remote reply, from what the server reported. */
export function remoteStats(outcome: ChatOutcome, engine: { id: string; name: string; kind: NonNullable<MessageStats['engine']>['kind'] }, model: string, elapsedMs: number): MessageStats {
  const usage = outcome.usage;
  const cached = usage?.cachedTokens ?? null;
  return {
    tokensReused: cached ?? 0,
    tokensRestored: 0,
    tokensPrefilled: usage ? Math.max(0, usage.promptTokens - (cached ?? 0)) : 0,
    tokensGenerated: usage?.completionTokens ?? 0,
    ttftMs: Math.round(outcome.ttftMs ?? elapsedMs),
    ...(outcome.promptMs !== null ? { prefillMs: Math.round(outcome.promptMs) } : {}),
    cacheSource: cached !== null && cached > 0 ? 'memory' : 'none',
    engine: { id: engine.id, name: engine.name, model, kind: engine.kind },
    ...(usage ? { server: { promptTokens: usage.promptTokens, cachedTokens: cached } } : {}),
  };
}

/**
 * How often, at most, a remote reply's text is passed on. A server sends one event per token; a
 * fast one (a small model, a big GPU) sends a thousand a second, and one `message.delta` each
 * would flood the renderer's connection (the browser host drops a socket that falls behind).
 * The local engine batches its tokens at the same rate.
 */
export const REMOTE_DELTA_MS = 16;

/** `push` gathers text; it reaches `onDelta` at most every REMOTE_DELTA_MS (the first at once). */
function batchedDeltas(onDelta: (delta: string) => void): { push: (delta: string) => void; flush: () => void } {
  let pending = '';
  let last = 0;
  let timer: NodeJS.Timeout | null = null;
  const flush = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (pending === '') return;
    const text = pending;
    pending = '';
    last = performance.now();
    onDelta(text);
  };
  const push = (delta: string): void => {
    pending += delta;
    const wait = REMOTE_DELTA_MS - (performance.now() - last);
    if (wait <= 0) flush();
    else timer ??= setTimeout(flush, wait);
  };
  return { push, flush };
}

export class RemoteReplies {
  readonly #engines: RemoteEngines;
  readonly #client: RemoteClient;
  readonly #running = new Map<string, AbortController>();

  constructor(deps: { engines: RemoteEngines; client: RemoteClient }) {
    this.#engines = deps.engines;
    this.#client = deps.client;
  }

  /** Streams the reply; `onDelta` gets its text as it arrives. Stopped by `abort(requestId)`. */
  async generate(ref: ChatEngineRef, input: RemoteReplyInput, onDelta: (delta: string) => void): Promise<Result<GenerateOutput>> {
    // One read of the engine's row and key per reply; Conversations refused continuing (a last assistant message) already.
    const target = this.#engines.target(ref.engineId);
    if (!target) return { ok: false, error: engineRemovedError() };
    const controller = new AbortController();
    this.#running.set(input.requestId, controller);
    const started = performance.now();
    const deltas = batchedDeltas(onDelta);
    try {
      const outcome = await this.#client.chat(
        target,
        {
          model: ref.model,
          messages: input.messages.map((m) => ({ role: m.role, content: m.text })),
          temperature: input.sampling.temperature,
          topP: input.sampling.topP,
          maxTokens: input.sampling.maxTokens > 0 ? input.sampling.maxTokens : null,
        },
        controller.signal,
        deltas.push,
      );
      if (outcome.error) return { ok: false, error: outcome.error };
      const stats = remoteStats(outcome, target, ref.model, performance.now() - started);
      if (outcome.aborted) return ok({ text: outcome.text, stopReason: 'aborted', stats });
      return ok({ text: outcome.text, stopReason: outcome.finishReason === 'length' ? 'maxTokens' : 'eos', stats });
    } finally {
      // Every delta is out before the result: the deltas add up to the saved text.
      deltas.flush();
      this.#running.delete(input.requestId);
    }
  }

  /** Stops a reply: its request is aborted, which closes the connection, and the server stops. */
  abort(requestId: string): boolean {
    const controller = this.#running.get(requestId);
    controller?.abort();
    return controller !== undefined;
  }

  /** Stops every reply (Hearth is closing). */
  abortAll(): void {
    for (const controller of this.#running.values()) controller.abort();
  }
}
