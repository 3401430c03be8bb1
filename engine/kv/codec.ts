/**
 * The KV codec: cuts a llama.cpp sequence state file into content-addressable chunks of a fixed
 * token count, and assembles chunks back into a state file that `loadStateFromFile` accepts. It
 * works on bytes only and never imports node-llama-cpp; the engine process saves and loads the
 * files. This module is the codec's public entry: parsing is state-file.ts, the chunk payloads
 * chunk-payload.ts, assembling state-assemble.ts and state-file-writer.ts.
 *
 * Chunks are only ever cut from the clean prefix (state-file.ts `cleanPrefixLength`), and they
 * hold the cells' bytes exactly as llama.cpp wrote them: nothing is converted or re-quantized,
 * so quantized caches with llama.cpp's Hadamard rotation (head_dim % 64 == 0) are safe to move.
 */
export {
  MAX_STREAMS,
  STATE_MAGIC,
  STATE_VERSION,
  cellsByPosition,
  cleanPrefixLength,
  kvCacheTypes,
  parseStateFile,
  readStateFile,
  type CleanPrefixOptions,
  type ParsedState,
  type StateLayerData,
  type StateLayerShape,
  type StateShape,
} from './state-file.ts';
export {
  CHUNK_HEADER_BYTES,
  CHUNK_LAYOUT_VERSION,
  CHUNK_MAGIC,
  bytesPerToken,
  checkChunkHeader,
  chunkPayloadSize,
  cutChunks,
  planChunks,
  readChunkHeader,
  readChunkTokens,
  sameShape,
  shapeKey,
  shapeTag,
  truncateChunk,
  type ChunkInfo,
  type ChunkPlan,
  type CutResult,
  type StateChunk,
} from './chunk-payload.ts';
export { assembleStateFile, stateFileSize, writeStateFile, type AssembleOptions } from './state-assemble.ts';
export { StateFileWriter } from './state-file-writer.ts';
