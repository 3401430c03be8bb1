/**
 * The engine's public entry: hosts (electron/, server/) import only this and engine/contract.
 */
import { startHearth, type Hearth, type HearthOptions } from './host/hearth.ts';
import { inspectGguf } from './gguf/reader.ts';
import { forkEngine } from './spawn.ts';

export type { Hearth, HearthOptions } from './host/hearth.ts';
export { removeSecretFile, type SecretStore } from './host/secrets.ts';
export { HearthStartError } from './host/hearth.ts';
export type { EnginePort, HostToWorker, SpawnEngine, WorkerToHost } from './protocol.ts';
export type { HearthEvent } from './contract/index.ts';
export { forkEngine } from './spawn.ts';

/**
 * Opens the data directory (creating it), starts the engine process, and (with
 * `options.modelPath`) loads that model before resolving. Rejects only with a
 * `HearthStartError` when the data directory or its database cannot be used; print its
 * `message` and `hint`. Everything after start reports failures as `Result`s and events.
 */
export async function createHearth(options: HearthOptions): Promise<Hearth> {
  return startHearth(options, { spawnEngine: options.spawnEngine ?? (() => forkEngine()), inspect: inspectGguf });
}
