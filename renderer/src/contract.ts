/**
 * The renderer's one window onto the app: the contract's types. Type-only on purpose, so that
 * the contract's zod schemas (validation belongs to the hosts) never reach the page bundle.
 */
export type * from '../../engine/contract/index.ts';

/**
 * The values the renderer takes from the contract, plain functions from modules without schemas:
 * figures read the same as in the host's texts, and a model's API id is the one the API uses.
 */
export { formatBytes } from '../../engine/contract/format.ts';
export { apiModelId, isApiConversation } from '../../engine/contract/server-types.ts';
export { FIT_MIN_CONTEXT, fitKvTypes, hubFileUri, isHubRepoId, modelSourceNames, modelSources } from '../../engine/contract/models-types.ts';
export { remoteEngineKindNames, remoteEngineKinds } from '../../engine/contract/remote-types.ts';
export { SPEED_TURN } from '../../engine/contract/speed-types.ts';
