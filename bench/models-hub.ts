/**
 * The models benchmark's Hugging Face Hub: test/support/hf-emulator.ts in a process of its own,
 * driven over IPC by bench/models.ts (`startHubProcess`). In its own process the server's reads,
 * socket writes and garbage do not share the downloader's event loop, heap or /proc counters, so
 * what the benchmark measures in its own process is the download alone.
 *
 * Run as a child (`fork`), this file answers messages; imported, it gives the parent's side.
 */
import { forkRpc, type RpcReply } from './child-rpc.ts';
import { fileURLToPath } from 'node:url';
import { startHubEmulator, type EmulatorRepo, type EmulatorRequest, type HubEmulator } from '../test/support/hf-emulator.ts';

type Request = { readonly id: number } & ({ readonly op: 'start'; readonly repos: readonly EmulatorRepo[] } | { readonly op: 'addRepo'; readonly repo: EmulatorRepo } | { readonly op: 'requests'; readonly from: number } | { readonly op: 'close' });

type RequestBody = Request extends infer R ? (R extends { readonly id: number } ? Omit<R, 'id'> : never) : never;

/** The emulator as the parent sees it. */
export interface HubProcess {
  readonly endpoint: string;
  readonly cdnEndpoint: string;
  readonly pid: number;
  /** Adds a repository (the emulator hashes its files first); resolves with the milliseconds that took. */
  addRepo(repo: EmulatorRepo): Promise<number>;
  /** The requests the emulator saw, from index `from` on. */
  requests(from?: number): Promise<EmulatorRequest[]>;
  close(): Promise<void>;
}

/** Starts the emulator in a child process with `repos` (hashed before it answers). */
export async function startHubProcess(repos: readonly EmulatorRepo[]): Promise<HubProcess & { readonly setupMs: number }> {
  const { child, ask, close } = forkRpc<RequestBody>(fileURLToPath(import.meta.url), 'Hub emulator', 'inherit');
  const started = await ask<{ endpoint: string; cdnEndpoint: string; setupMs: number }>({ op: 'start', repos });
  return {
    ...started,
    pid: child.pid ?? -1,
    addRepo: (repo) => ask<number>({ op: 'addRepo', repo }),
    requests: (from = 0) => ask<EmulatorRequest[]>({ op: 'requests', from }),
    close,
  };
}

/** The child's side: one emulator, answering the parent's requests in order. */
async function serve(): Promise<void> {
  let hub: HubEmulator | null = null;
  const reply = (message: RpcReply): void => void process.send?.(message);
  process.on('message', (request: Request) => {
    void (async () => {
      try {
        switch (request.op) {
          case 'start': {
            const began = performance.now();
            hub = await startHubEmulator({ repos: request.repos });
            reply({ id: request.id, ok: true, value: { endpoint: hub.endpoint, cdnEndpoint: hub.cdnEndpoint, setupMs: performance.now() - began } });
            return;
          }
          case 'addRepo': {
            const began = performance.now();
            await hub!.addRepo(request.repo);
            reply({ id: request.id, ok: true, value: performance.now() - began });
            return;
          }
          case 'requests':
            reply({ id: request.id, ok: true, value: hub!.requests.slice(request.from) });
            return;
          case 'close':
            await hub?.close();
            reply({ id: request.id, ok: true, value: null });
            process.disconnect?.();
            return;
        }
      } catch (error) {
        reply({ id: request.id, ok: false, error: error instanceof Error ? error.message : String(error) });
      }
    })();
  });
  // The parent gone (a crash, Ctrl-C): nothing is left listening.
  process.on('disconnect', () => {
    void (hub?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) await serve();
