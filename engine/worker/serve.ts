/**
 * Answers the host's requests: every `call` gets exactly one `result`, whatever the handler
 * does (engine/protocol.ts). A handler that throws or rejects is a bug, answered with INTERNAL;
 * the process keeps serving.
 */
import { err, type Result, errorText } from '../contract/index.ts';
import type { WorkerEvent, WorkerMethod, WorkerMethods, WorkerToHost } from '../protocol.ts';

/** One async function per protocol method. Handlers return expected failures as `Result`s. */
export type WorkerHandlers = {
  readonly [M in WorkerMethod]: (input: WorkerMethods[M]['input']) => Promise<Result<WorkerMethods[M]['output']>>;
};

export interface ServeOptions {
  readonly send: (message: WorkerToHost) => void;
  readonly handlers: WorkerHandlers;
  /** Where failures of the serving itself are reported (a log event by default). */
  readonly onProblem?: (message: string) => void;
}

/**
 * Returns the function to feed each incoming message to. It never throws, and the promise it
 * returns resolves once the message has been answered (tests await it).
 */
export function createServer(options: ServeOptions): (message: unknown) => Promise<void> {
  const { send, handlers } = options;
  const problem =
    options.onProblem ??
    ((message: string) => send({ kind: 'event', event: { type: 'log', level: 'error', message } satisfies WorkerEvent }));

  return async (message: unknown): Promise<void> => {
    if (typeof message !== 'object' || message === null) {
      problem(`The engine received a message that is not an object: ${JSON.stringify(message)}`);
      return;
    }
    const { kind, id, method, input } = message as { kind?: unknown; id?: unknown; method?: unknown; input?: unknown };
    if (kind !== 'call' || typeof id !== 'number') {
      problem(`The engine received a message it does not understand (kind ${String(kind)}).`);
      return;
    }
    let result: Result<unknown>;
    if (typeof method !== 'string' || !Object.hasOwn(handlers, method)) {
      result = err('INVALID_INPUT', `The engine has no method "${String(method)}".`);
    } else {
      try {
        const handler = handlers[method as WorkerMethod] as (input: unknown) => Promise<Result<unknown>>;
        result = await handler(input);
      } catch (error) {
        result = err('INTERNAL', `The engine failed in ${method}: ${errorText(error)}`);
      }
    }
    try {
      send({ kind: 'result', id, result });
    } catch (error) {
      // A result that cannot be serialized is still answered, so the caller never waits forever.
      send({ kind: 'result', id, result: err('INTERNAL', `The engine could not send the result of ${String(method)}: ${errorText(error)}`) });
    }
  };
}
