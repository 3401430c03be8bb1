import type { AppState, EngineStatus, HearthError, KvStatus, ModelStatus, Settings } from '../contract.ts';
import type { ConnectionState } from '../transport/types.ts';
import type { SliceCreator } from './types.ts';

export interface EngineBanner {
  readonly restarting: boolean;
  readonly restarts: number;
  readonly reason?: string;
  /** The engine keeps crashing (supervisor.ts crash loop): what to tell the user, while it lasts. */
  readonly crashLoop?: HearthError;
}

export interface AppSlice {
  readonly connection: ConnectionState;
  /** `app.state` failed (e.g. the browser host's token is gone): nothing else can work. */
  readonly bootError: HearthError | null;
  readonly booted: boolean;
  readonly app: Pick<AppState, 'version' | 'host' | 'dataDir' | 'modelsDir'> | null;
  readonly engine: EngineStatus | null;
  readonly engineBanner: EngineBanner | null;
  readonly model: ModelStatus;
  /** A model error the user dismissed (by identity), so the banner stays away until the next one. */
  readonly dismissedModelError: ModelStatus['error'] | null;
  readonly settings: Settings | null;
  /** Disk KV persistence as the host last reported it (null: not reported). */
  readonly kv: KvStatus | null;
  /** The user dismissed the current pause's banner; a new pause (after a resume) shows it again. */
  readonly kvBannerDismissed: boolean;

  setConnection(state: ConnectionState): void;
  setBootError(error: HearthError | null): void;
  setAppState(state: AppState): void;
  setEngine(status: EngineStatus): void;
  dismissEngineBanner(): void;
  setModel(status: ModelStatus): void;
  dismissModelError(): void;
  setSettings(settings: Settings): void;
  setKv(status: KvStatus | null): void;
  dismissKvBanner(): void;
}

/** The dismissal after a KV status update: kept while the same pause goes on, reset otherwise. */
export function nextKvBannerDismissed(dismissed: boolean, previous: KvStatus | null, next: KvStatus | null): boolean {
  return dismissed && previous?.persistence === 'paused' && next?.persistence === 'paused';
}

/**
 * The banner after an `engine.status` update: shown when the restart count went up since we
 * last looked (a crash can come and go between two events), and while that restart runs. A
 * deliberate restart (the host applying cache settings) also passes through 'restarting', but
 * it leaves the count alone (engine/host/supervisor.ts): it is no crash, so no banner.
 */
export function nextEngineBanner(
  banner: EngineBanner | null,
  previous: EngineStatus | null,
  next: EngineStatus,
): EngineBanner | null {
  const shown = crashBanner(banner, previous, next);
  if (!shown) return null;
  const loop = next.crashLoop?.error;
  if (loop) return { ...shown, crashLoop: loop };
  if (!shown.crashLoop) return shown;
  // The loop is over (an engine runs, or the supervisor stopped): back to the plain banner.
  const { crashLoop: _over, ...rest } = shown;
  return rest;
}

function crashBanner(banner: EngineBanner | null, previous: EngineStatus | null, next: EngineStatus): EngineBanner | null {
  const restarted = previous !== null && next.restarts > previous.restarts;
  // At boot there is no earlier count to compare: a restart after crashes is taken for a crash.
  const bootedIntoCrash = previous === null && next.state === 'restarting' && next.restarts > 0;
  if (restarted || bootedIntoCrash) {
    return next.lastCrash
      ? { restarting: next.state === 'restarting', restarts: next.restarts, reason: next.lastCrash.reason }
      : { restarting: next.state === 'restarting', restarts: next.restarts };
  }
  if (banner && banner.restarting && next.state === 'running') return { ...banner, restarting: false };
  return banner;
}

export const createAppSlice: SliceCreator<AppSlice> = (set) => ({
  connection: 'connecting',
  bootError: null,
  booted: false,
  app: null,
  engine: null,
  engineBanner: null,
  model: { status: 'idle' },
  dismissedModelError: null,
  settings: null,
  kv: null,
  kvBannerDismissed: false,

  setConnection: (connection) => set({ connection }),
  setBootError: (bootError) => set({ bootError }),
  setAppState: (state) =>
    set((s) => ({
      booted: true,
      bootError: null,
      app: { version: state.version, host: state.host, dataDir: state.dataDir, modelsDir: state.modelsDir },
      // A resync after a host restart may reveal restarts that happened while we were away.
      engineBanner: nextEngineBanner(s.engineBanner, s.engine, state.engine),
      engine: state.engine,
      model: state.model,
      settings: state.settings,
      kv: state.kv ?? null,
      kvBannerDismissed: nextKvBannerDismissed(s.kvBannerDismissed, s.kv, state.kv ?? null),
    })),
  setEngine: (status) => set((s) => ({ engine: status, engineBanner: nextEngineBanner(s.engineBanner, s.engine, status) })),
  dismissEngineBanner: () => set({ engineBanner: null }),
  setModel: (model) => set({ model }),
  dismissModelError: () => set((s) => ({ dismissedModelError: s.model.error ?? null })),
  setSettings: (settings) => set({ settings }),
  setKv: (kv) => set((s) => ({ kv, kvBannerDismissed: nextKvBannerDismissed(s.kvBannerDismissed, s.kv, kv) })),
  dismissKvBanner: () => set({ kvBannerDismissed: true }),
});
