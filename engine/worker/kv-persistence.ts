/**
 * Tells the host when the disk KV store's writes pause (a full disk, permissions, I/O) or resume,
 * so the UI can say that chats are no longer saved to disk.
 */
import type { Disposable } from '../base/disposable.ts';
import type { HearthError } from '../contract/index.ts';
import type { KvStore, PersistencePause } from '../kv/store.ts';
import type { WorkerEvent } from '../protocol.ts';

/** The `kvPersistence` event for a store's pause state (null: persistence runs). */
export function kvPersistenceEvent(pause: PersistencePause | null): WorkerEvent {
  return pause ? { type: 'kvPersistence', paused: true, reason: pause.reason } : { type: 'kvPersistence', paused: false };
}

/** The `kvPersistence` event for a KV store that could not be opened: nothing will be saved. */
export function kvUnavailableEvent(reason: HearthError): WorkerEvent {
  return { type: 'kvPersistence', paused: true, reason };
}

/**
 * Emits the store's current persistence state now, then each change. The store reports every
 * failed write (a new `since` each time); only a change of state or of reason is sent, so a
 * full disk costs the host one event, not one per turn. Dispose the result to stop.
 */
export function watchKvPersistence(
  store: Pick<KvStore, 'persistencePaused' | 'onDidChangePersistence'>,
  emit: (event: WorkerEvent) => void,
): Disposable {
  let last: string | null = null;
  const send = (pause: PersistencePause | null): void => {
    const key = pause ? `${pause.reason.code}\n${pause.reason.message}` : '';
    if (key === last) return;
    last = key;
    emit(kvPersistenceEvent(pause));
  };
  send(store.persistencePaused);
  return store.onDidChangePersistence(send);
}
