/** The engine process's limits and knobs (no node-llama-cpp import, so tests can read them cheaply). */

/** Context size used when the host asks for "automatic" (0): the trained length, capped. */
export const AUTO_CONTEXT_CAP = 8192;

/**
 * A prompt must leave room for at least this many reply tokens (or `maxTokens`, if smaller);
 * otherwise it is refused with CONTEXT_OVERFLOW.
 */
export const MIN_REPLY_TOKENS = 16;

/**
 * The largest context size accepted. node-llama-cpp's memory estimate takes seconds per million
 * tokens before it gives up (35 s for 100M here), and no model is trained on more than this.
 */
export const MAX_CONTEXT_SIZE = 1 << 24;

/**
 * Environment variable: a RAM cap in bytes for llama.cpp (`llama.setRamCap`), so that tests can
 * make OUT_OF_MEMORY happen on any machine.
 */
export const RAM_CAP_ENV = 'HEARTH_ENGINE_RAM_CAP_BYTES';

/** Token events are batched: at most one every this many milliseconds (the first is sent at once). */
export const TOKEN_FLUSH_MS = 16;
