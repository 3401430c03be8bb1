/**
 * The renderer's one window onto the app: the contract's types. Type-only on purpose, so that
 * the contract's zod schemas (validation belongs to the hosts) never reach the page bundle.
 */
export type * from '../../engine/contract/index.ts';

/** The one value the renderer takes from the contract: figures read the same in the host's texts. */
export { formatBytes } from '../../engine/contract/format.ts';
