/**
 * Generation speed as it crosses the contract: the settings measured on this computer for each
 * model (flash attention, threads, batch size) and the engine built for this computer.
 */
import type { HearthError } from './errors.ts';
import type { KvCacheType } from './kv-types.ts';

/** Which llama.cpp libraries the engine runs: node-llama-cpp's prebuilt ones, or a build made on this computer. */
export type EngineBuildKind = 'prebuilt' | 'local';

/** The context settings a speed measurement varies. */
export interface SpeedSettings {
  readonly flashAttention: boolean;
  /** llama.cpp threads. */
  readonly threads: number;
  /** Tokens evaluated per batch while reading a prompt. */
  readonly batchSize: number;
}

/** One measured candidate. */
export interface SpeedTrial extends SpeedSettings {
  /** Prompt tokens per second, reading `depth` tokens; null when the candidate could not run. */
  readonly prefillTokPerS: number | null;
  /**
   * Reply tokens per second, one at a time after `depth` tokens (from the median token's time);
   * null when the candidate could not run.
   */
  readonly decodeTokPerS: number | null;
  /**
   * Seconds a reference turn takes with these settings (SPEED_TURN: its prompt read, its reply
   * written); the lowest wins. null when the candidate could not run.
   */
  readonly turnSeconds: number | null;
  /** Why the candidate could not run (a context llama.cpp refused, say). */
  readonly error?: string;
}

/**
 * The turn the choice is scored on: reading a prompt of `promptTokens` and writing a reply of
 * `replyTokens`. With the disk KV cache a turn reads only the new message, and replies run
 * longer than what people type, so decode weighs twice what prefill does per token, on top of
 * each decode token taking several prefill tokens' time (docs/decisions/speed-defaults.md).
 */
export const SPEED_TURN = { promptTokens: 128, replyTokens: 256 } as const;

/** One model's speed measurement on this computer, for one K/V pair and engine, and what it chose. */
export interface SpeedProfile {
  readonly kType: KvCacheType;
  readonly vType: KvCacheType;
  readonly engine: EngineBuildKind;
  /** The device, in words ("AMD EPYC 9B14, 2 cores, CPU"). */
  readonly device: string;
  /** Tokens read before the reply's tokens were timed. */
  readonly depth: number;
  /** Reply tokens timed per candidate (fewer where a candidate ran past the time allowed). */
  readonly decodeTokens: number;
  /** In the order they were measured. */
  readonly trials: readonly SpeedTrial[];
  /** The settings the model loads with. */
  readonly chosen: SpeedSettings;
  /** When it was measured (epoch ms), and how long it took. */
  readonly measuredAt: number;
  readonly durationMs: number;
}

/** A speed measurement under way, while the model loads (ModelStatus.measuring). */
export interface SpeedProgress {
  /** Candidates measured so far, of `total`. */
  readonly done: number;
  readonly total: number;
}

/**
 * An engine built for this computer from the llama.cpp source node-llama-cpp ships
 * (Settings → Engine). It is used only when it measured faster than the prebuilt one on the
 * loaded model; the prebuilt one stays the default and the fallback.
 */
export interface LocalEngineState {
  /** Whether a build can be made here; `unavailable` says why not (no compiler, no CMake…). */
  readonly available: boolean;
  readonly unavailable?: string;
  /**
   * `idle`: no build; `building`; `measuring`: comparing it with the prebuilt engine on the
   * loaded model; `ready`: built and compared; `failed`: the last build or comparison failed.
   */
  readonly status: 'idle' | 'building' | 'measuring' | 'ready' | 'failed';
  /** 0..1 while building. */
  readonly progress?: number;
  /** What the build is doing, in words. */
  readonly step?: string;
  /** Why the last build or comparison failed. */
  readonly error?: HearthError;
  /** The build on disk. */
  readonly build?: {
    /** The llama.cpp release it was built from. */
    readonly release: string;
    readonly builtAt: number;
    /** Bytes on disk. */
    readonly sizeBytes: number;
  };
  /** The comparison on a model: the prebuilt engine's chosen settings against the local build's. */
  readonly comparison?: {
    /** The model's name. */
    readonly model: string;
    readonly prebuilt: SpeedTrial;
    readonly local: SpeedTrial;
    /** Whether the local build is used: it was faster on the reference turn. */
    readonly faster: boolean;
    readonly measuredAt: number;
  };
  /** The engine running now. */
  readonly inUse: EngineBuildKind;
}
