/**
 * Hearth's one typed contract: calls, events, payload types and error codes. Pure TypeScript;
 * it imports nothing of the app (only zod), and everything else may import it.
 */
export * from './errors.ts';
export * from './types.ts';
export * from './kv-types.ts';
export * from './server-types.ts';
export * from './models-types.ts';
export * from './remote-types.ts';
export * from './speed-types.ts';
export * from './api.ts';
export * from './validate.ts';
export * from './format.ts';
