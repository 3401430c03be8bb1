/**
 * A reply's `token` events, batched: at most one per TOKEN_FLUSH_MS (the first at once), so a
 * fast model does not flood the host with one message per token. `settle` reconciles the final
 * text with what was streamed, so the deltas always add up to the reply.
 */
import type { WorkerEvent } from '../protocol.ts';
import { TOKEN_FLUSH_MS } from './constants.ts';
import type { LogLevel } from './logs.ts';

export interface TokenStream {
  /** What was streamed so far. */
  readonly text: string;
  push(chunk: string): void;
  /** Sends what is pending now. */
  flush(): void;
  /** The reply's final text: text the wrapper held back (a possible stop trigger) is streamed too. */
  settle(final: string): string;
}

export function tokenStream(out: { emit(event: WorkerEvent): void; log(level: LogLevel, message: string): void }, requestId: string): TokenStream {
  let streamed = '';
  let pending = '';
  let lastFlush = 0;
  let flushTimer: NodeJS.Timeout | null = null;
  const flush = (): void => {
    if (flushTimer) {
      clearTimeout(flushTimer);
      flushTimer = null;
    }
    if (pending === '') return;
    out.emit({ type: 'token', requestId, delta: pending });
    streamed += pending;
    pending = '';
    lastFlush = performance.now();
  };
  return {
    get text(): string {
      return streamed;
    },
    flush,
    push(chunk: string): void {
      pending += chunk;
      const now = performance.now();
      if (now - lastFlush >= TOKEN_FLUSH_MS) flush();
      else flushTimer ??= setTimeout(flush, TOKEN_FLUSH_MS - (now - lastFlush));
    },
    settle(final: string): string {
      flush();
      if (final.startsWith(streamed) && final.length > streamed.length) {
        out.emit({ type: 'token', requestId, delta: final.slice(streamed.length) });
        streamed = final;
        return final;
      }
      if (!final.startsWith(streamed)) {
        out.log('warn', `The reply differs from the streamed text (${final.length} vs ${streamed.length} characters); keeping the streamed text.`);
        return streamed;
      }
      return final;
    },
  };
}
