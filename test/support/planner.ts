/** Fixtures for the planner's unit tests: model shapes, a device, and an estimator without llama.cpp. */
import type { DeviceMemory } from '../../engine/contract/index.ts';
import { cellsPerSlot, kvBytesPerToken, type ContextEstimator, type ModelShape } from '../../engine/worker/planner-core.ts';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** The generated test model: 4 layers, 2 KV heads of 32. */
export const tiny: ModelShape = { layers: 4, headCountKv: [2, 2, 2, 2], headDimK: 32, headDimV: 32, trainedContextLength: 8192, flashAttentionSupported: true, weightsBytes: 1_317_376 };
/** Llama-3.1-8B's shape (32 layers, 8 KV heads of 128), Q4_K_M-sized weights. */
export const llama8b: ModelShape = { layers: 32, headCountKv: Array(32).fill(8), headDimK: 128, headDimV: 128, trainedContextLength: 131_072, flashAttentionSupported: true, weightsBytes: 4.9e9 };

export const cpu = (ramFree: number): DeviceMemory => ({ backend: 'cpu', vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false, ramTotalBytes: 2 * ramFree, ramFreeBytes: ramFree });
export const noReserve = { vramBytes: 0, ramBytes: 0 };

/** KV (from the shape) plus a fixed buffer, plus the K·Q matrix without flash attention: roughly llama.cpp's shape. */
export function fakeEstimator(shape: ModelShape, counter?: { calls: number }): ContextEstimator {
  return async ({ contextSize, slots, pair, flashAttention }) => {
    if (counter) counter.calls++;
    const cells = cellsPerSlot(contextSize) * slots;
    return 2 * MiB + kvBytesPerToken(shape, pair) * cells + (flashAttention ? 0 : cells * 512 * 4);
  };
}
