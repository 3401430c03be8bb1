/**
 * The engine process entry (engine/spawn.ts forks it; Electron's main process starts it as a
 * utilityProcess). It serves engine/protocol.ts and nothing else.
 *
 * llama.cpp can crash the process (facts.md): the host supervises it and restarts it. A
 * JavaScript exception, though, must never end it: every request is answered, and stray
 * exceptions are logged.
 */
import { createRuntime } from './runtime.ts';
import { createServer, describeError } from './serve.ts';
import { connectToParent } from './transport.ts';
import type { WorkerToHost } from '../protocol.ts';

const channel = connectToParent();
if (!channel) {
  process.stderr.write('engine/worker/main.ts is the engine process entry: start it with engine/spawn.ts or utilityProcess.\n');
  process.exit(2);
}

const send = (message: WorkerToHost): void => channel.send(message);
const log = (level: 'error' | 'warn', message: string): void => send({ kind: 'event', event: { type: 'log', level, message } });

process.on('uncaughtException', (error) => log('error', `Uncaught exception in the engine: ${describeError(error)}\n${error instanceof Error ? (error.stack ?? '') : ''}`));
process.on('unhandledRejection', (reason) => log('error', `Unhandled rejection in the engine: ${describeError(reason)}`));

// The engine must not outlive its host: an orphan would hold the model's memory forever.
channel.onDisconnect(() => process.exit(0));

const runtime = createRuntime((event) => send({ kind: 'event', event }));
const serve = createServer({ send, handlers: runtime.handlers });
channel.onMessage((message) => void serve(message));
send({ kind: 'ready' });
