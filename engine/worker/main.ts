/**
 * The engine process entry (engine/spawn.ts forks it; Electron's main process starts it as a
 * utilityProcess). It serves engine/protocol.ts and nothing else.
 *
 * llama.cpp can crash the process (docs/decisions/quantized-k-shift-crash.md): the host supervises it and restarts it. A
 * JavaScript exception, though, must never end it: every request is answered, and stray
 * exceptions are logged.
 */
import { createRuntime } from './runtime.ts';
import { errorText } from '../contract/index.ts';
import { createServer } from './serve.ts';
import { connectToParent } from './transport.ts';
import type { WorkerToHost } from '../protocol.ts';

const channel = connectToParent();
if (!channel) {
  process.stderr.write('engine/worker/main.ts is the engine process entry: start it with engine/spawn.ts or utilityProcess.\n');
  process.exit(2);
}

const send = (message: WorkerToHost): void => channel.send(message);
const log = (level: 'error' | 'warn', message: string): void => send({ kind: 'event', event: { type: 'log', level, message } });

process.on('uncaughtException', (error) => log('error', `Uncaught exception in the engine: ${errorText(error)}\n${error instanceof Error ? (error.stack ?? '') : ''}`));
process.on('unhandledRejection', (reason) => log('error', `Unhandled rejection in the engine: ${errorText(reason)}`));

const runtime = createRuntime((event) => send({ kind: 'event', event }));

/**
 * At quit the last turn's KV save may still be running: give it a bounded time (the host's
 * SIGKILL grace is 3 s), then exit. An interrupted save is harmless (chunk files are renamed
 * into place and the manifest is one transaction), it only loses that turn's new chunks.
 */
const QUIT_FLUSH_MS = 2000;
let quitting = false;
const quit = (): void => {
  if (quitting) return;
  quitting = true;
  void runtime.flush(QUIT_FLUSH_MS).finally(() => process.exit(0));
};
process.on('SIGTERM', quit);
// The engine must not outlive its host: an orphan would hold the model's memory forever.
channel.onDisconnect(quit);

const serve = createServer({ send, handlers: runtime.handlers });
channel.onMessage((message) => void serve(message));
send({ kind: 'ready' });
