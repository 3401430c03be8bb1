/**
 * The browser host: `node server/main.ts [--data-dir DIR] [--model FILE.gguf] [--port N] [--threads N] [--no-measure-speed] [--api-port N [--api-key KEY]]`.
 * Argument parsing and wiring only; the HTTP app is `app.ts`. Stdout carries the address to
 * open, one line (and with `--api-port` a second line, the API's address), so scripts and tests
 * can read it; everything else goes to stderr.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHearth, HearthStartError, type Hearth } from '../engine/index.ts';
import { createServer, type RunningServer } from './app.ts';
import { parseCli, usage } from './cli.ts';
import { errorText } from '../engine/contract/index.ts';

const repoRoot = join(import.meta.dirname, '..');
const staticDir = join(repoRoot, 'out', 'renderer');

function fail(message: string, code = 1): never {
  process.stderr.write(`hearth: ${message}\n`);
  process.exit(code);
}

async function readVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** What is running, for shutdown: filled in as start-up proceeds. */
const running: { hearth?: Hearth; server?: RunningServer } = {};
let stopping = false;

/** Clean shutdown: stop serving, then dispose the service (replies saved, engine stopped, database closed). */
function stop(signal: NodeJS.Signals): void {
  if (stopping) {
    // A second Ctrl+C means "now".
    process.exit(1);
  }
  stopping = true;
  process.stderr.write(`hearth: ${signal}, shutting down\n`);
  // Should disposal hang (an engine that will not exit), do not hang with it.
  setTimeout(() => process.exit(1), 10_000).unref();
  void (async () => {
    await running.server?.close().catch(() => undefined);
    await running.hearth?.dispose().catch(() => undefined);
    process.exit(0);
  })();
}

async function main(): Promise<void> {
  const parsed = parseCli(process.argv.slice(2));
  if (!parsed.ok) fail(`${parsed.message}\n\n${usage}`, 2);
  const options = parsed.options;
  if (options.help) {
    process.stdout.write(usage);
    return;
  }
  // Installed before anything starts: a signal that arrives during start-up (or right after
  // the address is printed) must still shut down cleanly, not kill the process outright.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  if (!existsSync(join(staticDir, 'index.html'))) {
    process.stderr.write('hearth: warning: the renderer is not built (out/renderer/index.html is missing); run `npm run build` first.\n');
  }

  let hearth: Hearth;
  try {
    hearth = await createHearth({
      dataDir: options.dataDir,
      host: 'browser',
      version: await readVersion(),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      measureSpeed: options.measureSpeed,
      ...(options.modelPath !== undefined ? { modelPath: options.modelPath } : {}),
      ...(options.apiPort !== undefined ? { api: { port: options.apiPort, ...(options.apiKey !== undefined ? { key: options.apiKey } : {}) } } : {}),
    });
  } catch (e) {
    if (e instanceof HearthStartError) fail(`${e.message}\n${e.hint}`);
    fail(`cannot start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
  running.hearth = hearth;
  if (stopping) return;

  if (options.modelPath !== undefined) {
    // The host still starts (the model screen shows the error too), but say it where the user looks.
    const state = await hearth.api['app.state']({});
    if (state.ok && state.value.model.status === 'error') {
      const error = state.value.model.error;
      process.stderr.write(`hearth: the model could not be loaded: ${error?.message ?? 'unknown error'}${error?.hint ? `\n${error.hint}` : ''}\n`);
    }
  }

  let server: RunningServer;
  try {
    server = await createServer({ hearth, port: options.port, staticDir });
  } catch (e) {
    const inUse = (e as NodeJS.ErrnoException).code === 'EADDRINUSE';
    if (inUse && !options.portExplicit) {
      process.stderr.write(`hearth: port ${options.port} is taken; using a free port instead.\n`);
      server = await createServer({ hearth, port: 0, staticDir }).catch(async (e2: unknown) => {
        await hearth.dispose();
        fail(`cannot listen: ${e2 instanceof Error ? e2.message : String(e2)}`);
      });
    } else {
      await hearth.dispose();
      fail(inUse ? `port ${options.port} is already in use; pass --port 0 to pick a free one.` : `cannot listen: ${errorText(e)}`);
    }
  }
  running.server = server;
  if (stopping) {
    // stop() ran before the server existed; it is closing the service, close the server too.
    await server.close();
    return;
  }

  process.stdout.write(`Hearth listening on ${server.url}\n`);
  // The API server (when on) is listening by now: say where, or why not.
  const api = await hearth.api['server.state']({});
  if (api.ok && api.value.url !== null) process.stdout.write(`Hearth API listening on ${api.value.url}\n`);
  else if (api.ok && api.value.error) process.stderr.write(`hearth: the API server is not listening: ${api.value.error.message}${api.value.error.hint ? `\n${api.value.error.hint}` : ''}\n`);
  process.stderr.write(`hearth: data directory ${options.dataDir}\n`);
}

await main();
