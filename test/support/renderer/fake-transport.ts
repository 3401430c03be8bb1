/** A transport whose calls are answered by a table of handlers, and whose events tests emit. */
import type { CallInput, CallName, CallOutputs, HearthEvent, Result } from '../../../renderer/src/contract.ts';
import type { ConnectionState, Transport } from '../../../renderer/src/transport/types.ts';

type Handlers = { [N in CallName]?: (input: CallInput<N>) => Result<CallOutputs[N]> | Promise<Result<CallOutputs[N]>> };

export interface FakeTransport extends Transport {
  readonly calls: { name: CallName; input: unknown }[];
  emit(event: HearthEvent): void;
  setConnection(state: ConnectionState): void;
  handlers: Handlers;
}

export function fakeTransport(handlers: Handlers = {}, initial: ConnectionState = 'open'): FakeTransport {
  const events = new Set<(event: HearthEvent) => void>();
  const connections = new Set<(state: ConnectionState) => void>();
  let connection = initial;
  const fake: FakeTransport = {
    kind: 'browser',
    calls: [],
    handlers,
    async call<N extends CallName>(name: N, input: CallInput<N>): Promise<Result<CallOutputs[N]>> {
      fake.calls.push({ name, input });
      const handler = fake.handlers[name] as ((input: CallInput<N>) => Result<CallOutputs[N]> | Promise<Result<CallOutputs[N]>>) | undefined;
      if (!handler) return { ok: false, error: { code: 'NOT_SUPPORTED', message: `no fake for ${name}` } };
      return handler(input);
    },
    onEvent(listener) {
      events.add(listener);
      return () => events.delete(listener);
    },
    onConnection(listener) {
      connections.add(listener);
      listener(connection);
      return () => connections.delete(listener);
    },
    dispose() {},
    emit(event) {
      for (const listener of events) listener(event);
    },
    setConnection(state) {
      connection = state;
      for (const listener of connections) listener(state);
    },
  };
  return fake;
}

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}
