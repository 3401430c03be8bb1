/**
 * The parent's side of a benchmark helper process (the Hugging Face emulator, an engine): one
 * child forked from a module, asked over IPC with numbered requests, each answered once. A
 * child that exits fails every request it left unanswered, and every later one.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** What the child sends back for request `id`. */
export type RpcReply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

export interface ChildRpc<Request> {
  readonly child: ChildProcess;
  ask<T>(request: Request): Promise<T>;
  /** Asks `{ op: 'close' }` and waits for the exit; nothing when it has exited already. */
  close(): Promise<void>;
}

/** Forks `modulePath` (`stdout`: where the child's stdout goes) and names it `what` in errors. */
export function forkRpc<Request extends { readonly op: string }>(modulePath: string, what: string, stdout: 'inherit' | 2): ChildRpc<Request> {
  const child = fork(modulePath, [], { stdio: ['ignore', stdout, stdout === 2 ? 2 : 'inherit', 'ipc'], serialization: 'advanced' });
  let next = 0;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  child.on('message', (message: RpcReply) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.ok) waiter.resolve(message.value);
    else waiter.reject(new Error(`the ${what} process: ${message.error}`));
  });
  child.once('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`the ${what} process exited (${code ?? signal})`));
    pending.clear();
  });
  const ask = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (exited()) {
        reject(new Error(`the ${what} process has exited`));
        return;
      }
      const id = next++;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      child.send({ ...request, id });
    });
  return {
    child,
    ask,
    async close() {
      if (exited()) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await ask({ op: 'close' } as unknown as Request).catch(() => undefined);
      await gone;
    },
  };
}
